"""Files the supervisor and the CLI read from disk may be corrupt or hostile: refused, logged, never a crash.

Restart requests (``data/supervisor/requests/*.json``), the plan it re-reads on
SIGHUP (``plan.json``) and the state the CLI reads (``state.json``) are all
written by processes of the same user; a bad one is logged with what was wrong
and what to do, and the stack keeps running. Real supervisor processes with
small Python children.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hux.stack.native import NativeStack
from hux.stack.plan import ComponentSpec, StackPaths, StackPlan, read_state
from hux.stack.procs import ProcessIdentity
from tests.stack.conftest import wait_for
from tests.stack.test_supervisor import SLEEPER, component, spec, supervised  # noqa: F401 - the fixture

BAD_REQUESTS = {
    "nested.json": json.dumps({"action": "restart", "components": [["x"]]}),
    "list.json": json.dumps(["restart"]),
    "string.json": json.dumps("restart"),
    "chars.json": json.dumps({"action": "restart", "components": "sleeper"}),
    "numbers.json": json.dumps({"action": "restart", "components": [1, 2]}),
    "extra.json": json.dumps({"action": "restart", "components": ["sleeper"], "argv": ["/bin/sh"]}),
    "action.json": json.dumps({"action": "exec", "components": ["sleeper"]}),
    "torn.json": '{"action": "restart", "comp',
    "binary.json": b"\xff\xfe\x00garbage",
    "huge.json": json.dumps({"action": "restart", "components": ["sleeper"] * 50_000}),
}


def drop(stack: NativeStack, name: str, content: str | bytes) -> Path:
    path = stack.paths.requests_dir / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def poke(stack: NativeStack) -> None:
    sup = stack.supervisor()
    assert sup is not None, "the supervisor is not running"
    sup.signal(signal.SIGUSR1)


def test_malformed_requests_are_logged_and_ignored_and_the_supervisor_keeps_running(supervised, tmp_path):  # noqa: F811
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "sleeper", SLEEPER))
    sup = stack.supervisor()
    first_pid = component(stack, "sleeper")["pid"]
    for name, content in BAD_REQUESTS.items():
        drop(stack, name, content)
    (paths.requests_dir / "dir.json").mkdir()
    poke(stack)
    wait_for(lambda: not any((paths.requests_dir / name).exists() for name in BAD_REQUESTS), 10,
             "every bad request to be taken off the queue")
    log = wait_for(lambda: (t := paths.supervisor_log.read_text()).count("ignored") >= len(BAD_REQUESTS) + 1 and t,
                   10, "each bad request to be logged")
    assert sup is not None and sup.alive(), "a bad request stopped the supervisor:\n" + log
    assert component(stack, "sleeper")["pid"] == first_pid, "a bad request restarted something"
    assert "components must be a list of component names" in log
    assert "hux restart" in log   # what to do instead
    assert "not valid JSON" in log and "larger than" in log and "not a regular file" in log
    # the log line is written while a request is handled, the state file at the end of that loop turn
    refused = wait_for(lambda: (r := (stack.state() or {})["supervisor"]["requests_refused"])
                       and sum(r.values()) >= len(BAD_REQUESTS) + 1 and r, 5, "the refusals in the state file")
    assert sum(refused.values()) == len(BAD_REQUESTS) + 1, refused
    assert set(refused) <= {"unreadable", "not_json", "too_large", "bad_request", "not_a_file"}
    # the directory is not ours to delete, and is reported once, not on every poll
    assert (paths.requests_dir / "dir.json").is_dir()
    poke(stack)
    # A good request still works afterwards.
    stack.request_restart(["sleeper"])
    wait_for(lambda: component(stack, "sleeper").get("pid") not in (None, first_pid)
             and component(stack, "sleeper").get("state") == "running", 15, "the requested restart",
             explain=lambda: f"state: {component(stack, 'sleeper')}\nsupervisor log:\n{paths.supervisor_log.read_text()}")
    assert paths.supervisor_log.read_text().count("dir.json") == 1
    assert sup.alive()


def test_a_corrupt_plan_on_sighup_keeps_the_running_plan(supervised, tmp_path):  # noqa: F811
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "sleeper", SLEEPER))
    sup = stack.supervisor()
    pid = component(stack, "sleeper")["pid"]
    good = json.loads(paths.plan_file.read_text())
    for index, broken in enumerate((
        {**good, "components": [{**good["components"][0], "argv": [1, 2]}]},     # Popen would raise TypeError
        {**good, "components": [{**good["components"][0], "env": {"A": 1}}]},
        {**good, "components": [{**good["components"][0], "name": ["x"]}]},
        {**good, "components": "sleeper"},
        {**good, "restart": {"initial_backoff": "soon"}},
        [good],
    )):
        paths.plan_file.write_text(json.dumps(broken))
        sup.signal(signal.SIGHUP)
        wait_for(lambda index=index: paths.supervisor_log.read_text().count("keeping the running plan") > index, 10,
                 f"bad plan #{index} to be refused")
    assert sup.alive()
    assert component(stack, "sleeper")["pid"] == pid and component(stack, "sleeper")["state"] == "running"


@pytest.mark.parametrize("content", ["[]", "{", '{"supervisor": [1], "components": {"x": 5}}',
                                     '{"components": [1, 2]}', '{"supervisor": {"identity": {"pid": "abc"}}}',
                                     '{"components": {"bot": {"identity": {"pid": -1, "start_ticks": "x"}}}}'])
def test_a_corrupt_state_file_reads_as_no_state_and_status_says_so(tmp_path, content):
    paths = StackPaths(tmp_path)
    paths.supervisor_dir.mkdir(parents=True)
    paths.state_file.write_text(content)
    stack = NativeStack(paths)
    assert not stack.running()
    assert stack.recorded_children() == {}
    state = read_state(paths.state_file)
    assert state is None or (isinstance(state["components"], dict) and isinstance(state["supervisor"], dict))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUX")}
    env.update(HUX_HOME=str(tmp_path), HUX_ENV_FILE=str(tmp_path / ".env"))
    (tmp_path / "hux.toml").write_text("")
    for command in (["status", "--json"], ["down"]):
        result = subprocess.run([sys.executable, "-m", "hux.cli", "--config", str(tmp_path / "hux.toml"), *command],
                                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("identity", [None, [], "x", {"pid": "abc"}, {"pid": -1, "start_ticks": 1}, {"pid": 0},
                                      {"pid": 1.5, "start_ticks": 1}, {"pid": 10**30, "start_ticks": 1},
                                      {"pid": True, "start_ticks": 1}])
def test_a_bad_recorded_identity_names_no_process(identity):
    assert ProcessIdentity.from_dict(identity) is None


def test_plan_round_trips_and_refuses_bad_fields(tmp_path):
    good = ComponentSpec(name="x", argv=(sys.executable, "-c", "pass"), log_file=str(tmp_path / "x.log"),
                         ready_url="http://127.0.0.1:9/", url="http://127.0.0.1:9", port=9, env={"A": "b"})
    plan = StackPlan(home=str(tmp_path), components=(good,))
    plan.save(tmp_path / "plan.json")
    assert StackPlan.load(tmp_path / "plan.json") == plan
    data = plan.to_dict()
    for bad in ({**data, "components": [{**data["components"][0], "argv": []}]},
                {**data, "components": [{**data["components"][0], "argv": ["a\0b"]}]},
                {**data, "components": [{**data["components"][0], "port": "9"}]},
                {**data, "components": [{**data["components"][0], "surprise": 1}]},
                {**data, "log_max_bytes": -1}):
        with pytest.raises(ValueError):
            StackPlan.from_dict(bad)


def test_stop_and_start_requests_act_on_one_component_and_a_stopped_one_stays_stopped(supervised, tmp_path):  # noqa: F811
    """A Prometheus restore stops and starts Prometheus alone: the other components keep their processes."""
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "sleeper", SLEEPER), spec(paths, "other", SLEEPER))
    first, other = component(stack, "sleeper")["pid"], component(stack, "other")["pid"]
    victim = ProcessIdentity.from_dict(component(stack, "sleeper")["identity"])
    stack.request("stop", ["sleeper"])
    assert stack.wait_component("sleeper", "stopped", 15), component(stack, "sleeper")
    assert victim is not None and not victim.alive()
    # loops and request polls later it is still stopped (no crash restart, no backoff): a restart of
    # another component takes the supervisor through its loop again
    stack.request("restart", ["other"])
    assert stack.wait_component("other", "running", 15, not_pid=other)
    assert component(stack, "sleeper")["state"] == "stopped" and component(stack, "sleeper")["pid"] is None
    assert component(stack, "sleeper")["restarts"] == 0
    stack.request("start", ["sleeper"])
    assert stack.wait_component("sleeper", "running", 15, not_pid=first)
    assert component(stack, "sleeper")["restarts"] == 0
    log = paths.supervisor_log.read_text()
    assert "sleeper: stop requested" in log and "sleeper: start requested" in log
    assert "stays stopped until a start or restart request" in log
    # a start of a running component changes nothing
    running = component(stack, "sleeper")["pid"]
    stack.request("start", ["sleeper"])
    wait_for(lambda: "start requested, it is already running" in paths.supervisor_log.read_text(), 10,
             "the second start to be answered")
    assert component(stack, "sleeper")["pid"] == running


@pytest.mark.parametrize("request_body", [{"action": "stop"}, {"action": "stop", "components": []},
                                          {"action": "start", "components": None}])
def test_stop_or_start_without_components_is_refused(supervised, tmp_path, request_body):  # noqa: F811
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "sleeper", SLEEPER))
    pid = component(stack, "sleeper")["pid"]
    drop(stack, "all.json", json.dumps(request_body))
    poke(stack)
    log = wait_for(lambda: "ignored" in (t := paths.supervisor_log.read_text()) and t, 10, "the request to be refused")
    assert "names its components" in log and "hux down" in log
    wait_for(lambda: (stack.state() or {})["supervisor"]["requests_refused"].get("bad_request") == 1, 10,
             "the refusal to be counted")
    assert component(stack, "sleeper")["pid"] == pid and component(stack, "sleeper")["state"] == "running"


def test_a_burst_of_signals_neither_freezes_nor_crashes_the_supervisor(supervised, tmp_path):  # noqa: F811
    """Signal handlers take no lock: a handler that ran inside the loop's own wait used to deadlock it.

    SIGUSR1 (requests), SIGHUP (replan) and SIGCHLD arrive at any moment; about a thousand of them
    in a second froze the supervisor with Event.set() in its handlers, or crashed it with nested ones.
    """
    paths = StackPaths(tmp_path)
    stack = supervised(spec(paths, "sleeper", SLEEPER))
    sup = stack.supervisor()
    assert sup is not None
    for round_ in range(3):
        first = component(stack, "sleeper")["pid"]
        sent, end = 0, time.monotonic() + 1.0
        while time.monotonic() < end and sent < 5000:
            os.kill(sup.pid, (signal.SIGUSR1, signal.SIGCHLD, signal.SIGHUP)[sent % 3])
            sent += 1
            time.sleep(0.0002)
        stack.request_restart(["sleeper"])
        wait_for(lambda first=first: component(stack, "sleeper").get("pid") not in (None, first)
                 and component(stack, "sleeper").get("state") == "running", 10,
                 f"a restart after {sent} signals (round {round_})",
                 explain=lambda: f"supervisor log:\n{paths.supervisor_log.read_text()[-3000:]}")
    assert sup.alive()
    log = paths.supervisor_log.read_text()
    assert "Traceback" not in log and "crashed" not in log, log[-3000:]
