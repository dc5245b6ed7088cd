"""Capacity of one Prometheus (and of VictoriaMetrics behind remote write) with synthetic targets.

Method (docs/scaling.md, "Capacity"):

* a synthetic exporter (this process, one thread per request) serves ``--targets`` scrape
  targets of ``--series`` series each: counters that grow at every scrape, one
  ``shard`` label per target, so every series is distinct and every sample changes;
* the real Prometheus (the Debian package the native stack runs) scrapes them every
  ``--interval`` (15 s) from a fresh TSDB; after ``--warmup`` seconds (the series exist
  and the first head chunks are cut) its CPU (utime + stime from /proc) and resident
  memory are read over ``--window`` seconds, with the head series it reports;
* one step per size in ``--sizes`` (total active series); a last step adds
  VictoriaMetrics (the Debian ``victoria-metrics`` package, single node) as a
  ``remote_write`` target at the largest size and reads its CPU, memory and rows
  inserted per second, and what remote write costs Prometheus.

Everything binds 127.0.0.1 on free ports, in a temporary directory; each process is
stopped at the end of its step. Bounded: about (warmup + window) per step.

    .venv/bin/python bench/scaling_capacity.py                    # 100k, 200k, 400k series (about 8 min)
    .venv/bin/python bench/scaling_capacity.py --sizes 20000 --window 30 --warmup 35
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from _stack import free_port  # noqa: E402

from hux.monitoring.durations import duration_seconds  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


class SyntheticTargets:
    """``targets`` metric pages of ``series`` counters each at /metrics/<i>; values grow at every scrape."""

    def __init__(self, targets: int, series: int) -> None:
        self.targets, self.series = targets, series
        self.scrapes = [0] * targets
        names = [f'hux_synthetic_total{{series="{i}"}} ' for i in range(series)]
        self.names = names
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tail = self.path.rsplit("/", 1)[-1]
                index = int(tail) if tail.isdigit() else -1
                if not 0 <= index < owner.targets:
                    self.send_error(404)
                    return
                owner.scrapes[index] += 1
                body = owner.page(owner.scrapes[index])
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, scrape: int) -> bytes:
        # each series grows by a different step, so the samples do not compress to nothing
        lines = ["# TYPE hux_synthetic_total counter"]
        lines += [f"{name}{scrape * (i % 97 + 1)}" for i, name in enumerate(self.names)]
        return ("\n".join(lines) + "\n").encode()

    def scrape_config(self, interval: str) -> dict[str, Any]:
        groups = [{"targets": [f"127.0.0.1:{self.port}"],
                   "labels": {"__metrics_path__": f"/metrics/{i}", "shard": str(i)}} for i in range(self.targets)]
        timeout = interval if duration_seconds(interval) < 10 else "10s"   # never longer than the interval
        return {"job_name": "synthetic", "scrape_interval": interval, "scrape_timeout": timeout,
                "static_configs": groups}

    def close(self) -> None:
        self.server.shutdown()


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def metric(url: str, name: str) -> float:
    """The sum of a metric's samples on a /metrics page (label sets summed)."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "))


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the process serving {url} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} not ready within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Step:
    series_target: int
    head_series: int
    samples_per_second: float
    prometheus_cores: float
    prometheus_rss_mib: float
    rss_bytes_per_series: float
    exporter_cores: float
    load1: float
    remote_write: bool = False
    vm_cores: float = 0.0
    vm_rss_mib: float = 0.0
    vm_rows_per_second: float = 0.0
    remote_write_pending: float = 0.0
    remote_write_failed: float = 0.0


