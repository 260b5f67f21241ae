"""Notebook 27's mechanism (labkit.nb.n27_trajectory_evolution): steps, feedback, SE-Agent's operators by hand,
the searches' budgets on the tiny model, and bad inputs."""
import random

import pytest
import torch

import labkit.nb.n27_trajectory_evolution as T
from labkit.core.policy import load_policy
from labkit.core.tasks import load_eval_set
from labkit.core.tasks.base import Task


def cd(prompt="10 9 7>63="):
    return Task(prompt, "9*7", "countdown", 3, "countdown", {})


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_policy("tiny", device="cpu")


def test_steps_read_a_trajectory_while_well_formed():
    assert T.steps("10*9-7") == ["10", "*9", "-7"]
    assert T.steps("12+4+9-8+") == ["12", "+4", "+9", "-8"]
    assert T.steps("9") == ["9"]
    assert T.steps("") == [] and T.steps("+3") == [] and T.steps("abc") == []
    assert T.steps("07+1") == ["0"]   # a leading zero ends the number


def test_distances_and_score_by_hand():
    t = cd()
    assert T.distances(t, "10*9-7") == [63, 53, 27, 20]
    assert T.distances(t, "9+7*10") == [63, 54, 47, 16]   # * before +, as the verifier reads it
    assert T.distances(t, "") == [63]
    assert T.score(t, "9*7") == 1.0 and T.score(t, "7*9") == 1.0
    assert T.score(t, "10*9-7") == pytest.approx(0.5 * (1 - 20 / 63))
    assert T.score(t, "11*6") == pytest.approx(0.25 * (1 - 3 / 63))   # numbers not given: halved
    assert T.score(t, "9*7*7") == pytest.approx(0.25 * 0)               # 7 used twice, far off
    for bad in ("", "9", "12+4+9-8+", "9 * 7", "abc"):
        assert T.score(t, bad) == 0.0


def test_revise_alternative_opens_where_the_pool_has_not():
    t = cd()
    assert T.revise(t, "10*9", ["10*9", "9+7", "10-9"], random.Random(0)) == "7"
    # every opening tried: one of the least tried (10 opened twice, 9 and 7 once)
    assert T.revise(t, "10*9", ["10*9", "10+7", "9+7", "7+10"], random.Random(0)) in ("9", "7")
    assert {T.revise(t, "10*9", ["10*9", "10+7", "9+7", "7+10"], random.Random(s)) for s in range(20)} == {"9", "7"}
    # the control draws any given number
    assert all(T.revise(t, "x", [], random.Random(s), signal=False) in ("10", "9", "7") for s in range(10))


def test_revise_repair_cuts_before_the_step_that_hurt_most():
    t = cd()
    # d = 63, 53, 27, 34: "+7" moved away by 7 -> keep "10*9"
    assert T.revise(t, "10*9+7", [], random.Random(0), mode="repair") == "10*9"
    # d = 63, 53, 27, 20: no step hurt -> drop the last step
    assert T.revise(t, "10*9-7", [], random.Random(0), mode="repair") == "10*9"
    # "9+10*7": d = 54, 44, 16 (9+70 = 79): no step hurt -> drop the last
    assert T.revise(t, "9+10*7", [], random.Random(0), mode="repair") == "9+10"
    # "9*7-10": d = 54, 0, 10: "-10" hurt most -> keep "9*7"
    assert T.revise(t, "9*7-10", [], random.Random(0), mode="repair") == "9*7"
    assert T.revise(t, "9", [], random.Random(0), mode="repair") == ""
    assert T.revise(t, "10*9+7", [], random.Random(0), signal=False, mode="repair") in ("", "10", "10*9")
    with pytest.raises(ValueError, match="mode"):
        T.revise(t, "10*9", [], random.Random(0), mode="rewrite")


def test_recombine_takes_a_head_of_one_and_the_best_move_of_another():
    t = cd()
    # A "9+10": d 54, 44 -> head "9+10"; B "10*7-9": falls 10, 46, -9 -> "*7" (7 free)
    assert T.recombine(t, "9+10", "10*7-9", random.Random(0)) == "9+10*7"
    # A "7+10": head "7+10"; B's best "*7" uses a taken 7, next "+10" a taken 10, then "-9"
    assert T.recombine(t, "7+10", "10*7-9", random.Random(0)) == "7+10-9"
    # nothing of B free: A's head alone
    assert T.recombine(t, "10+9+7", "9*7", random.Random(0)) == "10+9+7"
    # A's most promising prefix, not all of A: "9*7-10" -> "9*7"; B's opening joins with +
    assert T.recombine(t, "9*7-10", "10", random.Random(0)) == "9*7+10"
    assert T.recombine(t, "", "9*7", random.Random(0)) == ""
    # the control: a random head of A, then some move of B (or none)
    for s in range(10):
        p = T.recombine(t, "9+10", "10*7-9", random.Random(s), signal=False)
        assert p.startswith("9") and 1 <= len(T.steps(p)) <= 3


