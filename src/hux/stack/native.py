"""Driving the native supervisor from the CLI: start it, stop it, ask it things.

Everything here works from files the supervisor keeps under
``data/supervisor/`` (its lock, its state with recorded process identities)
and from the components' own HTTP endpoints. Processes are only ever signalled
through a :class:`~hux.stack.procs.ProcessIdentity` that still matches.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from hux.paths import private_dir
from hux.stack.plan import StackPaths, StackPlan, read_state
from hux.stack.procs import ProcessIdentity, rss_bytes


class StackError(Exception):
    """The stack cannot do what was asked. The message says why and what to do."""


@dataclass
class StopReport:
    stopped: list[str] = field(default_factory=list)      # "prometheus (pid 123)"
    forced: list[str] = field(default_factory=list)       # needed a direct SIGTERM/SIGKILL from us
    left: list[str] = field(default_factory=list)         # still alive afterwards (should stay empty)
    was_running: bool = False


class NativeStack:
    def __init__(self, paths: StackPaths) -> None:
        self.paths = paths

    # ----- what is running ------------------------------------------------------------------
    def lock_held(self) -> bool:
        """True while a supervisor holds this home's lock (the honest "is it running?")."""
        try:
            fh = self.paths.lock_file.open("r")
        except FileNotFoundError:
            return False
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False

    def state(self) -> dict[str, Any] | None:
        return read_state(self.paths.state_file)

    def supervisor(self) -> ProcessIdentity | None:
        """The running supervisor's verified identity, or None."""
        state = self.state() or {}
        ident = ProcessIdentity.from_dict((state.get("supervisor") or {}).get("identity"))
        if ident is not None and ident.alive():
            return ident
        return None

    def running(self) -> bool:
        return self.lock_held() or self.supervisor() is not None

    def recorded_children(self) -> dict[str, ProcessIdentity]:
        state = self.state() or {}
        out = {}
        for name, comp in (state.get("components") or {}).items():
            ident = ProcessIdentity.from_dict(comp.get("identity"))
            if ident is not None:
                out[name] = ident
        return out

    def plan(self) -> StackPlan | None:
        try:
            return StackPlan.load(self.paths.plan_file)
        except (OSError, ValueError):
            return None

    def memory(self) -> dict[str, int]:
        """RSS of each live component (and the supervisor), bytes."""
        out = {name: rss_bytes(ident.pid) for name, ident in self.recorded_children().items() if ident.alive()}
        sup = self.supervisor()
        if sup is not None:
            out["supervisor"] = rss_bytes(sup.pid)
        return out

    # ----- starting -------------------------------------------------------------------------
    def prepare_dirs(self) -> None:
        """data/ and logs/ (and each component's directory) 0700: chat texts, TSDB and logs are private.

        An existing install's looser modes are tightened here, on the next `hux up`.
        """
        for directory in (
            self.paths.data,
            self.paths.logs,
            self.paths.supervisor_dir,
            self.paths.requests_dir,
            self.paths.component_data("prometheus"),
            self.paths.component_data("alertmanager"),
            self.paths.component_data("bot"),
            self.paths.component_data("grafana"),
            self.paths.inbox_dir,
        ):
            private_dir(directory, tighten=True)
        self.paths.textfile_dir.mkdir(parents=True, exist_ok=True)   # metrics only; the docker path mounts it

    @staticmethod
    def busy_ports(plan: StackPlan, extra: dict[str, tuple[str, int]] | None = None) -> list[str]:
        """Ports a component needs that another program already listens on."""
        wanted = {spec.name: (_host_of(spec.url), spec.port) for spec in plan.components}
        wanted.update(extra or {})
        busy = []
        for name, (host, port) in wanted.items():
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError:
                    busy.append(f"{name} needs {host}:{port}")
        return busy

    def start_detached(self, python: str | None = None, wait: float = 10.0) -> ProcessIdentity:
        """Start the supervisor in its own session; returns once it holds the lock and wrote its state."""
        if self.lock_held():
            raise StackError(f"another supervisor holds the lock for {self.paths.home}: the stack is already running "
                             "(`hux status`)")
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.paths.state_file.unlink(missing_ok=True)
        argv = [python or sys.executable, "-m", "hux.stack.supervisor", "--home", str(self.paths.home)]
        with self.paths.supervisor_log.open("ab") as early_errors:   # only tracebacks before its own log opens
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=early_errors,
                cwd=str(self.paths.home),
                start_new_session=True,   # survives the terminal that ran `hux up`
                close_fds=True,
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            ident = self.supervisor()
            if ident is not None and ident.pid == proc.pid:
                return ident
            code = proc.poll()
            if code is not None:
                raise StackError(
                    f"the supervisor exited at once (code {code}); see {self.paths.supervisor_log}"
                    + (" — another supervisor holds the lock for this home" if code == 3 else "")
                )
            time.sleep(0.05)
        raise StackError(f"the supervisor did not report in within {wait:.0f} s; see {self.paths.supervisor_log}")

    # ----- talking to a running supervisor ----------------------------------------------------
    def replan(self) -> None:
        sup = self.supervisor()
        if sup is None or not sup.signal(signal.SIGHUP):
            raise StackError("the stack is not running: start it with `hux up`")

    def request_restart(self, components: list[str]) -> None:
        self.request("restart", components)

    def request(self, action: str, components: list[str]) -> None:
        """Ask the supervisor to restart, stop or start components (``hux.stack.supervisor`` requests)."""
        sup = self.supervisor()
        if sup is None:
            raise StackError("the stack is not running: start it with `hux up`")
        self.paths.requests_dir.mkdir(parents=True, exist_ok=True)
        request = self.paths.requests_dir / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
        tmp = request.with_suffix(".tmp")
        tmp.write_text(json.dumps({"action": action, "components": components}))
        os.replace(tmp, request)
        sup.signal(signal.SIGUSR1)

    def wait_component(self, name: str, state: str, timeout: float, *, not_pid: int | None = None) -> bool:
        """Wait until the supervisor records ``name`` in ``state`` (with a pid other than ``not_pid``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            comp = ((self.state() or {}).get("components") or {}).get(name) or {}
            if comp.get("state") == state and (not_pid is None or comp.get("pid") != not_pid):
                return True
            time.sleep(0.1)
        return False

    def wait_new_pids(self, components: list[str], old: dict[str, int | None], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            comps = (self.state() or {}).get("components") or {}
            if all(comps.get(n, {}).get("pid") not in (None, old.get(n)) and comps[n].get("state") == "running"
                   for n in components):
                return True
            time.sleep(0.1)
        return False

    # ----- stopping -------------------------------------------------------------------------
    def stop(self, timeout: float = 60.0) -> StopReport:
        """Stop the supervisor (which stops its children), then make sure every recorded pid is gone."""
        report = StopReport()
        before = self.recorded_children()
        plan = self.plan()
        grace = {spec.name: spec.stop_timeout for spec in plan.components} if plan else {}
        sup = self.supervisor()
        if sup is None and self.lock_held():
            # Starting up: give it a moment to record its identity.
            deadline = time.monotonic() + 5
            while sup is None and time.monotonic() < deadline:
                time.sleep(0.1)
                sup = self.supervisor()
                before = self.recorded_children() or before
        if sup is not None:
            report.was_running = True
            sup.signal(signal.SIGTERM)
            if not sup.wait_gone(timeout):
                report.forced.append(f"supervisor (pid {sup.pid})")
                sup.signal(signal.SIGKILL)
                sup.wait_gone(5)
        # Children the supervisor could not stop (it was killed, or it hung): stop them ourselves,
        # still only by verified identity.
        for name, ident in before.items():
            if ident.alive():
                report.was_running = True
                report.forced.append(f"{name} (pid {ident.pid})")
                ident.terminate(timeout=grace.get(name, 15.0))
            if ident.alive():
                report.left.append(f"{name} (pid {ident.pid})")
            else:
                report.stopped.append(f"{name} (pid {ident.pid})")
        for pid_file in self.paths.supervisor_dir.glob("*.pid"):
            pid_file.unlink(missing_ok=True)
        return report


def _host_of(url: str) -> str:
    host = url.split("://", 1)[-1].split("/", 1)[0]
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0]
