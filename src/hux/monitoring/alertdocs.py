"""``docs/alerts.md``: every alert with its severity, ``for``, expression and runbook, rendered from the rules.

It is rendered with the committed docker tree (``hux render``), so the list in
the docs is always the list Prometheus runs.
"""

from __future__ import annotations

from hux.monitoring import rules
from hux.monitoring.settings import Settings


def alerts_markdown(settings: Settings) -> str:
    docs = rules.rule_files(settings)
    lines = [
        "# Alerts",
        "",
        "Rendered by `hux render` from the settings (defaults: `src/hux/defaults/monitoring.toml`); do not edit.",
        "What each alert means and what to do: [runbooks.md](runbooks.md). Thresholds, windows and `for`",
        "durations are settings keys under `[alerts]`; the expressions below show the shipped defaults.",
        "",
        "| alert | severity | for | runbook |",
        "|---|---|---|---|",
    ]
    every_rule = [r for doc in docs.values() for group in doc["groups"] for r in group["rules"]]
    alert_rules = [r for r in every_rule if "alert" in r]
    seen = set()
    for rule in alert_rules:
        name = rule["alert"]
        if name in seen:
            continue
        seen.add(name)
        fors = sorted({r.get("for", "0s") for r in alert_rules if r["alert"] == name})
        lines.append(f"| {name} | {rule['labels']['severity']} | {', '.join(fors)} | "
                     f"[runbook](runbooks.md#{rules.runbook_anchor(name)}) |")
    lines += ["", "## Expressions", ""]
    for rule in alert_rules:
        extra = {k: v for k, v in rule["labels"].items() if k not in ("severity", "alert_family")}
        suffix = " (" + ", ".join(f"{k}={v}" for k, v in extra.items()) + ")" if extra else ""
        lines += [f"### {rule['alert']}{suffix}", "", f"{rule['annotations']['summary']}", "", "```promql",
                  rule["expr"].rstrip(), "```", ""]
    lines += ["## Recording rules", "", "| record | expression |", "|---|---|"]
    for rule in (r for r in every_rule if "record" in r):
        expr = " ".join(part.strip() for part in rule["expr"].splitlines()).replace("|", "\\|")
        lines.append(f"| `{rule['record']}` | `{expr}` |")
    return "\n".join(lines) + "\n"
