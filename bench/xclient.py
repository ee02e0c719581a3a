"""The X client's CPU per call against the sandbox in a process of its own, beside bare httpx2.

The sandbox (X emulator on a virtual clock) is served by uvicorn in a child process, so
this process's CPU time (``time.process_time``) is the client's alone; it runs on uvloop
where installed, as ``puppet-engine run`` does. ``--accounts``
accounts are issued by the sandbox; each round every account makes, concurrently with
the others as the engine's events do, the calls the behaviours make most:

- ``post``: ``POST /2/tweets`` mentioning the next account (posting, replies);
- ``mentions``: ``GET /2/users/:id/mentions`` from the account's cursor (the mentions poll);
- ``tweet``: ``GET /2/tweets/:id`` (thread context: a mention's parent);
- ``metrics``: ``GET /2/tweets?ids=`` of the account's posts (engagement);
- ``user``: ``GET /2/users/by/username/:username`` (a user lookup);
- ``like``: ``POST /2/users/:id/likes``.

The clients share one ``httpx2.AsyncClient`` (kept-alive connections, as the engine's) and
no read cache, so every read is a call. Between rounds both clocks move 16 minutes on (a
new rate-limit window). The **baseline**, run in the same process over the same
connections, is bare httpx2: ``AsyncClient.request`` with the same method, URL, query and
JSON body, signed with the same signer, its JSON parsed, nothing else (no rate limiter, no
retries, no error translation). ``--profile`` adds where the client's CPU goes, by package.

    python bench/xclient.py [--accounts 20] [--rounds 30] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx2

from engine import SandboxProcess  # bench/engine.py: bench/ is first on sys.path when run
from puppet_engine.clock import VirtualClock
from puppet_engine.serving import run_main
from puppet_engine.twitter.client import TwitterClient
from puppet_engine.twitter.convert import TWEET_PARAMS
from puppet_engine.twitter.issuance import Issued, SandboxAccounts
from puppet_engine.twitter.oauth1 import OAuth1Signer

KINDS = ("post", "mentions", "tweet", "metrics", "user", "like")
WINDOW = 16 * 60.0  # a round's clock step: every 15-minute window is new


class Account:
    """One issued account, its client, and what its rounds read and write."""

    def __init__(self, issued: Issued, client: TwitterClient, signer: OAuth1Signer) -> None:
        self.id, self.username = issued.account.id, issued.account.username
        self.client, self.signer = client, signer
        self.posts: list[str] = []
        self.cursor: str | None = None
        self.peer: Account = self


class Bare:
    """The same requests through ``httpx2.AsyncClient.request`` and nothing else."""

    def __init__(self, http: httpx2.AsyncClient, base: str, clock: VirtualClock) -> None:
        self.http, self.base, self.clock = http, base, clock

    async def call(self, account: Account, method: str, path: str, params: dict[str, Any] | None = None,
                   body: Any = None) -> Any:
        request = self.http.build_request(method, self.base + path, params=params, json=body)
        request.headers["Authorization"] = account.signer.authorization(
            method, str(request.url), timestamp=str(int(self.clock.now())))
        response = await self.http.send(request)
        response.raise_for_status()
        return json.loads(response.content)


def operations(bare: Bare | None, round_no: int) -> dict[str, Callable[[Account], Awaitable[Any]]]:
    """Each kind of call, through the client or (``bare``) through httpx2 alone."""

    async def post(a: Account) -> None:
        text = f"@{a.peer.username} round {round_no}, {'bare' if bare else 'client'}: what do you make of $SOL?"
        if bare is None:
            a.posts.append((await a.client.post_tweet(text)).id)
        else:
            a.posts.append((await bare.call(a, "POST", "/2/tweets", body={"text": text}))["data"]["id"])

    async def mentions(a: Account) -> None:
        if bare is None:
            found = await a.client.get_mentions(since_id=a.cursor)
            a.cursor = found[-1].id if found else a.cursor
        else:
            params = {**TWEET_PARAMS, "max_results": 100, **({"since_id": a.cursor} if a.cursor else {})}
            body = await bare.call(a, "GET", f"/2/users/{a.id}/mentions", params=params)
            a.cursor = body.get("meta", {}).get("newest_id") or a.cursor

    async def tweet(a: Account) -> None:
        if bare is None:
            await a.client.get_tweet(a.peer.posts[-1])
        else:
            await bare.call(a, "GET", f"/2/tweets/{a.peer.posts[-1]}", params=TWEET_PARAMS)

    async def metrics(a: Account) -> None:
        ids = a.posts[-20:]
        if bare is None:
            await a.client.get_metrics(ids)
        else:
            await bare.call(a, "GET", "/2/tweets", params={"ids": ",".join(ids), "tweet.fields": "public_metrics"})

    async def user(a: Account) -> None:
        if bare is None:
            await a.client.get_user(a.peer.username)
        else:
            await bare.call(a, "GET", f"/2/users/by/username/{a.peer.username}")

    async def like(a: Account) -> None:
        if bare is None:
            await a.client.like(a.peer.posts[-1])
        else:
            await bare.call(a, "POST", f"/2/users/{a.id}/likes", body={"tweet_id": a.peer.posts[-1]})

    return {"post": post, "mentions": mentions, "tweet": tweet, "metrics": metrics, "user": user, "like": like}


async def run_rounds(accounts: list[Account], rounds: int, first: int, clock: VirtualClock,
                     set_clock: Callable[[float], Awaitable[None]], bare: Bare | None,
                     cpu: dict[str, float], calls: dict[str, int]) -> None:
    for r in range(first, first + rounds):
        clock.set(clock.now() + WINDOW)
        await set_clock(clock.now())
        ops = operations(bare, r)
        for kind in KINDS:
            started = time.process_time()
            await asyncio.gather(*(ops[kind](a) for a in accounts))
            cpu[kind] += time.process_time() - started
            calls[kind] += len(accounts)


def where_time_goes(profiler: cProfile.Profile, top: int = 12) -> list[tuple[str, float]]:
    groups: collections.Counter[str] = collections.Counter()
    for (file, _line, name), (_cc, _nc, own, _cum, _callers) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in file:
            key = file.split("site-packages/")[1].split("/")[0]
        elif "puppet_engine/" in file:
            key = "puppet_engine/" + file.split("puppet_engine/")[1].removesuffix(".py")
        elif file.startswith("~"):
            key = "C: " + (name.split("'")[1] if "'" in name else name)
        else:
            key = "python: " + Path(file).stem
        groups[key] += own
    total = sum(groups.values()) or 1.0
    return [(key, own / total) for key, own in groups.most_common(top)]


async def measure(n_accounts: int, rounds: int, profile: bool, pstats_path: str | None = None) -> dict[str, Any]:
    sandbox = SandboxProcess()  # bench/engine.py's: the sandbox in a process of its own
    clock = VirtualClock()
    http = httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_connections=100,
                                                              max_keepalive_connections=max(20, n_accounts)))
    try:
        await sandbox.ready()
        set_clock = sandbox.set_clock
        await set_clock(clock.now())
        issuer = SandboxAccounts(http, sandbox.url)
        names = {f"bench_{i}": f"Bench {i}" for i in range(n_accounts)}
        await issuer.prefetch(names)
        accounts = []
        for username in names:
            issued = await issuer.issue(username, names[username])
            c = issued.credentials
            client = TwitterClient(c, base_url=sandbox.url + "/x", http=http, clock=clock)
            client.remember_me(issued.account)
            accounts.append(Account(issued, client, OAuth1Signer(c.api_key, c.api_secret, c.access_token,
                                                                 c.access_token_secret)))
        for a, b in zip(accounts, accounts[1:] + accounts[:1], strict=True):
            a.peer = b
        bare = Bare(http, sandbox.url + "/x", clock)
        zero: dict[str, float] = dict.fromkeys(KINDS, 0.0)
        # Warm-up: imports, connections, caches; then the two alternate so drift hits both alike.
        await run_rounds(accounts, 2, 0, clock, set_clock, None, dict(zero), collections.Counter())
        await run_rounds(accounts, 2, 2, clock, set_clock, bare, dict(zero), collections.Counter())
        results: dict[str, dict[str, float]] = {"client": dict(zero), "bare": dict(zero)}
        calls: dict[str, collections.Counter[str]] = {"client": collections.Counter(), "bare": collections.Counter()}
        # CPU time, not wall: a send that wakes the sandbox may lose the core, which is not our work.
        profiler = cProfile.Profile(time.process_time) if profile else None
        for r in range(4, 4 + 2 * rounds, 2):
            if profiler is not None:
                profiler.enable()
            await run_rounds(accounts, 1, r, clock, set_clock, None, results["client"], calls["client"])
            if profiler is not None:
                profiler.disable()
            await run_rounds(accounts, 1, r + 1, clock, set_clock, bare, results["bare"], calls["bare"])
    finally:
        await http.aclose()
        await sandbox.close()
    out: dict[str, Any] = {"accounts": n_accounts, "rounds": rounds}
    for mode in ("client", "bare"):
        out[mode] = {kind: 1e6 * results[mode][kind] / calls[mode][kind] for kind in KINDS}
        out[mode]["all"] = 1e6 * sum(results[mode].values()) / sum(calls[mode].values())
    if profiler is not None:
        out["profile"] = where_time_goes(profiler)
        if pstats_path:
            profiler.dump_stats(pstats_path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds of each (client, bare)")
    parser.add_argument("--profile", action="store_true", help="where the client's CPU goes (cProfile)")
    parser.add_argument("--pstats", help="with --profile: also write the client rounds' cProfile stats here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run_main(measure(args.accounts, args.rounds, args.profile, args.pstats))  # uvloop, as the engine
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.accounts} accounts x {args.rounds} rounds, CPU µs per call in this process "
          "(sandbox in its own)")
    print(f"{'call':10} {'client':>9} {'bare httpx2':>12} {'ratio':>7}")
    for kind in (*KINDS, "all"):
        c, b = result["client"][kind], result["bare"][kind]
        print(f"{kind:10} {c:9.0f} {b:12.0f} {c / b:7.2f}")
    for name, share in result.get("profile", []):
        print(f"  {share:6.1%}  {name}")


if __name__ == "__main__":
    main()
