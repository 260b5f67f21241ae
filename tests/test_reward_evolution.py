"""Notebook 28's mechanism (labkit.nb.n28_reward_evolution): DERL's primitives, the reward-expression grammar
(parser, evaluator, renderer), the grammar-masked Meta-Optimizer, its GRPO update, and the search loops."""
import random

import pytest
import torch

from labkit.core.policy import load_policy
from labkit.core.tasks import Task, make_tasks
from labkit.nb.n28_reward_evolution import (CONSTANTS, OPS, PRIMITIVES, VOCAB, ExpressionError, InnerRuns,
                                            MetaOptimizer, best, evaluate, fixed_search, meta_advantages,
                                            meta_search, meta_update, parse, prefix_to_tree, primitives, render,
                                            reward_fn, valid_next)

TASK = Task(prompt="528+650=", answer="1178", category="add", difficulty=3, world="arithmetic", meta={})
ONES = {k: 1.0 for k in PRIMITIVES}


def test_primitives_by_hand():
    assert primitives(TASK, "1178") == {"correct": 1.0, "format": 1.0, "digits": 1.0, "length": 1.0, "lead": 1.0}
    # right-aligned: 3 vs 8 differs, then 7, 1, 1 match: 3 of 4 positions
    assert primitives(TASK, "1173") == {"correct": 0.0, "format": 1.0, "digits": 0.75, "length": 1.0, "lead": 1.0}
    assert primitives(TASK, "2178") == {"correct": 0.0, "format": 1.0, "digits": 0.75, "length": 1.0, "lead": 0.0}
    # "178" against "1178": 8, 7, 1 match over the longer length 4; one digit short; leading 1 matches
    assert primitives(TASK, "178") == {"correct": 0.0, "format": 1.0, "digits": 0.75, "length": 0.0, "lead": 1.0}
    for bad in ("1178!", "", "abc", "01178"):
        assert set(primitives(TASK, bad).values()) == {0.0}


def test_parse_by_hand_precedence_and_associativity():
    assert parse("correct") == ("var", "correct")
    assert parse("correct + 2 * digits") == ("+", ("var", "correct"), ("*", ("num", 2.0), ("var", "digits")))
    assert parse("(correct + 2) * digits") == ("*", ("+", ("var", "correct"), ("num", 2.0)), ("var", "digits"))
    assert parse("correct - format - digits") == ("-", ("-", ("var", "correct"), ("var", "format")), ("var", "digits"))
    assert parse("-lead") == ("neg", ("var", "lead"))
    assert parse("  0.5*digits ") == ("*", ("num", 0.5), ("var", "digits"))


def test_evaluate_by_hand():
    g = {"correct": 0.0, "format": 1.0, "digits": 0.75, "length": 1.0, "lead": 0.0}
    assert evaluate(parse("correct - format - digits"), ONES) == -1.0
    assert evaluate(parse("correct + 0.5 * digits + 0.1 * format"), g) == pytest.approx(0.475)
    assert evaluate(parse("(format - lead) * 2 * digits"), g) == pytest.approx(1.5)
    assert evaluate(parse("-(digits - length)"), g) == pytest.approx(0.25)
    assert reward_fn("correct + 0.5 * digits")(TASK, "1173") == pytest.approx(0.375)


def test_render_round_trips():
    for text in ("correct", "correct + 0.5 * digits * (format - lead)", "-(lead + 2) * length",
                 "digits - (format - correct)", "(correct - format) - digits"):
        tree = parse(text)
        assert parse(render(tree)) == tree
    assert render(parse("digits - (format - correct)")) == "digits - (format - correct)"


@pytest.mark.parametrize("text", ["", "   ", "correct +", "(correct", "correct)", "foo", "correct ** 2",
                                  "correct / 2", "2", "0.5 * 2", "correct digits", "__import__('os').system('x')",
                                  "correct; import os", "lambda: 1", "correct" + " + correct" * 40])
def test_malformed_expressions_raise_one_line(text):
    with pytest.raises(ExpressionError) as e:
        parse(text)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_parse_rejects_non_strings_and_deep_nesting():
    with pytest.raises(ExpressionError, match="string"):
        parse(3)
    with pytest.raises(ExpressionError, match="deeper"):
        parse("(" * 20 + "correct" + ")" * 20)


def test_valid_next_is_the_grammar():
    first = dict(zip(VOCAB, valid_next([], 7)))
    assert all(first[t] for t in OPS + PRIMITIVES) and not any(first[t] for t in CONSTANTS)
    # one slot left and one token left: only leaves; no primitive yet: only primitives
    last = dict(zip(VOCAB, valid_next(["+", "0.5"], 3)))
    assert not any(last[t] for t in OPS + CONSTANTS) and all(last[t] for t in PRIMITIVES)
    assert not any(valid_next(["correct"], 7))   # complete
    assert prefix_to_tree(["+", "correct", "*", "0.5", "digits"]) == \
        ("+", ("var", "correct"), ("*", ("num", 0.5), ("var", "digits")))
    for bad in (["+", "correct"], ["correct", "digits"], ["/"]):
        with pytest.raises(ExpressionError):
            prefix_to_tree(bad)


