"""Running the stack: the native supervisor, the docker path and the deep health check.

Public surface:

* ``hux up / down / status / restart / reload / health`` (``hux.stack.cli``);
* :func:`run_health` / :class:`HealthReport` / :class:`CheckResult` — the deep check;
* :class:`NativeStack` — the running supervisor as seen from outside (state, memory, stop);
* :func:`build_plan` — the command line of every native component for some settings.
"""

from hux.stack.components import build_plan
from hux.stack.health import CheckResult, HealthReport, run_health
from hux.stack.native import NativeStack, StackError
from hux.stack.plan import StackPaths, StackPlan

__all__ = ["build_plan", "CheckResult", "HealthReport", "run_health", "NativeStack", "StackError", "StackPaths", "StackPlan"]
