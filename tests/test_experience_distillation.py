"""Notebook 23's experience distillation: EvolveR's distillation, Laplace scores, principle bank (merge,
retrieve, update, clean), the raw-case vote, MemSkill's controller and designer, and the world."""
import numpy as np
import pytest
import torch

from labkit.nb import n23_experience_distillation as ed


def _traj(rows):
    return [(tuple(t), f, a) for t, f, a in rows]


def test_distill_by_hand():
    rows = _traj([((0, 5), 0, 1), ((1, 5), 1, 1), ((2, 5), 2, 1), ((0, 6), 0, 1), ((3, 7), 3, 2)])
    got = ed.distill(rows, min_families=2, min_consistency=0.8)
    # slot 1 token 5: action 1 in families 0, 1, 2 -> a principle; slot 0 token 0: one family only
    assert got == [(1, 5, 1)]


def test_distill_needs_distinct_families():
    rows = _traj([((0, 5), 0, 1)] * 10)
    assert ed.distill(rows, min_families=2) == []
    assert ed.distill(rows, min_families=1) == [(0, 0, 1), (1, 5, 1)]


def test_distill_drops_inconsistent_tokens():
    rows = _traj([((0, 5), 0, 1), ((1, 5), 1, 1), ((2, 5), 2, 2), ((3, 5), 3, 3)])
    assert ed.distill(rows, min_families=2, min_consistency=0.8) == []
    assert ed.distill(rows, min_families=2, min_consistency=0.5) == [(1, 5, 1)]


def test_distill_rejects_bad_arguments():
    with pytest.raises(ValueError):
        ed.distill([], min_families=0)
    with pytest.raises(ValueError):
        ed.distill([], min_consistency=0)
    with pytest.raises(ValueError):
        ed.distill([], min_consistency=1.5)


def test_laplace_score_by_hand_and_bad_inputs():
    assert ed.laplace_score(0, 0) == 0.5
    assert ed.laplace_score(3, 4) == pytest.approx(4 / 6)
    with pytest.raises(ValueError):
        ed.laplace_score(2, 1)
    with pytest.raises(ValueError):
        ed.laplace_score(-1, 1)


def test_bank_merges_retrieves_by_score_updates_and_cleans():
    bank = ed.PrincipleBank()
    assert bank.add([(0, 1, 2), (1, 3, 0)]) == 2
    assert bank.add([(0, 1, 2)]) == 0                        # merged, record kept
    p_a, p_b = bank.principles[(0, 1, 2)], bank.principles[(1, 3, 0)]
    assert bank.update([p_b], 1) == [pytest.approx(2 / 3)]
    assert bank.retrieve((1, 3), k=3) == [p_b, p_a]          # by score
    assert bank.retrieve((1, 3), k=1) == [p_b]
    assert bank.retrieve((0, 0), k=3) == []                  # nothing applies
    bank.update([p_a, p_a, p_a], 0)                           # score 1/5
    assert bank.clean(0.3) == 1 and list(bank.principles) == [(1, 3, 0)]
    with pytest.raises(ValueError):
        bank.retrieve((1, 3), k=0)


def test_case_vote_by_hand_and_upto():
    mem = ed.CaseMemory(slots=3)
    mem.add((1, 2, 3), 0, 0)
    mem.add((1, 9, 9), 1, 1)
    mem.add((1, 2, 9), 2, 1)
    # similarities 2, 1, 2 on all slots for (1, 2, 0): the top 2 are cases 0 and 2, a 2-2 tie -> action 0
    a, conf, n = mem.vote((1, 2, 0), k=2, n_actions=2)
    assert (a, n) == (0, 2) and conf == pytest.approx(0.5)
    a, conf, n = mem.vote((1, 9, 0), k=3, n_actions=2)     # similarities 1, 2, 1: action 1 gets 3 of 4
    assert (a, n) == (1, 3) and conf == pytest.approx(3 / 4)
    assert mem.vote((1, 2, 0), slots=[0], k=5, n_actions=2)[0] == 1      # 1 vs 2 votes on slot 0
    assert mem.vote((1, 2, 0), slots=[0], k=5, upto=1, n_actions=2)[0] == 0   # only the first case
    assert mem.vote((7, 7, 7), n_actions=2) == (None, 0.0, 0)
    with pytest.raises(ValueError):
        mem.add((1, 2), 0, 0)
    with pytest.raises(ValueError):
        mem.vote((1, 2, 3), k=0)


def test_controller_add_skill_and_reinforce():
    c = ed.SkillController(2, lr=1.0, entropy_coef=0.0)
    c.add_skill(0.3)
    assert float(c.logits([0, 0, 0]).softmax(0)[2]) == pytest.approx(0.3, abs=1e-6)
    before = float(c.logits([0, 0, 0]).softmax(0)[1])
    c.update([0, 0, 0], 1, 1.0)                  # rewarded choice 1 with baseline 0: its probability rises
    assert float(c.logits([0, 0, 0]).softmax(0)[1]) > before
    assert c.act([0, 0, 0], greedy=True) == int(torch.argmax(c.logits([0, 0, 0])))
    with pytest.raises(ValueError):
        c.logits([0, 0])
    with pytest.raises(ValueError):
        c.add_skill(1.0)
    with pytest.raises(ValueError):
        ed.SkillController(0)


def _designer_memory():
    mem = ed.CaseMemory(slots=3)
    mem.add((0, 5, 1), 0, 2)      # slot 1 carries the rule: token 5 -> action 2
    mem.add((1, 5, 2), 1, 2)
    mem.add((0, 6, 3), 2, 0)
    return mem


def test_designer_proposes_the_slot_that_fixes_the_failures():
    mem = _designer_memory()
    failures = [((1, 5, 9), 2, 3), ((2, 6, 9), 0, 3)]
    name, rates = ed.designer_propose(failures, mem, {"slot 0": [0], "slot 1": [1], "slot 2": [2]}, k=5, n_actions=4)
    assert name == "slot 1" and rates["slot 1"] == 1.0


def test_designer_uses_the_memory_of_each_failures_moment():
    mem = _designer_memory()
    failures = [((2, 6, 9), 0, 2)]      # at that moment the (0, 6, 3) case was not stored yet
    name, rates = ed.designer_propose(failures, mem, {"slot 1": [1]}, k=5, n_actions=4)
    assert name is None and rates == {"slot 1": 0.0}


def test_designer_proposes_nothing_better_than_a_guess():
    mem = _designer_memory()
    assert ed.designer_propose([], mem, {"slot 1": [1]}) == (None, {})
    assert ed.designer_propose([((1, 5, 9), 2, 3)], mem, {}) == (None, {})
    name, rates = ed.designer_propose([((1, 5, 9), 0, 3)], mem, {"slot 1": [1]}, n_actions=4)
    assert name is None and rates["slot 1"] == 0.0


def test_world_shared_rule_and_control():
    rng = np.random.default_rng(0)
    rule = [3, 2, 1]
    fams = ed.make_families(30, rng, features=3, shared=True, rule=rule)
    assert all(f.action == rule[f.feature] for f in fams)
    tasks = ed.make_tasks(fams[0], 4, rng)
    assert all(t.tokens[:4] == fams[0].surface and t.tokens[ed.FEATURE_SLOT] == fams[0].feature for t in tasks)
    control = ed.make_families(200, np.random.default_rng(1), features=3, shared=False)
    assert any(f.action != rule[f.feature] for f in control)
    with pytest.raises(ValueError):
        ed.make_families(3, rng, features=3, shared=True, rule=None)
    with pytest.raises(ValueError):
        ed.make_families(0, rng)
