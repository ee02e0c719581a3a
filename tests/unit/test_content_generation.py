"""Content writes through any provider: the provider sees only chat requests, and the context is left alone."""

from __future__ import annotations

from dataclasses import asdict

from puppet_engine.content import PromptContext, build_messages, generate_reply, generate_tweet
from puppet_engine.llm import FakeProvider, LLMProvider
from puppet_engine.llm.base import Completion, CompletionRequest
from puppet_engine.persona import AgentConfig, parse_agent_config


class EchoProvider(LLMProvider):
    """A provider that knows nothing of personas: it records each request and answers one line."""

    name = "echo"

    def __init__(self) -> None:
        self.requests: list[CompletionRequest] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        return Completion(text="a line about compost", model="echo-1", provider=self.name)


def agent() -> AgentConfig:
    return parse_agent_config({"id": "tess", "name": "Tess", "llm_config": {"model": "m-1", "temperature": 0.3},
                               "personality": {"interests": ["Compost"]}})


def test_a_provider_only_completes_chat_requests() -> None:
    assert not hasattr(LLMProvider, "generate_tweet")
    assert not hasattr(LLMProvider, "generate_reply")


async def test_generate_tweet_sends_the_persona_prompts_as_one_chat_request() -> None:
    provider, tess = EchoProvider(), agent()
    context = PromptContext(purpose="post", topic="compost", seed=7)
    assert await generate_tweet(provider, tess, context) == "a line about compost"
    [request] = provider.requests
    assert request.messages == build_messages(tess, context)
    assert (request.purpose, request.agent_id, request.seed) == ("post", "tess", 7)
    assert (request.model, request.temperature) == ("m-1", 0.3)


async def test_generate_reply_asks_for_a_reply_and_leaves_the_context_as_it_was() -> None:
    provider, tess = EchoProvider(), agent()
    context = PromptContext(purpose="post", thread=[("sam", "how is the compost?")], replying_to="sam", seed=2)
    before = asdict(context)
    await generate_reply(provider, tess, context)
    assert provider.requests[0].purpose == "reply"
    assert asdict(context) == before


async def test_the_fake_reads_the_prompt_text_it_is_given() -> None:
    text = await generate_reply(FakeProvider(), agent(),
                                PromptContext(purpose="reply", thread=[("sam", "hello?")], replying_to="sam", seed=1))
    assert text.startswith("@sam ")
