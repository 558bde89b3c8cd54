"""Static HTML reports, the accuracy–tokens frontier and the behaviour-shift analysis.

``build_report`` writes the HTML; ``frontier``/``frontier_rows`` and ``behaviour_shift`` are
usable on their own. jinja2 and matplotlib are imported lazily (``pip install 'tracestop[eval]'``).
"""

from __future__ import annotations

from tracestop.report.build import ReportResult, build_report, shift_only, trace_slug
from tracestop.report.frontier import FRONTIER_GRID, frontier, frontier_rows, frontier_specs
from tracestop.report.shift import ShiftTable, TraceShift, behaviour_shift, family_of

__all__ = [
    "FRONTIER_GRID",
    "ReportResult",
    "ShiftTable",
    "TraceShift",
    "behaviour_shift",
    "build_report",
    "family_of",
    "frontier",
    "frontier_rows",
    "frontier_specs",
    "shift_only",
    "trace_slug",
]
