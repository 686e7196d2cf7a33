"""The funnel's charts as server-rendered SVG (no script, no chart library, nothing the
page's Content-Security-Policy would have to allow): leads, DMs sent (or links opened),
read and replied, per day as grouped bars, and per route or source as horizontal bars with
each step's share of the leads. Every bar carries a <title> (its value on hover and for
screen readers) and data attributes the browser tests read."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

from markupsafe import Markup

from services.api.service_layer.funnel import Counts

SERIES = (
    ("leads", "leads", "#9aa5b8"),
    ("sent", "DM sent or link opened", "#3e6fd8"),
    ("read", "read", "#2f9e5b"),
    ("replied", "replied", "#c2761b"),
)
WIDTH = 760
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 12, 30


def _svg(height: int, label: str, body: list[str]) -> Markup:
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
    )
    # Safe as markup: every text in `body` went through html.escape.
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704


def _bar(x: float, y: float, w: float, h: float, color: str, title: str, data: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
        f'fill="{color}" {data}><title>{escape(title)}</title></rect>'
    )


def day_chart(by_day: Sequence[tuple[date, Counts]]) -> Markup:
    """Grouped bars: for each day, its leads and how many of them reached each step."""
    height = 240
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    top = max([c.leads for _, c in by_day] + [1])
    group = plot_w / max(len(by_day), 1)
    bar = group * 0.8 / len(SERIES)
    body = [
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>'
    ]
    for tick in sorted({0, math.ceil(top / 2), top}):
        y = TOP + plot_h - plot_h * tick / top
        body.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    every = max(1, math.ceil(len(by_day) / 10))
    for i, (day, counts) in enumerate(by_day):
        x0 = LEFT + i * group + group * 0.1
        for j, (field, name, color) in enumerate(SERIES):
            value = getattr(counts, field)
            h = plot_h * value / top
            data = f'data-day="{day.isoformat()}" data-series="{field}" data-value="{value}"'
            title = f"{day.isoformat()}: {value} {name}"
            body.append(_bar(x0 + j * bar, TOP + plot_h - h, bar, h, color, title, data))
        if i % every == 0:
            body.append(
                f'<text x="{x0 + group * 0.4:.1f}" y="{height - 10}" text-anchor="middle">'
                f"{day.strftime('%m-%d')}</text>"
            )
    return _svg(height, "Leads, DMs sent, read and replied per day", body)


def group_chart(rows: Sequence[tuple[str, Counts]], labels: Mapping[str, str], what: str) -> Markup:
    """Horizontal bars per group (a route or a source): each step with its share of leads."""
    line, gap, label_w = 14, 18, 170
    height = TOP + max(len(rows), 1) * (line * len(SERIES) + gap)
    top = max([c.leads for _, c in rows] + [1])
    plot_w = WIDTH - label_w - 90
    body: list[str] = []
    for i, (key, counts) in enumerate(rows):
        y0 = TOP + i * (line * len(SERIES) + gap)
        name = labels.get(key, key)
        body.append(f'<text x="0" y="{y0 + line:.1f}">{escape(name)}</text>')
        if counts.with_link:
            rate = f"{100 * (counts.click_through or 0):.0f}% opened the link"
            body.append(f'<text x="0" y="{y0 + 2 * line + 2:.1f}">{escape(rate)}</text>')
        for j, (field, step, color) in enumerate(SERIES):
            value = getattr(counts, field)
            w = plot_w * value / top
            y = y0 + j * line
            share = f" ({100 * value / counts.leads:.0f}%)" if counts.leads and j else ""
            data = f'data-group="{escape(key)}" data-series="{field}" data-value="{value}"'
            title = f"{name}: {value} {step}{share}"
            body.append(_bar(label_w, y, w, line - 3, color, title, data))
            body.append(
                f'<text x="{label_w + w + 4:.1f}" y="{y + line - 4:.1f}">{value}{share}</text>'
            )
    return _svg(height, f"The funnel by {what}", body)
