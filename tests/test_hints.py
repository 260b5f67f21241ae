"""labkit.nb.n05_self_hinting: hint levels, hinted prompts, self-hint hygiene, hint writing with retries, hinted
re-rolls within a step (the authors' `sage` mode) and the unhinted re-roll control at a matched budget."""
import dataclasses

import pytest
import torch

import labkit.nb.n05_self_hinting as hints_module

from labkit.nb.n05_self_hinting import (HINT_SEPARATOR, LEVELS, WRITE_ATTEMPTS, hint_request, hinted_accuracy,
                          hinted_prompt, procedural_hint, resample_all_wrong, roll_with_hints, training_pool,
                          usable_hint, write_hints)
from labkit.core.tasks.hints import MAX_LEVEL
from labkit.core.policy import load_policy
from labkit.core.sampling import concat_rollouts
from labkit.core.policy.tokenizer import CHARACTERS
from labkit.core.sampling import completion_logprobs, rollout
from labkit.core.tasks import Task, make_tasks, train_seed, verify


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
    (lambda t: procedural_hint(make_tasks("add", 2, 1, seed=train_seed(0))[0], 1), "defined for countdown"),
])
def test_bad_inputs_fail_with_one_line(call, message):
    with pytest.raises(ValueError, match=message):
        call(countdown("3 5 7>22=", "3*5+7"))


def test_usable_hint_drops_leaks_and_junk():
    task = countdown("3 5 7>22=", "3*5+7")
    assert usable_hint(task, " 3 5 7:3*5 ") == "3 5 7:3*5"
    assert usable_hint(task, "3 5 7:3*5+7") == ""  # the whole solution
    assert usable_hint(task, "x;y") == "" and usable_hint(task, "") == "" and usable_hint(task, "9" * 40) == ""


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
    # procedural hints are never dropped: a group ending at level L was rolled at 0, 1, .., L
    assert out.rolled_at == {level: sum(x >= level for x in out.levels) for level in LEVELS}
    assert out.rerolls == sum(out.levels) and out.rollouts == 4 * (len(tasks) + out.rerolls)
    assert out.hint_requests == 0 and out.dropped == 0 and out.unspent == 0
    torch.manual_seed(2)
    again = roll_with_hints(policy, tasks, group_size=4, max_new_tokens=16, hint_source="procedural")
    assert again.levels == out.levels and torch.equal(again.rewards, out.rewards)  # same seed, same numbers


def test_plain_grpo_rolls_once_and_bad_inputs_fail(policy):
    tasks = make_tasks("countdown", 5, 4, seed=1002)
    plain = roll_with_hints(policy, tasks, group_size=3, hint_source=None)
    assert plain.levels == [0] * 4 and plain.hints == [""] * 4
    assert plain.rolled_at == {0: 4, 1: 0, 2: 0, 3: 0} and plain.rerolls == 0 and plain.rollouts == 12
    assert len(plain.batch) == 12 and plain.rewards.shape == (12,)
    for kwargs, message in [(dict(hint_source="oracle"), "hint_source"), (dict(group_size=1), "group_size"),
                            (dict(group_size=True), "group_size")]:
        with pytest.raises(ValueError, match=message):
            roll_with_hints(policy, tasks, **{"group_size": 3, **kwargs})
    with pytest.raises(ValueError, match="at least one task"):
        roll_with_hints(policy, [], group_size=3)
    with pytest.raises(TypeError):
        roll_with_hints(policy, tasks, group_size=3, start_levels=[0] * 4)  # no level is carried in: gone


# ---- scripted sampling: which groups are re-rolled, with what, and what they cost

class Scripted:
    """Stands in for labkit.nb.n05_self_hinting.rollout: real tensors from the tiny policy, scripted texts.
    solve(prompt) -> True: the completion is the task's reference answer, else a wrong one;
    write(request, attempt) -> the text written for a hint request."""

    def __init__(self, monkeypatch, tasks, solve, write=None):
        self.real, self.calls, self.requests = hints_module.rollout, [], {}
        self.answers = {t.prompt: t.answer for t in tasks}
        self.solve, self.write = solve, write
        monkeypatch.setattr(hints_module, "rollout", self)

    def __call__(self, policy, prompts, max_new_tokens=16, temperature=1.0, generator=None, **kwargs):
        self.calls.append(list(prompts))
        batch = self.real(policy, prompts, max_new_tokens=2, temperature=temperature, generator=generator)
        texts = []
        for p in prompts:
            if p.startswith("h") and p.endswith("|"):  # a hint request: h<level>|prompt+solution|
                self.requests[p] = self.requests.get(p, 0) + 1
                texts.append(self.write(p, self.requests[p]))
            else:
                task_prompt = p.split(HINT_SEPARATOR)[-1]
                texts.append(self.answers[task_prompt] if self.solve(p) else "0")
        return dataclasses.replace(batch, completions=texts, prompts=list(prompts))

    def rolls(self):
        return [c for c in self.calls if not c[0].startswith("h")]


