"""``docs/alerts.md``: every alert with its severity, ``for``, expression and runbook, rendered from the rules.

It is rendered with the committed docker tree (``hux render``), so the list in
the docs is always the list Prometheus runs.
"""

from __future__ import annotations

from hux.monitoring import rules
from hux.monitoring.settings import Settings

#: Every alert of node-mixin, prometheus-mixin and alertmanager-mixin that applies outside Kubernetes:
#: (mixin, its alert, ours that cover it, note). No alert of ours: the note says why.
COVERAGE: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("node", "NodeFilesystemSpaceFillingUp", ("HostDiskSpaceLow",), "`reason=predicted_full`"),
    ("node", "NodeFilesystemAlmostOutOfSpace", ("HostDiskSpaceLow",),
     "`reason=low_free_space`; a warning only, as the spec's \"low disk space\" is"),
    ("node", "NodeFilesystemFilesFillingUp", ("HostInodesLow",), "`reason=predicted_exhausted`"),
    ("node", "NodeFilesystemAlmostOutOfFiles", ("HostInodesLow", "HostInodesExhausted"), "5 % warning, 3 % critical"),
    ("node", "NodeFilesystemHasErrors", (),
     "not covered: `node_filesystem_device_error` means statfs failed on a mount (a stale NFS or FUSE mount); "
     "the bot's hosts have local disks only, and a failing one shows as HostDiskSpaceLow/PrometheusTsdbFailing"),
    ("node", "NodeNetworkReceiveErrs", ("HostNetworkErrors",), "`direction=receive`"),
    ("node", "NodeNetworkTransmitErrs", ("HostNetworkErrors",), "`direction=transmit`"),
    ("node", "NodeHighNumberConntrackEntriesUsed", ("HostConntrackNearLimit",), ""),
    ("node", "NodeTextFileCollectorScrapeError", ("HostTextfileCollectorError",), "the backup status lives there"),
    ("node", "NodeClockSkewDetected", ("HostClockSkew",), ""),
    ("node", "NodeClockNotSynchronising", ("HostClockNotSynchronising",), ""),
    ("node", "NodeRAIDDegraded", (),
     "not covered: node_exporter 1.5 exposes `node_md_*` only for Linux software RAID in /proc/mdstat; the "
     "supported hosts (VMs, cloud volumes) have none, so the rule could never be tested on real series"),
    ("node", "NodeRAIDDiskFailure", (), "not covered: as NodeRAIDDegraded"),
    ("node", "NodeFileDescriptorLimit", ("FileDescriptorsNearLimit", "FileDescriptorsExhausted"),
     "`scope=host`; `scope=process` adds each of our processes (`process_open_fds / process_max_fds`)"),
    ("node", "NodeCPUHighUsage", ("HostCpuSaturated",), "`reason=cpu_busy`; a warning (the mixin's info)"),
    ("node", "NodeSystemSaturation", ("HostCpuSaturated",), "`reason=load`"),
    ("node", "NodeMemoryMajorPagesFaults", ("HostMemoryMajorPageFaults",), ""),
    ("node", "NodeMemoryHighUtilization", ("HostMemoryHigh",), "critical at 90 %, as the spec asks"),
    ("node", "NodeDiskIOSaturation", ("HostDiskIoSaturated",), ""),
    ("node", "NodeSystemdServiceFailed", (),
     "not covered: the systemd collector is off by default in node_exporter 1.5 and the stack's components run "
     "under its own supervisor, not as systemd units; ServiceDown and ServiceCrashlooping watch them"),
    ("node", "NodeBondingDegraded", (),
     "not covered: `node_bonding_*` exist only on hosts with bonded interfaces; single-NIC VMs have none"),
    ("node", "NodeNetworkInterfaceFlapping", ("HostNetworkInterfaceFlapping",), ""),
    ("node", "(OOM kills: no mixin alert)", ("HostOomKill",), "`node_vmstat_oom_kill` increasing"),
    ("prometheus", "PrometheusBadConfig", ("PrometheusConfigReloadFailed",),
     "a warning here: `hux reload` validates first, and Prometheus keeps running the previous configuration"),
    ("prometheus", "PrometheusSDRefreshFailure", (),
     "not covered: it counts refresh-based discovery (DNS, HTTP, cloud APIs); the stack uses static and "
     "file-based targets, whose failures show as ServiceDown/BotAbsent"),
    ("prometheus", "PrometheusNotificationQueueRunningFull", ("PrometheusNotificationQueueFull",), ""),
    ("prometheus", "PrometheusErrorSendingAlertsToSomeAlertmanagers", ("PrometheusErrorSendingAlerts",), ""),
    ("prometheus", "PrometheusErrorSendingAlertsToAnyAlertmanager", ("PrometheusAlertmanagerUnreachable",),
     "`reason=send_errors`: every Alertmanager fails"),
    ("prometheus", "PrometheusNotConnectedToAlertmanagers", ("PrometheusAlertmanagerUnreachable",),
     "`reason=none_discovered`; critical: nobody would be notified"),
    ("prometheus", "PrometheusTSDBReloadsFailing", ("PrometheusTsdbFailing",), "`reason=reload`"),
    ("prometheus", "PrometheusTSDBCompactionsFailing", ("PrometheusTsdbFailing",),
     "`reason=compaction`; also head truncations, WAL truncations, checkpoints, and PrometheusTsdbWalCorrupted"),
    ("prometheus", "PrometheusNotIngestingSamples", ("PrometheusNotIngestingSamples",), ""),
    ("prometheus", "PrometheusDuplicateTimestamps", ("PrometheusScrapeSamplesRejected",), "`reason=duplicate_timestamp`"),
    ("prometheus", "PrometheusOutOfOrderTimestamps", ("PrometheusScrapeSamplesRejected",), "`reason=out_of_order`"),
    ("prometheus", "PrometheusRemoteStorageFailures", ("PrometheusRemoteWriteFailing", "RemoteWriteSamplesDropped"),
     "HA topology only (the single one has no `remote_write`): retried sends, and samples lost for good"),
    ("prometheus", "PrometheusRemoteWriteBehind", ("PrometheusRemoteWriteBehind",), "HA topology only"),
    ("prometheus", "PrometheusRemoteWriteDesiredShards", (),
     "not covered: shards stuck at their maximum show as PrometheusRemoteWriteBehind, which says what it costs"),
    ("prometheus", "(one replica of an HA pair down: no mixin alert)", ("PrometheusReplicaDown",),
     "HA topology: a warning, the pair still alerts and writes"),
    ("prometheus", "PrometheusRuleFailures", ("PrometheusRuleEvaluationFailures",),
     "a warning here: `hux check-config` runs every rule through promtool before a reload"),
    ("prometheus", "PrometheusMissingRuleEvaluations", ("PrometheusMissingRuleEvaluations",),
     "and PrometheusRuleGroupSlow (a group slower than its interval)"),
    ("prometheus", "PrometheusTargetLimitHit", ("PrometheusScrapeLimitHit",), "`reason=target_limit`"),
    ("prometheus", "PrometheusLabelLimitHit", ("PrometheusScrapeLimitHit",), "`reason=label_limit`"),
    ("prometheus", "PrometheusScrapeBodySizeLimitHit", ("PrometheusScrapeLimitHit",), "`reason=body_size`"),
    ("prometheus", "PrometheusScrapeSampleLimitHit", ("PrometheusScrapeLimitHit",), "`reason=sample_limit`"),
    ("prometheus", "PrometheusTargetSyncFailure", ("PrometheusTargetSyncFailing",), ""),
    ("prometheus", "PrometheusHighQueryLoad", ("PrometheusHighQueryLoad",), ""),
    ("prometheus", "PrometheusKubernetesListWatchFailures", (), "not applicable: Kubernetes only"),
    ("alertmanager", "AlertmanagerFailedReload", ("AlertmanagerConfigReloadFailed",),
     "a warning here: the previous configuration keeps routing"),
    ("alertmanager", "AlertmanagerMembersInconsistent", ("AlertmanagerClusterInconsistent",), "`reason=members`"),
    ("alertmanager", "AlertmanagerConfigInconsistent", ("AlertmanagerClusterInconsistent",), "`reason=config`"),
    ("alertmanager", "AlertmanagerFailedToSendAlerts",
     ("AlertmanagerNotificationsFailing", "AlertmanagerMemberNotificationsFailing"),
     "critical here: with one Alertmanager a failing integration is a silent channel; in the HA topology one "
     "member failing while its peers succeed is a warning"),
    ("alertmanager", "AlertmanagerClusterFailedToSendAlerts", ("AlertmanagerNotificationsFailing",),
     "single topology: the one Alertmanager is the cluster; HA: every member fails"),
    ("alertmanager", "AlertmanagerClusterDown", ("ServiceDown", "AlertmanagerClusterMembersMissing"),
     "`job=alertmanager`; in the HA topology a member down while others run is a warning"),
    ("alertmanager", "AlertmanagerClusterCrashlooping", ("ServiceCrashlooping",),
     "for every process of the stack, not only Alertmanager"),
)


