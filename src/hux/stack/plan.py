"""What the supervisor runs: a plain, JSON-serialisable plan, and where runtime files live.

``hux up`` turns the settings into a :class:`StackPlan` (see
``hux.stack.components``) and writes it to ``data/supervisor/plan.json``; the
supervisor process only reads that file. Keeping the supervisor ignorant of
the settings model means it can be restarted, re-planned (SIGHUP) and tested
with any command lines.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hux import paths


@dataclass(frozen=True)
class StackPaths:
    """The native runtime layout under one home (docs/architecture.md)."""

    home: Path

    @classmethod
    def current(cls) -> "StackPaths":
        return cls(paths.home())

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data / "run"

    @property
    def supervisor_dir(self) -> Path:
        return self.data / "supervisor"

    @property
    def plan_file(self) -> Path:
        return self.supervisor_dir / "plan.json"

    @property
    def state_file(self) -> Path:
        return self.supervisor_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.supervisor_dir / "supervisor.lock"

    @property
    def pid_file(self) -> Path:
        return self.supervisor_dir / "supervisor.pid"

    @property
    def requests_dir(self) -> Path:
        return self.supervisor_dir / "requests"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisor.log"

    def component_data(self, name: str) -> Path:
        return self.data / name

    @property
    def textfile_dir(self) -> Path:
        return self.data / "node_exporter" / "textfile"

    @property
    def grafana_password_file(self) -> Path:
        return self.data / "grafana" / "admin_password"


@dataclass(frozen=True)
class ComponentSpec:
    """One supervised process."""

    name: str                      # "prometheus", "alertmanager", "node_exporter", "grafana", "bot"
    argv: tuple[str, ...]
    log_file: str                  # where its stdout/stderr go (rotated)
    ready_url: str                 # GET answers 200 when the component is ready
    url: str                       # what an operator opens
    port: int
    env: dict[str, str] = field(default_factory=dict)   # additions to the inherited environment; never secrets
    cwd: str | None = None
    stop_timeout: float = 15.0
    extra_logs: tuple[str, ...] = ()  # files the component writes itself (shown by `status`)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        data["extra_logs"] = list(self.extra_logs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ComponentSpec":
        data = dict(data)
        data["argv"] = tuple(data["argv"])
        data["extra_logs"] = tuple(data.get("extra_logs", ()))
        return cls(**data)

    def launch_key(self) -> tuple:
        """What, when changed, needs the process restarted (configs reload without this)."""
        return (self.argv, tuple(sorted(self.env.items())), self.cwd)


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
    def from_dict(cls, data: dict[str, Any]) -> "StackPlan":
        return cls(
            home=data["home"],
            components=tuple(ComponentSpec.from_dict(item) for item in data["components"]),
            restart=RestartPolicy(**data.get("restart", {})),
            log_max_bytes=int(data.get("log_max_bytes", 10 * 1024 * 1024)),
            log_backups=int(data.get("log_backups", 5)),
        )

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> "StackPlan":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


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
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
