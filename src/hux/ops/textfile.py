"""Backup metrics for node_exporter's textfile collector.

Each backup run rewrites ``<textfile dir>/hux_backup.prom`` atomically (write a
temporary file in the same directory, then rename), so node_exporter never
reads a half-written file. The file holds one set of series per backup kind;
updating one kind keeps the other kind's lines as they were.

Series (``kind`` is ``prometheus`` or ``grafana``):

* ``hux_backup_last_attempt_timestamp_seconds``  when the last run started
* ``hux_backup_last_success``                    1 when that run succeeded, else 0
* ``hux_backup_last_success_timestamp_seconds``  when the last successful run finished
* ``hux_backup_last_duration_seconds``           how long the last run took
* ``hux_backup_last_size_bytes``                 size of the last successful archive
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "hux_backup.prom"

METRICS = {
    "hux_backup_last_attempt_timestamp_seconds": ("gauge", "Unix time the last backup run of this kind started."),
    "hux_backup_last_success": ("gauge", "1 when the last backup run of this kind succeeded, 0 when it failed."),
    "hux_backup_last_success_timestamp_seconds": ("gauge", "Unix time the last successful backup of this kind finished."),
    "hux_backup_last_duration_seconds": ("gauge", "Duration of the last backup run of this kind."),
    "hux_backup_last_size_bytes": ("gauge", "Size of the last successful backup archive of this kind."),
}
_LINE_RE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{kind="(?P<kind>[a-z]+)"\}\s+(?P<value>\S+)')


@dataclass
class BackupRun:
    kind: str
    started_at: float
    duration_seconds: float
    success: bool
    size_bytes: int | None = None  # archive size when successful
    finished_at: float | None = None


def read_values(path: Path) -> dict[str, dict[str, float]]:
    """``{kind: {metric: value}}`` from an existing file (unknown lines are ignored)."""
    values: dict[str, dict[str, float]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return values
    for line in text.splitlines():
        match = _LINE_RE.match(line.strip())
        if not match or match["name"] not in METRICS:
            continue
        try:
            values.setdefault(match["kind"], {})[match["name"]] = float(match["value"])
        except ValueError:
            continue
    return values


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(values: dict[str, dict[str, float]]) -> str:
    lines = []
    for name, (kind_of, help_text) in METRICS.items():
        present = [(kind, series[name]) for kind, series in sorted(values.items()) if name in series]
        if not present:
            continue
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind_of}")
        lines.extend(f'{name}{{kind="{kind}"}} {_fmt(value)}' for kind, value in present)
    return "\n".join(lines) + "\n"


def record_run(textfile_dir: Path, run: BackupRun) -> Path:
    """Merge one run into the file and replace it atomically; returns the file path."""
    textfile_dir.mkdir(parents=True, exist_ok=True)
    path = textfile_dir / FILE_NAME
    values = read_values(path)
    mine = values.setdefault(run.kind, {})
    mine["hux_backup_last_attempt_timestamp_seconds"] = round(run.started_at, 3)
    mine["hux_backup_last_success"] = 1 if run.success else 0
    mine["hux_backup_last_duration_seconds"] = round(run.duration_seconds, 3)
    if run.success:
        mine["hux_backup_last_success_timestamp_seconds"] = round(run.finished_at or run.started_at + run.duration_seconds, 3)
        if run.size_bytes is not None:
            mine["hux_backup_last_size_bytes"] = run.size_bytes
    return _replace_atomically(path, render(values))


def _replace_atomically(path: Path, text: str) -> Path:
    """Write ``text`` beside ``path`` and rename it over: node_exporter never reads half a file.

    0644: node_exporter may run as another user and must read it (no secrets in it).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- refusals: archives and API names hux would not use ---------------------------------------

REFUSALS_FILE = "hux_backup_refusals.prom"
REFUSALS_METRIC = "hux_backup_refusals_total"
_REFUSAL_RE = re.compile(r'^hux_backup_refusals_total\{kind="(?P<kind>[a-z]+)",reason="(?P<reason>[a-z_]+)"\}\s+(?P<value>\d+)')
REFUSAL_KINDS = ("prometheus", "grafana", "archive")


def record_refusal(textfile_dir: Path, kind: str, reason: str) -> Path:
    """Count one refused archive or API name (``reason`` from a bounded set) for node_exporter; atomic rewrite."""
    kind = kind if kind in REFUSAL_KINDS else "archive"
    reason = reason if re.fullmatch(r"[a-z_]{1,40}", reason or "") else "other"
    textfile_dir.mkdir(parents=True, exist_ok=True)
    path = textfile_dir / REFUSALS_FILE
    counts: dict[tuple[str, str], int] = {}
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _REFUSAL_RE.fullmatch(line.strip())
            if match:
                counts[(match["kind"], match["reason"])] = int(match["value"])
    except OSError:
        pass
    counts[(kind, reason)] = counts.get((kind, reason), 0) + 1
    lines = [f"# HELP {REFUSALS_METRIC} Archives and API names backup/restore refused, by kind and reason.",
             f"# TYPE {REFUSALS_METRIC} counter"]
    lines += [f'{REFUSALS_METRIC}{{kind="{k}",reason="{r}"}} {v}' for (k, r), v in sorted(counts.items())]
    return _replace_atomically(path, "\n".join(lines) + "\n")
