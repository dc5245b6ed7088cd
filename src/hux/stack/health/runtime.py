"""What differs between the native stack and the docker path, chosen once per run.

Natively the supervisor runs the components: its state says why one is down,
Grafana runs as :func:`hux.monitoring.grafana_install.grafana_decision` says, Prometheus, Alertmanager and
node_exporter want the stack's credentials, and the bot's ``/ready`` is on the
host. Under docker compose none of that holds: the components are reached on the
ports compose publishes (``stack.publish_address``), containers are diagnosed with
``docker compose logs <service>``, Grafana always runs, the components run without auth
inside their network and the bot is not published on the host (its scrape
target and metric families speak for it). Each check asks the runtime; none
tests the mode itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from hux.monitoring import auth as stack_auth
from hux.monitoring.grafana_install import grafana_decision
from hux.monitoring.prometheus_config import DOCKER_SERVICES
from hux.monitoring.settings import Settings
from hux.paths import Layout
from hux.stack.components import LOG_FILES
from hux.stack.docker import DockerUnavailable, find_compose_file
from hux.stack.plan import read_state

START_FIX = "start it: `hux up` (or `python3 scripts/setup_monitoring.py`)"


class NativeRuntime:
    name = "native"
    #: the bot's /ready is reachable from here
    probes_bot = True

    def url(self, settings: Settings, component: str) -> str:
        """Where this machine reaches a component: natively its listen address (``stack.bind_address``)."""
        return settings.url(component)

    def client_auth(self, settings: Settings, paths: Layout) -> httpx.Auth | None:
        """The stack's basic auth, sent only to Prometheus, Alertmanager and node_exporter (never to the bot,
        Grafana or a receiver's URL)."""
        return stack_auth.client_auth(paths.data, [self.url(settings, name) for name in stack_auth.components(settings.stack)])

    def dashboards_dir(self, paths: Layout) -> Path:
        return paths.dashboards_dir

    def supervisor_state(self, paths: Layout) -> dict[str, Any]:
        return read_state(paths.state_file) or {}

    def grafana_expected(self, settings: Settings, supervised: bool) -> tuple[bool, str]:
        """(whether Grafana should be running, why not / why it cannot): the one Grafana decision for this mode."""
        if supervised:
            return True, ""
        decision = grafana_decision(settings, mode=self.name)
        if decision.error:   # grafana.enabled = true without an install
            return True, decision.error
        return decision.run, decision.reason

    def down_fix(self, paths: Layout, name: str) -> tuple[str, str]:
        """(extra reason, fix) for a component that is not ready."""
        log = paths.logs / LOG_FILES[name]
        state = self.supervisor_state(paths)
        if not (state.get("supervisor") or {}).get("running"):
            return " (the stack is not running)", START_FIX
        supervised = (state.get("components") or {}).get(name)
        if supervised is None:
            return "", f"see {log}"
        bits = [f"supervisor: {supervised.get('state')}", f"restarts {supervised.get('restarts', 0)}"]
        if supervised.get("last_exit"):
            bits.append(f"last exit: {supervised['last_exit']}")
        if supervised.get("error"):
            bits.append(supervised["error"])
        return (f" ({'; '.join(bits)})",
                f"see {log}; the supervisor restarts it with backoff (`hux restart {name}` to force)")

    def supervised(self, paths: Layout, name: str) -> dict[str, Any] | None:
        state = self.supervisor_state(paths)
        if not (state.get("supervisor") or {}).get("running"):
            return None
        return (state.get("components") or {}).get(name)


class DockerRuntime(NativeRuntime):
    name = "docker"
    probes_bot = False

    def url(self, settings: Settings, component: str) -> str:
        """The host port compose publishes it on (``stack.publish_address``), the HA replicas and members too."""
        return settings.published_url(component)

    def client_auth(self, settings: Settings, paths: Layout) -> httpx.Auth | None:
        return None

    def dashboards_dir(self, paths: Layout) -> Path:
        try:
            return find_compose_file().parent / "docker" / "grafana" / "dashboards"
        except DockerUnavailable:   # no compose file: the dashboards are built instead
            return paths.dashboards_dir

    def supervisor_state(self, paths: Layout) -> dict[str, Any]:
        return {}

    def down_fix(self, paths: Layout, name: str) -> tuple[str, str]:
        # compose knows the service (prometheus-b, node-exporter), not the component name
        service = DOCKER_SERVICES.get(name, name)
        return "", f"`docker compose logs {service}`; `hux restart {service}`"


Runtime = NativeRuntime
RUNTIMES: dict[str, NativeRuntime] = {"native": NativeRuntime(), "docker": DockerRuntime()}


def runtime_for(mode: str) -> NativeRuntime:
    try:
        return RUNTIMES[mode]
    except KeyError:
        raise ValueError(f"unknown stack mode {mode!r}: use one of {', '.join(RUNTIMES)}") from None


__all__ = ["DockerRuntime", "NativeRuntime", "RUNTIMES", "Runtime", "runtime_for"]
