"""Notebook 14's mechanism (labkit.nb.n14_policy_reward_coevolution): SPARK's recycling of RLVR groups into
judge data, the judge's reward, the semi-supervised reward, the arms and the on-policy report; bad inputs."""
import random

import pytest
import torch

from labkit.core import judge as J
from labkit.core.grpo import RLConfig
from labkit.core.tasks import Task
from labkit.nb import n14_policy_reward_coevolution as M


def carry(prompt="3505+1425=", answer="4930"):
    return Task(prompt, answer, "carry", 1, "arithmetic", {})


def test_recycle_uniform_groups_give_one_pointwise_item():
    t = carry()
    items = M.recycle_group(t, ["4930", "4930 ", "4930"], [1.0, 1.0, 1.0], random.Random(0))
    assert items == [M.JudgeItem(J.judge_prompt(t, "4930", "yesno"), "y", "pointwise")]   # the first answer
    wrong = ["4931", "4903", "49"]
    for seed in range(5):
        (item,) = M.recycle_group(t, wrong, [0.0, 0.0, 0.0], random.Random(seed))
        assert item.kind == "pointwise" and item.label == "n"
        assert item.prompt in {J.judge_prompt(t, a, "yesno") for a in wrong}


def test_recycle_mixed_groups_label_follows_the_verifier():
    t = carry()
    answers, rewards = ["4930", "4931", "4930", "49"], [1.0, 0.0, 1.0, 0.0]
    right = {J.judge_prompt(t, a, "yesno") for a, r in zip(answers, rewards) if r}
    labels, kinds = set(), set()
    for seed in range(40):
        (item,) = M.recycle_group(t, answers, rewards, random.Random(seed), pairwise_share=0.0)
        kinds.add(item.kind)
        labels.add(item.label)
        assert item.label == ("y" if item.prompt in right else "n")
    assert kinds == {"pointwise"} and labels == {"y", "n"}   # a fair coin picks right or wrong
    positions = set()
    for seed in range(40):
        (item,) = M.recycle_group(t, answers, rewards, random.Random(seed), pairwise_share=1.0)
        assert item.kind == "pairwise"
        first, second = item.prompt[len(t.prompt):].split(J.SEP)[:2]
        assert {first, second} & {"4930"} and ({first, second} & {"4931", "49"})
        # the label is the position of the right answer
        assert item.label == ("1" if first == "4930" else "2")
        positions.add(item.label)
    assert positions == {"1", "2"}
    shares = [M.recycle_group(t, answers, rewards, random.Random(s), 0.7)[0].kind for s in range(400)]
    assert 0.6 < shares.count("pairwise") / 400 < 0.8


def test_recycle_bad_inputs():
    t = carry()
    with pytest.raises(ValueError, match="pairwise_share"):
        M.recycle_group(t, ["1"], [1.0], random.Random(0), pairwise_share=1.5)
    with pytest.raises(ValueError, match="one reward per completion"):
        M.recycle_group(t, ["1", "2"], [1.0], random.Random(0))
    with pytest.raises(ValueError, match="one reward per completion"):
        M.recycle_group(t, [], [], random.Random(0))


def test_judge_item_reward():
    point = M.JudgeItem("x", "y", "pointwise")
    assert M.judge_item_reward(point, "y") == 1.0 and M.judge_item_reward(point, " y ") == 1.0
    assert M.judge_item_reward(point, "n") == 0.0 and M.judge_item_reward(point, "yy") == 0.0
    pair = M.JudgeItem("x", "2", "pairwise")
    assert M.judge_item_reward(pair, "v4930 =2") == 1.0
    assert M.judge_item_reward(pair, "v4930 =1") == 0.0 and M.judge_item_reward(pair, "=2") == 0.0


