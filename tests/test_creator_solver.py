"""Notebook 08's mechanism (labkit.nb.n08_creator_solver): ADPO's filter and scaling, Agent0's creator reward,
eva's informativeness, selection and mutations, and the arms' equal solver budget."""
import copy
import random

import pytest
import torch

from labkit.core.grpo import RLConfig, grpo_advantages
from labkit.core.policy import load_policy
from labkit.core.proposer import GrammarCreator, parse_task, sample_votes
from labkit.nb.n08_creator_solver import (ARMS, adpo_advantages, creator_rewards, eva_select, in_band,
                                          informativeness, mutate, random_task, train_arm)

# ------------------------------------------------------------------------------------------ ADPO


def test_adpo_advantages_by_hand():
    # three groups of k = 4: p_hat 0.5 (kept), 1.0 (out of the band), 0.25 (kept, the edge)
    r = torch.tensor([1., 1., 0., 0., 1., 1., 1., 1., 1., 0., 0., 0.])
    adv, rows = adpo_advantages(r, [0.5, 1.0, 0.25], k=4, delta=0.25)
    assert rows == [0, 1, 2, 3, 8, 9, 10, 11]
    z = grpo_advantages(r, 4)
    mean_kept = (0.5 + 0.25) / 2
    assert torch.allclose(adv[:4], z[:4] * 0.5 / mean_kept)
    assert torch.allclose(adv[8:], z[8:] * 0.25 / mean_kept)
    # the kept groups' scales average 1: the step size matches plain GRPO on the same groups
    assert (0.5 / mean_kept + 0.25 / mean_kept) / 2 == pytest.approx(1.0)


def test_adpo_advantages_nothing_kept_and_bad_inputs():
    adv, rows = adpo_advantages(torch.ones(4), [1.0], k=4)
    assert rows == [] and torch.equal(adv, torch.zeros(4))
    assert adpo_advantages(torch.zeros(4), [0.5], k=4, delta=0.0)[1] == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        adpo_advantages(torch.ones(6), [0.5], k=4)          # not k rewards per p_hat
    with pytest.raises(ValueError):
        adpo_advantages(torch.ones(4), [1.5], k=4)          # p_hat outside [0, 1]
    with pytest.raises(ValueError):
        adpo_advantages(torch.ones(4), [0.5], k=4, delta=0.6)


def test_in_band_edges():
    assert in_band(0.25, 0.25) and in_band(0.75, 0.25) and in_band(0.5, 0.0)
    assert not in_band(0.125, 0.25) and not in_band(0.875, 0.25) and not in_band(1.0, 0.25)

# ------------------------------------------------------------------------------------------ the creator's reward


def test_creator_rewards_by_hand():
    # R_C = valid * max(0, R_unc - R_rep): p_hat .5 -> 1 - .25; p_hat .75 -> .5 - .5 = 0; invalid -> 0; p 1 -> max(0, -.1)
    got = creator_rewards([True, True, False, True], [0.5, 0.75, None, 1.0], [0.25, 0.5, 0.25, 0.1])
    assert got == pytest.approx([0.75, 0.0, 0.0, 0.0])
    assert creator_rewards([True], [0.5], [0.0], lam_unc=0.6) == pytest.approx([0.6])
    with pytest.raises(ValueError):
        creator_rewards([True, True], [0.5], [0.0, 0.0])
    with pytest.raises(ValueError):
        creator_rewards([True], [1.5], [0.0])

# ------------------------------------------------------------------------------------------ eva


def test_informativeness_is_the_reward_gap():
    assert informativeness([1, 0, 0, 1]) == 1.0 and informativeness([1, 1]) == 0.0
    assert informativeness([0.2, 0.9, 0.5]) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        informativeness([])


