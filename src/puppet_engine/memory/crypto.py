"""Encryption of memory content at rest: AES-256-GCM with a key derived from MEMORY_ENCRYPTION_KEY.

What this protects: the ``content`` column (the text of each memory), against
anyone who reads the database file or a backup without the key. Each row is
bound to its agent and memory id (associated data), so ciphertext copied to
another row does not decrypt. What it does not protect: ids, kinds,
importance, times, metadata, relationships, and the embeddings, which are
stored in clear so search keeps working, and which leak which memories are
similar to each other and to a guessed text.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from puppet_engine.errors import ConfigError

_VERSION = b"\x01"
_NONCE_BYTES = 12
_INFO = b"puppet-engine memory content v1"


class ContentCipher:
    """Encrypts and decrypts memory texts; the key never appears in reprs or errors."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ConfigError(
                "MEMORY_ENCRYPTION_KEY: use at least 16 characters (a long random string)"
            )
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret.encode("utf-8")
        )
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "ContentCipher(<key hidden>)"

    def encrypt(self, plaintext: str, *, agent_id: str, memory_id: str) -> str:
        """Base64 text of ``version | nonce | ciphertext+tag``."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _aad(agent_id, memory_id))
        return base64.b64encode(_VERSION + nonce + sealed).decode("ascii")

    def decrypt(self, token: str, *, agent_id: str, memory_id: str) -> str:
        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as exc:
            raise ConfigError(
                f"memory {memory_id} of agent {agent_id!r}: stored ciphertext is not valid base64"
            ) from exc
        if raw[:1] != _VERSION or len(raw) < 1 + _NONCE_BYTES + 16:
            raise ConfigError(
                f"memory {memory_id} of agent {agent_id!r}: unknown ciphertext format"
            )
        nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, _aad(agent_id, memory_id)).decode("utf-8")
        except InvalidTag as exc:
            raise ConfigError(
                f"memory {memory_id} of agent {agent_id!r}: MEMORY_ENCRYPTION_KEY does not decrypt it "
                "(wrong key, or the row was altered)"
            ) from exc


def _aad(agent_id: str, memory_id: str) -> bytes:
    return f"{agent_id}\x00{memory_id}".encode()
