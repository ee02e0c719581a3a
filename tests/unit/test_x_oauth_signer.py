"""The X client's OAuth 1.0a signer writes the very header oauthlib does, and the sandbox accepts it."""

from __future__ import annotations

import random
from urllib.parse import urlencode, urlsplit

import httpx2
import pytest
from oauthlib.oauth1 import Client

from puppet_engine.sandbox.x.oauth import OAuthRequest, parse_authorization, request_params
from puppet_engine.twitter.oauth1 import OAuth1Signer, _plain_pairs, make_nonce, percent_encode

FORM = "application/x-www-form-urlencoded"
ALPHABET = "abcXYZ019-._~ !\"#$%&'()*+,/:;<=>?@[\\]^`{|}é☃😀\u00a0\t"
ASCII = "abcXYZ019-._~ ,:$%&=+/"  # what the engine's own parameters look like
BASES = ["https://api.x.com", "HTTPS://API.X.com:443", "http://127.0.0.1:8080/x", "http://Localhost:80",
         "https://user@api.x.com:8443/prefix"]
PATHS = ["/2/tweets", "/2/users/123/mentions", "/2/users/by/username/é bc", "/2/a;b/c~d", "", "/2/%41x"]


def _text(rng: random.Random, most: int = 12, alphabet: str = ALPHABET) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, most)))


def _params(rng: random.Random) -> dict[str, object]:
    params: dict[str, object] = {}
    alphabet = rng.choice([ALPHABET, ASCII])
    names = ["tweet.fields", "max_results", "query", "a", "", _text(rng, 6, alphabet) or "k"]
    if alphabet is ALPHABET:
        names.append("oauth_x")
    for _ in range(rng.randint(0, 5)):
        value = rng.choice([_text(rng, 12, alphabet), rng.randint(0, 10**6), True, [_text(rng), _text(rng)]])
        params[rng.choice(names)] = value
    return params


def _case(rng: random.Random) -> tuple[str, str, str | None]:
    """A method, a URL built the way the client builds it (httpx2), and maybe a form body."""
    method = rng.choice(["GET", "POST", "DELETE", "PUT", "get", "post"])
    url = str(httpx2.Request(method, rng.choice(BASES) + rng.choice(PATHS), params=_params(rng)).url)
    form = None
    if method.upper() not in ("GET", "HEAD") and rng.random() < 0.5:
        form = urlencode([(_text(rng, 5) or "f", _text(rng)) for _ in range(rng.randint(1, 4))])
    return method, url, form


def _oauthlib(keys: tuple[str, str, str, str], method: str, url: str, form: str | None,
              nonce: str, timestamp: str) -> str:
    ck, cs, tk, ts = keys
    client = Client(ck, client_secret=cs, resource_owner_key=tk, resource_owner_secret=ts,
                    nonce=nonce, timestamp=timestamp)
    if form is None:  # a JSON body (or none): the client signs the URL only
        _, headers, _ = client.sign(url, method)
    else:
        _, headers, _ = client.sign(url, method, body=form, headers={"Content-Type": FORM})
    return headers["Authorization"]


def test_headers_match_oauthlib_over_random_requests() -> None:
    rng = random.Random(19)
    compared = with_query = with_form = signed_as_is = 0
    for _ in range(1500):
        keys = (_text(rng, 25) or "ck", _text(rng, 40), _text(rng, 50) or "tk", _text(rng, 40))
        signer = OAuth1Signer(*keys)
        for _ in range(3):
            method, url, form = _case(rng)
            nonce = rng.choice([make_nonce("1700000000"), _text(rng, 20) or "n"])
            timestamp = str(rng.randint(0, 2**33))
            ours = signer.authorization(method, url, timestamp=timestamp, nonce=nonce, form=form)
            assert ours == _oauthlib(keys, method, url, form, nonce, timestamp), (keys, method, url, form)
            compared += 1
            with_query += "?" in url
            signed_as_is += "?" in url and _plain_pairs(url.partition("?")[2]) is not None  # the fast path
            with_form += form is not None
    assert compared == 4500 and with_query > 2000 and with_form > 1000
    assert 500 < signed_as_is < with_query - 500  # both ways of reading a query were compared


def test_sandbox_verifier_accepts_the_signature() -> None:
    rng = random.Random(5849)
    for _ in range(300):
        keys = (_text(rng, 25) or "ck", _text(rng, 40), _text(rng, 50) or "tk", _text(rng, 40))
        method, url, form = _case(rng)
        header = OAuth1Signer(*keys).authorization(method, url, timestamp="1700000000", form=form)
        oauth = parse_authorization(header)
        assert oauth is not None and oauth["oauth_consumer_key"] == keys[0] and oauth["oauth_token"] == keys[2]
        parts = urlsplit(url)
        params = request_params(parts.query, (form or "").encode(), FORM if form else "application/json")
        request = OAuthRequest(method.upper(), url.partition("?")[0], oauth, params)
        assert request.verify(keys[1], keys[3])
        assert not request.verify(keys[1], keys[3] + "x")


def test_nonces_are_fresh_and_keys_stay_out_of_repr() -> None:
    signer = OAuth1Signer("ck", "secret-cs", "tk", "secret-ts")
    first = signer.authorization("GET", "https://api.x.com/2/users/me", timestamp="1700000000")
    second = signer.authorization("GET", "https://api.x.com/2/users/me", timestamp="1700000000")
    assert first != second
    assert parse_authorization(first)["oauth_nonce"].endswith("1700000000")  # type: ignore[index]
    assert "secret" not in repr(signer)


def test_percent_encoding() -> None:
    assert percent_encode("Ladies + Gentlemen") == "Ladies%20%2B%20Gentlemen"
    assert percent_encode("a-b.c_d~e/f") == "a-b.c_d~e%2Ff"
    assert percent_encode("☃") == "%E2%98%83"
    assert percent_encode("") == ""


@pytest.mark.parametrize(("url", "form", "problem"), [
    ("https://api.x.com/2/tweets?a=<b>", None, "query is not form-encoded"),
    ("https://api.x.com/2/tweets?a=%zz", None, "malformed %-escape"),
    ("https://api.x.com/2/tweets", "a=b c", "body is not form-encoded"),
    ("/2/tweets", None, "has no scheme"),
])
def test_bad_requests_are_refused_like_oauthlib(url: str, form: str | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        OAuth1Signer("ck", "cs", "tk", "ts").authorization("POST", url, timestamp="1", form=form)
    with pytest.raises(ValueError):
        _oauthlib(("ck", "cs", "tk", "ts"), "POST", url, form, "n", "1")


def test_a_get_with_a_form_body_is_refused() -> None:
    with pytest.raises(ValueError, match="GET request carries no form body"):
        OAuth1Signer("ck", "cs", "tk", "ts").authorization("GET", "https://api.x.com/2/x", timestamp="1", form="a=b")
