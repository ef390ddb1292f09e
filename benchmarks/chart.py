"""The benchmark's results as one SVG (no plotting library: a few lines and labels suffice).

Three panels against records read (log scale): records/s of the tap, the raw client and the
generic SDK tap; their peak memory; records/s of the main job, the loader alone and raw COPY.

    python benchmarks/chart.py benchmarks/scaling.json benchmarks/scaling.svg
"""

from __future__ import annotations

import json
import math
import sys
from html import escape
from pathlib import Path

Results = dict[int, dict[str, dict]]

PANELS = [
    (
        "Reading: records/s",
        "rate",
        ["tap-flowfinity", "raw client", "tap-rest-api-msdk"],
    ),
    (
        "Reading: peak memory (MB)",
        "rss_mb",
        ["tap-flowfinity", "raw client", "tap-rest-api-msdk"],
    ),
    (
        "Loading into PostgreSQL: records/s",
        "rate",
        ["main job", "loader alone", "raw COPY"],
    ),
]
LABELS = {
    "tap-flowfinity": "tap-flowfinity",
    "raw client": "raw client (ijson + msgspec)",
    "tap-rest-api-msdk": "generic SDK tap (tap-rest-api-msdk)",
    "main job": "main job (meltano run)",
    "loader alone": "target-postgres alone",
    "raw COPY": "raw COPY",
}
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c"]
WIDTH, HEIGHT = 330, 250  # one panel
LEFT, RIGHT, TOP, BOTTOM = 58, 24, 34, 96  # margins inside a panel


def _nice_max(value: float) -> float:
    """A round axis maximum just above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _panel(x0: float, title: str, key: str, names: list[str], results: Results) -> list[str]:
    sizes = sorted(results)
    series = {
        name: [(n, results[n][name][key]) for n in sizes if results[n].get(name, {}).get(key)]
        for name in names
    }
    series = {name: points for name, points in series.items() if points}
    top = _nice_max(max((v for points in series.values() for _, v in points), default=1.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    lo, hi = math.log10(sizes[0]), math.log10(sizes[-1])
    span = (hi - lo) or 1.0

    def x(n: int) -> float:
        offset = (math.log10(n) - lo) / span if hi > lo else 0.5
        return x0 + LEFT + offset * plot_w

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [
        f'<text x="{x0 + WIDTH / 2}" y="18" text-anchor="middle" font-weight="bold">'
        f"{escape(title)}</text>",
        f'<rect x="{x0 + LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#999"/>',
    ]
    for i in range(5):
        value = top * i / 4
        out.append(
            f'<text x="{x0 + LEFT - 4}" y="{y(value) + 4:.1f}" text-anchor="end">'
            f"{_fmt(value)}</text>"
        )
        out.append(
            f'<line x1="{x0 + LEFT}" x2="{x0 + LEFT + plot_w}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}" stroke="#eee"/>'
        )
    for n in sizes:
        out.append(
            f'<text x="{x(n):.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{_fmt(n)}</text>'
        )
    out.append(
        f'<text x="{x0 + LEFT + plot_w / 2}" y="{TOP + plot_h + 28}" text-anchor="middle">'
        "records read (log scale)</text>"
    )
    for index, (name, points) in enumerate(series.items()):
        color = COLORS[index % len(COLORS)]
        path = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for n, v in points:
            out.append(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>')
        legend_y = TOP + plot_h + 44 + 14 * index
        out.append(
            f'<rect x="{x0 + LEFT}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>'
        )
        out.append(
            f'<text x="{x0 + LEFT + 14}" y="{legend_y}">{escape(LABELS.get(name, name))}</text>'
        )
    return out


def render(results: Results, caption: str) -> str:
    """The SVG document for `results` ({records: {contender: {rate, rss_mb, ...}}})."""
    body: list[str] = []
    for index, (title, key, names) in enumerate(PANELS):
        body += _panel(index * WIDTH, title, key, names, results)
    total_w, total_h = WIDTH * len(PANELS), HEIGHT + 22
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
            f'viewBox="0 0 {total_w} {total_h}" font-family="sans-serif" font-size="11">',
            f'<rect width="{total_w}" height="{total_h}" fill="white"/>',
            *body,
            f'<text x="8" y="{total_h - 8}" fill="#555">{escape(caption)}</text>',
            "</svg>",
            "",
        ]
    )


def write(results: Results, caption: str, json_path: Path, svg_path: Path) -> None:
    """Keep the numbers (to redraw without rerunning) and the chart side by side."""
    json_path.write_text(
        json.dumps({"caption": caption, "results": results}, indent=1, sort_keys=True) + "\n"
    )
    svg_path.write_text(render(results, caption))


def main(argv: list[str]) -> int:
    data = json.loads(Path(argv[0]).read_text())
    results = {int(n): row for n, row in data["results"].items()}
    Path(argv[1]).write_text(render(results, data["caption"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
