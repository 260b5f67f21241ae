"""Notebook 11 (DoGe, context first): the question mask, the Thinker's reward, the shuffled control,
the scarce pool, the Solver's scores and the two steps (labkit/nb/n11_context_first.py)."""
import random

import numpy as np
import pytest
import torch

from labkit.core.grpo import LossConfig, RLConfig
from labkit.core.vision.model import load_vlm
from labkit.core.vision.rollout import frozen_copy
from labkit.core.vision.world import COLOURS, KINDS, answer_from_counts, make_tasks
from labkit.nb.n11_context_first import (THINK_RE, THINK_TOKENS, draw_task, mask_question, scarce_pool,
                                         shuffle_rewards, solve_step, solver_scores, thinker_reward, thinker_step)


@pytest.fixture(scope="module")
def vlm():
    torch.set_num_threads(1)
    return load_vlm("tiny-vlm")


def test_mask_question_hides_the_colours_and_keeps_the_template():
    assert mask_question("how many r?") == "how many _?"
    assert mask_question("r>b?") == "_>_?"
    assert mask_question("g+b?") == "_+_?"
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match="question"):
            mask_question(bad)


def test_thinker_reward_by_hand():
    r = thinker_reward([1.0, 0.5, 0.0, 0.25], [1, 1, 0, 0])
    assert np.allclose(r, [1.0, 0.9 * 0.5 + 0.1, 0.0, 0.9 * 0.25])
    assert np.allclose(thinker_reward([0.5], [1], format_weight=0.0), [0.5])
    with pytest.raises(ValueError, match="one format flag"):
        thinker_reward([1.0, 0.0], [1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        thinker_reward([1.5], [1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        thinker_reward([0.5], [1], format_weight=2.0)


def test_shuffle_rewards_is_a_seeded_permutation():
    r = np.arange(16, dtype=float)
    a = shuffle_rewards(r, np.random.default_rng(3))
    b = shuffle_rewards(r, np.random.default_rng(3))
    assert sorted(a) == sorted(r) and np.array_equal(a, b) and not np.array_equal(a, r)


def test_scarce_pool_and_draw_task():
    pool = scarce_pool(3, seed=0)
    assert pool == scarce_pool(3, seed=0) and pool != scarce_pool(3, seed=1)
    rng = random.Random(0)
    tasks = [draw_task(rng, pool) for _ in range(60)]
    assert {t.scene for t in tasks} <= set(pool)
    assert {t.kind for t in tasks} == set(KINDS)
    for t in tasks:
        assert t.answer == answer_from_counts(t.kind, t.colours, t.scene.counts)
        assert set(t.colours) <= set(COLOURS)
    rich = [draw_task(random.Random(1)) for _ in range(5)]
    assert all(t.image.shape == (3, 16, 16) for t in rich)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="n_images"):
            scarce_pool(bad, 0)


def test_solver_scores_read_right_descriptions_and_not_garbage(vlm):
    model, tok = vlm
    tasks = make_tasks(12, 0, split="eval")
    right = [f"<description>{t.description}</description>" for t in tasks]
    g = torch.Generator().manual_seed(0)
    assert solver_scores(model, tok, tasks, right, samples=1, temperature=0.0, generator=g).mean() > 0.9
    garbage = solver_scores(model, tok, tasks, ["<eeedescripti"] * len(tasks), samples=2, temperature=0.0, generator=g)
    assert garbage.shape == (12,) and garbage.mean() < 0.6
    with pytest.raises(ValueError, match="one text per task"):
        solver_scores(model, tok, tasks, right[:3])
    with pytest.raises(ValueError, match="samples"):
        solver_scores(model, tok, tasks, right, samples=0)


def test_thinker_and_solve_steps_update_and_report(vlm):
    base, tok = vlm
    torch.manual_seed(0)
    model = frozen_copy(base)
    model.requires_grad_(True)
    model.train()
    reference, solver = frozen_copy(base), frozen_copy(base)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tasks = [draw_task(random.Random(i), scarce_pool(2, 0)) for i in range(2)]
    cfg1 = RLConfig(group_size=4, max_new_tokens=THINK_TOKENS, loss=LossConfig(kl_coef=0.01))
    before = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(0)
    m = thinker_step(model, reference, solver, opt, tok, tasks, cfg1, samples=2, generator=g,
                     shuffle_rng=np.random.default_rng(0))
    assert {"reward/mean", "solver", "format_ok", "desc_right", "kl"} <= set(m)
    assert 0 <= m["solver"] <= 1 and 0 <= m["format_ok"] <= 1
    m2 = solve_step(model, reference, opt, tok, tasks, RLConfig(group_size=4, max_new_tokens=40), g)
    assert 0 <= m2["acc"] <= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())) or m["grad_norm"] == 0
    assert THINK_RE.fullmatch("<description>r1g2b3</description>") and not THINK_RE.fullmatch("<description>r1g2b3")
