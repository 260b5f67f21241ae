"""A static site of the executed notebooks: an index and one HTML page per notebook.

    labkit site OUT_DIR [--runs DIR ...] [--scale S] [--seed N]

With ``--runs DIR`` it renders, for each series notebook, the newest executed copy found under
DIR (any depth: run directories, groups of seeds, sweeps) for ``--seed`` (default 0: seed 0 of a
multi-seed run), preferring runs whose ``run.json`` says ``ok``, and only ``--scale`` runs when
it is given. Without ``--runs`` it first executes every notebook at ``--scale`` (default
workshop) with :func:`labkit.lab.runs.execute` (into the usual ``runs/<NN_name>/``) and renders
those runs.

``OUT_DIR/index.html`` is the series table: number, title (a link to the page), papers, the
run (scale, seed, status, minutes) and its verdict lines (held / not on this seed, and over the
seeds of its group when the run belongs to one: ``summary.json``), with badges (launch in
Binder, notebooks, papers covered, claims held). ``OUT_DIR/NN_name.html`` is the executed
notebook rendered by nbconvert's ``lab`` template, outputs included.

The site works offline and loads no script: plotly figures are shown as the SVG that
:func:`labkit.lab.live.to_svg` draws (already in the output, or drawn here from the figure's
JSON for runs made before bars, heatmaps and images had one), inline; the plotly JSON, widget
views (progress bars), scrapbook records and JavaScript outputs are dropped from the rendered
copy; a figure that has no SVG (sunburst, parcats, ...) is replaced by a note that says so.
require.js, MathJax, mermaid and the widget manager are left out of the template; the math of
the markdown cells becomes MathML (shown natively by browsers) when ``latex2mathml`` is
installed (``pip install -e ".[site]"``), else it stays as TeX source.

``BINDER_URL`` (below) is where the "launch binder" links point: this checkout has no git
remote, so it holds a placeholder owner until the repository is published; ``$LABKIT_BINDER_URL``
overrides it for one build. README.md's badge uses the same URL.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.parse import quote

from labkit.core.checks import SCALES, ParameterError, check_choice, check_seed

__all__ = ["BINDER_URL", "binder_url", "build_site", "find_runs", "render_notebook",
           "static_notebook", "Site", "SitePage"]

# The repository on mybinder.org (gh/<owner>/<repo>/<ref>). A placeholder owner: no git remote is
# configured here. Change it in this one place when the repository is published (and the badge in
# README.md with it), or set $LABKIT_BINDER_URL for one build.
BINDER_URL = "https://mybinder.org/v2/gh/OWNER/labkit/HEAD"

_PLOTLY = "application/vnd.plotly.v1+json"
_SVG = "image/svg+xml"
_DROPPED = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json",
            "application/scrapbook.scrap.json+json", "application/javascript")
_VERDICT = re.compile(r"^verdict\s+(\S+?):\s+(held|NOT) on this seed")


def binder_url(path: str | None = None) -> str:
    """The Binder launch URL: JupyterLab on ``path`` (e.g. ``notebooks/01_tiny_reasoner.ipynb``),
    or on the notebooks folder."""
    base = (os.environ.get("LABKIT_BINDER_URL") or BINDER_URL).rstrip("/")
    if path:
        return f"{base}?labpath={quote(path)}"
    return f"{base}?urlpath={quote('lab/tree/notebooks')}"


# ---------------------------------------------------------------------------- finding runs

def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _papermill_parameters(nb_path: Path) -> dict:
    try:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    params = ((nb.get("metadata") or {}).get("papermill") or {}).get("parameters")
    return params if isinstance(params, dict) else {}


def find_runs(dirs, infos, *, seed: int = 0, scale: str | None = None) -> dict:
    """For each notebook of ``infos``, the newest executed copy under ``dirs`` (a path
    ``<run dir>/NN_name.ipynb``) of ``seed`` (and ``scale`` when given): ``{stem: path}``.

    A run is known by its ``run.json`` (seed, scale, status, started), else by the papermill
    parameters in the executed notebook. Runs with status ``ok`` win over the others; among
    equals, the latest ``started`` (else the notebook's modification time)."""
    stems = {i.stem for i in infos}
    best: dict[str, tuple] = {}
    for top in dirs:
        for root, subdirs, files in os.walk(top):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
            for name in files:
                stem = name[:-len(".ipynb")] if name.endswith(".ipynb") else None
                if stem not in stems:
                    continue
                path = Path(root) / name
                meta = _read_json(Path(root) / "run.json") or _papermill_parameters(path)
                if meta.get("seed") != seed or (scale is not None and meta.get("scale") != scale):
                    continue
                started = str(meta.get("started") or "")
                try:
                    mtime = path.stat().st_mtime
                except OSError:
                    continue
                key = (meta.get("status", "ok") == "ok", started, mtime)
                if stem not in best or key > best[stem][0]:
                    best[stem] = (key, path)
    return {stem: path for stem, (_, path) in best.items()}


# ---------------------------------------------------------------------------- static notebook

def _nofigure(kind: str) -> str:
    return (f'<div class="lk-nofig">An interactive plotly figure ({escape(kind)}) that has no '
            f'static picture: open the notebook in JupyterLab or Binder to see it.</div>')


def static_notebook(nb: dict) -> dict:
    """A copy of an executed notebook that nbconvert renders without any script: each plotly
    figure keeps only its SVG (drawn from its JSON by :func:`labkit.lab.live.to_svg` where the
    output has none; a note where no SVG can be drawn); widget views (progress bars), scrapbook
    records and JavaScript outputs are dropped, and so is the saved widget state."""
    from labkit.lab.live import to_svg

    nb = copy.deepcopy(nb)
    (nb.get("metadata") or {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not isinstance(data, dict):
                kept.append(out)
                continue
            fig = data.pop(_PLOTLY, None)
            if fig is not None:
                if _SVG not in data:
                    try:
                        svg = to_svg(fig)
                    except Exception:  # a figure to_svg cannot read is shown as a note
                        svg = None
                    if svg:
                        data[_SVG] = svg
                    else:
                        kinds = sorted({t.get("type", "scatter") for t in fig.get("data", [])})
                        data.clear()
                        data["text/html"] = _nofigure(", ".join(kinds) or "empty")
                data.pop("text/plain", None)   # "<plotly figure: ...>": the picture says it
                if _SVG in data:
                    data.pop("text/html", None)   # plotly's own HTML needs plotly.js
            if any(k in data for k in _DROPPED[:2]):
                continue   # a widget (tqdm's bar): its text is the bar at 0%
            for k in _DROPPED:
                data.pop(k, None)
            if data:
                kept.append(out)
        cell["outputs"] = kept
    return nb


# ---------------------------------------------------------------------------- rendering

_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}<style type="text/css">{{ resources.labkit_css }}</style>{%- endblock html_head_css -%}
{%- block body_header -%}{{ super() }}{{ resources.labkit_nav }}{%- endblock body_header -%}
{%- block data_svg scoped -%}
<div class="jp-RenderedSVG jp-OutputArea-output {{ extra_class }}" data-mime-type="image/svg+xml">
{%- if '<script' in output.data['image/svg+xml'] %}
<img src="data:image/svg+xml;base64,{{ output.data['image/svg+xml'] | text_base64 | escape_html }}">
{%- else %}
{{ output.data['image/svg+xml'] }}
{%- endif %}
</div>
{%- endblock data_svg -%}
"""

_BADGE_CSS = """
.badge{display:inline-flex;font:12px/1 Verdana,sans-serif;border-radius:3px;overflow:hidden;
  text-decoration:none}
.badge .bl{background:#555;color:#fff;padding:4px 6px}.badge .br{background:#4c1;color:#fff;padding:4px 6px}
.badge .binder{background:#579aca}.badge .info{background:#007ec6}.badge .warn{background:#dfb317}
"""

_PAGE_CSS = _BADGE_CSS + """
.lk-nav{display:flex;flex-wrap:wrap;gap:.6em 1.2em;align-items:center;padding:.6em 1em;
  margin:0 0 1em;border-bottom:1px solid #ddd;font:14px/1.4 system-ui,sans-serif;background:#f7f7f9}
.lk-nav a{text-decoration:none}
.lk-nofig{padding:.8em;border:1px dashed #bbb;color:#555;font:13px system-ui,sans-serif}
.jp-RenderedSVG svg{max-width:100%;height:auto}
math[display=block]{margin:.6em 0}
"""


def _mathml(tex: str, display: str) -> str | None:
    try:
        from latex2mathml.converter import convert
    except ImportError:
        return None
    try:
        return convert(tex, display=display)
    except Exception:  # an expression latex2mathml cannot read stays TeX
        return None


def _exporter():
    try:
        from jinja2 import DictLoader, pass_context
        from nbconvert import HTMLExporter
        from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    except ImportError as e:
        raise ParameterError(f"labkit site needs nbconvert ({e}); install it with "
                             f"pip install -e \".[site]\"") from None

    class MathMLRenderer(IPythonRenderer):
        """Markdown math as MathML (no MathJax); TeX where it cannot be converted."""

        def block_math(self, body):
            return _mathml(body, "block") or super().block_math(body)

        def inline_math(self, body):
            return _mathml(body, "inline") or super().inline_math(body)

        def latex_environment(self, name, body):
            return _mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", "block") or \
                super().latex_environment(name, body)

    class SiteExporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            renderer = MathMLRenderer(
                escape=False, attachments=cell.get("attachments", {}), embed_images=False,
                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                anchor_link_text=self.anchor_link_text,
                exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
            return MarkdownWithMath(renderer=renderer).render(source)

    return SiteExporter(template_name="lab", template_file="labkit_site.html.j2",
                        extra_loaders=[DictLoader({"labkit_site.html.j2": _TEMPLATE})])


_SCRIPT_SRC = re.compile(r"<script\b[^>]*\bsrc\s*=[^>]*>\s*</script>", re.IGNORECASE)


def render_notebook(nb_path, out_html, *, title: str | None = None, nav_html: str = "",
                    pages=()) -> int:
    """Render the executed notebook ``nb_path`` (made static by :func:`static_notebook`) to
    ``out_html``; links to ``NN_name.ipynb`` among ``pages`` (stems) point to their pages.
    Returns the page's size in bytes."""
    import nbformat

    nb = nbformat.reads(Path(nb_path).read_text(encoding="utf-8"), as_version=4)
    nb = nbformat.from_dict(static_notebook(nb))
    if title:
        nb.metadata["title"] = title
    resources = {"metadata": {"name": title or Path(nb_path).stem, "path": str(Path(nb_path).parent)},
                 "labkit_css": _PAGE_CSS, "labkit_nav": nav_html}
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    body = _SCRIPT_SRC.sub("", body)   # the template loads none; make sure nothing else does
    for stem in pages:
        body = body.replace(f'href="{stem}.ipynb', f'href="{stem}.html')
    out_html = Path(out_html)
    tmp = out_html.with_name(f".{out_html.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, out_html)
    return len(body.encode("utf-8"))


# ---------------------------------------------------------------------------- the site

@dataclass
class SitePage:
    info: object              # NotebookInfo
    notebook: Path            # the executed notebook that was rendered
    run: dict                 # its run.json ({} when it has none)
    results: dict             # its recorded values
    verdicts: list            # [(name, held or None, line)]
    over_seeds: dict          # name -> (seeds where it held, seeds) from the group's summary
    page: str = ""            # file name in the site
    size: int = 0             # bytes

    @property
    def ok(self) -> bool:
        return self.run.get("status", "ok") == "ok"


@dataclass
class Site:
    dir: Path
    pages: list
    missing: list = field(default_factory=list)   # NotebookInfo without a run
    size: int = 0                                  # bytes, index included

    @property
    def index(self) -> Path:
        return self.dir / "index.html"

    @property
    def failed(self) -> list:
        return [p for p in self.pages if not p.ok]


def _verdicts(nb_path: Path, results: dict) -> list:
    """The verdict lines printed by the executed notebook, else rebuilt from ``held/*``."""
    lines = []
    try:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        nb = {}
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if out.get("output_type") != "stream" or out.get("name") != "stdout":
                continue
            text = out.get("text", "")
            for line in ("".join(text) if isinstance(text, list) else str(text)).splitlines():
                m = _VERDICT.match(line)
                if m:
                    lines.append((m.group(1), m.group(2) == "held", line.strip()))
    if lines:
        return lines
    for key, held in results.items():
        if key.startswith("held/") and isinstance(held, bool):
            name = key[len("held/"):]
            value = results.get(name)
            shown = f" ({value:+.3f})" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            lines.append((name, held, f"verdict  {name}: {'held' if held else 'NOT'} on this seed{shown}"))
    return lines


def _over_seeds(run_dir: Path) -> dict:
    """Claim -> (seeds where it held, seeds) from the summary of the group holding ``run_dir``."""
    doc = _read_json(run_dir.parent / "summary.json")
    out = {}
    for row in doc.get("summary") or []:
        name = row.get("name") if isinstance(row, dict) else None
        values = row.get("values") if isinstance(row, dict) else None
        if isinstance(name, str) and name.startswith("held/") and isinstance(values, list):
            out[name[len("held/"):]] = (sum(v is True for v in values), len(values))
    return out


def _page_for(info, nb_path: Path) -> SitePage:
    from labkit.lab.runs import read_results

    run_dir = nb_path.parent
    results = read_results(run_dir, nb_path)
    return SitePage(info=info, notebook=nb_path, run=_read_json(run_dir / "run.json"),
                    results=results, verdicts=_verdicts(nb_path, results),
                    over_seeds=_over_seeds(run_dir), page=f"{info.stem}.html")


def _run_line(p: SitePage) -> str:
    run = p.run
    parts = []
    if run.get("scale"):
        parts.append(f"scale {run['scale']}")
    if "seed" in run:
        parts.append(f"seed {run['seed']}")
    if run.get("duration"):
        parts.append(f"{float(run['duration']) / 60:.1f} min")
    parts.append(run.get("status", "executed"))
    return ", ".join(parts)


def _title_html(title: str) -> str:
    """A notebook's title (markdown: ``*and*``, ```code```) as HTML."""
    text = escape(title)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", text)


def _badge(label: str, value: str, href: str | None = None, cls: str = "") -> str:
    inner = (f'<span class="bl">{escape(label)}</span>'
             f'<span class="br {cls}">{escape(value)}</span>')
    if href:
        return f'<a class="badge" href="{escape(href)}">{inner}</a>'
    return f'<span class="badge">{inner}</span>'


def _nav(p: SitePage) -> str:
    nb_rel = f"notebooks/{p.info.path.name}"
    return (f'<nav class="lk-nav"><a href="index.html">&larr; all notebooks</a>'
            f'<strong>{_title_html(p.info.title)}</strong>'
            f'{_badge("launch", "binder", binder_url(nb_rel), "binder")}'
            f'<span>run: {escape(_run_line(p))} &middot; <code>{escape(p.notebook.parent.name)}</code>'
            f'</span></nav>')


_INDEX_CSS = _BADGE_CSS + """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;
  padding:0 1em;color:#222}
h1{margin:.2em 0}.sub{color:#555;margin:0 0 1em}
.badges{display:flex;flex-wrap:wrap;gap:.5em;margin:1em 0}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #e4e4e4;padding:.5em;
  vertical-align:top;text-align:left}th{background:#f4f4f6}
td.num{font-weight:bold;white-space:nowrap}ul.v{margin:0;padding-left:1.1em}
ul.v li{font-size:13px}li.held::marker{content:"\\2713  ";color:#2a2}
li.not::marker{content:"\\2717  ";color:#c33}.seeds{color:#555;white-space:nowrap}
code{font-size:12px}.paper{display:inline-block;margin:0 .3em .2em 0}.muted{color:#777}
"""


def _index_html(site: Site, *, scale_note: str) -> str:
    from labkit.lab.papers import PAPERS

    pages = site.pages
    held = sum(1 for p in pages for _, h, _ in p.verdicts if h)
    claims = sum(len(p.verdicts) for p in pages)
    covered = {pid for p in pages for pid in p.info.papers if pid in PAPERS}
    badges = [_badge("launch", "binder", binder_url(), "binder"),
              _badge("notebooks", str(len(pages)), cls="info"),
              _badge("papers covered", f"{len(covered)}/{len(PAPERS)}", cls="info"),
              _badge("claims held", f"{held}/{claims}", cls="" if held == claims else "warn"),
              _badge("runs", scale_note, cls="info")]
    if site.failed:
        badges.append(_badge("failed runs", str(len(site.failed)), cls="warn"))
    rows = []
    for p in pages:
        papers = "".join(
            f'<span class="paper" title="{escape(PAPERS[pid].title) if pid in PAPERS else ""}">'
            f'<code>{escape(pid)}</code></span>' for pid in p.info.papers) or '<span class="muted">—</span>'
        items = []
        for name, h, line in p.verdicts:
            text = re.sub(r"^verdict\s+", "", line)
            text = re.sub(r"\s+\[smoke scale:.*\]$", "", text)
            k, n = p.over_seeds.get(name, (None, None))
            seeds = f' <span class="seeds">&middot; held on {k}/{n} seeds</span>' if n else ""
            items.append(f'<li class="{"held" if h else "not"}">{escape(text)}{seeds}</li>')
        verdicts = f'<ul class="v">{"".join(items)}</ul>' if items else '<span class="muted">no claims</span>'
        nb_rel = f"notebooks/{p.info.path.name}"
        rows.append(
            f'<tr><td class="num">{escape(p.info.number)}</td>'
            f'<td><a href="{escape(p.page)}">{_title_html(p.info.title)}</a><br>'
            f'<span class="muted">{escape(_run_line(p))}</span><br>'
            f'{_badge("launch", "binder", binder_url(nb_rel), "binder")}</td>'
            f'<td>{papers}</td><td>{verdicts}</td></tr>')
    missing = ""
    if site.missing:
        names = ", ".join(escape(i.stem) for i in site.missing)
        missing = f'<p class="muted">Not rendered (no executed run found): {names}.</p>'
    built = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>labkit: the notebooks</title><style>{_INDEX_CSS}</style></head>
<body>
<h1>labkit: the notebooks</h1>
<p class="sub">Each notebook takes one paper (or a small family), implements its mechanism, trains it
on a model small enough for a laptop CPU and states whether the claimed effect showed up.
These pages are the executed notebooks ({escape(scale_note)}), outputs included; verdicts are per seed,
and over the seeds of the run's group where it has one. Built {built}.</p>
<div class="badges">{"".join(badges)}</div>
<table><thead><tr><th>#</th><th>notebook</th><th>papers</th><th>verdicts</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
{missing}
</body></html>
"""


def _check_out_dir(out_dir) -> Path:
    path = Path(out_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ParameterError(f"site: {out_dir} is a file, not a directory; accepted: a directory "
                             f"(existing or new) for index.html and the pages")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ParameterError(f"site: cannot make {out_dir} ({e.strerror or e}); accepted: a "
                             f"writable directory") from None
    if not os.access(path, os.W_OK):
        raise ParameterError(f"site: cannot write in {out_dir}; accepted: a writable directory")
    return path


def build_site(out_dir, *, runs=None, scale: str | None = None, seed=0, notebooks=None,
               timeout=None, on_event=None) -> Site:
    """Build the site in ``out_dir`` (see the module's docstring). ``runs``: directories to
    search for executed notebooks (None: execute each notebook at ``scale`` first);
    ``notebooks``: paths of the notebooks that make the series (default: the repository's);
    ``on_event(kind, info, detail)`` is told ``"run"`` (before an execution), ``"ran"`` (with
    the RunResult) and ``"page"`` (with the SitePage). Bad input raises a one-line
    ParameterError; a notebook that fails to execute is still rendered (its traceback is in
    the page) and counted in ``site.failed``."""
    from labkit.lab.notebooks import discover, info

    seed = check_seed(seed)
    if scale is not None:
        check_choice("scale", scale, SCALES)
    infos = [info(Path(p)) for p in notebooks] if notebooks is not None else discover()
    if not infos:
        raise ParameterError("site: no notebooks to render")
    if runs is not None:
        runs = [Path(d).expanduser() for d in ([runs] if isinstance(runs, (str, Path)) else runs)]
        for d in runs:
            if not d.is_dir():
                raise ParameterError(f"site: --runs {d} is not a directory; accepted: a directory "
                                     f"that holds run directories (runs/, an --out directory)")
    out = _check_out_dir(out_dir)
    emit = on_event or (lambda *a: None)
    found = {}
    if runs is not None:
        found = find_runs(runs, infos, seed=seed, scale=scale)
        if not found:
            which = f"seed {seed}" + (f", scale {scale}" if scale else "")
            raise ParameterError(f"site: no executed notebook of the series ({which}) under "
                                 f"{', '.join(map(str, runs))}; accepted: directories holding "
                                 f"run directories written by labkit run")
    else:
        from labkit.lab.runs import execute

        for i in infos:
            emit("run", i, None)
            r = execute(i, scale=scale or "workshop", seed=seed, timeout=timeout)
            emit("ran", i, r)
            if r.notebook_out.is_file():
                found[i.stem] = r.notebook_out
    site = Site(dir=out, pages=[], missing=[i for i in infos if i.stem not in found])
    stems = [i.stem for i in infos if i.stem in found]
    for i in infos:
        if i.stem not in found:
            continue
        page = _page_for(i, found[i.stem])
        page.size = render_notebook(page.notebook, out / page.page, title=i.title,
                                    nav_html=_nav(page), pages=stems)
        site.pages.append(page)
        emit("page", i, page)
    scales = sorted({p.run.get("scale") for p in site.pages if p.run.get("scale")})
    note = f"{'/'.join(scales) or 'executed'} scale, seed {seed}"
    index = _index_html(site, scale_note=note)
    tmp = out / ".index.html.tmp"
    tmp.write_text(index, encoding="utf-8")
    os.replace(tmp, site.index)
    site.size = len(index.encode("utf-8")) + sum(p.size for p in site.pages)
    return site


def main(args) -> int:
    """``labkit site`` (called by labkit.lab.cli with its parsed arguments). Exit codes: 0,
    1 when a run failed (its page is still written), 2 for bad input (ParameterError)."""
    def event(kind, info, detail):
        if kind == "run":
            print(f"running {info.stem} at scale {args.scale or 'workshop'}, seed {args.seed} ...",
                  flush=True)
        elif kind == "ran":
            state = "ok" if detail.ok else f"FAILED ({detail.error})"
            print(f"  {state} in {detail.duration:.0f}s: {detail.run_dir}", flush=True)
        elif kind == "page":
            held = sum(1 for _, h, _ in detail.verdicts if h)
            print(f"  {detail.page}  {detail.size / 1024:.0f} KiB  claims held {held}/"
                  f"{len(detail.verdicts)}  from {detail.notebook.parent}", flush=True)

    site = build_site(args.out_dir, runs=args.runs, scale=args.scale, seed=args.seed,
                      timeout=getattr(args, "timeout", None), on_event=event)
    if site.missing:
        print(f"not rendered (no run found): {', '.join(i.stem for i in site.missing)}")
    print(f"site: {site.index} ({len(site.pages)} pages, {site.size / 1024 / 1024:.1f} MiB)")
    return 1 if site.failed else 0
