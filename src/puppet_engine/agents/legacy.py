"""Import the state of the original (JavaScript) Puppet Engine: memories, relationships, handled mentions.

The original engine kept, in its ``data/`` directory:

- ``memories/<agentId>.json``: one JSON object per agent, as its memory manager wrote it::

      {"agentId": "coby-agent",
       "coreMemories": [MemoryItem], "recentEvents": [MemoryItem], "recentPosts": [MemoryItem],
       "longTermMemories": [MemoryItem], "tweetHistory": [MemoryItem or tweet],
       "relationships": {"<target>": Relationship}, "lastUpdated": "2025-05-07T22:09:03.954Z"}

  where a ``MemoryItem`` is ``{"id", "content", "type", "timestamp", "importance",
  "emotionalValence", "associations", "metadata"}`` (a post: content ``I posted: "…"``,
  ``metadata.tweetId`` and ``metadata.fullText``; ``tweetHistory`` repeats the posts of
  ``recentPosts``) and a ``Relationship`` is ``{"targetAgentId", "sentiment", "familiarity",
  "trust", "lastInteractionDate", "recentInteractions", "sharedExperiences", "notes"}``;
- ``processed_tweets.json``: a JSON array of the tweet ids it had already handled (mentions
  it answered or chose not to), shared by all its agents.

:func:`import_legacy` brings both into this engine: each memory is embedded by the memory
store's current embedder and stored under a deterministic key (core memories and recent
events under the same key as the agent file's ``initial_memory`` seeds, posts under their
tweet id), relationships are created unless they already exist, and every processed tweet id
is recorded, for every agent, as a mention already handled (decision ``skip:imported``, and
its ``mention.received`` event key taken), so it is never answered again. Running it twice
adds nothing. A file it cannot read is reported (file, place, problem) and the rest imported.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from puppet_engine.memory.base import Memory, MemoryKind, MemoryStore
from puppet_engine.memory.store import seed_key
from puppet_engine.storage import Database
from puppet_engine.storage.repos import mentions

#: The decision recorded for a mention the original engine had already handled.
IMPORTED_DECISION = "skip:imported"

# Sections of a memory file, with the kind their items get when their own ``type`` says nothing more.
_SECTIONS: tuple[tuple[str, MemoryKind], ...] = (
    ("coreMemories", "core"), ("recentEvents", "event"), ("recentPosts", "post"),
    ("longTermMemories", "knowledge"), ("tweetHistory", "post"),
)
# The original's MemoryItem.type → our memory kind ("general", "interaction" and unknown types → the section's).
_TYPES: dict[str, MemoryKind] = {
    "core": "core", "event": "event", "post": "post", "tweet": "post", "reply": "reply", "mention": "mention",
    "trade": "trade", "knowledge": "knowledge", "general": "knowledge", "news": "event",
}
_POSTED = ('I posted: "', '"')  # how the original wrapped its own posts


@dataclass
class AgentImport:
    """What was imported for one agent (``added`` counts new rows; ``existing`` those already there)."""

    agent_id: str
    source: str
    added: Counter[str] = field(default_factory=Counter)  # memory kind → memories added
    existing: int = 0
    relationships_added: int = 0
    relationships_existing: int = 0
    handled_mentions_added: int = 0


@dataclass
class ImportReport:
    """The outcome of :func:`import_legacy`; ``problems`` name the file, the place and what is wrong."""

    agents: dict[str, AgentImport] = field(default_factory=dict)
    processed_tweet_ids: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A human summary, one line per agent, then the totals."""
        out = []
        for a in self.agents.values():
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(a.added.items())) or "no new memories"
            out.append(f"{a.agent_id}: {kinds} ({a.existing} already there); relationships "
                       f"{a.relationships_added} new, {a.relationships_existing} already there; "
                       f"handled mentions {a.handled_mentions_added} new  [{a.source}]")
        out.append(f"processed tweet ids: {self.processed_tweet_ids} (recorded as handled for every agent)")
        return out


class LegacyFormatError(ValueError):
    """A legacy file, or a part of it, that cannot be read: ``str()`` names the file, the place and the problem."""


def _fail(path: Path, where: str, what: str) -> LegacyFormatError:
    return LegacyFormatError(f"{path}: {where}: {what}" if where else f"{path}: {what}")


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, "", f"cannot read the file ({exc.__class__.__name__}: {exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"line {exc.lineno} column {exc.colno}", f"not valid JSON ({exc.msg})") from exc


