"""Command lines the supervisor runs: loopback-only admin endpoints, web config files honoured by the real binaries."""

from __future__ import annotations

import crypt  # deprecated since 3.11 but present; bcrypt hashes for the exporter-toolkit web config
import subprocess
from pathlib import Path

import httpx
import pytest

from hux.monitoring.render import render_native
from hux.monitoring.settings import load_settings
from hux.stack.components import build_plan, decide_grafana
from hux.stack.plan import StackPaths
from tests.conftest import free_port, require_binary
from tests.stack.conftest import BINARIES, base_config, stack_env, wait_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def plan_for(home: Path, extra: str = ""):
    for binary in BINARIES:
        require_binary(binary)
    ports = {name: free_port() for name in ("prometheus", "alertmanager", "node_exporter", "grafana", "bot", "doubles",
                                            "inbox")}
    (home / "hux.toml").write_text(base_config(ports, extra))
    env = stack_env(home)
    settings = load_settings(home / "hux.toml", environ=env)
    paths = StackPaths(home)
    rendered = render_native(settings, paths.run_dir, data_dir=paths.data, grafana_enabled=False)
    return settings, build_plan(settings, paths, rendered, config_path=str(home / "hux.toml"),
                                grafana=decide_grafana(settings))


def test_native_command_lines(tmp_path: Path) -> None:
    settings, plan = plan_for(tmp_path)
    # the inbox starts before Alertmanager, so its first notifications have somewhere to go
    assert plan.names[:4] == ["node_exporter", "inbox", "alertmanager", "prometheus"] and plan.names[-1] == "bot"
    prom = plan.component("prometheus").argv
    ports = settings.stack.ports
    assert f"--web.listen-address=127.0.0.1:{ports.prometheus}" in prom
    assert {"--web.enable-lifecycle", "--web.enable-admin-api"} <= set(prom)
    assert f"--storage.tsdb.path={tmp_path / 'data' / 'prometheus'}" in prom
    assert "--storage.tsdb.retention.time=15d" in prom
    am = plan.component("alertmanager").argv
    assert "--cluster.listen-address=" in am and f"--web.listen-address=127.0.0.1:{ports.alertmanager}" in am
    node = plan.component("node_exporter").argv
    assert f"--collector.textfile.directory={tmp_path / 'data' / 'node_exporter' / 'textfile'}" in node
    bot = plan.component("bot")
    assert bot.argv[-2:] == ("bot", "run") and ("--config", str(tmp_path / "hux.toml")) == bot.argv[3:5]
    assert bot.env["HUX__BOT__PORT"] == str(ports.bot) and bot.env["HUX__BOT__DEMO__DOUBLES_PORT"] == str(ports.doubles)
    assert bot.log_file.endswith("logs/mr_hux_alpha_bot.stderr.log")
    assert bot.extra_logs == (str(tmp_path / "logs" / "mr_hux_alpha_bot.log"),)


def test_admin_and_lifecycle_endpoints_stay_off_beyond_loopback(tmp_path: Path) -> None:
    _, plan = plan_for(tmp_path, '\n[stack]\nbind_address = "0.0.0.0"\n')
    prom = plan.component("prometheus").argv
    assert "--web.enable-lifecycle" not in prom and "--web.enable-admin-api" not in prom
    assert any(a.startswith("--web.listen-address=0.0.0.0:") for a in prom)


def test_an_operator_web_config_keeps_its_users_and_gains_ours(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    password = "correct horse"
    (tmp_path / "web" / "node_exporter.yml").write_text(
        f"basic_auth_users:\n  alice: '{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}'\n")
    settings, plan = plan_for(tmp_path)
    spec = plan.component("node_exporter")
    merged = tmp_path / "data" / "auth" / "web-node_exporter.yml"
    assert f"--web.config.file={merged}" in spec.argv
    ours = f"--web.config.file={tmp_path / 'data' / 'auth' / 'web.yml'}"
    assert ours in plan.component("prometheus").argv and ours in plan.component("alertmanager").argv
    assert not any(a.startswith("--web.config.file") for a in plan.component("bot").argv)
    hux_password = (tmp_path / "data" / "auth" / "password").read_text().strip()
    (tmp_path / "data" / "node_exporter" / "textfile").mkdir(parents=True)
    proc = subprocess.Popen(list(spec.argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answer(auth=None):
            try:
                # bcrypt (cost 12 here) on a loaded machine can take more than a second on a cache miss
                return httpx.get(spec.url + "/metrics", auth=auth, timeout=10).status_code
            except httpx.HTTPError:
                return None

        assert wait_for(lambda: answer(), 10, "node_exporter to listen") == 401
        assert answer(("alice", password)) == 200
        assert answer(("hux", hux_password)) == 200
        assert answer(("hux", "wrong")) == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_bot_instances_run_on_consecutive_ports_each_with_its_own_logs(tmp_path: Path) -> None:
    settings, plan = plan_for(tmp_path, '\n[bot]\ninstances = 3\ndatabase_url = "postgresql+psycopg://hux@db/hux"\n')
    base = settings.stack.ports.bot
    bots = [plan.component(name) for name in ("bot", "bot_2", "bot_3")]
    assert [b.port for b in bots] == [base, base + 1, base + 2]
    assert [b.env["HUX__BOT__PORT"] for b in bots] == [str(base), str(base + 1), str(base + 2)]
    assert len({b.log_file for b in bots}) == 3 and len({b.extra_logs for b in bots}) == 3
    assert bots[1].env["HUX__BOT__LOG_FILE"] == bots[1].extra_logs[0]
    assert bots[0].env["HUX__BOT__DEMO__DOUBLES_PORT"] == str(settings.stack.ports.doubles)
    assert bots[2].env["HUX__BOT__DEMO__DOUBLES_PORT"] == "0"  # the demo's doubles of the others: any free port
    assert [b.ready_url for b in bots] == [f"http://127.0.0.1:{base + i}/ready" for i in range(3)]
    # Prometheus scrapes every one of them
    assert settings.bot_targets() == [f"127.0.0.1:{base + i}" for i in range(3)]


def test_settings_of_the_docker_path_run_natively_still_need_postgresql_for_several_bots(tmp_path: Path) -> None:
    from hux.config import ConfigError

    # docker: the compose PostgreSQL serves the bots; `hux up --native` with these settings has only SQLite
    with pytest.raises(ConfigError, match="needs bot.database_url on PostgreSQL"):
        plan_for(tmp_path, '\n[stack]\nmode = "docker"\n[bot]\ninstances = 3\n')


def test_bot_instances_that_would_take_another_components_port_are_refused() -> None:
    from hux.config import ConfigError
    from hux.monitoring.settings import settings_from_raw

    pg = "postgresql+psycopg://hux@db/hux"
    with pytest.raises(ConfigError, match="takes stack.ports.doubles"):  # 8000..8011 reaches the doubles' 8010
        settings_from_raw({"bot": {"instances": 12, "database_url": pg}}, environ={})
    with pytest.raises(ConfigError, match="needs bot.database_url on PostgreSQL"):
        settings_from_raw({"bot": {"instances": 2}}, environ={})
    assert settings_from_raw({"bot": {"instances": 10, "database_url": pg}}, environ={}).bot_instances == 10
