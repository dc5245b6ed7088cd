"""Restore fails early and small on a hostile archive; authenticated archives.

Every archive here is crafted by hand, the way someone who wants a restore to
fill a disk, delete a file or run their config would write it. Nothing is
mocked: real tar.gz files, real unpacking into real directories.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hux.ops import archive as arc
from hux.ops.errors import ArchiveError, OpsError
from hux.ops.prometheus_backup import _ConfigSwap, restore_prometheus

KEY = b"k" * 16 + os.urandom(16).hex().encode()


def _wchar() -> int:
    """Bytes this process has written through write(2) so far (Linux /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


def _file(name: str, data: bytes) -> dict:
    return {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _manifest(files: list[dict], **extra) -> dict:
    body = {"format": "hux-backup", "format_version": 1, "kind": "prometheus", "created_at": "2024-05-20T03:15:00Z",
            "total_bytes": sum(f["size"] for f in files if isinstance(f, dict) and isinstance(f.get("size"), int)),
            "files": files}
    body.update(extra)
    return body


def _member(name: str, data: bytes = b"", *, type_: bytes = tarfile.REGTYPE, mode: int = 0o644,
            size: int | None = None, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = type_, mode, linkname
    info.size = len(data) if size is None else size
    return info, data


def craft(path: Path, manifest: dict | bytes, members: list[tuple[tarfile.TarInfo, bytes]],
          *, auth: bytes | None = None) -> Path:
    """A tar.gz with ``manifest`` first (bytes as given, or JSON), an optional authenticator, then ``members``."""
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    head = [_member(arc.MANIFEST, body)] + ([_member(arc.AUTH_MEMBER, auth)] if auth is not None else [])
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in head + members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def craft_big_member(path: Path, name: str, declared: bytes, real_size: int) -> Path:
    """One member whose manifest entry says ``declared`` but whose tar entry holds ``real_size`` zero bytes."""
    body = json.dumps(_manifest([_file(name, declared)])).encode()
    with gzip.open(path, "wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        tar.addfile(_member(arc.MANIFEST, body)[0], io.BytesIO(body))
        info = tarfile.TarInfo(name)
        info.size = real_size

        class Zeros(io.RawIOBase):
            left = real_size

            def readable(self) -> bool:
                return True

            def readinto(self, buffer) -> int:
                n = min(len(buffer), self.left)
                buffer[:n] = bytes(n)
                self.left -= n
                return n

        tar.addfile(info, io.BufferedReader(Zeros(), 1 << 20))
    return path


def _dest(tmp_path: Path) -> Path:
    dest = tmp_path / "staging"
    dest.mkdir()
    return dest


# --- sizes: before and while reading ------------------------------------------------------


def test_member_far_larger_than_its_manifest_entry_writes_nothing_to_staging(tmp_path: Path) -> None:
    archive = craft_big_member(tmp_path / "big.tar.gz", "prometheus/snapshot/01A/chunks/000001", b"x",
                               40 * 1024 * 1024)
    dest = _dest(tmp_path)
    before = _wchar()
    with pytest.raises(ArchiveError, match="41943040 bytes in the archive, its manifest says 1") as refused:
        arc.verify_archive(archive, dest=dest)
    written = _wchar() - before
    assert refused.value.reason == "size_mismatch"
    assert written <= 1 + arc.CHUNK, f"{written} bytes written before the refusal"
    assert list(dest.iterdir()) == []


def test_total_bytes_that_disagrees_with_the_files_is_refused_before_staging(tmp_path: Path) -> None:
    data = b"block data"
    manifest = _manifest([_file("prometheus/snapshot/01A/index", data)])
    manifest["total_bytes"] = 0  # would skip the free-space check
    archive = craft(tmp_path / "zero.tar.gz", manifest, [_member("prometheus/snapshot/01A/index", data)])
    data_dir = tmp_path / "prom" / "data"
    with pytest.raises(ArchiveError, match="total_bytes says 0, its files add up to 10"):
        restore_prometheus(archive, data_dir=data_dir, prometheus_url="http://127.0.0.1:9")
    assert not data_dir.parent.exists() or not any(p.name.startswith(".") for p in data_dir.parent.iterdir())


def test_honest_total_larger_than_the_disk_is_refused_before_staging(tmp_path: Path) -> None:
    huge = {"path": "prometheus/snapshot/01A/chunks/000001", "size": 1 << 49, "sha256": "0" * 64}
    archive = craft(tmp_path / "huge.tar.gz", _manifest([huge]), [])
    data_dir = tmp_path / "prom" / "data"
    with pytest.raises(ArchiveError, match="not enough space") as refused:
        restore_prometheus(archive, data_dir=data_dir, prometheus_url="http://127.0.0.1:9")
    assert refused.value.reason == "no_space"
    assert [p.name for p in data_dir.parent.iterdir()] == []


def test_huge_manifest_is_refused_with_bounded_memory_and_listed_as_damaged(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    padding = b" " * (60 * 1024 * 1024)
    body = b'{"format": "hux-backup", "format_version": 1, "pad": "' + padding + b'"}'
    archive = craft(backups / "hux-prometheus-20240520T031500Z.tar.gz", body, [])
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match="more than the 8388608 this hux accepts") as refused:
            arc.read_manifest(archive)
        listed = arc.list_archives(backups)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.reason == "manifest_too_large"
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while reading a 60 MiB manifest"
    assert len(listed) == 1 and "8388608" in listed[0].problem and listed[0].manifest is None


def test_oversized_pax_header_is_refused_before_tarfile_reads_it(tmp_path: Path) -> None:
    archive = tmp_path / "pax.tar.gz"
    long_name = "prometheus/snapshot/" + "a" * (200 * 1024)
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        body = json.dumps(_manifest([])).encode()
        tar.addfile(_member(arc.MANIFEST, body)[0], io.BytesIO(body))
        tar.addfile(_member(long_name, b"x")[0], io.BytesIO(b"x"))
    with pytest.raises(ArchiveError, match="member header") as refused:
        arc.verify_archive(archive, dest=_dest(tmp_path))
    assert refused.value.reason == "unsafe_member"


# --- the manifest schema --------------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    ({"files": ["x"]}, r"files\.0: Input should be a valid dictionary"),
    ({"total_bytes": "lots"}, r"total_bytes: Input should be a valid integer"),
    ({"total_bytes": True}, r"total_bytes: Input should be a valid integer"),
    ({"files": [{"path": "a", "size": -1, "sha256": "0" * 64}]}, r"files\.0\.size"),
    ({"files": [{"path": "a", "size": 1, "sha256": "xyz"}]}, r"files\.0\.sha256"),
    ({"files": [{"path": "../etc/passwd", "size": 0, "sha256": "0" * 64}], "total_bytes": 0}, "unsafe file name"),
    ({"files": [{"path": "/etc/passwd", "size": 0, "sha256": "0" * 64}], "total_bytes": 0}, "unsafe file name"),
    ({"kind": "tarpit"}, r"kind: Input should be 'prometheus' or 'grafana'"),
    ({"verification": {"queries": [{"type": "instant", "expr": "up"}]}}, "an instant query needs a time"),
    ({"prometheus": {"time_range": "yesterday"}}, r"prometheus\.time_range"),
    ({"format_version": "1"}, "format version '1'"),
])
def test_invalid_manifest_is_a_clear_refusal_not_a_traceback(tmp_path: Path, change: dict, message: str) -> None:
    archive = craft(tmp_path / "bad.tar.gz", {**_manifest([]), **change}, [])
    for call in (lambda: arc.read_manifest(archive), lambda: arc.verify_archive(archive, dest=_dest(tmp_path))):
        with pytest.raises(ArchiveError, match=message) as refused:
            call()
        assert "Use another archive" in str(refused.value) or "restore it with" in str(refused.value)
        (tmp_path / "staging").rmdir() if (tmp_path / "staging").exists() else None


def test_file_and_folder_with_the_same_path_are_refused(tmp_path: Path) -> None:
    a, b = b"one", b"two"
    listed = [_file("configs/rules", a), _file("configs/rules/bot.yml", b)]
    archive = craft(tmp_path / "clash.tar.gz", _manifest(listed),
                    [_member("configs/rules", a), _member("configs/rules/bot.yml", b)])
    with pytest.raises(ArchiveError, match="'configs/rules' is listed both as a file and as a folder"):
        arc.verify_archive(archive, dest=_dest(tmp_path))
    # the same clash between a listed file and a folder member in the archive
    archive = craft(tmp_path / "clash2.tar.gz", _manifest([_file("configs/rules", a)]),
                    [_member("configs/rules", type_=tarfile.DIRTYPE), _member("configs/rules", a)])
    with pytest.raises(ArchiveError, match="both as a file and as a folder"):
        arc.verify_archive(archive, dest=tmp_path / "staging")


@pytest.mark.parametrize("member", [
    _member("configs/prometheus.yml", type_=tarfile.SYMTYPE, linkname="/etc/passwd"),
    _member("configs/prometheus.yml", type_=tarfile.LNKTYPE, linkname="configs/other"),
    _member("configs/prometheus.yml", type_=tarfile.CHRTYPE),
    _member("configs/prometheus.yml", type_=tarfile.FIFOTYPE),
])
def test_links_and_devices_are_refused(tmp_path: Path, member) -> None:
    listed = [{"path": "configs/prometheus.yml", "size": 0, "sha256": hashlib.sha256(b"").hexdigest()}]
    archive = craft(tmp_path / "link.tar.gz", _manifest(listed), [member])
    dest = _dest(tmp_path)
    with pytest.raises(ArchiveError, match="not a regular file"):
        arc.verify_archive(archive, dest=dest)
    assert list(dest.iterdir()) == []


def test_unlisted_folder_member_with_an_unsafe_name_is_refused(tmp_path: Path) -> None:
    archive = craft(tmp_path / "dir.tar.gz", _manifest([]), [_member("../../outside", type_=tarfile.DIRTYPE)])
    with pytest.raises(ArchiveError, match="folder '../../outside' its manifest does not list"):
        arc.verify_archive(archive, dest=_dest(tmp_path))
    assert not (tmp_path.parent / "outside").exists()


def test_unpacked_modes_are_safe_whatever_the_archive_claims(tmp_path: Path) -> None:
    data = b"global: {}\n"
    archive = craft(tmp_path / "modes.tar.gz", _manifest([_file("configs/sub/prometheus.yml", data)]),
                    [_member("configs/sub", type_=tarfile.DIRTYPE, mode=0o777),
                     _member("configs/sub/prometheus.yml", data, mode=0o6777)])
    dest = _dest(tmp_path)
    arc.verify_archive(archive, dest=dest)
    assert stat.S_IMODE((dest / "configs/sub/prometheus.yml").stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "configs/sub").stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE((dest / "configs").stat().st_mode) & 0o077 == 0


def test_restored_configs_never_touch_secrets_and_keep_their_modes(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    (staged / "secrets").mkdir(parents=True)
    (staged / "secrets" / "smtp_password").write_text("attacker")
    (staged / "prometheus.yml").write_text("new\n")
    (staged / "new.yml").write_text("added\n")
    run = tmp_path / "run"
    (run / "secrets").mkdir(parents=True)
    (run / "secrets" / "smtp_password").write_text("mine")
    (run / "prometheus.yml").write_text("old\n")
    os.chmod(run / "prometheus.yml", 0o644)
    swap = _ConfigSwap(staged, run)
    assert swap.apply() == 2
    assert (run / "secrets" / "smtp_password").read_text() == "mine"
    assert stat.S_IMODE((run / "prometheus.yml").stat().st_mode) == 0o640
    assert stat.S_IMODE((run / "new.yml").stat().st_mode) == 0o600
    swap.rollback()
    assert (run / "prometheus.yml").read_text() == "old\n" and not (run / "new.yml").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- authenticated archives ------------------------------------------------------------------


def _key_file(tmp_path: Path, key: bytes = KEY, mode: int = 0o600) -> Path:
    path = tmp_path / "backup.key"
    path.write_bytes(key + b"\n")
    os.chmod(path, mode)
    return path


def _real_archive(tmp_path: Path, key: bytes | None) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "index").write_bytes(os.urandom(5000))
    (src / "meta.json").write_text('{"ulid": "01A"}')
    path, _ = arc.write_archive(tmp_path / "backups", "prometheus", arc.entries_from_dir(src, "prometheus/snapshot"),
                                {}, hmac_key=key)
    return path


def _tamper(source: Path, target: Path) -> Path:
    """What an attacker with write access does: change a member and rewrite the manifest's checksum to match."""
    with tarfile.open(source, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    manifest = json.loads(members[0][1])
    evil = b"attacker's index"
    for item in manifest["files"]:
        if item["path"].endswith("/index"):
            item.update(_file(item["path"], evil))
    manifest["total_bytes"] = sum(f["size"] for f in manifest["files"])
    rest = [(_member(m.name, evil if m.name.endswith("/index") else data)) for m, data in members[1:]
            if m.name != arc.AUTH_MEMBER]
    auth = next((data for m, data in members if m.name == arc.AUTH_MEMBER), None)
    return craft(target, manifest, rest, auth=auth)


def test_checksums_alone_do_not_detect_tampering_but_the_hmac_does_before_unpacking(tmp_path: Path) -> None:
    signed = _real_archive(tmp_path, KEY)
    assert arc.verify_archive(signed, hmac_key=KEY).auth.startswith("authenticated (HMAC-SHA256")
    forged = _tamper(signed, tmp_path / "forged.tar.gz")
    assert arc.verify_archive(forged)["kind"] == "prometheus"  # plain checksums: consistent, so accepted
    dest = _dest(tmp_path)
    before = _wchar()
    with pytest.raises(ArchiveError, match="authenticator does not match the manifest") as refused:
        arc.verify_archive(forged, dest=dest, hmac_key=KEY)
    assert refused.value.reason == "bad_authenticator"
    assert list(dest.iterdir()) == [] and _wchar() - before < 4096


def test_key_configured_refuses_unauthenticated_archives_unless_allowed(tmp_path: Path) -> None:
    plain = _real_archive(tmp_path, None)
    with pytest.raises(ArchiveError, match="carries no authenticator.*--allow-unauthenticated") as refused:
        arc.verify_archive(plain, hmac_key=KEY)
    assert refused.value.reason == "unauthenticated"
    allowed = arc.verify_archive(plain, hmac_key=KEY, allow_unauthenticated=True)
    assert allowed.auth.startswith("NOT authenticated")
    stripped = _tamper(plain, tmp_path / "stripped.tar.gz")
    with pytest.raises(ArchiveError, match="carries no authenticator"):
        arc.read_manifest(stripped, hmac_key=KEY)


def test_wrong_key_is_named_by_key_id_and_refused(tmp_path: Path) -> None:
    signed = _real_archive(tmp_path, KEY)
    other = os.urandom(32).hex().encode()
    with pytest.raises(ArchiveError, match=f"another key \\(key id {arc.key_id(KEY)}, yours is {arc.key_id(other)}"):
        arc.verify_archive(signed, hmac_key=other, allow_unauthenticated=True)
    assert arc.key_id(KEY) not in KEY.decode()


def test_key_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    assert arc.load_hmac_key(_key_file(tmp_path)) == KEY
    with pytest.raises(OpsError, match="readable by others \\(mode 644\\).*chmod 600"):
        arc.load_hmac_key(_key_file(tmp_path, mode=0o644))
    with pytest.raises(OpsError, match="holds 8 bytes; a key needs 32.*token_hex"):
        arc.load_hmac_key(_key_file(tmp_path, b"short-k"  + b"!"))
    with pytest.raises(OpsError, match="cannot read the backup HMAC key file.*token_hex"):
        arc.load_hmac_key(tmp_path / "missing.key")
    link = tmp_path / "link.key"
    link.symlink_to(_key_file(tmp_path))
    with pytest.raises(OpsError, match="cannot read"):
        arc.load_hmac_key(link)


# --- fuzzing: a result or a clear refusal, bounded ---------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=True)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=40,
)
_fields = st.sampled_from(["format", "format_version", "kind", "created_at", "total_bytes", "files", "contents",
                           "prometheus", "grafana", "verification"])
_entry = st.fixed_dictionaries({"path": st.text(max_size=30) | _json, "size": st.integers(-5, 2**60) | _json,
                                "sha256": st.sampled_from(["0" * 64, "f" * 64, "xyz"]) | _json})


def _verify_bytes(tmp_path: Path, body: bytes, members: list | None = None) -> Path:
    """verify_archive on a crafted archive: a manifest or an ArchiveRefused, quickly; staging empty on refusal."""
    archive = craft(tmp_path / "fuzz.tar.gz", body, members or [])
    dest = Path(tempfile.mkdtemp(prefix="fuzz-staging-", dir=tmp_path))
    started = time.monotonic()
    result = None
    try:
        result = arc.verify_archive(archive, dest=dest)
        assert isinstance(result, dict) and result["format"] == "hux-backup"
    except ArchiveError as exc:
        assert str(exc) and len(str(exc)) < 2000 and exc.reason in arc.REFUSAL_REASONS
    assert time.monotonic() - started < 5
    assert result is not None or list(dest.iterdir()) == []
    return dest


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.dictionaries(_fields, _json | st.lists(_entry, max_size=4), max_size=10))
@example({"format": "hux-backup", "format_version": 1, "files": ["x"]})
@example({"format": "hux-backup", "format_version": 1, "kind": "prometheus", "created_at": "", "total_bytes": "lots",
          "files": []})
@example({"format": "hux-backup", "format_version": 2**64, "files": []})
@example({"format": "hux-backup", "format_version": 1, "kind": "grafana", "created_at": "x", "total_bytes": 0,
          "files": [], "grafana": {"needs_secrets": {"datasources": [{"fields": [1]}]}}})
def test_fuzz_any_manifest_object_gives_a_result_or_a_clear_refusal(tmp_path: Path, manifest: dict) -> None:
    manifest = {"format": "hux-backup", "format_version": 1, **manifest}
    try:
        body = json.dumps(manifest, allow_nan=True).encode()
    except ValueError:
        return
    _verify_bytes(tmp_path, body)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.binary(max_size=2000))
