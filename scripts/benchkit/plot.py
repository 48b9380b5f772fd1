"""A line chart drawn with Pillow (no plotting library in the environment): one panel per
series against a shared x axis, each with its own y scale from zero."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

W, PANEL, LEFT, RIGHT, TOP = 900, 260, 90, 30, 40
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44)]


def line_chart(path: Path, xs: list[int], series: dict[str, list[float]], title: str) -> None:
    height = TOP + PANEL * len(series) + 30
    img = Image.new("RGB", (W, height), "white")
    d = ImageDraw.Draw(img)
    d.text((LEFT, 12), title, fill="black")
    x_max = max(xs) or 1
    for k, (name, ys) in enumerate(series.items()):
        top, bottom = TOP + k * PANEL + 20, TOP + (k + 1) * PANEL - 20
        y_max = (max(ys) or 1.0) * 1.1
        d.rectangle((LEFT, top, W - RIGHT, bottom), outline="black")
        for frac in (0.0, 0.5, 1.0):
            y = bottom - frac * (bottom - top)
            d.text((8, y - 6), f"{frac * y_max:,.0f}", fill="black")
        d.text((LEFT + 6, top + 4), name, fill=COLOURS[k % len(COLOURS)])

        def px(x: float, y: float, top: int = top, bottom: int = bottom,
               y_max: float = y_max) -> tuple[float, float]:
            return (LEFT + x / x_max * (W - LEFT - RIGHT), bottom - y / y_max * (bottom - top))

        points = [px(x, y) for x, y in zip(xs, ys, strict=True)]
        if len(points) > 1:
            d.line(points, fill=COLOURS[k % len(COLOURS)], width=2)
        for p in points:
            d.ellipse((p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2), fill=COLOURS[k % len(COLOURS)])
    d.text((LEFT, height - 22), f"log size (records), 0 to {x_max:,}", fill="black")
    img.save(path)
