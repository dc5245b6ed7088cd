"""Stopping and starting one component of the running native stack, for operator tasks.

A Prometheus restore (``hux.ops``) needs Prometheus stopped while it swaps the
data directory, and started again afterwards. ops does not know who runs
Prometheus; the CLI layer hands it a control (``hux.ops.service.ServiceControl``)
built here when the native stack of the home runs Prometheus. It asks the
supervisor to stop and start that one component (request files, see
``hux.stack.supervisor``): the bot, Alertmanager and the rest keep running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hux.ops.errors import OpsError
from hux.paths import Layout
from hux.stack.native import NativeStack, StackError


@dataclass
class SupervisedComponent:
    """``stop()``/``start()`` of one component through the running supervisor (a ``ServiceControl``)."""

    stack: NativeStack
    component: str
    timeout: float = 60.0
    description: str = field(default="", init=False)
    #: why a restore leaves the archived configs alone: the stack renders them from the settings
    configs_managed: str = "the native stack renders its configs from the settings at `hux up`"

    def __post_init__(self) -> None:
        self.description = f"the native stack's supervisor ({self.component} alone)"

    def _ask(self, action: str, state: str, not_pid: int | None = None) -> None:
        try:
            self.stack.request(action, [self.component])
        except StackError as exc:
            raise OpsError(f"cannot {action} {self.component}: {exc}") from None
        if not self.stack.wait_component(self.component, state, self.timeout, not_pid=not_pid):
            raise OpsError(f"the supervisor did not {action} {self.component} within {self.timeout:.0f}s; "
                           f"see {self.stack.paths.supervisor_log}, then `hux restart {self.component}`")

    def stop(self) -> None:
        self._ask("stop", "stopped")

    def start(self) -> None:
        self._ask("start", "running")


def native_control(home: Path, component: str = "prometheus") -> SupervisedComponent | None:
    """A control for ``component`` of the native stack under ``home`` when that stack runs it, else None."""
    stack = NativeStack(Layout(home))
    plan = stack.plan() if stack.running() else None
    if plan is None or component not in plan.names:
        return None
    return SupervisedComponent(stack, component, timeout=max(60.0, plan.component(component).stop_timeout + 30))
