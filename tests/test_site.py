"""labkit site: static SVG for bar, heatmap and image figures; the static copy of an executed
notebook; the site from a fabricated run directory (--runs) and from a tiny notebook executed
at smoke scale; one-line errors for bad input."""
import base64
import importlib.util
import json
import re
import struct
import xml.etree.ElementTree as ET

import nbformat
import numpy as np
import plotly.graph_objects as go
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from labkit.lab import live
from labkit.lab.cli import main
from labkit.lab.notebooks import discover
from labkit.lab.site import build_site, find_runs, static_notebook
from notebook_factory import write_notebook

SVG_NS = "{http://www.w3.org/2000/svg}"
PLOTLY = "application/vnd.plotly.v1+json"


def _svg(fig):
    svg = live.to_svg(fig)
    assert svg is not None
    return ET.fromstring(svg)


def _png_size(href):
    """(width, height) of a PNG data URI, read from its IHDR chunk."""
    assert href.startswith("data:image/png;base64,")
    png = base64.b64decode(href.split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


# ---------------------------------------------------------------------------- SVG

def test_bars_grouped_stacked_and_horizontal():
    grouped = go.Figure([go.Bar(x=["a", "b", "c"], y=[1, 2, 3], name="before"),
                         go.Bar(x=["a", "b", "c"], y=[2, 1, 1], name="after")])
    grouped.update_layout(barmode="group", title="pass@1", yaxis_title="rate")
    root = _svg(grouped)
    texts = [t.text for t in root.iter(SVG_NS + "text")]
    assert {"a", "b", "c", "before", "after", "pass@1", "rate"} <= set(texts)
    rects = [r for r in root.iter(SVG_NS + "rect") if r.get("fill") not in ("white", "#e5ecf6")]
    swatches = [r for r in rects if (r.get("width"), r.get("height")) == ("12", "12")]
    bars = [r for r in rects if r not in swatches]
    assert len(swatches) == 2 and len(bars) == 6
    assert len({r.get("width") for r in bars}) == 1            # grouped bars share a width
    heights = [float(r.get("height")) for r in bars if r.get("fill") == "#636efa"]
    assert heights[0] < heights[1] < heights[2]               # before: 1 < 2 < 3

    stacked = go.Figure([go.Bar(x=["a", "b"], y=[1, 2]), go.Bar(x=["a", "b"], y=[3, 4])])
    stacked.update_layout(barmode="stack")
    ticks = [t.text for t in _svg(stacked).iter(SVG_NS + "text")]
    assert "6" in ticks                                       # the value axis reaches the stack's top

    horizontal = go.Figure(go.Bar(x=[3, 1], y=["first", "second"], orientation="h",
                                  error_x=dict(array=[0.5, 0.5])))
    root = _svg(horizontal)
    assert {"first", "second"} <= {t.text for t in root.iter(SVG_NS + "text")}
    assert len(list(root.iter(SVG_NS + "path"))) == 2          # the error bars


def test_long_category_labels_are_rotated():
    fig = go.Figure(go.Bar(x=[f"a_rather_long_method_name_{i}" for i in range(12)], y=list(range(12))))
    labels = [t for t in _svg(fig).iter(SVG_NS + "text") if (t.text or "").startswith("a_rather")]
    assert len(labels) == 12 and all("rotate(-35)" in t.get("transform", "") for t in labels)


def test_heatmap_is_an_embedded_png_with_labels_and_a_colorbar():
    z = np.arange(12, dtype=float).reshape(3, 4)
    fig = go.Figure(go.Heatmap(z=z, x=["a", "b", "c", "d"], y=["r1", "r2", "r3"],
                               texttemplate="%{z:.1f}", colorscale="Viridis"))
    root = _svg(fig)
    (image,) = root.iter(SVG_NS + "image")
    assert _png_size(image.get("href")) == (4, 3)
    texts = {t.text for t in root.iter(SVG_NS + "text")}
    assert {"a", "d", "r1", "r3", "0.0", "11.0"} <= texts     # axis labels and cell labels
    assert root.find(f".//{SVG_NS}linearGradient") is not None   # the colorbar
    # numpy arrays (plotly's typed arrays) and lists draw the same picture
    assert live.to_svg(go.Figure(go.Heatmap(z=z.tolist()))) == live.to_svg(go.Figure(go.Heatmap(z=z)))
    assert "image/svg+xml" in live.figure_bundle(fig)


def test_heatmap_colours_follow_the_colorscale_and_the_row_order():
    import zlib

    fig = go.Figure(go.Heatmap(z=[[0, 0], [1, 1]], colorscale=[[0, "#000000"], [1, "#ffffff"]],
                               showscale=False))
    root = _svg(fig)
    png = base64.b64decode(next(root.iter(SVG_NS + "image")).get("href").split(",", 1)[1])
    idat = png[png.index(b"IDAT") + 4:]
    rows = zlib.decompressobj().decompress(idat)
    first, second = rows[1:7], rows[8:14]                      # each row: filter byte + 2 RGB pixels
    assert first == b"\xff" * 6 and second == b"\x00" * 6      # row 1 (z=1) on top, as plotly draws it
    assert root.find(f".//{SVG_NS}linearGradient") is None     # showscale=False


def test_image_traces_and_imshow():
    rgb = np.zeros((16, 24, 3), dtype=np.uint8)
    rgb[:8, :, 0] = 255
    root = _svg(go.Figure(go.Image(z=rgb)))
    (image,) = root.iter(SVG_NS + "image")
    assert _png_size(image.get("href")) == (24, 16)
    assert "pixelated" in image.get("style")
    source = "data:image/png;base64,iVBORw0KGgo="
    assert next(_svg(go.Figure(go.Image(source=source))).iter(SVG_NS + "image")).get("href") == source
    import plotly.express as px

    assert live.to_svg(px.imshow(rgb)) is not None and live.to_svg(px.imshow(rgb[..., 0] / 255)) is not None
    bundle = live.figure_bundle(go.Figure(go.Image(z=rgb)))
    assert "image/svg+xml" in bundle
    assert live.to_svg(go.Figure(go.Sunburst(labels=["a"], parents=[""]))) is None


# ---------------------------------------------------------------------------- static copy

def _executed(path, verdict="verdict  acc_gain: held on this seed (+0.200; claimed > +0.15): GRPO helps"):
    """An executed-looking notebook: math, a verdict line, a bar figure without SVG (made before
    bars had one), a sunburst, a progress-bar widget and a scrapbook record."""
    bars = live._plotly_json(go.Figure(go.Bar(x=["a", "b"], y=[1, 2], name="acc")))
    sun = live._plotly_json(go.Figure(go.Sunburst(labels=["a", "b"], parents=["", "a"])))
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.cells = [
        new_markdown_cell("# 01 · A fabricated run\n\nThe loss $\\mathcal{L}(\\theta) = x^2$ and\n\n"
                          "$$\\sum_i \\frac{a_i}{b}$$"),
        new_code_cell("train()", outputs=[
            new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                             "text/plain": "  0%|          | 0/40"}),
            new_output("stream", name="stdout", text=f"{verdict}\n"),
            new_output("display_data", data={PLOTLY: bars, "text/plain": "<plotly figure>"}),
            new_output("display_data", data={PLOTLY: sun, "text/plain": "<plotly figure>"}),
            new_output("display_data", data={"application/scrapbook.scrap.json+json": {"name": "y"}}),
        ]),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def test_static_notebook_keeps_pictures_and_drops_what_needs_scripts(tmp_path):
    nb = json.loads(_executed(tmp_path / "x.ipynb").read_text())
    static = static_notebook(nb)
    outputs = static["cells"][1]["outputs"]
    assert [o["output_type"] for o in outputs] == ["stream", "display_data", "display_data"]
    bars, sun = outputs[1]["data"], outputs[2]["data"]
    assert set(bars) == {"image/svg+xml"} and "<rect" in bars["image/svg+xml"]
    assert set(sun) == {"text/html"} and "sunburst" in sun["text/html"]
    assert "widgets" not in static["metadata"] and "widgets" in nb["metadata"]   # a copy


