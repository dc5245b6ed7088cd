"""Operator tasks: backup and restore, the maintenance routine, notification tests.

Public surface (the CLI in ``hux.ops.cli`` is a thin layer over these):

* ``backup_prometheus`` / ``restore_prometheus`` (``hux.ops.prometheus_backup``): TSDB
  snapshot + silences + configs into one verified archive, and back;
* ``backup_grafana`` / ``restore_grafana`` (``hux.ops.grafana_backup``): Grafana's
  objects through its HTTP API;
* ``archive``: the archive format (manifest, checksums, retention);
* ``textfile``: the backup metrics file for node_exporter;
* ``ServiceControl`` and friends (``hux.ops.service``): how a restore stops and
  starts Prometheus;
* ``maintenance``: the daily, weekly and monthly reports;
* ``notify_test`` (``hux.ops.notify``): a synthetic alert through every receiver.
"""

from hux.ops.errors import ApiError, ArchiveError, BackupError, OpsError, RestoreError
from hux.ops.grafana_backup import GrafanaCredentials, backup_grafana, restore_grafana
from hux.ops.notify import notify_test
from hux.ops.prometheus_backup import BackupResult, RestoreReport, backup_prometheus, restore_prometheus
from hux.ops.service import CallableControl, CommandControl, LocalPrometheus, ServiceControl

__all__ = [
    "ApiError", "ArchiveError", "BackupError", "OpsError", "RestoreError",
    "BackupResult", "RestoreReport", "backup_prometheus", "restore_prometheus",
    "GrafanaCredentials", "backup_grafana", "restore_grafana",
    "notify_test", "CallableControl", "CommandControl", "LocalPrometheus", "ServiceControl",
]
