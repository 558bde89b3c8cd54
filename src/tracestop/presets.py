"""Named presets beyond the built-in ones, kept in a JSON file (``tracestop calibrate`` writes
there): ``$TRACESTOP_PRESETS``, else ``$XDG_CONFIG_HOME/tracestop/presets.json``
(``~/.config/tracestop/presets.json`` when ``XDG_CONFIG_HOME`` is unset), the same file whatever
the working directory. README.md and docs/policies.md say so.

The file maps a name to a spec, or to ``{"math": spec, "choice": spec, "yesno": spec, "*": spec}``
(optionally with ``"benchmark:NAME"`` keys), plus an optional ``"_meta"`` object describing
how each preset was chosen.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tracestop.errors import DataError
from tracestop.policies import PRESETS, Preset, parse_policy

__all__ = ["PRESETS_ENV", "load_presets", "presets_path", "save_preset"]

PRESETS_ENV = "TRACESTOP_PRESETS"


def presets_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$TRACESTOP_PRESETS``, else ``$XDG_CONFIG_HOME/tracestop/presets.json``
    (``~/.config/tracestop/presets.json``)."""
    if path:
        return Path(path)
    if os.environ.get(PRESETS_ENV):
        return Path(os.environ[PRESETS_ENV])
    config = os.environ.get("XDG_CONFIG_HOME")
    base = Path(config) if config and Path(config).is_absolute() else Path.home() / ".config"
    return base / "tracestop" / "presets.json"


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"presets file {path} is not valid JSON ({e}): fix or delete it") from None
    if not isinstance(doc, dict):
        raise DataError(f"presets file {path} must hold a JSON object of name → spec")
    return doc


def load_presets(path: str | os.PathLike[str] | None = None) -> dict[str, Preset]:
    """Built-in presets updated with the user's file; every entry is checked."""
    p = presets_path(path)
    out: dict[str, Preset] = dict(PRESETS)
    for name, value in _read(p).items():
        if name.startswith("_"):
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if not k.startswith("_")}
            if not all(isinstance(v, str) for v in value.values()):
                raise DataError(f"presets file {p}: preset {name!r} must map keys to spec strings")
        elif not isinstance(value, str):
            raise DataError(f"presets file {p}: preset {name!r} must be a spec or a mapping")
        out[name] = value
    for name, value in out.items():
        entries: list[tuple[str | None, str]] = (
            [(None, value)] if isinstance(value, str) else list(value.items())
        )
        for k, spec in entries:
            try:
                parse_policy(spec, out)
            except Exception as e:  # noqa: BLE001 - report which preset is broken
                raise DataError(f"presets file {p}: preset {name!r} ({k or 'spec'}): {e}") from None
    return out


def save_preset(name: str, value: Preset, meta: dict[str, Any] | None = None,
                path: str | os.PathLike[str] | None = None) -> Path:
    """Write (or replace) one preset in the user's presets file."""
    p = presets_path(path)
    doc = _read(p)
    doc[name] = value
    if meta is not None:
        doc.setdefault("_meta", {})[name] = meta
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return p

