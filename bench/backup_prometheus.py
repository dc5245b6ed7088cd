#!/usr/bin/env python3
"""Benchmark: backup and restore of a Prometheus holding 7 days of the demo stack's series at 15 s.

What it does:

1. **Series**: the label sets the demo stack exports, taken from real processes
   started here (node_exporter, Prometheus, Alertmanager: their own
   ``/metrics``) plus the bot's metric catalogue populated with the demo's label
   values, plus the per-target ``up``/``scrape_*`` series Prometheus adds.
2. **History**: 7 days at a 15 s interval, with values shaped like real ones
   (constant gauges, counters growing at their own rate, gauges wandering),
   written window by window (one 2 h TSDB block each) and backfilled with
   ``promtool tsdb create-blocks-from openmetrics``.
3. **Compaction**: a real Prometheus opens the directory and compacts the 2 h
   blocks the way a week-old server would have them.
4. **Backup**: ``hux.ops.prometheus_backup.backup_prometheus`` (snapshot, verification
   queries, pack) — time and archive size.
5. **Restore**: ``hux.ops.prometheus_backup.restore_prometheus`` into the same running
   server (verify + unpack, stop, swap, start, verification queries, old data
   removed) — time per phase.

Results print as JSON; ``--write-docs`` replaces the "Backup" section of
docs/benchmarks.md (other sections are left as they are).

Usage: ``.venv/bin/python bench/backup_prometheus.py [--days 7] [--step 15] [--write-docs]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from hux.bot import metrics as bm  # noqa: E402
from hux.ops import archive as arc  # noqa: E402
from hux.ops.clients import Prometheus  # noqa: E402
from hux.ops.prometheus_backup import backup_prometheus, restore_prometheus  # noqa: E402
from hux.ops.service import CallableControl, free_loopback_port  # noqa: E402

WINDOW = 2 * 3600
INSTANCES = {"node": "127.0.0.1:9100", "prometheus": "127.0.0.1:9090", "alertmanager": "127.0.0.1:9093",
             "bot": "127.0.0.1:8000"}


# --- 1. the series ------------------------------------------------------------------------------


def _wait(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def scrape_real_exporters(work: Path) -> dict[str, str]:
    """``/metrics`` text of a real node_exporter, Prometheus and Alertmanager started here."""
    texts: dict[str, str] = {}
    procs: list[subprocess.Popen] = []
    try:
        port = free_loopback_port()
        procs.append(subprocess.Popen([shutil.which("prometheus-node-exporter") or "prometheus-node-exporter",
                                       f"--web.listen-address=127.0.0.1:{port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait(f"http://127.0.0.1:{port}/metrics", procs[-1])
        texts["node"] = httpx.get(f"http://127.0.0.1:{port}/metrics").text

        am_port = free_loopback_port()
        (work / "am.yml").write_text("route: {receiver: r}\nreceivers: [{name: r}]\n")
        procs.append(subprocess.Popen(["prometheus-alertmanager", f"--config.file={work / 'am.yml'}",
                                       f"--storage.path={work / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                                       "--cluster.listen-address="],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait(f"http://127.0.0.1:{am_port}/-/ready", procs[-1])

        prom_port = free_loopback_port()
        (work / "p.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]}}]}}\n"
            f"scrape_configs: [{{job_name: p, static_configs: [{{targets: ['127.0.0.1:{prom_port}']}}]}}]\n")
        procs.append(subprocess.Popen(["prometheus", f"--config.file={work / 'p.yml'}",
                                       f"--storage.tsdb.path={work / 'p'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait(f"http://127.0.0.1:{prom_port}/-/ready", procs[-1])
        time.sleep(8)  # let it scrape, query and notify so its handler/label series exist
        for path in ("/api/v1/query?query=up", "/api/v1/query_range?query=up&start=1&end=2&step=1",
                     "/api/v1/series?match[]=up", "/api/v1/labels", "/api/v1/targets", "/api/v1/rules",
                     "/api/v1/status/config", "/graph", "/-/healthy"):
            httpx.get(f"http://127.0.0.1:{prom_port}{path}")
        texts["prometheus"] = httpx.get(f"http://127.0.0.1:{prom_port}/metrics").text
        for path in ("/api/v2/alerts", "/api/v2/silences", "/api/v2/status", "/api/v2/receivers", "/-/healthy"):
            httpx.get(f"http://127.0.0.1:{am_port}{path}")
        texts["alertmanager"] = httpx.get(f"http://127.0.0.1:{am_port}/metrics").text
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)
    return texts


def demo_bot_text(groups: int = 12) -> str:
    """The bot's catalogue with the label values a demo run produces."""
    m = bm.BotMetrics(CollectorRegistry(), mode="demo")
    apis = {"dexscreener": ("token_pairs", "search"), "rugcheck": ("report",), "telegram": ("sendMessage",)}
    for g in range(groups):
        m.messages_received.labels("replay", f"group-{g}").inc()
    for reason in bm.REJECT_REASONS:
        m.messages_rejected.labels("replay", reason).inc()
    for stage in bm.STAGES:
        for outcome in bm.STAGE_OUTCOMES:
            m.stage_results.labels(stage, outcome).inc()
    for kind in bm.CANDIDATE_KINDS:
        m.token_candidates.labels(kind).inc()
    for outcome in bm.TOKEN_OUTCOMES:
        m.tokens_processed.labels(outcome).inc()
    for api, endpoints in apis.items():
        m.api_rate_limit.labels(api).set(5)
        m.api_circuit_state.labels(api).set(0)
        for result in ("hit", "miss"):
            m.api_cache.labels(api, result).inc()
        for reason in ("timeout", "server_error", "rate_limited"):
            m.api_retries.labels(api, reason).inc()
        for endpoint in endpoints:
            m.api_request_seconds.labels(api, endpoint).observe(0.1)
            for outcome in bm.API_OUTCOMES:
                m.api_requests.labels(api, endpoint, outcome).inc()
    for channel in ("telegram", "webhook"):
        for outcome in bm.ALERT_OUTCOMES:
            m.alerts_sent.labels(channel, outcome).inc()
    for operation in ("insert", "update", "select", "probe"):
        m.database_errors.labels(operation).inc()
    return generate_latest(m.registry).decode()


