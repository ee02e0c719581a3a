"""OAuth 1.0a HMAC-SHA1: X's documented test vector, and agreement with independent signers."""

from __future__ import annotations

from authlib.oauth1.rfc5849.client_auth import ClientAuth
from oauthlib.oauth1 import Client

from puppet_engine.sandbox.x.oauth import (
    OAuthRequest,
    base_string,
    hmac_sha1,
    normalize_url,
    parse_authorization,
    percent_encode,
    request_params,
)

# From X's "Creating a signature" page (PROTOCOLS §1.2).
CONSUMER_KEY = "xvz1evFS4wEEPTGEFPHBog"
CONSUMER_SECRET = "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw"
TOKEN = "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb"
TOKEN_SECRET = "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
OAUTH = {
    "oauth_consumer_key": CONSUMER_KEY, "oauth_nonce": "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
    "oauth_signature_method": "HMAC-SHA1", "oauth_timestamp": "1318622958", "oauth_token": TOKEN,
    "oauth_version": "1.0",
}
BODY = "status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21"
URL = "https://api.x.com/1.1/statuses/update.json"
EXPECTED = "Ls93hJiZbQ3akF3HF3x1Bz8/zU4="


def test_docs_vector_signature() -> None:
    params = [*OAUTH.items(), *request_params("include_entities=true", BODY.encode(),
                                              "application/x-www-form-urlencoded")]
    base = base_string("post", URL, params)
    assert base.count("&") == 2
    assert base.startswith("POST&https%3A%2F%2Fapi.x.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue")
    assert hmac_sha1(base, CONSUMER_SECRET, TOKEN_SECRET) == EXPECTED


def test_docs_vector_through_the_verifier() -> None:
    header = "OAuth " + ", ".join(f'{percent_encode(k)}="{percent_encode(v)}"'
                                  for k, v in {**OAUTH, "oauth_signature": EXPECTED}.items())
    oauth = parse_authorization(header)
    assert oauth is not None and oauth["oauth_signature"] == EXPECTED
    params = request_params("include_entities=true", BODY.encode(), "application/x-www-form-urlencoded")
    request = OAuthRequest("POST", URL, oauth, params)
    assert request.verify(CONSUMER_SECRET, TOKEN_SECRET)
    assert not request.verify(CONSUMER_SECRET, "wrong")
    assert not OAuthRequest("POST", URL + "x", oauth, params).verify(CONSUMER_SECRET, TOKEN_SECRET)
    assert not OAuthRequest("POST", URL, oauth, [*params, ("extra", "1")]).verify(CONSUMER_SECRET, TOKEN_SECRET)
    weak = {**oauth, "oauth_signature_method": "PLAINTEXT"}
    assert not OAuthRequest("POST", URL, weak, params).verify(CONSUMER_SECRET, TOKEN_SECRET)


def test_percent_encoding_and_url_normalisation() -> None:
    assert percent_encode("Ladies + Gentlemen") == "Ladies%20%2B%20Gentlemen"
    assert percent_encode("a-b.c_d~e/f") == "a-b.c_d~e%2Ff"
    assert percent_encode("☃") == "%E2%98%83"
    assert normalize_url("HTTPS://API.X.com:443/2/tweets?x=1") == "https://api.x.com/2/tweets"
    assert normalize_url("http://127.0.0.1:8080/x/2/tweets") == "http://127.0.0.1:8080/x/2/tweets"


def test_malformed_headers_are_not_parsed() -> None:
    assert parse_authorization("Bearer abc") is None
    assert parse_authorization('OAuth oauth_token="a", garbage') is None
    assert parse_authorization('OAuth realm="x", oauth_token="a%2Db"') == {"oauth_token": "a-b"}


def _verify(url: str, headers: dict[str, str], query: str = "", body: bytes = b"", ctype: str = "") -> bool:
    oauth = parse_authorization(headers["Authorization"])
    assert oauth is not None
    return OAuthRequest("POST", url, oauth, request_params(query, body, ctype)).verify("cs", "ts")


def test_oauthlib_and_authlib_signatures_verify() -> None:
    url = "https://api.x.com/2/tweets"
    _, headers, _ = Client("ck", "cs", "tk", "ts").sign(url + "?a=1&b=%20x", "POST",
                                                        headers={"Content-Type": "application/json"})
    assert _verify(url, headers, "a=1&b=%20x")
    assert not _verify(url, headers, "a=2&b=%20x")
    _, headers, body = ClientAuth("ck", "cs", "tk", "ts").prepare(
        "POST", url, {"Content-Type": "application/x-www-form-urlencoded"}, "status=hi+there%21")
    assert _verify(url, headers, body=body.encode(), ctype="application/x-www-form-urlencoded")
    assert not _verify(url, headers, body=b"status=changed", ctype="application/x-www-form-urlencoded")
