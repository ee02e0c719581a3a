"""Planning the filtered-stream rules of the agents: one per agent while they fit, OR-groups
beyond (10,000 agents on Pay-per-use limits), little churn as agents start and stop; the
reconnect schedule X documents; telling which agents of a group a post is for."""

from __future__ import annotations

import random
import string

import pytest

from puppet_engine.sandbox.x.stream_rules import compile_rule
from puppet_engine.social.base import Post
from puppet_engine.twitter.stream import (
    AGENT_TAG,
    GROUP_TAG,
    Backoff,
    StreamLimits,
    mentions,
    plan_rules,
    rule_members,
)

PAYG = StreamLimits(max_rules=1000, max_length=1024)


def _agents(n: int, seed: int = 1) -> dict[str, str]:
    """``n`` agents with X-like usernames of 4 to 15 characters (unique: the index is in each)."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "_"
    names = {}
    for i in range(n):
        stem = f"{i}x"
        names[f"agent-{i:05d}"] = stem + "".join(rng.choice(alphabet) for _ in range(rng.randint(
            max(0, 4 - len(stem)), 15 - len(stem))))
    return names


def test_one_rule_per_agent_while_they_fit() -> None:
    plan = plan_rules({"a1": "ada", "b2": "bob"}, PAYG)
    assert [(r.value, r.tag) for r in plan] == [("@ada -from:ada", AGENT_TAG + "a1"),
                                                 ("@bob -from:bob", AGENT_TAG + "b2")]


def test_ten_thousand_agents_fit_payg_limits_and_every_agent_is_in_exactly_one_rule() -> None:
    agents = _agents(10_000)
    plan = plan_rules(agents, PAYG)
    assert len(plan) <= PAYG.max_rules
    assert all(len(r.value) <= PAYG.max_length for r in plan)
    assert all(r.tag.startswith(GROUP_TAG) for r in plan)
    assert len({r.tag for r in plan}) == len(plan)
    members = [name for r in plan for name in rule_members(r.value)]
    assert sorted(members) == sorted(agents.values())
    # The longest usernames (15 characters) still fit: 1000 rules x 22 clauses.
    worst = {f"w{i}": f"{i:015d}" for i in range(20_000)}
    assert len(plan_rules(worst, PAYG)) <= 1000
    with pytest.raises(ValueError, match="do not fit"):
        plan_rules({f"w{i}": f"{i:015d}" for i in range(25_000)}, PAYG)


def test_grouped_rules_are_valid_x_syntax_and_match_what_they_should() -> None:
    plan = plan_rules({"a": "ada", "b": "bob", "c": "cy"}, StreamLimits(max_rules=1, max_length=60))
    assert [r.value for r in plan] == ["(@ada -from:ada) OR (@bob -from:bob) OR (@cy -from:cy)"]
    for rule in plan:
        compile_rule(rule.value)  # the sandbox's parser accepts what the engine sends


def test_an_agent_starting_or_stopping_rewrites_one_group_only() -> None:
    agents = _agents(3000, seed=4)
    before = plan_rules(agents, PAYG)
    started = dict(agents, newcomer="brand_new_one")
    after = plan_rules(started, PAYG, before)
    changed = set((r.value, r.tag) for r in after) ^ set((r.value, r.tag) for r in before)
    assert len(changed) <= 2  # at most one rule replaced (or one added)
    stopped = dict(agents)
    gone = sorted(stopped)[1234]
    del stopped[gone]
    after_stop = plan_rules(stopped, PAYG, before)
    diff = set((r.value, r.tag) for r in after_stop) ^ set((r.value, r.tag) for r in before)
    assert len(diff) == 2  # the group that held it, rewritten
    assert agents[gone] not in [n for r in after_stop for n in rule_members(r.value)]


def test_backoff_follows_x_guidance() -> None:
    b = Backoff()
    assert [b.next("network") for _ in range(3)] == [0.25, 0.5, 0.75]
    assert max(b.next("network") for _ in range(100)) == 16.0
    assert [b.next("http") for _ in range(3)] == [5.0, 10.0, 20.0]
    assert max(b.next("http") for _ in range(20)) == 320.0
    assert [b.next("429") for _ in range(3)] == [60.0, 120.0, 240.0]
    b.reset()
    assert b.next("network") == 0.25


def test_which_agents_of_a_group_a_post_is_for() -> None:
    post = Post(id="9", text="hey @Ada and @bobby", author_id="1")
    assert mentions(post, None, "ada", "10")
    assert not mentions(post, None, "bob", "11")
    reply = Post(id="9", text="no handle here", author_id="1", in_reply_to_user_id="11")
    assert mentions(reply, None, "bob", "11")
    entities = {"mentions": [{"username": "cy", "start": 0, "end": 3}]}
    assert mentions(Post(id="9", text="@cy hi @ada", author_id="1"), entities, "cy", "12")


def test_sandbox_rule_matching_and_or_parentheses_negation() -> None:
    from puppet_engine.sandbox.x.state import XState
    from puppet_engine.sandbox.x.stream_rules import RuleSyntaxError

    state = XState(random.Random(1))
    ada, bob, cy = (state.create_account(n, None, 1_700_000_000.0) for n in ("ada", "bob", "cy"))
    to_ada = state.create_tweet(bob, "hi @ada gm", 1_700_000_001.0)
    self_ada = state.create_tweet(ada, "me @ada", 1_700_000_002.0)
    to_cy = state.create_tweet(ada, "yo @cy", 1_700_000_003.0)

    def matches(rule: str) -> list[str]:
        m = compile_rule(rule)
        return [t.text for t in (to_ada, self_ada, to_cy) if m(state, t)]

    assert matches("@ada -from:ada") == ["hi @ada gm"]
    assert matches("(@ada -from:ada) OR (@cy -from:cy)") == ["hi @ada gm", "yo @cy"]
    assert matches("@cy OR @ada -from:ada") == ["hi @ada gm", "yo @cy"]  # AND binds tighter than OR
    assert matches("(@cy OR @ada) -from:ada") == ["hi @ada gm"]
    assert matches("me") == ["me @ada"]  # an author's own handle is no mention of itself
    assert matches("gm -(from:ada OR from:cy)") == ["hi @ada gm"]
    assert matches('"ada gm" OR is:reply') == []  # a keyword never matches inside a handle
    for bad in ("(@ada", "@ada OR", "-@ada", "foo:bar", "is:nothing", "()"):
        with pytest.raises(RuleSyntaxError):
            compile_rule(bad)
    assert cy.user_id and bob.user_id
