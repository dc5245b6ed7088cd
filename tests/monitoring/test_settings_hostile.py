"""Settings written by someone hostile: nothing injects into a rendered file, nothing crashes the loader.

Every string setting ends up in a file another program parses (prometheus.yml,
alertmanager.yml, grafana.ini, docker-compose.yml, Grafana provisioning). The
validators refuse what that file cannot carry (a newline, a template opener,
an ini expansion, a compose interpolation) with a ConfigError naming the key;
for any input at all the loader gives settings or a ConfigError, never an
unhandled exception (Hypothesis).
"""

from __future__ import annotations

import configparser
import json
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from hux.bot.config import BotConfig
from hux.config import ConfigError, deep_merge, env_overrides, load_raw
from hux.monitoring import alertmanager as am
from hux.monitoring import compose, prometheus_config
from hux.monitoring.render import docker_secret_refs
from hux.monitoring.settings import load_settings, settings_from_raw
from hux.monitoring.yamlout import dump
from hux.stack.grafana import write_ini

DEFAULTS = load_raw(environ={})


def toml_string(value: str) -> str:
    return json.dumps(value)   # a JSON string literal is a valid TOML basic string


def refused(make_settings, toml: str, key: str) -> str:
    with pytest.raises(ConfigError) as info:
        make_settings(toml)
    message = str(info.value)
    assert key in message, message
    return message


# --- full matches: a trailing newline is not a valid value -----------------------------------


@pytest.mark.parametrize(("section", "key", "good"), [
    ("alerts", "latency_for", "5m"),
    ("prometheus", "scrape_interval", "15s"),
    ("receivers.email", "smtp_smarthost", "smtp.example.com:587"),
    ("stack.images", "prometheus", "prom/prometheus:v3.1.0"),
    ("grafana", "datasource_uid", "hux-prometheus"),
    ("prometheus", "retention_size", "10GB"),
])
@pytest.mark.parametrize("tail", ["\n", "\r\n", "\n- injected: true", "\x00"])
def test_a_value_with_a_trailing_line_is_refused(make_settings, section, key, good, tail):
    make_settings(f"[{section}]\n{key} = {toml_string(good)}\n")   # the value itself is fine
    message = refused(make_settings, f"[{section}]\n{key} = {toml_string(good + tail)}\n", f"{section}.{key}")
    assert "retry" in message or "remove" in message or "e.g." in message


def test_bot_targets_with_a_trailing_newline_are_refused(make_settings):
    refused(make_settings, '[stack]\nbot_targets = ["127.0.0.1:8000\\n"]\n', "stack.bot_targets")


# --- grafana.ini ---------------------------------------------------------------------------


@pytest.mark.parametrize("user", [
    "admin\n[server]\nhttp_addr = 0.0.0.0",          # a section injected into grafana.ini
    "admin\r[auth.anonymous]\nenabled = true",
    "$__file{/etc/shadow}",                             # Grafana expands this in ini values
    "${HUX_GRAFANA_ADMIN_PASSWORD}",                    # and this (compose interpolates it, too)
    "admin ; comment",
    "",
])
def test_grafana_admin_user_cannot_inject_into_grafana_ini(make_settings, user):
    message = refused(make_settings, f"[grafana]\nadmin_user = {toml_string(user)}\n", "grafana.admin_user")
    assert "letters, digits" in message or "control character" in message


def test_write_ini_refuses_a_value_the_file_cannot_carry(tmp_path: Path):
    good = dict(bind_address="127.0.0.1", port=3000, data_dir=tmp_path / "data",
                provisioning_dir=tmp_path / "prov", admin_user="admin", password_file=tmp_path / "pw")
    ini = write_ini(tmp_path / "grafana.ini", **good)
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read(ini)
    assert parsed.get("security", "admin_user") == "admin"
    for key, bad in (("data_dir", tmp_path / "x\n[server]\nhttp_addr = 0.0.0.0"),
                     ("password_file", tmp_path / "pw}x"),
                     ("provisioning_dir", tmp_path / "a;b"),
                     ("admin_user", "ad\nmin")):
        with pytest.raises(ValueError, match="grafana.ini cannot carry"):
            write_ini(tmp_path / "bad.ini", **{**good, key: bad})
        assert not (tmp_path / "bad.ini").exists()


