"""Runbooks cover every alert; `hux check-config` runs every check against the real tools."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hux.cli import main
from hux.monitoring.checks import RULE_TESTS_DIR
from hux.monitoring.rules import ALERTS, runbook_anchor
from tests.conftest import require_binary

REPO = Path(__file__).resolve().parents[2]


def test_every_alert_has_a_runbook_section():
    text = (REPO / "docs" / "runbooks.md").read_text()
    headings = re.findall(r"^## (\w+)$", text, re.M)
    assert set(ALERTS) <= set(headings), set(ALERTS) - set(headings)
    for name in ALERTS:
        section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "**Severity:**" in section and ("**Fix" in section or "heartbeat" in section), name
        assert runbook_anchor(name) == name.lower()


def test_alert_list_is_rendered():
    text = (REPO / "docs" / "alerts.md").read_text()
    for name in ALERTS:
        assert f"| {name} |" in text


def test_hux_check_config(tmp_path, hux_home, monkeypatch, capsys):
    for tool in ("promtool", "amtool"):
        require_binary(tool)
    monkeypatch.setenv("HUX_ENV_FILE", str(tmp_path / "no.env"))
    config = tmp_path / "hux.toml"
    config.write_text('[receivers.webhook]\nenabled = true\nurl = "http://127.0.0.1:9/hook"\n'
                      '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n')
    assert main(["--config", str(config), "check-config", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    names = [r["check"] for r in results]
    assert names[:4] == ["promtool check config", "promtool check rules", "promtool test rules",
                         "amtool check-config"]
    assert sum(n.startswith("route: ") for n in names) == len(ALERTS) + 1
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
    assert "route: BotHighErrorRate (critical) pages webhook; the inbox keeps it" in names
    # the rule unit tests: every file passes (they run here once; promtool over all of them is ~16 s of CPU)
    [rule_tests] = [r for r in results if r["check"] == "promtool test rules"]
    assert rule_tests["detail"].count("SUCCESS") == len(list(RULE_TESTS_DIR.glob("*.test.yml")))
