#!/usr/bin/env python3
"""Back up Grafana through its HTTP API: folders (with hierarchy), dashboards
(with folder placement), datasources (listing the secrets to re-enter after a
restore), alert rules, contact points and notification policies.

Credentials from the environment: ``HUX_GRAFANA_TOKEN`` (service-account
token), else ``HUX_GRAFANA_USER`` / ``HUX_GRAFANA_PASSWORD`` or the admin
password file the stack generated. Arguments go to ``hux backup grafana``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap as boot

if __name__ == "__main__":
    if Path(sys.prefix).resolve() != boot.VENV.resolve():
        boot.reexec_in_venv(boot.ensure_venv(), __file__, sys.argv[1:])
    import os

    os.chdir(boot.ROOT)
    from hux.cli import main

    sys.exit(main(["backup", "grafana", *sys.argv[1:]]))
