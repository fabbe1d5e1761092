"""The trajectory chart as a standalone SVG: total and goal/task/bond lines, the cutoff, alert markers.

Standalone (no CSS or script of the page around it) so other services can embed it in <img> or <object>;
the SVG's <title> and <desc> are its text alternative for screen readers.
"""
from __future__ import annotations

from typing import Any, Mapping
from xml.sax.saxutils import escape

from services.common.vocabulary import words

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 64, 48, 36
COLOURS = {"total": "#1f3b4d", "goal": "#2a7f62", "task": "#b5651d", "bond": "#6a4c93", "cutoff": "#b00020"}
DASHES = {"goal": "6 3", "task": "2 3", "bond": "8 3 2 3"}


def describe(trajectory: Mapping[str, Any]) -> str:
    """The chart in words: the text alternative."""
    points = trajectory["points"]
    totals = ", ".join(f"{p['session_number']}: {p['total']:g}" for p in points)
    parts = [f"{len(points)} sessions; totals by session {totals}."]
    if trajectory.get("cutoff_total") is not None:
        below = [str(p["session_number"]) for p in points if p["total"] < trajectory["cutoff_total"]]
        parts.append(f"Cutoff {trajectory['cutoff_total']:g}; flagged below it at session(s) {', '.join(below)}."
                     if below else f"Cutoff {trajectory['cutoff_total']:g}; never below it.")
    alerted = [f"session {p['session_number']}: {words(p['alerts'])}"
               for p in points if p["alerts"]]
    parts.append("Alerts: " + "; ".join(alerted) + "." if alerted else "No alerts.")
    return " ".join(parts)


