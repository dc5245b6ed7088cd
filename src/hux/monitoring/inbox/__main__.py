import sys

from hux.monitoring.inbox.server import main

sys.exit(main())
