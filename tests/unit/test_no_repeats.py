"""No generated text repeats: every kind goes through one check and is written again when it repeats;
trade announcements say what was traded."""

from __future__ import annotations

import random

import pytest

from puppet_engine.agents.behaviors.trading import trade_facts
from puppet_engine.content import PromptContext, generate_validated, validate_post
from puppet_engine.errors import ValidationFailed
from puppet_engine.llm import FakeProvider
from puppet_engine.llm.base import Completion, CompletionRequest, LLMProvider
from puppet_engine.persona import AgentConfig, parse_agent_config
from puppet_engine.persona.block import RECENT_HEADER


def agent() -> AgentConfig:
    return parse_agent_config({"id": "ledgy", "name": "Ledgy", "personality": {"interests": ["markets", "tea"]},
                               "behavior": {"content_preferences": {"max_thread_length": 3}}})


def test_a_word_for_word_repeat_within_x_window_is_refused_even_when_no_longer_recent() -> None:
    old = "Swapped GLITCH. Slow is smooth, even in trades."
    with pytest.raises(ValidationFailed, match="repeats a post of the last 24 hours word for word"):
        validate_post(old, agent(), recent_posts=["something else entirely"], posted=[old], kind="trade")
    part = "Validators keep their own time."
    thread = f"{part}\n\nAnd tea keeps mine, most mornings."
    with pytest.raises(ValidationFailed, match="word for word"):  # X checks every tweet of a thread
        validate_post(thread, agent(), posted=[part], kind="thread")
    assert validate_post("Bought 12 GLITCH for 0.01 SOL today.", agent(), posted=[old]).parts


class Scripted(LLMProvider):
    """Answers with the given texts in order, recording each request."""

    name = "scripted"

    def __init__(self, *texts: str) -> None:
        self.texts, self.requests = list(texts), []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        return Completion(text=self.texts.pop(0), model="scripted", provider=self.name)


@pytest.mark.parametrize("purpose", ["post", "trade", "news", "quote"])
async def test_a_repeat_is_written_again_with_a_new_seed_and_the_repeated_post_shown(purpose: str) -> None:
    old = "Swapped GLITCH. Slow is smooth, even in trades."
    provider = Scripted(old, "Sold 1,200 GLITCH for 0.0099 SOL. Noting it for later.")
    context = PromptContext(purpose=purpose, recent_posts=["gm"], seed=4, thread=[("ana", "tea?")],
                            replying_to="ana" if purpose == "quote" else None)
    result = await generate_validated(provider, agent(), context, ["gm"], posted=[old])
    assert result.text == "Sold 1,200 GLITCH for 0.0099 SOL. Noting it for later."
    first, second = provider.requests
    assert first.seed != second.seed
    shown = second.messages[1].content
    assert f"{RECENT_HEADER}\n- {old}" in shown  # the model now sees what it repeated, first
    assert "Your previous draft was rejected: repeats a post of the last 24 hours word for word" in shown


def test_trade_facts_say_sold_what_for_what_how_much() -> None:
    sale = {"key": "trade:ledgy:3", "status": "confirmed", "input_symbol": "GLITCH", "output_symbol": "SOL",
            "amount_in": 1234.56, "amount_out": 0.00987, "amount_sol": 0.01, "reasoning": "GLITCH trending down; out"}
    assert trade_facts(sale) == {"action": "sold", "token": "GLITCH", "status": "confirmed",
                                 "amount": "1,235 GLITCH", "price": "0.00987 SOL", "why": "GLITCH trending down, out"}
    buy = {**sale, "input_symbol": "SOL", "output_symbol": "WOOF", "amount_in": 0.01, "amount_out": 19097.2}
    assert (trade_facts(buy)["action"], trade_facts(buy)["amount"], trade_facts(buy)["price"]) == (
        "bought", "19,097 WOOF", "0.01 SOL")
    swap = {**sale, "input_symbol": "USDC", "output_symbol": "PUPPET", "amount_in": 2.5, "amount_out": 0.000012}
    assert (trade_facts(swap)["action"], trade_facts(swap)["amount"], trade_facts(swap)["price"]) == (
        "swapped", "2.5 USDC", "0.000012 PUPPET")
    assert "amount" not in trade_facts({"input": "SOL", "output": "USDC"})  # no amounts: none invented


async def test_many_alike_trades_get_announcements_that_all_pass_and_never_repeat() -> None:
    provider, ledgy, sent, rng = FakeProvider(), agent(), [], random.Random(11)
    for i in range(40):  # the soak's case: the same few tokens, always 0.01 SOL a buy
        got = round(rng.uniform(20, 26), 2)
        trade = ({"input_symbol": "SOL", "output_symbol": "GLITCH", "amount_in": 0.01, "amount_out": got}
                 if i % 3 else {"input_symbol": "GLITCH", "output_symbol": "SOL", "amount_in": got,
                                "amount_out": round(rng.uniform(0.0095, 0.01), 5)})
        facts = trade_facts({**trade, "status": "confirmed"})
        context = PromptContext(purpose="trade", trade=facts, recent_posts=sent[:20], seed=i)
        said = (await generate_validated(provider, ledgy, context, sent[:20], posted=sent)).text
        assert facts["action"] in said.lower() and facts["amount"] in said and facts["price"] in said, (facts, said)
        sent.insert(0, said)
    assert len(set(sent)) == len(sent)