def series_from_texts(texts: dict[str, str]) -> list[tuple[str, str, str, float]]:
    """(sample name, label text, family type, scraped value) with job/instance added, sorted by name."""
    out = []
    for job, text in texts.items():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = dict(sample.labels, job=job, instance=INSTANCES[job])
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
                out.append((sample.name, label_text, family.type, float(sample.value)))
    for job, instance in INSTANCES.items():  # what Prometheus records per target
        for name, value in (("up", 1.0), ("scrape_duration_seconds", 0.004), ("scrape_samples_scraped", 500.0),
                            ("scrape_samples_post_metric_relabeling", 500.0), ("scrape_series_added", 0.0)):
            out.append((name, f'instance="{instance}",job="{job}"', "gauge", value))
    unique = {(name, labels): (name, labels, kind, value) for name, labels, kind, value in out}
    return sorted(unique.values())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# --- 2. the history ------------------------------------------------------------------------------

_VARYING = re.compile(r"memory|heap|load|goroutines|alloc|_seconds$|timestamp|queue|busy|free|avail|running|"
                      r"active|entropy|temperature|open_fds|procs_|inflight|head_series|head_chunks")


class Shape:
    """How one series evolves: constant, a counter with its own rate, or a wandering gauge."""

    __slots__ = ("kind", "value", "rate", "decimals", "sigma")

    def __init__(self, name: str, labels: str, family_type: str, value: float, rng: random.Random) -> None:
        is_counter = family_type in ("counter", "histogram", "summary") and not name.endswith(("_created",)) \
            and not (family_type == "summary" and "quantile=" in labels)
        self.value = value if value == value and abs(value) != float("inf") else 0.0
        self.decimals = 0 if float(self.value).is_integer() else (2 if "node" in labels else 6)
        if is_counter and rng.random() < 0.75:  # a quarter of counters never move (errors that did not happen)
            self.kind = "counter"
            self.rate = rng.lognormvariate(-1.0, 1.5) * (1 if self.decimals == 0 else 0.01)
            self.sigma = 0.0
        elif not is_counter and (_VARYING.search(name) or rng.random() < 0.3) and not name.endswith("_info"):
            self.kind = "gauge"
            self.rate = 0.0
            self.sigma = max(abs(self.value) * 0.01, 0.5 if self.decimals == 0 else 0.001)
        else:
            self.kind = "constant"
            self.rate = self.sigma = 0.0

    def advance(self, rng: random.Random, step: float) -> str:
        if self.kind == "counter":
            if self.decimals == 0:
                self.value += int(rng.random() < min(1.0, self.rate * step)) * max(1, round(self.rate * step))
            else:
                self.value += self.rate * step * (0.5 + rng.random())
        elif self.kind == "gauge":
            self.value = max(0.0, self.value + rng.gauss(0.0, self.sigma))
        if self.decimals == 0:
            return str(int(round(self.value)))
        return f"{round(self.value, self.decimals)!r}"


