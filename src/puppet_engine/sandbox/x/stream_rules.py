"""Filtered-stream rule syntax as the emulator understands it: parse, validate, match.

A rule is terms joined by spaces (AND) and ``OR``; AND binds tighter than OR, as on X.
Parentheses group, ``-`` negates a term or a group. Terms: ``@user`` (the post mentions or
replies to the user), ``from:user``, ``to:user``, ``is:reply|retweet|quote``,
``conversation_id:ID``, ``has:mentions``, ``lang:xx`` (every sandbox post is English), ``#tag``,
``$TICKER``, keywords and ``"quoted phrases"``. A rule made only of negations, an unknown
operator, unbalanced parentheses or a dangling ``OR`` is X's invalid-rule error.
Usernames are resolved when a post is matched, so a rule may name an account that is
created later (as on X, where a rule can name any handle).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from puppet_engine.sandbox.x.state import StoredTweet, XState

Match = Callable[[XState, StoredTweet], bool]
_TOKEN = re.compile(r'\(|\)|-?"[^"]*"|[^\s()]+')
_OPERATORS = {"from", "to", "is", "conversation_id", "has", "lang"}


class RuleSyntaxError(ValueError):
    """Why a rule value is not a valid rule (X's ``details`` text)."""


@dataclass(frozen=True)
class _Node:
    match: Match
    positive: bool  # holds at least one non-negated term


def compile_rule(value: str) -> Match:
    """A matcher for the rule ``value``; raises :class:`RuleSyntaxError` as X would refuse it."""
    tokens = _TOKEN.findall(value)
    if not tokens:
        raise RuleSyntaxError("Rules must contain a non-negation term")
    parser = _Parser(tokens)
    node = parser.expr()
    if parser.pos != len(tokens):
        raise RuleSyntaxError(f"There were errors processing your request: unexpected '{tokens[parser.pos]}' "
                              f"(at position {parser.pos + 1})")
    if not node.positive:
        raise RuleSyntaxError("Rules must contain a non-negation term (at position 1)")
    return node.match


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def expr(self) -> _Node:
        parts = [self.conjunction()]
        while self.peek() == "OR":
            self.pos += 1
            if self.peek() in (None, ")", "OR"):
                raise RuleSyntaxError(f"There were errors processing your request: dangling OR "
                                      f"(at position {self.pos})")
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        matchers = [p.match for p in parts]
        return _Node(lambda s, t: any(m(s, t) for m in matchers), all(p.positive for p in parts))

    def conjunction(self) -> _Node:
        parts: list[_Node] = []
        while (token := self.peek()) is not None and token not in (")", "OR"):
            parts.append(self.unary())
        if not parts:
            raise RuleSyntaxError(f"There were errors processing your request: empty group or dangling OR "
                                  f"(at position {self.pos + 1})")
        matchers = [p.match for p in parts]
        return _Node(lambda s, t: all(m(s, t) for m in matchers), any(p.positive for p in parts))

    def unary(self) -> _Node:
        token = self.peek()
        assert token is not None
        if token.startswith("-"):
            # "-term" negates that term; a lone "-" (before "(") negates the group after it
            if token == "-":
                self.pos += 1
            else:
                self.tokens[self.pos] = token[1:]
            inner = self.atom()
            return _Node(lambda s, t: not inner.match(s, t), False)
        return self.atom()

    def atom(self) -> _Node:
        token = self.peek()
        if token is None:
            raise RuleSyntaxError("There were errors processing your request: unexpected end of rule")
        if token == "(":
            self.pos += 1
            node = self.expr()
            if self.peek() != ")":
                raise RuleSyntaxError("There were errors processing your request: missing ')' "
                                      f"(at position {self.pos + 1})")
            self.pos += 1
            return node
        if token == ")":
            raise RuleSyntaxError(f"There were errors processing your request: unbalanced ')' "
                                  f"(at position {self.pos + 1})")
        self.pos += 1
        return _Node(_term(token), True)


def _term(token: str) -> Match:
    lowered = token.lower()
    key, sep, value = lowered.partition(":")
    if sep and key.isidentifier() and not token.startswith(('"', "@", "#", "$")):
        if key not in _OPERATORS or not value:
            raise RuleSyntaxError(f"There were errors processing your request: Reference to invalid operator "
                                  f"'{key}:'")
        return _operator(key, value)
    if lowered.startswith("@") and len(lowered) > 1:
        name = lowered[1:]
        return lambda s, t: (a := s.account_by_username(name)) is not None and a.user_id in t.mentioned_ids
    phrase = lowered.strip('"')
    if not phrase:
        raise RuleSyntaxError('There were errors processing your request: empty phrase ""')
    pattern = re.compile(rf"(?<![\w#$@]){re.escape(phrase)}(?!\w)", re.IGNORECASE)
    return lambda s, t: pattern.search(t.text) is not None


def _operator(key: str, value: str) -> Match:
    if key == "from":
        return lambda s, t: (a := s.account_by_username(value)) is not None and t.author_id == a.user_id
    if key == "to":
        return lambda s, t: (a := s.account_by_username(value)) is not None and t.in_reply_to_user_id == a.user_id
    if key == "conversation_id":
        return lambda s, t: t.conversation_id == value
    if key == "lang":
        return lambda s, t: value == "en"
    if key == "has":
        if value != "mentions":
            return lambda s, t: False
        return lambda s, t: bool(t.mentioned_ids)
    kinds = {"reply": "replied_to", "retweet": "retweeted", "quote": "quoted"}
    kind = kinds.get(value)
    if kind is None:
        raise RuleSyntaxError(f"There were errors processing your request: Reference to invalid operator "
                              f"'is:{value}'")
    return lambda s, t: t.ref(kind) is not None
