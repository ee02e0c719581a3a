"""Repositories: the engine's SQL, one module per aggregate, asked in domain words.

``events`` (the queue and history), ``outbox`` (actions), ``agent_states``, ``agents``,
``mentions``, ``trades``, ``prices``, ``llm_calls``, ``memories`` (counts; the memory
stores own the rest), ``activity`` (the live feed across tables). Functions take a
``Database`` (or, for the engine's hot path, the connection of its transaction) and
return plain rows and values: ``events.records`` turns rows into ``Event``/``Action``.
Hot statements are built once (:func:`puppet_engine.storage.sql.cached`).
"""
