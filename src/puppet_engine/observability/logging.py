"""Structured logging: structlog over the standard library, with secret redaction.

Every line carries ``timestamp``, ``level``, ``logger`` and ``event``, plus whatever
is bound in the context (``agent_id``, ``event_id``, ``trace_id`` …, see
:func:`bind_context`) and the current OpenTelemetry trace id when a span is active.
Lines from plain ``logging`` users (uvicorn, sqlalchemy, httpx2) go through the
same processors, so they are redacted and formatted the same way.

Redaction runs last, on every field, recursively: every configured secret value
(:func:`configure_logging`'s ``secrets``, :func:`update_secrets`) is replaced by
``***``, and so is anything shaped like a credential even if nobody registered it:
``Bearer …`` tokens, ``sk-…`` API keys, PEM private keys, 64-byte key arrays and
base58 keys labelled as private/secret keys, and the value of any field named like a secret
(``private_key``, ``api_key``, ``password``, ``authorization`` …).

The ``console`` format tells the story a person watches: what each agent did, one line
each (:data:`STORY_LOGGER` lines, skipped posts, failed starts and sends, see
:class:`StoryRenderer`), the engine's own lines about the embedding model and the mention
stream in words, other lines as usual; the outbox's ``action_done`` is left out there
(the story line says it better), and library chatter (Alembic, httpx2, uvicorn, openai,
sentence-transformers …) is held at WARNING unless the level is DEBUG. The ``json`` format
keeps every line and every field for collectors.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any, Literal

import structlog
from structlog.types import EventDict, WrappedLogger

from puppet_engine.errors import ConfigError
from puppet_engine.observability.tracing import current_trace_id

REDACTED = "***"
_MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words

_PATTERNS = [
    # "Bearer abc.def" / "Authorization: Basic …" keep the scheme, hide the credential
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), REDACTED),  # OpenAI-style keys
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), REDACTED),
    # a base58 secret key next to a word saying so (a bare 88-char string may be a
    # transaction signature, which must stay readable; registered keys are removed anyway)
    (re.compile(r"(?i)((?:private|secret)[ _-]?key[\"']?\s*[:=]\s*[\"']?)[1-9A-HJ-NP-Za-km-z]{80,90}"),
     r"\1" + REDACTED),
    # a keypair as a JSON byte array: 64 numbers 0-255
    (re.compile(r"\[\s*(?:\d{1,3}\s*,\s*){63}\d{1,3}\s*\]"), REDACTED),
    # OAuth 1.0a header parameters
    (re.compile(r'(oauth_(?:signature|token|consumer_key))="[^"]*"'), r'\1="' + REDACTED + '"'),
]
_SECRET_KEY = re.compile(
    r"(?i)(^|_|-)(secret|password|passwd|private_?key|api_?key|apikey|access_?token|bearer_?token|"
    r"token_?secret|authorization|auth_?header|cookie|encryption_?key|seed_?phrase|mnemonic)$"
)


class _Bucket:
    """The secrets that start with one 4-character prefix, by length (longest tried first)."""

    __slots__ = ("by_length", "lengths")

    def __init__(self) -> None:
        self.by_length: dict[int, set[str]] = {}
        self.lengths: tuple[int, ...] = ()


class Redactor:
    """Replaces known secret values and credential-shaped text with ``***``."""

    # Up to this many secrets, one compiled alternation; past it (thousands of agents, each
    # with its own keys) an index by prefix and length, so adding a key and redacting a line
    # stay cheap even when thousands of keys share a prefix (X bearer tokens all start AAAA…).
    REGEX_LIMIT = 64

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._by_prefix: dict[str, _Bucket] = {}
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register more secret values (e.g. after a key rotation); old ones stay redacted."""
        with self._lock:
            fresh = {value.strip() for value in secrets
                     if isinstance(value, str) and len(value.strip()) >= _MIN_SECRET_LENGTH} - self._secrets
            if not fresh:
                return
            self._secrets |= fresh
            # Readers on other threads only look up (atomic under the GIL); a bucket's lengths
            # are replaced whole, after the set they name exists.
            for value in fresh:
                bucket = self._by_prefix.get(value[:_MIN_SECRET_LENGTH])
                if bucket is None:
                    bucket = self._by_prefix[value[:_MIN_SECRET_LENGTH]] = _Bucket()
                same = bucket.by_length.setdefault(len(value), set())
                same.add(value)
                if len(same) == 1:
                    bucket.lengths = tuple(sorted(bucket.by_length, reverse=True))
            if len(self._secrets) <= self.REGEX_LIMIT:
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            else:
                self._pattern = None

    def _known(self, value: str) -> str:
        pattern, by_prefix = self._pattern, self._by_prefix
        if pattern is not None:
            return pattern.sub(REDACTED, value)
        if not by_prefix:
            return value
        parts: list[str] = []
        i = last = 0
        end = len(value) - _MIN_SECRET_LENGTH
        while i <= end:
            bucket = by_prefix.get(value[i:i + _MIN_SECRET_LENGTH])
            if bucket is not None:
                for length in bucket.lengths:
                    if value[i:i + length] in bucket.by_length.get(length, ()):
                        parts += [value[last:i], REDACTED]
                        i = last = i + length
                        break
                else:
                    i += 1
            else:
                i += 1
        return "".join(parts) + value[last:] if parts else value

    def text(self, value: str) -> str:
        """``value`` with every secret and credential-shaped substring replaced."""
        value = self._known(value)
        for regex, replacement in _PATTERNS:
            value = regex.sub(replacement, value)
        return value

    def value(self, value: Any, key: str | None = None) -> Any:
        """Redact a log field of any shape, recursively."""
        if key is not None and _SECRET_KEY.search(key) and value not in (None, "", False):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        # anything else is rendered as text by the renderer anyway; redact that text
        return self.text(str(value))

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        return {k: self.value(v, k) for k, v in event_dict.items()}


