"""Error-log review: ERROR and CRITICAL lines across ``logs/*.log`` in a time window, grouped.

Formats understood:

* JSON lines (the bot's ``mr_hux_alpha_bot.log``): ``ts``, ``level``, ``logger``, ``msg``;
* logfmt (Prometheus, Alertmanager, node_exporter, Grafana): ``ts=``/``t=``/``time=``,
  ``level=``/``lvl=``, ``msg=``, ``err=``, ``component=``/``logger=``;
* plain text lines with a level word (``12:00:01 ERROR hux.bot: ...``) and Python
  tracebacks (``Traceback (most recent call last):`` ... ``ValueError: ...``).

Messages are grouped by component and *pattern*: the message with its variable
parts (numbers, durations, addresses, ids, quoted strings) replaced by
placeholders, so a thousand "timeout after 3.2s to 10.0.0.7:9100" lines make
one row with a count. Rotated siblings (``x.log.1``) are read when they were
written inside the window.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

ERROR_LEVELS = {"error": "ERROR", "eror": "ERROR", "err": "ERROR", "crit": "CRITICAL", "critical": "CRITICAL",
                "fatal": "CRITICAL", "panic": "CRITICAL", "emerg": "CRITICAL", "alert": "CRITICAL"}
_PREFILTER = ("hux-supervisor", "rror", "RROR", "rit", "RIT", "eror", "EROR", "atal", "ATAL", "anic", "ANIC", "Traceback", "err")
_LOGFMT = re.compile(r'(\w[\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_CRASH = re.compile(r"\b(exited with code|was killed by|could not be started|did not stop)\b")
_TEXT_LEVEL = re.compile(r"\b(ERROR|CRITICAL|FATAL|PANIC)\b")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_NORMALIZE = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b[1-9A-HJ-NP-Za-km-z]{32,44}\b"), "<address>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\[[0-9a-fA-F:]+\](?::\d+)?"), "<ip>"),
    (re.compile(r"https?://\S+"), "<url>"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b", re.I), "<id>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b\d+(?:\.\d+)?(?:ns|µs|us|ms|s|m|h|d|%|B|KiB|MiB|GiB)?\b"), "<n>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
]


def pattern_of(message: str, limit: int = 140) -> str:
    text = " ".join(message.split())
    for regex, placeholder in _NORMALIZE:
        text = regex.sub(placeholder, text)
    return text[:limit]


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    match = _ISO.search(str(text))
    if not match:
        try:
            value = float(text)
        except (TypeError, ValueError):
            return None
        if value > 1e12:  # milliseconds
            value /= 1000
        return datetime.fromtimestamp(value, timezone.utc) if value > 1e9 else None
    stamp = match.group(0).replace(",", ".").replace(" ", "T")
    stamp = re.sub(r"(\.\d{6})\d+", r"\1", stamp)  # nanoseconds (Grafana) -> microseconds
    stamp = stamp.replace("Z", "+00:00")
    stamp = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", stamp)
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class Entry:
    component: str
    level: str
    message: str
    at: datetime | None


@dataclass
class Group:
    component: str
    level: str
    pattern: str
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    example: str = ""


@dataclass
class FileSummary:
    path: Path
    lines: int = 0
    errors: int = 0
    undated: int = 0


@dataclass
class LogReview:
    groups: list[Group] = field(default_factory=list)
    files: list[FileSummary] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None

    @property
    def total(self) -> int:
        return sum(g.count for g in self.groups)


def _component_base(path: Path) -> str:
    name = path.name
    name = re.sub(r"\.log(\.\d+)?$", "", name)
    return {"mr_hux_alpha_bot": "bot", "mr_hux_alpha_bot.stderr": "bot"}.get(name, name)


def _parse_json(line: str, base: str) -> Entry | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    level = str(record.get("level") or record.get("levelname") or record.get("severity") or "").lower()
    if level not in ERROR_LEVELS:
        return None
    message = str(record.get("msg") or record.get("message") or record.get("event") or "")
    sub = record.get("logger") or record.get("component") or record.get("name")
    at = parse_time(record.get("ts") or record.get("time") or record.get("timestamp") or record.get("@timestamp"))
    return Entry(f"{base} ({sub})" if sub else base, ERROR_LEVELS[level], message, at)


def _parse_logfmt(line: str, base: str) -> Entry | None:
    fields = {k: v[1:-1].replace('\\"', '"') if v.startswith('"') else v for k, v in _LOGFMT.findall(line)}
    level = (fields.get("level") or fields.get("lvl") or "").lower()
    if not level:
        return None
    if level not in ERROR_LEVELS:
        return None
    message = fields.get("msg") or fields.get("message") or ""
    if fields.get("err"):
        message = f"{message} err={fields['err']}" if message else fields["err"]
    sub = fields.get("component") or fields.get("logger")
    at = parse_time(fields.get("ts") or fields.get("t") or fields.get("time"))
    return Entry(f"{base} ({sub})" if sub else base, ERROR_LEVELS[level], message, at)


def _parse_text(line: str, base: str) -> Entry | None:
    match = _TEXT_LEVEL.search(line)
    if not match:
        return None
    level = ERROR_LEVELS.get(match.group(1).lower(), "CRITICAL")
    message = line[match.end():].strip(" :-")
    sub = None
    head = re.match(r"(\S+):\s+(.*)", message)
    if head and "." in head.group(1):
        sub, message = head.group(1), head.group(2)
    return Entry(f"{base} ({sub})" if sub else base, level, message, parse_time(line[: match.start()]))


def _entries(path: Path) -> Iterator[tuple[Entry | None, bool]]:
    """(entry or None, line counted) for each line; tracebacks become one CRITICAL entry."""
    base = _component_base(path)
    traceback_at: list[str] = []
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            line = raw.rstrip("\n")
            if traceback_at:
                if line.startswith((" ", "\t")) or not line.strip() or line.startswith("During handling"):
                    continue
                if line.startswith("Traceback"):
                    continue
                yield Entry(base, "CRITICAL", f"uncaught exception: {line.strip()}", None), True
                traceback_at = []
                continue
            if not any(marker in line for marker in _PREFILTER):
                yield None, True
                continue
            if line.startswith("Traceback (most recent call last)"):
                traceback_at = [line]
                yield None, True
                continue
            stripped = line.lstrip()
            if " hux-supervisor: " in line:  # the supervisor's own notes: crashes are errors
                if _CRASH.search(line):
                    stamp, _, note = line.partition(" hux-supervisor: ")
                    yield Entry(f"{base} (supervisor)", "ERROR", note.strip(), parse_time(stamp)), True
                else:
                    yield None, True
            elif stripped.startswith("{"):
                yield _parse_json(stripped, base), True
            elif "level=" in line or "lvl=" in line:
                yield _parse_logfmt(line, base), True
            else:
                yield _parse_text(line, base), True


def review_logs(log_dir: Path, *, since: datetime, until: datetime | None = None, max_groups: int = 200) -> LogReview:
    """Group the error lines of every ``*.log`` (and rotated siblings written since ``since``)."""
    until = until or datetime.now(timezone.utc)
    review = LogReview(since=since, until=until)
    groups: dict[tuple[str, str, str], Group] = {}
    if not log_dir.is_dir():
        return review
    candidates = sorted(p for p in log_dir.iterdir() if p.is_file() and re.search(r"\.log(\.\d+)?$", p.name))
    for path in candidates:
        try:
            mtime = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        except OSError:
            continue
        if not path.name.endswith(".log") and mtime < since:
            continue  # a rotated file last written before the window
        summary = FileSummary(path)
        in_window_by_mtime = mtime >= since
        for entry, counted in _entries(path):
            summary.lines += counted
            if entry is None:
                continue
            if entry.at is None:
                if not in_window_by_mtime:
                    continue
                summary.undated += 1
            elif not since <= entry.at <= until:
                continue
            summary.errors += 1
            key = (entry.component, entry.level, pattern_of(entry.message))
            group = groups.get(key)
            if group is None:
                group = groups[key] = Group(entry.component, entry.level, key[2], example=entry.message[:300])
            group.count += 1
            if entry.at is not None:
                group.first = entry.at if group.first is None or entry.at < group.first else group.first
                group.last = entry.at if group.last is None or entry.at > group.last else group.last
        review.files.append(summary)
    ordered = sorted(groups.values(), key=lambda g: (g.level != "CRITICAL", -g.count, g.component, g.pattern))
    review.groups = ordered[:max_groups]
    return review


def default_window(now: datetime | None = None, hours: float = 24.0) -> tuple[datetime, datetime]:
    now = now or datetime.now(timezone.utc)
    return now - timedelta(hours=hours), now
