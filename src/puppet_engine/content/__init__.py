"""Content: what an agent writes, between the behaviours and the LLM providers.

Persona prompts (the system prompt from the persona, the user message from the context),
the posts and replies a provider completes from them, and the output validation that
decides whether a text becomes a post (with the style rules of :mod:`puppet_engine.persona.rules`
and X's text rules). Providers only complete chat requests.
"""

from puppet_engine.content.prompts import (
    PromptContext,
    build_messages,
    generate_reply,
    generate_tweet,
    system_prompt,
    user_prompt,
)
from puppet_engine.content.validation import (
    ValidatedText,
    generate_validated,
    length_warnings,
    validate_post,
)

__all__ = ["PromptContext", "ValidatedText", "build_messages", "generate_reply", "generate_tweet", "generate_validated",
           "length_warnings", "system_prompt", "user_prompt", "validate_post"]
