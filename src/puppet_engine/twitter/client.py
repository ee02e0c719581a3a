"""The production X client: X API v2 over httpx2, OAuth 1.0a signed (:mod:`puppet_engine.twitter.oauth1`).

The same code runs against api.x.com and the sandbox emulator; only ``base_url`` and
the keys differ. Every call goes through a :class:`RateLimiter` (it never sends a call
the last headers said would be refused), retries server errors, timeouts and broken
connections with the :class:`~puppet_engine.resilience.RetryPolicy` backoff, never retries
other 4xx, and raises :mod:`puppet_engine.errors` classes (:mod:`puppet_engine.twitter.errors`).
A :class:`~puppet_engine.resilience.CircuitBreaker` (one for X, shared by every account)
fails calls fast while X is down: server errors, timeouts, broken connections and garbled
bodies count against it, any other answer closes it.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx2

from puppet_engine.clock import Clock, WallClock
from puppet_engine.errors import (
    AuthError,
    BadResponse,
    ContentRejected,
    DuplicateContent,
    RateLimited,
    ServiceUnavailable,
)
from puppet_engine.observability.upstream import upstream
from puppet_engine.resilience import CircuitBreaker, RetryPolicy
from puppet_engine.social.base import Account, Post, PostMetrics, SocialClient, find_own
from puppet_engine.twitter import errors as xe
from puppet_engine.twitter.cache import XReadCache
from puppet_engine.twitter.convert import TWEET_PARAMS, metrics_from, tweet_from, tweets_from
from puppet_engine.twitter.credentials import TwitterCredentials
from puppet_engine.twitter.oauth1 import OAuth1Signer
from puppet_engine.twitter.ratelimit import RateLimiter
from puppet_engine.twitter.text import count_cashtags, parse_tweet

DEFAULT_BASE_URL = "https://api.x.com"
# A write (post, reply, like…) waits at most this long for a spent rate-limit window, then
# raises RateLimited: the outbox keeps it for the window's reset, so the agent's other work
# and a shutdown are never held up by a send asleep in the client. Reads wait longer.
WRITE_MAX_WAIT = 5.0
METRICS_BATCH = 100  # ids per GET /2/tweets, X's maximum


class _AmbiguousDuplicate(DuplicateContent):
    """A retried post was refused as a duplicate: the earlier, unanswered attempt went through."""


@dataclass(frozen=True)
class XAccount:
    """Where and as whom a client calls X."""

    credentials: TwitterCredentials
    base_url: str = DEFAULT_BASE_URL


KeySource = Callable[[], Awaitable[XAccount]]
"""Looks up an account's keys and base URL when its client connects (they may change between starts)."""


