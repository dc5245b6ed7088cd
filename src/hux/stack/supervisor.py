"""The native process supervisor: ``python -m hux.stack.supervisor``.

One supervisor per home. It holds an exclusive ``flock`` on
``data/supervisor/supervisor.lock`` for its lifetime (so "is it running?" has
one honest answer), reads ``data/supervisor/plan.json`` and then:

* starts every component in its own process group (terminal signals reach the
  supervisor only, which then shuts down in order) with the kernel told to
  SIGTERM it if the supervisor dies (``PR_SET_PDEATHSIG``), stdout/stderr
  piped into the component's rotating log;
* restarts a component that exits, after a backoff that doubles from
  ``initial_backoff`` up to ``max_backoff`` and resets once the component has
  stayed up ``stable_after`` seconds; every restart is counted;
* records pids, process start times, restart counts and last exit in
  ``data/supervisor/state.json`` (atomic writes) and ``<name>.pid`` files;
* SIGTERM/SIGINT: graceful shutdown (SIGTERM to each child, newest first,
  SIGKILL after its ``stop_timeout``), then exits 0;
* SIGHUP: re-reads the plan and restarts only components whose command line
  or environment changed (starting new ones, stopping removed ones);
* SIGUSR1: handles requests dropped in ``data/supervisor/requests/``
  (``hux restart <component>``; a Prometheus restore stops and starts
  Prometheus alone); those restarts are not counted as crashes. A request is
  ``{"action": "restart", "components": [name, ...]}`` (no or an empty list:
  all), or ``"stop"``/``"start"`` with the components named (a stopped
  component stays stopped until a start or restart request, or ``hux up``);
  anything else is logged with the reason, counted in the state file
  (``supervisor.requests_refused``) and ignored.

Least privilege: each child gets only the variables of the supervisor's
environment its spec names (``ComponentSpec.inherit_env``: Prometheus never
sees the Telegram token), and the supervisor runs with umask 077, so every
file a child creates (TSDB, Alertmanager state, Grafana's database, logs) is
private to the user running the stack.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import errno
import fcntl
import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from hux.stack.logs import LogPump, RotatingLog
from hux.stack.plan import ComponentSpec, StackPaths, StackPlan, write_json_atomic
from hux.stack.procs import ProcessIdentity

PR_SET_PDEATHSIG = 1
LOOP_INTERVAL = 0.2
REQUEST_POLL_INTERVAL = 1.0
#: bounds on restart requests: bytes per file, files handled per poll (the rest wait for the next one)
MAX_REQUEST_BYTES = 4096
MAX_REQUESTS_PER_POLL = 32
MAX_REQUEST_COMPONENTS = 32
#: every child (and every file it creates) is private to the user running the stack
CHILD_UMASK = 0o077
REQUEST_HOWTO = "use `hux restart <component>` to ask for a restart"
#: what a request may ask: restart (the default of `hux restart`), or stop / start named components
REQUEST_ACTIONS = ("restart", "stop", "start")


class BadRequest(Exception):
    """A restart request the supervisor refuses; ``reason`` is the bounded label it is counted under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_request(path: Path) -> tuple[str, list[str] | None]:
    """(action, components) of a request file (components None: all of them, restart only); BadRequest otherwise.

    The file is opened without following a symlink and read up to MAX_REQUEST_BYTES.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):   # a symlink; a fifo without a writer
            raise BadRequest("not_a_file", "it is not a regular file") from None
        raise BadRequest("unreadable", f"it cannot be read ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadRequest("not_a_file", "it is not a regular file")
        raw = os.read(fd, MAX_REQUEST_BYTES + 1)
    except OSError as exc:
        raise BadRequest("unreadable", f"it cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_REQUEST_BYTES:
        raise BadRequest("too_large", f"it is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        request = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise BadRequest("not_json", "it is not valid JSON") from None
    if not isinstance(request, dict):
        raise BadRequest("bad_request", "it is not a JSON object like {\"action\": \"restart\", \"components\": [...]}")
    unknown = sorted(str(k)[:40] for k in request if k not in ("action", "components"))
    if unknown:
        raise BadRequest("bad_request", f"it has unknown keys {unknown}")
    action = request.get("action")
    if action not in REQUEST_ACTIONS:
        raise BadRequest("bad_request", f"action {str(action)[:40]!r} is not one of {', '.join(REQUEST_ACTIONS)}")
    components = request.get("components")
    if components is None or components == []:
        if action != "restart":
            raise BadRequest("bad_request", f"a {action} request names its components, e.g. [\"prometheus\"] "
                                            "(the whole stack stops with `hux down`)")
        return action, None
    if (not isinstance(components, list) or len(components) > MAX_REQUEST_COMPONENTS
            or not all(isinstance(n, str) and 0 < len(n) <= 40 for n in components)):
        raise BadRequest("bad_request", "components must be a list of component names (at most "
                                        f"{MAX_REQUEST_COMPONENTS}), e.g. [\"prometheus\"]")
    return action, list(dict.fromkeys(components))

_LIBC: ctypes.CDLL | None
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux/glibc: children just won't get the parent-death signal
    _LIBC = None


def _child_setup(parent_pid: int) -> None:
    """Runs in the child between fork and exec: die with the supervisor."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
        os._exit(1)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "could not be started"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Child:
    spec: ComponentSpec
    log: RotatingLog
    proc: subprocess.Popen[bytes] | None = None
    identity: ProcessIdentity | None = None
    pump: LogPump | None = None
    state: str = "starting"          # starting | running | backoff | stopping | stopped
    restarts: int = 0                 # restarts after a crash (not requested ones)
    started_at: float | None = None   # wall clock
    started_mono: float = 0.0
    last_exit: str | None = None
    last_exit_at: float | None = None
    next_start: float = 0.0           # monotonic
    backoff: float = 0.0
    pending_crash_restart: bool = False
    error: str | None = None

    def to_state(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "state": self.state,
            "pid": self.identity.pid if self.identity and self.state in ("running", "stopping") else None,
            "identity": self.identity.to_dict() if self.identity and self.state in ("running", "stopping") else None,
            "restarts": self.restarts,
            "started_at": self.started_at,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "next_start_in": round(max(0.0, self.next_start - time.monotonic()), 1) if self.state == "backoff" else None,
            "error": self.error,
            "log_file": self.spec.log_file,
            "url": self.spec.url,
            "port": self.spec.port,
        }


