"""Times in the history's interfaces: ISO 8601 in, UTC out (epoch seconds inside)."""

from __future__ import annotations

from datetime import UTC, datetime

from puppet_engine.errors import ConfigError


def parse_time(text: str, *, name: str = "time") -> float:
    """Epoch seconds of an ISO 8601 time (``2026-12-01T03:12``, ``…Z``, ``…+02:00``; UTC when no
    offset is given). Raises :class:`ConfigError` naming ``name`` and the text."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not an ISO 8601 time (e.g. 2026-12-01T03:12 or "
                          f"2026-12-01T03:12:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def show_time(epoch: float | None) -> str | None:
    """``epoch`` as ISO 8601 in UTC, to the second (``2026-12-01T03:12:00Z``)."""
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # beyond what a datetime holds: said as it is
        return f"{epoch:.0f} (epoch seconds)"
