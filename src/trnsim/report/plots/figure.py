"""Shared figure plumbing: saving PNG + SVG, and the bytes a report embeds.

Figures are made with matplotlib.figure.Figure directly (not pyplot): no GUI backend, no global figure
state, so plotting works headless and from threads; savefig renders with Agg (PNG) and the SVG backend.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from trnsim.errors import TrnsimError

PNG_DPI = 110


class PlotError(TrnsimError):
    """The data handed to a plot cannot be drawn (empty, missing keys, non-positive values on a log axis)."""


class PlotFiles(list[Path]):
    """The files written (PNG then SVG; empty when no path was given), the figure as PNG bytes for embedding,
    and the SVG text (rendered only when files are written: a report embeds the PNG)."""

    def __init__(self, paths: list[Path], png: bytes, svg: str) -> None:
        super().__init__(paths)
        self.png = png
        self.svg = svg


def new_figure(width: float = 7.5, height: float = 4.2) -> Figure:
    return Figure(figsize=(width, height))


def finish(fig: Figure, path_stem: str | Path | None) -> PlotFiles:
    """Render to PNG (and SVG) and write PATH_STEM.png and PATH_STEM.svg (if path_stem is given)."""
    fig.tight_layout()
    png_buf = io.BytesIO()
    fig.savefig(png_buf, format="png", dpi=PNG_DPI)
    png, svg = png_buf.getvalue(), ""
    paths: list[Path] = []
    if path_stem is not None:
        svg_buf = io.StringIO()
        fig.savefig(svg_buf, format="svg")
        svg = svg_buf.getvalue()
        stem = Path(path_stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        png_path, svg_path = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
        png_path.write_bytes(png)
        svg_path.write_text(svg)
        paths = [png_path, svg_path]
    return PlotFiles(paths, png, svg)
