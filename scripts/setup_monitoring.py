#!/usr/bin/env python3
"""Start the monitoring stack with the bot: README command one.

On a fresh Debian/Ubuntu machine this installs what is missing (the
``prometheus``, ``prometheus-alertmanager`` and ``prometheus-node-exporter``
packages when run as root or with sudo; the Python dependencies into
``.venv``), then runs ``hux up``: render configs, start every component, wait
until each is ready and print where everything is. Running it again is safe.
Arguments go to ``hux up`` (see ``hux up --help``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap as boot

if __name__ == "__main__":
    if Path(sys.prefix).resolve() != boot.VENV.resolve():
        boot.ensure_packages(boot.STACK_PACKAGES)
        boot.reexec_in_venv(boot.ensure_venv(), __file__, sys.argv[1:])
    import os

    os.chdir(boot.ROOT)
    from hux.cli import main

    sys.exit(main(["up", *sys.argv[1:]]))
