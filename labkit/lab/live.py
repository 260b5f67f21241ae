"""Live figures: a plotly ``FigureWidget`` in JupyterLab, a final static figure when headless.

::

    plot = LivePlot(["reward/mean", "entropy", "acc"], title="GRPO", cols=3)
    for step in range(steps):
        ...
        plot.update(step, {"reward/mean": r, "entropy": h}, series="grpo")
    plot.close()

One panel per metric, one line per named series (same colour in every panel). Keys of
``update`` that are not panels are ignored, so a whole metrics dict can be passed.
The data stay in the object: ``plot.data["grpo"]["entropy"] -> (xs, ys)``.

Live or headless:

- live (a kernel started by a Jupyter server, which sets ``JPY_SESSION_NAME``; or VS Code):
  a ``FigureWidget`` is displayed at creation and redrawn in place at most every
  ``throttle`` seconds. ``close()`` draws the last points and then replaces the widget by
  the static figure, so a saved notebook keeps a figure that any viewer shows.
- headless (papermill, a script, ``LABKIT_LIVE=0``): nothing is drawn during the loop and
  ``close()`` displays the final figure.

``LABKIT_LIVE=1``/``0`` forces either mode. If ``FigureWidget`` cannot be made (it needs
``anywidget``) the plot falls back to headless with a one-line warning.

The static figure output carries ``application/vnd.plotly.v1+json`` (interactive in
JupyterLab, VS Code, nteract) and ``image/svg+xml`` (drawn here without kaleido or a browser,
so GitHub, nbviewer and nbconvert show it offline) plus a ``text/plain`` line. :func:`show`
displays any plotly figure the same way (the SVG for line/scatter, bar, heatmap and image
traces; none for other trace types).
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from html import escape

__all__ = ["LivePlot", "show", "live_mode", "figure_bundle", "to_svg"]

COLORS = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692",
          "#b6e880", "#ff97ff", "#fecb52"]


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    ip = get_ipython()
    return ip is not None and hasattr(ip, "kernel")


def live_mode() -> bool:
    """True when figures should update live: ``LABKIT_LIVE`` if set, else inside a kernel
    that a Jupyter server (``JPY_SESSION_NAME``) or VS Code (``VSCODE_PID``) started.
    papermill and ``labkit run`` kernels are headless."""
    env = os.environ.get("LABKIT_LIVE", "").strip().lower()
    if env:
        return env not in ("0", "false", "no", "off")
    if not _in_kernel():
        return False
    return bool(os.environ.get("JPY_SESSION_NAME") or os.environ.get("VSCODE_PID"))


def _display(obj, **kw):
    if not _in_kernel() and os.environ.get("LABKIT_LIVE", "") == "":
        return None
    from IPython.display import display

    return display(obj, **kw)


# ---------------------------------------------------------------------------- static output

def _plotly_json(fig) -> dict:
    import plotly.io as pio

    return json.loads(pio.to_json(fig, validate=False, remove_uids=True))


def _describe(fig_dict) -> str:
    title = (fig_dict.get("layout", {}).get("title") or {})
    title = title.get("text") if isinstance(title, dict) else title
    n = len(fig_dict.get("data", []))
    return f"<plotly figure{': ' + title if title else ''}, {n} trace{'s' if n != 1 else ''}>"


def figure_bundle(fig) -> dict:
    """The mimebundle :func:`show` displays: plotly JSON, an SVG where possible, text."""
    d = _plotly_json(fig)
    bundle = {"application/vnd.plotly.v1+json": d, "text/plain": _describe(d)}
    try:
        svg = to_svg(d)
    except Exception:  # the SVG is a courtesy for static viewers; never fail a notebook on it
        svg = None
    if svg:
        bundle["image/svg+xml"] = svg
    return bundle


def show(fig, *, display_id=None):
    """Display a plotly figure as a static output (see :func:`figure_bundle`).

    Outside a kernel this does nothing. Returns the display handle (or None)."""
    bundle = figure_bundle(fig)
    if display_id is not None:
        return _display(bundle, raw=True, display_id=display_id)
    return _display(bundle, raw=True)


# ---------------------------------------------------------------------------- SVG

def _nice_ticks(lo, hi, n=5):
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0], 0.0, 1.0
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    stop = math.ceil(hi / step) * step
    ticks = []
    v = start
    while v <= stop + step * 1e-9 and len(ticks) < 20:
        ticks.append(round(v, 12))
        v += step
    return ticks, start, stop


def _fmt_tick(v, log=False):
    if log:
        v = 10 ** v
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.1e}"
    return f"{v:.4g}"


def _num(v):
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _array(values) -> list:
    """Trace coordinates as a list: plotly serialises numpy arrays as typed arrays
    (``{"dtype": "f8", "bdata": <base64>}``), which must be decoded to be drawn."""
    if isinstance(values, dict) and "bdata" in values:
        import base64

        import numpy as np

        flat = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values.get("dtype", "f8")))
        return flat.tolist()
    return list(values) if values is not None else []


_XY_TYPES = ("scatter", "scattergl", "bar")
_RASTER_TYPES = ("heatmap", "image")
# plotly's Viridis, for a heatmap whose figure names no colorscale and has no template
_VIRIDIS = [[0.0, "#440154"], [0.111, "#482878"], [0.222, "#3e4989"], [0.333, "#31688e"],
            [0.444, "#26828e"], [0.556, "#1f9e89"], [0.667, "#35b779"], [0.778, "#6ece58"],
            [0.889, "#b5de2b"], [1.0, "#fde725"]]


def _ndarray(values):
    """A trace's ``z`` as a float numpy array of its shape: plotly's typed arrays
    (``{"dtype", "bdata", "shape"}``) and nested lists alike; None -> NaN."""
    import numpy as np

    if isinstance(values, dict) and "bdata" in values:
        import base64

        flat = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values.get("dtype", "f8")))
        shape = values.get("shape")
        if isinstance(shape, str):
            shape = [int(s) for s in shape.split(",")]
        return (flat.reshape(shape) if shape else flat).astype(float)
    return np.array(values if values is not None else [], dtype=float)


def _rgb(color) -> tuple:
    """``#rgb``, ``#rrggbb``, ``rgb(...)``/``rgba(...)`` -> (r, g, b) in 0..255."""
    c = str(color).strip()
    if c.startswith("#"):
        h = c[1:]
        if len(h) in (3, 4):
            h = "".join(ch * 2 for ch in h[:3])
        return tuple(int(h[k:k + 2], 16) for k in (0, 2, 4))
    if c.startswith("rgb"):
        parts = c[c.index("(") + 1:c.rindex(")")].split(",")
        return tuple(int(round(float(p))) for p in parts[:3])
    raise ValueError(f"unsupported color {color!r}")


