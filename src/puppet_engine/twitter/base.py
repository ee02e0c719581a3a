"""The social seam: what behaviours and the outbox need from X.

:class:`~puppet_engine.twitter.client.TwitterClient` implements it over the X API
v2; :class:`~puppet_engine.twitter.dryrun.DryRunClient` only records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tweet:
    """A post as the engine sees it (a subset of X's tweet object)."""

    id: str
    text: str
    author_id: str | None = None
    author_username: str | None = None
    created_at: float | None = None  # epoch seconds
    conversation_id: str | None = None
    in_reply_to_user_id: str | None = None
    referenced_tweets: tuple[tuple[str, str], ...] = ()  # (type, id): replied_to, quoted, retweeted

    @property
    def replied_to(self) -> str | None:
        return next((i for t, i in self.referenced_tweets if t == "replied_to"), None)

    @property
    def quoted(self) -> str | None:
        return next((i for t, i in self.referenced_tweets if t == "quoted"), None)


@dataclass(frozen=True)
class User:
    id: str
    username: str
    name: str = ""


@dataclass
class Page:
    tweets: list[Tweet] = field(default_factory=list)
    newest_id: str | None = None
    next_token: str | None = None


class SocialClient(ABC):
    """One agent's account on X. Raises ``ProviderError`` subclasses on failure."""

    @abstractmethod
    async def post_tweet(self, text: str, reply_to: str | None = None, quote: str | None = None) -> Tweet:
        """Publish a post (or a reply / quote); returns it with its id."""

    @abstractmethod
    async def get_me(self) -> User:
        """The authenticated account."""

    @abstractmethod
    async def get_user_tweets(self, user_id: str | None = None, limit: int = 20) -> list[Tweet]:
        """Recent posts of ``user_id`` (default: this account), newest first."""

    async def get_mentions(self, since_id: str | None = None, limit: int = 100) -> list[Tweet]:
        """Mentions newer than ``since_id``, oldest first, following pagination."""
        raise NotImplementedError

    async def post_thread(self, texts: list[str], reply_to: str | None = None) -> list[Tweet]:
        posted: list[Tweet] = []
        parent = reply_to
        for text in texts:
            tweet = await self.post_tweet(text, reply_to=parent)
            posted.append(tweet)
            parent = tweet.id
        return posted

    async def like(self, tweet_id: str) -> None:
        raise NotImplementedError

    async def retweet(self, tweet_id: str) -> str | None:
        raise NotImplementedError

    async def delete(self, tweet_id: str) -> None:
        raise NotImplementedError

    async def get_tweet(self, tweet_id: str) -> Tweet | None:
        raise NotImplementedError

    async def get_conversation(self, tweet: Tweet, depth: int = 5) -> list[Tweet]:
        """The thread above ``tweet`` (oldest first, ``tweet`` last), up to ``depth`` parents."""
        chain = [tweet]
        current = tweet
        while current.replied_to and len(chain) <= depth:
            parent = await self.get_tweet(current.replied_to)
            if parent is None:
                break
            chain.append(parent)
            current = parent
        return list(reversed(chain))

    async def aclose(self) -> None:  # noqa: B027 - nothing to release by default
        """Release HTTP clients."""
