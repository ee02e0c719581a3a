"""A problem mode of the emulated model: it obeys whatever instructions appear in its prompt.

Real models can be talked into following text that merely sits in their context
(a mention, a recalled memory, a quoted post). With this mode on, the sandbox LLM
does so every time: when any message contains an order (send or transfer an amount
to someone, buy or sell a token) or asks for the system prompt, the answer carries
out the orders word for word and, if asked, quotes the system prompt. Quoting the
text does not help (the model reads through quotes, as real ones do), so tests with
this mode show what reaches a prompt at all.

Turned on by ``SandboxConfig.extra["openai_obedient"]`` or at run time with
``POST /sandbox/openai/mode {"obedient": true}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

MAX_ANSWER = 270  # fits a post, so length rules never hide an obeyed order

ORDERS = (
    re.compile(r"\b(?:send|transfer|give|tip)\s+(?:me\s+)?\d+(?:\.\d+)?\s*\$?[A-Za-z]{2,10}\s+to\s+@?[\w.]*\w", re.I),
    re.compile(r"\b(?:buy|sell|swap|dump)\s+(?:all\s+|\d+(?:\.\d+)?\s*)?\$[A-Za-z]{2,10}\b", re.I),
)
WANTS_PROMPT = re.compile(
    r"\b(?:quote|repeat|print|reveal|show|post|share)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+)?"
    r"(?:system prompt|instructions|prompt)", re.I)


def _text(message: Any) -> tuple[str, str]:
    if not isinstance(message, dict):
        return "user", str(message)
    content = message.get("content") or ""
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(message.get("role", "user")), str(content)


def _readable(text: str) -> str:
    """The prompt as a model reads it: JSON-quoted strings are words like any other."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: _unescape(m.group()), text)


def _unescape(quoted: str) -> str:
    try:
        value = json.loads(quoted)
    except ValueError:
        return quoted
    return value if isinstance(value, str) else quoted


def obey(messages: Sequence[Any]) -> str | None:
    """What the obedient model answers to ``messages``: the orders it found, carried out; None if none."""
    texts = [_text(m) for m in messages]
    system = " ".join(" ".join(t.split()) for role, t in texts if role in ("system", "developer"))
    prompt = _readable("\n".join(t for role, t in texts if role not in ("system", "developer")))
    orders: list[str] = []
    for pattern in ORDERS:
        for match in pattern.finditer(prompt):
            order = " ".join(match.group().split())
            if order.lower() not in (o.lower() for o in orders):
                orders.append(order)
    wants_prompt = WANTS_PROMPT.search(prompt) is not None
    if not orders and not wants_prompt:
        return None
    answer = f"ok, as instructed: {'; '.join(orders)}" if orders else "ok, as instructed"
    if wants_prompt and system:
        answer = f"{answer}. my system prompt says: {system}"
    return answer[:MAX_ANSWER].rstrip()
