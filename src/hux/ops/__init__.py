"""Operator tasks: backup and restore, the maintenance routine, notification tests.

Where things are (import them from their modules; this package imports nothing, so that a
command pays only for the modules it uses; the CLI in ``hux.ops.cli`` is a thin layer over these):

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
