"""Finding the native programs: Debian's names first, upstream names second.

Each program can be pinned with an environment variable (``HUX_PROMETHEUS_BINARY``,
``HUX_ALERTMANAGER_BINARY``, ``HUX_NODE_EXPORTER_BINARY``, ``HUX_PROMTOOL_BINARY``,
``HUX_AMTOOL_BINARY``, ``HUX_GRAFANA_BINARY``) for installs outside PATH.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

# component -> names to look for, in order (Debian package name first)
CANDIDATES: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "amtool": ("amtool",),
    "node_exporter": ("prometheus-node-exporter", "node_exporter"),
}
# Debian package that provides each program (what setup_monitoring installs)
DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "node_exporter": "prometheus-node-exporter",
}
EXTRA_DIRS = ("/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
GRAFANA_HOMES = ("/usr/share/grafana", "/opt/grafana", "/usr/local/share/grafana")

GRAFANA_HOWTO = (
    "Grafana is not installed, so it is skipped. "
    "To run it: install Grafana (the `grafana` package from apt.grafana.com, or the tarball from "
    "https://grafana.com/grafana/download) so that `grafana` or `grafana-server` is on PATH (or set "
    "HUX_GRAFANA_BINARY and HUX_GRAFANA_HOME), then run `hux up` again; or use the docker path. "
    "Its dashboards are rendered anyway, under data/run/grafana/dashboards."
)


class MissingBinary(Exception):
    """A program the stack needs is not installed. The message says how to get it."""


def env_var(component: str) -> str:
    return f"HUX_{component.upper()}_BINARY"


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


@dataclass(frozen=True)
class GrafanaInstall:
    binary: str
    home: str
    modern: bool   # `grafana server` (Grafana >= 9.x) rather than `grafana-server`

    def argv(self, config_file: Path) -> list[str]:
        head = [self.binary, "server"] if self.modern else [self.binary]
        return [*head, "--homepath", self.home, "--config", str(config_file)]


def _grafana_home(binary: str) -> str | None:
    pinned = os.environ.get("HUX_GRAFANA_HOME")
    candidates = [pinned] if pinned else []
    # tarball layout: <home>/bin/grafana
    candidates.append(str(Path(binary).resolve().parent.parent))
    candidates.extend(GRAFANA_HOMES)
    for home in candidates:
        if home and (Path(home) / "conf" / "defaults.ini").is_file():
            return home
    return None


def find_grafana() -> GrafanaInstall | None:
    """The Grafana server install, or None (then the stack runs without it)."""
    pinned = os.environ.get(env_var("grafana"))
    search = os.pathsep.join([os.environ.get("PATH", ""), *EXTRA_DIRS, *(f"{h}/bin" for h in GRAFANA_HOMES)])
    options: list[tuple[str, bool]] = []
    if pinned:
        options.append((pinned, Path(pinned).name != "grafana-server"))
    else:
        for name, modern in (("grafana", True), ("grafana-server", False)):
            found = shutil.which(name, path=search)
            if found:
                options.append((found, modern))
    for binary, modern in options:
        if not os.access(binary, os.X_OK):
            continue
        home = _grafana_home(binary)
        if home:
            return GrafanaInstall(binary=binary, home=home, modern=modern)
    return None