_redactor = Redactor()
_handler: logging.Handler | None = None


def redact(text: str) -> str:
    """Remove every configured secret and credential-shaped substring from ``text``."""
    return _redactor.text(text)


def update_secrets(secrets: Iterable[str]) -> None:
    """Add secret values to redact from now on (agent keys loaded later, rotated keys)."""
    _redactor.add(secrets)


def _add_trace_id(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    if "trace_id" not in event_dict:
        trace_id = current_trace_id()
        if trace_id is not None:
            event_dict["trace_id"] = trace_id
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_id,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        # tracebacks become a plain string here, before redaction (no locals are ever shown)
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
    ]


STORY_LOGGER = "puppet_engine.story"
# Libraries whose INFO lines are about themselves, not the agents: WARNING unless DEBUG.
CHATTY_LOGGERS = ("alembic", "httpx2", "httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access",
                  "openai", "sentence_transformers", "transformers", "huggingface_hub", "urllib3", "filelock",
                  "watchfiles")
# Own lines the console shows as story lines: event name → (what happened, field that says why).
_STORY_FROM_LOG = {
    "post_skipped": ("skipped", "reason"),
    "post_skipped_llm_down": ("skipped", "error"),
    "agent_start_failed": ("start failed", "error"),
    "agent_start_retry_failed": ("start failed", "error"),
    "agent_started": ("started", ""),
    "agent_stopped": ("stopped", ""),
    "agent_file_added": ("added", "file"),  # agents directory watched: agents/watch.py
    "agent_file_changed": ("edited", "file"),
    "agent_file_removed": ("removed", "file"),
    "agent_file_refused": ("refused", "problems"),
}
# The engine's own lines the console says in words: event name → (subject, sentence from fields).
_ENGINE_WORDS = {
    "embedder_loading": ("memory", "loading the embedding model {embedder}: agents run meanwhile, "
                                   "their memory writes wait for it"),
    "embedder_ready": ("memory", "embedding model {embedder} ready after {seconds} s"),
    "stream_role_taken": ("mentions", "this process reads the real-time mention stream"),
    "stream_rules_synced": ("mentions", "stream rules in place: {rules} ({added} added, {deleted} removed)"),
    "stream_up": ("mentions", "real-time stream connected: mentions arrive as they are posted"),
    "stream_down": ("mentions", "real-time stream down: mentions are polled until it is back"),
}
# What a story line (action_done) or the start-up summary (where things are) already says, and
# the engine's own bookkeeping (shown with LOG_LEVEL=DEBUG).
_CONSOLE_HIDDEN = frozenset({"action_done", "engine_started", "engine_stopped", "sandbox_started",
                             "mention_polls_brought_forward"})