@pytest.mark.parametrize("path", ["/tmp/pw}", "/tmp/$HOME/pw", "/tmp/a\nb"])
def test_grafana_password_file_must_fit_in_the_ini_expansion(make_settings, path):
    refused(make_settings, f"[grafana]\nadmin_password_file = {toml_string(path)}\n", "grafana.admin_password_file")


def test_grafana_datasource_name_cannot_expand_provisioning_variables(make_settings):
    refused(make_settings, '[grafana]\ndatasource_name = "$HUX_GRAFANA_ADMIN_PASSWORD"\n', "grafana.datasource_name")


# --- alertmanager.yml and rule annotations: Go templates --------------------------------------


@pytest.mark.parametrize(("toml", "key"), [
    ('[receivers.slack]\nchannel = "{{ template \\"x\\" . }}"\n', "receivers.slack.channel"),
    ('[receivers.email]\nto = "{{ .ExternalURL }}@example.com"\n', "receivers.email.to"),
    ('[alerts]\nrunbook_base_url = "https://x/{{ $value }}"\n', "alerts.runbook_base_url"),
    ('[alerts]\nrunbook_base_url = "https://x/ docs"\n', "alerts.runbook_base_url"),
    ('[receivers.webhook]\nurl = "http://"\n', "receivers.webhook.url"),
    ('[receivers.webhook]\nurl = "http://example.com/a b"\n', "receivers.webhook.url"),
    ('[receivers.heartbeat]\nurl = "https://hc.example/ping\\nx"\n', "receivers.heartbeat.url"),
    ('[receivers.email]\nauth_password_env = "HUX SMTP"\n', "receivers.email.auth_password_env"),
    ('[receivers.slack]\napi_url_env = "A=B"\n', "receivers.slack.api_url_env"),
    ('[bot.telegram]\ntoken_env = "X\\nY"\n', "bot.telegram.token_env"),
    ('[prometheus.external_labels]\nmonitor = "hux\\nx"\n', "prometheus.external_labels"),
    ("[prometheus]\nretention_time = \"15d\\n\"\n", "prometheus.retention_time"),
    ('[alerts]\ndisk_fstypes_excluded = ["tmpfs\\n"]\n', "alerts.disk_fstypes_excluded"),
    ('[stack]\nbind_address = "127.0.0.1\\n"\n', "stack.bind_address"),
    ('[stack.images]\nprometheus = "prom/prometheus:v3.1.0 --web.enable-admin-api"\n', "stack.images.prometheus"),
    ('[stack.images]\ngrafana = "grafana/${HUX_POSTGRES_PASSWORD}:1"\n', "stack.images.grafana"),
    ("[alerts]\nlatency_seconds = nan\n", "alerts.latency_seconds"),
    ("[alerts]\nerror_rate_min_events = inf\n", "alerts.error_rate_min_events"),
])
def test_values_a_rendered_file_cannot_carry_are_refused(make_settings, toml, key):
    refused(make_settings, toml, key)


def test_ordinary_values_still_load(make_settings):
    s = make_settings(
        '[receivers.slack]\nchannel = "#hux-alerts"\n'
        '[receivers.webhook]\nurl = "https://hooks.example.com/a?b=c&d=%20"\n'
        '[alerts]\nrunbook_base_url = "https://git.example.com/hux/blob/main/docs/runbooks.md"\n'
        '[grafana]\nadmin_user = "ops.admin@example.com"\n'
        '[stack.images]\nprometheus = "registry.example.com:5000/prom/prometheus:v3.1.0"\n'
    )
    assert s.grafana.admin_user == "ops.admin@example.com"


# --- the loader itself: no input makes it crash ----------------------------------------------


