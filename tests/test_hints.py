"""labkit.hints: hint levels, hinted prompts, self-hint hygiene, the adaptive level, hinted re-rolls."""
import pytest
import torch

from labkit.hints import (HINT_SEPARATOR, LEVELS, MAX_LEVEL, HintLevels, hint_request, hinted_accuracy,
                          hinted_prompt, procedural_hint, roll_with_hints, training_pool,
                          usable_hint)
from labkit.policy import load_policy
from labkit.rollout import concat_rollouts
from labkit.policy.tokenizer import CHARACTERS
from labkit.rollout import completion_logprobs, rollout
from labkit.tasks import Task, make_tasks, verify


def countdown(prompt, answer):
    return Task(prompt=prompt, answer=answer, category="countdown", difficulty=len(prompt.split(">")[0].split()),
                world="countdown")


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return load_policy("tiny", device="cpu")


@pytest.mark.parametrize("prompt, answer, hints", [
    ("8 1 8>1=", "1+8-8", ["1 8 8", "1 8 8:1+8", "1 8 8:1+8-"]),
    ("11 4>44=", "11*4", ["4 11", "4 11:11", "4 11:11*"]),  # two numbers: the second is withheld
    ("12 1 5 5 4>16=", "4+5-1*5+12", ["1 4 5 5 12", "1 4 5 5 12:4+5", "1 4 5 5 12:4+5-1*5+"]),
])
def test_procedural_hint_levels_by_hand(prompt, answer, hints):
    task = countdown(prompt, answer)
    assert procedural_hint(task, 0) == ""
    assert [procedural_hint(task, level) for level in (1, 2, 3)] == hints


def test_hints_never_give_the_answer_and_use_the_tokenizer_alphabet():
    alphabet = set(CHARACTERS)
    for difficulty in (2, 3, 4, 5):
        for task in make_tasks("countdown", difficulty, 200, seed=1234):
            previous = ""
            for level in (1, 2, 3):
                hint = procedural_hint(task, level)
                assert task.answer not in hint
                assert set(hint) <= alphabet and HINT_SEPARATOR not in hint
                assert len(hint) >= len(previous)  # more detailed, level by level
                previous = hint
                assert set(hinted_prompt(task.prompt, hint)) <= alphabet
                assert set(hint_request(task, level)) <= alphabet


def test_hinted_prompt_and_request_format():
    task = countdown("3 5 7>22=", "3*5+7")
    assert hinted_prompt(task.prompt, "") == "3 5 7>22="
    assert hinted_prompt(task.prompt, "3 5 7:3*5") == "3 5 7:3*5;3 5 7>22="
    assert hint_request(task, 2) == "h2|3 5 7>22=3*5+7|"


@pytest.mark.parametrize("call, message", [
    (lambda t: procedural_hint(t, 4), "hint level must be one of"),
    (lambda t: procedural_hint(t, True), "hint level must be one of"),
    (lambda t: hint_request(t, 0), "level 0 means no hint"),
    (lambda t: hinted_prompt(t.prompt, "a;b"), "printable ASCII"),
    (lambda t: procedural_hint(make_tasks("add", 2, 1, seed=1000)[0], 1), "defined for countdown"),
    (lambda t: HintLevels(raise_at=0.5, lower_at=0.2), "raise_at <= lower_at"),
])
def test_bad_inputs_fail_with_one_line(call, message):
    with pytest.raises(ValueError, match=message):
        call(countdown("3 5 7>22=", "3*5+7"))


def test_usable_hint_drops_leaks_and_junk():
    task = countdown("3 5 7>22=", "3*5+7")
    assert usable_hint(task, " 3 5 7:3*5 ") == "3 5 7:3*5"
    assert usable_hint(task, "3 5 7:3*5+7") == ""  # the whole solution
    assert usable_hint(task, "x;y") == "" and usable_hint(task, "") == "" and usable_hint(task, "9" * 40) == ""


def test_adaptive_level_rule_by_hand():
    levels = HintLevels()  # raise at acc <= 0, lower above 0.35
    assert levels.level("p") == 0
    assert levels.update("p", 0, 0.0) == 1
    assert levels.update("p", 1, 0.0) == 2
    assert levels.update("p", 2, 0.25) == 2  # in (0, 0.35]: kept
    assert levels.update("p", 2, 0.5) == 1
    assert levels.update("p", MAX_LEVEL, 0.0) == MAX_LEVEL  # capped
    assert levels.update("q", 0, 1.0) == 0  # floored
    assert levels.level("p") == MAX_LEVEL and levels.level("q") == 0