class Wakeup:
    """Wakes the main loop from a signal handler without taking a lock.

    A Python signal handler runs in the main thread between two bytecodes, possibly while that
    thread holds a lock: ``threading.Event.set()`` there deadlocks on the Event's own lock when the
    signal lands inside the loop's ``wait()`` or ``clear()`` (a burst of SIGUSR1 froze the supervisor
    within a second). Instead the interpreter's C-level handler writes the signal number to a pipe
    (``signal.set_wakeup_fd``), the Python handlers only set flags, and the loop waits on the pipe.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # A full pipe already means "wake up": losing further bytes loses nothing.
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` s or until a handled signal arrived; forget the signals seen so far."""
        ready, _, _ = select.select([self._read], [], [], timeout)
        if ready:
            try:
                while os.read(self._read, 4096):
                    pass
            except BlockingIOError:   # drained
                pass

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        os.close(self._read)
        os.close(self._write)


@dataclass
class Supervisor:
    paths: StackPaths
    plan: StackPlan
    echo: bool = False                       # also print events to stdout (foreground mode)
    children: dict[str, Child] = field(default_factory=dict)
    _stop_requested: bool = False
    _replan_requested: bool = False
    _requests_pending: bool = False
    _lock_fh: IO[str] | None = None
    _log: RotatingLog | None = None
    _last_state: str = ""
    requests_refused: collections.Counter[str] = field(default_factory=collections.Counter)
    _reported_requests: set[str] = field(default_factory=set)   # entries we may not delete: reported once

    # ----- bookkeeping -------------------------------------------------------------------------
    def say(self, message: str) -> None:
        if self._log is not None:
            self._log.note(message)
        if self.echo:
            print(f"[supervisor] {message}", flush=True)

    def acquire_lock(self) -> bool:
        self.paths.supervisor_dir.mkdir(parents=True, exist_ok=True)
        fh = self.paths.lock_file.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._lock_fh = fh
        return True

    def write_state(self, running: bool = True) -> None:
        me = ProcessIdentity.of(os.getpid())
        state: dict[str, Any] = {
            "supervisor": {
                "running": running,
                "pid": os.getpid() if running else None,
                "identity": me.to_dict() if me and running else None,
                "home": str(self.paths.home),
                "updated_at": time.time(),
                "requests_refused": dict(self.requests_refused),
            },
            "components": {name: child.to_state() for name, child in self.children.items()},
            "order": list(self.children),
        }
        # Only when something changed (the loop runs every 0.2 s); updated_at does not count.
        fingerprint = json.dumps({**state, "supervisor": {**state["supervisor"], "updated_at": None}}, sort_keys=True)
        if fingerprint == self._last_state:
            return
        self._last_state = fingerprint
        write_json_atomic(self.paths.state_file, state)

    def _write_pid_file(self, name: str, pid: int | None) -> None:
        path = self.paths.supervisor_dir / f"{name}.pid"
        if pid is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(f"{pid}\n")

    # ----- signals -----------------------------------------------------------------------------
    def _install_signals(self) -> Wakeup:
        """Handlers only set flags (no locks, see Wakeup); every handled signal also wakes the loop."""
        wake = Wakeup()

        def stop(signum: int, _frame: FrameType | None) -> None:
            self._stop_requested = True

        def replan(_signum: int, _frame: FrameType | None) -> None:
            self._replan_requested = True

        def requests(_signum: int, _frame: FrameType | None) -> None:
            self._requests_pending = True

        def child(_signum: int, _frame: FrameType | None) -> None:
            """Nothing to record: a handler must be installed for SIGCHLD to reach the wakeup pipe."""

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, replan)
        signal.signal(signal.SIGUSR1, requests)
        signal.signal(signal.SIGCHLD, child)
        return wake

    # ----- one child ---------------------------------------------------------------------------
    def _new_child(self, spec: ComponentSpec) -> Child:
        log = RotatingLog(Path(spec.log_file), self.plan.log_max_bytes, self.plan.log_backups)
        return Child(spec=spec, log=log, backoff=self.plan.restart.initial_backoff)

    def _start(self, child: Child) -> None:
        spec = child.spec
        env = spec.child_env(os.environ)   # only what this component needs (never the others' secrets)
        child.error = None
        parent = os.getpid()  # read here: in the child, os.getpid() is the child
        try:
            proc = subprocess.Popen(
                list(spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=spec.cwd or str(self.paths.home),
                close_fds=True,
                process_group=0,
                preexec_fn=lambda: _child_setup(parent),
            )
        except OSError as exc:
            child.error = f"cannot start {spec.argv[0]}: {exc.strerror or exc}"
            child.log.note(child.error)
            self.say(f"{spec.name}: {child.error}")
            self._schedule_restart(child, None)
            return
        child.proc = proc
        child.identity = ProcessIdentity.of(proc.pid) or ProcessIdentity(proc.pid, -1, spec.argv[0])
        assert proc.stdout is not None   # stdout=PIPE
        child.pump = LogPump(spec.name, proc.stdout, child.log)
        child.pump.start()
        child.state = "running"
        child.started_at = time.time()
        child.started_mono = time.monotonic()
        self._write_pid_file(spec.name, proc.pid)
        child.log.note(f"started {spec.name} (pid {proc.pid})")
        self.say(f"{spec.name}: started, pid {proc.pid}")

    @staticmethod
    def _refresh_identity(child: Child) -> None:
        """Keep the recorded program path current when a wrapper exec'd the real program (same pid and start)."""
        ident = child.identity
        if child.state != "running" or ident is None:
            return
        now = ProcessIdentity.of(ident.pid)
        if now is not None and now.start_ticks == ident.start_ticks and now.argv0 != ident.argv0:
            child.identity = now

    def _schedule_restart(self, child: Child, code: int | None) -> None:
        policy = self.plan.restart
        now = time.monotonic()
        if child.started_mono and now - child.started_mono >= policy.stable_after:
            child.backoff = policy.initial_backoff
        delay = child.backoff
        child.backoff = min(max(child.backoff * 2, policy.initial_backoff), policy.max_backoff)
        child.state = "backoff"
        child.next_start = now + delay
        child.pending_crash_restart = True
        child.last_exit = describe_exit(code)
        child.last_exit_at = time.time()
        child.proc = None
        self._write_pid_file(child.spec.name, None)
        message = f"{child.spec.name} {child.last_exit}; restart #{child.restarts + 1} in {delay:.1f} s"
        child.log.note(message)
        self.say(message)

    def _reap(self, child: Child) -> None:
        if child.proc is None or child.state != "running":
            return
        code = child.proc.poll()
        if code is None:
            return
        if child.pump is not None:
            child.pump.join(timeout=1.0)
        self._schedule_restart(child, code)

    def _stop(self, child: Child, *, send: bool = True) -> None:
        """Ask one child to stop (SIGTERM) — the wait happens in _wait_stopped."""
        if child.proc is None or child.proc.poll() is not None:
            return
        child.state = "stopping"
        if send:
            try:
                child.proc.terminate()
            except ProcessLookupError:
                pass

    def _wait_stopped(self, child: Child, deadline: float) -> None:
        proc = child.proc
        if proc is not None:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.log.note(f"{child.spec.name} did not stop within {child.spec.stop_timeout:g} s; sending SIGKILL")
                proc.kill()
                proc.wait(timeout=5)
            child.last_exit = describe_exit(proc.returncode)
            child.last_exit_at = time.time()
        if child.pump is not None:
            child.pump.join(timeout=2.0)
        child.proc = None
        child.state = "stopped"
        child.pending_crash_restart = False
        self._write_pid_file(child.spec.name, None)

    def _stop_now(self, child: Child) -> None:
        self._stop(child)
        self._wait_stopped(child, time.monotonic() + child.spec.stop_timeout)
        child.log.note(f"stopped {child.spec.name}")

    # ----- plan changes and requests -----------------------------------------------------------
    def _replan(self) -> None:
        try:
            new_plan = StackPlan.load(self.paths.plan_file)
        except (OSError, ValueError) as exc:
            self.say(f"cannot read {self.paths.plan_file} ({exc}); keeping the running plan. "
                     "Run `hux up` (or `hux reload`) to write a good one")
            return
        old = self.children
        self.plan = new_plan
        for name in [n for n in old if n not in new_plan.names]:
            self.say(f"{name}: removed from the plan, stopping")
            self._stop_now(old.pop(name))
        fresh: dict[str, Child] = {}
        for spec in new_plan.components:
            child = old.get(spec.name)
            if child is None:
                child = self._new_child(spec)
                self._start(child)
            elif child.spec.launch_key() != spec.launch_key():
                self.say(f"{spec.name}: command line changed, restarting")
                self._stop_now(child)
                child.spec = spec
                self._start(child)
            else:
                child.spec = spec
            fresh[spec.name] = child
        self.children = fresh

    def _handle_requests(self) -> None:
        directory = self.paths.requests_dir
        if not directory.is_dir():
            return
        pending = sorted(p for p in directory.glob("*.json") if p.name not in self._reported_requests)
        for path in pending[:MAX_REQUESTS_PER_POLL]:
            try:
                action, names = read_request(path)
            except BadRequest as bad:
                self.requests_refused[bad.reason] += 1
                self.say(f"request {path.name[:80]!r} ignored: {bad}; {REQUEST_HOWTO}")
                action, names = "restart", []
            try:
                path.unlink(missing_ok=True)
            except OSError:   # a directory, or not ours to remove: leave it, report it once
                self._reported_requests.add(path.name)
            for name in list(self.children) if names is None else names:
                child = self.children.get(name)
                if child is None:
                    self.say(f"{action} request for unknown component {name!r} ignored; known: "
                             f"{', '.join(self.children)}")
                    continue
                self._act(action, child)

    def _act(self, action: str, child: Child) -> None:
        """Restart, stop or start one component on request (never counted as a crash)."""
        name = child.spec.name
        if action == "start" and child.state in ("running", "starting", "backoff"):
            self.say(f"{name}: start requested, it is already {child.state}")
            return
        self.say(f"{name}: {action} requested")
        self._stop_now(child)
        child.backoff = self.plan.restart.initial_backoff
        if action == "stop":
            self.say(f"{name}: stopped on request; it stays stopped until a start or restart request or `hux up`")
            return
        self._start(child)

    # ----- main loop ---------------------------------------------------------------------------
    def run(self) -> int:
        os.umask(CHILD_UMASK)   # inherited by every child: what they create is private
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self._log = RotatingLog(self.paths.supervisor_log, self.plan.log_max_bytes, self.plan.log_backups)
        if not self.acquire_lock():
            self.say(f"another supervisor already runs for {self.paths.home}; not starting a second one")
            return 3
        wake = self._install_signals()
        self.paths.pid_file.write_text(f"{os.getpid()}\n")
        self.say(f"supervisor started, pid {os.getpid()}, home {self.paths.home}")
        try:
            for spec in self.plan.components:
                child = self._new_child(spec)
                self.children[spec.name] = child
                self._start(child)
            self.write_state()
            last_request_poll = 0.0
            while not self._stop_requested:
                wake.wait(LOOP_INTERVAL)
                if self._stop_requested:
                    break
                if self._replan_requested:
                    self._replan_requested = False
                    self._replan()
                now = time.monotonic()
                if self._requests_pending or now - last_request_poll >= REQUEST_POLL_INTERVAL:
                    self._requests_pending = False
                    last_request_poll = now
                    self._handle_requests()
                for child in self.children.values():
                    self._reap(child)
                    self._refresh_identity(child)
                    if child.state == "backoff" and time.monotonic() >= child.next_start:
                        if child.pending_crash_restart:
                            child.restarts += 1
                        self._start(child)
                self.write_state()
            self.shutdown()
            return 0
        except Exception:  # noqa: BLE001 - last resort: log, stop children, fail loudly
            self.say("supervisor crashed:\n" + traceback.format_exc())
            self.shutdown()
            return 1
        finally:
            wake.close()
            self.paths.pid_file.unlink(missing_ok=True)
            if self._log is not None:
                self._log.close()

    def shutdown(self) -> None:
        self.say("shutting down")
        started = time.monotonic()
        # Newest first: the bot stops before the monitoring that watches it. All are asked at once
        # and each gets its own stop_timeout from now, so the total is the slowest, not the sum.
        ordered = list(reversed(list(self.children.values())))
        deadlines = {}
        for child in ordered:
            self._stop(child)
            deadlines[child.spec.name] = time.monotonic() + child.spec.stop_timeout
        self.write_state()
        for child in ordered:
            self._wait_stopped(child, deadlines[child.spec.name])
            elapsed = time.monotonic() - started
            child.log.note(f"stopped {child.spec.name} after {elapsed:.1f} s ({child.last_exit or 'not running'})")
            self.say(f"{child.spec.name}: stopped after {elapsed:.1f} s ({child.last_exit or 'not running'})")
            child.log.close()
        self.write_state(running=False)
        self.say(f"all components stopped in {time.monotonic() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hux.stack.supervisor", description=__doc__.split("\n")[0])
    parser.add_argument("--home", required=True, help="the stack's home (data/ and logs/ under it)")
    parser.add_argument("--foreground", action="store_true", help="also print events to stdout")
    args = parser.parse_args(argv)
    paths = StackPaths(Path(args.home).resolve())
    try:
        plan = StackPlan.load(paths.plan_file)
    except (OSError, ValueError) as exc:
        print(f"cannot read the stack plan {paths.plan_file}: {exc}; run `hux up` to create it", file=sys.stderr)
        return 2
    return Supervisor(paths, plan, echo=args.foreground).run()


if __name__ == "__main__":
    sys.exit(main())