def request_level(request):
    return int(request[1])


def hint_of(tasks):
    by_request = {hint_request(t, level): procedural_hint(t, level) for t in tasks for level in (1, 2, 3)}
    return lambda request: by_request[request]


def test_sage_rerolls_each_level_once_and_keeps_the_last_group(policy, monkeypatch):
    tasks = make_tasks("countdown", 4, 3, seed=1010)
    # task 0 is solved without a hint; the others only with a level-2 hint (it holds ':')
    script = Scripted(monkeypatch, tasks, solve=lambda p: p.endswith(tasks[0].prompt) or ":" in p.split(";")[0] and ";" in p)
    out = roll_with_hints(policy, tasks, group_size=2, hint_source="procedural")
    assert out.levels == [0, 2, 2] and out.hints == ["", procedural_hint(tasks[1], 2), procedural_hint(tasks[2], 2)]
    assert out.rolled_at == {0: 3, 1: 2, 2: 2, 3: 0} and out.rerolls == 4 and out.rollouts == 2 * 7
    assert out.rewards.tolist() == [1.0] * 6
    rolls = script.rolls()  # the first roll, then one re-roll per level of the all-wrong groups only
    assert [len(r) for r in rolls] == [6, 4, 4]
    assert rolls[1] == [hinted_prompt(t.prompt, procedural_hint(t, 1)) for t in tasks[1:] for _ in range(2)]
    # never solved: re-rolled at 1, 2, 3 and kept as the level-3 group, all wrong
    script = Scripted(monkeypatch, tasks, solve=lambda p: False)
    out = roll_with_hints(policy, tasks, group_size=2, hint_source="procedural")
    assert out.levels == [3, 3, 3] and out.rerolls == 9 and out.rewards.tolist() == [0.0] * 6
    assert all(p == hinted_prompt(tasks[i // 2].prompt, procedural_hint(tasks[i // 2], 3))
               for i, p in enumerate(out.batch.prompts))


def test_dropped_self_hints_skip_the_reroll(policy, monkeypatch):
    tasks = make_tasks("countdown", 4, 2, seed=1011)
    good = hint_of(tasks)
    # level 1: junk on every attempt (dropped); level 2: junk once, then the right hint; never solved
    write = lambda request, attempt: "x;y" if request_level(request) == 1 or attempt == 1 and request_level(request) == 2 else good(request)
    script = Scripted(monkeypatch, tasks, solve=lambda p: False, write=write)
    out = roll_with_hints(policy, tasks, group_size=2, hint_source="self")
    assert out.rolled_at == {0: 2, 1: 0, 2: 2, 3: 2}  # no re-roll spent on the dropped level-1 hints
    assert out.dropped == 2 and out.rerolls == 4 and out.levels == [3, 3]
    assert out.hint_requests == 2 * WRITE_ATTEMPTS + 2 * 2 + 2  # level 1: 3 attempts, level 2: 2, level 3: 1
    assert [len(r) for r in script.rolls()] == [4, 4, 4]
    assert all(task.answer not in hint for task, hint in zip(tasks, out.hints))
    # every level dropped: the first (unhinted) group stays, nothing re-rolled
    Scripted(monkeypatch, tasks, solve=lambda p: False, write=lambda request, attempt: "")
    out = roll_with_hints(policy, tasks, group_size=2, hint_source="self", write_attempts=1)
    assert out.levels == [0, 0] and out.rerolls == 0 and out.dropped == 2 * 3 and out.hint_requests == 2 * 3
    assert out.batch.prompts == [t.prompt for t in tasks for _ in range(2)]


def test_write_hints_retries_until_usable_and_checks_inputs(policy, monkeypatch):
    tasks = make_tasks("countdown", 3, 3, seed=1012)
    assert write_hints(policy, tasks, 2, "procedural") == ([procedural_hint(t, 2) for t in tasks], 0)
    good = hint_of(tasks)
    # the task's whole answer is a leak: dropped, asked again; the second attempt is right
    Scripted(monkeypatch, tasks, solve=lambda p: False,
             write=lambda request, attempt: request.split("=")[1].rstrip("|") if attempt == 1 else good(request))
    assert write_hints(policy, tasks, 1, "self") == ([procedural_hint(t, 1) for t in tasks], 6)
    Scripted(monkeypatch, tasks, solve=lambda p: False, write=lambda request, attempt: "9" * 40)
    assert write_hints(policy, tasks, 3, "self", attempts=2) == (["", "", ""], 6)
    for args, message in [((0, "self"), "level 0"), ((4, "self"), "hint level"), ((1, "oracle"), "hint_source")]:
        with pytest.raises(ValueError, match=message):
            write_hints(policy, tasks, *args)
    for attempts in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="attempts"):
            write_hints(policy, tasks, 1, "self", attempts=attempts)


def test_resample_spends_exactly_the_budget_on_all_wrong_groups(policy, monkeypatch):
    tasks = make_tasks("countdown", 4, 3, seed=1013)
    script = Scripted(monkeypatch, tasks, solve=lambda p: False)
    out = resample_all_wrong(policy, tasks, group_size=2, budget=5)
    assert [len(r) for r in script.rolls()] == [6, 6, 4]  # a round of all three, then two of what is left
    assert out.rerolls == 5 and out.unspent == 0 and out.rollouts == 2 * (3 + 5) and out.rolled_at[0] == 8
    assert out.levels == [0, 0, 0] and all(HINT_SEPARATOR not in p for p in out.batch.prompts)  # never a hint
    # task 1 solves on its second roll: it leaves the rounds; the budget goes to the others
    seen = {}

    def solve(prompt):
        seen[prompt] = seen.get(prompt, 0) + 1
        return prompt == tasks[1].prompt and seen[prompt] > 2  # rows 3-4 of its prompt: its second group
    script = Scripted(monkeypatch, tasks, solve=solve)
    out = resample_all_wrong(policy, tasks, group_size=2, budget=4)
    assert [len(r) for r in script.rolls()] == [6, 6, 2] and out.rerolls == 4
    assert out.rewards.view(3, 2)[1].tolist() == [1.0, 1.0] and out.rewards.view(3, 2)[[0, 2]].sum() == 0
    # all solved at once: nothing to re-roll, the whole budget is unspent
    script = Scripted(monkeypatch, tasks, solve=lambda p: True)
    out = resample_all_wrong(policy, tasks, group_size=2, budget=7)
    assert out.rerolls == 0 and out.unspent == 7 and out.rollouts == 6 and len(script.rolls()) == 1


def test_resample_with_no_budget_is_plain_grpo_and_bad_budgets_fail(policy):
    tasks = make_tasks("countdown", 5, 3, seed=1014)
    torch.manual_seed(5)
    plain = roll_with_hints(policy, tasks, group_size=3, hint_source=None)
    torch.manual_seed(5)
    control = resample_all_wrong(policy, tasks, group_size=3, budget=0)
    assert torch.equal(plain.rewards, control.rewards) and plain.batch.completions == control.batch.completions
    assert control.rollouts == plain.rollouts == 9 and control.unspent == 0
    for budget in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match="budget"):
            resample_all_wrong(policy, tasks, group_size=3, budget=budget)
    with pytest.raises(ValueError, match="group_size"):
        resample_all_wrong(policy, tasks, group_size=1, budget=1)