class StoryRenderer:
    """Console lines: ``12:04:11  coby      posted    "every ledger is a diary"`` for what
    agents do; every other line through structlog's console renderer."""

    def __init__(self) -> None:
        self.plain = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
        self.width = 8  # agent column; grows to the longest id seen

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        line = self.story(event_dict)
        if line is not None:
            return line
        return str(self.plain(logger, method, {**event_dict, "timestamp": _clock_time(event_dict.get("timestamp"))}))

    def story(self, e: EventDict) -> str | None:
        name = e.get("event")
        if e.get("logger") == STORY_LOGGER:
            what, detail = str(name), str(e.get("summary") or "")
        elif name in _STORY_FROM_LOG:
            what, field_name = _STORY_FROM_LOG[str(name)]
            detail = str(e.get(field_name) or "") if field_name else ""
        elif name == "action_failed":
            what, detail = f"{e.get('kind', 'action')} failed", str(e.get("error") or "")
        elif name in _ENGINE_WORDS:
            what, sentence = _ENGINE_WORDS[str(name)]
            detail = sentence.format_map(defaultdict(lambda: "?", e))
        else:
            return None
        agent = str(e.get("agent_id") or "-")
        self.width = max(self.width, len(agent))
        return f"{_clock_time(e.get('timestamp'))}  {agent:<{self.width}}  {what:<9}  {detail}".rstrip()


def _clock_time(stamp: Any) -> str:
    """The local wall-clock time of an ISO UTC timestamp, ``HH:MM:SS``."""
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return datetime.now().strftime("%H:%M:%S")


class _ConsoleFilter(logging.Filter):
    """Leaves out of the console the lines a story line replaces (unless DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        return not (isinstance(msg, dict) and msg.get("event") in _CONSOLE_HIDDEN
                    and logging.getLogger().level > logging.DEBUG)


def configure_logging(
    level: str | int = "INFO",
    fmt: Literal["json", "console"] | str = "json",
    secrets: Iterable[str] = (),
    *,
    stream: IO[str] | None = None,
) -> None:
    """Install the one log handler on the root logger; safe to call again (it replaces itself).

    ``level`` is a name (``DEBUG`` … ``ERROR``) or number; ``fmt`` is ``json`` (one JSON
    object per line) or ``console`` (human-readable); ``secrets`` are values never to print.
    """
    global _handler
    if fmt not in ("json", "console"):
        raise ConfigError(f'LOG_FORMAT: expected "json" or "console", got {fmt!r}')
    update_secrets(secrets)
    renderer: Any = structlog.processors.JSONRenderer(default=str) if fmt == "json" else StoryRenderer()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _redactor, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    if fmt == "console":
        handler.addFilter(_ConsoleFilter())
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    _handler = handler
    logging.getLogger("oauthlib").setLevel(logging.WARNING)  # its DEBUG lines hold OAuth signature base strings
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    set_level(level)


def set_level(level: str | int) -> None:
    """Change the log level at runtime (e.g. from the API)."""
    if isinstance(level, str):
        number = logging.getLevelName(level.strip().upper())
        if not isinstance(number, int):
                raise ConfigError(f"LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
        level = number
    logging.getLogger().setLevel(level)
    quiet = level > logging.DEBUG
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    if quiet:  # the model-loading progress bars write to the terminal directly, not through logging
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def get_level() -> str:
    """The current root level name."""
    return logging.getLevelName(logging.getLogger().level)


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger; ``log.info("post.sent", tweet_id=...)``."""
    return structlog.stdlib.get_logger(name, **initial)


def bind_context(**values: Any) -> None:
    """Attach fields (``agent_id``, ``event_id`` …) to every line logged in this task."""
    structlog.contextvars.bind_contextvars(**values)


def unbind_context(*keys: str) -> None:
    """Remove fields bound with :func:`bind_context`."""
    structlog.contextvars.unbind_contextvars(*keys)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind fields for the duration of a block, restoring the previous ones after."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


def reset_logging() -> None:
    """Remove the handler installed by :func:`configure_logging` and restore structlog defaults."""
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None
    structlog.reset_defaults()
