"""Drive JupyterLab in headless Chromium: open a notebook, run all cells, watch its live figures.

The browser suite (``pytest -m browser``, files in this folder) proves what papermill cannot:
that a learner in JupyterLab sees the live plotly figure (``labkit.lab.live.LivePlot``) appear and
move. One notebook is one line of ``NOTEBOOKS`` in ``test_jupyterlab.py``::

    pytest.param("01_tiny_reasoner", {"scale": "smoke", "steps": 40}, marks=needs_tiny),

which the test hands to ``check_notebook(lab, browser, notebook, parameters, tmp_path)``.

Pieces:

- :class:`LabServer`: JupyterLab on 127.0.0.1 at a free port, no token, no XSRF,
  ``window.jupyterapp`` exposed, a temporary root directory, temporary config/data/runtime/
  settings/workspace directories, offline (read-only extension manager, no news, no update
  check), the kernel on this environment's python, ``LABKIT_RUNS_ROOT`` in the temp dir.
- :func:`launch_browser`: Debian's ``/usr/bin/chromium`` through Playwright for Python
  (never a downloaded browser), headless, flags that keep it offline and working as root.
- :func:`check_notebook`: copy the notebook into the server's root with papermill's
  parameter injection (no execution), open it, check the kernel (this python,
  ``JPY_SESSION_NAME`` set so LivePlot is live), ``notebook:run-all-cells``, sample the plotly
  trace lengths on the page every ~0.1 s while it runs, and then assert: a plotly figure was
  rendered, its data grew between two moments, every code cell ran, no cell has an error
  output, no output is an ImportError / widget-failure text. On any failure it saves a
  screenshot, the browser console log, the notebook's outputs and the samples under the
  test's tmp dir and prints their paths.

Completion is judged from the cells (every code cell has an execution count, or an error
output appeared), never from the kernel status, which can read "idle" while a cell runs.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
HERE = Path(__file__).resolve().parent

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container: the setuid sandbox is unavailable
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",  # offline: otherwise refused connections in the log
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
]

# Texts that mean the live widget did not work, wherever they show up in an output.
BAD_OUTPUT_TEXTS = [
    "ImportError",
    "ModuleNotFoundError",
    "Error displaying widget",
    "Failed to load model class",
    "Failed to create view",
    "no live widget",           # labkit.lab.live.LivePlot's fallback warning
    "anywidget is not installed",
    "Please install anywidget",  # plotly's own FigureWidget message
]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


# ------------------------------------------------------------------------------ availability

def chromium_path() -> str | None:
    """``$LABKIT_CHROMIUM`` if set, else Debian's chromium; None when absent."""
    env = os.environ.get("LABKIT_CHROMIUM")
    for cand in ([env] if env else ["/usr/bin/chromium", shutil.which("chromium")]):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def missing_reason() -> str | None:
    """Why the browser suite cannot run here (None when it can)."""
    why = []
    if chromium_path() is None:
        why.append("chromium is not installed (apt-get install chromium; see .ci/install_browser.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        why.append("playwright is not installed (pip install playwright)")
    try:
        import jupyterlab  # noqa: F401
        import papermill  # noqa: F401
    except ImportError as e:
        why.append(f"{e.name} is not installed (pip install -e '.[lab,test]')")
    return "; ".join(why) or None


def resolve_notebook(name: str | os.PathLike) -> Path:
    """``"01_tiny_reasoner"`` -> ``notebooks/01_tiny_reasoner.ipynb``; a path is taken as is
    (relative paths from the repo root, then from this folder)."""
    p = Path(name)
    if p.suffix != ".ipynb":
        p = p.with_suffix(".ipynb")
    for cand in (p, REPO_ROOT / p, HERE / p, NOTEBOOKS_DIR / p):
        if cand.is_file():
            return cand.resolve()
    raise FileNotFoundError(f"notebook {name!r} not found (looked in notebooks/ and tests/browser/)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------ the server

_SERVER_CONFIG = """\
# Written by tests/browser/harness.py: JupyterLab for browser tests only (no security at all).
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = {port}
c.ServerApp.port_retries = 0
c.ServerApp.open_browser = False
c.ServerApp.allow_root = True
c.ServerApp.root_dir = {root!r}
c.ServerApp.terminals_enabled = False
c.IdentityProvider.token = ""
c.ServerApp.password = ""
c.ServerApp.disable_check_xsrf = True
# what jupyterlab.galata.configure_jupyter_server sets for UI tests, minus its fixed port
c.LabApp.expose_app_in_browser = True
c.LabApp.workspaces_dir = {workspaces!r}
c.LabApp.user_settings_dir = {settings!r}
# offline: no extension manager queries, no news, no update check
c.LabApp.extension_manager = "readonly"
c.LabApp.news_url = None
from jupyterlab.handlers.announcements import NeverCheckForUpdate
c.LabApp.check_for_updates_class = NeverCheckForUpdate
"""

_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    # every cell attached to the DOM, so an output scrolled out of view still renders
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {"adaptive-theme": False},
}


class LabServer:
    """A JupyterLab server in a temporary directory; a context manager.

    ``root`` is the directory it serves (notebooks are copied in there); ``url`` its base URL.
    """

    def __init__(self, base: Path | None = None, *, startup_timeout: float = 90.0):
        self._own_tmp = base is None
        self.base = Path(base or tempfile.mkdtemp(prefix="labkit-browser-"))
        self.root = self.base / "root"
        self.startup_timeout = startup_timeout
        self.port = None
        self.proc = None
        self.log_path = self.base / "jupyterlab.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        b = self.base
        dirs = {k: b / k for k in ("root", "config", "data", "runtime", "settings", "workspaces",
                                   "ipython", "runs")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for rel, value in _USER_SETTINGS.items():
            f = dirs["settings"] / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(value))
        env = dict(os.environ)
        env.pop("LABKIT_LIVE", None)      # let LivePlot detect the Jupyter-server kernel itself
        env.pop("LABKIT_RUN_DIR", None)
        env.update(
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
            JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
            IPYTHONDIR=str(dirs["ipython"]),
            LABKIT_RUNS_ROOT=str(dirs["runs"]),
            # the kernel's python is this environment's: ipykernel's "python" argv -> sys.executable,
            # and anything the notebook starts by name finds this environment first
            PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
            MKL_NUM_THREADS=env.get("MKL_NUM_THREADS", "1"),
        )
        last_err = None
        for _attempt in range(3):  # a free port can be taken between probing and binding
            self.port = _free_port()
            cfg = b / "jupyter_lab_browser_test_config.py"
            cfg.write_text(_SERVER_CONFIG.format(port=self.port, root=str(dirs["root"]),
                                                 workspaces=str(dirs["workspaces"]),
                                                 settings=str(dirs["settings"])))
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", f"--config={cfg}"],
                cwd=dirs["root"], env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            try:
                self._wait_ready()
                return self
            except RuntimeError as e:
                last_err = e
                self.stop()
        raise last_err

    def _wait_ready(self):
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {self.startup_timeout:.0f} s:\n"
                           f"{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def add_notebook(self, name, parameters: dict | None = None) -> str:
        """Copy a notebook into the root, with ``parameters`` injected by papermill (not run).
        Returns its path relative to the root."""
        import nbformat
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook

        src = resolve_notebook(name)
        nb = load_notebook_node(str(src))  # with the metadata papermill expects
        if parameters:
            nb = parameterize_notebook(nb, dict(parameters))
        dest = self.root / src.name
        nbformat.write(nb, dest)
        return src.name

    def shutdown_kernels(self):
        """End every kernel session of the server (a test's notebook must not run on)."""
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(f"{self.url}/api/sessions", timeout=5) as r:
                sessions = json.load(r)
            for sess in sessions:
                req = urllib.request.Request(f"{self.url}/api/sessions/{sess['id']}", method="DELETE")
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(req, timeout=10).close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None

    def cleanup(self):
        self.stop()
        if self._own_tmp:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False


# ------------------------------------------------------------------------------ the browser

@contextlib.contextmanager
def launch_browser(home: Path | None = None):
    """Yield a headless Playwright ``Browser`` on Debian's chromium (no browser download).
    Playwright gives it a fresh temporary profile; ``home`` (a temporary dir by default) is
    its HOME, so nothing is written to the user's."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError(missing_reason())
    with contextlib.ExitStack() as stack:
        if home is None:
            home = stack.enter_context(tempfile.TemporaryDirectory(prefix="labkit-chromium-"))
        p = stack.enter_context(sync_playwright())
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS,
                                    env={**os.environ, "HOME": str(home)})
        try:
            yield browser
        finally:
            browser.close()


# ------------------------------------------------------------------------------ in-page helpers

# The open notebook panel for `path` (or null).
_JS_PANEL = """
(path) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.sessionContext) return w;
  }
  return null;
}
"""

_JS_KERNEL_READY = """
(path) => {
  const find = %s;
  const w = find(path);
  if (!w || !w.context.isReady) return false;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}
