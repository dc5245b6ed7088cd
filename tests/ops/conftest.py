"""Real Prometheus and Alertmanager processes for the ops tests, on ephemeral loopback ports."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, require_binary

READY_TIMEOUT = 60.0


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {timeout}s: {log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class PromProcess:
    """A real Prometheus over ``data_dir`` with the admin API on; restartable on the same port."""

    data_dir: Path
    config: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = require_binary("prometheus")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-admin-api",
                    "--web.enable-lifecycle",
                    "--storage.tsdb.retention.time=100y",
                    "--log.level=warn",
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.starts += 1
        _wait_ready(self.url, self.proc, self.log)

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def prom_factory(tmp_path: Path):
    """``prom_factory(config_text=..., data_dir=...)`` -> a started PromProcess, stopped at teardown."""
    made: list[PromProcess] = []

    def make(config_text: str = "global:\n  scrape_interval: 1s\n", data_dir: Path | None = None,
             start: bool = True) -> PromProcess:
        base = tmp_path / f"prom{len(made)}"
        base.mkdir()
        config = base / "prometheus.yml"
        config.write_text(config_text, encoding="utf-8")
        proc = PromProcess(data_dir or base / "data", config, base / "prometheus.log")
        made.append(proc)
        if start:
            proc.start()
        return proc

    yield make
    for proc in made:
        proc.stop()


@dataclass
class AmProcess:
    config: Path
    storage: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = require_binary("prometheus-alertmanager")
        self.storage.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.path={self.storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        _wait_ready(self.url, self.proc, self.log)

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


DEFAULT_AM_CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
"""


@pytest.fixture
def am_factory(tmp_path: Path):
    made: list[AmProcess] = []

    def make(config_text: str = DEFAULT_AM_CONFIG, *, config: Path | None = None) -> AmProcess:
        """An Alertmanager on ``config_text``, or on the file ``config`` where it lies (a rendered run
        directory: its templates beside it); its storage and log in a directory of its own."""
        base = tmp_path / f"am{len(made)}"
        base.mkdir()
        if config is None:
            config = base / "alertmanager.yml"
            config.write_text(config_text, encoding="utf-8")
        proc = AmProcess(config, base / "data", base / "alertmanager.log")
        made.append(proc)
        proc.start()
        return proc

    yield make
    for proc in made:
        proc.stop()


BLOCK_MS = 2 * 3600 * 1000


def split_by_block(openmetrics: str) -> dict[int, str]:
    """OpenMetrics text cut into one document per 2 h TSDB block window.

    promtool (2.42) re-reads its whole input once per 2 h window; feeding it one
    window per file keeps backfilling days of history fast.
    """
    windows: dict[int, list[tuple[str, list[str], str]]] = {}
    headers: list[str] = []
    family = ""
    for line in openmetrics.splitlines():
        if not line or line == "# EOF":
            continue
        if line.startswith("#"):
            if line.startswith("# HELP"):
                headers, family = [line], line.split()[2]
            else:
                headers.append(line)
            continue
        window = int(float(line.rsplit(" ", 1)[1]) * 1000) // BLOCK_MS
        windows.setdefault(window, []).append((family, headers, line))
    out = {}
    for window, items in windows.items():
        text: list[str] = []
        current = None
        for name, family_headers, line in items:
            if name != current:
                text.extend(family_headers)
                current = name
            text.append(line)
        out[window] = "\n".join(text + ["# EOF"]) + "\n"
    return out


def create_blocks(openmetrics: str, data_dir: Path, tmp_path: Path) -> None:
    """Backfill ``openmetrics`` text into ``data_dir`` with promtool (real TSDB blocks)."""
    from concurrent.futures import ThreadPoolExecutor

    promtool = require_binary("promtool")
    data_dir.mkdir(parents=True, exist_ok=True)
    work = tmp_path / f"om-{time.monotonic_ns()}"
    work.mkdir()

    def run(item: tuple[int, str]) -> None:
        window, text = item
        source = work / f"{window}.om"
        source.write_text(text, encoding="utf-8")
        done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data_dir)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run, sorted(split_by_block(openmetrics).items())))


def known_series(end: float, *, hours: float = 3.0, step: float = 15.0, targets: int = 3,
                 extra_job: str | None = None) -> str:
    """OpenMetrics text with exactly known values: counters, gauges, `up` per target.

    Values are deterministic functions of the timestamp so a test can compute
    what any query must answer.
    """
    start = end - hours * 3600
    n = int(hours * 3600 / step)
    lines = ["# HELP hux_messages_received_total Messages.", "# TYPE hux_messages_received_total counter"]
    jobs = [("hux-bot", f"127.0.0.1:{8000 + i}") for i in range(targets)]
    if extra_job:
        jobs.append((extra_job, "10.0.0.9:9999"))
    for job, instance in jobs:
        for i in range(n):
            ts = start + i * step
            lines.append(f'hux_messages_received_total{{job="{job}",instance="{instance}"}} {i * 3 + 1} {ts:.3f}')
    lines += ["# HELP hux_queue_length Queue.", "# TYPE hux_queue_length gauge"]
    for job, instance in jobs:
        for i in range(n):
            ts = start + i * step
            lines.append(f'hux_queue_length{{job="{job}",instance="{instance}"}} {(i * 7) % 23 + 0.5} {ts:.3f}')
    lines += ["# HELP up Up.", "# TYPE up gauge"]
    for job, instance in jobs:
        for i in range(n):
            ts = start + i * step
            lines.append(f'up{{job="{job}",instance="{instance}"}} {0 if i % 97 == 5 else 1} {ts:.3f}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
