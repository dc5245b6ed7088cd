#!/usr/bin/env python3
"""Back up Prometheus (TSDB snapshot), Alertmanager silences and the rendered configs.

One timestamped archive with a manifest (sizes, SHA-256 of every file,
Prometheus version, time range covered) lands in ``backup.dir``
(default ``data/backups``); old archives are pruned by ``backup.keep`` /
``backup.keep_days``; the backup metrics for node_exporter are updated.
Arguments go to ``hux backup prometheus`` (see ``--help``).
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

    sys.exit(main(["backup", "prometheus", *sys.argv[1:]]))
