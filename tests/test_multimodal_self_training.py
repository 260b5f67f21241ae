"""Notebook 13 (M-STAR): the filter and PRM reranker, Reward-Pass@k, the temperature rule, the PRM's
scoring, the cosine schedule and the methods' switches. By-hand values, edge cases, bad inputs."""
import math

import pytest
import torch

from labkit.nb.n13_multimodal_self_training import (METHODS, EvolveConfig, StepPRM, choose_temperature, cosine_lr,
                                                    count_features, prm_examples, prm_scores, reward_pass_at_k,
                                                    select_top, steps_per_iteration)


def test_select_top_keeps_the_highest_scored_correct_responses_per_query():
    correct = [True, False, True, True, False, False, True, True]
    scores = [0.1, 0.99, 0.7, 0.5, 0.9, 0.2, 0.3, 0.8]
    # query 0: correct rows 0, 2, 3 -> ranked 2 (0.7), 3 (0.5), 0 (0.1); query 1: correct rows 6, 7 -> 7, 6
    assert select_top(correct, scores, 4, 2) == [2, 3, 7, 6]
    assert select_top(correct, scores, 4, 1) == [2, 7]
    assert select_top(correct, scores, 4, 4) == [2, 3, 0, 7, 6]


def test_select_top_never_keeps_a_wrong_response_even_with_the_best_score():
    correct = [False, True, False, False]
    assert select_top(correct, [1.0, 0.0, 0.9, 0.8], 4, 2) == [1]
    assert select_top([False] * 4, [1.0] * 4, 2, 2) == []  # a query with no correct response gives nothing


def test_select_top_breaks_ties_in_sampling_order():
    assert select_top([True] * 4, [0.5, 0.5, 0.9, 0.5], 4, 3) == [2, 0, 1]


def test_select_top_without_scores_is_a_random_order_of_the_correct_ones():
    correct = [True, True, False, True, True, True, True, True]
    g = torch.Generator().manual_seed(0)
    rows = select_top(correct, None, 4, 2, g)
    assert len(rows) == 4 and all(correct[i] for i in rows)
    assert set(rows[:2]) <= {0, 1, 3} and set(rows[2:]) <= {4, 5, 6, 7}
    order = torch.randperm(3, generator=torch.Generator().manual_seed(0)).tolist()
    assert rows[:2] == [[0, 1, 3][j] for j in order][:2]
    again = select_top(correct, None, 4, 2, torch.Generator().manual_seed(0))
    assert again == rows


def test_select_top_rejects_bad_inputs():
    with pytest.raises(ValueError, match="group_size"):
        select_top([True] * 6, None, 4, 2)
    with pytest.raises(ValueError, match="keep"):
        select_top([True] * 4, None, 4, 0)
    with pytest.raises(ValueError, match="one score per response"):
        select_top([True] * 4, [0.1] * 3, 4, 2)


def test_reward_pass_at_k_by_hand():
    correct = [False, False, True, True, False, True, False, False]
    scores = [0.9, 0.8, 0.1, 0.2, 0.3, 0.9, 0.5, 0.1]
    # query 0: top 2 are rows 0, 1, both wrong -> 0; query 1: top 2 rows 5 (right), 6 -> 1
    assert reward_pass_at_k(correct, scores, 4, 2) == 0.5
    assert reward_pass_at_k(correct, scores, 4, 4) == 1.0
    assert reward_pass_at_k(correct, scores, 4, 1) == 0.5
    assert reward_pass_at_k([False] * 8, scores, 4, 2) == 0.0


def test_reward_pass_at_k_rejects_bad_inputs():
    with pytest.raises(ValueError, match="k must"):
        reward_pass_at_k([True] * 4, [0.0] * 4, 4, 5)
    with pytest.raises(ValueError, match="k must"):
        reward_pass_at_k([True] * 4, [0.0] * 4, 4, 0)
    with pytest.raises(ValueError, match="one score per response"):
        reward_pass_at_k([True] * 4, [0.0] * 2, 4, 2)
    with pytest.raises(ValueError, match="group_size"):
        reward_pass_at_k([True] * 5, [0.0] * 5, 4, 2)


def test_choose_temperature_takes_the_best_and_breaks_ties_upwards():
    assert choose_temperature({0.6: 0.9, 1.0: 0.95, 1.4: 0.8}) == 1.0
    assert choose_temperature({0.6: 1.0, 1.0: 1.0, 1.4: 1.0}) == 1.4
    assert choose_temperature({1.4: 0.5, 0.6: 0.75, 1.0: 0.75}) == 1.0
    with pytest.raises(ValueError):
        choose_temperature({})


def test_cosine_lr_by_hand():
    assert cosine_lr(0, 10, 1e-4) == pytest.approx(1e-4)
    assert cosine_lr(5, 10, 1e-4) == pytest.approx(0.5e-4)
    assert cosine_lr(10, 10, 1e-4) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(20, 10, 1e-4) == pytest.approx(0.0, abs=1e-12)  # past the end: stays at the bottom
    assert all(cosine_lr(s, 8, 1e-4) <= 1e-4 for s in range(9))  # never above the peak (the base's final lr)


def test_count_features_and_prm_scores_take_the_weakest_step():
    assert count_features((2, 0, 4)).tolist() == [0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]

    class Fixed(StepPRM):
        def forward(self, images, counts):  # step logits: log-odds of 0.9, 0.2, 0.6
            p = torch.tensor([0.9, 0.2, 0.6])
            return torch.log(p / (1 - p)).expand(len(images), 3)

    prm = Fixed(8)
    images = torch.zeros(3, 3, 16, 16)
    scores = prm_scores(prm, images, ["r1g2b3", None, "r9g0b0"])
    assert scores[0].item() == pytest.approx(0.2)
    assert scores[1].item() == 0.0 and scores[2].item() == 0.0  # no description / a count no scene has: no steps
    with pytest.raises(ValueError, match="one description per image"):
        prm_scores(prm, images, ["r1g2b3"])


def test_prm_examples_label_each_step_by_the_scene():
    images, counts, labels = prm_examples(64, seed=3, p_step_noise=0.0)
    assert images.shape == (64, 3, 16, 16) and counts.shape == (64, 15) and labels.shape == (64, 3)
    assert labels.eq(1).all()  # no noise: every step right
    _, _, noisy = prm_examples(400, seed=3, p_step_noise=0.3)
    assert 0.6 < noisy.mean().item() < 0.8  # about 70% of steps right
    again = prm_examples(8, seed=3)
    assert torch.equal(again[1], prm_examples(8, seed=3)[1])


def test_the_methods_differ_in_their_switches_and_the_budget_is_counted():
    assert METHODS["restem"].restart and not METHODS["iterative"].restart
    assert not METHODS["iterative"].carry_optimizer and METHODS["continuous"].carry_optimizer
    assert not METHODS["continuous"].rerank and METHODS["continuous_prm"].rerank
    assert METHODS["mstar"].adaptive and not METHODS["continuous_prm"].adaptive
    cfg = EvolveConfig(epochs=2, minibatch=16)
    assert steps_per_iteration(cfg, 40) == 2 * math.ceil(40 / 16)