def write_window(path: Path, series: list[tuple[str, str, str, float]], shapes: list[Shape], start: int, step: int,
                 rng: random.Random) -> int:
    """One 2 h window of OpenMetrics text; returns the number of samples."""
    times = [str(t) for t in range(start, start + WINDOW, step)]
    lines = 0
    with path.open("w", encoding="utf-8", buffering=1 << 20) as fh:
        current = None
        for (name, labels, _kind, _value), shape in zip(series, shapes, strict=True):
            if name != current:
                fh.write(f"# HELP {name} .\n# TYPE {name} gauge\n")
                current = name
            head = f"{name}{{{labels}}} "
            fh.write("".join(f"{head}{shape.advance(rng, step)} {t}\n" for t in times))
            lines += len(times)
        fh.write("# EOF\n")
    return lines


def backfill(data_dir: Path, work: Path, series: list, days: float, step: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    shapes = [Shape(name, labels, kind, value, random.Random(zlib.crc32(f"{name}{labels}".encode())))
              for name, labels, kind, value in series]
    now = int(time.time()) // WINDOW * WINDOW  # whole windows, the last one ending at the current window start
    first = now - int(days * 86400)
    windows = list(range(first, now, WINDOW))
    data_dir.mkdir(parents=True, exist_ok=True)
    samples = 0
    started = time.monotonic()

    def import_window(path: Path) -> None:
        done = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(path), str(data_dir)],
                              capture_output=True, text=True)
        path.unlink()
        if done.returncode != 0:
            raise RuntimeError(done.stderr)

    with ThreadPoolExecutor(max_workers=1) as pool:  # promtool on one core while Python writes the next window
        pending = None
        for index, start in enumerate(windows):
            path = work / f"w{index}.om"
            samples += write_window(path, series, shapes, start, step, rng)
            if pending is not None:
                pending.result()
            pending = pool.submit(import_window, path)
            print(f"  window {index + 1}/{len(windows)} ({samples / 1e6:.1f} M samples, "
                  f"{time.monotonic() - started:.0f}s)", file=sys.stderr, flush=True)
        if pending is not None:
            pending.result()
    return {"samples": samples, "windows": len(windows), "seconds": round(time.monotonic() - started, 1),
            "from": first, "to": now}


# --- 3-5. Prometheus, backup, restore -------------------------------------------------------------


