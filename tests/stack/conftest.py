"""A real native stack per test module: Prometheus, Alertmanager, node_exporter and the demo bot.

Everything runs on ephemeral loopback ports under a temporary HUX_HOME, with
1 s scrape and evaluation intervals so targets and rules settle quickly. The
stack is driven through the real CLI (``python -m hux.cli``), the way an
operator drives it, and stopped (``hux down``) when the module ends; anything a
broken ``down`` might leave behind is stopped by its recorded, verified pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest

from hux.monitoring.settings import Settings, load_settings
from hux.stack.health import HealthReport, run_health
from hux.stack.plan import StackPaths, read_json
from hux.stack.procs import ProcessIdentity
from tests.conftest import free_port, require_binary

ROOT = Path(__file__).resolve().parents[2]
PORT_NAMES = ("prometheus", "alertmanager", "node_exporter", "grafana", "bot", "doubles")
BINARIES = ("prometheus", "promtool", "prometheus-alertmanager", "amtool", "prometheus-node-exporter")
T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll until ``probe`` returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def stack_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HUX__") and not (k.startswith("HUX_") and k.endswith("_BINARY"))
           and k not in ("HUX_CONFIG", "HUX_TELEGRAM_TOKEN", "HUX_ENV_FILE")}
    env["HUX_HOME"] = str(home)
    env["HUX_ENV_FILE"] = str(home / ".env")      # never the checkout's .env
    env.update(extra or {})
    return env


def base_config(ports: dict[str, int], extra: str = "", prometheus: str = "") -> str:
    """Settings on private ports with 1 s intervals; ``extra`` adds tables, ``prometheus`` keys of [prometheus]."""
    lines = ["[stack.ports]", *(f"{name} = {port}" for name, port in ports.items()),
             "", "[prometheus]", 'scrape_interval = "1s"', 'evaluation_interval = "1s"', prometheus, ""]
    return "\n".join(lines) + extra


@dataclass
class StackUnderTest:
    home: Path
    ports: dict[str, int]
    env: dict[str, str]
    up_output: str = ""
    config_extra: str = ""
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def config(self) -> Path:
        return self.home / "hux.toml"

    @property
    def paths(self) -> StackPaths:
        return StackPaths(self.home)

    def write_config(self, extra: str = "", prometheus: str = "") -> None:
        self.config.write_text(base_config(self.ports, extra, prometheus))
        self._settings = None

    def hux(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "hux.cli", "--config", str(self.config), *args],
            env=self.env, cwd=self.home, capture_output=True, text=True, timeout=timeout,
        )

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config, environ=self.env)
        return self._settings

    def url(self, component: str) -> str:
        return self.settings().url(component)

    def health(self) -> HealthReport:
        return asyncio.run(run_health(self.settings(), self.paths))

    def state(self) -> dict[str, Any]:
        return read_json(self.paths.state_file) or {}

    def component(self, name: str) -> dict[str, Any]:
        return (self.state().get("components") or {}).get(name) or {}

    def identities(self) -> dict[str, ProcessIdentity]:
        out = {}
        state = self.state()
        sup = ProcessIdentity.from_dict((state.get("supervisor") or {}).get("identity"))
        if sup is not None:
            out["supervisor"] = sup
        for name, comp in (state.get("components") or {}).items():
            ident = ProcessIdentity.from_dict(comp.get("identity"))
            if ident is not None:
                out[name] = ident
        return out

    def status(self) -> dict[str, Any]:
        result = self.hux("status", "--json")
        return json.loads(result.stdout)


def kill_until_named(stack: StackUnderTest, name: str, check: str, attempts: int = 3) -> tuple[ProcessIdentity, HealthReport, int]:
    """SIGKILL a component and run health at once; returns (victim, report naming ``check`` failing, kills).

    The supervisor restarts a component about a second after it dies; on a loaded machine that can
    beat the health run, so the kill is repeated (bounded) until a run catches the component down.
    """
    restarts = stack.component(name).get("restarts", 0)
    for kills in range(1, attempts + 1):
        victim = ProcessIdentity.from_dict(stack.component(name).get("identity"))
        assert victim is not None and victim.alive(), f"{name} is not running"
        assert victim.signal(signal.SIGKILL)
        report = stack.health()
        if check in report.failing():
            return victim, report, kills
        wait_for(lambda: stack.component(name).get("restarts") == restarts + kills
                 and stack.component(name).get("state") == "running", 20, f"{name} to be restarted")
    pytest.fail(f"no health run caught {name} down in {attempts} kills")


def start_stack(home: Path, *, config_extra: str = "", env_extra: dict[str, str] | None = None) -> StackUnderTest:
    for binary in BINARIES:
        require_binary(binary)
    home.mkdir(parents=True, exist_ok=True)
    stack = StackUnderTest(home=home, ports={name: free_port() for name in PORT_NAMES},
                           env=stack_env(home, env_extra), config_extra=config_extra)
    stack.write_config(config_extra)
    stack.env["HUX_CONFIG"] = str(stack.config)
    # README command one. Run with the project's virtualenv it skips the bootstrap (packages, venv)
    # and goes straight to `hux up`; HUX_HOME and HUX_CONFIG keep it off the checkout and the fixed ports.
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "setup_monitoring.py"), "--timeout", "60"],
                            env=stack.env, cwd=home, capture_output=True, text=True, timeout=120)
    stack.up_output = result.stdout + result.stderr
    if result.returncode != 0:
        stop_stack(stack)
        pytest.fail(f"setup_monitoring.py failed ({result.returncode}):\n{stack.up_output}\n" + _log_tails(home))
    return stack


def stop_stack(stack: StackUnderTest) -> None:
    """`hux down`, then make sure: anything still alive by its recorded identity is stopped."""
    before = stack.identities()
    try:
        stack.hux("down", timeout=90)
    finally:
        for ident in before.values():
            if ident.alive():
                ident.terminate(timeout=5)


def _log_tails(home: Path) -> str:
    out = []
    for log in sorted((home / "logs").glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-15:]
        out.append(f"--- {log.name}\n" + "\n".join(lines))
    return "\n".join(out)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    running = start_stack(tmp_path_factory.mktemp("stack"))
    yield running
    stop_stack(running)
