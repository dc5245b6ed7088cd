"""Stopping and starting Prometheus around a restore, and a private Prometheus for checks.

A restore has to stop Prometheus, swap its data and start it again. Who runs
Prometheus differs: the native stack's supervisor, systemd, a container, a
test fixture. ``ServiceControl`` is the small seam between them: anything with
``stop()`` and ``start()``. ``CommandControl`` runs operator-given commands
(``--stop-command "systemctl stop prometheus"``); ``CallableControl`` wraps
two functions (the stack's supervisor or a test plugs in here).

``LocalPrometheus`` runs a throw-away Prometheus on a free loopback port over a
given data directory. An offline restore (Prometheus not running) verifies
the restored data with it before declaring success.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Protocol, runtime_checkable

from hux.ops.errors import OpsError


@runtime_checkable
class ServiceControl(Protocol):
    description: str

    def stop(self) -> None: ...

    def start(self) -> None: ...


@dataclass
class CallableControl:
    """``CallableControl(stop=supervisor.stop_prometheus, start=supervisor.start_prometheus)``."""

    stop_fn: Callable[[], None]
    start_fn: Callable[[], None]
    description: str = "the given stop/start functions"

    def stop(self) -> None:
        self.stop_fn()

    def start(self) -> None:
        self.start_fn()


@dataclass
class CommandControl:
    """Runs one command to stop and one to start (no shell; arguments split like a shell would)."""

    stop_command: list[str]
    start_command: list[str]
    timeout: float = 120.0
    description: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.description = f"`{shlex.join(self.stop_command)}` / `{shlex.join(self.start_command)}`"

    @classmethod
    def from_strings(cls, stop: str, start: str, timeout: float = 120.0) -> "CommandControl":
        return cls(shlex.split(stop), shlex.split(start), timeout)

    def _run(self, argv: list[str], what: str) -> None:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except FileNotFoundError:
            raise OpsError(f"cannot {what} Prometheus: {argv[0]} not found; fix the --{what}-command") from None
        except subprocess.TimeoutExpired:
            raise OpsError(f"`{shlex.join(argv)}` did not finish within {self.timeout:.0f}s") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise OpsError(f"`{shlex.join(argv)}` failed with code {done.returncode}: {' | '.join(tail)}")

    def stop(self) -> None:
        self._run(self.stop_command, "stop")

    def start(self) -> None:
        self._run(self.start_command, "start")


def tsdb_locked(data_dir: Path) -> bool:
    """True while a Prometheus holds the TSDB's lock file (it uses flock on ``<data>/lock``)."""
    return flock_held(data_dir / "lock")


def flock_held(lock: Path) -> bool:
    """True while another process holds an flock on ``lock`` (Prometheus's and VictoriaMetrics' data locks)."""
    if not lock.exists():
        return False
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def wait_unlocked(data_dir: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while tsdb_locked(data_dir):
        if time.monotonic() > deadline:
            raise OpsError(
                f"{data_dir} is still locked by a running Prometheus {timeout:.0f}s after stopping it: "
                "stop it by hand and retry"
            )
        time.sleep(0.2)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalPrometheus:
    """A private Prometheus over ``data_dir`` on 127.0.0.1:<free port>, scraping nothing.

    ``with LocalPrometheus(path) as prom: prom.url`` — stopped (SIGTERM, then
    SIGKILL) on exit. Retention is effectively off so old restored blocks stay.
    """

    def __init__(self, data_dir: Path, *, binary: str | None = None, ready_timeout: float = 120.0,
                 extra_args: list[str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        found = binary or shutil.which("prometheus")
        if not found:
            raise OpsError("the prometheus binary is not on PATH: install the prometheus package "
                           "(python3 scripts/setup_monitoring.py does) or start Prometheus yourself")
        self.binary = found
        self.ready_timeout = ready_timeout
        self.extra_args = extra_args or []
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from hux.ops.clients import Prometheus

        self._tmp = tempfile.TemporaryDirectory(prefix="hux-prom-")
        config = Path(self._tmp.name) / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\n", encoding="utf-8")
        log = self._log = open(Path(self._tmp.name) / "prometheus.log", "wb")
        for _attempt in range(3):  # a port picked free can be taken before Prometheus binds it
            self.port = free_loopback_port()
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=100y",
                    "--log.level=warn",
                    *self.extra_args,
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            client = Prometheus(self.url)
            deadline = time.monotonic() + self.ready_timeout
            try:
                while time.monotonic() < deadline and self.proc.poll() is None:
                    if client.ready():
                        return
                    time.sleep(0.2)
            finally:
                client.close()
            if self.proc.poll() is None:
                self.stop()
                raise OpsError(f"a temporary Prometheus over {self.data_dir} did not become ready "
                               f"within {self.ready_timeout:.0f}s")
        tail = (Path(self._tmp.name) / "prometheus.log").read_text(errors="replace").strip().splitlines()[-3:]
        self.stop()
        raise OpsError(f"a temporary Prometheus over {self.data_dir} would not start: {' | '.join(tail)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "LocalPrometheus":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
