"""Config checks with the real tools: promtool, amtool, rule unit tests, routing tests.

``run_config_checks`` is what ``hux check-config`` and the weekly maintenance
task run. The rule unit tests (``ruletests/*.test.yml``) are specifications
written against ``ruletests/settings.toml``: they prove each alert fires above
its threshold and stays quiet just under it. The routing cases are derived
from the settings, so they prove where *this* configuration sends each kind
of alert.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hux.monitoring import rules as rules_mod
from hux.monitoring import runbooks, wiring
from hux.monitoring.alertmanager import HEARTBEAT, INBOX, severity_receivers
from hux.monitoring.settings import Settings, load_settings
from hux.monitoring.status import from_ok
from hux.monitoring.yamlout import GENERATED, dump

RULE_TESTS_DIR = Path(__file__).parent / "ruletests"
RULE_TEST_SETTINGS = RULE_TESTS_DIR / "settings.toml"
#: each tool run's bound: `promtool test rules` of every case needs ~50 s of CPU and took 156 s on a loaded
#: 2-core host (load 16), past the 120 s this was
TIMEOUT = 300


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = ""

    @property
    def status(self) -> str:
        """``pass`` or ``fail`` in the words every check uses (:mod:`hux.monitoring.status`)."""
        return from_ok(self.ok)


@dataclass(frozen=True)
class RouteCase:
    """An alert's labels and the receivers Alertmanager must pick for it, in order."""

    name: str
    labels: dict[str, str]
    receivers: list[str]


def _run(name: str, argv: list[str], cwd: Path | None = None) -> CheckResult:
    binary = shutil.which(argv[0])
    if binary is None:
        return CheckResult(name, False, f"{argv[0]} is not installed: run scripts/setup_monitoring.py "
                                        "(Debian: apt-get install prometheus prometheus-alertmanager)")
    try:
        proc = subprocess.run([binary, *argv[1:]], capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)
    except subprocess.TimeoutExpired:
        return CheckResult(name, False, f"timed out after {TIMEOUT}s")
    output = (proc.stdout + proc.stderr).strip()
    return CheckResult(name, proc.returncode == 0, output[-4000:])


def rule_test_settings() -> Settings:
    """The settings the rule unit tests are written against (independent of the operator's file)."""
    return load_settings(RULE_TEST_SETTINGS, environ={})


def prepare_rule_tests(workdir: Path, settings: Settings | None = None) -> list[Path]:
    """Render the rules with the test settings into workdir/rules and copy the test files beside them."""
    settings = settings or rule_test_settings()
    # ha.test.yml reads the same settings rendered for the HA topology (rules-ha/: its file and the ones it changes)
    for directory, rendered in (("rules", settings), ("rules-ha", settings.with_topology("ha"))):
        (workdir / directory).mkdir(parents=True, exist_ok=True)
        for name, document in rules_mod.rule_files(rendered).items():
            (workdir / directory / name).write_text(dump(document, GENERATED), encoding="utf-8")
    tests = []
    for source in sorted(RULE_TESTS_DIR.glob("*.test.yml")):
        target = workdir / source.name
        target.write_text(dump(with_first_steps(yaml.safe_load(source.read_text(encoding="utf-8")))),
                          encoding="utf-8")
        tests.append(target)
    return tests


def with_first_steps(spec: dict[str, Any]) -> dict[str, Any]:
    """A rule test file whose expected alerts also expect their runbook's first steps.

    The ``first_steps`` annotation is the runbook's text (``hux.monitoring.runbooks``), not a threshold
    the cases are about, so the files do not repeat it: it is added here, and promtool then proves that
    Prometheus hands it on unchanged.
    """
    for test in spec.get("tests") or []:
        for case in test.get("alert_rule_test") or []:
            steps = runbooks.first_steps_text(case.get("alertname", ""))
            for expected in case.get("exp_alerts") or []:
                if steps:
                    expected.setdefault("exp_annotations", {})["first_steps"] = steps
    return spec


