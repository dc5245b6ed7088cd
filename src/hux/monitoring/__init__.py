"""Monitoring as code: settings, Prometheus config and rules, Alertmanager, dashboards, docker tree.

Where things are (import them from their modules; this package imports nothing, so that a
command pays only for the modules it uses):

* ``load_settings`` / ``Settings`` (``hux.monitoring.settings``): the validated settings;
* ``render_native`` / ``render_docker`` / ``validate_native`` (``hux.monitoring.render``);
* ``run_config_checks`` (``hux.monitoring.checks``): promtool/amtool checks and rule/routing tests.
"""
