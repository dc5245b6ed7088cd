"""Installing Grafana OSS from Grafana's APT repository: what ``scripts/setup_monitoring.py`` does natively.

When it runs as root on Debian/Ubuntu and no Grafana is found
(:func:`hux.monitoring.grafana_install.find_grafana`), setup adds Grafana's
official repository and installs the pinned package:

1. download the signing key (``grafana.apt_key_url``; at most ``MAX_KEY_BYTES``,
   within ``grafana.apt_timeout``), check with gpg that it is one OpenPGP public
   key, and store it dearmored as ``/etc/apt/keyrings/grafana.gpg``;
2. write ``/etc/apt/sources.list.d/grafana.list``:
   ``deb [signed-by=/etc/apt/keyrings/grafana.gpg] <apt_repository> stable main``
   (that key and no other may sign it);
3. ``apt-get update`` of that one list (the signature is checked here), then
   ``apt-get install grafana=<grafana.apt_version>`` with service starts held
   back (``policy-rc.d``: the stack runs Grafana itself, on loopback).

Each step has a bound in time. Whatever fails, it says why and what to do,
removes the key and list it wrote (and only those), and the setup goes on:
the stack runs without Grafana, and ``hux dashboards snapshot`` shows the
dashboards without it. ``--no-grafana`` or ``grafana.install = false`` skips
all of it.

:class:`AptLayout` holds where the key and list go and the options apt runs
with, so the tests run the same code against a repository on loopback with
apt's state in a temporary directory (``AptLayout.sandbox``), and download the
package instead of installing it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import httpx

from hux.monitoring.durations import duration_seconds
from hux.monitoring.grafana_install import GrafanaInstall, find_grafana
from hux.monitoring.settings import Settings

#: the signing key is a few KiB; anything past this is not a key
MAX_KEY_BYTES = 64 * 1024
#: apt-get install downloads ~100 MB: its own bound, beyond the per-step network timeout
INSTALL_TIMEOUT = 900.0
SUITE, COMPONENT, PACKAGE = "stable", "main", "grafana"
SNAPSHOT_HINT = ("The stack runs without it; `hux dashboards snapshot` writes the dashboards to one HTML file, "
                 "or install Grafana later (https://grafana.com/docs/grafana/latest/setup-grafana/installation/"
                 "debian/) and run `hux up` again.")


@dataclass(frozen=True)
class AptLayout:
    """Where the key and the source list go, and the options every apt-get call gets."""

    keyring: Path
    source_list: Path
    options: tuple[str, ...] = ()
    #: True: apt-get install (the system); False: apt-get download into ``download_dir`` (tests)
    install: bool = True
    download_dir: Path | None = None

    @classmethod
    def system(cls) -> "AptLayout":
        source_list = Path("/etc/apt/sources.list.d/grafana.list")
        # update reads only this list: the other sources are not ours to refresh (or to fail on)
        return cls(keyring=Path("/etc/apt/keyrings/grafana.gpg"), source_list=source_list,
                   options=("-o", f"Dir::Etc::sourcelist={source_list}", "-o", "Dir::Etc::sourceparts=-",
                            "-o", "APT::Get::List-Cleanup=0"))

    @classmethod
    def sandbox(cls, root: Path) -> "AptLayout":
        """apt's state, cache, key and list under ``root``: nothing of the machine's apt is read or changed."""
        root = Path(root)
        for sub in ("keyrings", "sources.list.d", "state/lists/partial", "cache/archives/partial", "etc/apt.conf.d",
                    "etc/preferences.d", "download"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "state" / "status").touch()
        source_list = root / "sources.list.d" / "grafana.list"
        options = {
            "Dir::Etc::sourcelist": source_list, "Dir::Etc::sourceparts": "-", "Dir::State": root / "state",
            "Dir::State::status": root / "state" / "status", "Dir::Cache": root / "cache",
            "Dir::Etc::parts": root / "etc" / "apt.conf.d", "Dir::Etc::preferencesparts": root / "etc" / "preferences.d",
            "APT::Sandbox::User": "root", "APT::Get::List-Cleanup": "0",
        }
        return cls(keyring=root / "keyrings" / "grafana.gpg", source_list=source_list,
                   options=tuple(arg for key, value in options.items() for arg in ("-o", f"{key}={value}")),
                   install=False, download_dir=root / "download")


@dataclass(frozen=True)
class AptSource:
    repository: str
    key_url: str
    version: str
    timeout: float

    @property
    def host(self) -> str:
        return urlsplit(self.repository).hostname or self.repository

    def deb_line(self, keyring: Path) -> str:
        return f"deb [signed-by={keyring}] {self.repository.rstrip('/')} {SUITE} {COMPONENT}\n"


@dataclass(frozen=True)
class Outcome:
    installed: bool
    #: what was done, or why not and what to do (one paragraph for the operator)
    message: str
    steps: list[str] = field(default_factory=list)


class InstallError(Exception):
    """A step failed; the message says why and what to do."""


def source_from_settings(settings: Settings) -> AptSource:
    """The repository, key URL, pinned version and timeout of ``settings.grafana``."""
    g = settings.grafana
    return AptSource(repository=g.apt_repository, key_url=g.apt_key_url, version=g.apt_version,
                     timeout=duration_seconds(g.apt_timeout))


def is_debian_like(os_release: Path = Path("/etc/os-release")) -> bool:
    """Debian, Ubuntu or a derivative (``ID``/``ID_LIKE`` in /etc/os-release)."""
    try:
        text = os_release.read_text(encoding="utf-8", errors="replace")[:16384]
    except OSError:
        return False
    ids: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids.update(value.strip().strip('"').lower().split())
    return bool(ids & {"debian", "ubuntu"})


def fetch_key(source: AptSource) -> bytes:
    """The repository's signing key as published (armored), bounded in size and time."""
    try:
        with httpx.Client(timeout=source.timeout, follow_redirects=True, trust_env=True) as client:
            with client.stream("GET", source.key_url) as reply:
                if reply.status_code != 200:
                    raise InstallError(f"{source.key_url} answered HTTP {reply.status_code}")
                body = b""
                for chunk in reply.iter_bytes():
                    body += chunk
                    if len(body) > MAX_KEY_BYTES:
                        raise InstallError(f"{source.key_url} sent more than {MAX_KEY_BYTES} bytes: not a signing key")
                return body
    except httpx.HTTPError as exc:
        raise InstallError(f"this machine cannot reach {source.host}: {type(exc).__name__}: {exc or 'no answer'} "
                           f"(fetching {source.key_url}, timeout {source.timeout:g}s)") from None


