"""Where the project keeps runtime state: one home, with data/ and logs/ under it.

The home is ``$HUX_HOME`` when set, else the current directory (the repository
checkout when run from the README). Tests point ``HUX_HOME`` at a temporary
directory so they never touch an operator's data.

:class:`Layout` is the one place that says where each runtime file lives
(docs/architecture.md, "Runtime layout"); every package reads it rather than
joining path names of its own. Settings that move a file (``backup.dir``,
``grafana.admin_password_file``) are resolved here too, against the home.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: the credentials' directory under data/ (``Layout.auth_dir``; its web.yml names it relative to itself)
AUTH_DIR_NAME = "auth"
#: the scrape target files under data/ (``Layout.targets_dir``; ``hux targets`` edits them, Prometheus watches them)
TARGETS_DIR_NAME = "targets"
#: inside a run directory (``Layout.run_dir``, or wherever ``hux render`` is pointed): what Grafana is provisioned
#: with, and the dashboards that provisioning names
RUN_GRAFANA_PROVISIONING = "grafana/provisioning"
RUN_GRAFANA_DASHBOARDS = "grafana/dashboards"


def home() -> Path:
    return Path(os.environ.get("HUX_HOME") or os.getcwd()).resolve()


@dataclass(frozen=True)
class Layout:
    """The runtime layout under one home (native mode; the docker path mounts the same data/ tree)."""

    home: Path

    @classmethod
    def current(cls) -> "Layout":
        """The layout of ``$HUX_HOME`` (else the current directory)."""
        return cls(home())

    def resolve(self, value: str | Path) -> Path:
        """A path from the settings or the command line: ``~`` expanded, relative ones taken from the home."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.home / path

    # --- top level -------------------------------------------------------------------------------

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def component_data(self, name: str) -> Path:
        """A component's own state directory (``data/<name>``): prometheus, alertmanager, grafana, bot."""
        return self.data / name

    def web_config_file(self, component: str) -> Path:
        """Where an operator may put a component's own web config (basic auth / TLS): ``web/<component>.yml``."""
        return self.home / "web" / f"{component}.yml"

    # --- rendered configuration and credentials ----------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """The rendered native configuration (``hux render``, ``hux up``): prometheus.yml, rules/, grafana/..."""
        return self.data / "run"

    @property
    def dashboards_dir(self) -> Path:
        """The rendered Grafana dashboards (what Grafana is provisioned with; ``hux dashboards snapshot`` draws them)."""
        return self.run_dir / RUN_GRAFANA_DASHBOARDS

    @property
    def targets_dir(self) -> Path:
        """The file-based service discovery files (``hux targets``): node.json, bot.json; Prometheus re-reads them."""
        return self.data / TARGETS_DIR_NAME

    @property
    def snapshots_dir(self) -> Path:
        """Where ``hux dashboards snapshot`` writes its HTML pages unless told otherwise."""
        return self.data / "snapshots"

    @property
    def auth_dir(self) -> Path:
        """The stack's basic-auth credentials (``hux.monitoring.auth``): password, web.yml..."""
        return self.data / AUTH_DIR_NAME

    @property
    def default_grafana_password_file(self) -> Path:
        """The Grafana admin password `hux up` generates when ``grafana.admin_password_file`` is empty."""
        return self.component_data("grafana") / "admin_password"

    def grafana_password_file(self, configured: str | Path = "") -> Path:
        """The Grafana admin password file: ``grafana.admin_password_file`` when set, else the default."""
        return self.resolve(configured) if str(configured) else self.default_grafana_password_file

    # --- data of the components --------------------------------------------------------------------

    @property
    def prometheus_data(self) -> Path:
        """Prometheus's TSDB (``--storage.tsdb.path``)."""
        return self.component_data("prometheus")

    @property
    def textfile_dir(self) -> Path:
        """node_exporter's textfile collector directory (backup metrics, refusal counts)."""
        return self.component_data("node_exporter") / "textfile"

    #: ``backup.dir``'s default, relative to the home
    DEFAULT_BACKUP_DIR = "data/backups"

    def backup_dir(self, configured: str | Path = "") -> Path:
        """Where backup archives go: ``backup.dir`` (relative to the home), else data/backups."""
        return self.resolve(configured or self.DEFAULT_BACKUP_DIR)

    @property
    def inbox_dir(self) -> Path:
        """The alert inbox's index (``hux.monitoring.inbox``): data/inbox/index.sqlite3."""
        return self.component_data("inbox")

    @property
    def alerts_log(self) -> Path:
        """Every notification the alert inbox received, as JSON lines (rotated: alerts.log.1, ...)."""
        return self.logs / "alerts.log"

    # --- the native supervisor ---------------------------------------------------------------------

    @property
    def supervisor_dir(self) -> Path:
        return self.data / "supervisor"

    @property
    def plan_file(self) -> Path:
        return self.supervisor_dir / "plan.json"

    @property
    def state_file(self) -> Path:
        return self.supervisor_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.supervisor_dir / "supervisor.lock"

    @property
    def pid_file(self) -> Path:
        return self.supervisor_dir / "supervisor.pid"

    @property
    def requests_dir(self) -> Path:
        return self.supervisor_dir / "requests"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisor.log"


def data_dir() -> Path:
    return Layout.current().data


def log_dir() -> Path:
    return Layout.current().logs


def private_dir(path: Path, *, tighten: bool | None = None) -> Path:
    """``path`` as a directory only its owner can enter (0700).

    Missing directories (parents too) are created 0700. An existing one is
    tightened when ``tighten`` says so, by default when it lies inside the home
    (our layout: data/, logs/, ...); elsewhere it is the operator's and left as it is.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass
    if missing or (_inside_home(path) if tighten is None else tighten):
        mode = path.stat().st_mode & 0o7777
        if mode & 0o077:
            os.chmod(path, mode & ~0o077)
    return path


def private_file(path: Path) -> Path:
    """``path`` as a file only its owner can read (0600): created empty when missing, tightened otherwise."""
    path = Path(path)
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        mode = os.fstat(fd).st_mode & 0o7777
        if mode & 0o077:
            os.fchmod(fd, mode & ~0o077)
    finally:
        os.close(fd)
    return path


def _inside_home(path: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(home()) and Path(path).resolve() != home()
    except OSError:
        return False
