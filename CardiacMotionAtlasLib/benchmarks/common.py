"""Shared benchmark plumbing: argument parsing, plain-text tables, JSON output (atomic)."""

from __future__ import annotations

import argparse
import json
import platform
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..io.atomic import atomic_write_text


def benchmark_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="minutes-long version")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def machine_description() -> str:
    import os

    return f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"


def _format(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(value)
    magnitude = abs(float(value))
    return f"{value:.3g}" if magnitude < 10 else f"{value:.1f}"


def mean_std(values: Sequence[float]) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.3g} +/- {values.std():.2g}"


def format_table(rows: List[Dict], columns: Optional[List[str]] = None, title: str = "") -> str:
    """A fixed-width text table of ``rows`` (dicts), columns in order."""
    columns = columns or list(rows[0].keys())
    cells = [[_format(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells)
    return "\n".join(lines)


def write_json(path: str, rows: List[Dict], config: Dict, **sections) -> None:
    """``{"rows": rows, "config": config, ...}`` written atomically."""

    def plain(value):
        if isinstance(value, (np.floating, np.integer)):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        raise TypeError(type(value))

    payload = {"rows": rows, "config": config, **sections}
    atomic_write_text(path, json.dumps(payload, indent=2, default=plain))


__all__ = ["benchmark_parser", "format_table", "machine_description", "mean_std", "write_json"]
