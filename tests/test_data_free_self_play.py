"""Notebook 09's mechanism (labkit.nb.n09_data_free_self_play): TTRL's majority-vote targets, TTCS's synthesiser
and filter, Dr. Zero's hop-grouped advantages, the lookup world's questions and each arm's equal budget."""
import copy
import math
import random

import pytest
import torch

from labkit.core.calculator import calculate
from labkit.core.grpo import RLConfig
from labkit.core.policy import load_policy
from labkit.core.proposer import Votes, parse_task, sample_votes
from labkit.nb.n09_data_free_self_play import (TOOL_ARMS, TTC_ARMS, consistent, hop_advantages, hop_task,
                                               self_consistency_targets, tool_step, ttc_step, variant)

# ------------------------------------------------------------------------------------------ HRPO


def test_hop_advantages_by_hand():
    # hops 1: rewards 1, 0, 1, 1 (mean .75, population var .1875); hops 2: 0, 1 (mean .5, var .25)
    r = torch.tensor([1., 0., 0., 1., 1., 1.])
    hops = [1, 1, 2, 2, 1, 1]
    adv = hop_advantages(r, hops, delta=1e-6)
    s1, s2 = math.sqrt(0.1875 + 1e-6), math.sqrt(0.25 + 1e-6)
    want = torch.tensor([0.25 / s1, -0.75 / s1, -0.5 / s2, 0.5 / s2, 0.25 / s1, 0.25 / s1])
    assert torch.allclose(adv, want, atol=1e-5)
    # each hop group is centred on its own mean, not the batch's
    assert abs(float(adv[[0, 1, 4, 5]].sum())) < 1e-5 and abs(float(adv[[2, 3]].sum())) < 1e-5


def test_hop_advantages_differ_from_one_batch_group_and_edges():
    r = torch.tensor([1., 1., 0., 0.])
    # grouped by hops: both groups unanimous, no signal; one batch-wide group: signal
    assert torch.equal(hop_advantages(r, [1, 1, 2, 2]), torch.zeros(4))
    assert (hop_advantages(r, [0, 0, 0, 0]).abs() > 0.9).all()
    # a hop group of one gets 0
    assert hop_advantages(torch.tensor([1., 0., 1.]), [1, 1, 2])[2] == 0
    with pytest.raises(ValueError):
        hop_advantages(torch.ones(3), [1, 2])
    with pytest.raises(ValueError):
        hop_advantages(torch.ones(2), [1, 1], delta=0.0)

# ------------------------------------------------------------------------------------------ TTCS's filter, TTRL's targets


def test_consistent_band_edges_and_bad_inputs():
    assert consistent(0.25, 0.25) and consistent(0.75, 0.25) and consistent(0.5, 0.0)
    assert not consistent(0.125, 0.25) and not consistent(0.875, 0.25) and not consistent(1.0, 0.25)
    with pytest.raises(ValueError):
        consistent(1.5, 0.25)
    with pytest.raises(ValueError):
        consistent(0.5, 0.6)


def _voted(answers, truth):
    from labkit.core.proposer import majority_vote
    label, p = majority_vote(answers)
    return Votes(answers, label, p, label == truth, sum(a == truth for a in answers) / len(answers))


def test_self_consistency_targets_by_hand():
    a = _voted(["7", "7", "8", "7", "9", "7"], "7")   # label 7 from all six votes
    b = _voted(["3", None, "4", "4", "4", "3"], "3")  # label 4 (wrong), the first two answers are 3 and None
    r = self_consistency_targets([a, b], train=3)
    assert r.tolist() == [1., 1., 0., 0., 0., 1.]
    # the label comes from ALL votes, not only the trained ones: b's first three alone would tie 3/4
    r = self_consistency_targets([a, b], train=3, labels=["7", "3"])   # an oracle label for b
    assert r.tolist() == [1., 1., 0., 1., 0., 0.]
    assert self_consistency_targets([_voted([None, None], "1")], train=2).tolist() == [0., 0.]
    with pytest.raises(ValueError):
        self_consistency_targets([a], train=7)
    with pytest.raises(ValueError):
        self_consistency_targets([a, b], train=2, labels=["7"])


