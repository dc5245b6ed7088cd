"""What the supervisor runs: a plain, JSON-serialisable plan, and where runtime files live.

``hux up`` turns the settings into a :class:`StackPlan` (see
``hux.stack.components``) and writes it to ``data/supervisor/plan.json``; the
supervisor process only reads that file. Keeping the supervisor ignorant of
the settings model means it can be restarted, re-planned (SIGHUP) and tested
with any command lines.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from hux import paths

#: what every child inherits from the supervisor's environment (a trailing ``*`` matches a prefix);
#: a component that needs more names it in ``ComponentSpec.inherit_env`` (secrets only where used)
BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR")
#: component names (they become file names: <name>.pid, logs)
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
#: a plan file or state file larger than this is not one we wrote
MAX_FILE_BYTES = 1 << 20


#: the native runtime layout under one home: the stack's name for :class:`hux.paths.Layout`
StackPaths = paths.Layout


@dataclass(frozen=True)
class ComponentSpec:
    """One supervised process."""

    name: str                      # "prometheus", "alertmanager", "node_exporter", "grafana", "bot"
    argv: tuple[str, ...]
    log_file: str                  # where its stdout/stderr go (rotated)
    ready_url: str                 # GET answers 200 when the component is ready
    url: str                       # what an operator opens
    port: int
    env: dict[str, str] = field(default_factory=dict)   # set in the child's environment; never secrets
    cwd: str | None = None
    stop_timeout: float = 15.0
    extra_logs: tuple[str, ...] = ()  # files the component writes itself (shown by `status`)
    #: the only variables of the supervisor's environment the child gets (``NAME`` or ``PREFIX*``)
    inherit_env: tuple[str, ...] = BASE_ENV

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        data["extra_logs"] = list(self.extra_logs)
        data["inherit_env"] = list(self.inherit_env)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "ComponentSpec":
        """The spec a plan file describes; ValueError saying which field is wrong otherwise."""
        data = _table(data, "component")
        name = data.get("name")
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError(f"component name {name!r} is not a name (lower-case letters, digits, _)")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"component {name}: unknown fields {sorted(unknown)}")
        where = f"component {name}"
        argv = _strings(data.get("argv"), f"{where}: argv")
        if not argv:
            raise ValueError(f"{where}: argv is empty")
        env = _table(data.get("env", {}), f"{where}: env")
        for key, value in env.items():
            _strings([key, value], f"{where}: env")
        cwd = data.get("cwd")
        if cwd is not None:
            _strings([cwd], f"{where}: cwd")
        port = data.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"{where}: port {port!r} is not a port number")
        return cls(
            name=name, argv=argv, port=port, env=dict(env), cwd=cwd,
            log_file=_strings([data.get("log_file")], f"{where}: log_file")[0],
            ready_url=_strings([data.get("ready_url")], f"{where}: ready_url")[0],
            url=_strings([data.get("url")], f"{where}: url")[0],
            stop_timeout=_number(data.get("stop_timeout", 15.0), f"{where}: stop_timeout", 0, 3600),
            extra_logs=_strings(data.get("extra_logs", []), f"{where}: extra_logs"),
            inherit_env=_strings(data.get("inherit_env", list(BASE_ENV)), f"{where}: inherit_env"),
        )

    def launch_key(self) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], str | None, tuple[str, ...]]:
        """What, when changed, needs the process restarted (configs reload without this)."""
        return (self.argv, tuple(sorted(self.env.items())), self.cwd, self.inherit_env)

    def child_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The child's whole environment: the allowed part of ``environ`` plus ``env``."""
        names = {n for n in self.inherit_env if not n.endswith("*")}
        prefixes = tuple(n[:-1] for n in self.inherit_env if n.endswith("*"))
        out = {k: v for k, v in environ.items() if k in names or (prefixes and k.startswith(prefixes))}
        out.update(self.env)
        return out


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff: float = 1.0   # first restart after a crash waits this long
    max_backoff: float = 30.0      # doubling stops here
    stable_after: float = 30.0     # up this long => the next crash starts from initial_backoff again


@dataclass(frozen=True)
class StackPlan:
    home: str
    components: tuple[ComponentSpec, ...]
    restart: RestartPolicy = RestartPolicy()
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5

    def component(self, name: str) -> ComponentSpec:
        for spec in self.components:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.components]

    def to_dict(self) -> dict[str, Any]:
        return {
            "home": self.home,
            "components": [spec.to_dict() for spec in self.components],
            "restart": asdict(self.restart),
            "log_max_bytes": self.log_max_bytes,
            "log_backups": self.log_backups,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "StackPlan":
        """The plan a file describes; ValueError saying what is wrong otherwise (nothing half-read)."""
        data = _table(data, "plan")
        components = data.get("components")
        if not isinstance(components, list):
            raise ValueError("plan: components must be a list")
        specs = tuple(ComponentSpec.from_dict(item) for item in components)
        if len({s.name for s in specs}) != len(specs):
            raise ValueError("plan: a component is listed twice")
        restart = _table(data.get("restart", {}), "plan: restart")
        unknown = set(restart) - {f.name for f in fields(RestartPolicy)}
        if unknown:
            raise ValueError(f"plan: restart has unknown fields {sorted(unknown)}")
        return cls(
            home=_strings([data.get("home")], "plan: home")[0],
            components=specs,
            restart=RestartPolicy(**{k: _number(v, f"plan: restart.{k}", 0.01, 86400) for k, v in restart.items()}),
            log_max_bytes=int(_number(data.get("log_max_bytes", 10 * 1024 * 1024), "plan: log_max_bytes", 1, 1 << 40)),
            log_backups=int(_number(data.get("log_backups", 5), "plan: log_backups", 0, 1000)),
        )

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> "StackPlan":
        """ValueError (or OSError) with the reason when the file is missing, not JSON or not a plan."""
        raw = Path(path).read_bytes()
        if len(raw) > MAX_FILE_BYTES:
            raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as exc:   # also UnicodeDecodeError
            raise ValueError(f"{path} is not valid JSON ({exc})") from None
        return cls.from_dict(data)


def _table(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{what} must be a JSON object")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "\0" not in v for v in value):
        raise ValueError(f"{what} must be a list of strings (without NUL)")
    return tuple(value)


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"{what} must be a number from {low:g} to {high:g}, not {value!r}")
    return float(value)


def write_json_atomic(path: Path, data: Any, mode: int = 0o644) -> None:
    """Write JSON so readers see the old or the new file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``; None when it is missing, unreadable, too large or not JSON."""
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            return None
        return json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):   # ValueError: JSONDecodeError, UnicodeDecodeError
        return None


def read_state(path: Path) -> dict[str, Any] | None:
    """The supervisor's state file in the shape its readers expect, or None when it is not one.

    ``{"supervisor": {...}, "components": {name: {...}}, "order": [...]}``; a component entry
    that is not an object is dropped (its identity then names no process, see ProcessIdentity).
    """
    data = read_json(path)
    if not isinstance(data, dict):
        return None
    supervisor = data.get("supervisor")
    components = data.get("components")
    order = data.get("order")
    return {
        **data,
        "supervisor": supervisor if isinstance(supervisor, dict) else {},
        "components": {k: v for k, v in components.items() if isinstance(v, dict)}
        if isinstance(components, dict) else {},
        "order": [n for n in order if isinstance(n, str)] if isinstance(order, list) else [],
    }