def test_eva_select_weights_by_normalised_informativeness():
    info = [0.0, 1.0, 0.0, 1.0, 0.5]
    # weights (0, 1, 0, 1, .5): the zero-information prompts come last, only once the others are taken
    for s in range(20):
        picked = eva_select(info, 3, random.Random(s))
        assert sorted(picked) == [1, 3, 4] and len(set(picked)) == 3
    counts = [0] * 5
    for s in range(400):
        counts[eva_select(info, 1, random.Random(s))[0]] += 1
    assert counts[0] == counts[2] == 0 and counts[4] < counts[1] and counts[4] < counts[3] and counts[4] > 40
    # signal=False (uniform evolution) or equal information: every prompt can be picked first
    firsts = {eva_select(info, 1, random.Random(s), signal=False)[0] for s in range(200)}
    assert firsts == set(range(5))
    assert {eva_select([0.3] * 4, 1, random.Random(s))[0] for s in range(200)} == set(range(4))
    assert sorted(eva_select(info, 5, random.Random(0))) == list(range(5))   # all: the weights run out
    with pytest.raises(ValueError):
        eva_select(info, 6, random.Random(0))


def test_mutate_keeps_the_grammar():
    rng = random.Random(0)
    task = parse_task("12+34=")
    seen = set()
    for _ in range(200):
        child = mutate(task, rng, max_width=3, exclude={"5+5="})
        a, b = str(child.meta["a"]), str(abs(child.meta["b"]))
        assert len(a) == len(b) and 1 <= len(a) <= 3 and child.prompt != "5+5="
        seen.add((child.category, len(a)))
    # every mutation shows up: new digits, wider, narrower, another operator
    assert {("add", 2), ("add", 3), ("add", 1)} <= seen and {"sub", "mul"} <= {c for c, _ in seen}
    assert mutate(parse_task("123*456="), random.Random(1), max_width=3).difficulty <= 3


def test_random_task_and_bad_inputs():
    t = random_task("*", 2, random.Random(0))
    assert t.category == "mul" and t.difficulty == 2 and len(str(t.meta["a"])) == 2
    with pytest.raises(ValueError):
        random_task("/", 2, random.Random(0))
    with pytest.raises(ValueError):
        random_task("+", 0, random.Random(0))
    every = {f"{a}+{b}=" for a in range(10) for b in range(10)}
    with pytest.raises(ValueError):
        random_task("+", 1, random.Random(0), exclude=every)

# ------------------------------------------------------------------------------------------ the arms


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return load_policy("tiny")


def test_sample_votes_majority_and_measurement(tiny):
    tasks = [parse_task("3+4="), parse_task("2*3=")]
    batch, groups = sample_votes(tiny, tasks, 6, torch.Generator().manual_seed(0))
    assert len(batch) == 12 and len(groups) == 2
    for task, g in zip(tasks, groups):
        assert len(g.rewards) == 6 and g.p_hat == pytest.approx(sum(g.rewards) / 6)
        assert g.right == (g.label == task.answer)
    with pytest.raises(ValueError):
        sample_votes(tiny, tasks, 1)
    with pytest.raises(ValueError):
        sample_votes(tiny, [], 4)


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_spends_the_same_solver_rollouts(tiny, arm):
    rng = random.Random(0)
    pool = [random_task(op, w, rng) for op in "+-*" for w in (1, 2) for _ in range(2)]
    solver = copy.deepcopy(tiny)
    opt = torch.optim.AdamW(solver.model.parameters(), lr=1e-4)
    creator = GrammarCreator(2)
    copt = torch.optim.Adam(creator.parameters(), lr=0.1)
    before = creator.op_logits.detach().clone()
    history = train_arm(arm, solver, opt, RLConfig(group_size=4, max_new_tokens=8), 2, 8, random.Random(1),
                        torch.Generator().manual_seed(2), pool, max_width=2, creator=creator, creator_opt=copt)
    assert [st["rollouts"] for st in history] == [32, 32]
    assert all(0 <= st["frac_informative"] <= 1 and 0 <= st["pseudo_label_acc"] <= 1 for st in history)
    if arm == "agent0":
        assert all(0 < st["valid_rate"] <= 1 for st in history)
        assert not torch.equal(before, creator.op_logits.detach())   # the creator learned something
    if arm == "easy_to_hard":
        assert [st["width"] for st in history] == [1, 2]


def test_train_arm_bad_inputs(tiny):
    cfg = RLConfig(group_size=4, max_new_tokens=8)
    with pytest.raises(ValueError):
        train_arm("random", tiny, None, cfg, 1, 4, random.Random(0), None, [parse_task("1+2=")] * 4)
    with pytest.raises(ValueError):
        train_arm("agent0", tiny, None, cfg, 1, 4, random.Random(0), None, [parse_task("1+2=")] * 4)