""" % _JS_PANEL

# Run code in the notebook's kernel outside the notebook; resolve to its stdout.
_JS_KERNEL_EXEC = """
async ([path, code]) => {
  const find = %s;
  const kernel = find(path).sessionContext.session.kernel;
  const fut = kernel.requestExecute({code, silent: false, store_history: false});
  let out = '';
  fut.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === 'stream') out += msg.content.text;
    if (t === 'error') out += msg.content.ename + ': ' + msg.content.evalue;
  };
  await fut.done;
  return out;
}
""" % _JS_PANEL

_JS_RUN_ALL = """
(path) => {
  const find = %s;
  const w = find(path);
  window.jupyterapp.shell.activateById(w.id);
  window.__labkitRun = {done: false, ok: null, err: null, t0: performance.now()};
  window.jupyterapp.commands.execute('notebook:run-all-cells')
    .then((ok) => { Object.assign(window.__labkitRun, {done: true, ok}); },
          (e) => { Object.assign(window.__labkitRun, {done: true, ok: false, err: String(e)}); });
  return true;
}
""" % _JS_PANEL

# One sample: the plotly figures in the notebook's outputs (trace lengths; whether the output
# is a live widget view or a static figure) and the notebook's progress (execution counts,
# error outputs).
_JS_SAMPLE = """
(path) => {
  const find = %s;
  const w = find(path);
  const plots = [];
  const cells = [];
  if (w) {
    const model = w.content.model;
    for (let i = 0; i < model.cells.length; i++) {
      const c = model.cells.get(i);
      if (c.type !== 'code') continue;
      const outs = c.outputs.toJSON();
      cells.push({index: i, count: c.executionCount,
                  state: c.executionState === undefined ? null : c.executionState,
                  errors: outs.filter((o) => o.output_type === 'error').length});
      const area = w.content.widgets[i] && w.content.widgets[i].outputArea;
      if (!area) continue;
      for (let j = 0; j < area.widgets.length && j < outs.length; j++) {
        const widget = !!(outs[j].data && outs[j].data['%s']);
        for (const gd of area.widgets[j].node.querySelectorAll('.js-plotly-plot')) {
          const data = Array.isArray(gd.data) ? gd.data : [];
          plots.push({cell: i, widget, lengths: data.map((t) => (t && t.x ? t.x.length : 0))});
        }
      }
    }
  }
  return {t: performance.now() - (window.__labkitRun ? window.__labkitRun.t0 : 0),
          run: window.__labkitRun || null, plots, cells};
}
""" % (_JS_PANEL, WIDGET_MIME)

# Scroll the notebook to the first output of a kind ('error', 'widget' plot, any 'plot'),
# so that a screenshot shows it; true if found.
_JS_SCROLL_TO = """
([path, kind]) => {
  const find = %s;
  const w = find(path);
  if (!w) return false;
  const model = w.content.model;
  for (let i = 0; i < model.cells.length; i++) {
    const c = model.cells.get(i);
    if (c.type !== 'code') continue;
    const outs = c.outputs.toJSON();
    const area = w.content.widgets[i] && w.content.widgets[i].outputArea;
    if (!area) continue;
    for (let j = 0; j < area.widgets.length && j < outs.length; j++) {
      const node = area.widgets[j].node;
      const hit = kind === 'error' ? outs[j].output_type === 'error'
        : kind === 'widget' ? !!(outs[j].data && outs[j].data['%s']) && !!node.querySelector('.js-plotly-plot')
        : !!node.querySelector('.js-plotly-plot, svg');
      if (hit) { node.scrollIntoView({block: 'center'}); return true; }
    }
  }
  return false;
}
""" % (_JS_PANEL, WIDGET_MIME)

# Everything the cells hold at the end, as text: outputs (JSON) and what is shown (DOM text).
_JS_OUTPUTS = """
(path) => {
  const find = %s;
  const w = find(path);
  const model = w.content.model;
  const res = [];
  for (let i = 0; i < model.cells.length; i++) {
    const c = model.cells.get(i);
    if (c.type !== 'code') continue;
    const view = w.content.widgets[i];
    res.push({index: i, count: c.executionCount, source: c.sharedModel.getSource().slice(0, 300),
              outputs: c.outputs.toJSON(),
              shown: view && view.outputArea ? view.outputArea.node.innerText.slice(0, 4000) : ''});
  }
  return res;
}
""" % _JS_PANEL


# ------------------------------------------------------------------------------ the check

@dataclass
class LabRun:
    """What one notebook run in the browser showed. ``samples``: (seconds since run-all,
    total points in live-widget figures, total points in all figures) while it ran."""

    notebook: str
    parameters: dict
    kernel_info: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)
    cells: list = field(default_factory=list)
    console: list = field(default_factory=list)
    seconds: float = 0.0
    # ((t1, n1), (t2, n2)): the first sample with points in a live widget figure and the
    # sample with the most points seen there (n2 > n1 > 0), None if they never grew
    growth: tuple | None = None
    final_plots: list = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.notebook} {self.parameters}: run-all took {self.seconds:.1f} s",
                 f"  kernel: {self.kernel_info}"]
        if self.growth:
            (t1, n1), (t2, n2) = self.growth
            lines.append(f"  live figure grew: {n1} points at {t1:.2f} s -> {n2} points at {t2:.2f} s")
        widget_counts = sorted({s[1] for s in self.samples})
        lines.append(f"  {len(self.samples)} samples; widget point totals seen: {widget_counts}")
        lines.append(f"  figures at the end: {self.final_plots}")
        errs = [m for m in self.console if m["type"] in ("error", "pageerror")]
        lines.append(f"  console: {len(self.console)} messages, {len(errs)} errors"
                     + "".join(f"\n    {m['type']}: {m['text'][:200]}" for m in errs[:10]))
        return "\n".join(lines)


class NotebookCheckFailed(AssertionError):
    pass


def _save_artifacts(page, run: LabRun, out_dir: Path, lab: LabServer | None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    stem = Path(run.notebook).stem
    if page is not None:
        with contextlib.suppress(Exception):
            for kind in ("error", "widget", "plot"):  # show what matters most
                if page.evaluate(_JS_SCROLL_TO, [run.notebook, kind]):
                    break
            shot = out_dir / f"{stem}-screenshot.png"
            page.screenshot(path=str(shot), full_page=True, timeout=15000)
            saved.append(shot)
    log = out_dir / f"{stem}-console.log"
    log.write_text("".join(f"[{m['t']:8.2f}] {m['type']}: {m['text']}\n" for m in run.console))
    saved.append(log)
    data = out_dir / f"{stem}-run.json"
    data.write_text(json.dumps({"summary": run.summary(), "samples": run.samples,
                                "kernel": run.kernel_info, "cells": run.cells}, indent=1, default=str))
    saved.append(data)
    if lab is not None:
        srv = out_dir / "jupyterlab.log"
        with contextlib.suppress(OSError):
            shutil.copyfile(lab.log_path, srv)
            saved.append(srv)
    return saved


def check_notebook(lab: LabServer, browser, name, parameters: dict | None = None,
                   out_dir: Path | None = None, *, live: bool = True, timeout: float = 120.0,
                   sample_every: float = 0.1) -> LabRun:
    """Open notebook ``name`` (with ``parameters`` injected) in JupyterLab, run all cells and
    check it (see the module docstring). ``live``: require a live plotly widget whose data
    grows. Raises :class:`NotebookCheckFailed` (an AssertionError) with the evidence; on failure
    the screenshot, console log, cell outputs and the server log go to ``out_dir``."""
    parameters = dict(parameters or {})
    path = lab.add_notebook(name, parameters)
    run = LabRun(notebook=path, parameters=parameters)
    out_dir = Path(out_dir or lab.base / "artifacts")
    t_start = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.on("console", lambda m: run.console.append(
        {"t": time.monotonic() - t_start, "type": m.type, "text": m.text}))
    page.on("pageerror", lambda e: run.console.append(
        {"t": time.monotonic() - t_start, "type": "pageerror", "text": str(e)}))
    try:
        _drive(page, lab, run, path, out_dir, live=live, timeout=timeout, sample_every=sample_every)
    except Exception as e:
        saved = _save_artifacts(page, run, out_dir, lab)
        listing = "\n".join(f"  {p}" for p in saved)
        msg = f"{type(e).__name__}: {e}\n\n{run.summary()}\n\nsaved:\n{listing}"
        print(f"\nbrowser test of {path} failed; artifacts:\n{listing}")
        raise NotebookCheckFailed(msg) from e
    finally:
        with contextlib.suppress(Exception):
            context.close()
        lab.shutdown_kernels()
    return run


def _drive(page, lab, run, path, out_dir, *, live, timeout, sample_every):
    page.set_default_timeout(60000)
    # a workspace of its own: no tab of an earlier test is restored (nor its kernel started)
    workspace = f"t{time.monotonic_ns()}"
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{path}", wait_until="domcontentloaded")
    page.wait_for_function(_JS_KERNEL_READY, arg=path, timeout=90000, polling=250)

    # The kernel is this environment's python and knows it was started by a Jupyter server.
    probe = page.evaluate(_JS_KERNEL_EXEC, [path, (
        "import json, os, sys\n"
        "from labkit.lab.live import live_mode\n"
        "print(json.dumps({'executable': sys.executable, 'prefix': sys.prefix,\n"
        "                  'JPY_SESSION_NAME': os.environ.get('JPY_SESSION_NAME'),\n"
        "                  'live_mode': live_mode()}))\n")])
    try:
        run.kernel_info = json.loads(probe.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"the kernel probe failed: {probe!r}") from None
    if os.path.realpath(run.kernel_info["prefix"]) != os.path.realpath(sys.prefix):
        raise AssertionError(f"the kernel runs {run.kernel_info['executable']}, "
                             f"not this environment's python ({sys.executable})")
    if live and not run.kernel_info["live_mode"]:
        raise AssertionError("labkit.lab.live.live_mode() is False in the JupyterLab kernel "
                             f"(kernel env: {run.kernel_info})")

    page.evaluate(_JS_RUN_ALL, path)
    deadline = time.monotonic() + timeout
    first = None
    while True:
        s = page.evaluate(_JS_SAMPLE, path)
        t = s["t"] / 1000.0
        widget_total = sum(sum(p["lengths"]) for p in s["plots"] if p["widget"])
        all_total = sum(sum(p["lengths"]) for p in s["plots"])
        run.samples.append((round(t, 3), widget_total, all_total))
        if widget_total > 0:
            if first is None:
                first = (round(t, 3), widget_total)
            elif widget_total > (run.growth[1][1] if run.growth else first[1]):
                if run.growth is None:  # evidence: the page while the figure is live
                    with contextlib.suppress(Exception):
                        out_dir.mkdir(parents=True, exist_ok=True)
                        page.evaluate(_JS_SCROLL_TO, [path, "widget"])
                        page.screenshot(path=str(out_dir / f"{Path(path).stem}-live.png"), timeout=10000)
                run.growth = (first, (round(t, 3), widget_total))  # first and latest larger
        cells = s["cells"]
        errored = any(c["errors"] for c in cells)
        all_ran = bool(cells) and all(c["count"] is not None for c in cells) and \
            all(c["state"] in (None, "idle") for c in cells)
        if errored or (s["run"] and s["run"]["done"] and all_ran):
            break
        if time.monotonic() > deadline:
            pending = [c["index"] for c in cells if c["count"] is None]
            raise AssertionError(f"the notebook did not finish within {timeout:.0f} s "
                                 f"(cells without an execution count: {pending})")
        time.sleep(sample_every)
    run.seconds = t
    page.wait_for_timeout(300)  # let the last display updates land
    run.cells = page.evaluate(_JS_OUTPUTS, path)
    final = page.evaluate(_JS_SAMPLE, path)
    run.final_plots = [("widget" if p["widget"] else "static", p["lengths"]) for p in final["plots"]]

    problems = []
    for c in run.cells:
        for o in c["outputs"]:
            if o.get("output_type") == "error":
                problems.append(f"cell {c['index']} shows an error: {o.get('ename')}: "
                                f"{str(o.get('evalue'))[:300]}")
        if c["count"] is None and not any(o.get("output_type") == "error" for o in c["outputs"]):
            problems.append(f"cell {c['index']} did not run")
        text = json.dumps(c["outputs"]) + "\n" + c["shown"]
        for bad in BAD_OUTPUT_TEXTS:
            if bad in text:
                problems.append(f"cell {c['index']} output contains {bad!r}: "
                                f"{_around(text, bad)}")
                break
    if run.console and any(m["type"] == "pageerror" for m in run.console):
        problems.append("the page raised: " + "; ".join(
            m["text"][:200] for m in run.console if m["type"] == "pageerror"))
    if live:
        if not any(total > 0 for _t, total, _a in run.samples):
            problems.append("no live plotly widget figure with data was rendered while the notebook ran "
                            f"(samples: {run.samples[:5]}...)")
        elif run.growth is None:
            problems.append("the live figure's data did not grow between two samples "
                            f"(widget point totals seen: {sorted({s[1] for s in run.samples})}); "
                            "make the run longer (more steps)")
        if not final["plots"] and not any(
                "image/svg+xml" in json.dumps(c["outputs"]) for c in run.cells):
            problems.append("no figure is shown at the end of the run")
    if problems:
        raise AssertionError("\n".join(problems))


def _around(text: str, needle: str, width: int = 160) -> str:
    i = text.find(needle)
    return text[max(0, i - width // 2): i + width].replace("\\n", " ")
