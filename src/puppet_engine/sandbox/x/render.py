"""Tweet and user objects, field selection, expansions and list responses as X shapes them."""

from __future__ import annotations

import base64
import binascii
import calendar
import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from puppet_engine.sandbox.x import problems as px
from puppet_engine.sandbox.x.state import Account, StoredTweet, XState
from puppet_engine.twitter import _patterns

ID = re.compile(r"^[0-9]{1,19}$")
TWEET_FIELDS = {"attachments", "author_id", "context_annotations", "conversation_id", "created_at",
                "edit_controls", "edit_history_tweet_ids", "entities", "geo", "id", "in_reply_to_user_id",
                "lang", "note_tweet", "possibly_sensitive", "public_metrics", "referenced_tweets",
                "reply_settings", "source", "text", "withheld"}
USER_FIELDS = {"created_at", "description", "id", "name", "protected", "public_metrics", "username", "verified",
               "location", "url", "profile_image_url", "pinned_tweet_id", "entities", "withheld"}
EXPANSIONS = {"author_id", "referenced_tweets.id", "referenced_tweets.id.author_id", "in_reply_to_user_id",
              "entities.mentions.username", "attachments.media_keys", "attachments.poll_ids", "geo.place_id",
              "edit_history_tweet_ids", "pinned_tweet_id"}