@example(b"[" * 100_000)
@example(b'{"format": "hux-backup", "format_version": 1, "files": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
@example("{\"format\": \"hux-backup\", \"format_version\": 1e999}".encode())
@example(b"\xff\xfe{}")
@example(b'{"format": "hux-backup", "format_version": 1' + b"9" * 5000 + b"}")
def test_fuzz_any_manifest_bytes_give_a_result_or_a_clear_refusal(tmp_path: Path, body: bytes) -> None:
    _verify_bytes(tmp_path, body)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a", "a/b", "b", "../c", "a/b/c", "/d", "a//b", "."]),
                          st.binary(max_size=20), st.integers(-3, 3),
                          st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE])),
                max_size=5),
       st.lists(st.sampled_from(["a", "a/b", "b", "a/b/c"]), max_size=4, unique=True))
def test_fuzz_members_against_a_manifest(tmp_path: Path, members: list, listed: list) -> None:
    contents = {name: name.encode() for name in listed}
    manifest = json.dumps(_manifest([_file(name, data) for name, data in contents.items()])).encode()
    crafted = []
    for name, data, skew, type_ in members:
        data = contents.get(name, data) if skew == 0 else data
        if type_ == tarfile.REGTYPE:
            crafted.append(_member(name, data))
        else:
            crafted.append(_member(name, type_=type_, linkname="/etc" if type_ == tarfile.SYMTYPE else ""))
    dest = _verify_bytes(tmp_path, manifest, crafted)
    for path in dest.rglob("*"):
        assert not path.is_symlink() and path.resolve().is_relative_to(dest.resolve())


