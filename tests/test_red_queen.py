"""Notebook 20's mechanism (labkit.nb.n20_red_queen) and the redcode mixture's text format:
the descriptor, the archive, evaluation against opponents, DRQ's rounds and budgets, the operators."""
import random

import pytest

from labkit.bases.mixtures import redcode as R
from labkit.core.corewar import HELDOUT, TRAIN, parse
from labkit.nb.n20_red_queen import (COVERAGE_BINS, SPAWN_BINS, Candidate, MapElites, RandomOperator,
                                     descriptor, drq, evaluate, generality, random_line_edit)

DUCK = parse("jmp 0")
LOOP = parse("jmp 1\njmp 1\njmp 1\njmp -3")     # runs through 4 cells: any bomb on them kills it


def test_descriptor_bins_by_hand():
    assert descriptor(0, 0) == (0, 0)
    assert descriptor(1, 1) == (1, 1)
    assert descriptor(9.9, 49) == (1, 2)
    assert descriptor(10, 50) == (2, 3)
    assert descriptor(799, 800) == (3, 5)
    assert descriptor(10000, 400) == (5, 5)
    assert len(SPAWN_BINS) == len(COVERAGE_BINS) == 5


def test_descriptor_rejects_negative_values():
    with pytest.raises(ValueError, match=">= 0"):
        descriptor(-1, 3)


def _c(fitness, cell, warrior=DUCK):
    return Candidate(warrior, "x", "new", fitness, cell)


def test_archive_keeps_the_strictly_better_elite_per_cell():
    a = MapElites()
    assert a.place(_c(0.3, (0, 1)))
    assert not a.place(_c(0.3, (0, 1)))          # equal fitness: the elite stays
    assert a.place(_c(0.4, (0, 1)))
    assert a.place(_c(0.1, (2, 2)))
    assert not a.place(Candidate(None, "bad", "mutate"))
    assert len(a.history) == 5 and len(a.archive) == 2
    assert a.best().fitness == 0.4
    assert a.sample(random.Random(0)).cell in {(0, 1), (2, 2)}


def test_empty_archive():
    a = MapElites()
    assert a.best() is None
    with pytest.raises(ValueError, match="empty"):
        a.sample(random.Random(0))


def test_evaluate_scores_a_killer_above_a_sitter_and_counts_the_budget():
    killer, sitter = _c(None, None, TRAIN["dwarf"]), _c(None, None, DUCK)
    spent = evaluate([killer, sitter, Candidate(None, "bad", "new")], [parse("dat #0, #0"), LOOP], rounds=2, seed=3)
    assert spent == 2 * 2 * 2                        # two valid candidates x two opponents x two rounds
    assert killer.fitness > 0.5 and sitter.fitness < killer.fitness
    assert killer.cell[1] > sitter.cell[1]           # the dwarf writes cells, the sitter none


def test_drq_objectives_spend_the_same_budget_and_are_deterministic():
    kw = dict(rounds=3, iters=1, batch=3, n_init=3, battle_rounds=1)
    rq = drq(RandomOperator(random.Random(1)), [TRAIN["dwarf"]], rng=random.Random(0), **kw)
    st = drq(RandomOperator(random.Random(1)), [TRAIN["dwarf"]], rng=random.Random(0), objective="static", **kw)
    assert rq["budget"] == st["budget"] == (3 + 3) * (1 + 2 + 3)
    assert len(rq["champions"]) == 3
    again = drq(RandomOperator(random.Random(1)), [TRAIN["dwarf"]], rng=random.Random(0), **kw)
    assert again["fitness"] == rq["fitness"] and again["champions"] == rq["champions"]
    assert rq["champions"][0] == st["champions"][0]          # round 1 is the same for both objectives


def test_drq_round_opponents_include_past_champions():
    out = drq(RandomOperator(random.Random(2)), [TRAIN["imp"]], rounds=2, iters=0, batch=1, rng=random.Random(0),
              n_init=2, battle_rounds=1)
    assert out["budget"] == 2 * 1 + 2 * 2             # round 2 meets w0 and champion 1


def test_drq_rejects_bad_arguments():
    with pytest.raises(ValueError, match="objective"):
        drq(RandomOperator(random.Random(0)), [DUCK], 1, 1, 1, random.Random(0), objective="moving")
    with pytest.raises(ValueError, match="batch"):
        drq(RandomOperator(random.Random(0)), [DUCK], 1, 1, 0, random.Random(0))


def test_random_line_edit_changes_one_line():
    w = TRAIN["paper"]
    rng = random.Random(4)
    for _ in range(20):
        e = random_line_edit(w, rng)
        assert len(e) == len(w) and e.start == w.start
        assert sum(a != b for a, b in zip(e.instructions, w.instructions)) <= 1


def test_generality_of_a_sitter_is_at_most_even():
    assert generality(DUCK, list(HELDOUT.values()), rounds=1) <= 0.5


def test_compact_form_round_trips_and_edits_apply():
    rng = random.Random(0)
    for _ in range(50):
        w = R.family_warrior(rng)
        assert R.from_compact(R.compact(w)).instructions == w.instructions
    d = TRAIN["dwarf"]
    assert R.compact(d) == "add #4,3|mov 2,@2|jmp -2|dat #0,#0"
    child = R.generated_warrior(R.mutate_prompt(d), "0:add #12,3")
    assert child.instructions[0].a == 12 and child.instructions[1:] == d.instructions[1:]
    assert R.valid(R.NEW_PROMPT, "mov 0,1") and not R.valid(R.NEW_PROMPT, "mv 0,1")
    for bad in ("9:mov 0,1", "0 mov 0,1", "0:mov 0,1|dat 0"):
        assert not R.valid(R.mutate_prompt(d), bad)


def test_demonstrations_fit_the_context():
    import itertools
    for p, c in itertools.islice(R.demonstrations(0, 0.0, 0.15), 500):
        assert len(p) + len(c) + 2 <= 128