class PromServer:
    def __init__(self, data_dir: Path, config: Path, log: Path) -> None:
        self.data_dir, self.config, self.log = data_dir, config, log
        self.port = free_loopback_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(["prometheus", f"--config.file={self.config}",
                                          f"--storage.tsdb.path={self.data_dir}",
                                          f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-admin-api",
                                          "--storage.tsdb.retention.time=15d", "--log.level=warn"],
                                         stdout=log, stderr=subprocess.STDOUT)
        _wait(f"{self.url}/-/ready", self.proc, timeout=600)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=120)


def wait_compacted(prom: Prometheus, data_dir: Path, timeout: float = 900) -> int:
    """Wait until the 2 h blocks are compacted (the block count stops falling); returns the block count."""
    deadline = time.monotonic() + timeout
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        blocks = len([p for p in data_dir.glob("*/meta.json")])
        running = prom.scalar("prometheus_tsdb_compactions_triggered_total - prometheus_tsdb_compactions_total") or 0
        if blocks != last:
            last, stable_since = blocks, time.monotonic()
        elif time.monotonic() - stable_since > 75 and running <= 0:  # compaction runs every minute
            return blocks
        time.sleep(2)
    return last


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--step", type=int, default=15)
    parser.add_argument("--workdir", help="keep the data here (default: a temporary directory, removed)")
    parser.add_argument("--write-docs", action="store_true", help="update the Backup section of docs/benchmarks.md")
    parser.add_argument("--from-json", metavar="FILE", help="only write the docs from an earlier run's JSON output")
    args = parser.parse_args(argv)
    if args.from_json:
        write_docs(json.loads(Path(args.from_json).read_text()), args)
        return 0

    for binary in ("prometheus", "promtool", "prometheus-alertmanager", "prometheus-node-exporter"):
        if not shutil.which(binary):
            print(f"{binary} is not installed: run python3 scripts/run_tests.py (it installs the stack packages)")
            return 2
    work = Path(args.workdir or tempfile.mkdtemp(prefix="hux-bench-backup-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"days": args.days, "step": args.step,
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "kernel": platform.release()}}
    try:
        print("collecting the demo stack's series ...", file=sys.stderr)
        texts = scrape_real_exporters(work)
        texts["bot"] = demo_bot_text()
        series = series_from_texts(texts)
        by_job = {job: sum(1 for s in series if f'job="{job}"' in s[1]) for job in INSTANCES}
        results["series"] = {"total": len(series), **by_job}
        print(f"  {len(series)} series {by_job}", file=sys.stderr)

        data_dir = work / "data"
        print(f"backfilling {args.days:g} days at {args.step}s ...", file=sys.stderr)
        results["history"] = backfill(data_dir, work, series, args.days, args.step)

        config = work / "prometheus.yml"
        config.write_text("global: {scrape_interval: 15s}\n")
        server = PromServer(data_dir, config, work / "prometheus.log")
        clock = time.monotonic()
        server.start()
        results["first_start_seconds"] = round(time.monotonic() - clock, 1)
        with Prometheus(server.url, timeout=600) as prom:
            print("waiting for compaction ...", file=sys.stderr)
            results["blocks"] = wait_compacted(prom, data_dir)
        results["tsdb_bytes"] = dir_size(data_dir)
        print(f"  {results['blocks']} blocks, {results['tsdb_bytes'] / 2**20:.0f} MiB", file=sys.stderr)

        print("backup ...", file=sys.stderr)
        clock = time.monotonic()
        backup = backup_prometheus(prometheus_url=server.url, backup_dir=work / "backups", data_dir=data_dir)
        results["backup"] = {
            "seconds": round(time.monotonic() - clock, 1),
            "archive_bytes": backup.size,
            "unpacked_bytes": backup.manifest["total_bytes"],
            "files": len(backup.manifest["files"]),
            "blocks": len(backup.manifest["prometheus"]["blocks"]),
            "samples": backup.manifest["prometheus"]["samples"],
            "verification_queries": len(backup.manifest["verification"]["queries"]),
            "covered_hours": backup.manifest["prometheus"]["time_range"]["hours"],
        }
        print(f"  {results['backup']}", file=sys.stderr)

        clock = time.monotonic()
        arc.verify_archive(backup.path)
        results["verify_only_seconds"] = round(time.monotonic() - clock, 1)

        print("restore ...", file=sys.stderr)
        phases: dict[str, float] = {}

        def timed(name: str, func):
            def run() -> None:
                started = time.monotonic()
                func()
                phases[name] = round(time.monotonic() - started, 1)
            return run

        clock = time.monotonic()
        report = restore_prometheus(backup.path, data_dir=data_dir, prometheus_url=server.url,
                                    control=CallableControl(timed("stop", server.stop), timed("start", server.start)),
                                    check_collection=False, ready_timeout=600)
        results["restore"] = {"seconds": round(time.monotonic() - clock, 1), **{f"{k}_seconds": v for k, v in phases.items()},
                              "steps": [[s, st] for s, st, _ in report.steps], "ok": report.ok}
        print(f"  {results['restore']}", file=sys.stderr)
        server.stop()
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.write_docs:
        write_docs(results, args)
    return 0


