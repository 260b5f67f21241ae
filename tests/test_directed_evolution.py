"""26 directed evolution: the program language, the sandboxed batch evaluation, the credit memory (by hand),
LoongFlow's islands and the greedy baseline at an exact budget, and bad inputs."""
import math
import random

import pytest

from labkit.nb.n26_directed_evolution import (EDITS, CreditMemory, Greedy, Islands, apply_edit, bit_score,
                                              descriptor, random_program, render, run_programs, search)


def test_bit_score_by_hand():
    assert bit_score([0, 255], [0, 255]) == 1.0
    assert bit_score([0], [255]) == 0.0
    assert bit_score([1, 3], [0, 0]) == pytest.approx((7 + 6) / 16)
    assert bit_score(None, [1, 2]) == 0.0
    assert bit_score([1], [1, 2]) == 0.0


def test_render_and_the_sandbox_run_the_program():
    prog = (("xor", 5), ("addx", 0), ("shr", 1))
    src = render(prog)
    assert "a = a ^ 5" in src and "a = (a + x) & 255" in src and "a = a >> 1" in src
    xs = [0, 1, 7, 200]
    out = run_programs([prog, (("mul", 3),), prog], xs)
    assert out[0] == [(((x ^ 5) + x) & 255) >> 1 for x in xs] and out[2] == out[0]
    assert out[1] == [(x * 3) & 255 for x in xs]
    with pytest.raises(ValueError):
        render((("exec", 1),))


def test_apply_edit_respects_the_vocabulary_and_limits():
    rng = random.Random(0)
    prog = (("add", 1), ("xor", 2))
    assert len(apply_edit(prog, ("insert", "shl"), rng)) == 3
    assert len(apply_edit(prog, ("delete", None), rng)) == 1
    assert len(apply_edit((("add", 1),), ("delete", None), rng)) == 1   # delete of the last tweaks
    full = tuple(("add", 1) for _ in range(8))
    assert len(apply_edit(full, ("insert", "or"), rng, max_len=8)) == 8
    replaced = apply_edit(prog, ("replace", "shr"), rng)
    assert sum(op == "shr" for op, _ in replaced) == 1
    for bad in [("insert", None), ("swap", "add"), ("replace", "exec")]:
        with pytest.raises(ValueError):
            apply_edit(prog, bad, rng)


def test_descriptor_bins():
    assert descriptor((("add", 1),), 0.0) == (0, 0, 0)
    prog = tuple((op, 1) for op in ("add", "mul", "xor", "and", "or", "shl", "shr", "add"))
    assert descriptor(prog, 1.0) == (3, 3, 3)


def test_credit_memory_by_hand():
    m = CreditMemory(3, tau=1.0, eps=0.0, kappa=0.0)
    m.update(0, 0.5, 0.7)    # gain .2
    m.update(1, 0.5, 0.4)    # no gain
    m.update(2, 0.5, 0.6)    # gain .1
    assert m.gains == pytest.approx([0.2, 0.0, 0.1]) and m.uses == [1, 1, 1]
    q = [0.2, 0.0, 0.1]
    z = [math.exp(v / 0.1) for v in q]   # q / mean q = q / .1
    assert m.probs() == pytest.approx([v / sum(z) for v in z])
    m2 = CreditMemory(3, tau=1.0, eps=0.3, kappa=0.0)
    m2.gains, m2.uses = list(m.gains), list(m.uses)
    assert m2.probs() == pytest.approx([0.7 * v / sum(z) + 0.1 for v in z])
    assert CreditMemory(4, "blind").probs() == [0.25] * 4
    fixed = CreditMemory(2, "fixed", eps=0.2, weights=[1, 0])
    assert fixed.probs() == pytest.approx([0.9, 0.1])
    # shrinkage: an unused edit gets the mean gain
    m3 = CreditMemory(2, kappa=4.0)
    m3.update(0, 0.0, 0.4)
    assert m3.credit() == pytest.approx([(0.4 + 4 * 0.4) / 5, 0.4])


def test_shuffled_control_keeps_the_values_but_not_their_owners():
    m = CreditMemory(len(EDITS), "shuffled", tau=0.25, eps=0.2)
    d = CreditMemory(len(EDITS), "directed", tau=0.25, eps=0.2)
    for mem in (m, d):
        mem.update(3, 0.0, 0.5)
        for e in range(len(EDITS)):
            mem.update(e, 0.5, 0.4)
    pd = d.probs()
    assert pd[3] == max(pd)
    tops = {max(range(len(EDITS)), key=m.probs(random.Random(s)).__getitem__) for s in range(30)}
    assert len(tops) > 3                                    # the high credit lands on random edits
    assert sorted(m.probs(random.Random(1))) == pytest.approx(sorted(pd))   # same peakedness


def test_bad_memory_inputs():
    for kwargs in [dict(mode="oracle"), dict(tau=0), dict(eps=2), dict(mode="fixed"), dict(weights=[1, 1])]:
        with pytest.raises(ValueError):
            CreditMemory(2, **kwargs)
    with pytest.raises(ValueError):
        CreditMemory(2).update(5, 0, 1)


def test_searches_spend_exactly_the_budget_and_find_an_easy_target():
    xs = list(range(0, 256, 11))
    target = (("xor", 5),)
    t = run_programs([target], xs)[0]
    init = [random_program(1, random.Random(i)) for i in range(10)]
    isl = Islands(init, CreditMemory(len(EDITS)), random.Random(0), children=10)
    gre = Greedy(init, CreditMemory(len(EDITS), "blind"), random.Random(0), children=7)
    calls = search([isl, gre], [t, t], xs, 95)
    assert isl.evaluated == gre.evaluated == 95 and len(isl.history) == len(gre.history) == 95
    assert calls <= 1 + math.ceil((95 - 10) / 7)   # one sandbox call a round for both searches
    assert isl.best()[1] > max(s for _, s in isl.history[:10]) and sum(isl.memory.uses) == 85
    assert sum(len(a) for a in isl.archives) > 3
    with pytest.raises(ValueError):
        search([isl], [t, t], xs, 10)
    with pytest.raises(ValueError):
        Islands([], CreditMemory(2), random.Random(0))
