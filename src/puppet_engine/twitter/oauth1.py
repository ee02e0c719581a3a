"""OAuth 1.0a HMAC-SHA1 request signing (RFC 5849) for one X account, built for the hot path.

It produces the very ``Authorization`` value ``oauthlib.oauth1.Client.sign`` does for the
same keys, nonce and timestamp (``tests/unit/test_x_oauth_signer.py`` compares them over
many random requests), with a fraction of the work: oauthlib builds a request object,
renders the header, parses it back, parses the URL twice and percent-encodes every value
with ``urllib.parse.quote`` (a UTF-8 encode and a per-byte Python loop each time). Here the
consumer key, token, the constant header text and the HMAC key are encoded once per
account, the scheme/host part of the URL once per base URL, and values are encoded with a
precomputed byte table behind a regex fast path (most values need no encoding at all).

A JSON body is never signed (X signs the URL and its query); a form-encoded body is
(``form``), as RFC 5849 §3.4.1.3.1 requires.
"""

from __future__ import annotations

import binascii
import hmac
import re
from functools import lru_cache
from random import SystemRandom
from urllib.parse import parse_qsl, unquote, urlsplit

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_NEEDS_ENCODING = re.compile(r"[^A-Za-z0-9\-._~]").search
# Each byte's RFC 3986 form: unreserved bytes stand for themselves, every other is %XX.
_BYTE = tuple(chr(b) if chr(b) in _UNRESERVED else f"%{b:02X}" for b in range(256))
# What a form-encoded string may contain (oauthlib refuses anything else, so do we).
_FORM_CHARS = frozenset(_UNRESERVED + "=&;:%+~,*@!()/?'$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})").search
# A query nearly in the signature's form (what httpx2 makes of ASCII parameters): only
# unreserved characters, ``=``, ``&``, ``+`` (a space) and upper-case %XX escapes of ASCII bytes
# that must stay escaped. Its names and values are signed as they stand (``+`` as ``%20``),
# without a decode/encode trip.
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9\-._~=&%+]*").fullmatch
_NOT_KEPT_ESCAPE = re.compile(r"%(?![01][0-9A-F]|2[0-9A-CF]|3[A-F]|40|5[B-E]|60|7[B-DF])").search
_random_bits = SystemRandom().getrandbits


def percent_encode(value: str) -> str:
    """RFC 5849 §3.6: UTF-8, then every byte but ``A-Z a-z 0-9 - . _ ~`` as ``%XX``."""
    if _NEEDS_ENCODING(value) is None:
        return value
    return "".join([_BYTE[b] for b in value.encode()])


def make_nonce(timestamp: str) -> str:
    """oauthlib's nonce shape: 64 random bits in decimal, then the timestamp."""
    return f"{_random_bits(64)}{timestamp}"


@lru_cache(maxsize=256)
def _base_origin(origin: str) -> str:
    """``scheme://host[:port]`` as the base string URI wants it: lower case, default port dropped."""
    parts = urlsplit(origin + "/")
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValueError(f"OAuth signing: {origin!r} has no scheme")
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return percent_encode(f"{scheme}://{host}")
    return percent_encode(f"{scheme}://{host}:{port}")


def _form_params(text: str, where: str) -> list[tuple[str, str]]:
    if not _FORM_CHARS.issuperset(text):
        raise ValueError(f"OAuth signing: the {where} is not form-encoded: {sorted(set(text) - _FORM_CHARS)}")
    if _BAD_ESCAPE(text) is not None:
        raise ValueError(f"OAuth signing: the {where} has a malformed %-escape")
    return parse_qsl(text, keep_blank_values=True)