def test_semi_supervised_reward_reads_the_verifier_only_on_labelled_prompts(monkeypatch):
    from labkit.core.tasks import verify
    labelled, free = carry(), carry("1111+2222=", "3333")
    verified, judged = [], []

    def fake_pointwise(policy, tasks, answers, mode="rubric", temperature=1.0, generator=None, batch_size=512):
        judged.extend(t.prompt for t in tasks)
        assert mode == "yesno"
        return [J.Judgement(a == "7", a, True) for a in answers]   # this judge likes sevens

    def fake_p_yes(policy, tasks, answers):
        judged.extend(t.prompt for t in tasks)
        return [0.9 if a == "7" else 0.2 for a in answers]

    monkeypatch.setattr(M, "verify", lambda task, completion: (verified.append(task.prompt), verify(task, completion))[1])
    monkeypatch.setattr(M, "pointwise", fake_pointwise)
    monkeypatch.setattr(M, "yes_probability", fake_p_yes)
    reward = M.semi_supervised_reward({labelled.prompt}, object(), "verdict")
    assert reward(labelled, ["4930", "7", "04930"]) == [1.0, 0.0, 0.0]
    assert judged == []
    assert reward(free, ["3333", "7"]) == [0.0, 1.0]
    assert verified == [labelled.prompt] * 3 and judged == [free.prompt] * 2
    reward = M.semi_supervised_reward({labelled.prompt}, object())   # p_yes, the default
    assert reward(free, ["3333", "7"]) == [0.2, 0.9] and reward(labelled, ["4930"]) == [1.0]
    assert judged == [free.prompt] * 4 and verified == [labelled.prompt] * 4
    with pytest.raises(ValueError, match="score"):
        M.semi_supervised_reward(set(), object(), "vibes")


@pytest.fixture(scope="module")
def base():
    from labkit.core.policy import load_policy
    torch.manual_seed(0)
    return load_policy("tiny-judge", device="cpu")


def test_arms_share_what_they_should(base):
    static, coevolve, spark = (M.make_arm(n, base, 1e-4) for n in ("static", "coevolve", "spark"))
    assert static.judge is base and static.judge_optimizer is None and static.policy is not base
    assert coevolve.judge is not base and coevolve.judge is not coevolve.policy and coevolve.judge_optimizer
    assert spark.judge is spark.policy and spark.judge_optimizer is spark.optimizer
    with pytest.raises(ValueError, match="arm"):
        M.make_arm("oracle", base, 1e-4)


def test_arm_step_counts_rollouts_and_trains_only_a_coevolving_judge(base):
    tasks = [carry(), carry("1111+2222=", "3333")]
    labelled = {tasks[0].prompt}
    cfg, judge_cfg = RLConfig(group_size=2, max_new_tokens=8), RLConfig(group_size=2, max_new_tokens=16)
    before = [p.detach().clone() for p in base.model.parameters()]
    for name in ("static", "coevolve"):
        arm = M.make_arm(name, base, 1e-3)
        judge_before = [p.detach().clone() for p in arm.judge.model.parameters()]
        g = torch.Generator().manual_seed(0)
        for _ in range(2):
            m = M.arm_step(arm, tasks, labelled, cfg, judge_cfg, random.Random(0), g, g, judge_batch=1)
        assert arm.policy_rollouts == 2 * 2 * 2 and "acc" in m
        moved = any(not torch.equal(a, b) for a, b in zip(judge_before, arm.judge.model.parameters()))
        assert moved == (name == "coevolve") and arm.judge_steps == (2 if name == "coevolve" else 0)
    assert all(torch.equal(a, b) for a, b in zip(before, base.model.parameters()))   # the base stays frozen
    with pytest.raises(ValueError, match="labelled prompts only"):
        M.arm_step(M.make_arm("rlvr", base, 1e-3), tasks, labelled, cfg, judge_cfg, random.Random(0))
    with pytest.raises(ValueError, match="judge_batch"):
        M.arm_step(M.make_arm("spark", base, 1e-3), tasks, labelled, cfg, judge_cfg, random.Random(0), judge_batch=0)
    with pytest.raises(ValueError, match="at least one"):
        M.judge_step(base, None, [], judge_cfg)


def test_onpolicy_report_identities_and_best_of_one(base):
    tasks = [carry(), carry("1111+2222=", "3333"), carry("2000+1000=", "3000")]
    r = M.onpolicy_report(base, base, tasks, torch.Generator().manual_seed(0))
    assert r["hack_gap"] == pytest.approx(r["believed"] - r["true_acc"])
    assert 0 <= r["judge_acc"] <= 1 and len(r["answers"]) == 3
    best, single = M.best_of_n(base, tasks, 1, torch.Generator().manual_seed(0))
    assert best == single
    with pytest.raises(ValueError, match="n"):
        M.best_of_n(base, tasks, 0)