def test_cli_uses_backup_hmac_key_file_for_backup_verify_and_restore(hux_home: Path, tmp_path: Path, capsys,
                                                                     monkeypatch) -> None:
    from hux.cli import main
    from tests.doubles.grafana import GrafanaInThread, GrafanaState

    token = "glsa_cli_hmac"
    monkeypatch.setenv("HUX_GRAFANA_TOKEN", token)
    state = GrafanaState(admin_password="pw", tokens={token: "Admin"})
    state.add_dashboard("d1", "One")
    key_file = _key_file(tmp_path)
    with GrafanaInThread(state) as grafana:
        monkeypatch.setenv("HUX__BACKUP__HMAC_KEY_FILE", str(key_file))
        assert main(["backup", "grafana", "--grafana-url", grafana.url, "--no-metrics", "-q"]) == 0
        archive = next((hux_home / "data" / "backups").glob("hux-grafana-*.tar.gz"))
        assert main(["backups", "verify", str(archive), "-q"]) == 0
        assert f"authenticated (HMAC-SHA256, key id {arc.key_id(KEY)})" in capsys.readouterr().out
        assert main(["restore", "grafana", str(archive), "--grafana-url", grafana.url, "-q"]) == 0
        capsys.readouterr()
        forged = _tamper_grafana(archive, tmp_path / "hux-grafana-20240101T000000Z.tar.gz")
        assert main(["restore", "grafana", str(forged), "--grafana-url", grafana.url, "-q"]) == 1
        assert "authenticator does not match" in capsys.readouterr().err
        os.chmod(key_file, 0o644)
        assert main(["backups", "verify", str(archive), "-q"]) == 1
        assert "chmod 600" in capsys.readouterr().err
        monkeypatch.setenv("HUX__BACKUP__HMAC_KEY_FILE", "")
        assert main(["backups", "verify", str(forged), "-q"]) == 0  # without a key: consistent checksums pass
        assert "checksums prove integrity, not origin" in capsys.readouterr().out


