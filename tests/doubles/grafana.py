"""A local double of Grafana's HTTP API: what backup, restore and health checks talk to in tests.

Test-only (it does not ship): demo mode never runs Grafana's double.

Grafana's server cannot be installed on every machine this project runs on,
so tests use this double. It follows the documented HTTP API (Grafana 10/11,
legacy ``/api`` routes) closely enough that code written against it works
against a real Grafana:

* ``GET /api/health`` (no auth): ``{"database": "ok", "version": ...}``
* ``GET /api/search?type=dash-db|dash-folder&query=&page=N&limit=M`` — hits sorted
  by title, ``page`` starts at 1, ``limit`` defaults to 1000 (max 5000);
  dashboard hits carry ``folderUid``/``folderTitle`` when inside a folder
* ``GET /api/folders?parentUid=&page=&limit=`` — immediate children (nested folders);
  ``GET|PUT|DELETE /api/folders/:uid`` (``parentUid`` and ``parents`` when nested),
  ``POST /api/folders`` (``uid``, ``title``, ``parentUid``; 409 on a taken uid,
  400 when the parent does not exist), ``POST /api/folders/:uid/move``
* ``GET|DELETE /api/dashboards/uid/:uid`` (``meta.folderUid``, ``meta.provisioned``),
  ``POST /api/dashboards/db`` (``dashboard``, ``folderUid``, ``overwrite``; 412
  ``name-exists`` without overwrite, 400 for provisioned dashboards or an
  unknown folder)
* ``GET|POST /api/datasources``, ``GET|PUT|DELETE /api/datasources/uid/:uid`` —
  ``secureJsonData`` is write-only: answers only list ``secureJsonFields``
* ``/api/v1/provisioning/alert-rules[/:uid]``, ``/folder/:f/rule-groups/:g``,
  ``/contact-points[/:uid]`` (secure settings answered as ``[REDACTED]``; a PUT
  keeping ``[REDACTED]`` keeps the stored secret), ``/policies``,
  ``/mute-timings[/:name]``, ``/templates[/:name]`` — every write records
  ``provenance: "api"`` unless the request carries ``X-Disable-Provenance``
  (then ``""``: editable in the UI)

Authentication: ``Authorization: Bearer <token>`` (service-account tokens with
a role) or basic auth as the admin user. Missing or wrong credentials are a
401, a role without the permission a 403 (Viewer: read dashboards and folders;
Editor: also write them; Admin: everything).

Faults: ``/_double/faults`` and ``/_double/stats`` like every double
(``hux.doubles.faults``), plus ``PUT /_double/path-faults``
``{"GET /api/dashboards/uid/abc": 404, "POST /api/folders": 500}`` for
deterministic failures of one route (method and path prefix; ``DELETE``
clears them). ``GET /_double/state`` dumps everything stored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import functools
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from aiohttp import web

from hux.doubles.faults import FaultInjector, add_control_routes

VERSION = "11.4.0"
REDACTED = "[REDACTED]"
#: settings Grafana stores encrypted for each integration type (answered as [REDACTED])
SECURE_SETTINGS = {
    "slack": ("url", "token"),
    "webhook": ("password", "authorization_credentials"),
    "telegram": ("bottoken",),
    "pagerduty": ("integrationKey",),
    "email": (),
}
ROLE_RANK = {"Viewer": 1, "Editor": 2, "Admin": 3}
MAX_SEARCH_LIMIT = 5000
DEFAULT_LIMIT = 1000


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "dashboard"


def _new_uid() -> str:
    return secrets.token_hex(7)


def _error(code: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"message": message, **extra}, status=code)


@dataclass
class GrafanaState:
    """Everything the double stores; tests seed it directly or through the API."""

    admin_user: str = "admin"
    admin_password: str = ""
    tokens: dict[str, str] = field(default_factory=dict)  # token -> role
    nested_folders: bool = True
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {dashboard, folderUid, provisioned}
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasource_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    alert_rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    group_intervals: dict[tuple[str, str], int] = field(default_factory=dict)
    contact_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, Any] = field(default_factory=lambda: {"receiver": "grafana-default-email",
                                                               "group_by": ["grafana_folder", "alertname"],
                                                               "provenance": ""})
    mute_timings: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    path_faults: dict[str, int] = field(default_factory=dict)
    writes: list[dict[str, Any]] = field(default_factory=list)  # (method, path, provenance header) log
    _next_id: int = 1

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- seeding helpers (tests) -------------------------------------------------
    def add_folder(self, uid: str, title: str, parent_uid: str | None = None) -> dict[str, Any]:
        folder = {"id": self.next_id(), "uid": uid, "title": title, "version": 1,
                  "created": _now(), "updated": _now()}
        if parent_uid:
            folder["parentUid"] = parent_uid
        self.folders[uid] = folder
        return folder

    def add_dashboard(self, uid: str, title: str, folder_uid: str = "", *, provisioned: bool = False,
                      panels: list[Any] | None = None) -> dict[str, Any]:
        dashboard = {"id": self.next_id(), "uid": uid, "title": title, "tags": [], "timezone": "browser",
                     "schemaVersion": 39, "version": 1, "panels": panels or []}
        self.dashboards[uid] = {"dashboard": dashboard, "folderUid": folder_uid, "provisioned": provisioned,
                                "created": _now(), "updated": _now()}
        return dashboard

    def add_datasource(self, uid: str, name: str, type_: str = "prometheus", url: str = "",
                       secure: dict[str, str] | None = None, read_only: bool = False,
                       is_default: bool = False) -> dict[str, Any]:
        ds = {"id": self.next_id(), "uid": uid, "orgId": 1, "name": name, "type": type_, "access": "proxy",
              "url": url, "user": "", "database": "", "basicAuth": False, "basicAuthUser": "",
              "withCredentials": False, "isDefault": is_default, "jsonData": {}, "version": 1,
              "readOnly": read_only}
        self.datasources[uid] = ds
        self.datasource_secrets[uid] = dict(secure or {})
        return ds


STATE_KEY = web.AppKey("grafana", GrafanaState)
FAULTS_KEY = web.AppKey("faults", FaultInjector)


def _public_folder(state: GrafanaState, folder: dict[str, Any], *, full: bool) -> dict[str, Any]:
    out = {"id": folder["id"], "uid": folder["uid"], "title": folder["title"]}
    if state.nested_folders and folder.get("parentUid"):
        out["parentUid"] = folder["parentUid"]
    if full:
        out.update({"url": f"/dashboards/f/{folder['uid']}/{_slug(folder['title'])}", "hasAcl": False,
                    "canSave": True, "canEdit": True, "canAdmin": True, "canDelete": True,
                    "createdBy": "admin", "created": folder["created"], "updatedBy": "admin",
                    "updated": folder["updated"], "version": folder["version"]})
        if state.nested_folders and folder.get("parentUid"):
            parents, seen, uid = [], set(), folder.get("parentUid")
            while uid and uid in state.folders and uid not in seen:
                seen.add(uid)
                parents.insert(0, _public_folder(state, state.folders[uid], full=False))
                uid = state.folders[uid].get("parentUid")
            out["parents"] = parents
    return out


def _paging(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", DEFAULT_LIMIT))
        page = int(request.query.get("page", 1))
    except ValueError:
        limit, page = DEFAULT_LIMIT, 1  # Grafana falls back to the defaults on junk
    limit = max(1, min(limit, MAX_SEARCH_LIMIT))
    return max(page, 1), limit


def build_app(state: GrafanaState | None = None, *, seed: int | None = None) -> web.Application:
    state = state or GrafanaState()
    faults = FaultInjector("grafana", lambda status, _retry: _error(status, "Internal Server Error"
                                                                    if status >= 500 else f"HTTP {status}"),
                           [(b"<html>Grafana is starting</html>", "text/html")], seed=seed)

    @web.middleware
    async def auth_and_path_faults(request: web.Request, handler):
        path = request.path
        if path.startswith("/_double/") or path == "/api/health":
            return await handler(request)
        for key, status in state.path_faults.items():
            method, _, prefix = key.partition(" ")
            if request.method == method and path.startswith(prefix):
                return _error(status, "Internal Server Error" if status >= 500 else f"injected {status}")
        role = _authenticate(state, request.headers.get("Authorization", ""))
        if role is None:
            return _error(401, "Unauthorized")
        needed = _required_role(request.method, path)
        if ROLE_RANK[role] < ROLE_RANK[needed]:
            return _error(403, "You'll need additional permissions to perform this action. "
                               f"Permissions needed: {needed} role", title="Access denied")
        if request.method in ("POST", "PUT", "DELETE"):
            state.writes.append({"method": request.method, "path": path,
                                 "disable_provenance": "X-Disable-Provenance" in request.headers})
        return await handler(request)

    app = web.Application(middlewares=[auth_and_path_faults])
    app[STATE_KEY] = state
    app[FAULTS_KEY] = faults
    routes = _Routes(state)
    add = lambda method, path, handler, name: app.router.add_route(method, path, faults.wrap(name, handler))  # noqa: E731
    app.router.add_get("/api/health", routes.health)
    add("GET", "/api/search", routes.search, "search")
    add("GET", "/api/folders", routes.list_folders, "folders")
    add("POST", "/api/folders", routes.create_folder, "folders")
    add("GET", "/api/folders/{uid}", routes.get_folder, "folder")
    add("PUT", "/api/folders/{uid}", routes.update_folder, "folder")
    add("DELETE", "/api/folders/{uid}", routes.delete_folder, "folder")
    add("POST", "/api/folders/{uid}/move", routes.move_folder, "folder")
    add("GET", "/api/dashboards/uid/{uid}", routes.get_dashboard, "dashboard")
    add("DELETE", "/api/dashboards/uid/{uid}", routes.delete_dashboard, "dashboard")
    add("POST", "/api/dashboards/db", routes.save_dashboard, "dashboard")
    add("GET", "/api/datasources", routes.list_datasources, "datasources")
    add("POST", "/api/datasources", routes.create_datasource, "datasources")
    add("GET", "/api/datasources/uid/{uid}", routes.get_datasource, "datasource")
    add("PUT", "/api/datasources/uid/{uid}", routes.update_datasource, "datasource")
    add("DELETE", "/api/datasources/uid/{uid}", routes.delete_datasource, "datasource")
    prov = "/api/v1/provisioning"
    add("GET", f"{prov}/alert-rules", routes.list_rules, "alert-rules")
    add("POST", f"{prov}/alert-rules", routes.create_rule, "alert-rules")
    add("GET", f"{prov}/alert-rules/{{uid}}", routes.get_rule, "alert-rule")
    add("PUT", f"{prov}/alert-rules/{{uid}}", routes.update_rule, "alert-rule")
    add("DELETE", f"{prov}/alert-rules/{{uid}}", routes.delete_rule, "alert-rule")
    add("GET", f"{prov}/folder/{{folder}}/rule-groups/{{group}}", routes.get_group, "rule-group")
    add("PUT", f"{prov}/folder/{{folder}}/rule-groups/{{group}}", routes.put_group, "rule-group")
    add("GET", f"{prov}/contact-points", routes.list_contact_points, "contact-points")
    add("POST", f"{prov}/contact-points", routes.create_contact_point, "contact-points")
    add("PUT", f"{prov}/contact-points/{{uid}}", routes.update_contact_point, "contact-point")
    add("DELETE", f"{prov}/contact-points/{{uid}}", routes.delete_contact_point, "contact-point")
    add("GET", f"{prov}/policies", routes.get_policies, "policies")
    add("PUT", f"{prov}/policies", routes.put_policies, "policies")
    add("GET", f"{prov}/mute-timings", routes.list_mute_timings, "mute-timings")
    add("POST", f"{prov}/mute-timings", routes.create_mute_timing, "mute-timings")
    add("PUT", f"{prov}/mute-timings/{{name}}", routes.put_mute_timing, "mute-timing")
    add("GET", f"{prov}/templates", routes.list_templates, "templates")
    add("PUT", f"{prov}/templates/{{name}}", routes.put_template, "template")
    add_control_routes(app, faults)

    async def get_path_faults(_: web.Request) -> web.Response:
        return web.json_response(state.path_faults)

    async def put_path_faults(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, 'body must be JSON: {"GET /api/search": 500}')
        if not isinstance(body, dict) or not all(
            isinstance(k, str) and " /" in k and isinstance(v, int) and 400 <= v <= 599 for k, v in body.items()
        ):
            return _error(400, 'expected {"METHOD /path/prefix": status 400..599, ...}')
        state.path_faults = dict(body)
        return web.json_response(state.path_faults)

    async def delete_path_faults(_: web.Request) -> web.Response:
        state.path_faults = {}
        return web.json_response({})

    async def dump_state(_: web.Request) -> web.Response:
        return web.json_response({
            "folders": list(state.folders.values()),
            "dashboards": {uid: {"folderUid": d["folderUid"], "title": d["dashboard"].get("title"),
                                 "version": d["dashboard"].get("version")} for uid, d in state.dashboards.items()},
            "datasources": list(state.datasources.values()),
            "alert_rules": list(state.alert_rules.values()),
            "contact_points": list(state.contact_points.values()),
            "policies": state.policies,
        })

    app.router.add_get("/_double/path-faults", get_path_faults)
    app.router.add_put("/_double/path-faults", put_path_faults)
    app.router.add_delete("/_double/path-faults", delete_path_faults)
    app.router.add_get("/_double/state", dump_state)
    return app


def _authenticate(state: GrafanaState, header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme == "Bearer" and value:
        return state.tokens.get(value)
    if scheme == "Basic" and value:
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if state.admin_password and user == state.admin_user and secrets.compare_digest(password, state.admin_password):
            return "Admin"
    return None


def _required_role(method: str, path: str) -> str:
    if path.startswith(("/api/search", "/api/folders", "/api/dashboards")):
        return "Viewer" if method == "GET" else "Editor"
    return "Admin"  # datasources and alerting provisioning


def _provenance(request: web.Request) -> str:
    return "" if "X-Disable-Provenance" in request.headers else "api"


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "bad request data")
    if not isinstance(body, dict):
        return _error(400, "bad request data")
    return body


def _route(table: str | None = None, *, key: str = "uid", missing: str = "not found", body: bool = False,
           check: str | None = None, **not_found: Any) -> Callable[..., Callable[["_Routes", web.Request], Awaitable[web.Response]]]:
    """What every CRUD handler does first, once: look the object up and parse the JSON body.

    ``table``: the state's dict the path's ``key`` names an entry of (404 ``missing`` when absent,
    passed after the request); ``body``: the request's JSON object (400 otherwise, passed last);
    ``check``: the name of the method that validates the body (its answer, when it has one, is returned).
    """
    def wrap(method: Callable[..., Awaitable[web.Response]]) -> Callable[["_Routes", web.Request], Awaitable[web.Response]]:
        @functools.wraps(method)
        async def handler(self: "_Routes", request: web.Request) -> web.Response:
            args: dict[str, Any] = {}
            if table is not None:
                item = getattr(self.s, table).get(request.match_info[key])
                if item is None:
                    return _error(404, missing, **not_found)
                args["item"] = item
            if body:
                parsed = await _json_body(request)
                if isinstance(parsed, web.Response):
                    return parsed
                problem = getattr(self, check)(parsed) if check else None
                if problem is not None:
                    return problem
                args["body"] = parsed
            return await method(self, request, *args.values())
        return handler
    return wrap


class _Routes:
    def __init__(self, state: GrafanaState) -> None:
        self.s = state

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({"commit": "double", "database": "ok", "version": VERSION})

    # --- search ---------------------------------------------------------------------
    async def search(self, request: web.Request) -> web.Response:
        page, limit = _paging(request)
        kind = request.query.get("type", "")
        query = request.query.get("query", "").lower()
        folder_uids = set(request.query.getall("folderUIDs", []))
        hits: list[dict[str, Any]] = []
        if kind in ("", "dash-folder"):
            for folder in self.s.folders.values():
                if query in folder["title"].lower():
                    hits.append({"id": folder["id"], "uid": folder["uid"], "orgId": 1, "title": folder["title"],
                                 "uri": f"db/{_slug(folder['title'])}",
                                 "url": f"/dashboards/f/{folder['uid']}/{_slug(folder['title'])}",
                                 "slug": "", "type": "dash-folder", "tags": [], "isStarred": False, "sortMeta": 0})
        if kind in ("", "dash-db"):
            for uid, item in self.s.dashboards.items():
                dash = item["dashboard"]
                if query not in dash.get("title", "").lower():
                    continue
                if folder_uids and item["folderUid"] not in folder_uids:
                    continue
                hit = {"id": dash.get("id"), "uid": uid, "orgId": 1, "title": dash.get("title", ""),
                       "uri": f"db/{_slug(dash.get('title', ''))}", "url": f"/d/{uid}/{_slug(dash.get('title', ''))}",
                       "slug": "", "type": "dash-db", "tags": dash.get("tags", []), "isStarred": False, "sortMeta": 0}
                folder = self.s.folders.get(item["folderUid"])
                if folder:
                    hit.update({"folderId": folder["id"], "folderUid": folder["uid"], "folderTitle": folder["title"],
                                "folderUrl": f"/dashboards/f/{folder['uid']}/{_slug(folder['title'])}"})
                hits.append(hit)
        hits.sort(key=lambda h: (h["title"].lower(), h["uid"]))
        return web.json_response(hits[(page - 1) * limit: page * limit])

    # --- folders --------------------------------------------------------------------
    async def list_folders(self, request: web.Request) -> web.Response:
        page, limit = _paging(request)
        parent = request.query.get("parentUid", "") if self.s.nested_folders else ""
        if parent and parent not in self.s.folders:
            return _error(404, "folder not found")
        children = [f for f in self.s.folders.values()
                    if not self.s.nested_folders or (f.get("parentUid") or "") == parent]
        children.sort(key=lambda f: (f["title"].lower(), f["uid"]))
        return web.json_response([_public_folder(self.s, f, full=False) for f in children[(page - 1) * limit: page * limit]])

    @_route("folders", missing="folder not found", status="not-found")
    async def get_folder(self, request: web.Request, folder: dict[str, Any]) -> web.Response:
        return web.json_response(_public_folder(self.s, folder, full=True))

    @_route(body=True)
    async def create_folder(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            return _error(400, "folder title cannot be empty")
        uid = body.get("uid") or _new_uid()
        if not isinstance(uid, str) or len(uid) > 40 or not re.fullmatch(r"[A-Za-z0-9_\-]+", uid):
            return _error(400, "uid contains illegal characters or is too long")
        if uid in self.s.folders:
            return _error(409, "a folder with the same uid already exists")
        parent = body.get("parentUid") if self.s.nested_folders else None
        if parent and parent not in self.s.folders:
            return _error(400, "parent folder not found")
        folder = self.s.add_folder(uid, title, parent or None)
        return web.json_response(_public_folder(self.s, folder, full=True))

    @_route("folders", missing="folder not found", body=True)
    async def update_folder(self, request: web.Request, folder: dict[str, Any], body: dict[str, Any]) -> web.Response:
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            return _error(412, "The folder has been changed by someone else", status="version-mismatch")
        if body.get("title"):
            folder["title"] = body["title"]
        folder["version"] += 1
        folder["updated"] = _now()
        return web.json_response(_public_folder(self.s, folder, full=True))

    @_route("folders", missing="folder not found", body=True)
    async def move_folder(self, request: web.Request, folder: dict[str, Any], body: dict[str, Any]) -> web.Response:
        parent = body.get("parentUid") or None
        if parent and parent not in self.s.folders:
            return _error(400, "parent folder not found")
        uid = parent
        while uid:
            if uid == folder["uid"]:
                return _error(400, "cannot move a folder under itself")
            uid = self.s.folders[uid].get("parentUid")
        if parent:
            folder["parentUid"] = parent
        else:
            folder.pop("parentUid", None)
        return web.json_response(_public_folder(self.s, folder, full=True))

    async def delete_folder(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        if uid not in self.s.folders:
            return _error(404, "folder not found")
        doomed = {uid}
        changed = True
        while changed:
            more = {u for u, f in self.s.folders.items() if f.get("parentUid") in doomed} - doomed
            changed = bool(more)
            doomed |= more
        for d in doomed:
            self.s.folders.pop(d, None)
        for dash_uid in [u for u, d in self.s.dashboards.items() if d["folderUid"] in doomed]:
            del self.s.dashboards[dash_uid]
        return web.json_response({"message": "Folder deleted", "id": 0})

    # --- dashboards -----------------------------------------------------------------
    @_route("dashboards", missing="Dashboard not found")
    async def get_dashboard(self, request: web.Request, item: dict[str, Any]) -> web.Response:
        dash = item["dashboard"]
        folder = self.s.folders.get(item["folderUid"])
        meta = {"type": "db", "canSave": True, "canEdit": True, "canAdmin": True, "canStar": True,
                "canDelete": True, "slug": _slug(dash.get("title", "")),
                "url": f"/d/{dash['uid']}/{_slug(dash.get('title', ''))}", "expires": "0001-01-01T00:00:00Z",
                "created": item["created"], "updated": item["updated"], "updatedBy": "admin",
                "createdBy": "admin", "version": dash.get("version", 1), "hasAcl": False, "isFolder": False,
                "folderId": folder["id"] if folder else 0, "folderUid": folder["uid"] if folder else "",
                "folderTitle": folder["title"] if folder else "General",
                "folderUrl": f"/dashboards/f/{folder['uid']}/" if folder else "",
                "provisioned": item["provisioned"],
                "provisionedExternalId": f"{dash['uid']}.json" if item["provisioned"] else ""}
        return web.json_response({"dashboard": dash, "meta": meta})

    async def delete_dashboard(self, request: web.Request) -> web.Response:
        item = self.s.dashboards.pop(request.match_info["uid"], None)
        if item is None:
            return _error(404, "Dashboard not found")
        title = item["dashboard"].get("title", "")
        return web.json_response({"title": title, "message": f"Dashboard {title} deleted", "id": item["dashboard"].get("id")})

    @_route(body=True)
    async def save_dashboard(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        dash = body.get("dashboard")
        if not isinstance(dash, dict) or not isinstance(dash.get("title"), str) or not dash["title"].strip():
            return _error(400, "Dashboard title cannot be empty")
        folder_uid = body.get("folderUid") or ""
        if folder_uid and folder_uid not in self.s.folders:
            return _error(400, "folder not found")
        uid = dash.get("uid") or _new_uid()
        existing = self.s.dashboards.get(uid)
        if existing is not None:
            if existing["provisioned"]:
                return _error(400, "Cannot save provisioned dashboard")
            if not body.get("overwrite") and dash.get("version") != existing["dashboard"].get("version"):
                return _error(412, "A dashboard with the same uid already exists", status="name-exists")
        dash = copy.deepcopy(dash)
        dash["uid"] = uid
        dash["id"] = existing["dashboard"]["id"] if existing else self.s.next_id()
        dash["version"] = (existing["dashboard"].get("version", 0) + 1) if existing else 1
        self.s.dashboards[uid] = {"dashboard": dash, "folderUid": folder_uid, "provisioned": False,
                                  "created": existing["created"] if existing else _now(), "updated": _now()}
        return web.json_response({"id": dash["id"], "uid": uid, "url": f"/d/{uid}/{_slug(dash['title'])}",
                                  "status": "success", "version": dash["version"], "slug": _slug(dash["title"])})

    # --- datasources ----------------------------------------------------------------
    def _ds_public(self, ds: dict[str, Any], *, with_secure: bool) -> dict[str, Any]:
        out = copy.deepcopy(ds)
        if with_secure:
            out["secureJsonFields"] = {k: True for k in self.s.datasource_secrets.get(ds["uid"], {})}
        return out

    async def list_datasources(self, _: web.Request) -> web.Response:
        items = sorted(self.s.datasources.values(), key=lambda d: d["name"].lower())
        return web.json_response([self._ds_public(d, with_secure=False) for d in items])

    @_route("datasources", missing="Data source not found")
    async def get_datasource(self, request: web.Request, ds: dict[str, Any]) -> web.Response:
        return web.json_response(self._ds_public(ds, with_secure=True))

    @_route(body=True)
    async def create_datasource(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        name, type_ = body.get("name"), body.get("type")
        if not name or not type_:
            return _error(400, "name and type are required")
        if any(d["name"] == name for d in self.s.datasources.values()):
            return _error(409, "data source with the same name already exists")
        uid = body.get("uid") or _new_uid()
        if uid in self.s.datasources:
            return _error(409, "data source with the same uid already exists")
        ds = self.s.add_datasource(uid, name, type_, body.get("url", ""), secure=body.get("secureJsonData") or {},
                                   is_default=bool(body.get("isDefault")))
        for key in ("access", "user", "database", "basicAuth", "basicAuthUser", "withCredentials", "jsonData"):
            if key in body:
                ds[key] = body[key]
        public = self._ds_public(ds, with_secure=True)
        return web.json_response({"datasource": public, "id": ds["id"], "message": "Datasource added", "name": name})

    @_route("datasources", missing="Data source not found")
    async def update_datasource(self, request: web.Request, ds: dict[str, Any]) -> web.Response:
        if ds.get("readOnly"):
            return _error(403, "Cannot update read-only data source")
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        for key in ("name", "type", "url", "access", "user", "database", "basicAuth", "basicAuthUser",
                    "withCredentials", "jsonData", "isDefault"):
            if key in body:
                ds[key] = body[key]
        if body.get("secureJsonData"):
            self.s.datasource_secrets.setdefault(ds["uid"], {}).update(body["secureJsonData"])
        ds["version"] += 1
        return web.json_response({"datasource": self._ds_public(ds, with_secure=True), "id": ds["id"],
                                  "message": "Datasource updated", "name": ds["name"]})

    @_route("datasources", missing="Data source not found")
    async def delete_datasource(self, request: web.Request, ds: dict[str, Any]) -> web.Response:
        if ds.get("readOnly"):
            return _error(403, "Cannot delete read-only data source")
        del self.s.datasources[ds["uid"]]
        self.s.datasource_secrets.pop(ds["uid"], None)
        return web.json_response({"message": "Data source deleted"})

    # --- alert rules ----------------------------------------------------------------
    async def list_rules(self, _: web.Request) -> web.Response:
        return web.json_response(list(self.s.alert_rules.values()))

    async def get_rule(self, request: web.Request) -> web.Response:
        rule = self.s.alert_rules.get(request.match_info["uid"])
        return web.json_response(rule) if rule else _error(404, "not found")

    def _check_rule(self, body: dict[str, Any]) -> web.Response | None:
        for key in ("title", "folderUID", "ruleGroup", "condition", "data"):
            if not body.get(key):
                return _error(400, f"invalid alert rule: {key} is required")
        if body["folderUID"] not in self.s.folders:
            return _error(400, f"invalid alert rule: folder {body['folderUID']} does not exist")
        return None

    def _store_rule(self, body: dict[str, Any], uid: str, provenance: str) -> dict[str, Any]:
        rule = {key: body.get(key) for key in ("title", "folderUID", "ruleGroup", "condition", "data")}
        rule.update({"uid": uid, "orgID": 1, "noDataState": body.get("noDataState", "NoData"),
                     "execErrState": body.get("execErrState", "Error"), "for": body.get("for", "0s"),
                     "annotations": body.get("annotations") or {}, "labels": body.get("labels") or {},
                     "isPaused": bool(body.get("isPaused", False)), "updated": _now(), "provenance": provenance})
        self.s.alert_rules[uid] = rule
        self.s.group_intervals.setdefault((rule["folderUID"], rule["ruleGroup"]), 60)
        return rule

    @_route(body=True, check="_check_rule")
    async def create_rule(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        uid = body.get("uid") or _new_uid()
        if uid in self.s.alert_rules:
            return _error(409, f"alert rule with uid {uid} already exists")
        return web.json_response(self._store_rule(body, uid, _provenance(request)), status=201)

    @_route("alert_rules", missing="not found", body=True, check="_check_rule")
    async def update_rule(self, request: web.Request, _existing: dict[str, Any], body: dict[str, Any]) -> web.Response:
        uid = request.match_info["uid"]
        return web.json_response(self._store_rule(body, uid, _provenance(request)))

    async def delete_rule(self, request: web.Request) -> web.Response:
        if self.s.alert_rules.pop(request.match_info["uid"], None) is None:
            return _error(404, "not found")
        return web.Response(status=204)

    async def get_group(self, request: web.Request) -> web.Response:
        folder, group = request.match_info["folder"], request.match_info["group"]
        rules = [r for r in self.s.alert_rules.values() if r["folderUID"] == folder and r["ruleGroup"] == group]
        if not rules:
            return _error(404, "rule group not found")
        return web.json_response({"title": group, "folderUid": folder,
                                  "interval": self.s.group_intervals.get((folder, group), 60), "rules": rules})

    async def put_group(self, request: web.Request) -> web.Response:
        folder, group = request.match_info["folder"], request.match_info["group"]
        if folder not in self.s.folders:
            return _error(400, "folder does not exist")
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        interval = body.get("interval")
        if not isinstance(interval, int) or interval <= 0 or interval % 10:
            return _error(400, "invalid rule group: interval must be a positive multiple of 10 seconds")
        provenance = _provenance(request)
        for rule in body.get("rules") or []:
            rule = dict(rule, folderUID=folder, ruleGroup=group)
            problem = self._check_rule(rule)
            if problem:
                return problem
            self._store_rule(rule, rule.get("uid") or _new_uid(), provenance)
        self.s.group_intervals[(folder, group)] = interval
        return await self.get_group(request)

    # --- contact points -------------------------------------------------------------
    def _redacted(self, point: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(point)
        for key in SECURE_SETTINGS.get(point["type"], ()):
            if out["settings"].get(key):
                out["settings"][key] = REDACTED
        return out

    async def list_contact_points(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        points = [self._redacted(p) for p in self.s.contact_points.values() if not name or p["name"] == name]
        return web.json_response(points)

    def _check_point(self, body: dict[str, Any]) -> web.Response | None:
        if not body.get("name") or not body.get("type") or not isinstance(body.get("settings"), dict):
            return _error(400, "invalid contact point: name, type and settings are required")
        if body["type"] not in SECURE_SETTINGS:
            return _error(400, f"invalid contact point: unknown type {body['type']!r}")
        return None

    @_route(body=True, check="_check_point")
    async def create_contact_point(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        uid = body.get("uid") or _new_uid()
        if uid in self.s.contact_points:
            return _error(400, f"contact point with uid {uid} already exists")
        if any(v == REDACTED for v in body["settings"].values()):
            return _error(400, "invalid contact point: a secure setting holds the redaction placeholder")
        point = {"uid": uid, "name": body["name"], "type": body["type"], "settings": dict(body["settings"]),
                 "disableResolveMessage": bool(body.get("disableResolveMessage")), "provenance": _provenance(request)}
        self.s.contact_points[uid] = point
        return web.json_response(self._redacted(point), status=202)

    @_route("contact_points", missing="contact point not found", body=True, check="_check_point")
    async def update_contact_point(self, request: web.Request, existing: dict[str, Any], body: dict[str, Any]) -> web.Response:
        settings = dict(body["settings"])
        for key, value in settings.items():
            if value == REDACTED:  # Grafana keeps the stored secret for the placeholder
                settings[key] = existing["settings"].get(key, "")
        existing.update({"name": body["name"], "type": body["type"], "settings": settings,
                         "disableResolveMessage": bool(body.get("disableResolveMessage")),
                         "provenance": _provenance(request)})
        return web.json_response({"message": "contactpoint updated"}, status=202)

    async def delete_contact_point(self, request: web.Request) -> web.Response:
        if self.s.contact_points.pop(request.match_info["uid"], None) is None:
            return _error(404, "contact point not found")
        return web.Response(status=204)

    # --- policies, mute timings, templates --------------------------------------------
    async def get_policies(self, _: web.Request) -> web.Response:
        return web.json_response(self.s.policies)

    @_route(body=True)
    async def put_policies(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        receivers = {p["name"] for p in self.s.contact_points.values()} | {"grafana-default-email"}
        missing = sorted(_route_receivers(body) - receivers)
        if not body.get("receiver"):
            return _error(400, "invalid object specification: root route must have a receiver")
        if missing:
            return _error(400, f"invalid object specification: receiver {missing[0]!r} does not exist")
        self.s.policies = dict(body, provenance=_provenance(request))
        return web.json_response({"message": "policies updated"}, status=202)

    async def list_mute_timings(self, _: web.Request) -> web.Response:
        return web.json_response(list(self.s.mute_timings.values()))

    @_route(body=True)
    async def create_mute_timing(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        if not body.get("name"):
            return _error(400, "invalid mute timing: name is required")
        if body["name"] in self.s.mute_timings:
            return _error(409, "mute timing already exists")
        timing = {"name": body["name"], "time_intervals": body.get("time_intervals") or [],
                  "provenance": _provenance(request)}
        self.s.mute_timings[body["name"]] = timing
        return web.json_response(timing, status=201)

    @_route("mute_timings", key="name", missing="mute timing not found", body=True)
    async def put_mute_timing(self, request: web.Request, _existing: dict[str, Any], body: dict[str, Any]) -> web.Response:
        name = request.match_info["name"]
        timing = {"name": name, "time_intervals": body.get("time_intervals") or [], "provenance": _provenance(request)}
        self.s.mute_timings[name] = timing
        return web.json_response(timing, status=202)

    async def list_templates(self, _: web.Request) -> web.Response:
        return web.json_response(list(self.s.templates.values()))

    @_route(body=True)
    async def put_template(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        name = request.match_info["name"]
        if not isinstance(body.get("template"), str):
            return _error(400, "invalid template: template is required")
        template = {"name": name, "template": body["template"], "provenance": _provenance(request)}
        self.s.templates[name] = template
        return web.json_response(template, status=202)


def _route_receivers(route: dict[str, Any]) -> set[str]:
    found = {route["receiver"]} if route.get("receiver") else set()
    for child in route.get("routes") or []:
        found |= _route_receivers(child)
    return found


# --- serving -------------------------------------------------------------------------


@dataclass
class RunningGrafana:
    app: web.Application
    runner: web.AppRunner
    port: int
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state(self) -> GrafanaState:
        return self.app[STATE_KEY]

    async def stop(self) -> None:
        self.app[FAULTS_KEY].stop()
        await self.runner.cleanup()


async def start_grafana(host: str = "127.0.0.1", port: int = 0, *, state: GrafanaState | None = None) -> RunningGrafana:
    """Serve the double in the running event loop (port 0: an ephemeral one)."""
    app = build_app(state)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(exc.errno, f"cannot serve the Grafana double on {host}:{port}: {exc.strerror}") from None
    return RunningGrafana(app, runner, runner.addresses[0][1], host)


class GrafanaInThread:
    """The double on its own event loop thread, for synchronous callers (tests, the CLI).

    ``with GrafanaInThread(state) as grafana: httpx.get(grafana.url + "/api/health")``
    """

    def __init__(self, state: GrafanaState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state or GrafanaState()
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: RunningGrafana | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._running = loop.run_until_complete(start_grafana(self.host, self.port, state=self.state))
                self.port = self._running.port
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._running.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="grafana-double", daemon=True)
        self._thread.start()
        if not started.wait(30):
            raise RuntimeError("the Grafana double did not start within 30s")
        if failure:
            raise failure[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> "GrafanaInThread":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
