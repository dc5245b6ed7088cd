"""Installing Grafana from an APT repository: a signed repository on loopback, apt's state in a temp directory.

The repository is built here: a stand-in `grafana` package (dpkg-deb, its files a tiny script), indexes by
apt-ftparchive, an InRelease signed with a key generated in a private GNUPGHOME. apt-get runs with its
state, cache, sources and keyring under tmp_path (AptLayout.sandbox) and downloads the package instead of
installing it, so the machine's apt is neither read nor changed.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from hux.monitoring.settings import load_settings
from hux.stack.grafana_apt import AptLayout, AptSource, install_grafana, setup_step
from tests.conftest import free_port, require_binary

VERSION = "11.4.0"


@pytest.fixture
def make_settings(tmp_path: Path, hux_home: Path):
    """Defaults plus this TOML, never the operator's file or environment."""
    counter = iter(range(100))

    def make(toml: str = ""):
        path = tmp_path / f"settings-{next(counter)}.toml"
        path.write_text(toml, encoding="utf-8")
        return load_settings(path, environ={})

    return make


def _gpg(home: Path, *args: str, input: bytes | None = None) -> bytes:
    proc = subprocess.run(["gpg", "--batch", "--homedir", str(home), *args], input=input, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def _key(home: Path, uid: str) -> bytes:
    _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    return _gpg(home, "--armor", "--export", uid)


def _build_repo(root: Path, sign_home: Path | None, uid: str) -> None:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    pkg = root.parent / f"{root.name}-pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        f"Package: grafana\nVersion: {VERSION}\nArchitecture: all\nMaintainer: Hux tests <tests@hux.invalid>\n"
        "Description: stand-in for the Grafana package (tests only)\n")
    script = pkg / "usr" / "share" / "grafana" / "bin" / "grafana"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\necho 'grafana stand-in'\n")
    script.chmod(0o755)
    pool = root / "pool" / "main" / "g" / "grafana"
    pool.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(pool / f"grafana_{VERSION}_all.deb")],
                   check=True, capture_output=True, timeout=60)
    index = root / "dists" / "stable" / "main" / f"binary-{arch}"
    index.mkdir(parents=True)
    packages = subprocess.run(["apt-ftparchive", "packages", "pool"], cwd=root, check=True, capture_output=True,
                              timeout=60).stdout
    (index / "Packages").write_bytes(packages)
    release = subprocess.run(
        ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Suite=stable",
         "-o", "APT::FTPArchive::Release::Codename=stable", "-o", "APT::FTPArchive::Release::Components=main",
         "-o", f"APT::FTPArchive::Release::Architectures={arch}", "release", "dists/stable"],
        cwd=root, check=True, capture_output=True, timeout=60).stdout
    (root / "dists" / "stable" / "Release").write_bytes(release)
    if sign_home is not None:
        (root / "dists" / "stable" / "InRelease").write_bytes(
            _gpg(sign_home, "--local-user", uid, "--clearsign", input=release))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the base class's name
        pass


@pytest.fixture(scope="module")
def repo():
    for tool in ("apt-ftparchive", "gpg", "dpkg-deb", "apt-get"):
        require_binary(tool)
    # gpg-agent's socket path must stay short: a directory directly under /tmp
    base = Path(tempfile.mkdtemp(prefix="hux-apt-"))
    signer, other = base / "g1", base / "g2"
    for home in (signer, other):
        home.mkdir(mode=0o700)
    uid = "Hux Test Repository <repo@hux.invalid>"
    served = base / "www"
    served.mkdir()
    (served / "gpg.key").write_bytes(_key(signer, uid))
    (served / "wrong.key").write_bytes(_key(other, "Someone Else <else@hux.invalid>"))
    _build_repo(served / "signed", signer, uid)
    _build_repo(served / "unsigned", None, uid)
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        for home in (signer, other):
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def _source(base: str, path: str = "signed", key: str = "gpg.key", version: str = VERSION) -> AptSource:
    return AptSource(repository=f"{base}/{path}", key_url=f"{base}/{key}", version=version, timeout=10)


def test_installs_the_pinned_package_from_a_signed_repository(repo, tmp_path):
    layout = AptLayout.sandbox(tmp_path / "apt")
    outcome = install_grafana(_source(repo), layout)
    assert outcome.installed, outcome.message
    assert layout.download_dir is not None
    assert [p.name for p in layout.download_dir.iterdir()] == [f"grafana_{VERSION}_all.deb"]
    assert layout.source_list.read_text() == f"deb [signed-by={layout.keyring}] {repo}/signed stable main\n"
    assert layout.keyring.read_bytes()[:1] != b"-"   # dearmored (binary), as signed-by expects
    assert f"downloaded grafana={VERSION}" in outcome.message


