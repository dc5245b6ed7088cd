"""The host: free disk for every data directory, one line per filesystem."""

from __future__ import annotations

import shutil
from pathlib import Path

from hux.stack.health.context import HealthContext, backup_dir
from hux.stack.health.model import FAIL, PASS, WARN, CheckResult
from hux.units import human_bytes


def data_directories(ctx: HealthContext) -> list[Path]:
    dirs = [ctx.paths.component_data(n) for n in ("prometheus", "alertmanager", "bot", "grafana")]
    dirs.append(backup_dir(ctx))
    return [d for d in dirs if d.exists()] or [ctx.paths.data if ctx.paths.data.exists() else ctx.paths.home]


async def check_disk(ctx: HealthContext) -> list[CheckResult]:
    by_device: dict[int, list[Path]] = {}
    for directory in data_directories(ctx):
        by_device.setdefault(directory.stat().st_dev, []).append(directory)
    fail_ratio = ctx.settings.alerts.disk_free_ratio
    warn_ratio = min(0.5, 2 * fail_ratio)
    results = []
    for dirs in by_device.values():
        usage = shutil.disk_usage(dirs[0])
        ratio = usage.free / usage.total if usage.total else 0.0
        shown = ", ".join(str(d.relative_to(ctx.paths.home)) if d.is_relative_to(ctx.paths.home) else str(d) for d in dirs)
        reason = f"{human_bytes(usage.free)} free ({ratio:.0%}) for {shown}"
        if ratio < fail_ratio:
            results.append(CheckResult(f"disk {dirs[0].name}", FAIL, reason,
                                       "free space: `hux` maintenance cleans old metrics and backups; lower "
                                       "prometheus.retention_time or set retention_size"))
        elif ratio < warn_ratio:
            results.append(CheckResult(f"disk {dirs[0].name}", WARN, reason,
                                       "plan space: lower prometheus.retention_time or set retention_size"))
        else:
            results.append(CheckResult(f"disk {dirs[0].name}", PASS, reason))
    return results