def test_self_hints_are_checked_and_accuracy_is_a_share(policy):
    tasks = make_tasks("countdown", 3, 5, seed=1003)
    torch.manual_seed(3)
    out = roll_with_hints(policy, tasks, group_size=2, hint_source="self")
    assert all(task.answer not in hint for task, hint in zip(tasks, out.hints))
    assert all((hint == "") == (level == 0) for hint, level in zip(out.hints, out.levels))
    assert out.hint_requests >= out.dropped and out.rollouts == 2 * (5 + out.rerolls)
    for level in LEVELS:
        acc = hinted_accuracy(policy, tasks, level, "procedural", samples=2)
        assert 0.0 <= acc <= 1.0


def test_training_pool_is_deterministic_and_off_the_eval_seed():
    a = training_pool([("countdown", 4), ("countdown", 5)], 10, seed=0)
    b = training_pool([("countdown", 4), ("countdown", 5)], 10, seed=0)
    assert [t.prompt for t in a] == [t.prompt for t in b] and len(a) == 20
    assert {t.difficulty for t in a} == {4, 5}


def test_hints_mixture_teaches_reading_and_writing():
    from labkit.bases.mixtures import load_mixture

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

    from labkit.bases.pretrain import pretrain

    out = pretrain(steps=1, batch_size=2, lr=1e-12, out=tmp_path / "m", mixture="hints", init="tiny", log_every=1)
    settings = json.loads((out / "pretraining.json").read_text())["settings"]
    assert settings["init"] == "tiny" and settings["mixture"] == "hints"
    start, after = load_policy("tiny", device="cpu").model, load_policy(out, device="cpu").model
    for (name, a), b in zip(start.state_dict().items(), after.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name  # a negligible step from tiny's weights, not fresh ones