def run_rule_tests(workdir: Path | None = None) -> CheckResult:
    with tempfile.TemporaryDirectory(prefix="hux-ruletests-") as tmp:
        base = Path(workdir or tmp)
        tests = prepare_rule_tests(base)
        result = _run("promtool test rules", ["promtool", "test", "rules", *(t.name for t in tests)], cwd=base)
    return result


def route_cases(settings: Settings) -> list[RouteCase]:
    """What each kind of alert must reach under these settings (enabled receivers only)."""
    critical, warning = severity_receivers(settings, settings.enabled_receivers())
    # the local inbox (native) gets every alert first, beside the receivers
    inbox = [INBOX] if settings.inbox.enabled else []
    critical, warning = inbox + critical, inbox + warning
    cases = [RouteCase("Watchdog goes to the heartbeat route", {"alertname": "Watchdog", "severity": "none"},
                       [*inbox, HEARTBEAT])]
    for alertname, severity in rules_mod.ALERTS.items():
        if alertname == "Watchdog":
            continue
        expected = critical if severity == "critical" else warning
        people = ", ".join(expected[len(inbox):]) or "nobody"
        cases.append(RouteCase(f"{alertname} ({severity}) pages {people}" + ("; the inbox keeps it" if inbox else ""),
                               {"alertname": alertname, "severity": severity, "job": settings.stack.bot_job,
                                "instance": "bot-1:8000"}, expected))
    cases.append(RouteCase("an alert without severity falls back to the root receiver",
                           {"alertname": "Unlabelled"}, [*inbox, warning[len(inbox)]]))
    return cases


def amtool_route_test(config: Path, case: RouteCase) -> CheckResult:
    labels = [f"{key}={value}" for key, value in case.labels.items()]
    return _run(f"route: {case.name}", ["amtool", "config", "routes", "test", f"--config.file={config}",
                                        f"--verify.receivers={','.join(case.receivers)}", *labels])


def receiver_checks(settings: Settings) -> list[CheckResult]:
    """One line per receiver and mode: wired, or not wired and why (:mod:`hux.monitoring.wiring`).

    An enabled receiver that the settings' own mode cannot wire fails (it would never deliver);
    everything else is information.
    """
    results = []
    for mode in wiring.MODES:
        for w in wiring.receiver_wiring(settings, mode):
            enabled = getattr(settings.receivers, w.receiver).enabled
            broken = enabled and not w.wired and mode == settings.stack.mode
            results.append(CheckResult(w.line, not broken, w.detail if broken else ""))
    return results


def run_config_checks(settings: Settings, run_dir: Path | None = None) -> list[CheckResult]:
    """promtool check config/rules, rule unit tests, amtool check-config and the routing cases.

    ``run_dir``: an already rendered native directory (e.g. ``data/run``); without it the
    settings are rendered into a temporary directory first.
    """
    from hux.monitoring.render import native_files

    with tempfile.TemporaryDirectory(prefix="hux-check-") as tmp:
        if run_dir is None:
            run_dir = Path(tmp) / "run"
            files, secrets = native_files(settings, run_dir)
            for rel, text in {**files, **secrets}.items():
                path = run_dir / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                if rel in secrets or rel == "alertmanager.yml":
                    path.chmod(0o600)
        run_dir = Path(run_dir)
        results = [
            _run("promtool check config", ["promtool", "check", "config", str(run_dir / "prometheus.yml")]),
            _run("promtool check rules", ["promtool", "check", "rules",
                                          *(str(p) for p in sorted((run_dir / "rules").glob("*.yml")))]),
            run_rule_tests(),
            _run("amtool check-config", ["amtool", "check-config", str(run_dir / "alertmanager.yml")]),
        ]
        results += [amtool_route_test(run_dir / "alertmanager.yml", case) for case in route_cases(settings)]
    return results + receiver_checks(settings)