# ---------------------------------------------------------------------------- the site

def _fabricated_runs(root):
    """runs/ with seed 0 of a group (newest), an older seed-0 run and a seed-1 run of 01."""
    stem = discover()[1].stem
    assert stem.startswith("01_")
    group = root / stem / "20260102-000000-workshop-seeds0-1-2-1-aaaaaa"
    runs = {"new": group / "seed0", "seed1": group / "seed1",
            "old": root / stem / "20250101-000000-workshop-seed0-1-bbbbbb"}
    for name, d in runs.items():
        _executed(d / f"{stem}.ipynb", verdict=f"verdict  acc_gain: held on this seed ({name})")
        seed = 1 if name == "seed1" else 0
        started = "2025-01-01T00:00:00" if name == "old" else "2026-01-02T00:00:00"
        (d / "run.json").write_text(json.dumps({"notebook": f"/elsewhere/{stem}.ipynb", "scale": "workshop",
                                                "seed": seed, "status": "ok", "started": started,
                                                "duration": 90.0}))
        (d / "results.json").write_text(json.dumps({"acc_gain": 0.2, "held/acc_gain": True}))
    (group / "summary.json").write_text(json.dumps({"summary": [
        {"name": "held/acc_gain", "n": 3, "mean": 0.67, "std": 0.5, "values": [True, False, True],
         "seeds": [0, 1, 2]}]}))
    return stem, runs


