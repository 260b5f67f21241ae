"""labkit.core.judge (the judge substrate) and the judge mixture: formats, parsing, scoring, bad inputs."""
import random

import pytest
import torch

from labkit.core import judge as J
from labkit.core.tasks import Task, make_tasks, sample_task, verify


def carry(prompt="3505+1425=", answer="4930"):
    return Task(prompt, answer, "carry", 1, "arithmetic", {})


def test_rubric_marks_by_hand():
    t = carry()
    assert J.rubric_marks(t, "4930", "4930") == {"f": True, "v": "4930", "c": True, "verdict": True}
    assert J.rubric_marks(t, "4903", "4930") == {"f": True, "v": "4930", "c": False, "verdict": False}
    # a format slip with the right number: f fails, c holds, the verdict is n
    assert J.rubric_marks(t, "04930", "4930") == {"f": False, "v": "4930", "c": True, "verdict": False}
    assert J.rubric_marks(t, "4930.", "4930")["verdict"] is False
    # a judge whose own value is wrong accepts the matching wrong answer
    assert J.rubric_marks(t, "4931", "4931")["verdict"] is True


def test_rubric_text_round_trips_and_rejects_garbage():
    marks = J.rubric_marks(carry(), "4903", "4930")
    text = J.rubric_text(marks)
    assert text == "fy v4930 cn =n"
    assert J.parse_rubric(text) == marks
    for bad in ("", "y", "fy v4930 cn", "fy v49a0 cn =n", "fx v4930 cn =n", "fy v4930 cn =y junk"):
        assert J.parse_rubric(bad) is None


def test_prompts_and_refusals():
    t = carry()
    assert J.judge_prompt(t, "4903", "rubric") == "3505+1425=4903|r"
    assert J.judge_prompt(t, "4903", "yesno") == "3505+1425=4903|j"
    assert J.pairwise_prompt(t, "4903", "4930") == "3505+1425=4903|4930|p"
    assert J.refine_prompt(t, "4903", "fy v4930 cn =n") == "3505+1425=4903|fy v4930 cn =n|>"
    # the separator cannot be smuggled in by an answer, and long answers are cut
    assert J.judge_prompt(t, "49|03", "yesno") == "3505+1425=4903|j"
    assert len(J.judge_prompt(t, "9" * 100, "yesno")) == len("3505+1425=") + J.MAX_ANSWER_CHARS + 2
    with pytest.raises(ValueError, match="mode must be one of rubric, yesno"):
        J.judge_prompt(t, "1", "maybe")
    with pytest.raises(ValueError, match="countdown"):
        J.judge_prompt(make_tasks("countdown", 2, 1, seed=1)[0], "1+2", "rubric")
    with pytest.raises(ValueError, match="Task"):
        J.judge_prompt("3+4=", "7", "rubric")


def test_preferred_and_pairwise_parse():
    assert [J.preferred(True, False), J.preferred(False, True), J.preferred(True, True), J.preferred(False, False)] == [1, 2, 0, 0]
    assert J.parse_pairwise("v4930 =2") == ("4930", 2)
    assert J.parse_pairwise("v4930 =3") is None


def test_verifier_scores_by_hand():
    s = J.verifier_scores([True, True, False, False, True], [True, False, True, False, True])
    # tp 2, fp 1, fn 1: precision 2/3, recall 2/3, f1 2/3; 3 of 5 agree
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["acc"] == pytest.approx(0.6)
    assert J.verifier_scores([False, False], [True, False])["f1"] == 0.0  # accepts nothing
    with pytest.raises(ValueError, match="as many verdicts"):
        J.verifier_scores([True], [True, False])


class Scripted:
    """A stand-in policy whose rollouts write a fixed text per prompt (for the helpers' parsing)."""