def write_docs(results: dict, args: argparse.Namespace) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    mib = 2 ** 20
    b, r, h = results["backup"], results["restore"], results["history"]
    s = results["series"]
    days, step = results.get("days", args.days), results.get("step", args.step)
    section = f"""## Backup

`bench/backup_prometheus.py` (re-run: `.venv/bin/python bench/backup_prometheus.py --write-docs`).
A Prometheus 2.42 holding **{days:g} days of the demo stack's series at a {step} s interval**:
{s['total']:,} series (node_exporter {s['node']}, Prometheus {s['prometheus']}, Alertmanager {s['alertmanager']},
bot {s['bot']}: label sets from the real processes and the bot's catalogue), {h['samples'] / 1e6:.1f} M samples,
backfilled with `promtool tsdb create-blocks-from openmetrics` and compacted by Prometheus into
{results['blocks']} blocks ({results['tsdb_bytes'] / mib:.0f} MiB on disk).
Machine: {results['machine']['cpus']} CPUs, Python {results['machine']['python']}.

| measure | value |
|---|---|
| backup (snapshot, {b['verification_queries']} verification queries, checksum, pack) | **{b['seconds']:.1f} s** |
| archive size (`.tar.gz`) | **{b['archive_bytes'] / mib:.1f} MiB** ({b['unpacked_bytes'] / mib:.1f} MiB unpacked, {b['files']} files, {b['blocks']} blocks) |
| checksum verification alone (`hux backups verify`) | {results['verify_only_seconds']:.1f} s |
| restore, total | **{r['seconds']:.1f} s** |
| — of which stopping Prometheus | {r.get('stop_seconds', 0):.1f} s |
| — of which starting it on the restored blocks | {r.get('start_seconds', 0):.1f} s |
| — the rest: verify + unpack, swap, verification queries, removing the old data | {r['seconds'] - r.get('stop_seconds', 0) - r.get('start_seconds', 0):.1f} s |
| restored data identical to backup time | {'yes' if r['ok'] else 'NO'} |

Reading it: the blocks hold {h['samples'] / 1e6:.1f} M samples in {results['tsdb_bytes'] / h['samples']:.2f} bytes each;
gzip (level 6) brings the archive to {b['archive_bytes'] / b['unpacked_bytes']:.0%} of the blocks' size on this
data. A backup reads the blocks twice (checksums first, so the manifest can
lead the archive, then packing) and holds no lock on Prometheus: scrapes and
queries go on. A restore's downtime is the stop, the start and the
verification queries; unpacking with checksum checks happens before
Prometheus is stopped.
"""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Backup\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
    print(f"updated {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