def read_processed_tweets(path: Path) -> list[str]:
    """The tweet ids of ``processed_tweets.json`` (a JSON array of id strings; numbers are accepted)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise _fail(path, "", f"expected a JSON array of tweet ids, got {type(data).__name__}")
    ids: list[str] = []
    for i, value in enumerate(data):
        tweet_id = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
        if not tweet_id.isdigit():
            raise _fail(path, f"[{i}]", f"expected a tweet id (digits), got {value!r}")
        ids.append(tweet_id)
    return list(dict.fromkeys(ids))


def _timestamp(value: Any) -> float | None:
    """A JS ``Date`` as JSON (ISO 8601, ``Z`` for UTC) or epoch milliseconds → epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _post_text(content: str, metadata: dict[str, Any]) -> str:
    full = metadata.get("fullText")
    if isinstance(full, str) and full.strip():
        return full
    if content.startswith(_POSTED[0]) and content.endswith(_POSTED[1]) and len(content) > len(_POSTED[0]):
        return content[len(_POSTED[0]):-1]
    return content


def _memory(path: Path, where: str, item: Any, section_kind: MemoryKind) -> Memory:
    if isinstance(item, str):  # the original accepted bare strings for events
        item = {"content": item}
    if not isinstance(item, dict):
        raise _fail(path, where, f"expected a memory object, got {type(item).__name__}")
    content = item.get("content")
    if not isinstance(content, str) or not content.strip():
        raise _fail(path, f"{where}.content", f"expected a non-empty string, got {content!r}")
    raw_type, raw_metadata = item.get("type"), item.get("metadata")
    legacy_type = raw_type if isinstance(raw_type, str) else ""
    # Only long-term memories mix types; the other sections are one kind each.
    kind = _TYPES.get(legacy_type, section_kind) if section_kind == "knowledge" else section_kind
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    tweet_id = metadata.get("tweetId") or (item.get("id") if section_kind == "post" and "type" not in item else None)
    if kind == "post":
        content = _post_text(content, metadata)
    if kind in ("core", "event"):
        key = seed_key(kind, content)  # the key the agent file's initial_memory seeds use: never twice
    elif tweet_id:
        key = f"legacy:tweet:{tweet_id}"
    elif isinstance(item.get("id"), str) and item["id"]:
        key = f"legacy:id:{item['id']}"
    else:
        key = f"legacy:{kind}:{hashlib.sha256(content.encode('utf-8')).hexdigest()[:32]}"
    meta: dict[str, Any] = {"source": "puppet-engine-js", "legacy_type": legacy_type or None}
    if item.get("id"):
        meta["legacy_id"] = str(item["id"])
    if tweet_id:
        meta["tweet_id"] = str(tweet_id)
    if isinstance(item.get("emotionalValence"), int | float) and item["emotionalValence"]:
        meta["emotional_valence"] = float(item["emotionalValence"])
    importance = min(1.0, max(0.0, _number(item.get("importance"), 1.0 if kind == "core" else 0.5)))
    return Memory(content=content, kind=kind, importance=importance, key=key, metadata=meta,
                  created_at=_timestamp(item.get("timestamp")))


@dataclass
class LegacyRelationship:
    other: str
    sentiment: float
    familiarity: float
    trust: float
    notes: str


def _lines(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value if v]
    return []


def _relationship(path: Path, other: str, data: Any) -> LegacyRelationship:
    if not isinstance(data, dict):
        raise _fail(path, f"relationships.{other}", f"expected an object, got {type(data).__name__}")
    notes = _lines(data.get("notes")) + [f"shared: {s}" for s in _lines(data.get("sharedExperiences"))]
    notes += [f"recently: {s}" for s in _lines(data.get("recentInteractions"))]
    return LegacyRelationship(other=other, sentiment=_number(data.get("sentiment"), 0.0),
                              familiarity=_number(data.get("familiarity"), 0.0),
                              trust=_number(data.get("trust"), 0.5), notes="\n".join(notes))


@dataclass
class LegacyMemoryFile:
    """One ``memories/<agent>.json``, read; ``problems`` are the items that could not be read (skipped)."""

    path: Path
    agent_id: str
    memories: list[Memory]
    relationships: list[LegacyRelationship]
    problems: list[str]