class OAuth1Signer:
    """Signs requests as one account: consumer key/secret and access token/secret.

    Immutable once built; build a new one when the keys change. Safe to share between tasks.
    """

    __slots__ = ("_fixed", "_hmac", "_tail")

    def __init__(self, consumer_key: str, consumer_secret: str, token: str, token_secret: str) -> None:
        ck, tk = percent_encode(consumer_key), percent_encode(token)
        key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}".encode()
        self._hmac = hmac.new(key, digestmod="sha1")  # keyed once; each signature works on a copy
        # The signed oauth_* parameters that never change, already encoded.
        self._fixed = [("oauth_consumer_key", ck), ("oauth_signature_method", "HMAC-SHA1"),
                       ("oauth_token", tk), ("oauth_version", "1.0")]
        # oauthlib's header order: nonce, timestamp, version, method, consumer key, token, signature.
        self._tail = (f'", oauth_version="1.0", oauth_signature_method="HMAC-SHA1", '
                      f'oauth_consumer_key="{ck}", oauth_token="{tk}", oauth_signature="')

    def __repr__(self) -> str:
        return "OAuth1Signer(...)"  # the keys stay out of logs

    def authorization(self, method: str, url: str, *, timestamp: str, nonce: str | None = None,
                      form: str | None = None) -> str:
        """The ``Authorization`` header value for ``method url`` (the URL as sent, query included).

        ``form``: a form-encoded body, signed with the query; leave it None for a JSON body or none.
        Raises ValueError for a URL without a scheme or a query/body that is not form-encoded.
        """
        nonce = make_nonce(timestamp) if nonce is None else nonce
        e_nonce, e_time = percent_encode(nonce), percent_encode(timestamp)
        signature = percent_encode(self.signature(method, url, e_nonce, e_time, form))
        return f'OAuth oauth_nonce="{e_nonce}", oauth_timestamp="{e_time}{self._tail}{signature}"'

    def signature(self, method: str, url: str, e_nonce: str, e_time: str, form: str | None = None) -> str:
        """The base64 HMAC-SHA1 signature; ``e_nonce``/``e_time`` already percent-encoded."""
        head, _, query = url.partition("?")
        head = head.partition("#")[0]
        query = query.partition("#")[0]
        slash = head.find("/", head.find("://") + 3)
        origin, path = (head, "/") if slash < 0 else (head[:slash], head[slash:])
        pairs = [*self._fixed, ("oauth_nonce", e_nonce), ("oauth_timestamp", e_time)]
        plain = _plain_pairs(query) if query else []
        if plain is not None:
            pairs += plain
        else:
            _add_encoded(pairs, _form_params(query, "query"))
        if form:
            if method.upper() in ("GET", "HEAD"):
                raise ValueError(f"OAuth signing: a {method.upper()} request carries no form body")
            _add_encoded(pairs, _form_params(form, "body"))
        pairs.sort()
        # Every name and value is encoded: of the joined string only %, = and & need encoding again.
        params = "&".join([f"{k}={v}" for k, v in pairs]).replace("%", "%25").replace("=", "%3D").replace("&", "%26")
        base = (f"{percent_encode(method.upper())}&{_base_origin(origin)}"
                f"{percent_encode(path.replace(' ', '%20'))}&{params}")
        mac = self._hmac.copy()
        mac.update(base.encode())
        return binascii.b2a_base64(mac.digest(), newline=False).decode()


def _plain_pairs(query: str) -> list[tuple[str, str]] | None:
    """The query's pairs as they stand when it is already in signing form, else None."""
    if _PLAIN_QUERY(query) is None or _NOT_KEPT_ESCAPE(query) is not None or "oauth_" in query:
        return None
    pairs = []
    for field in query.replace("+", "%20").split("&"):
        if field:
            name, _, value = field.partition("=")
            if "=" in value:  # a bare "=" in a value is signed as %3D: the general path
                return None
            pairs.append((name, value))
    return pairs


def _add_encoded(pairs: list[tuple[str, str]], decoded: list[tuple[str, str]]) -> None:
    for k, v in decoded:
        if k.startswith("oauth_"):  # oauthlib decodes these once more: do the same to sign alike
            v = unquote(v)
        pairs.append((percent_encode(k), percent_encode(v)))
