"""What the X emulator remembers: accounts and their keys, tweets, likes, retweets.

Everything is in memory and derived from the sandbox's random source and clock, so a
seeded sandbox replays identically. :meth:`XState.snapshot` / :meth:`XState.restore`
carry it across restarts when the sandbox keeps a snapshot file.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from puppet_engine.sandbox.x import problems as px
from puppet_engine.twitter.text import count_cashtags, extract_mentions, normalize, weighted_length

TWITTER_EPOCH_MS = 1_288_834_974_657
_ALNUM = string.ascii_letters + string.digits
# Random bytes → key characters: 256 = 4 × 62 + 8, so 8 letters are a little likelier; fine for sandbox keys.
_TO_ALNUM = bytes.maketrans(bytes(range(256)), (_ALNUM * 5)[:256].encode())


@dataclass
class Account:
    """One X account with its own developer app (consumer key, bearer token)."""

    user_id: str
    username: str
    name: str
    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str
    bearer_token: str
    created_at: float

    def credentials(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("user_id", "username", "consumer_key", "consumer_secret",
                                              "access_token", "access_token_secret", "bearer_token")}


@dataclass
class StoredTweet:
    id: str
    text: str
    author_id: str
    created_at: float
    conversation_id: str
    in_reply_to_user_id: str | None = None
    referenced_tweets: list[dict[str, str]] = field(default_factory=list)
    mentioned_ids: list[str] = field(default_factory=list)
    deleted: bool = False
    like_count: int = 0
    retweet_count: int = 0
    reply_count: int = 0
    quote_count: int = 0

    def ref(self, kind: str) -> str | None:
        return next((r["id"] for r in self.referenced_tweets if r["type"] == kind), None)

    @property
    def is_retweet(self) -> bool:
        return self.ref("retweeted") is not None


@dataclass
class XRules:
    """Text and reply rules applied to every new post."""

    duplicate_window: float = 24 * 3600.0
    reply_policy: str = "summoned"  # "summoned" (self-serve tiers since Feb 2026) or "open"
    max_weight: int = 280
    delete_missing: str = "not-found"  # DELETE of a missing tweet: "not-found" (404) or "ok" (deleted: false)


class XState:
    def __init__(self, rng: random.Random, rules: XRules | None = None) -> None:
        self.rng = rng
        # Keys come from a generator of their own: issuing 10,000 accounts costs microseconds each
        # and leaves the sandbox's shared random sequence (the crowd, the market) as it was.
        self._keys = random.Random(rng.getrandbits(64))
        self.rules = rules or XRules()
        self.accounts: dict[str, Account] = {}  # by user id
        self.by_username: dict[str, str] = {}  # lower-case username → user id
        self.by_token: dict[str, str] = {}  # access token → user id
        self.by_consumer: dict[str, str] = {}  # consumer key → user id (one app per account)
        self.by_bearer: dict[str, str] = {}  # app-only bearer token → consumer key
        self.tweets: dict[str, StoredTweet] = {}  # insertion order == id order
        # Per-user indexes (ids in id order), so timelines, mention lists and duplicate checks
        # cost what one user has, not what everyone ever posted.
        self.by_author: dict[str, list[str]] = {}
        self.mentioning: dict[str, list[str]] = {}  # user id → tweets that mention (or reply to) them
        self.likes: set[tuple[str, str]] = set()
        self.retweets: dict[tuple[str, str], str] = {}  # (user id, source id) → retweet id
        self._last_id = 0
        self.listeners: list[Callable[[StoredTweet], None]] = []  # told of every new post (the stream)
        # Extra public metrics from the sandbox crowd (sandbox.audience): impressions, likes … it adds.
        self.audience: Callable[[StoredTweet], dict[str, int]] | None = None

    # -- ids and accounts --------------------------------------------------------------

    def new_id(self, now: float) -> str:
        """A snowflake: milliseconds since X's epoch << 22, strictly increasing."""
        candidate = (int(now * 1000) - TWITTER_EPOCH_MS) << 22
        self._last_id = max(candidate, self._last_id + 1)
        return str(self._last_id)

    def _secret(self, length: int) -> str:
        return self._keys.randbytes(length).translate(_TO_ALNUM).decode("ascii")

    def create_account(self, username: str, name: str | None, now: float) -> Account:
        """The account named ``username`` (created on first use, with fresh keys)."""
        existing = self.account_by_username(username)
        if existing is not None:
            return existing
        user_id = self.new_id(now)
        account = Account(
            user_id=user_id, username=username, name=name or username,
            consumer_key=self._secret(25), consumer_secret=self._secret(50),
            access_token=f"{user_id}-{self._secret(40)}", access_token_secret=self._secret(45),
            bearer_token="AAAAAAAAAAAAAAAAAAAAA" + self._secret(80), created_at=now,
        )
        self._index(account)
        return account

    def rotate_keys(self, account: Account) -> Account:
        """New keys for the account, as the developer portal's "regenerate": the old ones stop working."""
        self.by_token.pop(account.access_token, None)
        self.by_consumer.pop(account.consumer_key, None)
        self.by_bearer.pop(account.bearer_token, None)
        account.consumer_key, account.consumer_secret = self._secret(25), self._secret(50)
        account.access_token = f"{account.user_id}-{self._secret(40)}"
        account.access_token_secret = self._secret(45)
        account.bearer_token = "AAAAAAAAAAAAAAAAAAAAA" + self._secret(80)
        self._index(account)
        return account

    def _index(self, account: Account) -> None:
        self.accounts[account.user_id] = account
        self.by_username[account.username.lower()] = account.user_id
        self.by_token[account.access_token] = account.user_id
        self.by_consumer[account.consumer_key] = account.user_id
        self.by_bearer[account.bearer_token] = account.consumer_key

    def account_by_username(self, username: str) -> Account | None:
        user_id = self.by_username.get(username.lower().lstrip("@"))
        return self.accounts.get(user_id) if user_id else None

    # -- tweets ------------------------------------------------------------------------

    def visible(self, tweet_id: str) -> StoredTweet | None:
        tweet = self.tweets.get(tweet_id)
        return tweet if tweet is not None and not tweet.deleted else None

    def timeline(self) -> list[StoredTweet]:
        """Every visible tweet, newest first."""
        return [t for t in reversed(self.tweets.values()) if not t.deleted]

    def tweets_by(self, user_id: str) -> list[StoredTweet]:
        """The user's visible tweets (retweets too), newest first."""
        return self._newest_first(self.by_author.get(user_id, ()))

    def mentions_of(self, user_id: str) -> list[StoredTweet]:
        """Visible tweets that mention (or reply to) the user, newest first."""
        return self._newest_first(self.mentioning.get(user_id, ()))

    def _newest_first(self, ids: Sequence[str]) -> list[StoredTweet]:
        return [t for i in reversed(ids) if not (t := self.tweets[i]).deleted]

    def _store(self, tweet: StoredTweet) -> None:
        self.tweets[tweet.id] = tweet
        self.by_author.setdefault(tweet.author_id, []).append(tweet.id)
        for user_id in tweet.mentioned_ids:
            self.mentioning.setdefault(user_id, []).append(tweet.id)

    def create_tweet(self, author: Account, text: str, now: float, *, reply_to: str | None = None,
                     quote: str | None = None, enforce_reply_policy: bool = True) -> StoredTweet:
        """Apply X's rules to a new post and store it; raises :class:`XError` like X would."""
        if not isinstance(text, str) or not text.strip():
            raise px.invalid_request("Post text is empty or missing.")
        if weighted_length(text) > self.rules.max_weight:
            raise px.invalid_request(px.TOO_LONG)
        if count_cashtags(text) > 1:
            raise px.forbidden(px.TOO_MANY_CASHTAGS)
        parent = None
        if reply_to is not None:
            parent = self.visible(reply_to)
            if parent is None:
                raise px.forbidden(px.REPLY_MISSING)
            if enforce_reply_policy and not self._may_reply(author, parent):
                raise px.forbidden(px.REPLY_NOT_SUMMONED)
        quoted = None
        if quote is not None:
            quoted = self.visible(quote)
            if quoted is None:
                raise px.forbidden("You attempted to quote a Tweet that is deleted or not visible to you.")
        if self.is_duplicate(author.user_id, text, now):
            raise px.forbidden(px.DUPLICATE)
        tweet_id = self.new_id(now)
        refs = []
        if parent is not None:
            refs.append({"type": "replied_to", "id": parent.id})
            parent.reply_count += 1
        if quoted is not None:
            refs.append({"type": "quoted", "id": quoted.id})
            quoted.quote_count += 1
        mentioned = [a.user_id for name in extract_mentions(text) if (a := self.account_by_username(name))]
        if parent is not None and parent.author_id != author.user_id:
            mentioned.insert(0, parent.author_id)  # a reply notifies the parent's author
        tweet = StoredTweet(
            id=tweet_id, text=text, author_id=author.user_id, created_at=now,
            conversation_id=parent.conversation_id if parent else tweet_id,
            in_reply_to_user_id=parent.author_id if parent else None, referenced_tweets=refs,
            mentioned_ids=list(dict.fromkeys(m for m in mentioned if m != author.user_id)),
        )
        self._store(tweet)
        for listener in self.listeners:
            listener(tweet)
        return tweet

    def _may_reply(self, author: Account, parent: StoredTweet) -> bool:
        """Self-serve rule: the parent's author mentioned (or replied to) or quoted the replier."""
        if self.rules.reply_policy == "open" or parent.author_id == author.user_id:
            return True
        if author.user_id in parent.mentioned_ids:
            return True
        return any(
            (q := t.ref("quoted")) is not None
            and (src := self.tweets.get(q)) is not None and src.author_id == author.user_id
            for t in (self.tweets[i] for i in self.by_author.get(parent.author_id, ()))
        )

    def is_duplicate(self, author_id: str, text: str, now: float) -> bool:
        wanted = normalize(text).strip()
        since = now - self.rules.duplicate_window
        for tweet_id in reversed(self.by_author.get(author_id, ())):
            tweet = self.tweets[tweet_id]
            if tweet.created_at < since:
                break
            if not tweet.deleted and not tweet.is_retweet and normalize(tweet.text).strip() == wanted:
                return True
        return False

    def delete_tweet(self, tweet: StoredTweet) -> None:
        tweet.deleted = True
        for ref in tweet.referenced_tweets:
            target = self.tweets.get(ref["id"])
            if target is None:
                continue
            if ref["type"] == "replied_to":
                target.reply_count = max(0, target.reply_count - 1)
            elif ref["type"] == "quoted":
                target.quote_count = max(0, target.quote_count - 1)
            elif ref["type"] == "retweeted":
                target.retweet_count = max(0, target.retweet_count - 1)
                self.retweets.pop((tweet.author_id, target.id), None)

    def public_metrics(self, tweet: StoredTweet) -> dict[str, int]:
        """X's ``public_metrics``: what accounts here did, plus what the sandbox crowd did."""
        extra = self.audience(tweet) if self.audience is not None else {}
        own = {"retweet_count": tweet.retweet_count, "reply_count": tweet.reply_count,
               "like_count": tweet.like_count, "quote_count": tweet.quote_count, "bookmark_count": 0,
               "impression_count": 0}
        return {name: count + int(extra.get(name, 0)) for name, count in own.items()}

    # -- likes and retweets ------------------------------------------------------------

    def like(self, user_id: str, tweet: StoredTweet) -> None:
        if (user_id, tweet.id) not in self.likes:
            self.likes.add((user_id, tweet.id))
            tweet.like_count += 1

    def unlike(self, user_id: str, tweet_id: str) -> None:
        if (user_id, tweet_id) in self.likes:
            self.likes.discard((user_id, tweet_id))
            if tweet_id in self.tweets:
                self.tweets[tweet_id].like_count -= 1

    def retweet(self, user: Account, source: StoredTweet, now: float) -> StoredTweet:
        existing = self.retweets.get((user.user_id, source.id))
        if existing is not None and self.visible(existing):
            return self.tweets[existing]
        author = self.accounts[source.author_id]
        tweet_id = self.new_id(now)
        tweet = StoredTweet(id=tweet_id, text=f"RT @{author.username}: {source.text}", author_id=user.user_id,
                            created_at=now, conversation_id=tweet_id,
                            referenced_tweets=[{"type": "retweeted", "id": source.id}])
        self._store(tweet)
        self.retweets[(user.user_id, source.id)] = tweet_id
        source.retweet_count += 1
        return tweet

    def unretweet(self, user_id: str, source_id: str) -> None:
        retweet_id = self.retweets.get((user_id, source_id))
        if retweet_id is not None and self.visible(retweet_id):
            self.delete_tweet(self.tweets[retweet_id])

    # -- snapshot ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "accounts": [asdict(a) for a in self.accounts.values()],
            "tweets": [asdict(t) for t in self.tweets.values()],
            "likes": sorted(list(pair) for pair in self.likes),
            "retweets": [[u, s, r] for (u, s), r in self.retweets.items()],
            "last_id": self._last_id,
        }

    def restore(self, data: dict[str, Any]) -> None:
        listeners, audience = self.listeners, self.audience
        self.__init__(self.rng, self.rules)  # type: ignore[misc]
        self.listeners, self.audience = listeners, audience
        for raw in data.get("accounts", []):
            self._index(Account(**raw))
        for raw in data.get("tweets", []):
            self._store(StoredTweet(**raw))
        self.likes = {(u, t) for u, t in data.get("likes", [])}
        self.retweets = {(u, s): r for u, s, r in data.get("retweets", [])}
        self._last_id = int(data.get("last_id", 0))
