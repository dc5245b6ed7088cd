"""Many hosts: a second node_exporter added with `hux targets add` is scraped by a running Prometheus
without a restart, and its series go stale once `hux targets remove` drops it (real binaries, loopback)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from hux.cli import main
from hux.monitoring import auth
from hux.monitoring.render import render_native
from tests.conftest import free_port, require_binary
from tests.monitoring.livestack import Child, wait_for

#: another loopback address: the "other host" (Linux routes all of 127.0.0.0/8 to lo)
OTHER_HOST = "127.0.0.2"
TIMEOUT = 30


def _free_port_on(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _series(client: httpx.Client, expr: str) -> list[dict[str, object]]:
    body = client.get("/api/v1/query", params={"query": expr}).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _node_targets(client: httpx.Client) -> dict[str, str]:
    active = client.get("/api/v1/targets", params={"state": "active"}).json()["data"]["activeTargets"]
    return {t["labels"]["instance"]: t["health"] for t in active if t["labels"]["job"] == "node"}


def test_a_second_node_exporter_is_added_scraped_and_removed_without_a_restart(
        make_settings, tmp_path: Path, hux_home: Path, monkeypatch, capsys):
    prometheus = require_binary("prometheus")
    node_exporter = require_binary("prometheus-node-exporter")
    ports = {"prometheus": free_port(), "node_exporter": free_port(), "alertmanager": free_port()}
    toml = (f"[stack.ports]\nprometheus = {ports['prometheus']}\nnode_exporter = {ports['node_exporter']}\n"
            f"alertmanager = {ports['alertmanager']}\n[inbox]\nenabled = false\n"
            '[prometheus]\nscrape_interval = "1s"\nevaluation_interval = "1s"\ntarget_refresh_interval = "1s"\n')
    config = tmp_path / "hux.toml"
    config.write_text(toml)
    monkeypatch.setenv("HUX_CONFIG", str(config))
    monkeypatch.setenv("HUX_ENV_FILE", str(tmp_path / "no.env"))
    settings = make_settings(toml)
    data = hux_home / "data"
    rendered = render_native(settings, data / "run", data_dir=data, grafana_enabled=False, environ={})
    other = f"{OTHER_HOST}:{_free_port_on(OTHER_HOST)}"
    logs = tmp_path / "logs"
    logs.mkdir()
    children = []
    try:
        for name, address in (("node_local", f"127.0.0.1:{ports['node_exporter']}"), ("node_other", other)):
            # the other host's exporter behind the same basic auth, as docker/exporters runs it
            children.append(Child(name, [node_exporter, f"--web.listen-address={address}", *rendered.web_args],
                                  logs))
        children.append(Child("prometheus", [prometheus, *rendered.prometheus_args, *rendered.web_args], logs,
                              cwd=rendered.run_dir))
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['prometheus']}", auth=auth.client_auth(data),
                          timeout=5) as client:
            local = f"127.0.0.1:{ports['node_exporter']}"
            wait_for(lambda: _node_targets(client).get(local) == "up", TIMEOUT, "the local node_exporter", children)
            assert other not in _node_targets(client)

            assert main(["targets", "add", "node", other]) == 0
            added = time.monotonic()
            wait_for(lambda: _series(client, f'node_uname_info{{instance="{other}"}}'), TIMEOUT,
                     f"series of {other}", children)
            picked_up = time.monotonic() - added
            assert _node_targets(client)[other] == "up"
            # host alerts and panels tell the hosts apart by instance: the recording rule keeps it
            wait_for(lambda: _series(client, f'instance:node_memory_utilisation:ratio{{instance="{other}"}}'),
                     TIMEOUT, "the host recording rule for the second host", children)
            assert main(["targets", "list", "node"]) == 0
            listed = capsys.readouterr().out
            assert local in listed and other in listed

            assert main(["targets", "remove", "node", other]) == 0
            wait_for(lambda: other not in _node_targets(client), TIMEOUT, f"{other} to leave the targets", children)
            # a dropped target's series are marked stale at once: an instant query no longer returns them
            wait_for(lambda: not _series(client, f'node_uname_info{{instance="{other}"}}'), TIMEOUT,
                     f"series of {other} to go stale", children)
            assert _series(client, f'node_uname_info{{instance="{local}"}}'), "the local host stays"
            print(f"second host picked up {picked_up:.1f} s after `hux targets add`")
    finally:
        for child in reversed(children):
            child.stop()