def coverage_markdown() -> list[str]:
    lines = [
        "## Coverage of the monitoring mixins",
        "",
        "Every alert of node-mixin, prometheus-mixin and alertmanager-mixin that applies outside Kubernetes, and",
        "ours that covers it. Thresholds follow the mixins unless the note says otherwise.",
        "",
        "| mixin | mixin alert | ours | note |",
        "|---|---|---|---|",
    ]
    for mixin, theirs, ours, note in COVERAGE:
        cell = ", ".join(f"[{name}](runbooks.md#{rules.runbook_anchor(name)})" for name in ours) or "—"
        lines.append(f"| {mixin} | {theirs} | {cell} | {note or '-'} |")
    return lines + [""]


def alerts_markdown(settings: Settings) -> str:
    docs = rules.rule_files(settings)
    # the HA layer's group is listed whatever the topology (marked: it runs only with stack.topology = "ha")
    docs.setdefault(rules.HA_RULE_FILE, rules.rule_files(settings.with_topology("ha"))[rules.HA_RULE_FILE])
    lines = [
        "# Alerts",
        "",
        "Rendered by `hux render` from the settings (defaults: `src/hux/defaults/monitoring.toml`); do not edit.",
        "What each alert means and what to do: [runbooks.md](runbooks.md). Thresholds, windows and `for`",
        "durations are settings keys under `[alerts]`; the expressions below show the shipped defaults.",
        f"The `{rules.HA_GROUP}` alerts (the last rows) run only with `stack.topology = \"ha\"`; there, ServiceDown",
        "leaves the replicas, the members and VictoriaMetrics to them, and AlertmanagerNotificationsFailing",
        "pages only when every member fails.",
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
    lines += [""] + coverage_markdown()
    lines += ["## Expressions", ""]
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
