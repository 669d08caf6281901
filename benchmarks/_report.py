"""What every benchmark script shares: its flags, the baseline file, the change column."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_report_args(parser: argparse.ArgumentParser, *, backend: bool = True) -> None:
    """Add ``--backend`` (unless ``backend=False``), ``--json`` and ``--baseline``."""
    if backend:
        parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--baseline", type=Path, help="compare with a file written by --json")


def load_baseline(path: Path | None) -> dict[str, Any] | None:
    """The figures of an earlier ``--json`` run, or None."""
    return json.loads(path.read_text()) if path else None


def change(value: float, old: object) -> str:
    """``+3.1%``: how far ``value`` moved from ``old``; empty when there is no old figure."""
    if not isinstance(old, int | float) or not old:
        return ""
    return f"{(value / old - 1) * 100:+.1f}%"


def save(figures: dict[str, Any], path: Path | None) -> None:
    """Write ``figures`` as JSON to ``path`` (for a later ``--baseline``), if given."""
    if path:
        path.write_text(json.dumps(figures, indent=2) + "\n")


def table(
    results: dict[str, float],
    baseline: dict[str, Any] | None,
    targets: dict[str, tuple[str, float]],
) -> str:
    """One line per figure: its value, its target (``(">=", 5000)``) met or MISSed, its change."""
    width = max(len(key) for key in results) + 2
    lines = [f"{'measure':<{width}} {'value':>14} {'target':>14} {'vs baseline':>12}"]
    for key, value in results.items():
        tgt = ""
        if key in targets:
            op, limit = targets[key]
            ok = value >= limit if op == ">=" else value <= limit
            tgt = f"{op}{limit:,g} {'ok' if ok else 'MISS'}"
        shown = f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
        old = baseline.get(key) if baseline else None
        lines.append(f"{key:<{width}} {shown:>14} {tgt:>14} {change(value, old):>12}")
    return "\n".join(lines)


def labelled_table(
    rows: list[tuple[str, str, str, str]],
    figures: dict[str, Any],
    baseline: dict[str, Any] | None,
) -> list[str]:
    """Lines for ``(key, label, format, target)`` rows, with baseline and change columns."""
    header = f"{'metric':46} {'value':>12} {'target':>11}"
    if baseline is not None:
        header += f" {'baseline':>12} {'change':>8}"
    lines = [header, "-" * len(header)]
    for key, label, fmt, target in rows:
        line = f"{label:46} {fmt.format(figures[key]):>12} {target:>11}"
        if baseline is not None and key in baseline:
            old = baseline[key]
            line += f" {fmt.format(old):>12} {change(figures[key], old):>8}"
        lines.append(line)
    return lines
