"""Matplotlib, imported lazily with the file-only Agg backend, and figures as bytes."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_bytes(fig: Any, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes (no timestamp or software tag, so output is stable)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata={"Software": None} if fmt == "png" else None)
    return buf.getvalue()