@pytest.fixture
def scripted(monkeypatch):
    replies = {}

    class Batch:
        def __init__(self, completions):
            self.completions = completions

    def fake_rollout(policy, prompts, max_new_tokens=16, temperature=1.0, top_p=1.0, generator=None, engine="auto"):
        return Batch([replies.get(p, "??") for p in prompts])

    monkeypatch.setattr(J, "rollout", fake_rollout)
    return replies


def test_pointwise_parses_verdicts_and_counts_garbage_as_rejection(scripted):
    t = carry()
    scripted[J.judge_prompt(t, "4930", "rubric")] = "fy v4930 cy =y"
    scripted[J.judge_prompt(t, "4903", "rubric")] = "fy v4930 cn =n"
    scripted[J.judge_prompt(t, "4930", "yesno")] = "y"
    out = J.pointwise(Scripted(), [t, t, t], ["4930", "4903", "1"], "rubric")
    assert [j.verdict for j in out] == [True, False, False]
    assert [j.parsed for j in out] == [True, True, False]
    assert out[1].marks["v"] == "4930"
    yes = J.pointwise(Scripted(), [t, t], ["4930", "1"], "yesno")
    assert [(j.verdict, j.parsed) for j in yes] == [(True, True), (False, False)]
    # as grpo_step's group_reward_fn
    reward = J.judge_reward(Scripted(), "rubric")
    assert reward(t, ["4930", "4903"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="one of answers per task"):
        J.pointwise(Scripted(), [t], ["1", "2"])
    with pytest.raises(ValueError, match="mode must be"):
        J.judge_reward(Scripted(), "vibes")


def test_refine_reads_the_feedback_it_was_given(scripted):
    t = carry()
    feedback = J.Judgement(False, "fy v4930 cn =n", True, {})
    scripted[J.refine_prompt(t, "4903", "fy v4930 cn =n")] = "4930"
    assert J.refine(Scripted(), [t], ["4903"], [feedback]) == ["4930"]


def test_mixture_demonstrations_are_consistent():
    from labkit.bases.mixtures import judge as mix
    stream = mix.demonstrations(0, 0.15, 0.15)
    kinds = {"r": 0, "j": 0, ">": 0, "p": 0}
    for _ in range(400):
        prompt, completion = next(stream)
        assert len(prompt) + len(completion) < 100  # the tiny model's context is 128
        if prompt.endswith("|r"):
            marks = J.parse_rubric(completion)
            assert marks is not None and marks["verdict"] == (marks["f"] and marks["c"])
            kinds["r"] += 1
        elif prompt.endswith("|j"):
            assert completion in ("y", "n")
            kinds["j"] += 1
        elif prompt.endswith("|>"):
            feedback = J.parse_rubric(prompt.split("|")[1])
            answer = prompt.split("=", 1)[1].split("|")[0]
            assert completion == (answer if feedback["verdict"] else feedback["v"])
            kinds[">"] += 1
        elif prompt.endswith("|p"):
            assert J.parse_pairwise(completion) is not None
            kinds["p"] += 1
    assert all(kinds.values()), kinds


def test_yes_probability_and_sampled_judges_run_on_a_real_base():
    from labkit.core.policy import load_policy
    policy = load_policy("tiny", device="cpu")
    tasks = make_tasks("carry", 1, 3, seed=5)
    p = J.yes_probability(policy, tasks, [t.answer for t in tasks])
    assert len(p) == 3 and all(0.0 <= x <= 1.0 for x in p)
    g = torch.Generator().manual_seed(0)
    a = [j.text for j in J.pointwise(policy, tasks, [t.answer for t in tasks], "rubric", generator=g)]
    g = torch.Generator().manual_seed(0)
    b = [j.text for j in J.pointwise(policy, tasks, [t.answer for t in tasks], "rubric", generator=g)]
    assert a == b  # seeded


def test_exact_rubric_agrees_with_the_verifier():
    rng = random.Random(3)
    from labkit.bases.mixtures.judge import candidate
    for _ in range(300):
        t = sample_task("carry", rng.randint(0, 4), rng)
        answer = candidate(t, rng)
        assert J.rubric_marks(t, answer, t.answer)["verdict"] == verify(t, answer).correct


# ---------------------------------------------------------------------------------------------
# Notebook 16's loops (labkit.nb.n16_verification) on a scripted judge

@pytest.fixture
def scripted16(scripted, monkeypatch):
    from labkit.nb import n16_verification as n16

    class Batch:
        def __init__(self, completions):
            self.completions = completions

    monkeypatch.setattr(n16, "rollout", lambda policy, prompts, *a, **k: Batch([scripted.get(p, "??") for p in prompts]))
    return scripted


def script_carry(replies, t, fresh="4931"):
    replies[t.prompt] = fresh                                       # a fresh sample
    replies[J.judge_prompt(t, "4930", "rubric")] = "fy v4930 cy =y"
    replies[J.judge_prompt(t, "4903", "rubric")] = "fy v4930 cn =n"
    replies[J.judge_prompt(t, "4931", "rubric")] = "fy v4930 cn =n"
    replies[J.refine_prompt(t, "4903", "fy v4930 cn =n")] = "4930"
    replies[J.refine_prompt(t, "4931", "fy v4930 cn =n")] = "4930"


def test_verify_refine_loop_revises_only_rejected_answers(scripted16):
    from labkit.nb.n16_verification import verify_refine_loop
    t = carry()
    script_carry(scripted16, t)
    history = verify_refine_loop(Scripted(), [t, t], ["4930", "4903"], rounds=2, arm="refine")
    assert history == [["4930", "4903"], ["4930", "4930"], ["4930", "4930"]]
    history = verify_refine_loop(Scripted(), [t, t], ["4930", "4903"], rounds=2, arm="resample")
    # the accepted answer is never touched; the rejected one is resampled each round it is rejected
    assert history == [["4930", "4903"], ["4930", "4931"], ["4930", "4931"]]
    assert verify_refine_loop(Scripted(), [t], ["4903"], rounds=0) == [["4903"]]
    with pytest.raises(ValueError, match="arm"):
        verify_refine_loop(Scripted(), [t], ["4903"], rounds=1, arm="vote")
    with pytest.raises(ValueError, match="rounds"):
        verify_refine_loop(Scripted(), [t], ["4903"], rounds=-1)


def test_self_data_keeps_accepted_and_accepted_revisions_without_ground_truth(scripted16):
    from labkit.nb.n16_verification import self_data, star_data
    # the tasks' reference answers are deliberately wrong: SELF must not read them
    a = Task("3505+1425=", "0", "carry", 1, "arithmetic", {})
    b = Task("1111+2222=", "0", "carry", 1, "arithmetic", {})
    c = Task("2000+1000=", "0", "carry", 1, "arithmetic", {})
    scripted16[a.prompt] = "4930"
    scripted16[J.judge_prompt(a, "4930", "rubric")] = "fy v4930 cy =y"
    scripted16[b.prompt] = "3330"
    scripted16[J.judge_prompt(b, "3330", "rubric")] = "fy v3333 cn =n"
    scripted16[J.refine_prompt(b, "3330", "fy v3333 cn =n")] = "3333"
    scripted16[J.judge_prompt(b, "3333", "rubric")] = "fy v3333 cy =y"
    scripted16[c.prompt] = "3001"
    scripted16[J.judge_prompt(c, "3001", "rubric")] = "fy v3000 cn =n"
    scripted16[J.refine_prompt(c, "3001", "fy v3000 cn =n")] = "3002"
    scripted16[J.judge_prompt(c, "3002", "rubric")] = "fy v3000 cn =n"   # the revision is rejected too
    kept = self_data(Scripted(), [a, b, c])
    assert sorted((t.prompt, x) for t, x in kept) == [("1111+2222=", "3333"), ("3505+1425=", "4930")]
    # STaR reads the ground truth: with these wrong references it keeps nothing
    assert star_data(Scripted(), [a, b, c]) == []
