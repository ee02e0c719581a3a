"""A social client that publishes nothing: it records and logs what would be posted."""

from __future__ import annotations

import itertools

import structlog

from puppet_engine.clock import Clock, WallClock
from puppet_engine.errors import DuplicateContent
from puppet_engine.social.base import Account, Post, SocialClient

log = structlog.get_logger("puppet_engine.social.dryrun")
_ids = itertools.count(1)


class DryRunClient(SocialClient):
    """Keeps posts in memory (the outbox keeps them in the database) and logs each one."""

    def __init__(self, username: str, user_id: str | None = None, clock: Clock | None = None) -> None:
        self.user = Account(id=user_id or f"dry-{username}", username=username, name=username)
        self.clock = clock or WallClock()
        self.posted: list[Post] = []
        self.likes: list[str] = []
        self.retweets: list[str] = []

    async def post_tweet(self, text: str, reply_to: str | None = None, quote: str | None = None) -> Post:
        if any(t.text == text for t in self.posted[-50:]):
            raise DuplicateContent("You are not allowed to create a Tweet with duplicate content.", service="x",
                                   status=403)
        refs: tuple[tuple[str, str], ...] = ()
        if reply_to:
            refs += (("replied_to", reply_to),)
        if quote:
            refs += (("quoted", quote),)
        tweet = Post(id=f"dry{next(_ids)}", text=text, author_id=self.user.id, author_username=self.user.username,
                     created_at=self.clock.now(), referenced_tweets=refs)
        self.posted.append(tweet)
        log.info("dry_run_post", username=self.user.username, text=text, reply_to=reply_to, quote=quote)
        return tweet

    async def get_me(self) -> Account:
        return self.user

    async def get_user_tweets(self, user_id: str | None = None, limit: int = 20) -> list[Post]:
        if user_id not in (None, self.user.id):
            return []
        return list(reversed(self.posted))[:limit]

    async def get_mentions(self, since_id: str | None = None, limit: int = 100) -> list[Post]:
        return []

    async def get_tweet(self, tweet_id: str) -> Post | None:
        return next((t for t in self.posted if t.id == tweet_id), None)

    async def like(self, tweet_id: str) -> None:
        self.likes.append(tweet_id)

    async def retweet(self, tweet_id: str) -> str | None:
        self.retweets.append(tweet_id)
        return None
