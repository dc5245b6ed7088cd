"""Grafana backup and restore against the Grafana double (its documented HTTP API)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest

from hux.ops import archive as arc
from hux.ops.errors import ApiError, ArchiveError, OpsError
from hux.ops.grafana_backup import GrafanaCredentials, _parents_first, backup_grafana, restore_grafana
from hux.ops.textfile import FILE_NAME, read_values
from tests.doubles.grafana import GrafanaInThread, GrafanaState

TOKEN = "glsa_admin_token_for_tests"
ADMIN = GrafanaCredentials(token=TOKEN, source="test token")


def populated() -> GrafanaState:
    state = GrafanaState(admin_password="correct horse", tokens={TOKEN: "Admin", "viewer-token": "Viewer"})
    state.add_folder("ops", "Operations")
    state.add_folder("ops-bot", "Bot", "ops")
    state.add_folder("ops-bot-deep", "Deep", "ops-bot")
    state.add_folder("biz", "Business")
    folders = ["", "ops", "ops-bot", "ops-bot-deep", "biz"]
    for i in range(23):  # more than two pages at the page size used below
        state.add_dashboard(f"dash-{i:02d}", f"Dashboard {i:02d}", folders[i % len(folders)],
                            panels=[{"id": 1, "type": "timeseries", "targets": [{"expr": f"up{{n=\"{i}\"}}"}]}])
    state.add_dashboard("hux-overview", "System Overview", "ops", provisioned=True)
    state.add_datasource("hux-prometheus", "Prometheus", url="http://127.0.0.1:9090", read_only=True, is_default=True)
    state.add_datasource("pg", "Bot DB", "grafana-postgresql-datasource", url="127.0.0.1:5432",
                         secure={"password": "db-secret"})
    return state


def seed_alerting(url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    prov = f"{url}/api/v1/provisioning"
    responses = [
        httpx.post(f"{prov}/contact-points", headers=headers, json={
            "uid": "cp-slack", "name": "ops-slack", "type": "slack",
            "settings": {"url": "https://hooks.slack.example/T000/B000/XXXX", "recipient": "#ops"}}),
        httpx.post(f"{prov}/contact-points", headers=headers, json={
            "uid": "cp-mail", "name": "ops-mail", "type": "email", "settings": {"addresses": "ops@example.com"}}),
        httpx.put(f"{prov}/templates/hux", headers=headers, json={"template": '{{ define "hux" }}x{{ end }}'}),
        httpx.post(f"{prov}/mute-timings", headers=headers, json={"name": "nights", "time_intervals": [
            {"times": [{"start_time": "22:00", "end_time": "23:59"}]}]}),
        httpx.put(f"{prov}/policies", headers=headers, json={
            "receiver": "ops-mail", "group_by": ["alertname"],
            "routes": [{"receiver": "ops-slack", "object_matchers": [["severity", "=", "critical"]],
                        "mute_time_intervals": ["nights"]}]}),
    ]
    for uid, folder in (("rule-latency", "ops-bot"), ("rule-errors", "ops-bot-deep")):
        responses.append(httpx.post(f"{prov}/alert-rules", headers=headers, json={
            "uid": uid, "title": uid, "folderUID": folder, "ruleGroup": "bot", "condition": "A", "for": "5m",
            "data": [{"refId": "A", "datasourceUid": "hux-prometheus", "model": {"expr": "up == 0"}}],
            "labels": {"severity": "critical"}}))
        responses.append(httpx.put(f"{prov}/folder/{folder}/rule-groups/bot", headers=headers,
                                   json={"title": "bot", "folderUid": folder, "interval": 120, "rules": []}))
    assert all(r.status_code in (200, 201, 202) for r in responses), [r.text for r in responses]


@pytest.fixture
def source():
    with GrafanaInThread(populated()) as grafana:
        seed_alerting(grafana.url)
        yield grafana


def test_backup_restore_round_trip_keeps_uids_hierarchy_and_placement(tmp_path: Path, source) -> None:
    result = backup_grafana(grafana_url=source.url, credentials=ADMIN, backup_dir=tmp_path / "b", page_size=10,
                            textfile_dir=tmp_path / "textfile")
    manifest = result.manifest["grafana"]
    assert manifest["counts"]["dashboards"] == 24 and manifest["counts"]["folders"] == 4
    assert manifest["provisioned_dashboards"] == ["hux-overview"]
    assert manifest["needs_secrets"]["datasources"] == [{"uid": "pg", "name": "Bot DB", "fields": ["password"]}]
    assert manifest["needs_secrets"]["contact_points"] == [{"uid": "cp-slack", "name": "ops-slack", "fields": ["url"]}]
    search_pages = [k for k in source.state.writes if k["path"] == "/api/search"]
    assert search_pages == []  # reads only: the backup wrote nothing
    stats = httpx.get(f"{source.url}/_double/stats").json()["requests"]
    assert stats["search"]["200"] == 3  # 24 hits at 10 per page: pages 1, 2, 3
    metrics = read_values(tmp_path / "textfile" / FILE_NAME)["grafana"]
    assert metrics["hux_backup_last_success"] == 1 and metrics["hux_backup_last_size_bytes"] == result.size
    assert TOKEN not in result.path.read_bytes().decode("latin-1")

    target_state = GrafanaState(admin_password="pw")  # an empty Grafana: what a disaster leaves
    target_state.add_datasource("hux-prometheus", "Prometheus", url="http://127.0.0.1:9090", read_only=True)
    target_state.add_dashboard("hux-overview", "System Overview", provisioned=True)
    with GrafanaInThread(target_state) as target:
        report = restore_grafana(result.path, grafana_url=target.url,
                                 credentials=GrafanaCredentials(user="admin", password="pw"))
        assert report.ok, report.steps
        src, dst = source.state, target_state
        assert {u: f.get("parentUid") for u, f in dst.folders.items()} == \
               {u: f.get("parentUid") for u, f in src.folders.items()}
        restored = {u: d["folderUid"] for u, d in dst.dashboards.items() if not d["provisioned"]}
        assert restored == {u: d["folderUid"] for u, d in src.dashboards.items() if not d["provisioned"]}
        assert len(restored) == 23
        assert dst.dashboards["dash-07"]["dashboard"]["panels"] == src.dashboards["dash-07"]["dashboard"]["panels"]
        assert set(dst.alert_rules) == {"rule-latency", "rule-errors"}
        assert dst.group_intervals[("ops-bot", "bot")] == 120
        assert dst.policies["routes"][0]["receiver"] == "ops-slack"
        assert set(dst.contact_points) == {"cp-slack", "cp-mail"} and "nights" in dst.mute_timings
        assert "pg" in dst.datasources and dst.datasource_secrets["pg"] == {}
        # every alerting write carried X-Disable-Provenance, so everything restored stays editable
        alerting_writes = [w for w in dst.writes if w["path"].startswith("/api/v1/provisioning")]
        assert alerting_writes and all(w["disable_provenance"] for w in alerting_writes)
        provenances = [r["provenance"] for r in dst.alert_rules.values()] + \
                      [p["provenance"] for p in dst.contact_points.values()] + [dst.policies["provenance"]]
        assert set(provenances) == {""}
        # parents were created before their children
        created = [w for w in dst.writes if w["method"] == "POST" and w["path"] == "/api/folders"]
        assert len(created) == 4
    actions = [detail for step, status, detail in report.steps if status == "action"]
    assert any("Bot DB" in a and "password" in a for a in actions)
    assert any("ops-slack" in a and "url" in a for a in actions)


def test_restoring_twice_updates_in_place(tmp_path: Path, source) -> None:
    result = backup_grafana(grafana_url=source.url, credentials=ADMIN, backup_dir=tmp_path / "b")
    source.state.dashboards["dash-01"]["dashboard"]["title"] = "Changed since the backup"
    source.state.folders["ops-bot"]["parentUid"] = "biz"
    report = restore_grafana(result.path, grafana_url=source.url, credentials=ADMIN)
    assert report.ok
    assert source.state.dashboards["dash-01"]["dashboard"]["title"] == "Dashboard 01"
    assert source.state.folders["ops-bot"]["parentUid"] == "ops"
    assert source.state.contact_points["cp-slack"]["settings"]["url"].startswith("https://hooks")  # secret kept


def test_parents_first_orders_any_input() -> None:
    folders = [{"uid": f"f{i}", "title": str(i), "parentUid": f"f{i - 1}" if i else None} for i in range(6)]
    random.Random(7).shuffle(folders)
    ordered = [f["uid"] for f in _parents_first(folders)]
    assert ordered == [f"f{i}" for i in range(6)]


def test_flat_folders_when_nesting_is_off(tmp_path: Path) -> None:
    state = populated()
    state.nested_folders = False
    with GrafanaInThread(state) as grafana:
        result = backup_grafana(grafana_url=grafana.url, credentials=ADMIN, backup_dir=tmp_path / "b", page_size=2)
    folders = json.loads(_member(result.path, "grafana/folders.json"))
    assert sorted(f["uid"] for f in folders) == sorted(state.folders) and all(f["parentUid"] is None for f in folders)


def _member(path: Path, name: str) -> bytes:
    import tarfile

    with tarfile.open(path, "r:gz") as tar:
        return tar.extractfile(name).read()


@pytest.mark.parametrize("credentials, status, message", [
    (GrafanaCredentials(token="wrong-token"), 401, "refused the credentials.*HUX_GRAFANA_TOKEN"),
    (GrafanaCredentials(user="admin", password="wrong"), 401, "refused the credentials.*user admin"),
    (GrafanaCredentials(token="viewer-token"), 403, "lack permission.*Admin role"),
])
def test_auth_failures_give_clear_errors_and_no_archive(tmp_path: Path, source, credentials, status, message) -> None:
    with pytest.raises(ApiError, match=message) as caught:
        backup_grafana(grafana_url=source.url, credentials=credentials, backup_dir=tmp_path / "b",
                       textfile_dir=tmp_path / "t")
    assert caught.value.status == status
    for secret in ("wrong-token", "viewer-token", "wrong"):
        assert f"'{secret}'" not in str(caught.value) and f" {secret} " not in f" {caught.value} "
    assert not (tmp_path / "b").exists() or list((tmp_path / "b").iterdir()) == []
    assert read_values(tmp_path / "t" / FILE_NAME)["grafana"]["hux_backup_last_success"] == 0


def test_server_errors_and_wrong_url(tmp_path: Path, source) -> None:
    httpx.put(f"{source.url}/_double/path-faults", json={"GET /api/datasources": 500})
    with pytest.raises(ApiError, match=r"Grafana failed on GET .*/api/datasources \(500"):
        backup_grafana(grafana_url=source.url, credentials=ADMIN, backup_dir=tmp_path / "b")
    assert not list((tmp_path / "b").glob("*.tar.gz*"))
    httpx.delete(f"{source.url}/_double/path-faults")
    httpx.put(f"{source.url}/_double/faults", json={"error_rate": 1.0, "error_status": 503})
    with pytest.raises(ApiError, match="503"):
        backup_grafana(grafana_url=source.url, credentials=ADMIN, backup_dir=tmp_path / "b")
    httpx.delete(f"{source.url}/_double/faults")
    with pytest.raises(OpsError, match="--grafana-url"):
        backup_grafana(grafana_url=source.url + "/grafana", credentials=ADMIN, backup_dir=tmp_path / "b")


def test_dashboard_deleted_during_backup_is_skipped_with_a_warning(tmp_path: Path, source) -> None:
    httpx.put(f"{source.url}/_double/path-faults", json={"GET /api/dashboards/uid/dash-05": 404})
    result = backup_grafana(grafana_url=source.url, credentials=ADMIN, backup_dir=tmp_path / "b")
    assert result.manifest["grafana"]["counts"]["dashboards"] == 23
    assert any("dash-05" in w and "skipped" in w for w in result.warnings)


def test_restore_refuses_damaged_or_foreign_archives_before_writing(tmp_path: Path, source) -> None:
    result = backup_grafana(grafana_url=source.url, credentials=ADMIN, backup_dir=tmp_path / "b")
    truncated = tmp_path / "t.tar.gz"
    truncated.write_bytes(result.path.read_bytes()[:-200])
    prometheus_like = tmp_path / "p.tar.gz"
    data = tmp_path / "x.json"
    data.write_text("{}")
    prometheus_like_path, _ = arc.write_archive(tmp_path / "pb", "prometheus", [arc.Entry("configs/x.json", data)], {})
    prometheus_like = prometheus_like_path
    with GrafanaInThread(GrafanaState(tokens={TOKEN: "Admin"})) as target:
        with pytest.raises(ArchiveError, match="truncated or corrupt"):
            restore_grafana(truncated, grafana_url=target.url, credentials=ADMIN)
        with pytest.raises(ArchiveError, match="is a prometheus backup"):
            restore_grafana(prometheus_like, grafana_url=target.url, credentials=ADMIN)
        assert target.state.writes == [] and target.state.folders == {}


def test_credentials_from_environment_never_show_the_secret(tmp_path: Path) -> None:
    creds = GrafanaCredentials.from_env({"HUX_GRAFANA_TOKEN": "tok-123456"})
    assert creds.headers() == {"Authorization": "Bearer tok-123456"} and "tok-123456" not in repr(creds)
    password_file = tmp_path / "pw"
    password_file.write_text("from-file\n")
    creds = GrafanaCredentials.from_env({}, user="admin", password_file=password_file)
    assert creds.password == "from-file" and "from-file" not in creds.describe()
    creds = GrafanaCredentials.from_env({"HUX_GRAFANA_USER": "ops", "HUX_GRAFANA_PASSWORD": "pw"})
    assert (creds.user, creds.password) == ("ops", "pw")
    with pytest.raises(OpsError, match="HUX_GRAFANA_TOKEN"):
        GrafanaCredentials.from_env({})
