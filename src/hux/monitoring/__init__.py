"""Monitoring as code: settings, Prometheus config and rules, Alertmanager, dashboards, docker tree.

Public surface:

* ``load_settings`` / ``Settings`` (``hux.monitoring.settings``): the validated settings;
* ``render_native`` / ``render_docker`` / ``validate_native`` (``hux.monitoring.render``);
* ``run_config_checks`` (``hux.monitoring.checks``): promtool/amtool checks and rule/routing tests.
"""

from hux.monitoring.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