def test_variant_keeps_the_form_and_avoids_excluded():
    rng = random.Random(0)
    task = parse_task("47-23=")
    seen = set()
    for _ in range(50):
        v = variant(task, rng, exclude={"10-10="})
        assert v.category == "sub" and len(str(v.meta["a"])) == 2 and len(str(v.meta["b"])) == 2
        assert v.prompt != task.prompt and v.answer == str(v.meta["a"] - v.meta["b"])
        seen.add(v.prompt)
    assert len(seen) > 40
    one = variant(parse_task("3*4="), rng)
    assert one.category == "mul" and len(one.prompt) == 4
    with pytest.raises(ValueError):
        variant("3*4=", rng)


def test_hop_task_answers_by_the_tool():
    rng = random.Random(1)
    for hops in (1, 2):
        for _ in range(20):
            t = hop_task(hops, 2, rng)
            assert t.meta["hops"] == hops
            a, b = t.meta["a"], t.meta["b"]
            if hops == 1:
                assert t.prompt == f"{a}*{b}=" and t.answer == str(calculate(f"{a}*{b}", 2))
            else:
                c = t.meta["c"]
                assert t.prompt == f"{a}*{b}+{c}=" and calculate(t.prompt[:-1], 2) is None   # needs two steps
                assert t.answer == str(calculate(f"{calculate(f'{a}*{b}', 2)}+{c}", 2))
    with pytest.raises(ValueError):
        hop_task(3, 2, rng)
    with pytest.raises(ValueError):
        hop_task(1, 2, rng, exclude={f"{a}*{b}=" for a in range(10, 100) for b in range(10, 100)})

# ------------------------------------------------------------------------------------------ the arms


@pytest.fixture(scope="module")
def tiny():
    return load_policy("tiny")


def test_vote_measures_label_correctness(tiny):
    tasks = [parse_task("2+3="), parse_task("41+17=")]
    _, voted = sample_votes(tiny, tasks, 4, torch.Generator().manual_seed(0))
    for t, v in zip(tasks, voted):
        assert len(v.answers) == 4 and v.right == (v.label == t.answer)
        assert v.p_hat == pytest.approx(sum(a == v.label for a in v.answers) / 4 if v.label else 0.0)
    with pytest.raises(ValueError):
        sample_votes(tiny, [], 4)


def test_ttc_arms_spend_equal_rollouts_and_the_oracle_trains_true_labels(tiny):
    test = [parse_task(f"{a}+{b}=") for a, b in ((12, 34), (56, 21), (40, 40), (73, 18))]
    cfg = RLConfig(group_size=4, max_new_tokens=8)
    stats = {}
    for arm in TTC_ARMS:
        policy = copy.deepcopy(tiny)
        opt = torch.optim.AdamW(policy.model.parameters(), lr=1e-4)
        stats[arm] = ttc_step(arm, policy, opt, cfg, test, 4, 6, 4, 0.5, random.Random(0),
                              torch.Generator().manual_seed(0), frozenset(t.prompt for t in test))
    assert {s["rollouts"] for s in stats.values()} == {24}
    assert stats["ttrl"]["variant_label_acc"] is None and stats["ttcs"]["variant_label_acc"] is not None
    # delta 0.5 keeps every variant; the oracle's variant labels are right by construction
    assert stats["ttcs"]["kept_variants"] == stats["oracle"]["kept_variants"] == 2
    assert stats["oracle"]["trained_label_acc"] >= stats["ttcs"]["trained_label_acc"]
    with pytest.raises(ValueError):
        ttc_step("bogus", tiny, None, cfg, test, 4, 6, 4, 0.5, random.Random(0), None, frozenset())


def test_tool_arms_budget():
    policy = load_policy("tiny-calc-chain")
    rng = random.Random(0)
    tasks = [hop_task(1 + i % 2, 1, rng) for i in range(4)]
    cfg = RLConfig(group_size=2, max_new_tokens=16)
    for arm, k, want in (("grpo", 2, 8), ("hrpo", 1, 4), ("batch", 1, 4)):
        p = copy.deepcopy(policy)
        st = tool_step(arm, p, torch.optim.AdamW(p.model.parameters(), lr=1e-4), cfg, tasks, k,
                       torch.Generator().manual_seed(0))
        assert st["rollouts"] == want and 0 <= st["reward"] <= 1
    assert "grpo_equal" in TOOL_ARMS
    with pytest.raises(ValueError):
        tool_step("grpo", policy, None, cfg, tasks, 1, None)   # GRPO needs two answers per question