def test_find_runs_takes_the_newest_run_of_the_seed(tmp_path):
    stem, runs = _fabricated_runs(tmp_path / "runs")
    infos = discover()
    assert find_runs([tmp_path / "runs"], infos) == {stem: runs["new"] / f"{stem}.ipynb"}
    assert find_runs([tmp_path / "runs"], infos, seed=1) == {stem: runs["seed1"] / f"{stem}.ipynb"}
    assert find_runs([tmp_path / "runs"], infos, scale="smoke") == {}
    (runs["new"] / "run.json").write_text(json.dumps({"seed": 0, "scale": "workshop", "status": "failed",
                                                      "started": "2026-01-02T00:00:00"}))
    assert find_runs([tmp_path / "runs"], infos) == {stem: runs["old"] / f"{stem}.ipynb"}  # ok wins


def test_site_from_runs_lists_the_run_and_its_page_is_static(tmp_path, capsys):
    stem, runs = _fabricated_runs(tmp_path / "runs")
    out = tmp_path / "site"
    assert main(["site", str(out), "--runs", str(tmp_path / "runs")]) == 0
    assert f"{stem}.html" in capsys.readouterr().out
    index = (out / "index.html").read_text()
    title = discover()[1].title
    assert f'href="{stem}.html">{title}</a>' in index.replace("&#x27;", "'")
    assert "acc_gain: held on this seed (new)" in index and "held on 2/3 seeds" in index
    assert "mybinder.org" in index and f"labpath=notebooks/{stem}.ipynb" in index
    assert "Not rendered" in index and discover()[2].stem in index   # no run of 02 here
    page = (out / f"{stem}.html").read_text()
    assert page.count("<svg") == 1 and "<rect" in page              # the bars, inline
    assert "sunburst" in page and "open the notebook in JupyterLab or Binder" in page
    assert "<script" not in page and "<script" not in index          # offline: no script at all
    assert not re.search(r"""(src|href)=["']https?://[^"']*\.js""", page)
    assert "0/40" not in page                                        # the progress bar is gone
    assert 'href="index.html"' in page
    if importlib.util.find_spec("latex2mathml"):
        assert "<math" in page and 'display="block"' in page
    else:
        assert "\\mathcal{L}" in page


def test_site_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    for argv, message in (
            (["site", str(tmp_path / "out"), "--runs", str(tmp_path / "nope")], "is not a directory"),
            (["site", str(tmp_path / "out"), "--runs", str(tmp_path / "empty")], "no executed notebook"),
            (["site", str(tmp_path / "file"), "--runs", str(tmp_path / "empty")], "is a file"),
            (["site", str(tmp_path / "out"), "--scale", "huge"], "scale must be one of"),
            (["site", str(tmp_path / "out"), "--seed", "-1"], "seed")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "index.html").exists()


def test_site_executes_a_tiny_notebook_at_smoke_scale(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("LABKIT_RUN_DIR", raising=False)
    nb = write_notebook(tmp_path / "nbs" / "90_tiny.ipynb", "90 · Tiny", 'scale = "workshop"\nseed = 0',
                        ["import numpy as np\nimport plotly.graph_objects as go\nimport labkit\n"
                         "from labkit.lab.live import show\n"
                         "run = labkit.setup(scale=scale, seed=seed, device='cpu')",
                         "show(go.Figure(go.Bar(x=['grpo', 'sage'], y=[0.4, 0.6], name='acc')))\n"
                         "show(go.Figure(go.Heatmap(z=np.eye(3))))",
                         "labkit.record('y', 0.6)\n"
                         "labkit.verdict('gain', 0.2, above=0, claim='sage beats grpo')"])
    events = []
    site = build_site(tmp_path / "site", notebooks=[nb], scale="smoke",
                      on_event=lambda kind, info, detail: events.append(kind))
    assert events == ["run", "ran", "page"] and not site.failed and not site.missing
    (page,) = site.pages
    assert page.run["scale"] == "smoke" and page.verdicts[0][:2] == ("gain", True)
    html = (tmp_path / "site" / "90_tiny.html").read_text()
    assert html.count("<svg") == 2 and "data:image/png;base64," in html and "<script" not in html
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'href="90_tiny.html">90 · Tiny</a>' in index and "sage beats grpo" in index
    assert "[smoke scale" not in index                               # the note stays in the page
    assert site.size == sum(p.stat().st_size for p in (tmp_path / "site").glob("*.html"))
