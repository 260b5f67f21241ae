"""labkit.lab.exercises (issue 27): every notebook's exercises, labkit.check against the existing
unit tests, and the student copies (solution functions blanked, a check cell after each)."""
import ast
import json
import re
import subprocess
import sys
import textwrap

import pytest

import labkit
from labkit.lab import exercises
from labkit.lab.exercises import CHECKS, blank_functions, check, parse_exercises, student_notebook
from labkit.lab.notebooks import check_notebook, discover

NOTEBOOKS = discover()
IDS = [nb.stem for nb in NOTEBOOKS]


def _nb(info) -> dict:
    return json.loads(info.path.read_text(encoding="utf-8"))


def _source(cell) -> str:
    return "".join(cell["source"])


def _solution_defs(nb) -> set:
    """Names (f, C.m) defined by the notebook's cells tagged `solution`."""
    names = set()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "solution" in cell["metadata"].get("tags", []):
            names |= set(exercises._definitions(ast.parse(_source(cell))))
    return names


# ---------------------------------------------------------------------------- the notebooks' exercises

@pytest.mark.parametrize("info", NOTEBOOKS, ids=IDS)
def test_every_notebook_has_two_or_three_exercises_and_one_asks_for_a_checked_function(info):
    nb = _nb(info)
    found = parse_exercises(nb)
    assert 2 <= len(found) <= 3, f"{info.stem}: {len(found)} exercises"
    assert [e.number for e in found] == list(range(1, len(found) + 1))
    assert all(e.difficulty in (1, 2, 3) and e.minutes and e.minutes > 0 for e in found)
    writes = [(target, name) for e in found for target, name in e.checks]
    assert writes, f"{info.stem}: no exercise asks for a function (a labkit.check call)"
    solutions = _solution_defs(nb)
    for target, name in writes:
        assert target in CHECKS, f"{info.stem}: {target} is not in labkit.lab.exercises.CHECKS"
        assert target.endswith("." + name), (target, name)
        # the reference is a cell tagged `solution`, or lives in labkit.core (no notebook cell holds it)
        assert name in solutions or target.startswith("labkit.core."), f"{info.stem}: no solution cell defines {name}"
    # every cell tagged `solution` holds the function of an exercise
    for cell in nb["cells"]:
        if "solution" in cell["metadata"].get("tags", []):
            assert set(exercises._definitions(ast.parse(_source(cell)))) & {n for _, n in writes}


def test_every_check_target_is_used_and_its_tests_exist():
    used = {t for info in NOTEBOOKS for e in parse_exercises(_nb(info)) for t, _ in e.checks}
    assert set(CHECKS) == used, f"targets no exercise uses: {sorted(set(CHECKS) - used)}"
    root = exercises._repo_root()
    for target, nodeids in CHECKS.items():
        assert nodeids, target
        for nodeid in nodeids:
            path, name = nodeid.split("::")
            assert re.search(rf"^def {re.escape(name)}\(", (root / path).read_text(), re.M), nodeid


# ---------------------------------------------------------------------------- labkit.check

@pytest.mark.parametrize("target", sorted(CHECKS))
def test_the_reference_passes_its_check(target, capsys):
    owner, attr, _ = exercises._resolve(target)
    assert check(target, vars(owner)[attr]) is True
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("verdict: correct: all ") and len(out) >= len(CHECKS[target]) + 2
    assert all(line.startswith("  passed  test_") for line in out[1:-1])


def test_labkit_check_is_exported_lazily():
    assert labkit.check is check and "check" in labkit.__all__


def test_a_notebooks_own_cells_pass_even_with_their_own_classes(capsys):
    """A function written in a notebook sees its own CovConfig, not the module's: check lays the
    module's globals over it, so the isinstance in _check holds and only the function is tested."""
    nb = _nb(next(i for i in NOTEBOOKS if i.stem.startswith("02_")))
    namespace = {"__name__": "__main__"}
    for cell in nb["cells"]:
        if "export" in cell["metadata"].get("tags", []):
            exec(compile(_source(cell), "<notebook 02>", "exec"), namespace)   # our own notebook's code
    assert check("labkit.nb.n02_entropy_mechanism.clip_cov_loss", namespace["clip_cov_loss"]) is True
    nb = _nb(next(i for i in NOTEBOOKS if i.stem.startswith("07_")))
    namespace = {"__name__": "__main__"}
    for cell in nb["cells"]:
        if "export" in cell["metadata"].get("tags", []):
            exec(compile(_source(cell), "<notebook 07>", "exec"), namespace)
    assert check("labkit.nb.n07_curriculum_bandit.SECBandit.update", namespace["SECBandit"].update) is True
    capsys.readouterr()


