"""Tests for bot.metrics: private registries, every recording method, text exposition."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import MAX_LABEL_CHARS, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_every_method_records_a_sample() -> None:
    m = Metrics()
    m.delivery("github", "issues", "accepted")
    m.delivery("github", "issues", "accepted")
    m.decision("gitlab", "model-stealing", "important")
    m.api_call("github", "post", 201)
    m.rate_limit("github", 4998)
    m.observe_processing("jira", 0.2)
    m.observe_ack(0.003)
    m.set_inbox(3, 12.5)
    got = samples(m)
    labels = (("event", "issues"), ("outcome", "accepted"), ("provider", "github"))
    assert got[("bugbar_deliveries_total", labels)] == 2.0
    decision = (("category", "model-stealing"), ("provider", "gitlab"), ("severity", "important"))
    assert got[("bugbar_decisions_total", decision)] == 1.0
    api = (("method", "POST"), ("provider", "github"), ("status", "201"))
    assert got[("bugbar_api_calls_total", api)] == 1.0
    assert got[("bugbar_rate_limit_remaining", (("provider", "github"),))] == 4998
    assert got[("bugbar_processing_seconds_count", (("provider", "jira"),))] == 1.0
    assert got[("bugbar_processing_seconds_sum", (("provider", "jira"),))] == 0.2
    assert got[("bugbar_ack_seconds_count", ())] == 1.0
    assert got[("bugbar_inbox_depth", ())] == 3
    assert got[("bugbar_inbox_oldest_age_seconds", ())] == 12.5


def test_empty_inbox_age_is_zero() -> None:
    m = Metrics()
    m.set_inbox(0, None)
    assert samples(m)[("bugbar_inbox_oldest_age_seconds", ())] == 0.0


def test_registries_are_private_and_independent() -> None:
    a, b = Metrics(), Metrics()
    a.delivery("github", "issues", "accepted")
    assert "bugbar_deliveries_total{" in a.render().decode()
    assert "bugbar_deliveries_total{" not in b.render().decode()
    assert REGISTRY.get_sample_value("bugbar_inbox_depth") is None


def test_long_label_values_are_clipped() -> None:
    m = Metrics()
    m.delivery("github", "e" * 500, "x" * 500)
    [key] = [k for k in samples(m) if k[0] == "bugbar_deliveries_total"]
    assert all(len(v) <= MAX_LABEL_CHARS for _, v in key[1])
