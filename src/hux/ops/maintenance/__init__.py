"""The maintenance routine (the spec's daily, weekly and monthly tasks) as commands: ``hux maintain daily|weekly|monthly``.

Each task builds a ``Report`` (``report.py``) from the live components and
files, rendered as terminal tables or as one self-contained HTML file.
"""

from hux.ops.maintenance.context import MaintenanceContext
from hux.ops.maintenance.daily import daily
from hux.ops.maintenance.monthly import monthly
from hux.ops.maintenance.report import Report, render_html, render_text
from hux.ops.maintenance.weekly import weekly

__all__ = ["MaintenanceContext", "Report", "daily", "weekly", "monthly", "render_text", "render_html"]