def dearmor_key(armored: bytes, timeout: float) -> bytes:
    """The key as a binary keyring for signed-by; InstallError unless gpg reads exactly one public key."""
    gpg = shutil.which("gpg")
    if gpg is None:
        raise InstallError("gpg is not installed, so the repository key cannot be checked: apt-get install gpg")
    with tempfile.TemporaryDirectory(prefix="hux-gpg-") as home:
        env = dict(os.environ, GNUPGHOME=home)
        shown = subprocess.run([gpg, "--batch", "--with-colons", "--show-keys"], input=armored, capture_output=True,
                               timeout=timeout, env=env)
        keys = [line for line in shown.stdout.decode(errors="replace").splitlines() if line.startswith("pub:")]
        if shown.returncode != 0 or len(keys) != 1:
            raise InstallError("the downloaded key is not one OpenPGP public key "
                               f"({len(keys)} found; gpg: {shown.stderr.decode(errors='replace').strip()[:300]})")
        out = subprocess.run([gpg, "--batch", "--dearmor"], input=armored, capture_output=True, timeout=timeout,
                             env=env)
        if out.returncode != 0 or not out.stdout:
            raise InstallError(f"gpg --dearmor failed: {out.stderr.decode(errors='replace').strip()[:300]}")
        return out.stdout


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def _apt(layout: AptLayout, args: list[str], timeout: float, run: Runner) -> None:
    argv = ["apt-get", "-q", *layout.options, *args]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        proc = run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise InstallError(f"apt-get {args[0]} did not finish within {timeout:g}s") from None
    # apt-get update exits 0 with a "W:"/"E:" line for a repository it could not use: those count too
    problems = [line for line in (proc.stdout + "\n" + proc.stderr).splitlines() if line.startswith(("E:", "W:", "Err"))]
    if proc.returncode != 0 or (args[0] == "update" and problems):
        raise InstallError(f"apt-get {args[0]} failed: " + " | ".join(problems[-4:] or [proc.stderr.strip()[-300:]]))


