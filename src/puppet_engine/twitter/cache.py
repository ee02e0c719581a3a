"""Reads from X that every agent of the process shares: users (id ↔ username) and tweets.

One :class:`XReadCache` per engine process, handed to every agent's
:class:`~puppet_engine.twitter.client.TwitterClient`: a user or a tweet looked up by one
agent serves the others. Keys carry the API's base URL, so the sandbox's accounts never
answer for X's. What the clients write themselves is applied here at once: a post we
publish is stored (a reply to it finds its parent without a call), a post we delete is
forgotten, and our own account is read again when its client connects (a username
changed between starts).

Why these lifetimes (``docs/caching.md``):

- **Users, 6 hours.** An id never changes; a username changes only when its owner renames
  the account, which is rare, and a stale one only mislabels a handle in a prompt.
- **Tweets, 1 hour.** A tweet's text never changes under its id (an edit on X is a new
  id); it can be deleted, and a deleted parent may then appear in a thread's context
  for at most an hour. Thread context is read for every mention of a thread, so the
  same parents are asked for again and again within minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from puppet_engine.caching import Counter, ReadCache
from puppet_engine.social.base import Account, Post

USER_TTL_SECONDS = 6 * 3600.0
TWEET_TTL_SECONDS = 3600.0
MAX_USERS = 20_000  # per direction: ~200 B each
MAX_TWEETS = 20_000  # ~1 KB each: ~20 MB at most


class XReadCache:
    """Users by id and by username, and tweets by id, for one process (bounded, expiring)."""

    def __init__(self, timer: Callable[[], float], counter: Counter | None = None, *, enabled: bool = True,
                 max_users: int = MAX_USERS, max_tweets: int = MAX_TWEETS) -> None:
        self.users_by_id: ReadCache[tuple[str, str], Account] = ReadCache(
            "x_user_by_id", maxsize=max_users, ttl=USER_TTL_SECONDS, timer=timer, counter=counter, enabled=enabled)
        self.users_by_name: ReadCache[tuple[str, str], Account] = ReadCache(
            "x_user_by_username", maxsize=max_users, ttl=USER_TTL_SECONDS, timer=timer, counter=counter,
            enabled=enabled)
        self.tweets: ReadCache[tuple[str, str], Post] = ReadCache(
            "x_tweet", maxsize=max_tweets, ttl=TWEET_TTL_SECONDS, timer=timer, counter=counter, enabled=enabled)

    # -- users ------------------------------------------------------------------------

    def user_by_name(self, base: str, username: str) -> Account | None:
        return self.users_by_name.get((base, username.lstrip("@").lower()))

    def user_by_id(self, base: str, user_id: str) -> Account | None:
        return self.users_by_id.get((base, user_id))

    def remember_user(self, base: str, account: Account) -> None:
        """Store both directions; a username the id had before is forgotten (a rename)."""
        earlier = self.users_by_id.peek((base, account.id))
        if earlier is not None and earlier.username.lower() != account.username.lower():
            self.users_by_name.pop((base, earlier.username.lower()))
        self.users_by_id.put((base, account.id), account)
        self.users_by_name.put((base, account.username.lower()), account)

    def forget_user(self, base: str, user_id: str) -> None:
        earlier = self.users_by_id.peek((base, user_id))
        if earlier is not None:
            self.users_by_name.pop((base, earlier.username.lower()))
        self.users_by_id.pop((base, user_id))

    # -- tweets -----------------------------------------------------------------------

    def tweet(self, base: str, tweet_id: str) -> Post | None:
        return self.tweets.get((base, tweet_id))

    def remember_tweets(self, base: str, posts: Iterable[Post]) -> None:
        """Store tweets (and their authors, when the answer named them)."""
        for post in posts:
            self.tweets.put((base, post.id), post)
            if post.author_id and post.author_username:
                known = self.users_by_id.peek((base, post.author_id))
                if known is None or known.username != post.author_username:
                    self.remember_user(base, Account(post.author_id, post.author_username))

    def remember_own(self, base: str, post: Post) -> None:
        """Store a post we just published, completed as X would answer for it (our username,
        its conversation); when that cannot be known here, it is left to the next read."""
        author = self.users_by_id.peek((base, post.author_id)) if post.author_id else None
        parent = self.tweets.peek((base, post.replied_to)) if post.replied_to else None
        conversation = parent.conversation_id if parent is not None else None if post.replied_to else post.id
        if author is None or conversation is None:
            return
        self.tweets.put((base, post.id), replace(post, author_username=author.username,
                                                 conversation_id=conversation))

    def forget_tweet(self, base: str, tweet_id: str) -> None:
        self.tweets.pop((base, tweet_id))
