"""Backups and restores in the HA topology, with real processes on loopback, driven through the CLI.

One HA stack is backed up (replica a stopped: the snapshot comes from b; VictoriaMetrics' snapshot is
archived and deleted afterwards); the archive is then restored into a fresh HA stack, which must answer
for a known series with the sample counts the first one had: each replica from the Prometheus snapshot,
VictoriaMetrics from its own. The first stack is stopped before the second starts (the machine is small).
"""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from hux.ops import archive as arc
from hux.stack.control import SupervisedComponent
from hux.stack.native import NativeStack
from tests.conftest import require_binary
from tests.stack.conftest import PORT_NAMES, StackUnderTest, stack_env, start_stack, stop_stack, wait_for

pytestmark = pytest.mark.integration

HA_PORTS = ("prometheus_b", "alertmanager_b", "alertmanager_c", "alertmanager_cluster", "alertmanager_b_cluster",
            "alertmanager_c_cluster", "victoria_metrics")
CONFIG = """
[stack]
topology = "ha"

[alertmanager]
peer_timeout = "500ms"
group_interval = "5s"

[victoria_metrics]
latency_offset = "1s"
"""
SERIES = 'up{job="bot"}'


def _ha_stack(home: Path) -> StackUnderTest:
    require_binary("victoria-metrics")
    return start_stack(home, config_extra=CONFIG, port_names=(*PORT_NAMES, *HA_PORTS),
                       prometheus='bot_scrape_interval = "1s"\nbot_scrape_timeout = "500ms"\n')


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    stack = _ha_stack(tmp_path_factory.mktemp("ha-first"))
    try:
        yield stack
    finally:
        stop_stack(stack)


def _get(stack: StackUnderTest, component: str, path: str, **params: str) -> Any:
    auth = None if component == "victoria_metrics" else stack.credentials
    response = httpx.get(stack.url(component) + path, params=params, auth=auth, timeout=10)
    response.raise_for_status()
    return response.json() if "json" in response.headers.get("content-type", "") else response.text


def _samples(stack: StackUnderTest, component: str, start: float, end: float) -> int:
    """How many samples of SERIES ``component`` holds between start and end (one series: the bot's target)."""
    if component == "victoria_metrics":
        response = httpx.get(stack.url(component) + "/api/v1/export", timeout=10,
                             params={"match[]": SERIES, "start": f"{start:.3f}", "end": f"{end:.3f}"})
        response.raise_for_status()
        text = response.text      # one JSON object per line
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        return sum(len(line["timestamps"]) for line in lines)
    body = _get(stack, component, "/api/v1/query", query=f"{SERIES}[{int(end - start)}s]", time=f"{end:.3f}")
    return sum(len(series["values"]) for series in body["data"]["result"])