def _write(path: Path, data: bytes, created: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    tmp = path.with_name(f".{path.name}.hux-tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    os.replace(tmp, path)
    if not existed:
        created.append(path)


def add_repository(source: AptSource, layout: AptLayout, *, run: Runner = subprocess.run) -> list[str]:
    """Key, list and ``apt-get update`` of the repository; the steps done. InstallError (cleaned up) otherwise."""
    created: list[Path] = []
    steps: list[str] = []
    try:
        keyring = dearmor_key(fetch_key(source), source.timeout)
        _write(layout.keyring, keyring, created)
        steps.append(f"stored the repository key as {layout.keyring}")
        _write(layout.source_list, source.deb_line(layout.keyring).encode(), created)
        steps.append(f"added {layout.source_list}")
        timeouts = ["-o", f"Acquire::http::Timeout={int(source.timeout)}", "-o",
                    f"Acquire::https::Timeout={int(source.timeout)}", "-o", "Acquire::Retries=0"]
        # apt fetches the index files of one suite: a few requests, each within the timeout
        _apt(layout, [*["update"], *timeouts], 6 * source.timeout, run)
        steps.append(f"apt-get update of {source.repository} (signature checked against that key)")
        return steps
    except BaseException:
        for path in created:   # only what this call wrote
            path.unlink(missing_ok=True)
        raise


def fetch_package(source: AptSource, layout: AptLayout, *, run: Runner = subprocess.run) -> str:
    """Install (system) or download (sandbox) ``grafana=<version>``; the step done."""
    wanted = f"{PACKAGE}={source.version}"
    if layout.install:
        policy = Path("/usr/sbin/policy-rc.d")
        made_policy = not policy.exists()
        if made_policy:   # keep the package's scripts from starting grafana-server on its own
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        try:
            _apt(layout, ["install", "-y", "--no-install-recommends", wanted], INSTALL_TIMEOUT, run)
        finally:
            if made_policy:
                policy.unlink(missing_ok=True)
        return f"installed {wanted}"
    assert layout.download_dir is not None
    argv = ["apt-get", "-q", *layout.options, "download", wanted]
    proc = run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, cwd=layout.download_dir)
    if proc.returncode != 0:
        raise InstallError(f"apt-get download failed: {proc.stderr.strip()[-300:]}")
    return f"downloaded {wanted} into {layout.download_dir}"


def install_grafana(source: AptSource, layout: AptLayout | None = None, *, euid: int | None = None,
                    os_release: Path = Path("/etc/os-release"), run: Runner = subprocess.run) -> Outcome:
    """Add the repository and install the pinned Grafana; never raises, the Outcome says what happened."""
    layout = layout or AptLayout.system()
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return Outcome(False, "Grafana is not installed and this is not root, so it was not installed: run "
                              "`sudo python3 scripts/setup_monitoring.py` to install it from "
                              f"{source.repository}. " + SNAPSHOT_HINT)
    if not is_debian_like(os_release) or shutil.which("apt-get") is None:
        return Outcome(False, "Grafana is not installed and this is not Debian/Ubuntu (no apt-get), so it was not "
                              "installed: install Grafana OSS with your package manager "
                              "(https://grafana.com/grafana/download). " + SNAPSHOT_HINT)
    try:
        steps = add_repository(source, layout, run=run)
        steps.append(fetch_package(source, layout, run=run))
    except InstallError as exc:
        return Outcome(False, f"Grafana was not installed: {exc}. " + SNAPSHOT_HINT)
    except (OSError, subprocess.SubprocessError) as exc:
        return Outcome(False, f"Grafana was not installed: {type(exc).__name__}: {exc}. " + SNAPSHOT_HINT)
    return Outcome(True, f"Grafana {source.version} from {source.repository}: " + "; ".join(steps) + ".", steps)


NO_GRAFANA_FLAG = "--no-grafana"


def setup_step(settings: Settings, args: list[str], *, layout: AptLayout | None = None,
               find: Callable[[], GrafanaInstall | None] = find_grafana) -> tuple[list[str], str]:
    """scripts/setup_monitoring.py's Grafana step: (the arguments left for ``hux up``, what to tell the operator).

    Installs only natively, when Grafana may run (grafana.enabled not false), may be installed
    (grafana.install, no ``--no-grafana``) and is not installed yet; "" when there is nothing to say.
    """
    rest = [arg for arg in args if arg != NO_GRAFANA_FLAG]
    if settings.stack.mode == "docker":
        return rest, ""
    if NO_GRAFANA_FLAG in args:
        return rest, "Grafana: not installed (--no-grafana)." if find() is None else ""
    if settings.grafana.enabled is False or find() is not None:
        return rest, ""
    if not settings.grafana.install:
        return rest, "Grafana is not installed (grafana.install = false). " + SNAPSHOT_HINT
    return rest, install_grafana(source_from_settings(settings), layout).message
