"""The alert inbox: a local receiver every Alertmanager route sends to, kept on disk for ``hux alerts``.

``payload`` validates the webhook body, ``store`` keeps it (``logs/alerts.log``
and ``data/inbox/index.sqlite3``), ``server`` is the process the supervisor runs
(``python -m hux.monitoring.inbox``).
"""

from hux.monitoring.inbox.payload import Alert, Notification, Rejected, parse
from hux.monitoring.inbox.store import WATCHDOG, Entry, InboxStore, Limits, StoreError, index_file

__all__ = ["WATCHDOG", "Alert", "Entry", "InboxStore", "Limits", "Notification", "Rejected", "StoreError",
           "index_file", "parse"]
