"""The docker path: the same `hux up/down/status/restart`, driving `docker compose`.

Used when ``stack.mode = "docker"`` (or ``--docker``). It needs a Docker engine
that answers ``docker info`` and either the compose plugin (``docker compose``)
or the standalone ``docker-compose``. It runs the committed
``docker-compose.yml`` (rendered by ``hux render``) under the project name
``hux``; data lives in the compose file's named volumes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from hux.config import load_dotenv
from hux.stack.grafana import ensure_secret_file

PROJECT_NAME = "hux"
COMPOSE_FILE = "docker-compose.yml"


class DockerUnavailable(Exception):
    """No Docker engine or no compose front-end. The message says what is missing."""


def _runs(argv: Sequence[str], timeout: float = 10.0) -> bool:
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def engine_available() -> bool:
    """True when a Docker engine answers (``docker info`` succeeds)."""
    return shutil.which("docker") is not None and _runs(["docker", "info"])


def compose_frontend() -> list[str] | None:
    """``docker compose`` (v2 plugin) when present, else ``docker-compose`` (v1), else None."""
    if shutil.which("docker") and _runs(["docker", "compose", "version"]):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def compose_environment(project_dir: Path, secrets: Mapping[str, Path],
                        environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for compose: the caller's, plus generated secrets compose must interpolate.

    ``secrets`` maps a variable (e.g. ``HUX_GRAFANA_ADMIN_PASSWORD``) to a file; when
    neither the environment nor the project's ``.env`` sets it, the file's content is
    used, generated (random, 0600) on first use. No default passwords.
    """
    env = dict(os.environ if environ is None else environ)
    dotenv: dict[str, str] = {}
    load_dotenv(Path(project_dir) / ".env", dotenv)
    for variable, path in secrets.items():
        if env.get(variable) or dotenv.get(variable):
            continue
        env[variable], _ = ensure_secret_file(path)
    return env


def find_compose_file(start: Path | None = None) -> Path:
    """``./docker-compose.yml``, else the one in the repository this package is installed from."""
    candidates = [Path(start or os.getcwd()) / COMPOSE_FILE, Path(__file__).resolve().parents[3] / COMPOSE_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DockerUnavailable(
        f"no {COMPOSE_FILE} found (looked in {', '.join(str(c.parent) for c in candidates)}): "
        "run `hux render` in the repository to produce it"
    )


@dataclass(frozen=True)
class ComposeProject:
    frontend: tuple[str, ...]
    file: Path
    project: str = PROJECT_NAME

    @classmethod
    def detect(cls, file: Path | None = None, *, need_engine: bool = True) -> "ComposeProject":
        frontend = compose_frontend()
        if frontend is None:
            raise DockerUnavailable(
                "neither `docker compose` nor `docker-compose` is installed: install Docker with the compose "
                "plugin (https://docs.docker.com/engine/install/), or run natively (stack.mode = \"native\")"
            )
        if need_engine and not engine_available():
            raise DockerUnavailable(
                "no Docker engine answers (`docker info` failed): start the Docker daemon (e.g. "
                "`sudo systemctl start docker`) and check your user may use it, or run natively "
                "(stack.mode = \"native\", the default)"
            )
        return cls(tuple(frontend), (file or find_compose_file()).resolve())

    def base(self) -> list[str]:
        return [*self.frontend, "--project-name", self.project, "--file", str(self.file),
                "--project-directory", str(self.file.parent)]

    def _services(self) -> dict[str, Any]:
        data = yaml.safe_load(self.file.read_text(encoding="utf-8")) or {}
        services = data.get("services") if isinstance(data, dict) else None
        if not isinstance(services, dict):
            raise DockerUnavailable(f"{self.file} has no `services:` mapping: it is not a compose file; "
                                    "`hux render` writes the project's docker-compose.yml again")
        return services

    def services(self) -> list[str]:
        return list(self._services())

    def published_services(self) -> set[str]:
        """Services with ports on the host."""
        return {name for name, service in self._services().items() if (service or {}).get("ports")}

    def check_services(self, names: Sequence[str]) -> list[str]:
        known = self.services()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise DockerUnavailable(f"unknown service(s) {', '.join(unknown)}; {self.file.name} has: {', '.join(known)}")
        return list(names)

    # Command lines (kept separate from running them so they can be checked without an engine).
    def up_command(self, services: Sequence[str] = ()) -> list[str]:
        return [*self.base(), "up", "--detach", "--remove-orphans", *services]

    def down_command(self) -> list[str]:
        return [*self.base(), "down", "--remove-orphans"]   # named volumes (the data) stay

    def status_command(self) -> list[str]:
        return [*self.base(), "ps"]

    def restart_command(self, services: Sequence[str] = ()) -> list[str]:
        return [*self.base(), "restart", *services]

    def config_check_command(self) -> list[str]:
        return [*self.base(), "config", "--quiet"]

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, capture: bool = False,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), cwd=str(self.file.parent), text=True, timeout=timeout,
                              capture_output=capture, env=dict(env) if env is not None else None)