def _manifest(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(arc.MANIFEST)
        assert member is not None
        return json.loads(member.read())


def _archives(stack: StackUnderTest) -> list[Path]:
    return sorted((stack.home / "data" / "backups").glob("hux-prometheus-*.tar.gz"))


@pytest.fixture(scope="module")
def backed_up(first: StackUnderTest) -> dict[str, Any]:
    """A backup of ``first`` taken with replica a stopped, the known series' counts and a silence."""
    wait_for(lambda: _samples(first, "victoria_metrics", time.time() - 60, time.time()) >= 20, 90,
             "VictoriaMetrics to hold 20 s of the bot's up series")
    silence = {"matchers": [{"name": "alertname", "value": "HaBackupDrill", "isRegex": False, "isEqual": True}],
               "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5)),
               "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
               "createdBy": "ha backup test", "comment": "kept across the restore"}
    made = httpx.post(first.url("alertmanager_b") + "/api/v2/silences", json=silence, auth=first.credentials,
                      timeout=10)
    made.raise_for_status()
    replica_a = SupervisedComponent(NativeStack(first.paths), "prometheus", timeout=60)
    replica_a.stop()
    try:
        # a window every part holds by now: older than the verification margin and VictoriaMetrics' offset
        end = time.time() - 15
        window = (end - 15, end)
        counts = {"prometheus_b": _samples(first, "prometheus_b", *window),
                  "victoria_metrics": _samples(first, "victoria_metrics", *window)}
        result = first.hux("backup", "prometheus", "--no-prune", timeout=180)
    finally:
        replica_a.start()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    archives = _archives(first)
    assert len(archives) == 1, output
    return {"archive": archives[0], "output": output, "window": window, "counts": counts,
            "silence_comment": silence["comment"]}


def test_a_backup_with_replica_a_down_snapshots_b_and_victoria_metrics(first: StackUnderTest, backed_up) -> None:
    output, manifest = backed_up["output"], _manifest(backed_up["archive"])
    assert "replica b" in output and "replica a at" in output, output
    assert manifest["topology"] == "ha"
    assert manifest["prometheus"]["replica"] == "b"
    assert manifest["prometheus"]["url"] == first.url("prometheus_b")
    assert [d["replica"] for d in manifest["prometheus"]["replicas_down"]] == ["a"]
    assert manifest["alertmanager"]["silences"] >= 1
    vm = manifest["victoria_metrics"]
    assert manifest["contents"]["victoria_metrics_snapshot"] == "victoria_metrics/snapshot"
    files = [f["path"] for f in manifest["files"] if f["path"].startswith("victoria_metrics/snapshot/")]
    assert len(files) == vm["files"] > 0
    # the snapshot's symlinked parts are in the archive as files: the data parts and the index
    assert any(p.startswith("victoria_metrics/snapshot/data/small/") for p in files), files[:10]
    assert any(p.startswith("victoria_metrics/snapshot/indexdb/") for p in files), files[:10]
    assert vm["verification"]["queries"], vm
    # and VictoriaMetrics' snapshot is gone: from its API and from every snapshots/ directory it keeps
    assert _get(first, "victoria_metrics", "/snapshot/list")["snapshots"] == []
    storage = first.paths.data / "victoria_metrics"
    leftovers = [p for p in storage.rglob("snapshots/*")]
    assert leftovers == [], leftovers

    verified = first.hux("backups", "verify", str(backed_up["archive"]))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "topology ha" in verified.stdout
    assert "replica b at" in verified.stdout
    assert f"VictoriaMetrics snapshot: {vm['files']} file(s) ({vm['snapshot']})" in verified.stdout


def test_a_backup_with_victoria_metrics_down_keeps_the_replica_and_says_what_is_missing(
        first: StackUnderTest, backed_up) -> None:
    vm = SupervisedComponent(NativeStack(first.paths), "victoria_metrics", timeout=60)
    vm.stop()
    try:
        result = first.hux("backup", "prometheus", "--no-prune", "--no-silences", timeout=180)
    finally:
        vm.start()
    output = result.stdout + result.stderr
    assert result.returncode == 3, output          # done, needs attention
    assert "VictoriaMetrics is not in this backup" in output
    newest = _archives(first)[-1]
    assert newest != backed_up["archive"]
    manifest = _manifest(newest)
    assert manifest["prometheus"]["replica"] == "a"
    assert manifest["contents"]["victoria_metrics_snapshot"] is None
    assert "error" in manifest["victoria_metrics"]
    newest.unlink()


def test_a_restore_into_a_fresh_ha_stack_brings_back_every_part(first: StackUnderTest, backed_up,
                                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    archive = backed_up["archive"]
    stop_stack(first)
    fresh = _ha_stack(tmp_path_factory.mktemp("ha-fresh"))
    try:
        # an archive of the single topology is refused by the HA stack, nothing changed
        single = _single_topology_archive(tmp_path_factory.mktemp("single"))
        refused = fresh.hux("restore", "prometheus", str(single))
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "backup of the single topology, but this stack runs the ha topology" in refused.stderr

        started = time.monotonic()
        result = fresh.hux("restore", "prometheus", str(archive), timeout=400)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        print(f"HA restore: {time.monotonic() - started:.1f} s")
        for step in ("replica a: verify restored data", "replica b: verify restored data",
                     "verify VictoriaMetrics data", "re-import silences"):
            assert step in output, output
        window = backed_up["window"]
        counts = backed_up["counts"]
        assert counts["prometheus_b"] > 0 and counts["victoria_metrics"] > 0, counts
        # each replica holds replica b's samples, VictoriaMetrics its own
        assert _samples(fresh, "prometheus", *window) == counts["prometheus_b"]
        assert _samples(fresh, "prometheus_b", *window) == counts["prometheus_b"]
        assert _samples(fresh, "victoria_metrics", *window) == counts["victoria_metrics"]
        silences = _get(fresh, "alertmanager_c", "/api/v2/silences")
        assert any(s["comment"] == backed_up["silence_comment"] for s in silences), silences
        # the previous data went only after the restored data verified
        assert not list(fresh.paths.data.glob("*.pre-restore-*"))
    finally:
        stop_stack(fresh)


def test_an_ha_archive_is_refused_by_a_single_stack(backed_up, tmp_path: Path) -> None:
    home = tmp_path / "single"
    home.mkdir()
    stack = StackUnderTest(home=home, ports={}, env=stack_env(home))
    stack.config.write_text("")
    result = stack.hux("restore", "prometheus", str(backed_up["archive"]))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "is a backup of the ha topology, but this stack runs the single topology" in result.stderr
    assert not (home / "data" / "prometheus").exists()


def _single_topology_archive(directory: Path) -> Path:
    """A Prometheus archive as hux wrote it before topologies were recorded (no ``topology``: single)."""
    block = directory / "src" / "01HX0000000000000000000000"
    block.mkdir(parents=True)
    (block / "meta.json").write_text('{"ulid": "01HX0000000000000000000000", "minTime": 0, "maxTime": 1}')
    entries = arc.entries_from_dir(directory / "src", "prometheus/snapshot")
    path, _ = arc.write_archive(directory, "prometheus", entries,
                                {"contents": {"prometheus_snapshot": "prometheus/snapshot"},
                                 "prometheus": {"blocks": []}, "verification": {"queries": []}})
    return path