def iso(epoch: float) -> str:
    ms = round(epoch * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def _csv(params: QueryParams, *names: str, allowed: set[str]) -> set[str]:
    for name in names:
        raw = params.get(name)
        if raw is None:
            continue
        values = {v.strip() for v in raw.split(",") if v.strip()}
        bad = sorted(values - allowed)
        if bad:
            raise px.bad_parameter(name, raw, f"The `{name}` query parameter value [{bad[0]}] is not one of "
                                              f"[{','.join(sorted(allowed))}]")
        return values
    return set()


@dataclass
class Fields:
    """What the caller asked to see: ``tweet.fields`` (or ``post.fields``), ``user.fields``, ``expansions``."""

    tweet: set[str]
    user: set[str]
    expansions: set[str]

    @classmethod
    def parse(cls, params: QueryParams) -> Fields:
        return cls(tweet=_csv(params, "tweet.fields", "post.fields", allowed=TWEET_FIELDS),
                   user=_csv(params, "user.fields", allowed=USER_FIELDS),
                   expansions=_csv(params, "expansions", allowed=EXPANSIONS))


def full_fields() -> Fields:
    """Every field the emulator knows (the admin view)."""
    return Fields(tweet=set(TWEET_FIELDS), user={"created_at", "description", "public_metrics"}, expansions=set())


def tweet_object(state: XState, tweet: StoredTweet, fields: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}
    if "author_id" in fields:
        out["author_id"] = tweet.author_id
    if "created_at" in fields:
        out["created_at"] = iso(tweet.created_at)
    if "conversation_id" in fields:
        out["conversation_id"] = tweet.conversation_id
    if "in_reply_to_user_id" in fields and tweet.in_reply_to_user_id:
        out["in_reply_to_user_id"] = tweet.in_reply_to_user_id
    if "referenced_tweets" in fields and tweet.referenced_tweets:
        out["referenced_tweets"] = [dict(r) for r in tweet.referenced_tweets]
    if "public_metrics" in fields:
        out["public_metrics"] = state.public_metrics(tweet)
    if "lang" in fields:
        out["lang"] = "en"
    if "reply_settings" in fields:
        out["reply_settings"] = "everyone"
    if "possibly_sensitive" in fields:
        out["possibly_sensitive"] = False
    if "entities" in fields and (entities := _entities(state, tweet.text)):
        out["entities"] = entities
    return out


def _entities(state: XState, text: str) -> dict[str, Any]:
    entities: dict[str, Any] = {}
    mentions = []
    for m in _patterns.MENTION.finditer(text):
        entry: dict[str, Any] = {"start": m.start(), "end": m.end(), "username": m.group(1)}
        if (account := state.account_by_username(m.group(1))) is not None:
            entry["id"] = account.user_id
        mentions.append(entry)
    if mentions:
        entities["mentions"] = mentions
    cashtags = [{"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in _patterns.CASHTAG.finditer(text)]
    if cashtags:
        entities["cashtags"] = cashtags
    return entities


def user_object(state: XState, account: Account, fields: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": account.user_id, "name": account.name, "username": account.username}
    if "created_at" in fields:
        out["created_at"] = iso(account.created_at)
    if "description" in fields:
        out["description"] = ""
    if "protected" in fields:
        out["protected"] = False
    if "verified" in fields:
        out["verified"] = False
    if "public_metrics" in fields:
        count = sum(1 for t in state.tweets.values() if t.author_id == account.user_id and not t.deleted)
        out["public_metrics"] = {"followers_count": 0, "following_count": 0, "tweet_count": count,
                                 "listed_count": 0, "like_count": sum(1 for u, _ in state.likes if u == account.user_id)}
    return out


def includes(state: XState, tweets: list[StoredTweet], fields: Fields) -> dict[str, Any]:
    """``includes.users`` / ``includes.tweets`` for the requested expansions (one entry each)."""
    user_ids: list[str] = []
    ref_tweets: list[StoredTweet] = []
    for tweet in tweets:
        if "author_id" in fields.expansions:
            user_ids.append(tweet.author_id)
        if "in_reply_to_user_id" in fields.expansions and tweet.in_reply_to_user_id:
            user_ids.append(tweet.in_reply_to_user_id)
        if "entities.mentions.username" in fields.expansions:
            user_ids.extend(tweet.mentioned_ids)
        if fields.expansions & {"referenced_tweets.id", "referenced_tweets.id.author_id"}:
            for ref in tweet.referenced_tweets:
                if (target := state.visible(ref["id"])) is not None and target not in ref_tweets:
                    ref_tweets.append(target)
                    if "referenced_tweets.id.author_id" in fields.expansions:
                        user_ids.append(target.author_id)
    out: dict[str, Any] = {}
    users = [state.accounts[u] for u in dict.fromkeys(user_ids) if u in state.accounts]
    if users:
        out["users"] = [user_object(state, u, fields.user) for u in users]
    if ref_tweets:
        out["tweets"] = [tweet_object(state, t, fields.tweet) for t in ref_tweets]
    return out


def single(state: XState, tweet: StoredTweet, fields: Fields) -> dict[str, Any]:
    body: dict[str, Any] = {"data": tweet_object(state, tweet, fields.tweet)}
    if inc := includes(state, [tweet], fields):
        body["includes"] = inc
    return body


# -- lists and pagination ---------------------------------------------------------------

def encode_token(direction: str, tweet_id: str) -> str:
    raw = f"{direction}{int(tweet_id):x}".encode()
    return base64.b32encode(raw).decode().rstrip("=").lower()


def decode_token(name: str, token: str) -> tuple[str, str]:
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode()
        direction, value = raw[0], str(int(raw[1:], 16))
        if direction not in "np":
            raise ValueError(direction)
        return direction, value
    except (binascii.Error, ValueError, UnicodeDecodeError, IndexError):
        raise px.bad_parameter(name, token, f"The `{name}` query parameter value [{token}] is not valid") from None


def parse_id(params: QueryParams, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not ID.match(value):
        raise px.bad_parameter(name, value, f"The `{name}` query parameter value [{value}] does not match "
                                            "^[0-9]{1,19}$")
    return value


def parse_max_results(params: QueryParams, low: int, high: int, default: int = 10) -> int:
    raw = params.get("max_results")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not low <= value <= high:
        raise px.bad_parameter("max_results", raw, f"The `max_results` query parameter value [{raw}] is not "
                                                   f"between {low} and {high}")
    return value


def list_page(state: XState, candidates: list[StoredTweet], params: QueryParams, *, token_name: str,
              low: int, high: int) -> dict[str, Any]:
    """One page of ``candidates`` (newest first) honouring since/until ids, times and the token."""
    fields = Fields.parse(params)
    size = parse_max_results(params, low, high)
    since_id, until_id = parse_id(params, "since_id"), parse_id(params, "until_id")
    start, end = _time(params, "start_time"), _time(params, "end_time")
    token = params.get(token_name) or params.get("pagination_token")
    rows = candidates
    if since_id is not None:
        rows = [t for t in rows if int(t.id) > int(since_id)]
    elif start is not None:
        rows = [t for t in rows if t.created_at >= start]
    if until_id is not None:
        rows = [t for t in rows if int(t.id) < int(until_id)]
    if end is not None:
        rows = [t for t in rows if t.created_at < end]
    if token:
        direction, pivot = decode_token(token_name if params.get(token_name) else "pagination_token", token)
        if direction == "n":
            rows = [t for t in rows if int(t.id) < int(pivot)]
            page, more = rows[:size], len(rows) > size
        else:
            newer = [t for t in rows if int(t.id) > int(pivot)]
            page, more = newer[-size:], True
    else:
        page, more = rows[:size], len(rows) > size
    if not page:
        return {"meta": {"result_count": 0}}
    meta: dict[str, Any] = {"result_count": len(page), "newest_id": page[0].id, "oldest_id": page[-1].id}
    if more:
        meta["next_token"] = encode_token("n", page[-1].id)
    if token:
        meta["previous_token"] = encode_token("p", page[0].id)
    body: dict[str, Any] = {"data": [tweet_object(state, t, fields.tweet) for t in page]}
    if inc := includes(state, page, fields):
        body["includes"] = inc
    body["meta"] = meta
    return body


def _time(params: QueryParams, name: str) -> float | None:
    raw = params.get(name)
    if raw is None:
        return None
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?Z", raw)
    if not match:
        raise px.bad_parameter(name, raw, f"Invalid '{name}':'{raw}'. '{name}' must be a valid RFC 3339 date")
    return float(calendar.timegm((*tuple(int(g) for g in match.groups()), 0, 0, 0)))
