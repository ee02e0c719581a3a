"""Outbox executors for social side effects (post, reply, quote, thread, like, retweet)."""

from __future__ import annotations

from puppet_engine.errors import ProviderError
from puppet_engine.events import Action, ActionExecutor, ActionOutcome
from puppet_engine.social.base import Post, SocialClient, find_own

SOCIAL_KINDS = frozenset({"post", "reply", "quote", "thread", "like", "retweet"})


class SocialExecutor(ActionExecutor):
    """Sends one agent's social actions through its :class:`SocialClient`."""

    def __init__(self, client: SocialClient, *, reconcile_window: int = 100) -> None:
        self.client = client
        self.reconcile_window = reconcile_window

    async def execute(self, action: Action) -> ActionOutcome:
        p = action.payload
        if action.kind in ("post", "reply", "quote"):
            tweet = await self.client.post_tweet(p["text"], reply_to=p.get("reply_to"), quote=p.get("quote"))
            return ActionOutcome(external_id=tweet.id, result={"text": tweet.text})
        if action.kind == "thread":
            return await self._thread(action)
        if action.kind == "like":
            await self.client.like(p["tweet_id"])
            return ActionOutcome(external_id=p["tweet_id"])
        if action.kind == "retweet":
            rt = await self.client.retweet(p["tweet_id"])
            return ActionOutcome(external_id=rt or p["tweet_id"])
        raise ProviderError(f"unknown social action kind {action.kind!r}", service="x")

    async def _thread(self, action: Action) -> ActionOutcome:
        parts: list[str] = action.payload["parts"]
        # Parts already posted (from an interrupted earlier attempt) are found, not re-sent.
        done = action.result.get("posted", []) if action.result else []
        recent = await self._recent()
        ids: list[str] = list(done)
        parent = ids[-1] if ids else action.payload.get("reply_to")
        for text in parts[len(ids):]:
            existing = find_own(recent, text, parent, since=action.created_at)
            tweet = existing or await self.client.post_tweet(text, reply_to=parent)
            ids.append(tweet.id)
            parent = tweet.id
        return ActionOutcome(external_id=ids[0], result={"posted": ids, "text": "\n".join(parts)})

    async def reconcile(self, action: Action) -> ActionOutcome | None:
        if action.kind not in ("post", "reply", "quote", "thread"):
            return None  # likes and retweets are idempotent on X: sending again is harmless
        recent = await self._recent()
        if action.kind == "thread":
            first = find_own(recent, action.payload["parts"][0], action.payload.get("reply_to"), since=action.created_at)
            if first is None:
                return None
            return await self._thread(action)  # finishes the missing parts only
        found = find_own(recent, action.payload["text"], action.payload.get("reply_to"), since=action.created_at)
        return ActionOutcome(external_id=found.id, result={"text": found.text}) if found else None

    async def _recent(self) -> list[Post]:
        return await self.client.get_user_tweets(limit=self.reconcile_window)

