"""`hux up --foreground`: the supervisor in the calling process, for containers and systemd."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hux.stack.procs import ProcessIdentity
from tests.conftest import free_port, require_binary
from tests.stack.conftest import BINARIES, StackUnderTest, stack_env, wait_for

pytestmark = pytest.mark.integration


def test_foreground_serves_until_sigterm_then_stops_everything(tmp_path: Path) -> None:
    for binary in BINARIES:
        require_binary(binary)
    stack = StackUnderTest(home=tmp_path, ports={n: free_port() for n in
                                                 ("prometheus", "alertmanager", "node_exporter", "grafana", "bot", "doubles",
                                                  "inbox")},
                           env=stack_env(tmp_path))
    stack.write_config()
    proc = subprocess.Popen([sys.executable, "-m", "hux.cli", "--config", str(stack.config), "up", "--foreground"],
                            env=stack.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(line.startswith("supervisor     pid") for line in lines), 60, "the ready summary")
        identities = {name: ProcessIdentity.from_dict(comp["identity"])
                      for name, comp in stack.state()["components"].items()}
        assert set(identities) == {"prometheus", "alertmanager", "node_exporter", "inbox", "bot"}
        assert stack.state()["supervisor"]["pid"] == proc.pid, "the supervisor is the `hux up` process itself"
        assert any("prometheus     http" in line and "ready" in line for line in lines)
        # a second `up` finds it running and changes nothing
        again = stack.hux("up", "--foreground")
        assert again.returncode == 1 and "already runs" in again.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        reader.join(timeout=5)
        assert any("all components stopped" in line for line in lines)
        assert all(not ident.alive() for ident in identities.values())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for ident in stack.identities().values():
            if ident.alive():
                ident.terminate(timeout=5)
