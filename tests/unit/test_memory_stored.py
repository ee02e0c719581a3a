"""Memory.stored: the search's unchecked construction gives the same memory as the checked one."""

from __future__ import annotations

import dataclasses

from puppet_engine.memory import Memory


def test_a_stored_memory_is_the_memory_init_builds_with_every_field_set() -> None:
    values = dict(id="m1", agent_id="coby", kind="post", content="gm", importance=0.7, created_at=12.5,
                  metadata={"tweet_id": "42"}, key="k", embedder="hashing-384", dim=384)
    stored = Memory.stored(**values)
    built = Memory(**values)
    assert stored == built and repr(stored) == repr(built)
    # Every field of the dataclass, the ones compare leaves out included: a new field cannot be forgotten.
    assert set(vars(stored)) == {f.name for f in dataclasses.fields(Memory)}
    assert stored.embedding is None
