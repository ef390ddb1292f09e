"""The benchmark's chart: one well-formed SVG whose lines are the measured series."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks import chart

SVG = "{http://www.w3.org/2000/svg}"


def results() -> dict[int, dict[str, dict]]:
    def point(rate: float, rss: float | None) -> dict:
        return {"rate": rate, "rss_mb": rss, "seconds": 1.0}

    return {
        20_000: {
            "tap-flowfinity": point(40_000, 60),
            "raw client": point(60_000, 30),
            "tap-rest-api-msdk": point(9_000, 90),
            "main job": point(12_000, None),
            "loader alone": point(15_000, 70),
            "raw COPY": point(50_000, None),
        },
        100_000: {
            "tap-flowfinity": point(45_000, 62),
            "raw client": point(65_000, 31),
            "main job": point(13_000, None),
            "raw COPY": point(55_000, None),
        },
    }


def test_chart_draws_each_measured_series(tmp_path: Path):
    json_path, svg_path = tmp_path / "scaling.json", tmp_path / "scaling.svg"
    chart.write(results(), "quick run", json_path, svg_path)

    root = ET.fromstring(svg_path.read_text())
    lines = root.findall(f"{SVG}polyline")
    # reading rate: 3 series; memory: 3; loading: 3 (a contender measured at one size only
    # is a one-point line; memory not measured for the main job is not drawn)
    assert len(lines) == 9
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "generic SDK tap (tap-rest-api-msdk)" in texts
    assert "raw COPY" in texts and "quick run" in texts
    assert json.loads(json_path.read_text())["results"]["100000"]["raw COPY"]["rate"] == 55_000
    # redrawn from the kept numbers, the chart is the same
    redrawn = tmp_path / "again.svg"
    chart.main([str(json_path), str(redrawn)])
    assert redrawn.read_text() == svg_path.read_text()


def test_higher_values_are_drawn_higher():
    svg = ET.fromstring(chart.render(results(), "c"))
    first_panel = svg.findall(f"{SVG}polyline")[:2]  # tap, raw client: rates
    tap_y, raw_y = (float(line.get("points", "").split()[0].split(",")[1]) for line in first_panel)
    assert raw_y < tap_y  # SVG y grows downwards: the faster raw client is above
