"""OAuth 1.0a signing and verifying, µs per call: the X client's signer against oauthlib.

The requests are the ones the engine makes (built by httpx2 as the client builds them):
mentions and search reads with their field lists, a post, a like, ``/2/users/me``, a
batch of tweet ids. The baseline, measured in the same process, is what the client did
before: an ``oauthlib.oauth1.Client`` per call and ``sign(url, method)``. The new signer is
built once per account, as the client keeps it. The sandbox's verifier (parse the header,
collect the parameters, recompute the signature) is timed too; ``--verify-only`` times just
that, so it can also run against an older tree (``PYTHONPATH=<old>/src``).

    python bench/oauth.py [--calls 20000] [--verify-only] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx2
from oauthlib.oauth1 import Client  # the reference signer (a dev dependency)

from puppet_engine.sandbox.x.oauth import OAuthRequest, parse_authorization, request_params

try:
    from puppet_engine.twitter.oauth1 import OAuth1Signer
except ImportError:  # an older tree, timed with --verify-only
    OAuth1Signer = None  # type: ignore[assignment,misc]

KEYS = ("xvz1evFS4wEEPTGEFPHBog", "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
        "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb", "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE")
FIELDS = "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,public_metrics,entities"
BASE = "http://127.0.0.1:8080/x"


def requests() -> list[tuple[str, str]]:
    made = [
        ("GET", "/2/users/370773112/mentions", {"tweet.fields": FIELDS, "expansions": "author_id",
                                                 "max_results": 100, "since_id": "1790000000000000000"}),
        ("GET", "/2/tweets/search/recent", {"query": "$SOL -is:retweet lang:en", "tweet.fields": FIELDS,
                                            "expansions": "author_id", "max_results": 50}),
        ("POST", "/2/tweets", None),
        ("POST", "/2/users/370773112/likes", None),
        ("GET", "/2/users/me", None),
        ("GET", "/2/tweets", {"ids": ",".join(str(1790000000000000000 + i) for i in range(100)),
                              "tweet.fields": "public_metrics"}),
    ]
    return [(method, str(httpx2.Request(method, BASE + path, params=params).url)) for method, path, params in made]


def per_call(fn: Callable[[str, str], Any], cases: list[tuple[str, str]], calls: int) -> float:
    """Best of three rounds of ``calls`` calls, µs per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(calls):
            method, url = cases[i % len(cases)]
            fn(method, url)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def verify_case(header: str, method: str, url: str) -> bool:
    oauth = parse_authorization(header)
    assert oauth is not None
    parts = urlsplit(url)
    signed = OAuthRequest(method, url.partition("?")[0], oauth, request_params(parts.query, b"", "application/json"))
    return signed.verify(KEYS[1], KEYS[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--verify-only", action="store_true", help="only the sandbox's verifier")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cases = requests()
    result: dict[str, Any] = {"calls": args.calls, "requests": len(cases)}

    def oauthlib_sign(method: str, url: str) -> str:
        client = Client(KEYS[0], client_secret=KEYS[1], resource_owner_key=KEYS[2],
                        resource_owner_secret=KEYS[3], timestamp="1700000000")
        return client.sign(url, method)[1]["Authorization"]

    headers = {url: oauthlib_sign(method, url) for method, url in cases}
    result["verify_us"] = per_call(lambda m, u: verify_case(headers[u], m, u), cases, args.calls)
    if not args.verify_only:
        signer = OAuth1Signer(*KEYS)
        result["oauthlib_sign_us"] = per_call(oauthlib_sign, cases, args.calls)
        result["signer_sign_us"] = per_call(lambda m, u: signer.authorization(m, u, timestamp="1700000000"),
                                            cases, args.calls)
        result["speedup"] = result["oauthlib_sign_us"] / result["signer_sign_us"]
    if args.json:
        print(json.dumps(result))
        return
    print(f"{len(cases)} request shapes, best of 3 x {args.calls} calls")
    if not args.verify_only:
        print(f"sign, oauthlib (baseline):  {result['oauthlib_sign_us']:8.1f} µs/call")
        print(f"sign, OAuth1Signer:         {result['signer_sign_us']:8.1f} µs/call   "
              f"({result['speedup']:.1f}x faster)")
    print(f"verify, sandbox:            {result['verify_us']:8.1f} µs/call")


if __name__ == "__main__":
    main()
