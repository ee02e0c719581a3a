"""The social seam: what behaviours and the outbox need from a social network.

:class:`~puppet_engine.twitter.client.TwitterClient` implements it over the X API
v2; :class:`~puppet_engine.social.dryrun.DryRunClient` only records. The types are
the network's common ground: a :class:`Post` (a tweet on X), the :class:`Account`
that wrote it; a mention is a :class:`Post` naming the agent's account.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

CLOCK_SKEW = 5.0  # seconds a network's timestamps may run behind ours


@dataclass(frozen=True)
class Post:
    """A post as the engine sees it (on X: a subset of the tweet object)."""

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
class Account:
    """An account on the network: its id there and its handle."""

    id: str
    username: str
    name: str = ""


@dataclass(frozen=True)
class PostMetrics:
    """A post's public engagement counts at one moment (X's ``public_metrics``).

    ``impressions`` is None where the network (or the access level) does not give it.
    """

    likes: int = 0
    replies: int = 0
    reposts: int = 0
    quotes: int = 0
    bookmarks: int = 0
    impressions: int | None = None

    @property
    def interactions(self) -> int:
        return self.likes + self.replies + self.reposts + self.quotes + self.bookmarks


def find_own(posts: list[Post], text: str, reply_to: str | None, *, since: float) -> Post | None:
    """The post an earlier, unanswered attempt published: same text and parent, and not older
    than the attempt (``since``, less :data:`CLOCK_SKEW`). An older post with the same words is
    another action's, e.g. what made the network refuse a duplicate."""
    for post in posts:
        if post.created_at is not None and post.created_at < since - CLOCK_SKEW:
            continue
        if post.text.strip() == text.strip() and (reply_to is None or post.replied_to == reply_to):
            return post
    return None


class SocialClient(ABC):
    """One agent's account on a social network. Raises ``ProviderError`` subclasses on failure.

    A client is built unconnected (no network call); :meth:`connect` readies it before the
    agent starts, and again when a failed start is retried.
    """

    async def connect(self) -> None:  # noqa: B027 - nothing to prepare by default
        """Get ready to call the network (look up keys, open the account). No call before it."""

    @abstractmethod
    async def post_tweet(self, text: str, reply_to: str | None = None, quote: str | None = None) -> Post:
        """Publish a post (or a reply / quote); returns it with its id."""

    @abstractmethod
    async def get_me(self) -> Account:
        """The authenticated account."""

    @abstractmethod
    async def get_user_tweets(self, user_id: str | None = None, limit: int = 20) -> list[Post]:
        """Recent posts of ``user_id`` (default: this account), newest first."""

    async def get_mentions(self, since_id: str | None = None, limit: int = 100) -> list[Post]:
        """Mentions newer than ``since_id``, oldest first, following pagination."""
        raise NotImplementedError

    async def post_thread(self, texts: list[str], reply_to: str | None = None) -> list[Post]:
        posted: list[Post] = []
        parent = reply_to
        for text in texts:
            post = await self.post_tweet(text, reply_to=parent)
            posted.append(post)
            parent = post.id
        return posted

    async def like(self, tweet_id: str) -> None:
        raise NotImplementedError

    async def retweet(self, tweet_id: str) -> str | None:
        raise NotImplementedError

    async def delete(self, tweet_id: str) -> None:
        raise NotImplementedError

    async def get_tweet(self, tweet_id: str) -> Post | None:
        raise NotImplementedError

    async def get_metrics(self, post_ids: list[str], *, max_wait: float | None = None) -> dict[str, PostMetrics]:
        """Public metrics of these posts now, by id (posts gone or not visible are left out).
        Waits at most ``max_wait`` seconds for a rate-limit window, else raises ``RateLimited``."""
        raise NotImplementedError

    async def get_conversation(self, tweet: Post, depth: int = 5) -> list[Post]:
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