def test_a_wrong_function_fails_with_one_readable_line_per_test_and_everything_is_restored(capsys):
    import torch

    import labkit.core.grpo as grpo

    original = grpo.grpo_advantages

    def zeros(rewards, group_size, eps=1e-6, population_std=False):
        return torch.zeros_like(rewards)

    assert check("labkit.core.grpo.grpo_advantages", zeros) is False
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("labkit.check: your grpo_advantages against the tests of labkit.core.grpo.grpo_advantages")
    assert lines[1].startswith("  failed  test_grpo_advantages_by_hand: ") and len(lines) == 6
    assert all(line.startswith("  failed  test_") for line in lines[1:5])
    assert lines[-1] == "verdict: not yet: 4 of 4 tests failed (0 passed)"
    assert grpo.grpo_advantages is original
    for name in ("test_rl", "test_curriculum", "test_spear"):   # the test modules imported it by name
        assert sys.modules[name].grpo_advantages is original


def test_a_method_that_raises_is_reported_and_restored(capsys):
    from labkit.nb.n07_curriculum_bandit import SECBandit

    original = SECBandit.__dict__["update"]

    def update(self, arm_rewards):
        raise NotImplementedError("Exercise 2: write SECBandit.update (see the exercise above)")

    assert check("labkit.nb.n07_curriculum_bandit.SECBandit.update", update) is False
    out = capsys.readouterr().out
    assert "  failed  test_sec_td0_update_by_hand_unsampled_zero: NotImplementedError: Exercise 2: write" in out
    assert SECBandit.__dict__["update"] is original


def test_a_test_module_first_imported_during_the_check_is_restored_too(monkeypatch, capsys):
    import labkit.core.grpo as grpo

    monkeypatch.delitem(sys.modules, "test_rl", raising=False)   # put back after this test
    assert check("labkit.core.grpo.drgrpo_advantages", lambda rewards, group_size: rewards) is False
    assert sys.modules["test_rl"].drgrpo_advantages is grpo.drgrpo_advantages
    assert "  failed  test_drgrpo_and_rloo_by_hand: " in capsys.readouterr().out


def test_the_original_is_restored_when_the_run_itself_fails(monkeypatch):
    import labkit.core.grpo as grpo

    original = grpo.drgrpo_advantages

    def broken_main(args, plugins):
        plugins[0].pytest_collection_finish(None)   # the candidate is in place everywhere ...
        assert grpo.drgrpo_advantages is not original
        raise KeyboardInterrupt                      # ... and the run dies

    monkeypatch.setattr(pytest, "main", broken_main)
    with pytest.raises(KeyboardInterrupt):
        check("labkit.core.grpo.drgrpo_advantages", lambda rewards, group_size: rewards)
    assert grpo.drgrpo_advantages is original
    assert sys.modules["test_rl"].drgrpo_advantages is original


def test_bad_targets_and_a_missing_tests_dir_are_one_line_errors(monkeypatch, tmp_path):
    with pytest.raises(ValueError) as e:
        check("labkit.core.grpo.grpo_advantage", print)
    assert "unknown target 'labkit.core.grpo.grpo_advantage'; did you mean 'labkit.core.grpo.grpo_advantages'" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown target"):
        check("os.path.join", print)
    with pytest.raises(TypeError, match="needs a function"):
        check("labkit.core.grpo.grpo_advantages", 3)
    monkeypatch.setattr(exercises, "_repo_root", lambda: tmp_path)   # as if installed from a wheel
    with pytest.raises(ValueError) as e:
        check("labkit.core.grpo.grpo_advantages", print)
    assert "run from a source checkout" in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------- student copies