def test_merged_rollouts_score_as_sampled(policy):
    torch.manual_seed(1)
    short = rollout(policy, ["3 5 7>22="] * 3, max_new_tokens=8)
    long = rollout(policy, ["3 5 7:3*5;3 5 7>22=", "h2|3 5 7>22=3*5+7|"], max_new_tokens=12)
    merged = concat_rollouts([short, long], policy.tokenizer.pad_token_id)
    assert len(merged) == 5 and merged.completions == short.completions + long.completions
    logp = completion_logprobs(policy.model, merged)
    assert torch.allclose(logp * merged.completion_mask, merged.logprobs, atol=1e-4)
    assert torch.equal(merged.completion_mask.sum(-1), torch.cat([short.lengths, long.lengths]))


def test_roll_with_hints_escalates_only_all_wrong_groups_and_keeps_rewards(policy):
    tasks = make_tasks("countdown", 5, 6, seed=1001)
    torch.manual_seed(2)
    out = roll_with_hints(policy, tasks, group_size=4, max_new_tokens=16, hint_source="procedural")
    groups = out.rewards.view(-1, 4)
    for g, task in enumerate(tasks):
        assert groups[g].max() > 0 or out.levels[g] == MAX_LEVEL  # escalated until solved or out of levels
        assert out.hints[g] == procedural_hint(task, out.levels[g])
        rows = range(4 * g, 4 * g + 4)
        assert all(out.batch.prompts[i] == hinted_prompt(task.prompt, out.hints[g]) for i in rows)
        assert [verify(task, out.batch.completions[i]).reward for i in rows] == groups[g].tolist()
    assert sum(out.rolled_at.values()) >= len(tasks) and out.rolled_at[0] == len(tasks)
    torch.manual_seed(2)
    again = roll_with_hints(policy, tasks, group_size=4, max_new_tokens=16, hint_source="procedural")
    assert again.levels == out.levels and torch.equal(again.rewards, out.rewards)  # same seed, same numbers


def test_plain_grpo_rolls_once_and_start_levels_are_respected(policy):
    tasks = make_tasks("countdown", 5, 4, seed=1002)
    plain = roll_with_hints(policy, tasks, group_size=3, hint_source=None)
    assert plain.levels == [0] * 4 and plain.rolled_at[0] == 4 and sum(plain.rolled_at.values()) == 4
    started = roll_with_hints(policy, tasks, group_size=3, hint_source="procedural", start_levels=[2, 2, 3, 0])
    assert all(level >= start for level, start in zip(started.levels, [2, 2, 3, 0]))
    with pytest.raises(ValueError, match="hint_source"):
        roll_with_hints(policy, tasks, group_size=3, hint_source="oracle")
    with pytest.raises(ValueError, match="start_levels"):
        roll_with_hints(policy, tasks, group_size=3, start_levels=[0])


def test_self_hints_are_checked_and_accuracy_is_a_share(policy):
    tasks = make_tasks("countdown", 3, 5, seed=1003)
    torch.manual_seed(3)
    out = roll_with_hints(policy, tasks, group_size=2, hint_source="self", start_levels=[1] * 5)
    assert all(task.answer not in hint for task, hint in zip(tasks, out.hints))
    for level in LEVELS:
        acc = hinted_accuracy(policy, tasks, level, "procedural", samples=2)
        assert 0.0 <= acc <= 1.0


def test_training_pool_is_deterministic_and_off_the_eval_seed():
    a = training_pool([("countdown", 4), ("countdown", 5)], 10, seed=0)
    b = training_pool([("countdown", 4), ("countdown", 5)], 10, seed=0)
    assert [t.prompt for t in a] == [t.prompt for t in b] and len(a) == 20
    assert {t.difficulty for t in a} == {4, 5}


def test_hints_mixture_teaches_reading_and_writing():
    from labkit.policy.mixtures import load_mixture

    stream = load_mixture("hints").demonstrations(0, 0.0, 0.0)
    pairs = [next(stream) for _ in range(400)]
    read = [(p, c) for p, c in pairs if HINT_SEPARATOR in p]
    write = [(p, c) for p, c in pairs if p.startswith("h") and p.endswith("|")]
    assert read and write and len(read) + len(write) < len(pairs)
    for prompt, completion in read:  # without noise the completion continues the hint's prefix
        hint = prompt.split(HINT_SEPARATOR)[0]
        if ":" in hint:
            assert completion.startswith(hint.split(":")[1])
    again = load_mixture("hints").demonstrations(0, 0.0, 0.0)
    assert [next(again) for _ in range(400)] == pairs


def test_pretrain_init_continues_from_a_checkpoint(tmp_path):
    import json

    from labkit.policy.pretrain import pretrain

    out = pretrain(steps=1, batch_size=2, lr=1e-12, out=tmp_path / "m", mixture="hints", init="tiny", log_every=1)
    settings = json.loads((out / "pretraining.json").read_text())["settings"]
    assert settings["init"] == "tiny" and settings["mixture"] == "hints"
    start, after = load_policy("tiny", device="cpu").model, load_policy(out, device="cpu").model
    for (name, a), b in zip(start.state_dict().items(), after.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name  # a negligible step from tiny's weights, not fresh ones
