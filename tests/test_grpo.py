"""The GRPO step end to end on the shipped base: determinism, metrics, custom pieces, learning."""
import random

import pytest
import torch

from labkit.core.policy import load_policy
from labkit.core.grpo import LossConfig, RLConfig, drgrpo_advantages, grpo_step, ppo_clip_loss
from labkit.bases.pretrain import encode_batch
from labkit.core.tasks import make_tasks, parse_arms, sample_task, train_seed

STANDARD_METRICS = {"reward/mean", "acc", "entropy", "kl", "clipfrac", "grad_norm", "len/mean",
                    "frac_zero_std", "time/step"}


def run_steps(seed, steps=3, **step_kwargs):
    torch.manual_seed(seed)
    policy = load_policy("tiny", device="cpu")
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-3)
    cfg = step_kwargs.pop("cfg", RLConfig(group_size=4, max_new_tokens=8))
    rng = random.Random(train_seed(seed))
    arms = parse_arms("add:1,sort:2-3")
    out = []
    for _ in range(steps):
        tasks = [sample_task(*rng.choice(arms), rng) for _ in range(4)]
        out.append(grpo_step(policy, optimizer, tasks, cfg, **step_kwargs))
    return out, policy


def without_time(metrics):
    return {k: v for k, v in metrics.items() if not k.startswith("time/")}


def test_same_seed_gives_identical_metrics_on_cpu():
    first, _ = run_steps(seed=3)
    second, _ = run_steps(seed=3)
    assert [without_time(r.metrics) for r in first] == [without_time(r.metrics) for r in second]
    assert [r.batch.completions for r in first] == [r.batch.completions for r in second]
    other, _ = run_steps(seed=4)
    assert [r.batch.completions for r in other] != [r.batch.completions for r in first]


def test_step_reports_the_standard_metrics_with_sane_values():
    results, _ = run_steps(seed=0, steps=2)
    m = results[-1].metrics
    assert STANDARD_METRICS <= set(m)
    assert 0 <= m["reward/mean"] <= 1 and 0 <= m["frac_zero_std"] <= 1 and m["entropy"] > 0
    assert m["len/mean"] >= 1 and m["grad_norm"] >= 0


def test_custom_advantage_and_loss_functions_are_used():
    calls = {"adv": 0, "loss": 0}

    def my_advantage(rewards, group_size):
        calls["adv"] += 1
        return drgrpo_advantages(rewards, group_size)

    def my_loss(tb, cfg):
        calls["loss"] += 1
        return ppo_clip_loss(tb, cfg)

    cfg = RLConfig(group_size=4, max_new_tokens=8, epochs=2, minibatches=2)
    run_steps(seed=0, steps=1, cfg=cfg, advantage_fn=my_advantage, loss_fn=my_loss)
    assert calls == {"adv": 1, "loss": 4}  # 2 epochs x 2 minibatches


def test_kl_to_reference_is_measured_and_grows_from_zero():
    ref = load_policy("tiny", device="cpu").model.eval()
    cfg = RLConfig(group_size=4, max_new_tokens=8, loss=LossConfig(kl_coef=0.05))
    results, _ = run_steps(seed=1, steps=4, cfg=cfg, ref_model=ref)
    assert results[0].metrics["kl"] == pytest.approx(0.0, abs=1e-6)  # identical weights at first
    assert results[-1].metrics["kl"] > 0


def test_reward_fn_replaces_the_verifier():
    results, _ = run_steps(seed=0, steps=1, reward_fn=lambda task, text: float(len(text) % 2))
    r = results[0]
    assert torch.equal(r.rewards, torch.tensor([float(len(t) % 2) for t in r.batch.completions]))


