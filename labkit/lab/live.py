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
displays any plotly figure the same way (the SVG only for line/scatter figures).
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


def to_svg(fig, width=None, height=None) -> str | None:
    """Draw a figure made of line/scatter traces (subplots allowed) as SVG, without a
    browser. Returns None for figures with other trace types."""
    d = fig if isinstance(fig, dict) else _plotly_json(fig)
    traces = d.get("data", [])
    if any(t.get("type", "scatter") not in ("scatter", "scattergl") for t in traces):
        return None
    lay = d.get("layout", {})
    W = int(width or lay.get("width") or 960)
    H = int(height or lay.get("height") or 420)
    title = lay.get("title")
    title = title.get("text") if isinstance(title, dict) else title
    ml, mr, mb = 56, 16, 40
    named = [t for t in traces if t.get("name") and t.get("showlegend", True) is not False]
    legend_names = []
    for t in named:
        if t["name"] not in [n for n, _ in legend_names]:
            legend_names.append((t["name"], _trace_color(t, traces.index(t))))
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
        for name, color in legend_names:
            out.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{color}" '
                       f'stroke-width="2.5"/><text x="{x + 22}" y="{y}" font-size="12">'
                       f'{escape(str(name))}</text>')
            x += 34 + 7 * len(str(name))

    axes = sorted({(t.get("xaxis", "x"), t.get("yaxis", "y")) for t in traces} |
                  {("x" + k[5:], lay[k].get("anchor", "y" + k[5:]))
                   for k in lay if k.startswith("xaxis") and isinstance(lay[k], dict)})
    for xa, ya in axes:
        xl = lay.get("xaxis" + xa[1:], {}) or {}
        yl = lay.get("yaxis" + ya[1:], {}) or {}
        xd = xl.get("domain", [0, 1])
        yd = yl.get("domain", [0, 1])
        x0, x1, y0, y1 = px(xd[0]), px(xd[1]), py(yd[1]), py(yd[0])
        xlog, ylog = xl.get("type") == "log", yl.get("type") == "log"
        series = []
        for i, t in enumerate(traces):
            if (t.get("xaxis", "x"), t.get("yaxis", "y")) != (xa, ya):
                continue
            ys = _array(t.get("y"))
            xs = _array(t.get("x")) if t.get("x") is not None else None
            if xs is None or len(xs) != len(ys):
                xs = list(range(len(ys)))
            pts = []
            for xv, yv in zip(xs, ys):
                xn, yn = _num(xv), _num(yv)
                if xn is not None and xlog:
                    xn = math.log10(xn) if xn > 0 else None
                if yn is not None and ylog:
                    yn = math.log10(yn) if yn > 0 else None
                pts.append((xn, yn) if xn is not None and yn is not None else None)
            if len(pts) > 1500:  # decimate for the picture only
                stride = math.ceil(len(pts) / 1000)
                pts = pts[::stride] + [pts[-1]]
            series.append((t, i, pts))
        good = [p for _, _, ps in series for p in ps if p is not None]
        if good:
            gx0, gx1 = min(p[0] for p in good), max(p[0] for p in good)
            xt, xlo, xhi = _nice_ticks(gx0, gx1)
            if gx1 > gx0:  # x: the data's own range, ticks inside it
                xlo, xhi = gx0, gx1
                xt = [v for v in xt if gx0 - 1e-9 <= v <= gx1 + 1e-9]
            yt, ylo, yhi = _nice_ticks(min(p[1] for p in good), max(p[1] for p in good))
        else:
            xt, xlo, xhi = [0, 1], 0, 1
            yt, ylo, yhi = [0, 1], 0, 1

        def sx(v):
            return x0 + (v - xlo) / ((xhi - xlo) or 1) * (x1 - x0)

        def sy(v):
            return y1 - (v - ylo) / ((yhi - ylo) or 1) * (y1 - y0)

        out.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                   f'fill="#e5ecf6"/>')
        for v in yt:
            yy = sy(v)
            out.append(f'<line x1="{x0:.1f}" y1="{yy:.1f}" x2="{x1:.1f}" y2="{yy:.1f}" '
                       f'stroke="white"/><text x="{x0 - 4:.1f}" y="{yy + 3.5:.1f}" font-size="10" '
                       f'text-anchor="end" fill="#444">{_fmt_tick(v, ylog)}</text>')
        for v in xt:
            xx = sx(v)
            out.append(f'<line x1="{xx:.1f}" y1="{y0:.1f}" x2="{xx:.1f}" y2="{y1:.1f}" '
                       f'stroke="white"/><text x="{xx:.1f}" y="{y1 + 13:.1f}" font-size="10" '
                       f'text-anchor="middle" fill="#444">{_fmt_tick(v, xlog)}</text>')
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
        xtitle = (xl.get("title") or {})
        xtitle = xtitle.get("text") if isinstance(xtitle, dict) else xtitle
        if xtitle:
            out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{y1 + 27:.1f}" font-size="11" '
                       f'text-anchor="middle">{escape(str(xtitle))}</text>')
    for a in lay.get("annotations", []) or []:
        if a.get("xref") == "paper" and a.get("yref") == "paper" and a.get("text"):
            ax, ay = px(a.get("x", 0.5)), py(a.get("y", 1.0))
            ay = ay - 6 if a.get("yanchor") == "bottom" else ay
            anchor = {"left": "start", "right": "end"}.get(a.get("xanchor"), "middle")
            out.append(f'<text x="{ax:.1f}" y="{ay:.1f}" font-size="13" text-anchor="{anchor}">'
                       f'{escape(str(a["text"]))}</text>')
    out.append("</svg>")
    return "\n".join(out)


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