def run_step(total: int, args: argparse.Namespace, work: Path, *, remote_write: bool) -> Step:
    import yaml

    per_target = max(1, total // args.targets)
    exporter = SyntheticTargets(args.targets, per_target)
    directory = Path(tempfile.mkdtemp(prefix=f"step-{total}-", dir=work))
    port = free_port()
    config: dict[str, Any] = {"global": {"scrape_interval": args.interval, "evaluation_interval": args.interval},
                              "scrape_configs": [exporter.scrape_config(args.interval)]}
    vm: subprocess.Popen[bytes] | None = None
    vm_url = ""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if remote_write:
            vm_port = free_port()
            vm_url = f"http://127.0.0.1:{vm_port}"
            vm = subprocess.Popen([shutil.which("victoria-metrics") or "victoria-metrics",
                                   f"-httpListenAddr=127.0.0.1:{vm_port}", f"-storageDataPath={directory / 'vm'}",
                                   "-retentionPeriod=1d", f"-dedup.minScrapeInterval={args.interval}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(vm)
            wait_ready(f"{vm_url}/health", vm)
            config["remote_write"] = [{"url": f"{vm_url}/api/v1/write"}]
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus = subprocess.Popen([shutil.which("prometheus") or "prometheus",
                                       f"--config.file={directory / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={directory / 'tsdb'}",
                                       f"--web.listen-address=127.0.0.1:{port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(prometheus)
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/-/ready", prometheus)
        time.sleep(args.warmup)
        me = os.getpid()
        start = {"prom": proc_cpu_seconds(prometheus.pid), "me": proc_cpu_seconds(me),
                 "vm": proc_cpu_seconds(vm.pid) if vm else 0.0,
                 "appended": metric(f"{url}/metrics", "prometheus_tsdb_head_samples_appended_total"),
                 "rows": metric(f"{vm_url}/metrics", "vm_rows_inserted_total") if vm else 0.0}
        began = time.monotonic()
        rss_samples, vm_rss = [], []
        while time.monotonic() - began < args.window:
            time.sleep(min(5.0, args.window))
            rss_samples.append(proc_rss_bytes(prometheus.pid))
            if vm:
                vm_rss.append(proc_rss_bytes(vm.pid))
        elapsed = time.monotonic() - began
        head = int(metric(f"{url}/metrics", "prometheus_tsdb_head_series"))
        appended = metric(f"{url}/metrics", "prometheus_tsdb_head_samples_appended_total") - start["appended"]
        rss = max(rss_samples)
        step = Step(
            series_target=total, head_series=head, samples_per_second=round(appended / elapsed, 1),
            prometheus_cores=round((proc_cpu_seconds(prometheus.pid) - start["prom"]) / elapsed, 3),
            prometheus_rss_mib=round(rss / 2**20, 1), rss_bytes_per_series=round(rss / max(head, 1)),
            exporter_cores=round((proc_cpu_seconds(me) - start["me"]) / elapsed, 3),
            load1=os.getloadavg()[0], remote_write=remote_write)
        if vm:
            step.vm_cores = round((proc_cpu_seconds(vm.pid) - start["vm"]) / elapsed, 3)
            step.vm_rss_mib = round(max(vm_rss) / 2**20, 1)
            step.vm_rows_per_second = round((metric(f"{vm_url}/metrics", "vm_rows_inserted_total")
                                             - start["rows"]) / elapsed, 1)
            step.remote_write_pending = metric(f"{url}/metrics", "prometheus_remote_storage_samples_pending")
            step.remote_write_failed = metric(f"{url}/metrics", "prometheus_remote_storage_samples_failed_total")
        return step
    finally:
        for proc in reversed(procs):
            stop(proc)
        exporter.close()
        shutil.rmtree(directory, ignore_errors=True)


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares ``y = a + b * x``: (a, b)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - b * mx, b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,200000,400000",
                        help="total active series per step, comma-separated")
    parser.add_argument("--targets", type=int, default=20, help="scrape targets the series are spread over")
    parser.add_argument("--interval", default="15s", help="scrape interval")
    parser.add_argument("--warmup", type=float, default=50, help="seconds before measuring (series created)")
    parser.add_argument("--window", type=float, default=60, help="seconds measured per step")
    parser.add_argument("--no-victoria-metrics", action="store_true", help="skip the remote-write step")
    parser.add_argument("--json", type=Path, help="also write the steps to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="hux-bench-capacity-") as tmp:
        steps = [run_step(size, args, Path(tmp), remote_write=False) for size in sizes]
        if not args.no_victoria_metrics and shutil.which("victoria-metrics"):
            steps.append(run_step(sizes[-1], args, Path(tmp), remote_write=True))
    print(f"{'series':>8} {'head':>8} {'samples/s':>10} {'prom cores':>10} {'prom MiB':>9} {'B/series':>9} "
          f"{'exporter':>8} {'load1':>6} {'rw':>3} {'vm cores':>8} {'vm MiB':>7} {'vm rows/s':>10}")
    for s in steps:
        print(f"{s.series_target:>8} {s.head_series:>8} {s.samples_per_second:>10} {s.prometheus_cores:>10} "
              f"{s.prometheus_rss_mib:>9} {s.rss_bytes_per_series:>9} {s.exporter_cores:>8} {s.load1:>6.2f} "
              f"{'yes' if s.remote_write else 'no':>3} {s.vm_cores:>8} {s.vm_rss_mib:>7} {s.vm_rows_per_second:>10}")
    plain = [x for x in steps if not x.remote_write]
    if len(plain) >= 2:
        # CPU and memory grow linearly with the active series: fit y = a + b * series over the plain steps
        a, b = _fit([(x.head_series, x.prometheus_cores) for x in plain])
        if b > 0:
            print(f"fit: cores = {a:.3f} + {b * 1e5:.4f} per 100k series -> 0.5 core at about "
                  f"{(0.5 - a) / b:,.0f} active series at {args.interval}")
        a, b = _fit([(x.head_series, x.prometheus_rss_mib * 2**20) for x in plain])
        print(f"fit: resident memory = {a / 2**20:.0f} MiB + {b:,.0f} bytes per active series")
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in steps], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
