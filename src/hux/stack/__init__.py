"""Running the stack: the native supervisor, the docker path and the deep health check.

Where things are (import them from their modules; this package imports nothing, so
that a command pays only for the modules it uses):

* ``hux up / down / status / restart / reload`` (``hux.stack.cli``), ``hux health`` (``hux.stack.health.cli``);
* ``hux.stack.health``: ``run_health`` / ``HealthReport`` / ``CheckResult`` — the deep check;
* ``hux.stack.native.NativeStack`` — the running supervisor as seen from outside (state, memory, stop);
* ``hux.stack.components.build_plan`` — the command line of every native component for some settings;
* ``hux.stack.plan``: ``StackPaths`` (the runtime layout, ``hux.paths.Layout``) and ``StackPlan``.
"""
