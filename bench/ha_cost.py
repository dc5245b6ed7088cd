"""What the HA topology costs over the single one: CPU, memory and disk of each component, measured.

Starts the demo stack (``hux up``) twice in temporary homes on free loopback ports, once with
``stack.topology = "single"`` and once with ``"ha"``, at the shipped intervals (15 s scrape and
evaluation, the bot's 5 s fast path). After ``--warmup`` seconds it reads, over ``--seconds``, every
component's CPU (utime + stime from /proc), its resident memory at the end, and the growth of each
data directory; then ``hux down``. Results in docs/scaling.md ("HA topology").

    .venv/bin/python bench/ha_cost.py                   # about 5 minutes
    .venv/bin/python bench/ha_cost.py --warmup 30 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from _stack import PORTS, env_for, free_port, timed  # noqa: E402
from scaling_capacity import proc_cpu_seconds  # noqa: E402

from hux.stack.plan import StackPaths, read_json  # noqa: E402
from hux.stack.procs import rss_bytes  # noqa: E402


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def measure(topology: str, warmup: float, seconds: float) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix=f"hux-bench-ha-{topology}-") as tmp:
        home = Path(tmp)
        config = home / "hux.toml"
        config.write_text(f'[stack]\ntopology = "{topology}"\n\n[stack.ports]\n'
                          + "".join(f"{name} = {free_port()}\n" for name in PORTS))
        env = env_for(home, config)
        hux = [sys.executable, "-m", "hux.cli"]
        _, result = timed([*hux, "up", "--timeout", "90"], env, home)
        if result.returncode != 0:
            raise SystemExit(f"hux up ({topology}) failed:\n{result.stdout}\n{result.stderr}")
        try:
            time.sleep(warmup)
            state = read_json(StackPaths(home).state_file) or {}
            pids = {name: comp["pid"] for name, comp in (state.get("components") or {}).items() if comp.get("pid")}
            data = StackPaths(home).data
            cpu0 = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
            disk0 = {name: _du(data / name) for name in pids}
            time.sleep(seconds)
            out = {}
            for name, pid in pids.items():
                out[name] = {"cpu_cores": (proc_cpu_seconds(pid) - cpu0[name]) / seconds,
                             "rss_mib": rss_bytes(pid) / 2**20,
                             "disk_kib_per_min": (_du(data / name) - disk0[name]) / 1024 / seconds * 60,
                             "disk_mib": _du(data / name) / 2**20}
            return out
        finally:
            timed([*hux, "down"], env, home)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    if not (0 <= args.warmup <= 600 and 0 < args.seconds <= 1800):
        parser.error("--warmup in [0, 600], --seconds in (0, 1800]")
    results = {topology: measure(topology, args.warmup, args.seconds) for topology in ("single", "ha")}
    print(f"load average: {os.getloadavg()[0]:.1f}")
    print(json.dumps(results, indent=1))
    for topology, comps in results.items():
        print(f"{topology}: " + ", ".join(f"{k}={sum(c[k] for c in comps.values()):.3f}"
                                          for k in ("cpu_cores", "rss_mib", "disk_kib_per_min")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
