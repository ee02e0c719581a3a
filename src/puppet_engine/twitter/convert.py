"""X API v2 JSON → :class:`~puppet_engine.social.base.Post`, validating as it goes."""

from __future__ import annotations

import calendar
import re
from typing import Any

from puppet_engine.errors import BadResponse
from puppet_engine.social.base import Post, PostMetrics

TWEET_FIELDS = "author_id,created_at,conversation_id,in_reply_to_user_id,referenced_tweets"
TWEET_PARAMS: dict[str, Any] = {"tweet.fields": TWEET_FIELDS, "expansions": "author_id"}
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z")


def parse_time(value: Any) -> float | None:
    """``2021-01-06T18:40:40.000Z`` → epoch seconds (None when absent or malformed)."""
    match = _ISO.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    *parts, fraction = match.groups()
    seconds = calendar.timegm((*(int(p) for p in parts), 0, 0, 0))
    return seconds + (float(f"0.{fraction}") if fraction else 0.0)


def _usernames(body: dict[str, Any]) -> dict[str, str]:
    users = (body.get("includes") or {}).get("users") or []
    return {str(u["id"]): str(u["username"]) for u in users if isinstance(u, dict) and "id" in u and "username" in u}


def _tweet(data: Any, names: dict[str, str], where: str) -> Post:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(data.get("text"), str):
        raise BadResponse(f"{where}: a tweet without id or text", service="x")
    refs = tuple((str(r.get("type")), str(r.get("id"))) for r in data.get("referenced_tweets") or []
                 if isinstance(r, dict))
    author = data.get("author_id")
    return Post(id=data["id"], text=data["text"], author_id=author, author_username=names.get(author or ""),
                created_at=parse_time(data.get("created_at")), conversation_id=data.get("conversation_id"),
                in_reply_to_user_id=data.get("in_reply_to_user_id"), referenced_tweets=refs)


def tweet_from(body: Any, where: str) -> Post:
    """The tweet of a single-tweet answer (``{"data": {...}, "includes": ...}``)."""
    if not isinstance(body, dict):
        raise BadResponse(f"{where}: expected a JSON object", service="x")
    return _tweet(body.get("data"), _usernames(body), where)


def tweets_from(body: Any, where: str) -> tuple[list[Post], str | None]:
    """A list answer's tweets (newest first, as sent) and its ``meta.next_token``."""
    if not isinstance(body, dict) or not isinstance(body.get("meta", {}), dict):
        raise BadResponse(f"{where}: expected a list answer with meta", service="x")
    data = body.get("data", [])
    if not isinstance(data, list):
        raise BadResponse(f"{where}: data is not a list", service="x")
    names = _usernames(body)
    token = body.get("meta", {}).get("next_token")
    return [_tweet(item, names, where) for item in data], token if isinstance(token, str) else None


METRIC_NAMES = {"likes": "like_count", "replies": "reply_count", "reposts": "retweet_count",
                "quotes": "quote_count", "bookmarks": "bookmark_count", "impressions": "impression_count"}


def metrics_from(body: Any, where: str) -> dict[str, PostMetrics]:
    """``public_metrics`` of each tweet of a ``GET /2/tweets?ids=`` answer, by id (missing ones
    come back in ``errors`` and are left out)."""
    data = body.get("data", []) if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise BadResponse(f"{where}: data is not a list", service="x")
    found: dict[str, PostMetrics] = {}
    for item in data:
        metrics = item.get("public_metrics") if isinstance(item, dict) else None
        if not isinstance(metrics, dict) or not isinstance(item.get("id"), str):
            raise BadResponse(f"{where}: a tweet without id or public_metrics", service="x")
        counts: dict[str, int] = {}
        for name, field in METRIC_NAMES.items():
            count = metrics.get(field)
            if isinstance(count, int) and count >= 0:
                counts[name] = count
            elif name != "impressions":  # impressions may be absent (older answers, some access levels)
                raise BadResponse(f"{where}: public_metrics.{field} of {item['id']} is not a count", service="x")
        found[item["id"]] = PostMetrics(**counts)
    return found