def test_blank_functions_keeps_signatures_docstrings_and_everything_else():
    source = textwrap.dedent('''\
        import torch

        # a comment that stays
        @torch.no_grad()
        def f(x: int,
              y=2) -> int:
            """Doc."""
            # how: add
            return x + y


        def g(x): return x


        class C:
            def m(self):
                return 1

            def n(self):
                """Kept."""
                return 2
        ''')
    out, names = blank_functions(source, {"f": "E1", "g": "E2", "C.n": "E3"})
    assert names == ["f", "g", "C.n"]
    assert out == textwrap.dedent('''\
        import torch

        # a comment that stays
        @torch.no_grad()
        def f(x: int,
              y=2) -> int:
            """Doc."""
            raise NotImplementedError("E1")


        def g(x):
            raise NotImplementedError('E2')


        class C:
            def m(self):
                return 1

            def n(self):
                """Kept."""
                raise NotImplementedError("E3")
        ''')


def _signature(node) -> str:
    return ast.dump(node.args) + ast.dump(ast.Module(node.decorator_list, [])) + repr(ast.get_docstring(node))


def test_the_student_copy_of_02_blanks_exactly_the_solution_functions():
    info = next(i for i in NOTEBOOKS if i.stem.startswith("02_"))
    nb = _nb(info)
    before = json.dumps(nb)
    student = student_notebook(nb, info.stem)
    assert json.dumps(nb) == before   # the input is not changed
    teacher_defs, student_defs = {}, {}
    for cells, defs in ((nb["cells"], teacher_defs), (student["cells"], student_defs)):
        for cell in cells:
            if cell["cell_type"] == "code":
                tree = ast.parse(_source(cell))   # every code cell of the copy parses
                for name, node in exercises._definitions(tree).items():
                    defs[name] = node
    assert set(student_defs) == set(teacher_defs)
    blanked = {n for n in teacher_defs if ast.dump(teacher_defs[n]) != ast.dump(student_defs[n])}
    assert blanked == {"token_covariance", "clip_cov_loss"}
    for number, name in ((1, "token_covariance"), (2, "clip_cov_loss")):
        assert _signature(student_defs[name]) == _signature(teacher_defs[name])
        body = student_defs[name].body
        assert len(body) == 2 and ast.unparse(body[1]) == (
            f"raise NotImplementedError('Exercise {number}: write {name} (see the exercise above)')")
    # every other code cell is the teacher's, outputs stripped; each blanked cell has its text
    # above and its check below
    teacher = {c["id"]: c for c in nb["cells"]}
    cells = student["cells"]
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
        if "exercise" in cell["metadata"].get("tags", []):
            assert "solution" not in cell["metadata"]["tags"] and "export" in cell["metadata"]["tags"]
            assert _source(cells[i - 1]).startswith("**Exercise ")
            assert "labkit.check(\"labkit.nb.n02_entropy_mechanism." in _source(cells[i + 1])
        elif cell["id"] in teacher:
            assert _source(cell) == _source(teacher[cell["id"]])
    ids = [c["id"] for c in cells]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids if i not in teacher)
    assert [c for c in cells if "solution" in c["metadata"].get("tags", [])] == []


