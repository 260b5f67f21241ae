"""JupyterLab in a real browser: the live figures render and update (issue 12).

Each entry of NOTEBOOKS is one notebook of the browser suite: its name (in notebooks/, or a
path) and the parameters papermill injects into its copy. Adding a notebook is one line.
Parameters make it fast (scale="smoke") but long enough that the live widget, which redraws
at most every 0.5 s, is seen at two moments with different amounts of data, also on a loaded
2-core machine where the browser needs seconds to draw the widget the first time.
"""
import pytest

from harness import REPO_ROOT, check_notebook

pytestmark = pytest.mark.browser

TINY_CHECKPOINT = REPO_ROOT / "data" / "models" / "tiny" / "config.json"
needs_tiny = pytest.mark.skipif(not TINY_CHECKPOINT.exists(),
                                reason="the shipped base checkpoint data/models/tiny is missing")

NOTEBOOKS = [
    # the harness itself: a LivePlot fed in a sleep loop, no model
    pytest.param("tests/browser/live_probe.ipynb", {"steps": 60, "delay": 0.15}, id="live_probe"),
    # track 0: the substrate (GRPO on the tiny reasoner); smoke's 3 steps are too few to see it move
    pytest.param("01_tiny_reasoner", {"scale": "smoke", "steps": 150}, id="01_tiny_reasoner",
                 marks=needs_tiny),
    # one notebook of each later kind goes here as it lands (02 is of 01's kind: GRPO + LivePlot;
    # it passes too: pytest.param("02_entropy_mechanism", {"scale": "smoke"}, marks=needs_tiny),
    # about 50 s on a loaded 2-core machine, but its smoke live phases are only ~1 redraw long)
]


@pytest.mark.parametrize(("notebook", "parameters"), NOTEBOOKS)
def test_live_figure_in_jupyterlab(lab, browser, notebook, parameters, tmp_path):
    run = check_notebook(lab, browser, notebook, parameters, out_dir=tmp_path)
    print("\n" + run.summary())
    (first_t, first_n), (later_t, later_n) = run.growth
    assert later_n > first_n > 0 and later_t > first_t
