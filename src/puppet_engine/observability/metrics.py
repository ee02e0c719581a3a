"""Prometheus metrics: every metric the engine records, defined in one place.

All metrics live on the :class:`Metrics` object's own ``CollectorRegistry`` (plus the
process, platform and GC collectors), never on prometheus_client's global registry,
so several engines or tests in one process do not collide. Use the process-wide
instance from :func:`get_metrics`, or build one and pass it around::

    m = get_metrics()
    m.posts.labels(agent="coby").inc()
    with m.handler_latency.labels(type="post.due").time():
        ...

With ``ENABLE_METRICS=false`` (or ``Metrics(enabled=False)``) every metric is a
shared no-op: ``labels()`` returns it and ``inc``/``observe``/``set``/``time`` do
nothing, so recording costs one attribute lookup and one call.

Label values must stay low-cardinality: agent ids, event types, route templates
(``/agents/{agent_id}``, not the concrete path), outcomes — never tweet ids or text.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

NAMESPACE = "puppet"
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
"""Values of ``breaker_state``: 0 closed (healthy), 1 half-open (probing), 2 open (failing fast)."""

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_OVERHEAD = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_LAG = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


class _Noop:
    """One object standing in for every metric when metrics are disabled."""

    def labels(self, *args: Any, **kwargs: Any) -> _Noop:
        return self

    def inc(self, amount: float = 1) -> None:
        return None

    def dec(self, amount: float = 1) -> None:
        return None

    def set(self, value: float) -> None:
        return None

    def observe(self, amount: float) -> None:
        return None

    def time(self) -> nullcontext[None]:
        return nullcontext()

    def set_to_current_time(self) -> None:
        return None


_NOOP = _Noop()


class Metrics:
    """The engine's metrics. Attributes are prometheus_client metrics (or no-ops when disabled).

    Events: ``event_lag`` (seconds from due time to start, by ``type``), ``handler_latency``
    (by ``type``), split into ``event_upstream`` (waiting on X, the LLM, Solana, Jupiter) and
    ``event_overhead`` (the rest: the engine's own work), ``events_processed`` (``type``,
    ``outcome`` = done|retry|failed|skipped).
    HTTP: ``http_client_latency`` (``service`` = x|llm|solana|jupiter, ``outcome`` =
    ok|error|rate_limited|timeout), ``api_request_latency`` (``route`` template, ``status``).
    Agents: ``posts``, ``replies``, ``likes``, ``quotes`` (by ``agent``), ``agents``
    (number of agents by ``state`` = running|paused|error|stopped).
    Trading: ``trades`` (``agent``, ``outcome`` = confirmed|failed|rejected|dry_run),
    ``trade_volume_sol`` (``agent``), ``pnl_sol`` (``agent``).
    LLM: ``llm_tokens`` (``agent``, ``provider``, ``kind`` = prompt|completion),
    ``llm_cost_usd`` (``agent``, ``provider``).
    Review: ``review_decisions`` (``agent``, ``decision`` = approved|rejected|expired_dropped|expired_sent),
    ``review_rejections`` (``agent``, ``reason``).
    Engagement: ``engagement_samples`` (``agent``), ``engagement_lookups`` (``outcome``),
    ``engagement_rate`` and ``engagement_interactions_per_post`` (``agent``, settled posts).
    Health: ``errors`` (``component``), ``breaker_state`` (``dependency``; see BREAKER_STATES).
    Caches: ``cache_requests`` (``cache`` = x_user_by_id|x_user_by_username|x_tweet|jupiter_price,
    ``result`` = hit|miss).
    """

    def __init__(self, enabled: bool = True, *, process_metrics: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        if enabled and process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            if not enabled:
                return _NOOP
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            if not enabled:
                return _NOOP
            return Gauge(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...] = _FAST) -> Any:
            if not enabled:
                return _NOOP
            return Histogram(name, doc, labels, namespace=NAMESPACE, registry=self.registry, buckets=buckets)

        # events
        self.event_lag = histogram("event_lag_seconds", "Delay between an event's due time and its start", ("type",), _LAG)
        self.handler_latency = histogram("handler_latency_seconds", "Time spent handling one event", ("type",))
        self.event_upstream = histogram("event_upstream_seconds",
                                        "Time one event waited on X, the LLM, Solana RPC and Jupiter", ("type",))
        self.event_overhead = histogram("event_overhead_seconds",
                                        "Time one event took outside its upstream calls (the engine's own work)",
                                        ("type",), _OVERHEAD)
        self.events_processed = counter("events_processed_total", "Events finished, by type and outcome", ("type", "outcome"))
        # http
        self.http_client_latency = histogram(
            "http_client_latency_seconds", "Outgoing HTTP calls by service and outcome", ("service", "outcome"))
        self.api_request_latency = histogram(
            "api_request_latency_seconds", "API requests served, by route template and status", ("route", "status"))
        # social actions
        self.posts = counter("posts_total", "Posts published", ("agent",))
        self.replies = counter("replies_total", "Replies published", ("agent",))
        self.likes = counter("likes_total", "Tweets liked", ("agent",))
        self.quotes = counter("quotes_total", "Quote tweets published", ("agent",))
        # trading
        self.trades = counter("trades_total", "Trades attempted, by outcome", ("agent", "outcome"))
        self.trade_volume_sol = counter("trade_volume_sol_total", "SOL-equivalent volume of confirmed trades", ("agent",))
        self.pnl_sol = gauge("pnl_sol", "Realised plus unrealised profit and loss in SOL", ("agent",))
        # llm
        self.llm_tokens = counter("llm_tokens_total", "LLM tokens used", ("agent", "provider", "kind"))
        self.llm_cost_usd = counter("llm_cost_usd_total", "Estimated LLM spend in US dollars", ("agent", "provider"))
        # health
        self.errors = counter("errors_total", "Errors by component", ("component",))
        self.breaker_state = gauge("breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", ("dependency",))
        self.agents = gauge("agents", "Agents by state", ("state",))
        # human review (docs/review.md); reason: the rejection's reason, normalised, 60 characters at most
        self.review_decisions = counter("review_decisions_total", "Review decisions, by agent and decision",
                                        ("agent", "decision"))
        self.review_rejections = counter("review_rejections_total", "Rejected review items, by agent and reason",
                                         ("agent", "reason"))
        # engagement of the agents' posts (agents/behaviors/engagement.py)
        self.engagement_samples = counter("engagement_samples_total", "Post engagement samples taken", ("agent",))
        self.engagement_lookups = counter("engagement_lookups_total",
                                          "Metric lookups of up to 100 posts each, by outcome (ok, rate_limited)",
                                          ("outcome",))
        self.engagement_rate = gauge("engagement_rate",
                                     "Interactions per impression of the agent's settled posts", ("agent",))
        self.engagement_interactions_per_post = gauge("engagement_interactions_per_post",
                                                      "Mean interactions of the agent's settled posts", ("agent",))

        # cached reads (puppet_engine.caching): result = hit|miss
        self.cache_requests = counter("cache_requests_total", "Cached reads by cache and result", ("cache", "result"))

    def record_engagement(self, agent_id: str, result: dict[str, Any]) -> None:
        """What one ``engagement.sample`` round did (its event result)."""
        if result.get("sampled"):
            self.engagement_samples.labels(agent=agent_id).inc(result["sampled"])
        if result.get("calls"):
            self.engagement_lookups.labels(outcome="ok").inc(result["calls"])
        if result.get("rate_limited"):
            self.engagement_lookups.labels(outcome="rate_limited").inc()
        if result.get("rate") is not None:
            self.engagement_rate.labels(agent=agent_id).set(result["rate"])
        if result.get("interactions_per_post") is not None:
            self.engagement_interactions_per_post.labels(agent=agent_id).set(result["interactions_per_post"])

    def set_breaker(self, dependency: str, state: str) -> None:
        """Record a breaker transition; ``state`` is closed, half_open or open."""
        self.breaker_state.labels(dependency=dependency).set(BREAKER_STATES[state])

    def record_llm_usage(self, agent: str, provider: str, prompt_tokens: int, completion_tokens: int,
                         cost_usd: float = 0.0) -> None:
        """Tokens and cost of one LLM call."""
        if not self.enabled:
            return
        self.llm_tokens.labels(agent=agent, provider=provider, kind="prompt").inc(prompt_tokens)
        self.llm_tokens.labels(agent=agent, provider=provider, kind="completion").inc(completion_tokens)
        if cost_usd:
            self.llm_cost_usd.labels(agent=agent, provider=provider).inc(cost_usd)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this registry and its content type."""
        if not self.enabled:
            return b"# metrics disabled (ENABLE_METRICS=false)\n", CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _env_enabled() -> bool:
    return os.environ.get("ENABLE_METRICS", "true").strip().lower() not in ("0", "false", "no", "off")


_metrics: Metrics | None = None


def get_metrics() -> Metrics:
    """The process-wide metrics, created on first use from ``ENABLE_METRICS`` (default true)."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics(enabled=_env_enabled())
    return _metrics


def configure_metrics(enabled: bool) -> Metrics:
    """Replace the process-wide metrics (engine startup, from ``Settings.enable_metrics``)."""
    global _metrics
    _metrics = Metrics(enabled=enabled)
    return _metrics


def render_latest() -> tuple[bytes, str]:
    """``(body, content_type)`` of the process-wide metrics, for ``GET /metrics``."""
    return get_metrics().render()
