"""Fixtures every test area shares: free loopback ports, a private HUX_HOME, real binaries."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

# Property-based tests of the parsers that face the outside: a bounded number of
# examples per test (CI time), no per-example deadline (the machine is shared).
# HUX_HYPOTHESIS_PROFILE=deep runs many more while hunting.
hypothesis_settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.register_profile(
    "deep", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile(os.environ.get("HUX_HYPOTHESIS_PROFILE", "ci"))


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (tests never use the stack's fixed ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_binary(name: str) -> str:
    """Path of a real binary the test needs. Missing means the setup is broken: fail, never skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `python3 scripts/run_tests.py`, which installs it", pytrace=False)
    return path


@pytest.fixture
def hux_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $HUX_HOME so a test never touches the operator's data/ and logs/."""
    monkeypatch.setenv("HUX_HOME", str(tmp_path))
    for key in list(os.environ):
        if key.startswith("HUX__"):
            monkeypatch.delenv(key)
    return tmp_path


@pytest.fixture
def port_factory():
    return free_port