class TwitterClient(SocialClient):
    """One X account (user context), or app-only reads with just a bearer token.

    Built with ``credentials`` it is ready at once; built with ``keys`` (a :data:`KeySource`)
    it is unconnected until :meth:`connect` looks them up.
    """

    def __init__(self, credentials: TwitterCredentials | None = None, *, base_url: str = DEFAULT_BASE_URL,
                 http: httpx2.AsyncClient | None = None, clock: Clock | None = None,
                 limiter: RateLimiter | None = None, max_attempts: int = 4, backoff: float = 0.5,
                 max_backoff: float = 8.0, timeout: float = 30.0, rng: random.Random | None = None,
                 breaker: CircuitBreaker | None = None, keys: KeySource | None = None,
                 cache: XReadCache | None = None) -> None:
        if keys is None:
            _check(credentials)
        self.credentials = credentials or TwitterCredentials()
        self.keys = keys
        self.base_url = base_url.rstrip("/")
        self.clock = clock or WallClock()
        self.limiter = limiter or RateLimiter(self.clock)
        self.breaker = breaker  # None: no breaker (the engine shares one between its accounts)
        self.retry = RetryPolicy(max_attempts, backoff, max_backoff, rng or random.Random())
        self._own_http = http is None
        self.http = http or httpx2.AsyncClient(timeout=timeout)
        self._me: Account | None = None
        self._signer: tuple[TwitterCredentials, OAuth1Signer] | None = None  # built once per set of keys
        self.cache = cache  # users and tweets shared by the process's clients (None: every read is a call)

    def __repr__(self) -> str:
        return f"TwitterClient(base_url={self.base_url!r}, credentials={self.credentials!r})"

    async def connect(self) -> None:
        """Look the account's keys and base URL up again (a client built with ``keys``)."""
        if self.keys is None:
            return
        account = await self.keys()
        _check(account.credentials)
        if self.cache is not None and self.credentials.user_id:  # our username may have changed since
            self.cache.forget_user(self.base_url, self.credentials.user_id)
        self.credentials, self.base_url, self._me = account.credentials, account.base_url.rstrip("/"), None

    @property
    def account_key(self) -> str:
        """Whose rate-limit windows the calls count against: the user, or the app for bearer-only."""
        return self.credentials.user_id or f"app:{self.credentials.api_key[:8] or 'bearer'}"

    # -- transport ---------------------------------------------------------------------

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str | None:
        """The request's URL as ``build_request`` makes it, its query encoded once per call; None
        when that is not a plain join: the HTTP client has a query, cookies or a base URL of its own
        to merge in, or the path brings a query or fragment (a username with ``?``)."""
        url = self.base_url + path
        http = self.http
        if http.params or http.cookies or not url.startswith(("https://", "http://")) or "?" in url or "#" in url:
            return None
        return url + "?" + encode_query(params) if params else url

    def _build(self, method: str, path: str, params: Mapping[str, Any] | None, url: str | None, body: Any,
               user: bool) -> httpx2.Request:
        if url is None:
            request = self.http.build_request(method, self.base_url + path, params=params, json=body)
        else:
            # What build_request makes then, at a fraction of the cost: the URL string is parsed
            # once (httpx2 keeps the parse of one sent again, such as a mentions poll with an
            # unchanged cursor), not parsed, then re-parsed with the query added.
            request = httpx2.Request(method, url, headers=self.http.headers, json=body,
                                     extensions={"timeout": self.http.timeout.as_dict()})
        if user:
            # A JSON body is not signed: sign the URL (with its query) only.
            request.headers["Authorization"] = self._oauth().authorization(
                method, str(request.url), timestamp=str(int(self.clock.now())))
        else:
            request.headers["Authorization"] = f"Bearer {self.credentials.bearer_token}"
        return request

    def _oauth(self) -> OAuth1Signer:
        c = self.credentials
        if self._signer is None or self._signer[0] is not c:  # connect() may have brought new keys
            self._signer = (c, OAuth1Signer(c.api_key, c.api_secret, c.access_token, c.access_token_secret))
        return self._signer[1]

    async def _call(self, method: str, path: str, endpoint: str, *, params: Mapping[str, Any] | None = None,
                    body: Any = None, user_only: bool = False, max_wait: float | None = None) -> Any:
        """One API call with limits, retries and error translation; returns the parsed JSON body.
        ``max_wait``: the longest wait for a spent rate-limit window (default: by method)."""
        user = self.credentials.has_user_context
        if not user and not self.credentials.bearer_token:
            raise AuthError(f"{endpoint}: no X credentials yet (connect() first)", service="x")
        if user_only and not user:
            raise AuthError(f"{endpoint} needs OAuth 1.0a user credentials, not only a bearer token", service="x")
        where = endpoint
        url = self._url(path, params)
        if max_wait is None:
            max_wait = self.limiter.max_wait if method == "GET" else min(WRITE_MAX_WAIT, self.limiter.max_wait)
        ambiguous = False  # an earlier attempt may have reached X without us seeing the answer
        attempt = 0
        while True:
            attempt += 1
            if self.breaker is not None:
                self.breaker.before(where)
            with upstream("x"):  # a rate-limit window's wait is waiting on X too
                await self.limiter.acquire(self.account_key, endpoint, max_wait=max_wait)
            request = self._build(method, path, params, url, body, user)
            try:
                with upstream("x") as call:
                    response = await self.http.send(request)
                    call.status = response.status_code
                    content = await response.aread()
            except (httpx2.TimeoutException, httpx2.TransportError) as exc:
                self.limiter.release(self.account_key, endpoint, None)
                error: Exception = ServiceUnavailable(f"{where}: {type(exc).__name__}", service="x")
                retryable = ambiguous = True
                self._health(False)
            else:
                self.limiter.release(self.account_key, endpoint, response.headers, response.status_code)
                if response.status_code >= 500:
                    self._health(False)
                if response.status_code < 400:
                    try:
                        body_json = xe.parse_body(content, where, response.status_code)
                    except BadResponse as bad:
                        error, retryable, ambiguous = bad, True, True
                        self._health(False)
                    else:
                        self._health(True)
                        return body_json
                else:
                    if response.status_code < 500:
                        self._health(True)  # X is up, it refused this one call
                    error = xe.error_for(response.status_code, content, response.headers, where=where,
                                         now=self.clock.now(), posting=method == "POST" and path == "/2/tweets")
                    retryable = isinstance(error, ServiceUnavailable)
                    ambiguous = ambiguous or retryable
            if attempt >= self.retry.attempts:
                raise error
            if isinstance(error, RateLimited):
                if error.retry_after > max_wait:
                    raise error
                continue  # the limiter now knows the window is spent and waits for its reset
            if retryable:
                with upstream("x"):
                    await self.clock.sleep(self.retry.delay(attempt))
                continue
            if ambiguous and isinstance(error, DuplicateContent):
                raise _AmbiguousDuplicate(str(error).removeprefix("x: "), service="x", status=403) from error
            raise error

    def _health(self, answered: bool) -> None:
        if self.breaker is None:
            return
        if answered:
            self.breaker.answered()
        else:
            self.breaker.failed()

    # -- writing -----------------------------------------------------------------------

    async def post_tweet(self, text: str, reply_to: str | None = None, quote: str | None = None) -> Post:
        length = parse_tweet(text)
        if not length.valid:
            raise ContentRejected(f"POST /2/tweets: text is empty, invalid or too long (weighted length "
                                  f"{length.weighted_length} > 280); fit it first", service="x")
        if count_cashtags(text) > 1:
            raise ContentRejected("POST /2/tweets: X accepts at most one cashtag per post", service="x")
        payload: dict[str, Any] = {"text": text}
        if reply_to:
            payload["reply"] = {"in_reply_to_tweet_id": reply_to}
        if quote:
            payload["quote_tweet_id"] = quote
        started = self.clock.now()
        try:
            body = await self._call("POST", "/2/tweets", "POST /2/tweets", body=payload, user_only=True)
        except _AmbiguousDuplicate:
            found = await self._find_own(text, reply_to, since=started)
            if found is None:
                raise
            return found
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise BadResponse("POST /2/tweets: 2xx without data.id", service="x")
        refs = ((("replied_to", reply_to),) if reply_to else ()) + ((("quoted", quote),) if quote else ())
        post = Post(id=data["id"], text=data.get("text", text), author_id=self.credentials.user_id or None,
                    author_username=self._me.username if self._me else None, created_at=self.clock.now(),
                    referenced_tweets=refs)
        if self.cache is not None:  # a reply to it finds its parent without asking X
            self.cache.remember_own(self.base_url, post)
        return post

    async def _find_own(self, text: str, reply_to: str | None, *, since: float) -> Post | None:
        """Our unanswered attempt among our latest posts (see :func:`find_own`)."""
        return find_own(await self.get_user_tweets(limit=20), text, reply_to, since=since)

    async def delete(self, tweet_id: str) -> None:
        if self.cache is not None:
            self.cache.forget_tweet(self.base_url, tweet_id)
        try:
            await self._call("DELETE", f"/2/tweets/{tweet_id}", "DELETE /2/tweets/:id", user_only=True)
        except ContentRejected as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise

    async def like(self, tweet_id: str) -> None:
        me = await self._user_id()
        await self._call("POST", f"/2/users/{me}/likes", "likes", body={"tweet_id": tweet_id}, user_only=True)

    async def retweet(self, tweet_id: str) -> str | None:
        me = await self._user_id()
        body = await self._call("POST", f"/2/users/{me}/retweets", "retweets", body={"tweet_id": tweet_id},
                                user_only=True)
        data = body.get("data", {}) if isinstance(body, dict) else {}
        return data.get("rest_id") or data.get("id")

    # -- reading -----------------------------------------------------------------------

    async def _user_id(self) -> str:
        return self.credentials.user_id or (await self.get_me()).id

    async def get_me(self) -> Account:
        if self._me is None:
            body = await self._call("GET", "/2/users/me", "GET /2/users/me", user_only=True)
            self._me = _user_from(body, "GET /2/users/me")
            if self.cache is not None:
                self.cache.remember_user(self.base_url, self._me)
        return self._me

    def remember_me(self, account: Account) -> None:
        """Our own account as an earlier start found it (``GET /2/users/me`` is spent sparingly)."""
        if account.id == self.credentials.user_id:
            self._me = account
            if self.cache is not None:
                self.cache.remember_user(self.base_url, account)

    async def get_user(self, username: str) -> Account | None:
        """The account named ``username``, or None when X has no such user."""
        endpoint = "GET /2/users/by/username/:username"
        known = self.cache.user_by_name(self.base_url, username) if self.cache is not None else None
        if known is not None:
            return known
        body = await self._call("GET", f"/2/users/by/username/{username.lstrip('@')}", endpoint)
        if xe.not_found_only(body):
            return None
        account = _user_from(body, endpoint)
        if self.cache is not None:
            self.cache.remember_user(self.base_url, account)
        return account

    async def get_tweet(self, tweet_id: str) -> Post | None:
        known = self.cache.tweet(self.base_url, tweet_id) if self.cache is not None else None
        if known is not None:
            return known
        body = await self._call("GET", f"/2/tweets/{tweet_id}", "GET /2/tweets/:id", params=TWEET_PARAMS)
        if xe.not_found_only(body):
            return None
        post = tweet_from(body, "GET /2/tweets/:id")
        if self.cache is not None:
            self.cache.remember_tweets(self.base_url, [post])
        return post

    async def get_metrics(self, post_ids: list[str], *, max_wait: float | None = None) -> dict[str, PostMetrics]:
        """``public_metrics`` of the posts, ``GET /2/tweets?ids=`` in batches of at most 100 ids."""
        found: dict[str, PostMetrics] = {}
        for start in range(0, len(post_ids), METRICS_BATCH):
            ids = ",".join(post_ids[start:start + METRICS_BATCH])
            body = await self._call("GET", "/2/tweets", "GET /2/tweets", max_wait=max_wait,
                                    params={"ids": ids, "tweet.fields": "public_metrics"})
            found.update(metrics_from(body, "GET /2/tweets"))
        return found

    async def _timeline(self, path: str, endpoint: str, limit: int, *, token_name: str = "pagination_token",
                        params: dict[str, Any] | None = None, low: int = 5, max_pages: int = 10,
                        oldest_first: bool = False) -> list[Post]:
        """Pages of a list endpoint, newest first, until ``limit`` (or every page when ``oldest_first``)."""
        collected: list[Post] = []
        token: str | None = None
        for _ in range(max_pages):
            want = 100 if oldest_first else min(100, max(low, limit - len(collected)))
            query = {**TWEET_PARAMS, **(params or {}), "max_results": want}
            if token:
                query[token_name] = token
            body = await self._call("GET", path, endpoint, params=query)
            page, token = tweets_from(body, endpoint)
            if self.cache is not None:  # a thread's parents are often among what we just read
                self.cache.remember_tweets(self.base_url, page)
            collected.extend(page)
            if token is None or (not oldest_first and len(collected) >= limit):
                break
        if oldest_first:
            return sorted(collected, key=lambda t: int(t.id))[:limit]
        return collected[:limit]

    async def get_user_tweets(self, user_id: str | None = None, limit: int = 20) -> list[Post]:
        uid = user_id or await self._user_id()
        return await self._timeline(f"/2/users/{uid}/tweets", "GET /2/users/:id/tweets", limit)

    async def get_mentions(self, since_id: str | None = None, limit: int = 100) -> list[Post]:
        """Mentions newer than ``since_id``, oldest first.

        With ``since_id`` every page is read and the *oldest* ``limit`` are returned, so a
        cursor moved to the last one never skips any. Without it (a first poll) only the
        newest ``limit`` are read: an agent does not answer its whole history, and the
        post reads X bills stay bounded.
        """
        uid = await self._user_id()
        path, endpoint = f"/2/users/{uid}/mentions", "GET /2/users/:id/mentions"
        if since_id is None:
            newest = await self._timeline(path, endpoint, limit)
            return sorted(newest, key=lambda t: int(t.id))
        return await self._timeline(path, endpoint, limit, params={"since_id": since_id}, oldest_first=True)

    async def search_recent(self, query: str, limit: int = 10, since_id: str | None = None) -> list[Post]:
        """Recent (7-day) search, newest first, following ``next_token``."""
        params: dict[str, Any] = {"query": query}
        if since_id:
            params["since_id"] = since_id
        return await self._timeline("/2/tweets/search/recent", "GET /2/tweets/search/recent", limit,
                                    token_name="next_token", params=params, low=10)

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()


def encode_query(params: Mapping[str, Any]) -> str:
    """``params`` as httpx2 puts them in a URL (``str(httpx2.QueryParams(params))``): True and
    False as ``true``/``false``, None as empty, a list or tuple as one pair per item."""
    return urlencode([(str(k), _query_value(item)) for k, v in params.items()
                      for item in (v if isinstance(v, (list, tuple)) else (v,))])


def _query_value(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def _check(credentials: TwitterCredentials | None) -> None:
    if credentials is None or not credentials.is_set:
        raise AuthError("no X credentials: set the four OAuth 1.0a values or a bearer token", service="x")


def _user_from(body: Any, where: str) -> Account:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not {"id", "username"} <= set(data):
        raise BadResponse(f"{where}: no user in the answer", service="x")
    return Account(id=str(data["id"]), username=str(data["username"]), name=str(data.get("name", "")))