def render_trajectory(trajectory: Mapping[str, Any]) -> str:
    points = trajectory["points"]
    scale_low, high = trajectory.get("scale") or (min(p["total"] for p in points), max(p["total"] for p in points))
    sub_scale_low, sub_high = trajectory.get("subscale_scale") or (0.0, 1.0)
    # Subscale values as the total they would equal at the same share of the range, so no line is cut off.
    as_totals = [scale_low + (v - sub_scale_low) / ((sub_high - sub_scale_low) or 1) * (high - scale_low)
                 for p in points for v in p["subscales"].values() if v is not None]
    low = _zoomed_floor(scale_low, high, [p["total"] for p in points] + as_totals + [trajectory.get("cutoff_total")])
    # The item-mean axis is cut at the same share of its range, so a subscale at its maximum still sits on
    # the same line as a total at its maximum.
    sub_low = sub_scale_low + (low - scale_low) / ((high - scale_low) or 1) * (sub_high - sub_scale_low)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    first, last = points[0]["session_number"], points[-1]["session_number"]

    def x(session: int) -> float:
        return LEFT + (plot_w / 2 if last == first else (session - first) / (last - first) * plot_w)

    def y(value: float, lo: float = low, hi: float = high) -> float:
        return TOP + plot_h - (value - lo) / ((hi - lo) or 1) * plot_h

    title = f"Alliance trajectory of client {trajectory['client_id']}" + (
        f" with counselor {trajectory['counselor_id']}" if trajectory.get("counselor_id") else "")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
           f'height="{HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" font-family="sans-serif" '
           f'font-size="12">',
           f'<title id="chart-title">{escape(title)}</title>',
           f'<desc id="chart-desc">{escape(describe(trajectory))}</desc>',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>']
    # Axes: totals on the left, subscale item means on the right, sessions along the bottom.
    for frac in (0, 0.5, 1):
        value, sub = low + frac * (high - low), sub_low + frac * (sub_high - sub_low)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                   f'stroke="#e3e7ea"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{round(value, 1):g}</text>')
        out.append(f'<text x="{WIDTH - RIGHT + 6}" y="{y(value) + 4:.1f}" fill="#666">{round(sub, 1):g}</text>')
    out.append(f'<text x="{LEFT - 6}" y="{TOP - 8}" text-anchor="end">total</text>')
    out.append(f'<text x="{WIDTH - RIGHT + 6}" y="{TOP - 8}" fill="#666">item mean</text>')
    for p in points:
        out.append(f'<text x="{x(p["session_number"]):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                   f'text-anchor="middle">{p["session_number"]}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle" fill="#666">session</text>')
    cutoff = trajectory.get("cutoff_total")
    if cutoff is not None:
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(cutoff):.1f}" y2="{y(cutoff):.1f}" '
                   f'stroke="{COLOURS["cutoff"]}" stroke-dasharray="4 4" stroke-width="1.5"/>')
        # Under the line at the left: where a good alliance's lines (above the cutoff) do not run.
        out.append(f'<text x="{LEFT + 4}" y="{y(cutoff) + 14:.1f}" fill="{COLOURS["cutoff"]}">cutoff {cutoff:g}</text>')
    for subscale in ("goal", "task", "bond"):
        coords = [(x(p["session_number"]), y(p["subscales"][subscale], sub_low, sub_high))
                  for p in points if p["subscales"].get(subscale) is not None]
        if coords:
            out.append(_polyline(coords, COLOURS[subscale], 1.5, DASHES[subscale], f"line-{subscale}"))
    out.append(_polyline([(x(p["session_number"]), y(p["total"])) for p in points], COLOURS["total"], 3, None,
                         "line-total"))
    for p in points:
        px, py = x(p["session_number"]), y(p["total"])
        out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{COLOURS["total"]}"/>')
        if p.get("below_cutoff"):
            # The level flag: a ring, not an alert - something to talk about in the session.
            out.append(f'<g class="flag-marker"><title>Session {p["session_number"]}: below the cutoff</title>'
                       f'<circle cx="{px:.1f}" cy="{py:.1f}" r="7" fill="none" stroke="{COLOURS["cutoff"]}" '
                       f'stroke-width="2"/></g>')
        if p["alerts"]:
            label = f"Session {p['session_number']}: " + words(p["alerts"])
            out.append(f'<g class="alert-marker"><title>{escape(label)}</title>'
                       f'<path d="M{px:.1f},{py + 8:.1f} l-7,12 h14 z" fill="{COLOURS["cutoff"]}"/></g>')
    legend = [("total", "Total"), ("goal", "Goal"), ("task", "Task"), ("bond", "Bond")]
    for i, (key, label) in enumerate(legend):
        lx = LEFT + i * 90
        out.append(f'<line x1="{lx}" x2="{lx + 22}" y1="16" y2="16" stroke="{COLOURS[key]}" '
                   f'stroke-width="{3 if key == "total" else 1.5}"'
                   + (f' stroke-dasharray="{DASHES[key]}"' if key in DASHES else "") + "/>")
        out.append(f'<text x="{lx + 27}" y="20">{label}</text>')
    out.append(f'<path d="M{LEFT + 4 * 90 + 11},10 l-7,12 h14 z" fill="{COLOURS["cutoff"]}"/>'
               f'<text x="{LEFT + 4 * 90 + 27}" y="20">Alert</text>')
    if cutoff is not None:
        out.append(f'<circle cx="{LEFT + 4 * 90 + 81}" cy="16" r="6" fill="none" stroke="{COLOURS["cutoff"]}" '
                   f'stroke-width="2"/><text x="{LEFT + 4 * 90 + 92}" y="20">Below cutoff</text>')
    out.append("</svg>")
    return "\n".join(out)


def _zoomed_floor(scale_low: float, high: float, values: list[float | None]) -> float:
    """The bottom of the total axis: alliance ratings cluster near the top, so the axis starts a tenth of
    the range below the lowest total (or the cutoff), on a round number, never below the scale."""
    span = high - scale_low
    step = 5 if span >= 20 else 1
    lowest = min(v for v in values if v is not None) - span / 10
    return max(scale_low, step * (lowest // step))


def _polyline(coords: list[tuple[float, float]], colour: str, width: float, dash: str | None, css_id: str) -> str:
    points = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<polyline id="{css_id}" points="{points}" fill="none" stroke="{colour}" stroke-width="{width}"'
            f'{dash_attr} stroke-linejoin="round"/>')
