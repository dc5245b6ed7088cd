"""Grafana backup and restore through its HTTP API.

Backup reads, with the same archive format as the Prometheus backup:

* folders with their hierarchy (``GET /api/folders?parentUid=``, breadth first,
  so parents always precede their children);
* every dashboard (``GET /api/search?type=dash-db`` page by page, then
  ``GET /api/dashboards/uid/<uid>``) with its folder placement;
* datasources (``GET /api/datasources`` and each one by uid): secrets
  (``secureJsonData``) can never be read back, so the manifest lists which
  datasources need them re-entered after a restore;
* alert rules and their groups' intervals, contact points (secure settings come
  back as ``[REDACTED]``: listed for re-entry too), notification policies,
  mute timings and notification templates (``/api/v1/provisioning/...``).

Restore writes them back in dependency order — folders (parents first),
datasources, dashboards, alert rules, templates, mute timings, contact points,
policies — keeping every uid, and sends ``X-Disable-Provenance: true`` on all
alerting writes so the restored objects stay editable in Grafana's UI.
Objects Grafana provisions from files (``meta.provisioned`` dashboards,
``readOnly`` datasources) are left to file provisioning (``hux up``).

Credentials come from the environment: ``HUX_GRAFANA_TOKEN`` (a service-account
token, sent as a Bearer token), else basic auth as ``HUX_GRAFANA_USER`` (default:
``grafana.admin_user``) with ``HUX_GRAFANA_PASSWORD`` or the password file. They
are never printed or logged.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import httpx

from hux.ops import archive as arc
from hux.ops import names
from hux.ops.errors import ApiError, ArchiveError, BackupError, OpsError, RestoreError
from hux.ops.jsonapi import JsonApi
from hux.ops.progress import Progress
from hux.ops.prometheus_backup import BackupResult, RestoreReport, recorded_backup

KIND = "grafana"
REDACTED = "[REDACTED]"
PAGE_SIZE = 500
MAX_PAGES = 10_000
MAX_FOLDER_DEPTH = 16
NO_PROVENANCE = {"X-Disable-Provenance": "true"}
FILES = {
    "folders": "grafana/folders.json",
    "datasources": "grafana/datasources.json",
    "alert_rules": "grafana/alerting/alert-rules.json",
    "rule_groups": "grafana/alerting/rule-groups.json",
    "contact_points": "grafana/alerting/contact-points.json",
    "policies": "grafana/alerting/policies.json",
    "mute_timings": "grafana/alerting/mute-timings.json",
    "templates": "grafana/alerting/templates.json",
}
DASHBOARDS_PREFIX = "grafana/dashboards"
_q = names.quote_segment  # every uid, name or title from outside goes into a URL path escaped, as one segment


# --- credentials and client ----------------------------------------------------------


@dataclass(frozen=True)
class GrafanaCredentials:
    """Either a token or a user and password. ``describe()`` says which, never the secret."""

    token: str | None = None
    user: str | None = None
    password: str | None = None
    source: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, user: str = "admin",
                 password_file: Path | None = None) -> "GrafanaCredentials":
        environ = os.environ if environ is None else environ
        if environ.get("HUX_GRAFANA_TOKEN"):
            return cls(token=environ["HUX_GRAFANA_TOKEN"], source="token from HUX_GRAFANA_TOKEN")
        user = environ.get("HUX_GRAFANA_USER") or user
        if environ.get("HUX_GRAFANA_PASSWORD"):
            return cls(user=user, password=environ["HUX_GRAFANA_PASSWORD"],
                       source=f"user {user}, password from HUX_GRAFANA_PASSWORD")
        if password_file is not None:
            try:
                password = Path(password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise OpsError(
                    f"cannot read the Grafana password file {password_file} ({exc.strerror}): set HUX_GRAFANA_TOKEN "
                    "or HUX_GRAFANA_PASSWORD, or pass --password-file"
                ) from None
            if password:
                return cls(user=user, password=password, source=f"user {user}, password from {password_file}")
        raise OpsError(
            "no Grafana credentials: set HUX_GRAFANA_TOKEN to a service-account token with the Admin role, or "
            "HUX_GRAFANA_PASSWORD (user: HUX_GRAFANA_USER, default admin), or pass --password-file"
        )

    def describe(self) -> str:
        return self.source or ("token" if self.token else f"user {self.user}")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def auth(self) -> httpx.BasicAuth | None:
        return None if self.token else httpx.BasicAuth(self.user or "", self.password or "")

    def __repr__(self) -> str:  # never show the secret in a traceback
        return f"GrafanaCredentials({self.describe()!r})"


class Grafana(JsonApi):
    def __init__(self, base_url: str, credentials: GrafanaCredentials, *, timeout: float = 30.0) -> None:
        super().__init__(base_url, name="Grafana", timeout=timeout, headers=credentials.headers(),
                         auth=credentials.auth(), hint="is Grafana running, and is --grafana-url right?")
        self.credentials = credentials

    def error_for(self, response: httpx.Response, where: str) -> ApiError:
        status = response.status_code
        try:
            message = str(response.json().get("message", "")) or response.reason_phrase
        except (ValueError, AttributeError):
            message = response.text.strip()[:200] or response.reason_phrase
        if status == 401:
            text = (f"Grafana at {self.base_url} refused the credentials (401 on {where}; used "
                    f"{self.credentials.describe()}): set HUX_GRAFANA_TOKEN to a valid service-account token, or "
                    "HUX_GRAFANA_USER/HUX_GRAFANA_PASSWORD (or --password-file)")
        elif status == 403:
            text = (f"the Grafana credentials ({self.credentials.describe()}) lack permission for {where} "
                    f"(403: {message}): use a token or user with the Admin role")
        elif status == 404:
            text = f"Grafana answered 404 to {where} ({message})"
        elif status >= 500:
            text = (f"Grafana failed on {where} ({status}: {message}): check logs/grafana.log and retry; "
                    "nothing half-done was kept")
        else:
            text = f"Grafana answered {status} to {where}: {message}"
        return ApiError(text, status=status, url=where)

    def get_or_none(self, path: str, *, params: Any = None) -> Any:
        """GET a single object; None when Grafana answers 404."""
        response = self.request("GET", path, params=params, ok=(200, 404))
        return None if response.status_code == 404 else self._decode(response, path)

    def get_collection(self, path: str, *, params: Any = None) -> Any:
        """GET a collection endpoint; 404 means a wrong URL or an old Grafana, which is an error."""
        try:
            return self.get_json(path, params=params)
        except ApiError as exc:
            if exc.status == 404:
                raise ApiError(
                    f"Grafana at {self.base_url} has no {path} (404): check --grafana-url (include the sub-path "
                    "if Grafana is served under one) and that Grafana is 9.1 or newer",
                    status=404, url=path,
                ) from None
            raise

    def write(self, method: str, path: str, body: Any, *, ok: tuple[int, ...] = (200, 201, 202, 204),
              provenance_off: bool = False) -> Any:
        response = self.request(method, path, json=body, ok=ok, headers=NO_PROVENANCE if provenance_off else None)
        return self._decode(response, path) if response.content else None


# --- backup ------------------------------------------------------------------------------


def fetch_folders(grafana: Grafana, page_size: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Every folder, parents before children, each with ``parentUid`` (None at the root)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    level: list[str | None] = [None]
    depth = 0
    while level and depth < MAX_FOLDER_DEPTH:
        following: list[str | None] = []
        for parent in level:
            for folder in _paged(grafana, "/api/folders", {"parentUid": parent} if parent else {}, page_size):
                uid = folder["uid"]
                if uid in seen:  # nested folders off: the API ignores parentUid and lists the root again
                    continue
                seen.add(uid)
                out.append({"uid": uid, "title": folder["title"], "parentUid": parent})
                following.append(uid)
        level = following
        depth += 1
    return out


def _paged(grafana: Grafana, path: str, params: dict[str, Any], page_size: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    seen_pages: set[str] = set()
    for page in range(1, MAX_PAGES + 1):
        batch = grafana.get_collection(path, params={**params, "limit": page_size, "page": page})
        if not isinstance(batch, list):
            raise ApiError(f"Grafana answered {path} with {type(batch).__name__}, expected a list", url=path)
        fingerprint = json.dumps([b.get("uid") for b in batch])
        if batch and fingerprint in seen_pages:  # a server ignoring `page` would repeat itself forever
            break
        seen_pages.add(fingerprint)
        items.extend(batch)
        if len(batch) < page_size:
            break
    return items


def search_dashboards(grafana: Grafana, page_size: int = PAGE_SIZE) -> list[dict[str, Any]]:
    hits = _paged(grafana, "/api/search", {"type": "dash-db"}, page_size)
    unique: dict[str, dict[str, Any]] = {}
    for hit in hits:
        unique.setdefault(hit["uid"], hit)
    return list(unique.values())


def _strip(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def backup_grafana(
    *,
    grafana_url: str,
    credentials: GrafanaCredentials,
    backup_dir: Path,
    textfile_dir: Path | None = None,
    keep: int | None = None,
    keep_days: int | None = None,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
    hmac_key: bytes | None = None,
) -> BackupResult:
    progress = progress or Progress(quiet=True)
    return recorded_backup(
        KIND,
        lambda: _backup_grafana(grafana_url, credentials, Path(backup_dir), page_size, progress, hmac_key),
        backup_dir=Path(backup_dir), textfile_dir=textfile_dir, keep=keep, keep_days=keep_days,
    )


def _backup_grafana(url: str, credentials: GrafanaCredentials, backup_dir: Path, page_size: int,
                    progress: Progress, hmac_key: bytes | None = None) -> BackupResult:
    warnings: list[str] = []
    with Grafana(url, credentials) as grafana:
        health = grafana.get_collection("/api/health")
        progress.step(f"reading Grafana {health.get('version', '?')} at {url} ({credentials.describe()})")
        folders = fetch_folders(grafana, page_size)
        hits = search_dashboards(grafana, page_size)
        progress.start("dashboards", len(hits), unit="dashboards")
        dashboards = []
        for hit in hits:
            progress.advance(1)
            try:  # the uid becomes a file name in the archive: one safe path component or nothing
                names.safe_component(hit.get("uid"), what="dashboard uid", source=f"Grafana at {url}")
            except names.UnsafeNameError as exc:
                warnings.append(f"dashboard {hit.get('title')!r} skipped: {exc}")
                continue
            body = grafana.get_or_none(f"/api/dashboards/uid/{_q(hit['uid'])}")
            if body is None:
                warnings.append(f"dashboard {hit['uid']} ({hit.get('title')}) disappeared while backing up: skipped")
                continue
            meta = body.get("meta", {})
            dashboards.append({"uid": hit["uid"], "title": body["dashboard"].get("title"),
                               "folderUid": meta.get("folderUid") or None, "provisioned": bool(meta.get("provisioned")),
                               "dashboard": body["dashboard"]})
        progress.finish()
        datasources, ds_secrets = [], []
        for item in grafana.get_collection("/api/datasources"):
            detail = grafana.get_or_none(f"/api/datasources/uid/{_q(item['uid'])}") or item
            secure = sorted(k for k, v in (detail.get("secureJsonFields") or {}).items() if v)
            datasources.append({**_strip(detail, "secureJsonFields"), "secureJsonFieldNames": secure})
            if secure:
                ds_secrets.append({"uid": item["uid"], "name": item["name"], "fields": secure})
        alerting = _fetch_alerting(grafana, warnings)

    cp_secrets = [
        {"uid": p.get("uid"), "name": p.get("name"), "fields": sorted(k for k, v in p.get("settings", {}).items()
                                                                       if v == REDACTED)}
        for p in alerting["contact_points"]
        if any(v == REDACTED for v in p.get("settings", {}).values())
    ]
    backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".hux-staging-", dir=backup_dir))
    try:
        documents = {"folders": folders, "datasources": datasources, **alerting}
        entries = []
        for key, arcname in FILES.items():
            path = staging / arcname
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(documents[key], indent=2, sort_keys=True), encoding="utf-8")
            entries.append(arc.Entry(arcname, path))
        for dash in dashboards:
            path = staging / DASHBOARDS_PREFIX / f"{dash['uid']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(dash, indent=2, sort_keys=True), encoding="utf-8")
            entries.append(arc.Entry(f"{DASHBOARDS_PREFIX}/{dash['uid']}.json", path))
        manifest = {
            "contents": {"grafana": "grafana"},
            "grafana": {
                "url": url,
                "version": health.get("version"),
                "counts": {"folders": len(folders), "dashboards": len(dashboards), "datasources": len(datasources),
                           **{k: len(v) if isinstance(v, list) else 1 for k, v in alerting.items()}},
                "provisioned_dashboards": [d["uid"] for d in dashboards if d["provisioned"]],
                "needs_secrets": {"datasources": ds_secrets, "contact_points": cp_secrets},
                "warnings": warnings,
            },
        }
        path, full = arc.write_archive(backup_dir, KIND, entries, manifest, progress=progress, hmac_key=hmac_key)
    except OSError as exc:
        raise BackupError(arc.disk_full_message(backup_dir) if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                          else f"Grafana backup failed: {exc.strerror or exc}; nothing was kept") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupResult(KIND, path, path.stat().st_size, 0.0, full, warnings)


def _fetch_alerting(grafana: Grafana, warnings: list[str]) -> dict[str, Any]:
    prov = "/api/v1/provisioning"
    try:
        rules = grafana.get_collection(f"{prov}/alert-rules")
    except ApiError as exc:
        if exc.status != 404:
            raise
        warnings.append("Grafana has no alerting provisioning API (older than 9.1?): alerting objects not saved")
        return {"alert_rules": [], "rule_groups": [], "contact_points": [], "policies": {}, "mute_timings": [],
                "templates": []}
    groups = []
    for folder_uid, group in sorted({(r["folderUID"], r["ruleGroup"]) for r in rules}):
        body = grafana.get_or_none(f"{prov}/folder/{_q(folder_uid)}/rule-groups/{_q(group)}")
        if body is not None:
            groups.append({"folderUid": folder_uid, "title": group, "interval": body.get("interval")})
    return {
        "alert_rules": rules,
        "rule_groups": groups,
        "contact_points": grafana.get_collection(f"{prov}/contact-points"),
        "policies": grafana.get_collection(f"{prov}/policies"),
        "mute_timings": grafana.get_collection(f"{prov}/mute-timings") or [],
        "templates": grafana.get_collection(f"{prov}/templates") or [],
    }


# --- restore -----------------------------------------------------------------------------


def _parents_first(folders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_uid = {f["uid"]: f for f in folders}
    ordered, placed = [], set()

    def place(folder: dict[str, Any], trail: tuple[str, ...] = ()) -> None:
        uid = folder["uid"]
        if uid in placed or uid in trail:
            return
        parent = folder.get("parentUid")
        if parent in by_uid:
            place(by_uid[parent], trail + (uid,))
        placed.add(uid)
        ordered.append(folder)

    for folder in folders:
        place(folder)
    return ordered


def restore_grafana(
    archive_path: Path,
    *,
    grafana_url: str,
    credentials: GrafanaCredentials,
    overwrite: bool = True,
    progress: Progress | None = None,
    hmac_key: bytes | None = None,
    allow_unauthenticated: bool = False,
) -> RestoreReport:
    """Import a Grafana archive; manifest, authenticator (with a key) and checksums are verified before
    anything is written to Grafana."""
    progress = progress or Progress(quiet=True)
    archive_path = Path(archive_path)
    manifest = arc.read_manifest(archive_path, hmac_key=hmac_key, allow_unauthenticated=allow_unauthenticated)
    arc.check_kind(archive_path, manifest, KIND)
    report = RestoreReport(archive_path, manifest)
    staging = Path(tempfile.mkdtemp(prefix="hux-grafana-restore-"))
    try:
        arc.check_free_space(staging, manifest["total_bytes"], what="the Grafana archive")
        manifest = arc.verify_archive(archive_path, expected_kind=KIND, dest=staging, progress=progress,
                                      hmac_key=hmac_key, allow_unauthenticated=allow_unauthenticated)
        report.manifest = manifest
        report.add("verify archive", "ok", f"{len(manifest['files'])} files, checksums match; {manifest.auth}")
        docs = {key: _load(staging / name) for key, name in FILES.items()}
        dashboards = [_load(p) for p in sorted((staging / DASHBOARDS_PREFIX).glob("*.json"))]
        _check_documents(archive_path, docs, dashboards)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with Grafana(grafana_url, credentials) as grafana:
        grafana.get_collection("/api/health")
        _restore_folders(grafana, docs["folders"], report)
        _restore_datasources(grafana, docs["datasources"], report, overwrite)
        _restore_dashboards(grafana, dashboards, report, overwrite, archive_path, progress)
        _restore_alerting(grafana, docs, report)
        _verify_restore(grafana, docs["folders"], dashboards, report)
    secrets = (manifest.get("grafana") or {}).get("needs_secrets") or {}
    for kind in ("datasources", "contact_points"):
        for item in secrets.get(kind) or []:
            report.add("re-enter secrets", "action",
                       f"{kind.replace('_', ' ')[:-1]} {item['name']} ({item['uid']}): {', '.join(item['fields'])}")
    return report


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArchiveError(f"the archive has no {path.name}: it is not a complete Grafana backup") from None
    except (ValueError, RecursionError):
        raise ArchiveError(f"the archive's {path.name} is not valid JSON: use another archive") from None


def _check_documents(archive_path: Path, docs: dict[str, Any], dashboards: list[Any]) -> None:
    """The shapes the restore relies on, before the first write to Grafana (a clear refusal, not a traceback)."""
    problems = []

    def objects(key: str, value: Any, required: tuple[str, ...]) -> None:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            problems.append(f"{key} is not a list of objects")
            return
        for item in value:
            missing = [k for k in required if not isinstance(item.get(k), str)]
            if missing:
                problems.append(f"{key}: an entry has no text {', '.join(missing)}")
                return

    objects("folders", docs["folders"], ("uid", "title"))
    objects("datasources", docs["datasources"], ("uid",))
    objects("alert_rules", docs["alert_rules"] or [], ("uid", "folderUID", "ruleGroup"))
    objects("rule_groups", docs["rule_groups"] or [], ("folderUid", "title"))
    objects("contact_points", docs["contact_points"] or [], ())
    objects("mute_timings", docs["mute_timings"] or [], ("name",))
    objects("templates", docs["templates"] or [], ("name",))
    objects("dashboards", dashboards, ("uid",))
    if not problems:
        if not all(isinstance(d.get("dashboard"), dict) for d in dashboards):
            problems.append("a dashboard file holds no dashboard object")
        if docs["policies"] is not None and not isinstance(docs["policies"], dict):
            problems.append("policies is not an object")
        if not all(isinstance(p.get("settings", {}), dict) for p in docs["contact_points"] or []):
            problems.append("contact_points: settings is not an object")
    if problems:
        raise ArchiveError(f"{archive_path} is not a usable Grafana backup ({'; '.join(problems[:3])}): nothing was "
                           "written to Grafana. Use another archive")


def _restore_folders(grafana: Grafana, folders: list[dict[str, Any]], report: RestoreReport) -> None:
    created = updated = same = 0
    for folder in _parents_first(folders):
        uid, parent = folder["uid"], folder.get("parentUid") or None
        current = grafana.get_or_none(f"/api/folders/{_q(uid)}")
        if current is None:
            body = {"uid": uid, "title": folder["title"]}
            if parent:
                body["parentUid"] = parent
            grafana.write("POST", "/api/folders", body, ok=(200,))
            created += 1
            continue
        changed = False
        if current.get("title") != folder["title"]:
            grafana.write("PUT", f"/api/folders/{_q(uid)}", {"title": folder["title"], "overwrite": True}, ok=(200,))
            changed = True
        if (current.get("parentUid") or None) != parent:
            grafana.write("POST", f"/api/folders/{_q(uid)}/move", {"parentUid": parent or ""}, ok=(200,))
            changed = True
        updated += changed
        same += not changed
    report.add("folders", "ok", f"{created} created, {updated} updated, {same} unchanged (parents first, uids kept)")


def _restore_datasources(grafana: Grafana, datasources: list[dict[str, Any]], report: RestoreReport,
                         overwrite: bool) -> None:
    created = kept = provisioned = 0
    failed = []
    for ds in datasources:
        if ds.get("readOnly"):
            provisioned += 1
            continue
        body = _strip(ds, "id", "orgId", "version", "readOnly", "secureJsonFieldNames", "typeLogoUrl")
        current = grafana.get_or_none(f"/api/datasources/uid/{_q(ds['uid'])}")
        try:
            if current is None:
                grafana.write("POST", "/api/datasources", body, ok=(200,))
                created += 1
            elif overwrite:
                grafana.write("PUT", f"/api/datasources/uid/{_q(ds['uid'])}", body, ok=(200,))
                kept += 1
            else:
                kept += 1
        except ApiError as exc:
            if exc.status in (401, 403) or (exc.status or 0) >= 500:
                raise
            failed.append(f"{ds.get('name')}: {exc}")
    status = "failed" if failed else "ok"
    detail = f"{created} created, {kept} already there, {provisioned} provisioned from files (left alone)"
    report.add("datasources", status, detail + ("; " + "; ".join(failed) if failed else ""))


def _restore_dashboards(grafana: Grafana, dashboards: list[dict[str, Any]], report: RestoreReport, overwrite: bool,
                        archive_path: Path, progress: Progress) -> None:
    saved = skipped = provisioned = 0
    progress.start("importing dashboards", len(dashboards), unit="dashboards")
    for item in dashboards:
        progress.advance(1)
        if item.get("provisioned"):
            provisioned += 1
            continue
        dash = dict(item["dashboard"], id=None, uid=item["uid"])
        body = {"dashboard": dash, "overwrite": overwrite, "message": f"restored from {archive_path.name}"}
        if item.get("folderUid"):
            body["folderUid"] = item["folderUid"]
        response = grafana.request("POST", "/api/dashboards/db", json=body, ok=(200, 412))
        if response.status_code == 412:
            skipped += 1
        else:
            saved += 1
    progress.finish()
    report.add("import dashboards", "ok",
               f"{saved} imported (uids and folders kept), {skipped} left as they are, "
               f"{provisioned} provisioned from files (restored by `hux up`)")


def _restore_alerting(grafana: Grafana, docs: dict[str, Any], report: RestoreReport) -> None:
    prov = "/api/v1/provisioning"
    rules = docs["alert_rules"] or []
    for rule in rules:
        body = _strip(rule, "id", "provenance", "updated", "orgID")
        if grafana.get_or_none(f"{prov}/alert-rules/{_q(rule['uid'])}") is None:
            grafana.write("POST", f"{prov}/alert-rules", body, provenance_off=True)
        else:
            grafana.write("PUT", f"{prov}/alert-rules/{_q(rule['uid'])}", body, provenance_off=True)
    for group in docs["rule_groups"] or []:
        if not group.get("interval"):
            continue
        members = [_strip(r, "id", "provenance", "updated", "orgID") for r in rules
                   if r["folderUID"] == group["folderUid"] and r["ruleGroup"] == group["title"]]
        grafana.write("PUT", f"{prov}/folder/{_q(group['folderUid'])}/rule-groups/{_q(group['title'])}",
                      {"title": group["title"], "folderUid": group["folderUid"], "interval": group["interval"],
                       "rules": members}, provenance_off=True)
    for template in docs["templates"] or []:
        grafana.write("PUT", f"{prov}/templates/{_q(template['name'])}", _strip(template, "provenance"),
                      provenance_off=True)
    existing_timings = {t["name"] for t in grafana.get_collection(f"{prov}/mute-timings") or []}
    for timing in docs["mute_timings"] or []:
        body = _strip(timing, "provenance")
        if timing["name"] in existing_timings:
            grafana.write("PUT", f"{prov}/mute-timings/{_q(timing['name'])}", body, provenance_off=True)
        else:
            grafana.write("POST", f"{prov}/mute-timings", body, provenance_off=True)
    existing_points = {p.get("uid") for p in grafana.get_collection(f"{prov}/contact-points")}
    for point in docs["contact_points"] or []:
        body = _strip(point, "provenance")
        if point.get("uid") in existing_points:  # Grafana keeps the stored secret for a [REDACTED] value
            grafana.write("PUT", f"{prov}/contact-points/{_q(point['uid'])}", body, provenance_off=True)
        else:
            body["settings"] = {k: v for k, v in point.get("settings", {}).items() if v != REDACTED}
            grafana.write("POST", f"{prov}/contact-points", body, provenance_off=True)
    policies = docs["policies"]
    if policies:
        grafana.write("PUT", f"{prov}/policies", _strip(policies, "provenance"), provenance_off=True)
    report.add("alerting", "ok",
               f"{len(rules)} alert rules, {len(docs['rule_groups'] or [])} groups, "
               f"{len(docs['contact_points'] or [])} contact points, notification policies, "
               f"{len(docs['mute_timings'] or [])} mute timings, {len(docs['templates'] or [])} templates "
               "(X-Disable-Provenance: editable in the UI)")


def _verify_restore(grafana: Grafana, folders: list[dict[str, Any]], dashboards: list[dict[str, Any]],
                    report: RestoreReport) -> None:
    problems = []
    for folder in folders:
        current = grafana.get_or_none(f"/api/folders/{_q(folder['uid'])}")
        if current is None:
            problems.append(f"folder {folder['uid']} missing")
        elif (current.get("parentUid") or None) != (folder.get("parentUid") or None):
            problems.append(f"folder {folder['uid']} under {current.get('parentUid')}, expected {folder.get('parentUid')}")
    for item in dashboards:
        if item.get("provisioned"):
            continue  # placed by file provisioning, not by the restore
        current = grafana.get_or_none(f"/api/dashboards/uid/{_q(item['uid'])}")
        if current is None:
            problems.append(f"dashboard {item['uid']} missing")
        elif (current.get("meta", {}).get("folderUid") or None) != (item.get("folderUid") or None):
            problems.append(f"dashboard {item['uid']} in folder {current['meta'].get('folderUid')!r}, "
                            f"expected {item.get('folderUid')!r}")
    if problems:
        report.add("verify", "failed", "; ".join(problems[:5]))
        raise RestoreError("Grafana does not hold what was restored: " + "; ".join(problems[:5]))
    restored = sum(1 for d in dashboards if not d.get("provisioned"))
    report.add("verify", "ok", f"{len(folders)} folders and {restored} dashboards read back in place")
