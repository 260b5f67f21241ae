"""labkit.nb.n22_value_aware_memory: hand-computed retrieval and updates (of every memory in the context), merging,
stored failures, the selector hook, the per-family bandit, bad inputs."""
import math
import random

import numpy as np
import pytest

from labkit.nb.n22_value_aware_memory import FamilyBandit, Memory, ngram_embedding, zscore


def unit(*v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def bank():
    """Three 2-d memories at known angles from the query (1, 0)."""
    m = Memory(2, q_init=0.5)
    m.write(unit(1, 0), "a", merge=False)            # sim 1
    m.write(unit(1, 1), "b", merge=False)            # sim 1/sqrt2 = 0.7071
    m.write(unit(0, 1), "c", merge=False)            # sim 0
    return m


def test_ngram_embedding_is_unit_deterministic_and_similar_for_similar_text():
    a, b, c = ngram_embedding("fitiku 8431"), ngram_embedding("fitiku 8432"), ngram_embedding("zomaba 1177")
    assert a.shape == (256,) and math.isclose(np.linalg.norm(a), 1.0)
    assert np.array_equal(a, ngram_embedding("fitiku 8431"))
    assert a @ b > a @ c


def test_zscore_by_hand():
    assert np.allclose(zscore([1.0, 2.0, 3.0]), [-1.2247449, 0.0, 1.2247449])
    assert np.array_equal(zscore([4.0, 4.0]), [0.0, 0.0])
    assert zscore([]).size == 0


def test_similarity_and_retrieve():
    m = bank()
    assert np.allclose(m.similarity([2, 0]), [1, 1 / math.sqrt(2), 0])   # the query is normalised
    got = m.retrieve([1, 0], k=2)
    assert [c.index for c in got] == [0, 1] and math.isclose(got[1].sim, 1 / math.sqrt(2))
    assert [c.index for c in m.retrieve([1, 0], k=3, threshold=0.5)] == [0, 1]


def test_two_phase_by_hand():
    m = bank()
    m.entries[0].q, m.entries[1].q, m.entries[2].q = 0.0, 1.0, 1.0
    # phase A (threshold 0.5): entries 0, 1 with sims (1, .7071); z(sim) = (1, -1), z(Q) = (-1, 1)
    # lam = 0.75: score0 = .25*1 + .75*(-1) = -0.5, score1 = .25*(-1) + .75*1 = 0.5
    got = m.two_phase([1, 0], k1=10, k2=5, threshold=0.5, lam=0.75)
    assert [c.index for c in got] == [1, 0]
    assert math.isclose(got[0].score, 0.5) and math.isclose(got[1].score, -0.5)
    # lam = 0: similarity only; k2 = 1 keeps the best
    assert [c.index for c in m.two_phase([1, 0], k2=1, threshold=0.5, lam=0.0)] == [0]
    # k1 = 1: phase A keeps only the nearest, whatever its Q
    assert [c.index for c in m.two_phase([1, 0], k1=1, threshold=0.5, lam=1.0)] == [0]
    # nothing above the threshold
    assert m.two_phase([-1, 0], threshold=0.5) == []


def test_update_by_hand():
    m = bank()
    assert m.update([0], 1.0, alpha=0.3) == [pytest.approx(0.65)]       # 0.5 + 0.3 (1 - 0.5)
    assert m.update(0, 0.0, alpha=0.5) == [pytest.approx(0.325)]        # 0.65 + 0.5 (0 - 0.65)
    assert m.entries[0].uses == 2 and m.entries[1].q == 0.5


def test_write_merges_near_duplicates_with_the_same_content():
    m = Memory(2, q_init=0.2, merge_threshold=0.95)
    i = m.write([1, 0], "a")
    assert m.write([1, 0.1], "a", tag=1) == i and len(m) == 1            # sim 0.995 -> merged
    assert m.entries[i].count == 2 and m.entries[i].meta == {"tag": 1}
    assert np.allclose(m.entries[i].key, unit(unit(1, 0) + unit(1, 0.1)))
    assert m.write([1, 0.1], "b") == 1 and len(m) == 2                  # other content -> new entry
    assert m.write([0, 1], "a") == 2                                     # dissimilar -> new entry
    assert m.write([1, 0], "a", merge=False) == 3
    assert m.entries[3].q == 0.2 and m.write([1, 0], "z", q=0.9) == 4 and m.entries[4].q == 0.9


def test_select_hook_ranks_candidates_by_the_scorer():
    m = bank()
    seen = {}

    def scorer(query, candidates):
        seen["n"] = len(candidates)
        return [-c.sim for c in candidates]                               # prefer the least similar

    got = m.select([1, 0], scorer, k1=10, threshold=0.5)
    assert seen["n"] == 2 and [c.index for c in got] == [1] and math.isclose(got[0].score, -1 / math.sqrt(2))
    assert m.select([-1, 0], scorer, threshold=0.5) == []


@pytest.mark.parametrize("call, error, text", [
    (lambda m: Memory(0), ValueError, "dim must be a positive int"),
    (lambda m: Memory(2, merge_threshold=0), ValueError, "merge_threshold"),
    (lambda m: m.write([1, 0, 0], "x"), ValueError, "key must have 2 values"),
    (lambda m: m.write([0, 0], "x"), ValueError, "all zeros"),
    (lambda m: m.write([np.nan, 1], "x"), ValueError, "finite"),
    (lambda m: m.retrieve([1, 0], k=0), ValueError, "k1 must be a positive int"),
    (lambda m: m.two_phase([1, 0], k2=0), ValueError, "k2 must be a positive int"),
    (lambda m: m.two_phase([1, 0], lam=1.5), ValueError, "lam must be in"),
    (lambda m: m.two_phase([1, 0], threshold=2), ValueError, "threshold must be in"),
    (lambda m: m.update([7], 1.0), IndexError, "no memory entry 7"),
    (lambda m: m.update([0], 1.0, alpha=0), ValueError, "alpha must be in"),
    (lambda m: m.update([0], float("nan")), ValueError, "reward must be finite"),
    (lambda m: m.select([1, 0], lambda q, c: [1.0], threshold=0.5), ValueError, "scorer must return 2"),
    (lambda m: ngram_embedding(3), TypeError, "needs a str"),
])
def test_bad_inputs_give_one_line_errors(call, error, text):
    with pytest.raises(error) as info:
        call(bank())
    assert text in str(info.value) and "\n" not in str(info.value)


def test_update_moves_every_memory_in_the_context():
    """The authors update every memory the executor was shown, with the one outcome."""
    m = bank()
    shown = [c.index for c in m.two_phase([1, 0], k1=10, k2=5, threshold=-1.0, lam=0.5)]
    assert sorted(shown) == [0, 1, 2]
    new = m.update(shown, 0.0, alpha=0.5)
    assert new == [pytest.approx(0.25)] * 3 and all(e.uses == 1 for e in m.entries)
    m.update(shown[:1], 1.0, alpha=0.5)                                    # only the listed ones move
    assert m.entries[shown[0]].q == pytest.approx(0.625) and m.entries[shown[1]].q == pytest.approx(0.25)


def test_failures_are_written_with_their_outcome_and_retrieved_by_similarity():
    m = Memory(2, q_init=0.5)
    m.write([0, 1], "84+31=115", merge=False, success=True)
    i = m.write([1, 0], "84-31=53", success=False)                        # a failed episode is stored too
    assert m.entries[i].meta == {"success": False} and m.entries[i].q == 0.5
    top = m.retrieve([1, 0.05], k=1)[0]                                    # and similarity finds it first
    assert top.index == i and not m.entries[top.index].meta["success"]
    # the same episode again merges, and its outcome is the latest one
    assert m.write([1, 0], "84-31=53", success=True) == i and m.entries[i].count == 2
    assert m.entries[i].meta["success"] is True


def test_family_bandit_ucb_by_hand():
    b = FamilyBandit(["a", "b", "c"], rule="ucb", c=1.0)
    rng = random.Random(0)
    assert [b.select("f", rng) for _ in range(1)] == ["a"]                 # untried arms first, in order
    b.update("f", "a", 1.0)
    assert b.select("f", rng) == "b"
    b.update("f", "b", 0.0)
    assert b.select("f", rng) == "c"
    b.update("f", "c", 0.0)
    # n = 3: a = 1 + sqrt(ln 3), b = c = 0 + sqrt(ln 3) -> a
    assert b.select("f", rng) == "a"
    for _ in range(3):
        b.update("f", "a", 0.0)
    # n = 6: a = 1/4 + sqrt(ln 6 / 4) = 0.919, b = 0 + sqrt(ln 6) = 1.339 -> b (first of the ties b, c)
    assert b.select("f", rng) == "b"
    assert b.means("f")[:1] == [0.25] and b.select("other", rng) == "a"    # families are independent


def test_family_bandit_thompson_finds_the_paying_arm_and_is_seeded():
    def play(seed):
        b, rng, arms = FamilyBandit(["a", "b", "c", "d"]), random.Random(seed), []
        for _ in range(60):
            arm = b.select(0, rng)
            b.update(0, arm, 1.0 if arm == "c" else 0.0)
            arms.append(arm)
        return arms
    arms = play(3)
    assert arms == play(3) and arms[-20:].count("c") >= 18
    assert math.isnan(FamilyBandit(["a", "b"]).means("new")[0])


@pytest.mark.parametrize("call, error, text", [
    (lambda: FamilyBandit([]), ValueError, "non-empty sequence of distinct"),
    (lambda: FamilyBandit(["a", "a"]), ValueError, "distinct"),
    (lambda: FamilyBandit(["a"], rule="greedy"), ValueError, "rule must be one of thompson, ucb"),
    (lambda: FamilyBandit(["a"], c=-1), ValueError, "c must be a finite number"),
    (lambda: FamilyBandit(["a"]).update(0, "z", 1.0), ValueError, "unknown arm 'z'"),
    (lambda: FamilyBandit(["a"]).update(0, "a", 2.0), ValueError, "reward must be a number in [0, 1]"),
    (lambda: FamilyBandit(["a"]).update(0, "a", True), ValueError, "reward must be a number"),
    (lambda: FamilyBandit(["a"]).select(0, 7), TypeError, "rng must be a random.Random"),
])
def test_family_bandit_bad_inputs(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value) and "\n" not in str(info.value)
