"""The age of the last backup: the textfile metrics the backup commands write, else the newest archive."""

from __future__ import annotations

import time

from hux.monitoring.durations import duration_seconds
from hux.ops.textfile import FILE_NAME, read_values
from hux.stack.health.context import HealthContext, backup_dir
from hux.stack.health.model import PASS, WARN, CheckResult
from hux.units import ago

#: at most this many files are looked at when no textfile metrics exist (the newest archive's age)
MAX_ARCHIVES_SCANNED = 10_000


async def check_backup(ctx: HealthContext) -> list[CheckResult]:
    name = "last backup"
    max_age = duration_seconds(ctx.settings.backup.max_age)
    fix = "take one: `python3 scripts/backup_monitoring.py` (and `python3 scripts/backup_grafana.py` with Grafana)"
    values = read_values(ctx.paths.textfile_dir / FILE_NAME)
    now = time.time()
    if values:
        stale, failed, ages = [], [], []
        for kind, series in sorted(values.items()):
            last_ok = series.get("hux_backup_last_success_timestamp_seconds")
            if series.get("hux_backup_last_success") == 0:
                failed.append(kind)
            if last_ok is None:
                stale.append(f"{kind}: never succeeded")
                continue
            age = now - last_ok
            ages.append(f"{kind} {ago(age)} ago")
            if age > max_age:
                stale.append(f"{kind} {ago(age)} old")
        if failed:
            return [CheckResult(name, WARN, f"last {', '.join(failed)} backup run failed; " + ", ".join(ages),
                                "see the backup command's output; " + fix)]
        if stale:
            return [CheckResult(name, WARN, "older than backup.max_age "
                                f"({ctx.settings.backup.max_age}): " + ", ".join(stale), fix)]
        return [CheckResult(name, PASS, ", ".join(ages))]
    directory = backup_dir(ctx)
    newest = None
    if directory.is_dir():
        for count, path in enumerate(directory.rglob("*")):
            if count >= MAX_ARCHIVES_SCANNED:
                break
            if path.is_file() and not path.is_symlink():
                newest = max(newest or 0.0, path.stat().st_mtime)
    if newest is None:
        return [CheckResult(name, WARN, "no backup taken yet", fix)]
    age = now - newest
    if age > max_age:
        return [CheckResult(name, WARN, f"newest file in {directory} is {ago(age)} old (max {ctx.settings.backup.max_age})", fix)]
    return [CheckResult(name, PASS, f"newest file in {directory} is {ago(age)} old")]
