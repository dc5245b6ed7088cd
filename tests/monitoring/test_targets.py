"""`hux targets`: validated HOST:PORT, atomic target files in Prometheus's file_sd format, rendered into
both modes' configs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from hux.cli import main
from hux.monitoring import targets
from hux.monitoring.prometheus_config import DOCKER_TARGETS_DIR
from hux.monitoring.render import docker_files, native_files
from hux.paths import Layout


@pytest.mark.parametrize(("given", "canonical"), [
    ("10.0.0.5:9100", "10.0.0.5:9100"),
    (" db1.Example.org:9100 ", "db1.example.org:9100"),
    ("[2001:DB8::5]:9100", "[2001:db8::5]:9100"),
    ("node-2:09100", "node-2:9100"),
])
def test_targets_are_canonical(given: str, canonical: str):
    assert targets.parse_target(given) == canonical


@pytest.mark.parametrize(("given", "says"), [
    ("", "not HOST:PORT"),
    ("http://10.0.0.5:9100", "no scheme"),
    ("10.0.0.5:9100/metrics", "no scheme, path"),
    ("user:pw@10.0.0.5:9100", "credentials"),
    ("10.0.0.5", "no port"),
    ("10.0.0.5:0", "between 1 and 65535"),
    ("10.0.0.5:70000", "between 1 and 65535"),
    ("2001:db8::5:9100", "in brackets"),
    ("[not-v6]:9100", "not an IPv6 address"),
    ("999.1.1.1:9100", "neither an IPv4 address nor a host name"),
    ("bad_host!:9100", "neither an IPv4 address nor a host name"),
    ("a b:9100", "not HOST:PORT"),
])
def test_bad_targets_are_refused_saying_why(given: str, says: str):
    with pytest.raises(targets.TargetError, match=says.replace("(", r"\(")):
        targets.parse_target(given)


def test_add_list_remove_keep_the_file_in_prometheus_format(make_settings, tmp_path: Path):
    settings = make_settings()
    directory = tmp_path / "targets"
    assert targets.read_targets(directory, "node") == []
    assert targets.add_target(settings, directory, "node", "10.0.0.5:9100") == "10.0.0.5:9100"
    targets.add_target(settings, directory, "node", "db1.example.org:9100")
    targets.add_target(settings, directory, "bot", "10.0.0.7:8000")
    groups = json.loads((directory / "node.json").read_text())
    assert groups == [{"targets": ["10.0.0.5:9100", "db1.example.org:9100"], "labels": {}}]
    assert (directory / "node.json").stat().st_mode & 0o777 == 0o644
    with pytest.raises(targets.TargetError, match="already in"):
        targets.add_target(settings, directory, "node", "DB1.example.org:9100")
    with pytest.raises(targets.TargetError, match="already a node target of the rendered config"):
        targets.add_target(settings, directory, "node", "127.0.0.1:9100")
    assert targets.remove_target(settings, directory, "node", "10.0.0.5:9100") == "10.0.0.5:9100"
    with pytest.raises(targets.TargetError, match=r"not a node target \(listed: db1.example.org:9100\)"):
        targets.remove_target(settings, directory, "node", "10.0.0.5:9100")
    with pytest.raises(targets.TargetError, match="static target of the rendered config"):
        targets.remove_target(settings, directory, "bot", "127.0.0.1:8000")
    targets.remove_target(settings, directory, "node", "db1.example.org:9100")
    assert json.loads((directory / "node.json").read_text()) == []
    assert targets.read_targets(directory, "bot") == ["10.0.0.7:8000"]
    assert sorted(p.name for p in directory.iterdir()) == [".lock", "bot.json", "node.json"]  # no temp files left


def test_concurrent_adds_lose_nothing(make_settings, tmp_path: Path):
    settings = make_settings()
    directory = tmp_path / "targets"
    wanted = [f"10.0.1.{i}:9100" for i in range(1, 31)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda t: targets.add_target(settings, directory, "node", t), wanted))
    assert sorted(targets.read_targets(directory, "node")) == sorted(wanted)


@pytest.mark.parametrize(("text", "says"), [
    ("{not json", "is not JSON"),
    ('{"targets": []}', "not a list of target groups"),
    ('[{"targets": [9100]}]', "not a HOST:PORT string"),
    ('[{"targets": ["http://x:1"]}]', "no scheme"),
])
def test_a_hand_edited_file_prometheus_cannot_use_is_reported(make_settings, tmp_path: Path, text: str, says: str):
    directory = tmp_path / "targets"
    directory.mkdir()
    (directory / "node.json").write_text(text)
    with pytest.raises(targets.TargetError, match=says):
        targets.read_targets(directory, "node")
    with pytest.raises(targets.TargetError, match=says):   # and nothing is written over it
        targets.add_target(make_settings(), directory, "node", "10.0.0.5:9100")
    assert (directory / "node.json").read_text() == text


def test_the_cli_adds_lists_and_refuses_with_a_message(tmp_path: Path, hux_home: Path, monkeypatch, capsys):
    monkeypatch.setenv("HUX_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("HUX_ENV_FILE", str(tmp_path / "no.env"))
    (tmp_path / "none.toml").write_text("")
    assert main(["targets", "add", "node", "10.0.0.5:9100"]) == 0
    assert "Prometheus picks it up within 30s" in capsys.readouterr().out
    assert main(["targets", "add", "node", "10.0.0.5"]) == 1
    assert "no port between 1 and 65535" in capsys.readouterr().err
    assert main(["targets", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    file = str(Layout(hux_home).targets_dir / "node.json")
    assert {"kind": "node", "target": "10.0.0.5:9100", "source": file} in rows
    assert {"kind": "node", "target": "127.0.0.1:9100", "source": "rendered config"} in rows
    assert {"kind": "bot", "target": "127.0.0.1:8000", "source": "rendered config"} in rows
    assert main(["targets", "remove", "bot", "10.0.0.5:9100"]) == 1
    assert "not a bot target (listed: none)" in capsys.readouterr().err


def test_both_modes_render_file_discovery_for_node_and_bot(make_settings, tmp_path: Path):
    settings = make_settings('[prometheus]\ntarget_refresh_interval = "10s"\n')
    files, _ = native_files(settings, tmp_path / "run", targets_dir=tmp_path / "targets")
    jobs = {j["job_name"]: j for j in yaml.safe_load(files["prometheus.yml"])["scrape_configs"]}
    for kind in ("node", "bot"):
        assert jobs[kind]["file_sd_configs"] == [{"files": [f"{tmp_path}/targets/{kind}.json"],
                                                  "refresh_interval": "10s"}]
        assert jobs[kind]["static_configs"]   # the local one stays a target
    docker = docker_files(settings)
    jobs = {j["job_name"]: j for j in yaml.safe_load(docker["docker/prometheus/prometheus.yml"])["scrape_configs"]}
    assert jobs["node"]["file_sd_configs"][0]["files"] == [f"{DOCKER_TARGETS_DIR}/node.json"]
    assert jobs["bot"]["dns_sd_configs"] and jobs["bot"]["file_sd_configs"]
    compose = yaml.safe_load(docker["docker-compose.yml"])
    assert f"./data/targets:{DOCKER_TARGETS_DIR}:ro" in compose["services"]["prometheus"]["volumes"]


def test_a_bad_refresh_interval_is_refused(make_settings):
    from hux.config import ConfigError

    with pytest.raises(ConfigError, match="target_refresh_interval"):
        make_settings('[prometheus]\ntarget_refresh_interval = "soon"\n')


def test_the_exporters_compose_file_for_other_hosts_is_valid_pinned_and_authenticated(tmp_path: Path):
    import os
    import re
    import subprocess

    from tests.conftest import require_binary

    require_binary("docker-compose")
    repo = Path(__file__).resolve().parents[2]
    path = repo / "docker/exporters/docker-compose.yml"
    service = yaml.safe_load(path.read_text())["services"]["node-exporter"]
    assert re.fullmatch(r"prom/node-exporter:v\d+\.\d+\.\d+", service["image"])
    assert "--web.config.file=/etc/node_exporter/web.yml" in service["command"]   # never without a login
    assert "./web.yml:/etc/node_exporter/web.yml:ro" in service["volumes"]
    assert service["healthcheck"] and service["restart"] == "unless-stopped" and service["mem_limit"]
    assert (repo / "docker/exporters/.gitignore").read_text() == "web.yml\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUX")}

    def config(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker-compose", "-f", str(path), "config"], cwd=tmp_path, env={**env, **extra},
                              capture_output=True, text=True, timeout=60)

    proc = config({"HUX_EXPORTER_ADDRESS": "10.0.0.5"})
    assert proc.returncode == 0, proc.stderr
    assert "10.0.0.5:9100:9100" in proc.stdout
    proc = config({})   # no address: refused, no silent 0.0.0.0
    assert proc.returncode != 0 and "set HUX_EXPORTER_ADDRESS" in proc.stderr


def test_both_ha_replicas_read_the_same_target_files(make_settings, tmp_path: Path):
    settings = make_settings('[stack]\ntopology = "ha"\n')
    files, _ = native_files(settings, tmp_path / "run", targets_dir=tmp_path / "targets")
    configs = [yaml.safe_load(text) for name, text in files.items() if name.startswith("prometheus") and
               name.endswith(".yml") and "/" not in name]
    assert len(configs) == 2
    for config in configs:
        jobs = {j["job_name"]: j for j in config["scrape_configs"]}
        assert jobs["node"]["file_sd_configs"][0]["files"] == [f"{tmp_path}/targets/node.json"]
        assert jobs["bot"]["file_sd_configs"][0]["files"] == [f"{tmp_path}/targets/bot.json"]


def test_a_directory_that_cannot_be_written_is_reported(make_settings, tmp_path: Path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    with pytest.raises(targets.TargetError, match="cannot write the target files in"):
        targets.add_target(make_settings(), blocked / "targets", "node", "10.0.0.5:9100")
