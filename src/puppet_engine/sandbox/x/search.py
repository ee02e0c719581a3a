"""The subset of X's search query language the emulator understands.

Terms are ANDed; ``-term`` negates one. Supported: plain words and ``"quoted phrases"``
(case-insensitive, whole words), ``from:user``, ``to:user`` (replies to the user),
``@user`` (mentions), ``conversation_id:ID``, ``#tag``, ``$TICKER``, ``is:reply``,
``is:retweet``, ``is:quote``, and ``OR`` between two terms.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from puppet_engine.sandbox.x import problems as px
from puppet_engine.sandbox.x.state import StoredTweet, XState

MAX_QUERY = 512
_TOKEN = re.compile(r'-?"[^"]*"|\S+')

Predicate = Callable[[StoredTweet], bool]


def compile_query(state: XState, query: str) -> Predicate:
    """A predicate for ``query``; an empty or too long query is X's 400."""
    if not query.strip():
        raise px.bad_parameter("query", query, "The `query` query parameter can not be empty")
    if len(query) > MAX_QUERY:
        raise px.bad_parameter("query", query, f"The `query` query parameter value [{query}] is not valid: "
                                               f"it must be at most {MAX_QUERY} characters")
    tokens = _TOKEN.findall(query)
    groups: list[list[Predicate]] = []
    join_next = False
    for token in tokens:
        if token == "OR":
            join_next = bool(groups)
            continue
        predicate = _term(state, token)
        if join_next:
            groups[-1].append(predicate)
        else:
            groups.append([predicate])
        join_next = False
    return lambda tweet: all(any(p(tweet) for p in group) for group in groups)


def _term(state: XState, token: str) -> Predicate:
    if token.startswith("-") and len(token) > 1:
        inner = _term(state, token[1:])
        return lambda tweet: not inner(tweet)
    lowered = token.lower()
    key, sep, value = lowered.partition(":")
    if sep and key in ("from", "to"):
        account = state.account_by_username(value)
        wanted = account.user_id if account else None
        if key == "from":
            return lambda tweet: tweet.author_id == wanted
        return lambda tweet: tweet.in_reply_to_user_id == wanted
    if sep and key == "conversation_id":
        return lambda tweet: tweet.conversation_id == value
    if sep and key == "is":
        kinds = {"reply": "replied_to", "retweet": "retweeted", "quote": "quoted"}
        kind = kinds.get(value)
        if kind is None:
            raise px.bad_parameter("query", token, f"There were errors processing your request: Reference to "
                                                   f"invalid operator 'is:{value}'")
        return lambda tweet: tweet.ref(kind) is not None
    if lowered.startswith("@") and len(lowered) > 1:
        account = state.account_by_username(lowered[1:])
        wanted = account.user_id if account else None
        return lambda tweet: wanted is not None and wanted in tweet.mentioned_ids
    phrase = lowered.strip('"')
    if not phrase:
        return lambda tweet: True
    pattern = re.compile(rf"(?<![\w#$@]){re.escape(phrase)}(?!\w)", re.IGNORECASE)
    return lambda tweet: pattern.search(tweet.text) is not None
