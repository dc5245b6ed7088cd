#!/usr/bin/env python3
"""Start the monitoring stack with the bot: README command one.

On a fresh Debian/Ubuntu machine this installs what is missing (the
``prometheus``, ``prometheus-alertmanager`` and ``prometheus-node-exporter``
packages, and ``victoria-metrics`` for ``stack.topology = "ha"``, when run as root or with sudo; the Python dependencies into
``.venv``), then runs ``hux up``: render configs, start every component, wait
until each is ready and print where everything is. Running it again is safe.

Natively, as root on Debian/Ubuntu without Grafana, it first installs Grafana
OSS from Grafana's APT repository (signed-by keyring, the version pinned in
``grafana.apt_version``); ``--no-grafana`` (or ``grafana.install = false``)
skips that. A failed install is explained and the setup goes on without
Grafana (``hux.stack.grafana_apt``). Other arguments go to ``hux up`` (see
``hux up --help``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap as boot

if __name__ == "__main__":
    if Path(sys.prefix).resolve() != boot.VENV.resolve():
        boot.ensure_packages({**boot.STACK_PACKAGES, **(boot.HA_PACKAGES if boot.wants_ha() else {})})
        boot.reexec_in_venv(boot.ensure_venv(), __file__, sys.argv[1:])
    import os

    os.chdir(boot.ROOT)
    from hux.cli import main
    from hux.config import ConfigError
    from hux.monitoring.settings import load_settings
    from hux.stack.grafana_apt import setup_step

    args = sys.argv[1:]
    try:
        args, said = setup_step(load_settings(), args)
    except ConfigError:
        said = ""   # `hux up` reports the bad setting itself, with the fix
        args = [arg for arg in args if arg != "--no-grafana"]
    if said:
        boot.say(said)
    sys.exit(main(["up", *args]))
