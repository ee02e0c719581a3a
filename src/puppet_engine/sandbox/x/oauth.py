"""OAuth 1.0a HMAC-SHA1 (RFC 5849) as X applies it: the sandbox X emulator's verifier.

The production client signs with ``oauthlib``; this module is the independent
implementation the emulator checks signatures with (and the docs' test vector proves,
see ``tests/unit/test_x_oauth.py``). A JSON body is never signed; a form-encoded body is.
"""

from __future__ import annotations

import binascii
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

_HEADER_PARAM = re.compile(r'\s*([A-Za-z0-9_\-.~%]+)\s*=\s*"([^"]*)"\s*(?:,|$)')
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_NEEDS_ENCODING = re.compile(r"[^A-Za-z0-9\-._~]").search
_BYTE = tuple(chr(b) if chr(b) in _UNRESERVED else f"%{b:02X}" for b in range(256))


def percent_encode(value: str) -> str:
    """RFC 3986 encoding: only ``A-Z a-z 0-9 - . _ ~`` stay as they are."""
    # Every signed request encodes a few dozen values: skip the ones that need nothing, and
    # encode the others from a byte table rather than through urllib's quote (a hot path).
    if _NEEDS_ENCODING(value) is None:
        return value
    return "".join([_BYTE[b] for b in value.encode()])


@lru_cache(maxsize=4096)
def normalize_url(url: str) -> str:
    """Scheme, host and path, lower-cased scheme/host, default ports dropped, no query."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def base_string(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """``METHOD&pct(base url)&pct(sorted encoded params)``; ``params`` exclude ``oauth_signature``."""
    encoded = sorted([(percent_encode(k), percent_encode(v)) for k, v in params])
    joined = "&".join([f"{k}={v}" for k, v in encoded])
    # Names and values are encoded already: of the joined string only %, = and & need it again.
    joined = joined.replace("%", "%25").replace("=", "%3D").replace("&", "%26")
    return "&".join((method.upper(), percent_encode(normalize_url(url)), joined))


def hmac_sha1(base: str, consumer_secret: str, token_secret: str = "") -> str:
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
    return binascii.b2a_base64(hmac.digest(key.encode(), base.encode(), "sha1"), newline=False).decode()


def parse_authorization(header: str) -> dict[str, str] | None:
    """The ``oauth_*`` parameters of an ``Authorization: OAuth …`` header (decoded), or None."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "oauth":
        return None
    params: dict[str, str] = {}
    position = 0
    for match in _HEADER_PARAM.finditer(rest):
        if rest[position:match.start()].strip(" ,"):
            return None
        position = match.end()
        key, value = unquote(match.group(1)), unquote(match.group(2))
        if key != "realm":
            params[key] = value
    if rest[position:].strip(" ,"):
        return None
    return params


def request_params(query: str, body: bytes, content_type: str) -> list[tuple[str, str]]:
    """Query parameters plus form-encoded body parameters (what gets signed besides ``oauth_*``)."""
    params = parse_qsl(query, keep_blank_values=True)
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded" and body:
        params += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return params


def signature_for(method: str, url: str, oauth: dict[str, str], params: Iterable[tuple[str, str]],
                  consumer_secret: str, token_secret: str) -> str:
    signed = [(k, v) for k, v in oauth.items() if k != "oauth_signature"] + list(params)
    return hmac_sha1(base_string(method, url, signed), consumer_secret, token_secret)


@dataclass(frozen=True)
class OAuthRequest:
    """A parsed, not yet verified OAuth 1.0a request."""

    method: str
    url: str  # as signed: scheme, host, path
    oauth: dict[str, str]
    params: list[tuple[str, str]]

    @property
    def consumer_key(self) -> str:
        return self.oauth.get("oauth_consumer_key", "")

    @property
    def token(self) -> str:
        return self.oauth.get("oauth_token", "")

    def verify(self, consumer_secret: str, token_secret: str) -> bool:
        """True when the method is HMAC-SHA1 and the signature matches, compared in constant time."""
        if self.oauth.get("oauth_signature_method") != "HMAC-SHA1":
            return False
        if self.oauth.get("oauth_version", "1.0") != "1.0":
            return False
        expected = signature_for(self.method, self.url, self.oauth, self.params, consumer_secret, token_secret)
        return hmac.compare_digest(expected, self.oauth.get("oauth_signature", ""))
