"""``/metrics`` rendering: byte for byte what prometheus_client's ``generate_latest`` writes, whatever the labels hold."""

from __future__ import annotations

import difflib

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client import metrics as client_metrics
from prometheus_client.exposition import generate_latest

from hux.bot import exposition
from hux.bot.exposition import Exposition
from hux.bot.metrics import API_OUTCOMES, STAGE_OUTCOMES, STAGES, BotMetrics

HOSTILE_GROUPS = ['plain', 'quote " inside', "back\\slash", "new\nline", "ünïcødé 🚀", "", "} {x=\"1\"}", "a,b=c"]


def _busy(metrics: BotMetrics) -> None:
    for i, group in enumerate(HOSTILE_GROUPS * 3):
        metrics.messages_received.labels(source="telegram", group=metrics.group_label(f"{group}{i}")).inc(i + 1)
    for stage in STAGES:
        for outcome in STAGE_OUTCOMES:
            metrics.stage_results.labels(stage=stage, outcome=outcome).inc(3)
    for outcome in API_OUTCOMES:
        metrics.api_requests.labels(api="dexscreener", endpoint="tokens", outcome=outcome).inc(1e7)  # Go's exponent form
    for value in (0.001, 0.3, 4.0, 12.0, 1e9):
        metrics.api_request_seconds.labels(api="rugcheck", endpoint="report").observe(value)
        metrics.token_score.observe(value % 100)
    metrics.queue_length.set_function(lambda: 7)
    metrics.database_up.set(float("nan"))
    metrics.last_processed.set(-float("inf"))


def _same(a: bytes, b: bytes) -> None:
    if a != b:
        diff = "\n".join(difflib.unified_diff(b.decode().splitlines(), a.decode().splitlines(), lineterm="", n=0))
        pytest.fail(f"rendering differs from generate_latest:\n{diff[:3000]}")


@pytest.mark.parametrize("created", [False, True])
def test_the_body_is_what_generate_latest_writes(created: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_metrics, "_use_created", created)
    metrics = BotMetrics(process_metrics=False, group_label_limit=10)
    _busy(metrics)
    render = Exposition(metrics.registry)
    _same(render.render(), generate_latest(metrics.registry))
    metrics.stage_results.labels(stage="persist", outcome="failure").inc(5)   # values move, prefixes are reused
    metrics.messages_received.labels(source="replay", group="new group").inc()  # a new series appears
    _same(render.render(), generate_latest(metrics.registry))


def test_other_collectors_and_a_target_info_take_the_librarys_path() -> None:
    registry = CollectorRegistry(target_info={"service": "bot"})
    Counter("plain_total", "a counter", registry=registry).inc()
    Info("build", "build info", registry=registry).info({"version": "1", "mode": "demo"})
    Gauge("with_labels", "g", ["a"], registry=registry).labels(a='x"y').set(2)
    Histogram("h_seconds", "h", registry=registry).observe(0.2)
    _same(Exposition(registry).render(), generate_latest(registry))


def test_process_collectors_render_like_the_library() -> None:
    metrics = BotMetrics(process_metrics=True)
    body = Exposition(metrics.registry).render().decode()
    assert "process_resident_memory_bytes " in body and "python_info{" in body


def test_the_prefix_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exposition, "MAX_PREFIXES", 50)
    registry = CollectorRegistry()
    gauge = Gauge("many", "many series", ["n"], registry=registry)
    render = Exposition(registry)
    for n in range(200):
        gauge.labels(n=str(n)).set(n)
        render.render()
    assert len(render._prefixes) <= 50
    _same(render.render(), generate_latest(registry))