def read_memory_file(path: Path) -> LegacyMemoryFile:
    """Read one memory file of the original engine; raises :class:`LegacyFormatError` if it is unusable."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise _fail(path, "", f"expected a JSON object (the agent's memory), got {type(data).__name__}")
    agent_id = data.get("agentId", path.stem)
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise _fail(path, "agentId", f"expected the agent id, got {agent_id!r}")
    problems: list[str] = []
    memories: list[Memory] = []
    for section, kind in _SECTIONS:
        items = data.get(section, [])
        if not isinstance(items, list):
            problems.append(str(_fail(path, section, f"expected a list, got {type(items).__name__}; section skipped")))
            continue
        for i, item in enumerate(items):
            try:
                memories.append(_memory(path, f"{section}[{i}]", item, kind))
            except LegacyFormatError as exc:
                problems.append(f"{exc}; skipped")
    relationships: list[LegacyRelationship] = []
    rels = data.get("relationships", {})
    if isinstance(rels, dict):
        for other, value in rels.items():
            try:
                relationships.append(_relationship(path, other, value))
            except LegacyFormatError as exc:
                problems.append(f"{exc}; skipped")
    else:
        problems.append(str(_fail(path, "relationships", f"expected an object, got {type(rels).__name__}; skipped")))
    return LegacyMemoryFile(path, agent_id.strip(), memories, relationships, problems)


def find_data_dir(path: Path) -> Path:
    """The original's ``data/`` directory: ``path`` itself, or ``path/data`` (the project's root)."""
    for candidate in (path, path / "data"):
        if (candidate / "memories").is_dir() or (candidate / "processed_tweets.json").is_file():
            return candidate
    raise LegacyFormatError(f"{path}: no memories/ directory and no processed_tweets.json here or in {path / 'data'}"
                            " (point at the original Puppet Engine's data/ directory)")


async def import_legacy(data_dir: Path, store: MemoryStore, db: Database, *,
                        agent_ids: Sequence[str] | None = None, now: float | None = None) -> ImportReport:
    """Import ``data_dir`` (see the module docstring); safe to run again (it adds nothing new then).

    ``agent_ids`` are the agents this engine runs (from the agent files): memory files of other
    agents are reported and skipped, and processed tweets are recorded for each of them. Without
    it, the agents are those that have a memory file.
    """
    report = ImportReport()
    root = find_data_dir(data_dir)
    known = list(dict.fromkeys(agent_ids)) if agent_ids is not None else None
    files: list[LegacyMemoryFile] = []
    memory_dir = root / "memories"
    for path in sorted(memory_dir.glob("*.json")) if memory_dir.is_dir() else []:
        try:
            loaded = read_memory_file(path)
        except LegacyFormatError as exc:
            report.problems.append(f"{exc}; file skipped")
            continue
        report.problems.extend(loaded.problems)
        if known is not None and loaded.agent_id not in known:
            report.problems.append(f"{path}: agentId: no agent file has the id {loaded.agent_id!r} "
                                   f"(known: {', '.join(known) or 'none'}); file skipped")
            continue
        files.append(loaded)
    if not memory_dir.is_dir():
        report.notes.append(f"{memory_dir}: not found; no memories to import")
    for loaded in files:
        await _import_memories(loaded, store, report)
    processed_path = root / "processed_tweets.json"
    tweet_ids: list[str] = []
    if processed_path.is_file():
        try:
            tweet_ids = read_processed_tweets(processed_path)
        except LegacyFormatError as exc:
            report.problems.append(f"{exc}; no mention ids imported")
    else:
        report.notes.append(f"{processed_path}: not found; no handled mentions to import")
    report.processed_tweet_ids = len(tweet_ids)
    targets = known if known is not None else [f.agent_id for f in files]
    for agent_id in targets:
        entry = report.agents.setdefault(agent_id, AgentImport(agent_id, "agent file only"))
        entry.handled_mentions_added = await mark_mentions_handled(db, agent_id, tweet_ids,
                                                                   time.time() if now is None else now)
    return report


async def _import_memories(loaded: LegacyMemoryFile, store: MemoryStore, report: ImportReport) -> None:
    entry = report.agents.setdefault(loaded.agent_id, AgentImport(loaded.agent_id, str(loaded.path)))
    entry.source = str(loaded.path)
    unique: dict[str, Memory] = {}
    for memory in loaded.memories:  # tweetHistory repeats recentPosts: keep the first of each key
        unique.setdefault(memory.key or "", memory)
    batch = list(unique.values())
    kinds = sorted({m.kind for m in batch})
    before = {k: await store.count(loaded.agent_id, k) for k in kinds}
    await store.add_many(loaded.agent_id, batch)
    for k in kinds:
        n = await store.count(loaded.agent_id, k) - before[k]
        if n:
            entry.added[k] += n
    entry.existing = len(batch) - sum(entry.added.values())
    for rel in loaded.relationships:
        created = await store.relationships.seed(loaded.agent_id, rel.other, sentiment=rel.sentiment,
                                                 familiarity=rel.familiarity, trust=rel.trust, notes=rel.notes)
        if created:
            entry.relationships_added += 1
        else:
            entry.relationships_existing += 1


async def mark_mentions_handled(db: Database, agent_id: str, tweet_ids: Iterable[str], now: float) -> int:
    """Record ``tweet_ids`` as mentions of ``agent_id`` already handled; returns how many were new.

    Two rows per tweet, both keyed so a second run changes nothing: the ``mentions`` row (decision
    ``skip:imported``) and a finished ``mention.received`` event under the key the mentions
    behaviour uses (``mention:<agent>:<tweet>``), so polling the tweet again schedules nothing.
    """
    return await mentions.mark_handled(db, agent_id, tweet_ids, now, IMPORTED_DECISION)
