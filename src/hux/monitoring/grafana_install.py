"""Whether Grafana runs with this stack: the one decision, and where its native install is.

Docker: always (compose runs it). Native: ``grafana.enabled`` — false never,
true always (``hux up`` refuses to start when it is not installed), "auto" when
a Grafana server install is found: ``grafana`` (Grafana >= 9) or
``grafana-server`` on PATH (or ``HUX_GRAFANA_BINARY``) with its home directory
(``conf/defaults.ini``; ``HUX_GRAFANA_HOME``), without which it cannot start.
Rendering, the native plan, backups and ``hux health`` all ask
:func:`grafana_decision`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # the settings module asks this one; typing only, no import cycle at run time
    from hux.monitoring.settings import Settings

#: directories searched after PATH for the native programs
EXTRA_DIRS = ("/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
GRAFANA_HOMES = ("/usr/share/grafana", "/opt/grafana", "/usr/local/share/grafana")

GRAFANA_HOWTO = (
    "Grafana is not installed, so it is skipped. "
    "To run it: install Grafana (the `grafana` package from apt.grafana.com, or the tarball from "
    "https://grafana.com/grafana/download) so that `grafana` or `grafana-server` is on PATH (or set "
    "HUX_GRAFANA_BINARY and HUX_GRAFANA_HOME), then run `hux up` again; or use the docker path. "
    "Its dashboards are rendered anyway, under data/run/grafana/dashboards."
)


def env_var(component: str) -> str:
    """The variable that pins a program's path, e.g. ``HUX_GRAFANA_BINARY``."""
    return f"HUX_{component.upper()}_BINARY"


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


@dataclass(frozen=True)
class GrafanaDecision:
    install: GrafanaInstall | None
    run: bool
    reason: str   # why it is skipped, when it is
    #: grafana.enabled = true natively but no install: `hux up` refuses to start with this message
    error: str = ""


def grafana_decision(settings: "Settings", mode: str | None = None) -> GrafanaDecision:
    """Whether Grafana runs with the stack of ``settings`` (``mode``: its stack.mode unless given)."""
    if (mode or settings.stack.mode) == "docker":
        return GrafanaDecision(None, True, "")
    return native_decision(settings.grafana.enabled)


def native_decision(wanted: bool | str) -> GrafanaDecision:
    """The native half of :func:`grafana_decision`, from ``grafana.enabled`` alone."""
    if wanted is False:
        return GrafanaDecision(None, False, "Grafana is disabled (grafana.enabled = false)")
    install = find_grafana()
    if install is None:
        if wanted is True:
            message = "grafana.enabled = true but " + GRAFANA_HOWTO[0].lower() + GRAFANA_HOWTO[1:]
            return GrafanaDecision(None, False, message, error=message)
        return GrafanaDecision(None, False, GRAFANA_HOWTO)
    return GrafanaDecision(install, True, "")