def _tamper_grafana(source: Path, target: Path) -> Path:
    with tarfile.open(source, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    manifest = json.loads(members[0][1])
    auth = next(data for m, data in members if m.name == arc.AUTH_MEMBER)
    evil = json.dumps([{"uid": "evil", "title": "Attacker", "parentUid": None}]).encode()
    for item in manifest["files"]:
        if item["path"] == "grafana/folders.json":
            item.update(_file(item["path"], evil))
    manifest["total_bytes"] = sum(f["size"] for f in manifest["files"])
    rest = [_member(m.name, evil if m.name == "grafana/folders.json" else data) for m, data in members[1:]
            if m.name != arc.AUTH_MEMBER]
    return craft(target, manifest, rest, auth=auth)


def test_refusals_are_counted_by_reason_for_node_exporter(hux_home: Path, tmp_path: Path, capsys) -> None:
    from hux.cli import main
    from hux.ops.textfile import REFUSALS_FILE

    bad = craft(tmp_path / "bad.tar.gz", {**_manifest([]), "files": ["x"]}, [])
    big = craft_big_member(tmp_path / "big.tar.gz", "configs/a", b"x", 4096)
    assert main(["backups", "verify", str(bad), "-q"]) == 1
    assert main(["backups", "verify", str(bad), "-q"]) == 1
    assert main(["restore", "prometheus", str(big), "--prometheus-url", "http://127.0.0.1:9", "-q"]) == 1
    text = (hux_home / "data/node_exporter/textfile" / REFUSALS_FILE).read_text()
    assert 'hux_backup_refusals_total{kind="verify",reason="manifest_invalid"}' not in text  # kinds are bounded
    assert 'hux_backup_refusals_total{kind="archive",reason="manifest_invalid"} 2' in text
    assert 'hux_backup_refusals_total{kind="prometheus",reason="size_mismatch"} 1' in text
    assert "# TYPE hux_backup_refusals_total counter" in text