def test_conflicting_environment_overrides_name_both_keys():
    with pytest.raises(ConfigError, match="HUX__BOT__PORT"):
        env_overrides({"HUX__BOT": "1", "HUX__BOT__PORT": "8001"})
    with pytest.raises(ConfigError, match="HUX__BOT__PORT"):
        env_overrides({"HUX__BOT__PORT": "8001", "HUX__BOT": "1"})


@pytest.mark.parametrize("ports", [5, "ab", [1, 2]])
def test_a_ports_table_that_is_not_a_table_is_a_config_error(ports):
    raw = deep_merge(DEFAULTS, {"stack": {"ports": ports}})
    with pytest.raises(ConfigError, match="stack.ports"):
        settings_from_raw(raw, environ={})


SECTION_KEYS = sorted({f"{section}.{key}" for section, table in DEFAULTS.items() if isinstance(table, dict)
                       for key in table} | {"stack.ports.bot", "stack.images.grafana", "grafana.admin_user",
                                            "receivers.email.to", "receivers.webhook.url", "bot.telegram.token_env"})
scalars = st.one_of(st.text(max_size=30), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def _nest(dotted: str, value: object) -> dict:
    out: object = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out  # type: ignore[return-value]


@given(st.dictionaries(st.one_of(st.sampled_from(SECTION_KEYS), st.text(min_size=1, max_size=12)), values,
                       max_size=4))
@example({"stack.ports": "ab"})
@example({"stack.ports": 5})
@example({"grafana.admin_user": "a\n[server]"})
def test_any_settings_give_settings_or_a_config_error_naming_a_key(fuzz):
    raw = DEFAULTS
    for dotted, value in fuzz.items():
        raw = deep_merge(raw, _nest(dotted, value))
    try:
        settings = settings_from_raw(raw, environ={})
    except ConfigError as exc:
        message = str(exc)
        assert any(dotted.split(".")[0] in message for dotted in fuzz), message
        return
    # Whatever loads renders into documents that read back as they were written.
    refs, needed = docker_secret_refs(settings)
    for document in (compose.compose_document(settings, needed), am.alertmanager_config(settings, refs),
                     prometheus_config.prometheus_config(settings, prometheus_config.Targets.docker())):
        assert yaml.safe_load(dump(document)) == json.loads(json.dumps(document))


@given(st.dictionaries(st.text(alphabet=string.ascii_uppercase + "_", min_size=1, max_size=20),
                       st.text(max_size=20), max_size=5))
@example({"BOT": "1", "BOT__PORT": "2"})
def test_any_environment_overrides_give_settings_or_a_config_error(env):
    environ = {f"HUX__{key}": value for key, value in env.items()}
    try:
        raw = load_raw(environ=environ)
        settings_from_raw(raw, environ=environ)
    except ConfigError as exc:
        assert "config key" in str(exc) or "HUX__" in str(exc) or "invalid configuration" in str(exc), str(exc)


@given(st.text(max_size=200))
@example('[grafana]\nadmin_user = "a"\n[grafana]\n')
def test_any_settings_file_gives_settings_or_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "hux.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_settings(path, environ={})
    except ConfigError:
        pass


@given(st.text(max_size=40))
@example("admin\n[server]")
@example("$__env{HOME}")
def test_whatever_admin_user_loads_stays_one_ini_value(tmp_path_factory, user):
    try:
        settings = settings_from_raw(deep_merge(DEFAULTS, {"grafana": {"admin_user": user}}), environ={})
    except ConfigError as exc:
        assert "grafana.admin_user" in str(exc)
        return
    tmp = tmp_path_factory.mktemp("ini")
    ini = write_ini(tmp / "grafana.ini", bind_address="127.0.0.1", port=3000, data_dir=tmp, provisioning_dir=tmp,
                    admin_user=settings.grafana.admin_user, password_file=tmp / "pw")
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read(ini)
    assert parsed.sections() == ["paths", "server", "security", "users", "auth.anonymous", "analytics", "log"]
    assert parsed.get("security", "admin_user") == user
    assert "$" not in user and "{" not in user


def test_bot_section_refuses_control_characters_too():
    with pytest.raises(Exception, match="control character"):
        BotConfig.model_validate({"webhook": {"url": "http://x/\nHost: evil"}})
