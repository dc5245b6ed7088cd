"""First-run setup shared by the entry scripts. Standard library only.

It runs before the project's dependencies exist, so it can import nothing but
the standard library. It

* installs missing Debian packages (when root or password-less sudo and
  ``apt-get`` exist; it says what it installs, and stops services the package
  scripts might start so nothing binds a port behind our back);
* creates ``.venv`` and installs the project into it, again only when
  ``pyproject.toml`` changed since the last install;
* re-executes the calling script inside that virtualenv.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

# binary -> Debian package that provides it
STACK_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "prometheus-node-exporter": "prometheus-node-exporter",
}
#: stack.topology = "ha" also runs VictoriaMetrics single-node
HA_PACKAGES = {"victoria-metrics": "victoria-metrics"}
TEST_PACKAGES = {
    **STACK_PACKAGES,
    **HA_PACKAGES,   # the HA drills run it
    "pg_ctlcluster": "postgresql",
    "/usr/lib/postgresql/15/bin/postgres": "postgresql",
    "docker-compose": "docker-compose",
    "chromium": "chromium",  # the dashboards snapshot is checked in a real headless browser
    # the Grafana APT install is tested against a signed repository on loopback (tests/stack/test_grafana_apt.py)
    "apt-ftparchive": "apt-utils",
    "gpg": "gpg",
    "gpg-agent": "gpg-agent",
}


def wants_ha(environ: dict[str, str] | None = None) -> bool:
    """Whether the settings ask for the HA topology (HUX__STACK__TOPOLOGY, else hux.toml / $HUX_CONFIG's
    [stack] topology); read before the virtualenv exists, so with the standard library only."""
    environ = dict(os.environ) if environ is None else environ
    topology = environ.get("HUX__STACK__TOPOLOGY")
    if topology is None:
        path = Path(environ.get("HUX_CONFIG") or "hux.toml")
        try:
            stack = tomllib.loads(path.read_text(encoding="utf-8")).get("stack", {})
        except (OSError, ValueError):
            stack = {}   # `hux up` reports an unreadable settings file itself
        topology = stack.get("topology") if isinstance(stack, dict) else None
    return isinstance(topology, str) and topology.strip().strip('"') == "ha"


def say(msg: str) -> None:
    print(f"[setup] {msg}", flush=True)


def _have(binary: str) -> bool:
    return Path(binary).exists() if binary.startswith("/") else shutil.which(binary) is not None


def _privileged_prefix() -> list[str] | None:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def ensure_packages(wanted: dict[str, str]) -> None:
    missing = sorted({pkg for binary, pkg in wanted.items() if not _have(binary)})
    if not missing:
        return
    prefix = _privileged_prefix()
    if prefix is None or not shutil.which("apt-get"):
        say("missing programs from packages: " + ", ".join(missing))
        say("install them with your package manager (Debian/Ubuntu: apt-get install " + " ".join(missing) + "),")
        say("put the binaries on PATH, or run the docker path (docker compose up -d) instead.")
        raise SystemExit(1)
    say("installing Debian packages: " + " ".join(missing))
    # Keep the packages' init scripts from starting services on public ports.
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = False
    if os.geteuid() == 0 and not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        created_policy = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(prefix + ["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            prefix + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            check=True,
            env=env,
        )
    except subprocess.CalledProcessError as exc:
        say(f"apt-get failed ({exc}); install {' '.join(missing)} by hand and retry")
        raise SystemExit(1) from None
    finally:
        if created_policy:
            policy.unlink(missing_ok=True)


def _stamp(extras: str) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(extras.encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_venv(extras: str = "") -> Path:
    python = VENV / "bin" / "python"
    stamp_file = VENV / ".hux-installed"
    want = _stamp(extras)
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == want:
        return python
    if not python.exists():
        say(f"creating virtualenv {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    target = f".[{extras}]" if extras else "."
    say(f"installing Python dependencies into {VENV} ({target})")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", target],
        check=True,
        cwd=ROOT,
    )
    stamp_file.write_text(want)
    return python


def reexec_in_venv(python: Path, script: str, args: list[str]) -> None:
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    os.execv(str(python), [str(python), script, *args])
