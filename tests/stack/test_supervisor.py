"""The supervisor's process management, with small real child processes (no monitoring binaries)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hux.stack.logs import RotatingLog
from hux.stack.native import NativeStack, StackError
from hux.stack.plan import ComponentSpec, RestartPolicy, StackPaths, StackPlan
from hux.stack.procs import ProcessIdentity
from tests.stack.conftest import wait_for

CRASHY = "import sys, time; print('starting up', flush=True); time.sleep(0.1); sys.exit(3)"
SLEEPER = "import time; print('sleeping', flush=True); time.sleep(600)"
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ignoring SIGTERM', flush=True); time.sleep(600)")
CHATTY = "import sys\nfor i in range(4000): print(f'line {i:05d} ' + 'x' * 40)\nimport time; time.sleep(600)"


def spec(paths: StackPaths, name: str, code: str, *, stop_timeout: float = 5.0, args: tuple[str, ...] = ()) -> ComponentSpec:
    return ComponentSpec(name=name, argv=(sys.executable, "-c", code, *args), log_file=str(paths.logs / f"{name}.log"),
                         ready_url="http://127.0.0.1:9/", url="http://127.0.0.1:9", port=9, stop_timeout=stop_timeout,
                         env={"PYTHONUNBUFFERED": "1"})   # children inherit only what their spec names


@pytest.fixture
def supervised(tmp_path: Path):
    """Start a supervisor over a given plan; stop it (and anything it left) afterwards."""
    paths = StackPaths(tmp_path)
    stack = NativeStack(paths)
    seen: list[ProcessIdentity] = []

    def start(*specs: ComponentSpec, policy: RestartPolicy | None = None, **plan_kwargs) -> NativeStack:
        stack.prepare_dirs()
        StackPlan(home=str(tmp_path), components=specs, restart=policy or RestartPolicy(), **plan_kwargs).save(paths.plan_file)
        seen.append(stack.start_detached())
        wait_for(lambda: all((stack.state() or {}).get("components", {}).get(s.name, {}).get("pid") for s in specs),
                 10, "every child to be started")
        return stack

    yield start
    for ident in [*seen, *stack.recorded_children().values()]:
        if ident.alive():
            ident.terminate(timeout=5)


def component(stack: NativeStack, name: str) -> dict:
    return (stack.state() or {}).get("components", {}).get(name, {})


def test_a_crashing_child_is_restarted_with_doubling_backoff(supervised, tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "crashy", CRASHY), policy=RestartPolicy(initial_backoff=0.2, max_backoff=0.8))
    wait_for(lambda: component(stack, "crashy").get("restarts", 0) >= 4, 20, "four restarts")
    log = (paths.logs / "crashy.log").read_text()
    assert "starting up" in log
    delays = [float(d) for d in re.findall(r"crashy exited with code 3; restart #\d+ in ([\d.]+) s", log)]
    assert delays[:4] == [0.2, 0.4, 0.8, 0.8]
    assert component(stack, "crashy")["last_exit"] == "exited with code 3"
    report = stack.stop(timeout=10)
    assert not report.left


def test_graceful_stop_escalates_to_sigkill(supervised, tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "stubborn", STUBBORN, stop_timeout=0.5), spec(paths, "sleeper", SLEEPER))
    children = stack.recorded_children()
    wait_for(lambda: "ignoring SIGTERM" in (paths.logs / "stubborn.log").read_text(), 10, "the handler installed")
    report = stack.stop(timeout=20)
    assert report.was_running and not report.left and not report.forced
    assert all(not ident.alive() for ident in children.values())
    assert "stubborn did not stop within 0.5 s; sending SIGKILL" in (paths.logs / "stubborn.log").read_text()
    assert "stopped sleeper" in (paths.logs / "sleeper.log").read_text()
    assert (stack.state() or {})["supervisor"]["running"] is False


def test_children_die_with_a_killed_supervisor(supervised, tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "sleeper", SLEEPER))
    child = stack.recorded_children()["sleeper"]
    supervisor = stack.supervisor()
    assert supervisor is not None and supervisor.signal(signal.SIGKILL)
    wait_for(lambda: not child.alive(), 10, "the child to follow its supervisor (PR_SET_PDEATHSIG)")
    wait_for(lambda: not stack.running(), 5, "the supervisor's exit to complete")


def test_down_stops_an_orphan_by_its_recorded_identity(supervised, tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "stubborn", STUBBORN, stop_timeout=0.5))
    wait_for(lambda: "ignoring SIGTERM" in (paths.logs / "stubborn.log").read_text(), 10, "the handler installed")
    orphan = stack.recorded_children()["stubborn"]
    supervisor = stack.supervisor()
    assert supervisor is not None and supervisor.signal(signal.SIGKILL)
    supervisor.wait_gone(5)
    time.sleep(0.3)
    assert orphan.alive(), "ignores the parent-death SIGTERM, so it outlives the supervisor"
    report = stack.stop(timeout=5)
    assert report.forced == [f"stubborn (pid {orphan.pid})"]
    assert not orphan.alive() and not report.left


def test_a_pid_that_was_reused_is_never_signalled(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER], stdout=subprocess.DEVNULL)
    try:
        real = wait_for(lambda: ProcessIdentity.of(proc.pid), 5, "the child's identity")
        assert real.alive()
        # What a reused pid looks like: the same number, a process started at another time.
        reused = ProcessIdentity(pid=proc.pid, start_ticks=real.start_ticks + 1, argv0=real.argv0)
        assert not reused.alive()
        assert not reused.signal(signal.SIGKILL)
        assert proc.poll() is None, "the process the records do not match must be left alone"
    finally:
        proc.kill()
        proc.wait()
    assert not real.alive()


def test_a_second_supervisor_for_the_same_home_is_refused(supervised, tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "sleeper", SLEEPER))
    first = stack.supervisor()
    with pytest.raises(StackError, match="another supervisor holds the lock .* already running"):
        stack.start_detached()
    assert stack.supervisor() == first
    stack.stop()


def test_a_wrapper_that_execs_keeps_its_identity(supervised, tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(f"#!/bin/sh\nsleep 0.3\nexec {sys.executable} -c \"{SLEEPER}\"\n")
    wrapper.chmod(0o755)
    stack = supervised(ComponentSpec(name="wrapped", argv=(str(wrapper),), log_file=str(paths.logs / "wrapped.log"),
                                     ready_url="http://127.0.0.1:9/", url="http://127.0.0.1:9", port=9))
    wait_for(lambda: "sleeping" in (paths.logs / "wrapped.log").read_text(), 10, "the exec'd program")
    wait_for(lambda: stack.recorded_children()["wrapped"].argv0 == sys.executable, 5, "the refreshed program path")
    ident = stack.recorded_children()["wrapped"]
    assert ident.alive()
    report = stack.stop()
    assert report.stopped == [f"wrapped (pid {ident.pid})"] and not ident.alive()


def test_restart_requests_and_plan_changes(supervised, tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "sleeper", SLEEPER), spec(paths, "other", SLEEPER))
    first = component(stack, "sleeper")["pid"]
    other = component(stack, "other")["pid"]

    stack.request_restart(["sleeper"])
    assert stack.wait_new_pids(["sleeper"], {"sleeper": first}, timeout=10)
    second = component(stack, "sleeper")["pid"]
    assert component(stack, "sleeper")["restarts"] == 0, "a requested restart is not a crash"

    # A changed command line restarts that component only (SIGHUP re-reads the plan).
    plan = StackPlan.load(paths.plan_file)
    StackPlan(home=plan.home, components=(spec(paths, "sleeper", SLEEPER, args=("--changed",)),
                                          plan.component("other"))).save(paths.plan_file)
    stack.replan()
    assert stack.wait_new_pids(["sleeper"], {"sleeper": second}, timeout=10)
    assert "--changed" in Path(f"/proc/{component(stack, 'sleeper')['pid']}/cmdline").read_text()
    assert component(stack, "other")["pid"] == other
    assert not stack.stop().left


def test_child_output_is_captured_with_rotation(supervised, tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "chatty", CHATTY), log_max_bytes=20_000, log_backups=2)
    log = paths.logs / "chatty.log"
    wait_for(lambda: "line 03999" in log.read_text(), 10, "the last line to be captured")
    assert log.with_name("chatty.log.1").is_file() and log.with_name("chatty.log.2").is_file()
    assert not log.with_name("chatty.log.3").exists()
    for path in (log, log.with_name("chatty.log.1"), log.with_name("chatty.log.2")):
        assert path.stat().st_size <= 20_000
    stack.stop()


def test_rotating_log_keeps_a_bounded_number_of_files(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "x.log", max_bytes=100, backups=2)
    for index in range(20):
        log.write(f"line {index:02d} ".ljust(29, ".").encode() + b"\n")
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["x.log", "x.log.1", "x.log.2"]
    assert (tmp_path / "x.log").read_text().splitlines()[-1].startswith("line 19")
    assert (tmp_path / "x.log.1").read_text().splitlines()[-1].startswith("line 17")
    assert all((tmp_path / f).stat().st_size <= 100 for f in files)
    assert os.stat(tmp_path / "x.log").st_size > 0
