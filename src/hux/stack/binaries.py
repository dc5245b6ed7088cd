"""Finding the native programs: Debian's names first, upstream names second.

Each program can be pinned with an environment variable (``HUX_PROMETHEUS_BINARY``,
``HUX_ALERTMANAGER_BINARY``, ``HUX_NODE_EXPORTER_BINARY``, ``HUX_PROMTOOL_BINARY``,
``HUX_AMTOOL_BINARY``, ``HUX_GRAFANA_BINARY``) for installs outside PATH.
"""

from __future__ import annotations

import os
import shutil

# Grafana's install and the decision whether it runs live with the settings (monitoring reads them too)
from hux.monitoring.grafana_install import EXTRA_DIRS, env_var
from hux.monitoring.grafana_install import GrafanaInstall as GrafanaInstall  # re-exported (`X as X`)
from hux.monitoring.grafana_install import find_grafana as find_grafana

# component -> names to look for, in order (Debian package name first)
CANDIDATES: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "amtool": ("amtool",),
    "node_exporter": ("prometheus-node-exporter", "node_exporter"),
    "victoria_metrics": ("victoria-metrics", "victoria-metrics-prod"),   # topology "ha"
}
# Debian package that provides each program (what setup_monitoring installs)
DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "node_exporter": "prometheus-node-exporter",
    "victoria_metrics": "victoria-metrics",
}
class MissingBinary(Exception):
    """A program the stack needs is not installed. The message says how to get it."""


def find(component: str) -> str | None:
    pinned = os.environ.get(env_var(component))
    if pinned:
        return pinned if os.access(pinned, os.X_OK) else None
    search = os.pathsep.join([os.environ.get("PATH", ""), *EXTRA_DIRS])
    for name in CANDIDATES[component]:
        found = shutil.which(name, path=search)
        if found:
            return found
    return None


def require(component: str) -> str:
    found = find(component)
    if found:
        return found
    names = " or ".join(f"`{n}`" for n in CANDIDATES[component])
    pinned = os.environ.get(env_var(component))
    where = f"{env_var(component)}={pinned} is not an executable file; fix it or unset it. " if pinned else ""
    raise MissingBinary(
        f"{component} is not installed ({names} not found on PATH). {where}"
        f"On Debian/Ubuntu: `sudo apt-get install {DEBIAN_PACKAGES[component]}` "
        f"(or run `python3 scripts/setup_monitoring.py` as root, which installs it); elsewhere put the upstream "
        f"binary on PATH or set {env_var(component)}; or use the docker path (stack.mode = \"docker\")."
    )
