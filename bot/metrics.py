"""Prometheus metrics for bugbar, kept in a private registry so tests can build many apps.

The web server exposes :meth:`Metrics.render` at ``GET /metrics``; handlers and provider
adapters call the recording methods. Label values that come from outside (event names,
processor outcomes) are clipped so a misbehaving sender cannot blow up the series count.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "MAX_LABEL_CHARS", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""Content type of :meth:`Metrics.render` output (Prometheus text exposition 0.0.4)."""

MAX_LABEL_CHARS = 64

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _label(value: object) -> str:
    text = str(value)
    if len(text) > MAX_LABEL_CHARS:
        return text[:MAX_LABEL_CHARS]
    return text


class Metrics:
    """All of bugbar's metrics, registered in ``self.registry`` (never the global registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deliveries = Counter(
            "bugbar_deliveries",
            "Webhook deliveries by provider, event name and outcome (accepted, duplicate, "
            "ignored, unauthorized, malformed, too_large, the processor's outcome, failed, dead).",
            ["provider", "event", "outcome"],
            registry=r,
        )
        self.decisions = Counter(
            "bugbar_decisions",
            "Triage decisions by provider, threat category and suggested severity.",
            ["provider", "category", "severity"],
            registry=r,
        )
        self.api_calls = Counter(
            "bugbar_api_calls",
            "Tracker API calls by provider, HTTP method and response status.",
            ["provider", "method", "status"],
            registry=r,
        )
        self.rate_limit_remaining = Gauge(
            "bugbar_rate_limit_remaining",
            "Requests left in the provider's current rate-limit window, as last reported.",
            ["provider"],
            registry=r,
        )
        self.inbox_depth = Gauge(
            "bugbar_inbox_depth",
            "Deliveries stored and waiting to be processed (including those waiting to retry).",
            registry=r,
        )
        self.inbox_oldest_age = Gauge(
            "bugbar_inbox_oldest_age_seconds",
            "Age of the oldest pending delivery (0 when the inbox is empty).",
            registry=r,
        )
        self.processing_seconds = Histogram(
            "bugbar_processing_seconds",
            "Time spent processing one delivery attempt.",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ack_seconds = Histogram(
            "bugbar_ack_seconds",
            "Time from receiving a webhook request to acknowledging it with 2xx.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def delivery(self, provider: str, event: str, outcome: str) -> None:
        """Count one delivery outcome."""
        self.deliveries.labels(_label(provider), _label(event), _label(outcome)).inc()

    def decision(self, provider: str, category: str, severity: str) -> None:
        """Count one triage decision (``category`` may be ``none`` for non-threats)."""
        self.decisions.labels(_label(provider), _label(category), _label(severity)).inc()

    def api_call(self, provider: str, method: str, status: int | str) -> None:
        """Count one tracker API call."""
        self.api_calls.labels(_label(provider), _label(method.upper()), _label(status)).inc()

    def rate_limit(self, provider: str, remaining: float) -> None:
        """Record the provider's latest remaining rate-limit budget."""
        self.rate_limit_remaining.labels(_label(provider)).set(remaining)

    def observe_processing(self, provider: str, seconds: float) -> None:
        """Record how long one processing attempt took."""
        self.processing_seconds.labels(_label(provider)).observe(max(0.0, seconds))

    def observe_ack(self, seconds: float) -> None:
        """Record how long it took to acknowledge a delivery."""
        self.ack_seconds.observe(max(0.0, seconds))

    def set_inbox(self, depth: int, oldest_age_seconds: float | None) -> None:
        """Update the inbox gauges (the server calls this from the store on every scrape)."""
        self.inbox_depth.set(depth)
        self.inbox_oldest_age.set(oldest_age_seconds or 0.0)

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)
