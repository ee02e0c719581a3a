"""Logging redaction, metrics, tracing and health aggregation."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from puppet_engine.errors import ConfigError
from puppet_engine.observability import (
    ComponentHealth,
    HealthRegistry,
    Metrics,
    bind_context,
    configure_logging,
    configure_metrics,
    configure_tracing,
    current_trace_id,
    get_logger,
    log_context,
    redact,
    render_latest,
    set_level,
    shutdown_tracing,
    span,
    unbind_context,
    update_secrets,
)
from puppet_engine.observability.logging import get_level

API_KEY = "sk-live-THISISASECRETKEY0001"
PRIVATE_KEY = "4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi" * 2



def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_standard_fields_and_context(log_stream):
    configure_logging("INFO", "json", [], stream=log_stream)
    log = get_logger("puppet_engine.test")
    with log_context(agent_id="coby", event_id="ev-1"):
        log.info("post.sent", tweet_id="123")
    bind_context(agent_id="nova")
    log.warning("rate.limited")
    unbind_context("agent_id")
    log.info("plain")
    first, second, third = lines(log_stream)
    assert first["event"] == "post.sent" and first["level"] == "info" and first["logger"] == "puppet_engine.test"
    assert first["agent_id"] == "coby" and first["event_id"] == "ev-1" and first["tweet_id"] == "123"
    assert first["timestamp"].endswith("Z")
    assert second["agent_id"] == "nova" and second["level"] == "warning"
    assert "agent_id" not in third


def test_secrets_are_redacted_from_every_field_recursively(log_stream):
    configure_logging("DEBUG", "json", [API_KEY, PRIVATE_KEY, "ab"], stream=log_stream)
    log = get_logger("puppet_engine.test")
    log.info(f"calling with {API_KEY}",
             request={"headers": {"X-Trace": f"k={API_KEY}"}, "body": [PRIVATE_KEY, {"deep": (API_KEY,)}]},
             authorization="Bearer AAAAAAAAAAAAAAAAAAAAAbcdefghij",
             note="header was Bearer zzzzzzzzzzzzzzzzzz",
             private_key="never-registered-value",
             prompt_tokens=12, word="table about labs")
    logging.getLogger("httpx2").info("foreign line %s", PRIVATE_KEY)
    try:
        raise RuntimeError(f"upstream echoed {API_KEY}")
    except RuntimeError:
        log.exception("call.failed")
    output = log_stream.getvalue()
    for secret in (API_KEY, PRIVATE_KEY, "AAAAAAAAAAAAAAAAAAAAAbcdefghij", "zzzzzzzzzzzzzzzzzz", "never-registered-value"):
        assert secret not in output
    first, foreign, failed = lines(log_stream)
    assert first["request"]["headers"]["X-Trace"] == "k=***"
    assert first["request"]["body"][1] == {"deep": ["***"]}
    assert first["note"] == "header was Bearer ***"
    assert first["prompt_tokens"] == 12, "counts named *_tokens are not secrets"
    assert first["word"] == "table about labs", "secrets shorter than 4 characters are ignored"
    assert foreign["event"] == "foreign line ***" and foreign["logger"] == "httpx2"
    assert "RuntimeError: upstream echoed ***" in failed["exception"]


def test_secret_added_at_runtime_is_redacted(log_stream):
    configure_logging("INFO", "json", [], stream=log_stream)
    log = get_logger("t")
    rotated = "rotated-key-0987654321"
    update_secrets([rotated])
    log.info("using", key_id=f"id:{rotated}")
    assert rotated not in log_stream.getvalue()
    assert redact(f"x {rotated} y") == "x *** y"


def test_credential_shapes_are_redacted_without_registration():
    keypair = "[" + ",".join(str(i % 256) for i in range(64)) + "]"
    signature = "5" * 88  # a transaction signature is 64 bytes of base58 too: it must stay
    assert redact(f"secret key: {keypair}") == "secret key: ***"
    assert redact(f"private_key={'3' * 88}") == "private_key=***"
    assert redact(f"sig {signature}") == f"sig {signature}"
    assert redact("-----BEGIN EC PRIVATE KEY-----\nabc\n-----END EC PRIVATE KEY-----") == "***"
    assert redact('OAuth oauth_consumer_key="ck", oauth_signature="sig%3D"') == (
        'OAuth oauth_consumer_key="***", oauth_signature="***"')


def test_console_format_and_runtime_level(log_stream):
    configure_logging("WARNING", "console", [API_KEY], stream=log_stream)
    log = get_logger("console.test")
    log.info("hidden.at.warning")
    set_level("debug")
    assert get_level() == "DEBUG"
    log.debug("shown.after.change", key=API_KEY)
    output = log_stream.getvalue()
    assert "hidden.at.warning" not in output
    assert "shown.after.change" in output and API_KEY not in output and "***" in output


def test_bad_logging_settings_are_config_errors(log_stream):
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        configure_logging("INFO", "xml", [], stream=log_stream)
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        set_level("LOUD")


def test_metrics_render_and_change():
    metrics = Metrics()
    metrics.posts.labels(agent="coby").inc()
    metrics.trades.labels(agent="ledger", outcome="confirmed").inc(2)
    metrics.trade_volume_sol.labels(agent="ledger").inc(0.05)
    metrics.handler_latency.labels(type="post.due").observe(0.2)
    metrics.event_lag.labels(type="post.due").observe(3.0)
    metrics.record_llm_usage("coby", "openai", 100, 20, cost_usd=0.001)
    metrics.set_breaker("x", "open")
    metrics.agents.labels(state="running").set(3)
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'puppet_posts_total{agent="coby"} 1.0' in text
    assert 'puppet_trades_total{agent="ledger",outcome="confirmed"} 2.0' in text
    assert 'puppet_llm_tokens_total{agent="coby",kind="completion",provider="openai"} 20.0' in text
    assert 'puppet_breaker_state{dependency="x"} 2.0' in text
    assert 'puppet_handler_latency_seconds_count{type="post.due"} 1.0' in text
    assert "process_cpu_seconds_total" in text or "python_info" in text
    metrics.posts.labels(agent="coby").inc()
    assert 'puppet_posts_total{agent="coby"} 2.0' in metrics.render()[0].decode()


def test_two_metrics_objects_do_not_collide():
    a, b = Metrics(process_metrics=False), Metrics(process_metrics=False)
    a.likes.labels(agent="n").inc()
    assert 'puppet_likes_total{agent="n"}' not in b.render()[0].decode()


def test_disabled_metrics_are_noops(monkeypatch):
    metrics = Metrics(enabled=False)
    metrics.posts.labels(agent="coby").inc()
    with metrics.handler_latency.labels(type="x").time():
        pass
    metrics.pnl_sol.labels(agent="a").set(1.5)
    metrics.record_llm_usage("a", "fake", 1, 1, 1.0)
    metrics.set_breaker("x", "closed")
    body, _ = metrics.render()
    assert b"puppet_" not in body and b"disabled" in body
    try:
        configure_metrics(False)
        assert b"disabled" in render_latest()[0]
        configure_metrics(True).quotes.labels(agent="z").inc()
        assert b'puppet_quotes_total{agent="z"} 1.0' in render_latest()[0]
    finally:
        configure_metrics(True)


def test_tracing_off_is_a_cheap_noop():
    configure_tracing("none")
    with span("event.handle", agent_id="coby") as current:
        current.set_attribute("k", "v")
        assert current_trace_id() is None
    assert span("a") is span("b"), "one shared no-op object when off"


def test_tracing_console_exports_spans_and_links_logs(log_stream):
    out = io.StringIO()
    configure_tracing("console", stream=out)
    configure_logging("INFO", "json", [], stream=log_stream)
    try:
        with span("event.handle", agent_id="coby", attempt=1, payload={"x": 1}, missing=None):
            trace_id = current_trace_id()
            get_logger("t").info("inside")
        with pytest.raises(ValueError), span("event.fail"):
            raise ValueError("bad")
    finally:
        shutdown_tracing()
    assert trace_id is not None and len(trace_id) == 32
    assert lines(log_stream)[0]["trace_id"] == trace_id
    exported = out.getvalue()
    assert '"name": "event.handle"' in exported and '"agent_id": "coby"' in exported
    assert '"name": "event.fail"' in exported and '"status_code": "ERROR"' in exported
    assert current_trace_id() is None


def test_tracing_rejects_unknown_exporter_and_explains_missing_otlp():
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        configure_tracing("zipkin")
    try:
        import opentelemetry.exporter.otlp  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install opentelemetry-exporter-otlp"):
            configure_tracing("otlp")
    else:
        configure_tracing("otlp")
        shutdown_tracing()


async def test_health_aggregation():
    registry = HealthRegistry()

    async def ok() -> None:
        return None

    async def slow() -> str:
        await asyncio.sleep(5)
        return "ok"

    async def degraded() -> tuple[str, str]:
        return "degraded", "429 storm, backing off"

    async def broken() -> str:
        raise ConnectionError(f"refused with key {API_KEY}")

    registry.register("database", ok)
    registry.register("llm", degraded)
    report = await registry.check_all()
    assert report.status == "degraded"
    assert report.to_dict()["components"]["llm"]["detail"] == "429 storm, backing off"
    assert all(c.latency_ms is not None and c.latency_ms >= 0 for c in report.components)

    registry.register("dashboard", broken, critical=False)
    assert (await registry.check_all()).status == "degraded", "non-critical down only degrades"

    registry.register("x", slow, timeout=0.01)
    report = await registry.check_all()
    assert report.status == "down"
    by_name = {c.name: c for c in report.components}
    assert by_name["x"].detail == "check timed out after 0.01s"
    assert by_name["dashboard"].status == "down" and API_KEY not in by_name["dashboard"].detail
    assert by_name["dashboard"].detail.startswith("ConnectionError: refused with key")

    registry.unregister("x")
    registry.unregister("dashboard")
    registry.unregister("llm")

    async def explicit() -> ComponentHealth:
        return ComponentHealth("ignored-name", "ok", "v16", latency_ms=1.5)

    registry.register("postgres", explicit)
    report = await registry.check_all()
    assert report.status == "ok"
    assert report.to_dict() == {"status": "ok", "components": {
        "database": {"status": "ok", "detail": "", "latency_ms": report.components[0].latency_ms, "critical": True},
        "postgres": {"status": "ok", "detail": "v16", "latency_ms": 1.5, "critical": True}}}


def test_thousands_of_secrets_sharing_a_prefix_are_all_redacted() -> None:
    """10,000 agents' X bearer tokens all start with AAAA…: each one is still found, longest first."""
    import random

    from puppet_engine.observability.logging import Redactor

    rng = random.Random(3)
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    bearers = ["AAAAAAAAAAAAAAAAAAAAA" + "".join(rng.choice(alnum) for _ in range(80)) for _ in range(3000)]
    tokens = [f"18670{i:014d}-" + "".join(rng.choice(alnum) for _ in range(40)) for i in range(3000)]
    redactor = Redactor()
    for bearer, token in zip(bearers, tokens, strict=True):  # added one agent at a time, as agents start
        redactor.add([bearer, token])
    redactor.add([tokens[7][:30]])  # a secret that is the start of a longer one
    line = f"x {bearers[1234]} y {tokens[7]} z {tokens[7][:30]}! AAAAAAAAAAAAAAAAAAAAAnot-a-key 18670 ok"
    assert redactor.text(line) == "x *** y *** z ***! AAAAAAAAAAAAAAAAAAAAAnot-a-key 18670 ok"
