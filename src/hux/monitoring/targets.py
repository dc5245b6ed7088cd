"""Scrape targets from files: ``hux targets add|remove|list``, read by Prometheus's file-based discovery.

Each kind of target (``node``: node_exporters, ``bot``: bot instances) has one
file, ``data/targets/<kind>.json``, in the format of Prometheus's
``file_sd_configs`` (a list of ``{"targets": [...], "labels": {...}}``).
Prometheus watches the directory and re-reads the files every
``prometheus.target_refresh_interval``, so a change needs no restart.

The local node_exporter and the bots of ``stack.bot_targets`` stay static
targets of the rendered config; the files hold the other hosts. Edits are
serialised by a lock file and written atomically (a temporary file renamed
over the old one), so Prometheus never reads half a file.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hux.config import ConfigError
from hux.monitoring.prometheus_config import static_targets
from hux.monitoring.settings import Settings

#: kind -> the scrape job whose targets the file adds to
KINDS = {"node": "node", "bot": "bot"}
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*")


class TargetError(ConfigError):
    """A target or a target file that cannot be used; the message says what to do."""


def target_file(directory: Path, kind: str) -> Path:
    return Path(directory) / f"{_kind(kind)}.json"


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise TargetError(f"unknown target kind {kind!r}: use one of {', '.join(KINDS)}")
    return kind


def parse_target(text: str) -> str:
    """``HOST:PORT`` (an IPv4 address, ``[IPv6]`` or a host name) in its canonical spelling, else TargetError."""
    example = "e.g. 10.0.0.5:9100, [2001:db8::5]:9100 or db1.example.org:9100"
    value = text.strip()
    if not value or any(ch.isspace() for ch in value) or "/" in value or "@" in value:
        raise TargetError(f"{text!r} is not HOST:PORT ({example}); no scheme, path or credentials")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise TargetError(f"{text!r} has no port between 1 and 65535: give HOST:PORT ({example})")
    if host.startswith("[") and host.endswith("]"):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]:{int(port)}"
        except ValueError:
            raise TargetError(f"{host!r} is not an IPv6 address ({example})") from None
    if ":" in host:
        raise TargetError(f"{text!r}: put an IPv6 address in brackets, e.g. [{host}]:{port}")
    try:
        return f"{ipaddress.IPv4Address(host)}:{int(port)}"
    except ValueError:
        pass
    if re.fullmatch(r"[\d.]+", host) or not _HOSTNAME.fullmatch(host):
        raise TargetError(f"{host!r} is neither an IPv4 address nor a host name ({example})")
    return f"{host.lower()}:{int(port)}"


def read_targets(directory: Path, kind: str) -> list[str]:
    """The targets a kind's file lists (none when there is no file yet); a file Prometheus cannot use: TargetError."""
    path = target_file(directory, kind)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror}") from None
    fix = f"fix or delete {path} (it holds a JSON list of {{\"targets\": [\"HOST:PORT\", ...]}})"
    try:
        groups = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TargetError(f"{path} is not JSON ({exc.msg}, line {exc.lineno}): {fix}") from None
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("targets"), list)
                                               for g in groups):
        raise TargetError(f"{path} is not a list of target groups: {fix}")
    found: list[str] = []
    for group in groups:
        for target in group["targets"]:
            if not isinstance(target, str):
                raise TargetError(f"{path} lists {target!r}, not a HOST:PORT string: {fix}")
            canonical = parse_target(target)
            if canonical not in found:
                found.append(canonical)
    return found


def _write(directory: Path, kind: str, targets: list[str]) -> None:
    path = target_file(directory, kind)
    groups: list[dict[str, Any]] = [{"targets": targets, "labels": {}}] if targets else []
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(groups, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)   # Prometheus (possibly another user) reads it; it holds no secret
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):   # the old file stays as it was
            raise TargetError(f"cannot write {path} ({exc.strerror}); it is unchanged") from None
        raise


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One editor of the directory at a time; a directory we cannot write: TargetError saying so."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / ".lock", "a")
    except OSError as exc:
        raise TargetError(f"cannot write the target files in {directory} ({exc.strerror}): run as the user "
                          "that owns it, or fix its owner (e.g. a directory docker created as root)") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def local_targets(settings: Settings, kind: str) -> list[str]:
    """The kind's static targets in the rendered config (always scraped; not in the file)."""
    return static_targets(settings)[KINDS[_kind(kind)]]


def add_target(settings: Settings, directory: Path, kind: str, target: str) -> str:
    """Add ``target`` to the kind's file; the canonical target added. Already scraped: TargetError."""
    canonical = parse_target(target)
    with _locked(Path(directory)):
        current = read_targets(directory, kind)
        if canonical in local_targets(settings, kind):
            raise TargetError(f"{canonical} is already a {kind} target of the rendered config (the local one "
                              "or stack.bot_targets): nothing to add")
        if canonical in current:
            raise TargetError(f"{canonical} is already in {target_file(directory, kind)}: nothing to add")
        _write(Path(directory), kind, [*current, canonical])
    return canonical


def remove_target(settings: Settings, directory: Path, kind: str, target: str) -> str:
    """Remove ``target`` from the kind's file; the canonical target removed. Not listed: TargetError."""
    canonical = parse_target(target)
    with _locked(Path(directory)):
        current = read_targets(directory, kind)
        if canonical not in current:
            if canonical in local_targets(settings, kind):
                raise TargetError(f"{canonical} is a static target of the rendered config, not of "
                                  f"{target_file(directory, kind)}: change the settings (stack.ports, "
                                  "stack.bot_targets) and run `hux render` to drop it")
            listed = ", ".join(current) or "none"
            raise TargetError(f"{canonical} is not a {kind} target (listed: {listed}); see `hux targets list`")
        _write(Path(directory), kind, [t for t in current if t != canonical])
    return canonical


def ensure_files(directory: Path) -> None:
    """Create an empty file per kind where none exists (Prometheus watches existing files)."""
    with _locked(Path(directory)):
        for kind in KINDS:
            if not target_file(directory, kind).exists():
                _write(Path(directory), kind, [])