def test_meta_optimizer_samples_valid_expressions_and_starts_uniform():
    meta = MetaOptimizer(max_tokens=7)
    seqs = meta.sample(200, torch.Generator().manual_seed(0))
    assert seqs == meta.sample(200, torch.Generator().manual_seed(0))
    for s in seqs:
        assert 1 <= len(s) <= 7
        assert parse(render(prefix_to_tree(s))) == prefix_to_tree(s)
    # untrained: uniform over the valid first tokens (3 operators + 5 primitives)
    lp = meta.log_probs([["correct"], ["+", "correct", "digits"]])
    assert lp[0, 0].item() == pytest.approx(-torch.log(torch.tensor(8.0)).item(), abs=1e-5)
    assert lp[0, 1:].abs().sum().item() == 0.0


def test_meta_advantages_by_hand_and_shuffle():
    a = meta_advantages([1.0, 0.0])
    assert a.tolist() == pytest.approx([0.7071, -0.7071], abs=1e-3)
    assert meta_advantages([0.3, 0.3, 0.3]).abs().sum().item() == 0.0
    plain = meta_advantages([0.1, 0.4, 0.2, 0.0])
    shuffled = meta_advantages([0.1, 0.4, 0.2, 0.0], shuffle=True, rng=random.Random(3))
    assert sorted(shuffled.tolist()) == pytest.approx(sorted(plain.tolist()))
    assert shuffled.tolist() != pytest.approx(plain.tolist())
    with pytest.raises(ValueError, match="at least 2"):
        meta_advantages([0.5])


def test_meta_update_raises_the_better_expression():
    meta = MetaOptimizer()
    tokens = [["digits"], ["format"]]
    before = meta.log_probs(tokens).sum(1)
    opt = torch.optim.Adam(meta.parameters(), lr=0.01)
    meta_update(meta, opt, tokens, meta_advantages([1.0, 0.0]), ref=MetaOptimizer())
    after = meta.log_probs(tokens).sum(1)
    assert after[0] > before[0] and after[1] < before[1]
    with pytest.raises(ValueError, match="one advantage"):
        meta_update(meta, opt, tokens, torch.zeros(3))


class FakeRuns:
    """Scores an expression by whether it reads `digits` (no training): a search problem with a known answer."""

    def __init__(self):
        self.calls = []

    def score(self, text, k):
        self.calls.append((text, k))
        v = 1.0 if "digits" in text else 0.0
        return {"val": v, "test": v, "train_acc": 0.0}


def test_meta_search_learns_where_random_and_shuffled_do_not():
    out = {}
    for mode in ("derl", "random", "shuffled"):
        rows = meta_search(FakeRuns(), mode, iterations=12, population=8, seed=0, meta_lr=0.03)
        assert len(rows) == 96 and {r["iteration"] for r in rows} == set(range(12))
        out[mode] = rows
    first = [[r["expression"] for r in out[m] if r["iteration"] == 0] for m in out]
    assert first[0] == first[1] == first[2]   # the same initial Meta-Optimizer and sampling stream

    def late(m):
        return sum(r["val"] for r in out[m] if r["iteration"] >= 9) / 24
    assert late("derl") > late("random") + 0.2 and late("derl") > late("shuffled") + 0.2
    with pytest.raises(ValueError, match="mode"):
        meta_search(FakeRuns(), "evolve", 1, 2, 0)


def test_fixed_search_and_best():
    fake = FakeRuns()
    rows = fixed_search(fake, "digits", 3)
    assert [k for _, k in fake.calls] == [0, 1, 2]
    assert best([{"val": 0.1, "i": 0}, {"val": 0.3, "i": 1}, {"val": 0.3, "i": 2}])["i"] == 1
    assert len(rows) == 3
    with pytest.raises(ValueError):
        best([])


def test_inner_runs_cache_one_training_per_expression_and_seed():
    base = load_policy("tiny")
    tasks = make_tasks("add", 3, 4, 5000)
    runs = InnerRuns(base, tasks, tasks, seeds=[1001, 1002], steps=1, prompts=2, lr=3e-4, val_samples=1,
                     test_samples=1, difficulty=3)
    a = runs.score("correct + 0.5 * digits", 0)
    b = runs.score("(correct) + (0.5 * digits)", 0)   # the same canonical expression
    assert a is b and runs.trained == 1
    runs.score("correct + 0.5 * digits", 1)
    assert runs.trained == 2 and 0.0 <= a["val"] <= 1.0
    with pytest.raises(ValueError, match="seed index"):
        runs.score("correct", 2)
    with pytest.raises(ExpressionError):
        runs.score("correct +", 0)