def test_group_reward_fn_scores_each_group_together():
    """A judge that sees the whole group, e.g. a rank within it: the rewards follow the group."""
    seen = []

    def rank_by_length(task, completions):
        seen.append((task.prompt, list(completions)))
        order = sorted(range(len(completions)), key=lambda i: (len(completions[i]), i))
        return [order.index(i) / (len(completions) - 1) for i in range(len(completions))]

    results, _ = run_steps(seed=0, steps=1, group_reward_fn=rank_by_length)
    r = results[0]
    assert [prompt for prompt, _ in seen] == [t.prompt for t in r.tasks[::4]]
    assert [c for _, group in seen for c in group] == r.batch.completions
    for g in range(4):  # each group's rewards are the ranks 0, 1/3, 2/3, 1 in some order
        assert sorted(r.rewards[4 * g:4 * g + 4].tolist()) == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert r.metrics["frac_zero_std"] == 0.0


def test_group_reward_fn_must_return_a_reward_per_completion_and_excludes_reward_fn():
    with pytest.raises(ValueError, match=r"one reward per completion \(4\); got 3"):
        run_steps(seed=0, steps=1, group_reward_fn=lambda task, completions: [0.0] * 3)
    with pytest.raises(ValueError, match="not both"):
        run_steps(seed=0, steps=1, reward_fn=lambda t, c: 0.0, group_reward_fn=lambda t, cs: [0.0] * 4)


def answer_nll(policy, tasks):
    """Mean negative log-likelihood per token of the reference answers (+EOS): deterministic."""
    ids, mask, labels = encode_batch(policy.tokenizer, [(t.prompt, t.answer) for t in tasks])
    with torch.no_grad():
        return policy.model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()


def test_grpo_makes_correct_answers_more_likely():
    """Learning, not just running: 20 steps on reverse:5 sharpen the policy towards the verified
    answers of held-out tasks (a deterministic measure, unlike the sampled reward)."""
    torch.manual_seed(0)
    policy = load_policy("tiny", device="cpu")
    held_out = make_tasks("reverse", 5, 32, seed=0)
    before = answer_nll(policy, held_out)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=3e-4)
    cfg = RLConfig(group_size=8, max_new_tokens=8)
    rng = random.Random(train_seed(0))
    for _ in range(20):
        grpo_step(policy, optimizer, [sample_task("reverse", 5, rng) for _ in range(4)], cfg)
    assert answer_nll(policy, held_out) < 0.8 * before


def test_skipping_uninformative_groups_updates_only_informative_rows():
    seen = []

    def counting_loss(tb, cfg):
        seen.append(tb.mask.shape[0])
        return ppo_clip_loss(tb, cfg)

    cfg = RLConfig(group_size=4, max_new_tokens=8, skip_uninformative_groups=True)
    results, _ = run_steps(seed=0, steps=3, cfg=cfg, loss_fn=counting_loss)
    for r, rows in zip([r for r in results if r.metrics["rows_updated"]], seen):
        informative = (r.rewards.view(-1, 4).std(dim=1) > 0).sum().item() * 4
        assert rows == informative == r.metrics["rows_updated"]
    assert len(seen) == sum(1 for r in results if r.metrics["rows_updated"])
    assert any(r.metrics["rows_updated"] < 16 for r in results)  # the filter did drop groups


@pytest.mark.parametrize("temperature", [0.6, 1.5])
def test_the_update_scores_at_the_sampling_temperature(temperature):
    """On the first minibatch of the first epoch the policy being updated is the one that sampled:
    pi_theta / pi_old = 1 on every token, at any sampling temperature."""
    first_ratio_gap = []

    def spy_loss(tb, cfg):
        if not first_ratio_gap:
            first_ratio_gap.append(((tb.logp - tb.old_logp) * tb.mask).abs().max().item())
        return ppo_clip_loss(tb, cfg)

    cfg = RLConfig(group_size=4, max_new_tokens=8, temperature=temperature)
    run_steps(seed=0, steps=1, cfg=cfg, loss_fn=spy_loss)
    assert first_ratio_gap[0] < 1e-4