def test_a_repository_signed_by_another_key_is_refused_and_cleaned_up(repo, tmp_path):
    layout = AptLayout.sandbox(tmp_path / "apt")
    outcome = install_grafana(_source(repo, key="wrong.key"), layout)
    assert not outcome.installed
    assert "apt-get update failed" in outcome.message and "NO_PUBKEY" in outcome.message, outcome.message
    assert "hux dashboards snapshot" in outcome.message
    assert not layout.keyring.exists() and not layout.source_list.exists()
    assert layout.download_dir is not None and not any(layout.download_dir.iterdir())


def test_an_unsigned_repository_is_refused(repo, tmp_path):
    layout = AptLayout.sandbox(tmp_path / "apt")
    outcome = install_grafana(_source(repo, path="unsigned"), layout)
    assert not outcome.installed
    assert "apt-get update failed" in outcome.message and "not signed" in outcome.message, outcome.message


def test_another_version_than_the_pinned_one_is_not_taken(repo, tmp_path):
    layout = AptLayout.sandbox(tmp_path / "apt")
    outcome = install_grafana(_source(repo, version="99.0.0"), layout)
    assert not outcome.installed
    assert "apt-get download failed" in outcome.message and "99.0.0" in outcome.message, outcome.message


def test_a_key_url_that_is_no_key_is_refused(repo, tmp_path):
    layout = AptLayout.sandbox(tmp_path / "apt")
    outcome = install_grafana(_source(repo, key="signed/dists/stable/Release"), layout)
    assert not outcome.installed and "not one OpenPGP public key" in outcome.message, outcome.message
    assert not layout.keyring.exists()


def test_apt_grafana_com_unreachable_here_is_a_quick_clear_refusal(make_settings, tmp_path):
    """The real repository, as this machine sees it: no route, so the setup says so within the timeout."""
    settings = make_settings('[grafana]\napt_timeout = "3s"\n')
    layout = AptLayout.sandbox(tmp_path / "apt")
    started = time.monotonic()
    args, message = setup_step(settings, ["--foreground"], layout=layout, find=lambda: None)
    elapsed = time.monotonic() - started
    assert args == ["--foreground"]
    if "cannot reach" not in message:
        pytest.skip(f"apt.grafana.com answered from here: {message}")   # a machine with internet access
    assert message.startswith("Grafana was not installed: this machine cannot reach apt.grafana.com: ")
    assert "hux dashboards snapshot" in message
    assert elapsed < 3 * 3 + 5, f"the refusal took {elapsed:.1f}s"
    assert not layout.keyring.exists() and not layout.source_list.exists()


def test_setup_step_skips_what_it_must_not_do(make_settings, tmp_path):
    never = []

    def missing():
        return None

    settings = make_settings('[grafana]\napt_repository = "http://127.0.0.1:9"\napt_key_url = "http://127.0.0.1:9/k"\n'
                             'apt_timeout = "2s"\n')
    # --no-grafana: nothing attempted, the flag does not reach `hux up`
    args, message = setup_step(settings, ["--no-grafana", "--foreground"], find=missing)
    assert args == ["--foreground"] and message == "Grafana: not installed (--no-grafana)."
    assert setup_step(make_settings("[grafana]\ninstall = false\n"), [], find=missing)[1].startswith(
        "Grafana is not installed (grafana.install = false).")
    assert setup_step(make_settings("[grafana]\nenabled = false\n"), [], find=missing) == ([], "")
    assert setup_step(make_settings('[stack]\nmode = "docker"\n'), ["--no-grafana"], find=missing) == ([], "")
    # already installed: nothing to do
    assert setup_step(settings, [], find=lambda: never.append(1) or object()) == ([], "")  # type: ignore[arg-type]
    # not root / not Debian: said plainly, nothing attempted
    outcome = install_grafana(_source("http://127.0.0.1:9"), AptLayout.sandbox(tmp_path / "a"), euid=1000)
    assert not outcome.installed and "this is not root" in outcome.message and "sudo" in outcome.message
    release = tmp_path / "os-release"
    release.write_text('ID=fedora\nID_LIKE="rhel centos"\n')
    outcome = install_grafana(_source("http://127.0.0.1:9"), AptLayout.sandbox(tmp_path / "b"), euid=0,
                              os_release=release)
    assert not outcome.installed and "not Debian/Ubuntu" in outcome.message
