"""Whether Grafana runs is decided once (``hux.monitoring.grafana_install.grafana_decision``).

The renderer, the native plan and `hux backup all` agree: a `grafana` program
on PATH without its home directory cannot start, so none of them counts on it
(the renderer once scraped a Grafana the stack would never start).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hux.cli import main
from hux.monitoring.grafana_install import grafana_decision
from hux.monitoring.prometheus_config import Targets
from hux.monitoring.settings import load_settings
from hux.stack.binaries import MissingBinary
from hux.stack.components import decide_grafana


@pytest.fixture
def homeless_grafana(hux_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `grafana` executable first on PATH with no conf/defaults.ini anywhere it is looked for."""
    bin_dir = hux_home / "bin"
    bin_dir.mkdir()
    (bin_dir / "grafana").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "grafana").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.delenv("HUX_GRAFANA_BINARY", raising=False)
    monkeypatch.delenv("HUX_GRAFANA_HOME", raising=False)
    monkeypatch.setattr("hux.monitoring.grafana_install.GRAFANA_HOMES", ())
    return bin_dir


def test_renderer_plan_and_backup_agree_on_a_grafana_that_cannot_start(homeless_grafana: Path, capsys) -> None:
    settings = load_settings(None)
    assert settings.grafana.enabled == "auto"
    decision = grafana_decision(settings)
    assert not decision.run and "not installed" in decision.reason
    assert decide_grafana(settings).run is False
    assert settings.grafana.native_enabled() is False
    assert Targets.native(settings).grafana is None
    assert main(["backup", "all", "--prometheus-url", "http://127.0.0.1:9", "--no-prune", "-q"]) == 1
    out = capsys.readouterr().out
    assert "grafana backup skipped" in out and "not installed" in out


def test_grafana_enabled_true_without_an_install_is_an_error_for_up_and_backup(homeless_grafana: Path,
                                                                               monkeypatch, capsys) -> None:
    monkeypatch.setenv("HUX__GRAFANA__ENABLED", "true")
    settings = load_settings(None)
    decision = grafana_decision(settings)
    assert not decision.run and decision.error.startswith("grafana.enabled = true but grafana is not installed")
    with pytest.raises(MissingBinary):
        decide_grafana(settings)
    assert settings.grafana.native_enabled() is True   # rendered: `hux up` refuses to start without it
    assert grafana_decision(settings, mode="docker").run
    assert main(["backup", "all", "--prometheus-url", "http://127.0.0.1:9", "--no-prune", "-q"]) == 1
    assert "grafana.enabled = true but" in capsys.readouterr().err
