"""The ``review`` section of an agent file: what a person approves before it goes out.

Absent (and no ``REVIEW_DEFAULT``), nothing waits: every post, reply, quote and trade goes
straight out, as before. Present, an action that matches a rule is recorded in the outbox
as ``awaiting_review`` and sent only once an operator approves it (``POST /review/{id}/approve``).
See ``docs/review.md``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from puppet_engine.persona.sections import NonNegative, Section

ReviewKind = Literal["posts", "replies", "quotes", "trade_announcements"]
REVIEW_KINDS: tuple[str, ...] = ("posts", "replies", "quotes", "trade_announcements")
#: Kinds an unattended queue may send when nobody answered in time (``on_expire: "send"``).
LOW_RISK_KINDS = frozenset({"posts", "trade_announcements"})


class ReviewRules(Section):
    """Which of the agent's actions wait for a person's approval, and for how long.

    An action waits when any rule matches: its kind is in ``kinds`` (replies narrowed by
    ``reply_conditions``), it is a trade above ``trade_above_sol``, or it is one of the
    agent's first ``first_posts`` tweets. Operator-requested posts and trades never wait.
    """

    kinds: list[ReviewKind] = Field(
        default_factory=list,
        description='kinds that need approval: "posts", "replies", "quotes", "trade_announcements"; default []')
    reply_conditions: list[Literal["stranger", "hostile"]] = Field(
        default_factory=list,
        description='with "replies" in kinds, hold only replies to an account the agent has no relationship '
                    'with ("stranger") or to a mention flagged hostile ("hostile"), either matching; '
                    'default [] = every reply')
    trade_above_sol: NonNegative | None = Field(
        None, description="trades larger than this many SOL need approval (0 = every trade); default null = none")
    first_posts: Annotated[int, Field(ge=0, le=100_000)] = Field(
        0, description="the agent's first N tweets (posts, replies, quotes) need approval; default 0")
    expire_minutes: Annotated[float, Field(gt=0, le=60 * 24 * 30)] | None = Field(
        None, description="minutes an item waits for a decision; default null = until decided")
    on_expire: Literal["drop", "send"] = Field(
        "drop", description='what happens to an item nobody decided in time: "drop" it, or "send" it '
                            '(only when every held kind is low-risk: posts, trade_announcements); default "drop"')

    @model_validator(mode="after")
    def _send_only_low_risk(self) -> ReviewRules:
        risky: list[str] = [k for k in self.kinds if k not in LOW_RISK_KINDS]
        if self.trade_above_sol is not None:
            risky.append("trades (trade_above_sol)")
        if self.on_expire == "send" and risky:
            raise PydanticCustomError(
                "review_send_risky",
                'on_expire "send" is only allowed for low-risk kinds (posts, trade_announcements); '
                "these must be dropped when nobody decides: {risky}", {"risky": ", ".join(risky)})
        if self.reply_conditions and "replies" not in self.kinds:
            raise PydanticCustomError(
                "review_conditions_unused", 'reply_conditions apply only with "replies" in kinds')
        return self

    @property
    def holds_anything(self) -> bool:
        """Whether any rule can hold an action."""
        return bool(self.kinds) or self.trade_above_sol is not None or self.first_posts > 0