@pytest.mark.parametrize("info", NOTEBOOKS, ids=IDS)
def test_every_student_copy_parses_passes_the_checks_and_blanks_each_exercise_once(info, tmp_path):
    student = student_notebook(_nb(info), info.stem)
    path = tmp_path / info.path.name
    path.write_text(json.dumps(student, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert check_notebook(path) == []
    raised, checked = [], []
    for cell in student["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = _source(cell)
        tree = ast.parse(source)
        for name, node in exercises._definitions(tree).items():
            if isinstance(node.body[-1], ast.Raise) and "(see the exercise above)" in ast.unparse(node.body[-1]):
                raised.append(name)
        checked += [name for _, name in exercises.CHECK_RE.findall(source)]
    wanted = [name for e in parse_exercises(_nb(info)) for _, name in e.checks]
    assert sorted(raised) == sorted(wanted) and sorted(checked) == sorted(wanted)
    assert len(parse_exercises(student)) == len(parse_exercises(_nb(info)))   # counted once


def test_a_solution_cell_without_a_function_becomes_a_comment():
    md = lambda text, i: {"cell_type": "markdown", "id": f"m{i}", "metadata": {}, "source": [text]}  # noqa: E731
    nb = {"cells": [md("# 09 · X", 0), md("## Key equations\n\n## Pseudocode", 1),
                    {"cell_type": "code", "id": "c0", "metadata": {"tags": ["solution"]}, "execution_count": 3,
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": "2"}],
                     "source": ["x = 1\n", "total = x + 1"]},
                    md("## Exercises\n\n### Exercise 1 · Loop\n\n**Difficulty:** 1", 2),
                    md("### Exercise 2 · Sum\n\n**Difficulty:** 🔴⚪⚪ · **Minutes:** 5 · compute `total`", 3),
                    md("## Notes", 4)],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    found = parse_exercises(nb)
    assert [(e.number, e.title, e.difficulty, e.minutes) for e in found] == [(1, "Loop", 1, None), (2, "Sum", 1, 5)]
    cells = student_notebook(nb)["cells"]
    assert [c["id"] for c in cells][:2] == ["m0", "m1"]
    assert _source(cells[2]).startswith("**Exercise 2 · Sum**")
    assert cells[3]["source"] == ["# Exercise 2: write this cell (see the exercise above)\n"]
    assert cells[3]["outputs"] == [] and cells[3]["execution_count"] is None
    assert cells[3]["metadata"]["tags"] == ["exercise"]


def test_labkit_student_writes_copies_and_refuses_bad_output_dirs(tmp_path, capsys):
    from labkit.lab.cli import main

    assert main(["student", str(tmp_path / "out"), "07", "01"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["01_tiny_reasoner.ipynb", "07_curriculum_bandit.ipynb"]
    assert capsys.readouterr().out.count("wrote ") == 2
    (tmp_path / "file").write_text("")
    for argv in (["student", str(tmp_path / "file")], ["student", str(NOTEBOOKS[0].path.parent)],
                 ["student", str(tmp_path / "x"), "99"], ["student"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()


STUDENT_RUN = r"""
import json, sys
nb = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
first = next(i for i, c in enumerate(cells) if "exercise" in c["metadata"].get("tags", []))
for i, cell in enumerate(cells[:first + 2]):            # up to the first exercise's check cell
    source = "".join(cell["source"])
    if "parameters" in cell["metadata"].get("tags", []):
        source += "\nscale = 'smoke'"
    if i == first + 1:                                   # the check cell: keep its answer
        source = source.replace("labkit.check(", "answer = labkit.check(")
    exec(compile(source, f"<cell {i}>", "exec"), namespace)
print("ANSWER", namespace["answer"])
reference = sys.argv[2]                                  # the teacher's cell: the learner gets it right
exec(compile(reference, "<reference>", "exec"), namespace)
print("ANSWER", namespace["labkit"].check("labkit.nb.n07_curriculum_bandit.boltzmann", namespace["boltzmann"]))
"""


def test_a_student_copy_runs_up_to_its_first_exercise_and_checks_it(tmp_path, monkeypatch):
    """07's copy at smoke scale, in a fresh process: the cells before the first blanked one run,
    its check fails on the blank, and the teacher's version passes from the notebook's namespace."""
    info = next(i for i in NOTEBOOKS if i.stem.startswith("07_"))
    nb = _nb(info)
    (tmp_path / "copy.ipynb").write_text(json.dumps(student_notebook(nb, info.stem)), encoding="utf-8")
    reference = next(_source(c) for c in nb["cells"] if "solution" in c["metadata"].get("tags", []))
    monkeypatch.setenv("LABKIT_LIVE", "0")
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    r = subprocess.run([sys.executable, "-c", STUDENT_RUN, str(tmp_path / "copy.ipynb"), reference],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "failed  test_boltzmann_by_hand: NotImplementedError: Exercise 1: write boltzmann" in r.stdout
    assert r.stdout.count("ANSWER") == 2 and "ANSWER False" in r.stdout and "ANSWER True" in r.stdout
