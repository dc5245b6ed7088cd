"""``python -m hux …`` is the same as the ``hux`` command."""

import sys

from hux.cli import main

sys.exit(main())
