"""What an event read from its social network (mentions, threads, peers' posts, metrics), recorded for replay.

The behaviours call these right after a read; each adds a record to the event being
recorded (:mod:`puppet_engine.events.recording`), and does nothing outside one. Writes are
not recorded here: the outbox keeps them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from puppet_engine.events.recording import capturing, note
from puppet_engine.social.base import Post, PostMetrics


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


def note_posts(what: str, args: dict[str, Any], posts: list[Post]) -> None:
    """Record posts an event read from the network (``mentions``, ``conversation``)."""
    if capturing():
        note("read", {"what": what, "args": args, "posts": [post_json(p) for p in posts]})


def note_read_error(what: str, exc: Exception) -> None:
    """Record that a read failed (the decision saw that too)."""
    if capturing():
        note("read", {"what": what, "error": {"type": exc.__class__.__name__, "message": str(exc)}})


def note_metrics(post_ids: list[str], found: dict[str, PostMetrics] | None = None, *,
                 error: Exception | None = None) -> None:
    """Record a metrics lookup (``engagement.sample``): the counts found, or how it failed
    (``unsupported`` when the network gives no metrics, the wait asked when rate limited)."""
    if not capturing():
        return
    body: dict[str, Any] = {"what": "metrics", "ids": list(post_ids)}
    if isinstance(error, NotImplementedError):
        body["unsupported"] = True
    elif error is not None:
        body["error"] = {"type": error.__class__.__name__, "message": str(error),
                         "retry_after": getattr(error, "retry_after", None)}
    else:
        body["metrics"] = {pid: dataclasses.asdict(m) for pid, m in (found or {}).items()}
    note("read", body)


def metrics_from_json(data: dict[str, Any]) -> dict[str, PostMetrics]:
    return {str(pid): PostMetrics(**m) for pid, m in data.items()}


def note_stream_covered(newest: str | None) -> None:
    """Record that a mentions poll was covered by the stream (no X call) and the newest id it knew."""
    if capturing():
        note("read", {"what": "mention_stream", "covered": True, "newest": newest})
