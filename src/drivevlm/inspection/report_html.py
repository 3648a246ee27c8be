"""The inspection page: one HTML file with the episode summary, an inline SVG plot of every reward term over
time, and per recorded step its images (relative links into images/) beside its terms and the LVLM's text.

The plot is drawn as SVG here rather than with matplotlib, so the page needs no plotting dependency and
stays one self-describing file next to its images.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivevlm.eval.report import html_page
from drivevlm.rewards.signals import SIGNAL_FIELDS

_IMAGE_COLUMNS = ("detections_png", "front_png", "bev_rgb_png")
_NOT_TERMS = frozenset({"step", "n_detections", "n_critical", "detections", "triggered", *_IMAGE_COLUMNS})
# Signals worth seeing beside the terms in the plot.
_PLOTTED_SIGNALS = ("speed_kmh", "center_offset_m", "nearest_vru_ahead_m")
_PANEL_WIDTH, _PANEL_HEIGHT, _MARGIN = 720, 84, 62
_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 12px; }
th, td { text-align: left; padding: 1px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
.step { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
.images img { width: 160px; image-rendering: pixelated; margin-right: 4px; border: 1px solid #ccc; }
.oracle { color: #a00; font-weight: bold; }
"""


def term_columns(columns: Sequence[str]) -> list[str]:
    """The reward-term columns of the CSV (final first), without signals, texts, images or detections."""
    terms = [
        c
        for c in columns
        if c not in _NOT_TERMS and c not in SIGNAL_FIELDS and not c.startswith("text_") and c != "final"
    ]
    return ["final", *terms] if "final" in columns else terms


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _tick(value: float) -> str:
    return "0" if abs(value) < 1e-9 else f"{value:.3g}"


def svg_panel(name: str, steps: Sequence[int], values: Sequence[Any], shade: Sequence[bool] = ()) -> str:
    """One line chart (SVG) of `values` over `steps`; steps where `shade` is true get a pale band."""
    points = [(s, v) for s, v in zip(steps, (_number(v) for v in values), strict=True) if v is not None]
    width, height, margin = _PANEL_WIDTH, _PANEL_HEIGHT, _MARGIN
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(name)} over steps">',
        f'<text x="4" y="12" font-size="11" font-family="sans-serif">{html.escape(name)}</text>',
    ]
    if not points:
        parts.append('<text x="60" y="50" font-size="11" fill="#888">no finite values</text></svg>')
        return "".join(parts)
    first, last = min(steps), max(steps)
    low = min(v for _, v in points)
    high = max(v for _, v in points)
    span_x = max(last - first, 1)
    span_y = high - low if high > low else 1.0
    plot_w, top, bottom = width - margin - 8, 16, height - 14

    def x(step: float) -> float:
        return margin + (step - first) / span_x * plot_w

    def y(value: float) -> float:
        return bottom - (value - low) / span_y * (bottom - top)

    band = plot_w / span_x
    for step, shaded in zip(steps, shade, strict=False):
        if shaded:
            parts.append(
                f'<rect x="{x(step) - band / 2:.1f}" y="{top}" width="{band:.1f}" '
                f'height="{bottom - top}" fill="#fde2e2"/>'
            )
    parts.append(
        f'<rect x="{margin}" y="{top}" width="{plot_w}" height="{bottom - top}" fill="none" stroke="#ccc"/>'
    )
    polyline = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
    parts.append(f'<polyline points="{polyline}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>')
    label = 'font-size="10" font-family="monospace" text-anchor="end"'
    parts.append(f'<text x="{margin - 3}" y="{top + 8}" {label}>{_tick(high)}</text>')
    parts.append(f'<text x="{margin - 3}" y="{bottom}" {label}>{_tick(low)}</text>')
    parts.append(f'<text x="{margin}" y="{height - 2}" font-size="10" font-family="monospace">{first}</text>')
    parts.append(f'<text x="{width - 8}" y="{height - 2}" {label}>{last}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def render_report(summary: dict[str, Any], columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """The whole page as a string (see the module docstring)."""
    title = f"drivevlm reward inspect: {summary.get('preset')} on {summary.get('scenario')}"
    steps = [int(r["step"]) for r in rows]
    gate = [bool(_number(r.get("gate")) or 0.0) for r in rows]
    plotted = term_columns(columns) + [s for s in _PLOTTED_SIGNALS if s in columns]
    panels = "\n".join(svg_panel(name, steps, [r.get(name) for r in rows], gate) for name in plotted)
    summary_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in summary.items()
    )
    oracle = (
        '<p class="oracle">ORACLE preset: scores come from simulator ground truth, not from models.</p>'
        if summary.get("oracle")
        else ""
    )
    text_columns = [c for c in columns if c.startswith("text_")]
    cards = []
    for row in rows:
        images = [row.get(c) for c in _IMAGE_COLUMNS if row.get(c)]
        if not images:
            continue
        shown = "".join(
            f'<img src="{html.escape(str(src))}" alt="{html.escape(str(src))}" loading="lazy">'
            for src in images
        )
        terms = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{_cell(row.get(name, ''))}</td></tr>"
            for name in term_columns(columns)
        )
        texts = "".join(
            f"<tr><th>{html.escape(c.removeprefix('text_'))}</th><td>{_cell(row.get(c, ''))}</td></tr>"
            for c in text_columns
            if row.get(c)
        )
        detections = (
            f"<tr><th>detections</th><td>{row.get('n_critical')} critical / "
            f"{row.get('n_detections')}</td></tr>"
            if row.get("n_detections") != ""
            else ""
        )
        cards.append(
            f'<section class="step" id="step-{row["step"]}"><h3>step {row["step"]}</h3>'
            f'<div class="images">{shown}</div><table>{terms}{detections}{texts}</table></section>'
        )
    body = f"""{oracle}
<table class="summary">{summary_rows}</table>
<h2>Reward terms over time</h2>
<p>Pale red bands: steps where the attention gate was open.
Full per-step values: <a href="steps.csv">steps.csv</a>.</p>
<div class="plots">
{panels}
</div>
<h2>Steps</h2>
<p>Front frame with detections (red: critical classes at or above the gate threshold; yellow: others),
front frame, bird's-eye view.</p>
{"".join(cards)}"""
    return html_page(title, body, _STYLE)


def write_report(
    path: Path, summary: dict[str, Any], columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> Path:
    from drivevlm.atomic import write_atomic

    write_atomic(path, render_report(summary, columns, rows).encode())
    return path