def _colorscale(t, lay) -> list:
    """A heatmap's colorscale as [(position, (r, g, b)), ...]: the trace's, its coloraxis's,
    the template's, else Viridis; ``reversescale`` honoured."""
    cs, reverse = t.get("colorscale"), t.get("reversescale")
    ca = lay.get(t["coloraxis"]) if isinstance(t.get("coloraxis"), str) else None
    if cs is None and isinstance(ca, dict):
        cs, reverse = ca.get("colorscale"), ca.get("reversescale", reverse)
    if cs is None:
        tmpl = lay.get("template") or {}
        try:
            cs = tmpl["data"]["heatmap"][0]["colorscale"]
        except (KeyError, IndexError, TypeError):
            cs = ((tmpl.get("layout") or {}).get("colorscale") or {}).get("sequential")
    if isinstance(cs, str):
        from plotly.colors import get_colorscale

        cs = get_colorscale(cs)
    stops = [(float(p), _rgb(c)) for p, c in (cs or _VIRIDIS)]
    if reverse:
        stops = [(1 - p, c) for p, c in reversed(stops)]
    return stops


def _lut(stops, n=256):
    """``n`` colours along the colorscale ``stops`` (a uint8 array of shape (n, 3))."""
    import numpy as np

    pos = np.array([p for p, _ in stops])
    cols = np.array([c for _, c in stops], dtype=float)
    u = np.linspace(0, 1, n)
    return np.stack([np.interp(u, pos, cols[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


def _png_uri(pixels) -> str:
    """An (h, w, 3) uint8 array as a PNG data URI (zlib only: no imaging library)."""
    import base64
    import struct
    import zlib

    import numpy as np

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _axis_layout(lay, name) -> dict:
    """``x2`` -> layout ``xaxis2`` (or {})."""
    return lay.get(name[0] + "axis" + name[1:], {}) or {}


def _coords(t):
    """(xs, ys) of a scatter or bar trace, a missing coordinate counting 0, 1, 2, ..."""
    xs = _array(t.get("x")) if t.get("x") is not None else None
    ys = _array(t.get("y")) if t.get("y") is not None else None
    if xs is None and ys is None:
        return [], []
    if _is_hbar(t):   # values on x, positions on y
        if ys is None or len(ys) != len(xs):
            ys = list(range(len(xs)))
    elif xs is None or len(xs) != len(ys):
        xs = list(range(len(ys)))
    return xs, ys


def _is_hbar(t) -> bool:
    return t.get("type") == "bar" and t.get("orientation") == "h"


def _categories(values, axis: dict):
    """The axis's categories (strings, in order) when it is categorical, else None."""
    kind = axis.get("type")
    if kind not in (None, "-", "category"):
        return None
    if kind != "category" and not any(isinstance(v, str) and _num(v) is None for v in values):
        return None
    if axis.get("categoryorder") == "array" and axis.get("categoryarray"):
        cats = [str(c) for c in axis["categoryarray"]]
    else:
        cats = []
    for v in values:
        if v is not None and str(v) not in cats:
            cats.append(str(v))
    return cats


def _mapper(cats, log):
    """Data value -> plotting coordinate: a category's index, or the number (log10 on log axes)."""
    if cats is not None:
        index = {c: k for k, c in enumerate(cats)}
        return lambda v: None if v is None else index.get(str(v))

    def num(v):
        n = _num(v)
        if n is not None and log:
            n = math.log10(n) if n > 0 else None
        return n

    return num


def _axis_ticks(values, cats, log, data_range):
    """(ticks as [(coordinate, label)], lo, hi) for one axis of a subplot."""
    if cats is not None:
        return [(k, c) for k, c in enumerate(cats)], -0.5, max(len(cats), 1) - 0.5
    if not values:
        return [(0, "0"), (1, "1")], 0, 1
    lo, hi = min(values), max(values)
    ticks, tlo, thi = _nice_ticks(lo, hi)
    if data_range and hi > lo:  # the data's own range, ticks inside it
        ticks, tlo, thi = [v for v in ticks if lo - 1e-9 <= v <= hi + 1e-9], lo, hi
    return [(v, _fmt_tick(v, log)) for v in ticks], tlo, thi


def _title_text(obj):
    t = obj.get("title") if isinstance(obj, dict) else None
    return t.get("text") if isinstance(t, dict) else t


def _fmt_cell(template, z, text):
    """A heatmap cell's label: ``texttemplate`` (``%{z}``, ``%{z:.2f}``, ``%{text}``) or ``text``."""
    import re

    if not template:
        return "" if text is None else str(text)

    def sub(m):
        if m.group(1) == "text":
            return "" if text is None else str(text)
        try:
            return format(z, m.group(2) or "g")
        except (ValueError, TypeError):
            return str(z)

    return re.sub(r"%\{(z|text)(?::([^}]*))?\}", sub, str(template))


def to_svg(fig, width=None, height=None) -> str | None:
    """Draw a figure as SVG without a browser: line/scatter and bar traces (grouped, stacked or
    overlaid, vertical or horizontal, on numeric or categorical axes), heatmaps (with a
    colorbar) and images (``go.Image``, as an embedded PNG), on any grid of subplots. Returns
    None for figures with other trace types (pie, sunburst, 3-D, ...)."""
    d = fig if isinstance(fig, dict) else _plotly_json(fig)
    traces = d.get("data", [])
    kinds = [t.get("type", "scatter") for t in traces]
    if any(k not in _XY_TYPES + _RASTER_TYPES for k in kinds):
        return None
    lay = d.get("layout", {})
    W = int(width or lay.get("width") or 960)
    H = int(height or lay.get("height") or 420)
    title = _title_text(lay)
    coords = [_coords(t) if k in _XY_TYPES else None for t, k in zip(traces, kinds)]
    values: dict[str, list] = {}
    for t, c in zip(traces, coords):
        if c is not None:
            values.setdefault(t.get("xaxis", "x"), []).extend(c[0])
            values.setdefault(t.get("yaxis", "y"), []).extend(c[1])
    cats = {ax: _categories(vals, _axis_layout(lay, ax)) for ax, vals in values.items()}

    ml, mr, mb = 56, 16, 40
    ylabels = [len(c) for ax, cs in cats.items() if ax[0] == "y" and cs for c in cs]
    if ylabels:
        ml = min(200, max(ml, 14 + 6 * max(ylabels)))
    if any(k == "heatmap" and t.get("showscale") is not False for t, k in zip(traces, kinds)):
        mr = 80
    rotate, thin = set(), {}
    for ax, cs in cats.items():
        if ax[0] == "x" and cs:
            dom = _axis_layout(lay, ax).get("domain") or [0, 1]
            slot = (W - ml - mr) * (dom[1] - dom[0]) / len(cs)
            longest = max(len(c) for c in cs)
            if longest * 6.2 > slot * 0.95:
                rotate.add(ax)
                mb = max(mb, min(150, 34 + int(longest * 6.2 * 0.6)))
                thin[ax] = max(1, math.ceil(11 / max(slot, 1e-9)))
    named = [(i, t) for i, t in enumerate(traces) if kinds[i] in _XY_TYPES and t.get("name")
             and t.get("showlegend", True) is not False]
    legend_names = []
    for i, t in named:
        if t["name"] not in [n for n, _, _ in legend_names]:
            legend_names.append((t["name"], _trace_color(t, i), kinds[i] == "bar"))
    mt = 30 + (24 if title else 0) + (18 if legend_names else 0)
    pw, ph = W - ml - mr, H - mt - mb

    def px(fx):
        return ml + fx * pw

    def py(fy):
        return mt + (1 - fy) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    if title:
        out.append(f'<text x="{W / 2:.1f}" y="22" text-anchor="middle" font-size="16">'
                   f'{escape(str(title))}</text>')
    if legend_names:
        x = ml
        y = 22 + (24 if title else 0)
        for name, color, is_bar in legend_names:
            swatch = (f'<rect x="{x + 3}" y="{y - 10}" width="12" height="12" fill="{color}"/>' if is_bar
                      else f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{color}" '
                           f'stroke-width="2.5"/>')
            out.append(f'{swatch}<text x="{x + 22}" y="{y}" font-size="12">{escape(str(name))}</text>')
            x += 34 + 7 * len(str(name))

    axes = sorted({(t.get("xaxis", "x"), t.get("yaxis", "y")) for t in traces} |
                  {("x" + k[5:], lay[k].get("anchor", "y" + k[5:]))
                   for k in lay if k.startswith("xaxis") and isinstance(lay[k], dict)})
    for xa, ya in axes:
        xl, yl = _axis_layout(lay, xa), _axis_layout(lay, ya)
        xd = xl.get("domain", [0, 1])
        yd = yl.get("domain", [0, 1])
        box = (px(xd[0]), py(yd[1]), px(xd[1]), py(yd[0]))   # x0, y0 (top), x1, y1 (bottom)
        members = [i for i, t in enumerate(traces) if (t.get("xaxis", "x"), t.get("yaxis", "y")) == (xa, ya)]
        rasters = [i for i in members if kinds[i] in _RASTER_TYPES]
        if rasters:
            drawn = _raster_svg([traces[i] for i in rasters], [kinds[i] for i in rasters], lay, yl, box)
            if drawn is None:
                return None
            out += drawn
        else:
            out += _xy_svg([(i, traces[i], kinds[i], coords[i]) for i in members], lay, xa, ya,
                           cats.get(xa), cats.get(ya), box, xa in rotate, thin.get(xa, 1))
        x0, y0, x1, y1 = box
        xtitle, ytitle = _title_text(xl), _title_text(yl)
        if xtitle:
            ty = y1 + (mb - 8 if xa in rotate else 27)
            out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{ty:.1f}" font-size="11" '
                       f'text-anchor="middle">{escape(str(xtitle))}</text>')
        if ytitle and not rasters:
            tx, ty = x0 - (ml - 12 if ml > 60 else 44), (y0 + y1) / 2
            out.append(f'<text transform="translate({tx:.1f},{ty:.1f}) rotate(-90)" font-size="11" '
                       f'text-anchor="middle">{escape(str(ytitle))}</text>')
    for a in lay.get("annotations", []) or []:
        if a.get("xref") == "paper" and a.get("yref") == "paper" and a.get("text"):
            ax, ay = px(a.get("x", 0.5)), py(a.get("y", 1.0))
            ay = ay - 6 if a.get("yanchor") == "bottom" else ay
            anchor = {"left": "start", "right": "end"}.get(a.get("xanchor"), "middle")
            out.append(f'<text x="{ax:.1f}" y="{ay:.1f}" font-size="13" text-anchor="{anchor}">'
                       f'{escape(str(a["text"]))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _xy_svg(members, lay, xa, ya, xcat, ycat, box, rotate, thin):
    """One subplot of scatter and bar traces: background, grid, ticks, bars, lines, markers."""
    x0, y0, x1, y1 = box
    xl, yl = _axis_layout(lay, xa), _axis_layout(lay, ya)
    xlog = xl.get("type") == "log" and xcat is None
    ylog = yl.get("type") == "log" and ycat is None
    fx, fy = _mapper(xcat, xlog), _mapper(ycat, ylog)
    series, bars = [], []
    for i, t, kind, (xs, ys) in members:
        if kind == "bar":
            horiz = _is_hbar(t)
            fp, fv = (fy, fx) if horiz else (fx, fy)
            pv = zip(ys, xs) if horiz else zip(xs, ys)
            items = [(fp(p), fv(v), k) for k, (p, v) in enumerate(pv)]
            bars.append((i, t, horiz, [it for it in items if it[0] is not None and it[1] is not None]))
            continue
        pts = []
        for xv, yv in zip(xs, ys):
            xn, yn = fx(xv), fy(yv)
            pts.append((xn, yn) if xn is not None and yn is not None else None)
        if len(pts) > 1500:  # decimate for the picture only
            stride = math.ceil(len(pts) / 1000)
            pts = pts[::stride] + [pts[-1]]
        series.append((t, i, pts))

    # bars: (horizontal, position from, position to, value from, value to, colour, error bar)
    rects = []
    barmode = lay.get("barmode") or "group"
    gap = _num(lay.get("bargap"))
    gap = 0.2 if gap is None else gap
    positions = sorted({p for _, _, _, items in bars for p, _, _ in items})
    steps = [b - a for a, b in zip(positions, positions[1:]) if b > a]
    unit = 1.0 if (xcat is not None or ycat is not None or not steps) else min(steps)
    grouped = barmode == "group" and len(bars) > 1
    stack_pos, stack_neg = {}, {}
    for j, (i, t, horiz, items) in enumerate(bars):
        color = _trace_color(t, i)
        per_bar = (t.get("marker") or {}).get("color")
        per_bar = _array(per_bar) if isinstance(per_bar, (list, dict)) else None
        err = (t.get("error_x") if horiz else t.get("error_y")) or {}
        plus = _array(err.get("array")) if err.get("visible", True) and err.get("array") is not None else None
        minus = _array(err.get("arrayminus")) if plus is not None and err.get("arrayminus") is not None else plus
        full = unit * (1 - gap)
        w = full / len(bars) if grouped else full
        for p, v, k in items:
            c = p - full / 2 + (j + 0.5) * w if grouped else p
            base = 0.0
            if barmode in ("stack", "relative"):
                book = stack_neg if barmode == "relative" and v < 0 else stack_pos
                base = book.get(p, 0.0)
                book[p] = base + v
            col = str(per_bar[k]) if per_bar is not None and k < len(per_bar) and isinstance(per_bar[k], str) \
                else color
            eb = None
            if plus is not None and k < len(plus) and _num(plus[k]) is not None:
                em = _num(minus[k]) if minus is not None and k < len(minus) else None
                eb = (base + v - (em if em is not None else _num(plus[k])), base + v + _num(plus[k]))
            rects.append((horiz, c - w / 2, c + w / 2, base, base + v, col, eb))

    xv = [p[0] for _, _, ps in series for p in ps if p is not None]
    yv = [p[1] for _, _, ps in series for p in ps if p is not None]
    for horiz, a0, a1, b0, b1, _, eb in rects:
        pos, val = (yv, xv) if horiz else (xv, yv)
        pos += [a0, a1]
        val += [b0, b1] + (list(eb) if eb else [])
    xt, xlo, xhi = _axis_ticks(xv, xcat, xlog, data_range=not rects)
    yt, ylo, yhi = _axis_ticks(yv, ycat, ylog, data_range=False)

    def sx(v):
        return x0 + (v - xlo) / ((xhi - xlo) or 1) * (x1 - x0)

    def sy(v):
        return y1 - (v - ylo) / ((yhi - ylo) or 1) * (y1 - y0)

    out = [f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" fill="#e5ecf6"/>']
    for v, label in yt:
        yy = sy(v)
        out.append(f'<line x1="{x0:.1f}" y1="{yy:.1f}" x2="{x1:.1f}" y2="{yy:.1f}" '
                   f'stroke="white"/><text x="{x0 - 4:.1f}" y="{yy + 3.5:.1f}" font-size="10" '
                   f'text-anchor="end" fill="#444">{escape(str(label))}</text>')
    for n, (v, label) in enumerate(xt):
        xx = sx(v)
        out.append(f'<line x1="{xx:.1f}" y1="{y0:.1f}" x2="{xx:.1f}" y2="{y1:.1f}" stroke="white"/>')
        if n % thin:
            continue
        if rotate:
            out.append(f'<text transform="translate({xx:.1f},{y1 + 10:.1f}) rotate(-35)" font-size="10" '
                       f'text-anchor="end" fill="#444">{escape(str(label))}</text>')
        else:
            out.append(f'<text x="{xx:.1f}" y="{y1 + 13:.1f}" font-size="10" text-anchor="middle" '
                       f'fill="#444">{escape(str(label))}</text>')
    for horiz, a0, a1, b0, b1, col, eb in rects:
        if horiz:
            rx0, rx1, ry0, ry1 = sorted((sx(b0), sx(b1))) + sorted((sy(a1), sy(a0)))
        else:
            rx0, rx1, ry0, ry1 = sorted((sx(a0), sx(a1))) + sorted((sy(b1), sy(b0)))
        out.append(f'<rect x="{rx0:.1f}" y="{ry0:.1f}" width="{rx1 - rx0:.1f}" height="{ry1 - ry0:.1f}" '
                   f'fill="{escape(col)}"/>')
        if eb:
            mid = (a0 + a1) / 2
            if horiz:
                e0, e1, m = sx(eb[0]), sx(eb[1]), sy(mid)
                out.append(f'<path d="M{e0:.1f},{m:.1f}H{e1:.1f}M{e0:.1f},{m - 4:.1f}V{m + 4:.1f}'
                           f'M{e1:.1f},{m - 4:.1f}V{m + 4:.1f}" stroke="#444" fill="none"/>')
            else:
                e0, e1, m = sy(eb[0]), sy(eb[1]), sx(mid)
                out.append(f'<path d="M{m:.1f},{e0:.1f}V{e1:.1f}M{m - 4:.1f},{e0:.1f}H{m + 4:.1f}'
                           f'M{m - 4:.1f},{e1:.1f}H{m + 4:.1f}" stroke="#444" fill="none"/>')
    for t, i, pts in series:
        color = _trace_color(t, i)
        mode = t.get("mode") or ("lines+markers" if len(pts) < 20 else "lines")
        segs, cur = [], []
        for p in pts:
            if p is None:
                if cur:
                    segs.append(cur)
                cur = []
            else:
                cur.append(f"{sx(p[0]):.1f},{sy(p[1]):.1f}")
        if cur:
            segs.append(cur)
        if "lines" in mode:
            for seg in segs:
                if len(seg) > 1:
                    out.append(f'<polyline points="{" ".join(seg)}" fill="none" '
                               f'stroke="{color}" stroke-width="2"/>')
        if "markers" in mode or all(len(s) == 1 for s in segs):
            for seg in segs:
                for p in seg[:400]:
                    cx, cy = p.split(",")
                    out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
    return out


def _raster_svg(traces, kinds, lay, yl, box):
    """One subplot of heatmaps and images, each drawn as an embedded PNG (heatmaps with cell
    labels where they fit, their axis labels and a colorbar). None if one cannot be drawn."""
    import numpy as np

    x0, y0, x1, y1 = box
    out = []
    for t, kind in zip(traces, kinds):
        if kind == "image":
            src = t.get("source")
            if isinstance(src, str) and src.startswith("data:image/"):
                href = src
            else:
                z = _ndarray(t.get("z"))
                if z.ndim != 3 or z.shape[2] not in (3, 4):
                    return None
                model = t.get("colormodel") or ("rgba" if z.shape[2] == 4 else "rgb")
                if model not in ("rgb", "rgba", "rgba256"):
                    return None
                lo = np.array((t.get("zmin") or [0, 0, 0])[:3], dtype=float)
                hi = np.array((t.get("zmax") or [255, 255, 255])[:3], dtype=float)
                rgb = (np.nan_to_num(z[..., :3]) - lo) / np.where(hi > lo, hi - lo, 1) * 255
                if z.shape[2] == 4:
                    alpha = np.clip(np.nan_to_num(z[..., 3:4]) / (255 if model == "rgba256" else 1), 0, 1)
                    rgb = rgb * alpha + 255 * (1 - alpha)
                href = _png_uri(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
            out.append(f'<image x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                       f'preserveAspectRatio="xMidYMid meet" style="image-rendering:pixelated" href="{href}"/>')
            continue
        z = _ndarray(t.get("z"))
        if z.ndim == 1:
            z = z[None, :]
        if z.ndim != 2 or z.size == 0:
            return None
        ca = lay.get(t["coloraxis"]) if isinstance(t.get("coloraxis"), str) else {}
        ca = ca if isinstance(ca, dict) else {}
        finite = z[np.isfinite(z)]
        zmin = _num(t.get("zmin", ca.get("cmin")))
        zmax = _num(t.get("zmax", ca.get("cmax")))
        zmin = zmin if zmin is not None else (float(finite.min()) if finite.size else 0.0)
        zmax = zmax if zmax is not None else (float(finite.max()) if finite.size else 1.0)
        stops = _colorscale(t, lay)
        lut = _lut(stops)
        span = (zmax - zmin) or 1.0
        idx = np.clip(np.rint((np.nan_to_num(z, nan=zmin) - zmin) / span * 255), 0, 255).astype(int)
        pixels = lut[idx]
        pixels[~np.isfinite(z)] = 255
        rows, cols = z.shape
        flip = yl.get("autorange") != "reversed"   # plotly draws row 0 at the bottom
        out.append(f'<image x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                   f'preserveAspectRatio="none" style="image-rendering:pixelated" '
                   f'href="{_png_uri(pixels[::-1] if flip else pixels)}"/>')
        cw, ch = (x1 - x0) / cols, (y1 - y0) / rows

        def cy(r):
            return (y1 - (r + 0.5) * ch) if flip else (y0 + (r + 0.5) * ch)

        xs = _array(t.get("x")) if t.get("x") is not None else list(range(cols))
        ys = _array(t.get("y")) if t.get("y") is not None else list(range(rows))
        xstep, ystep = max(1, math.ceil(cols / max(1, (x1 - x0) / 40))), max(1, math.ceil(rows / max(1, (y1 - y0) / 14)))
        for c in range(0, min(cols, len(xs)), xstep):
            label = xs[c] if isinstance(xs[c], str) else _fmt_tick(_num(xs[c]) or 0)
            out.append(f'<text x="{x0 + (c + 0.5) * cw:.1f}" y="{y1 + 13:.1f}" font-size="10" '
                       f'text-anchor="middle" fill="#444">{escape(str(label))}</text>')
        for r in range(0, min(rows, len(ys)), ystep):
            label = ys[r] if isinstance(ys[r], str) else _fmt_tick(_num(ys[r]) or 0)
            out.append(f'<text x="{x0 - 4:.1f}" y="{cy(r) + 3.5:.1f}" font-size="10" '
                       f'text-anchor="end" fill="#444">{escape(str(label))}</text>')
        template, texts = t.get("texttemplate"), t.get("text")
        if (template or texts is not None) and z.size <= 400:
            texts = texts if isinstance(texts, list) else None
            for r in range(rows):
                for c in range(cols):
                    text = texts[r][c] if texts and r < len(texts) and isinstance(texts[r], list) \
                        and c < len(texts[r]) else None
                    label = _fmt_cell(template, z[r, c], text) if np.isfinite(z[r, c]) or text else ""
                    if label:
                        dark = sum(int(v) for v in pixels[r, c]) < 383
                        out.append(f'<text x="{x0 + (c + 0.5) * cw:.1f}" y="{cy(r) + 3.5:.1f}" font-size="10" '
                                   f'text-anchor="middle" fill="{"white" if dark else "black"}">'
                                   f'{escape(label)}</text>')
        if t.get("showscale", ca.get("showscale")) is not False:
            gid = f"cb{abs(hash((x0, y0, zmin, zmax, tuple(stops)))) % 10**8}"
            bx = x1 + 14
            grad = "".join(f'<stop offset="{p:.3f}" stop-color="rgb{tuple(int(v) for v in c)}"/>'
                           for p, c in stops)
            out.append(f'<defs><linearGradient id="{gid}" x1="0" y1="1" x2="0" y2="0">{grad}'
                       f'</linearGradient></defs><rect x="{bx:.1f}" y="{y0:.1f}" width="12" '
                       f'height="{y1 - y0:.1f}" fill="url(#{gid})"/>')
            for v, yy in ((zmax, y0 + 8), ((zmin + zmax) / 2, (y0 + y1) / 2 + 3.5), (zmin, y1)):
                out.append(f'<text x="{bx + 16:.1f}" y="{yy:.1f}" font-size="10" fill="#444">'
                           f'{_fmt_tick(v)}</text>')
    return out


def _trace_color(t, i):
    for path in (("line", "color"), ("marker", "color")):
        v = (t.get(path[0]) or {}).get(path[1])
        if isinstance(v, str):
            return v
    return COLORS[i % len(COLORS)]


# ---------------------------------------------------------------------------- LivePlot

class LivePlot:
    """A grid of plotly panels, one per metric, with several named series per panel.

    Parameters: ``metrics`` (panel names), ``title``, ``cols`` (panels per row),
    ``throttle`` (seconds between live redraws), ``live`` (None: detect, see
    :func:`live_mode`), ``height`` (pixels per row of panels), ``xlabel``.
    """

    def __init__(self, metrics, title=None, cols=3, *, throttle=0.5, live=None,
                 height=260, xlabel="step"):
        if isinstance(metrics, str):
            metrics = [metrics]
        metrics = list(metrics)
        if not metrics or not all(isinstance(m, str) and m for m in metrics):
            raise ValueError("LivePlot: metrics must be a non-empty list of names")
        if len(set(metrics)) != len(metrics):
            raise ValueError("LivePlot: metric names must be distinct")
        if not isinstance(cols, int) or isinstance(cols, bool) or cols < 1:
            raise ValueError(f"LivePlot: cols must be an integer >= 1; got {cols!r}")
        self.metrics = metrics
        self.title = title
        self.cols = min(cols, len(metrics))
        self.rows = math.ceil(len(metrics) / self.cols)
        self.throttle = float(throttle)
        self.row_height = int(height)
        self.xlabel = xlabel
        self.data: dict[str, dict[str, tuple[list, list]]] = {}
        self.draws = 0
        self.closed = False
        self._series_order: list[str] = []
        self._trace_index: dict[tuple[str, str], int] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._last_draw = -math.inf
        self._widget = None
        self._handle = None
        self.live = live_mode() if live is None else bool(live)
        if self.live:
            try:
                import plotly.graph_objects as go

                self._widget = go.FigureWidget(self._base_figure())
            except Exception as e:  # ImportError without anywidget, or a broken widget stack
                reason = "anywidget is not installed" if isinstance(e, ImportError) else \
                    f"{type(e).__name__}: {e}".splitlines()[0][:120]
                warnings.warn(f"LivePlot: no live widget ({reason}); the figure is shown at close()",
                              stacklevel=2)
                self.live = False
            else:
                self._handle = _display(self._widget, display_id=True)

    # -- figure construction
    def _base_figure(self):
        from plotly.subplots import make_subplots

        n = len(self.metrics)
        specs = [[{} if r * self.cols + c < n else None for c in range(self.cols)]
                 for r in range(self.rows)]
        fig = make_subplots(rows=self.rows, cols=self.cols, subplot_titles=self.metrics, specs=specs,
                            horizontal_spacing=min(0.08, 0.6 / self.cols),
                            vertical_spacing=min(0.12, 0.6 / self.rows))
        legend_h = 30
        fig.update_layout(
            title=self.title, height=self.row_height * self.rows + 70 + legend_h,
            margin=dict(l=50, r=20, t=80 if self.title else 50, b=40),
            legend=dict(orientation="h", yanchor="bottom", y=1.0 + 0.12 / self.rows,
                        xanchor="right", x=1),  # top right: clear of the title (top left)
        )
        for k in range(len(self.metrics)):
            r, c = divmod(k, self.cols)
            if r == self.rows - 1 or k + self.cols >= len(self.metrics):
                fig.update_xaxes(title_text=self.xlabel, row=r + 1, col=c + 1)
        return fig

    def _trace_kwargs(self, series, metric):
        si = self._series_order.index(series)
        k = self.metrics.index(metric)
        show = len(self._series_order) > 1 or series != "main"
        return dict(x=[], y=[], name=series, legendgroup=series, mode="lines",
                    line=dict(color=COLORS[si % len(COLORS)], width=2),
                    showlegend=show and not any(s == series for (s, _m) in self._trace_index),
                    ), (k // self.cols + 1, k % self.cols + 1)

    def figure(self):
        """A static ``plotly.graph_objects.Figure`` of everything so far."""
        fig = self._base_figure()
        seen = set()
        for series in self._series_order:
            si = self._series_order.index(series)
            for metric in self.metrics:
                xs, ys = self.data[series].get(metric, ([], []))
                if not xs:
                    continue
                k = self.metrics.index(metric)
                show = (len(self._series_order) > 1 or series != "main") and series not in seen
                seen.add(series)
                fig.add_scatter(x=list(xs), y=list(ys), name=series, legendgroup=series,
                                mode="lines+markers" if len(xs) < 20 else "lines",
                                line=dict(color=COLORS[si % len(COLORS)], width=2),
                                showlegend=show, row=k // self.cols + 1, col=k % self.cols + 1)
        return fig

    # -- updates
    def update(self, step, values: dict, series: str = "main"):
        """Add the point ``(step, value)`` for every panel named in ``values``."""
        if self.closed:
            raise RuntimeError("LivePlot.update after close()")
        if not isinstance(series, str) or not series:
            raise ValueError(f"LivePlot.update: series must be a non-empty string; got {series!r}")
        x = _scalar(step)
        if series not in self.data:
            self.data[series] = {}
            self._series_order.append(series)
        for metric, value in values.items():
            if metric not in self.metrics:
                continue
            y = _scalar(value)
            xs, ys = self.data[series].setdefault(metric, ([], []))
            xs.append(x)
            ys.append(y)
            self._dirty.add((series, metric))
        if self.live:
            now = time.monotonic()
            if now - self._last_draw >= self.throttle:
                self._draw()

    def _draw(self):
        if self._widget is None or not self._dirty:
            return
        w = self._widget
        with w.batch_update():
            for key in sorted(self._dirty, key=lambda k: (self._series_order.index(k[0]), k[1])):
                series, metric = key
                xs, ys = self.data[series][metric]
                if key not in self._trace_index:
                    kw, (r, c) = self._trace_kwargs(series, metric)
                    w.add_scatter(row=r, col=c, **kw)
                    self._trace_index[key] = len(w.data) - 1
                tr = w.data[self._trace_index[key]]
                tr.x = list(xs)
                tr.y = list(ys)
        self._dirty.clear()
        self._last_draw = time.monotonic()
        self.draws += 1

    def close(self):
        """Finish: live -> draw the last points and swap the widget for the static figure;
        headless -> display the final figure. Calling it twice does nothing."""
        if self.closed:
            return
        self.closed = True
        if self.live and self._widget is not None:
            self._draw()
            if self._handle is not None:
                try:
                    self._handle.update(figure_bundle(self.figure()), raw=True)
                    return
                except Exception:  # pragma: no cover
                    pass
            return
        self._handle = show(self.figure())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return (f"LivePlot({self.metrics!r}, series={self._series_order!r}, "
                f"{'live' if self.live else 'headless'})")


def _scalar(v):
    if hasattr(v, "detach"):
        v = v.detach().cpu()
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"LivePlot: expected a number; got {type(v).__name__}") from None
    return v
