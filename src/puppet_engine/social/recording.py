"""A social client wrapper that records what an event read (mentions, threads, tweets) for replay.

Reads are noted in the event being recorded (:mod:`puppet_engine.events.recording`);
writes pass through untouched (the outbox keeps them). Anything else the inner client
has (its credentials, its rate limiter) is reached through it.
"""

from __future__ import annotations

from typing import Any

from puppet_engine.errors import ProviderError
from puppet_engine.events.recording import capturing, note
from puppet_engine.social.base import Account, Post, SocialClient


def post_json(post: Post) -> dict[str, Any]:
    return {"id": post.id, "text": post.text, "author_id": post.author_id, "author_username": post.author_username,
            "created_at": post.created_at, "conversation_id": post.conversation_id,
            "in_reply_to_user_id": post.in_reply_to_user_id, "referenced_tweets": [list(r) for r in post.referenced_tweets]}


def post_from_json(p: dict[str, Any]) -> Post:
    return Post(id=str(p["id"]), text=p["text"], author_id=p.get("author_id"), author_username=p.get("author_username"),
                created_at=p.get("created_at"), conversation_id=p.get("conversation_id"),
                in_reply_to_user_id=p.get("in_reply_to_user_id"),
                referenced_tweets=tuple((str(t), str(i)) for t, i in p.get("referenced_tweets", [])))


def note_peer_posts(peers: list[tuple[str, str | None, str | None]], posted: dict[str, list[Post]]) -> None:
    """Record which peers (agent id, user id, username) an interaction round read, and their posts."""
    if capturing():
        note("read", {"what": "peer_posts", "peers": [list(p) for p in peers],
                      "posted": {a: [post_json(p) for p in posts] for a, posts in posted.items()}})


class RecordingSocial(SocialClient):
    """Delegates to ``inner``; its reads are recorded while an event is."""

    def __init__(self, inner: SocialClient) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @staticmethod
    def _note(what: str, args: dict[str, Any], posts: list[Post]) -> None:
        note("read", {"what": what, "args": args, "posts": [post_json(p) for p in posts]})

    async def connect(self) -> None:
        await self.inner.connect()

    async def post_tweet(self, text: str, reply_to: str | None = None, quote: str | None = None) -> Post:
        return await self.inner.post_tweet(text, reply_to=reply_to, quote=quote)

    async def post_thread(self, texts: list[str], reply_to: str | None = None) -> list[Post]:
        return await self.inner.post_thread(texts, reply_to=reply_to)

    async def get_me(self) -> Account:
        return await self.inner.get_me()

    async def get_user_tweets(self, user_id: str | None = None, limit: int = 20) -> list[Post]:
        posts = await self.inner.get_user_tweets(user_id, limit)
        if capturing():
            self._note("user_tweets", {"user_id": user_id, "limit": limit}, posts)
        return posts

    async def get_mentions(self, since_id: str | None = None, limit: int = 100) -> list[Post]:
        try:
            posts = await self.inner.get_mentions(since_id=since_id, limit=limit)
        except ProviderError as exc:  # X down or limited: the decision saw that too
            if capturing():
                note("read", {"what": "mentions", "error": {"type": exc.__class__.__name__, "message": str(exc)}})
            raise
        if capturing():
            self._note("mentions", {"since_id": since_id, "limit": limit}, posts)
        return posts

    async def get_tweet(self, tweet_id: str) -> Post | None:
        post = await self.inner.get_tweet(tweet_id)
        if capturing():
            self._note("tweet", {"id": tweet_id}, [post] if post is not None else [])
        return post

    async def get_conversation(self, tweet: Post, depth: int = 5) -> list[Post]:
        try:
            posts = await self.inner.get_conversation(tweet, depth=depth)
        except (ProviderError, NotImplementedError) as exc:
            if capturing():
                note("read", {"what": "conversation", "error": {"type": exc.__class__.__name__, "message": str(exc)}})
            raise
        if capturing():
            self._note("conversation", {"id": tweet.id, "depth": depth}, posts)
        return posts

    async def like(self, tweet_id: str) -> None:
        await self.inner.like(tweet_id)

    async def retweet(self, tweet_id: str) -> str | None:
        return await self.inner.retweet(tweet_id)

    async def delete(self, tweet_id: str) -> None:
        await self.inner.delete(tweet_id)

    async def aclose(self) -> None:
        await self.inner.aclose()