def test_refine_restarts_from_the_most_promising_prefix():
    t = cd()
    assert T.refine(t, "9*7+10", random.Random(0)) == "9*7"
    assert T.refine(t, "10*9-7", random.Random(0)) == "10*9-7"
    assert T.refine(t, "", random.Random(0)) == ""
    assert T.refine(t, "10*9-7", random.Random(1), signal=False) in ("", "10", "10*9", "10*9-7")


def test_uct_by_hand():
    parent, child = T.Node("", 0), T.Node("9", 1)
    parent.visits, child.visits, child.value = 8, 2, 1.0
    assert T.uct(parent, child, 1.0) == pytest.approx(0.5 + (2.0794415416798357 / 2) ** 0.5)
    assert T.uct(parent, child, 0.0) == pytest.approx(0.5)


def test_search_record_counts_calls_and_first_solves():
    s = T.Search([cd(), cd()])
    for traj in ("10*9", "9*7", "7*9"):
        s.add(0, traj)
    s.add(1, "10")
    assert s.calls() == 4 and s.first_solve(0) == 2 and s.first_solve(1) is None
    assert s.solve_rate(1) == 0.0 and s.solve_rate(2) == 0.5 and s.solved(0) and not s.solved(1)


def _hard_tasks(n=6):
    return [t for t in load_eval_set("countdown") if t.difficulty == 5][:n]


def test_best_of_n_and_mcts_spend_exactly_the_budget(tiny):
    tasks = _hard_tasks()
    g = torch.Generator().manual_seed(0)
    for search in (T.best_of_n(tiny, tasks, 5, g), T.mcts(tiny, tasks, 5, width=2, generator=g)):
        for i in range(len(tasks)):
            n = len(search.trajectories[i])
            assert n == 5 or (search.solved(i) and n == search.first_solve(i))
        assert search.tokens > 0


def test_evolve_spends_the_budget_and_stops_on_a_solve(tiny):
    tasks = _hard_tasks() + [t for t in load_eval_set("countdown") if t.difficulty == 2][:4]
    for signal in (True, False):
        s = T.evolve(tiny, tasks, budget=10, pool_size=3, children=4, signal=signal,
                     generator=torch.Generator().manual_seed(1), rng=random.Random(0))
        for i in range(len(tasks)):
            n = len(s.trajectories[i])
            if not s.solved(i):
                assert n == 10   # 3 pilots + 4 + 3 offspring
            else:
                first = s.first_solve(i)
                # a solve ends the search after the generation it happened in
                assert first <= n <= 10 and (n - first < 4)
    assert any(s.solved(i) for i in range(6, 10))
    # every offspring continues a prefix: a revision's alternative opening is one of the given numbers
    one = T.evolve(tiny, tasks[:1], budget=4, pool_size=3, children=1, operators=("revision",),
                   generator=torch.Generator().manual_seed(2), rng=random.Random(0))
    given = tasks[0].prompt.split(">")[0].split()
    assert len(one.trajectories[0]) == 4 and any(one.trajectories[0][-1].startswith(n) for n in given)


def test_bad_inputs_raise_one_line_value_errors(tiny):
    tasks = _hard_tasks(1)
    with pytest.raises(ValueError, match="operators"):
        T.evolve(tiny, tasks, 4, operators=("mutation",))
    with pytest.raises(ValueError, match="operators"):
        T.evolve(tiny, tasks, 4, operators=())
    with pytest.raises(ValueError, match="budget"):
        T.evolve(tiny, tasks, 0)
    with pytest.raises(ValueError, match="pool_size"):
        T.evolve(tiny, tasks, 4, pool_size=0)
    with pytest.raises(ValueError, match="revision"):
        T.evolve(tiny, tasks, 4, revision="rewrite")
    with pytest.raises(ValueError, match="budget"):
        T.best_of_n(tiny, tasks, 0)
    with pytest.raises(ValueError, match="width"):
        T.mcts(tiny, tasks, 4, width=0)
    with pytest.raises(ValueError, match="one prefix per task"):
        T.continue_from(tiny, tasks, ["", ""])
