"""The calculator tool (labkit.core.calculator): safe parser, call format, tool-using rollout, collate."""
import builtins

import pytest
import torch
from types import SimpleNamespace

from labkit.core.policy import Policy, build_tokenizer, load_policy
from labkit.core.sampling import completion_logprobs
from labkit.core.tasks import Task
from labkit.core.calculator import (after_reply_mask, calculate, collate, count_calls, final_answer, format_call, split_rollout,
                          tool_output, tool_rollout, verify_with_tools)


def _task(prompt, answer):
    return Task(prompt=prompt, answer=answer, category="mul", difficulty=2, world="arithmetic")


@pytest.mark.parametrize("expression,value", [("347*28", 9716), ("12+3*4", 24), ("2*3-10", -4),
                                              ("0+0", 0), ("1-2-3", -4), ("9*9*9*9", 6561)])
def test_calculate_by_hand(expression, value):
    assert calculate(expression) == value


MALICIOUS = ["__import__('os').system('rm -rf /')", "1+1;import os", "2**100000", "(1+2)*3", "-1+2",
             "1 + 2", "007*2", "12", "", "1+2+3+4+5", "9" * 25 + "*2", "999999999*999999999", "1e9*2",
             "open('x')", "1/0", "１+２", None, 12]


@pytest.mark.parametrize("expression", MALICIOUS)
def test_calculate_rejects_and_never_evaluates(expression, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec called on model output")
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert calculate(expression) is None


def test_call_format_and_answer_parsing():
    assert tool_output("347*28") == "=9716;"
    assert tool_output("os.system") == "=?;"
    assert format_call("6*7") == "[6*7]=42;"
    assert final_answer("[6*7]=42;42") == "42"
    assert final_answer("42") == "42"
    assert final_answer("[1+1]=2;[2*3]=6;6") == "6"
    assert count_calls("[1+1]=2;[2*3]=6;6") == 2 and count_calls("42") == 0
    task = _task("6*7=", "42")
    assert verify_with_tools(task, "[6*7]=42;42").correct
    assert verify_with_tools(task, "42").correct
    assert final_answer("[6*7]=42;") == "42"  # nothing after the reply: the reply is the answer
    assert verify_with_tools(task, "[6*7]=42;").correct
    assert not verify_with_tools(task, "[6*7]=?;").correct
    assert final_answer("=42;") == "42" and final_answer(";") == ""
    assert not verify_with_tools(task, "[6*7]=42;41").correct


class ScriptedLM(torch.nn.Module):
    """A fake causal LM that writes script[i][t] at step t (with overwhelming probability)."""

    def __init__(self, scripts, tokenizer):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.tokenizer, self.step = tokenizer, 0
        ids = [[tokenizer.eos_token_id if ch == "$" else tokenizer.convert_tokens_to_ids(ch) for ch in s]
               for s in scripts]
        self.ids = ids

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=True, logits_to_keep=1,
                past_key_values=None):
        logits = torch.full((input_ids.shape[0], 1, len(self.tokenizer)), -50.0)
        for i, row in enumerate(self.ids):
            logits[i, 0, row[min(self.step, len(row) - 1)]] = 50.0
        self.step += 1
        return SimpleNamespace(logits=logits)


def _scripted(scripts):
    tokenizer = build_tokenizer()
    return Policy(model=ScriptedLM(scripts, tokenizer), tokenizer=tokenizer)


def test_tool_rollout_inserts_results_and_masks_them():
    # row 0 calls: the 3 steps after ']' are the environment's ('=6;'), whatever the script says there
    # row 1 writes a malicious call: its characters are data, the calculator answers '=?;'
    # row 2 answers directly
    scripts = ["[2*3]xxx6$", "[os]xxx1$", "7$"]
    policy = _scripted(scripts)
    batch = tool_rollout(policy, ["2*3=", "1+1=", "3+4="], max_new_tokens=12,
                         generator=torch.Generator().manual_seed(0))
    assert batch.completions == ["[2*3]=6;6", "[os]=?;1", "7"]
    assert batch.calls == [1, 1, 0]
    assert batch.completion_mask[0].tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 1, 1]
    assert batch.tool_mask[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert batch.completion_mask[2].tolist() == [1, 1] + [0] * 8
    # tool tokens are attended (attention 1) but carry no log-prob
    assert batch.attention_mask[0, batch.prompt_len:].tolist() == [1] * 10
    assert (batch.logprobs * batch.tool_mask).abs().sum() == 0
    assert batch.finished.tolist() == [True, True, True]
    assert verify_with_tools(_task("2*3=", "6"), batch.completions[0]).correct


def test_tool_rollout_limits_calls():
    policy = _scripted(["[1+1]xxx[2+2]xxx5$"])
    batch = tool_rollout(policy, ["1="], max_new_tokens=20, max_calls=1)
    assert batch.completions == ["[1+1]=2;[2+2]=?;5"]


@pytest.mark.parametrize("kwargs", [dict(max_new_tokens=0), dict(max_calls=-1), dict(temperature=-1.0),
                                    dict(top_p=0.0)])
def test_tool_rollout_bad_inputs(kwargs):
    policy = _scripted(["1$"])
    with pytest.raises(ValueError):
        tool_rollout(policy, ["1="], **kwargs)
    with pytest.raises(ValueError, match="at least one prompt"):
        tool_rollout(policy, [])



@pytest.mark.parametrize("kwargs,message", [
    (dict(max_calls=-1), "max_calls must be an integer >= 0; got -1"),
    (dict(max_new_tokens=0), "max_new_tokens must be an integer >= 1; got 0"),
    (dict(top_p=2.0), r"top_p must be a finite number in \(0, 1\]; got 2.0"),
])
def test_tool_rollout_bad_inputs_say_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        tool_rollout(_scripted(["1$"]), ["1="], **kwargs)
    assert "\n" not in str(error.value)


def test_the_calculator_is_an_on_token_hook_of_the_one_sampling_loop():
    """CalculatorHook forces the reply as the row's next tokens: written and attended, not the policy's."""
    from labkit.core.calculator import CalculatorHook
    from labkit.core.sampling import TransformersDecoder, encode_prompts, sample

    policy = _scripted(["[2*3]xxx6$"])
    tokenizer = policy.tokenizer
    ids, mask = encode_prompts(tokenizer, ["2*3="], "cpu")
    hook = CalculatorHook(tokenizer, 1, "cpu", max_calls=2, stop_after_call=False, max_operands=4)
    out = sample(TransformersDecoder(policy.model, ids, mask, mask_finished=True), 12, tokenizer.eos_token_id,
                 tokenizer.pad_token_id, temperature=0.0, on_token=hook)
    assert tokenizer.decode(out.tokens[0], skip_special_tokens=True) == "[2*3]=6;6"
    assert out.forced_mask[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0] and hook.calls == [1]


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return load_policy("tiny", device="cpu")


def test_tool_rollout_is_deterministic_and_logprobs_match(tiny):
    prompts = ["12+34=", "5*6=", "77-8="] * 4
    a = tool_rollout(tiny, prompts, max_new_tokens=10, generator=torch.Generator().manual_seed(5))
    b = tool_rollout(tiny, prompts, max_new_tokens=10, generator=torch.Generator().manual_seed(5))
    assert a.completions == b.completions and torch.equal(a.logprobs, b.logprobs)
    recomputed = completion_logprobs(tiny.model, a)
    assert torch.allclose(recomputed * a.completion_mask, a.logprobs, atol=1e-4)


def test_split_and_collate_roundtrip(tiny):
    batch = tool_rollout(tiny, ["1+2=", "345*67=", "9="], max_new_tokens=8,
                         generator=torch.Generator().manual_seed(1))
    rows = split_rollout(batch)
    merged = collate(rows[::-1] + rows[:1], tiny.tokenizer.pad_token_id)
    assert merged.completions == batch.completions[::-1] + batch.completions[:1]
    recomputed = completion_logprobs(tiny.model, merged)
    assert torch.allclose(recomputed * merged.completion_mask, merged.logprobs, atol=1e-4)
    assert merged.completion_mask.sum() == batch.completion_mask.sum() + batch.completion_mask[0].sum()
    with pytest.raises(ValueError, match="at least one"):
        collate([], 0)


def test_evaluate_with_tools_counts_calls_and_answers():
    from labkit.core.calculator import evaluate_with_tools
    policy = _scripted(["[2*3]xxx6$", "5$", "[2*3]xxx7$", "6$"])
    ev = evaluate_with_tools(policy, [_task("2*3=", "6"), _task("2*3=", "6")], samples=2, temperature=0.0)
    assert ev.called == [True, False, True, False] and ev.right == [True, False, False, True]
    assert ev.completions == ["[2*3]=6;6", "5", "[2*3]=6;7", "6"]
    assert ev.correct == [1, 1] and ev.acc == 0.5 and ev.tool_rate == 0.5
    assert ev.acc_given(True) == 0.5 and ev.acc_given(False) == 0.5
    with pytest.raises(ValueError, match="at least one task"):
        evaluate_with_tools(policy, [])


def test_tool_rollout_stop_after_call_submits_the_reply():
    policy = _scripted(["[2*3]xxx9$", "5$"])
    batch = tool_rollout(policy, ["2*3=", "2*3="], max_new_tokens=12, stop_after_call=True)
    assert batch.completions == ["[2*3]=6;", "5"]
    assert batch.finished.tolist() == [True, True]
    assert batch.completion_mask[0].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert verify_with_tools(_task("2*3=", "6"), batch.completions[0]).correct


def test_after_reply_mask_by_hand():
    # row 0: "[3*4]" policy, "=12;" tool, "12" policy; row 1: no call, "7" policy then padding
    completion = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.float)
    tool = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0], [0] * 11], dtype=torch.float)
    expected = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1], [0] * 11], dtype=torch.float)
    assert torch.equal(after_reply_mask(completion, tool), expected)
    with pytest.raises(ValueError, match="one shape"):
        after_reply_mask(completion, tool[:, :5])


# ---------------------------------------------------------------------------------------------
# The one-operation calculator and chain tasks (notebook 04's task "chain")


def test_max_operands_by_hand():
    assert calculate("23*45+7") == 1042 and calculate("23*45+7", max_operands=3) == 1042
    assert calculate("23*45+7", max_operands=2) is None and calculate("23*45", max_operands=2) == 1035
    assert tool_output("23*45+7", max_operands=2) == "=?;" and tool_output("1035+7", max_operands=2) == "=1042;"
    for bad in (1, 5, 2.0, True, "2", None):
        with pytest.raises(ValueError, match="max_operands"):
            calculate("1+1", max_operands=bad)


def test_tool_rollout_one_operation_calculator():
    # the whole expression is refused; the product is answered; a second call adds the small number
    policy = _scripted(["[2*3+1]xxx7$", "[2*3]xxx7$", "[2*3]xxx[6+1]xxx7$"])
    batch = tool_rollout(policy, ["2*3+1="] * 3, max_new_tokens=20, max_operands=2)
    assert batch.completions == ["[2*3+1]=?;7", "[2*3]=6;7", "[2*3]=6;[6+1]=7;7"]
    assert batch.calls == [1, 1, 2]
    default = tool_rollout(_scripted(["[2*3+1]xxx7$"]), ["2*3+1="], max_new_tokens=12)
    assert default.completions == ["[2*3+1]=7;7"]  # the default calculator keeps 4 operands
    with pytest.raises(ValueError, match="max_operands"):
        tool_rollout(policy, ["1="], max_operands=1)


def test_chain_task_by_hand_and_bad_inputs():
    from labkit.core.calculator import chain_task
    task = chain_task(23, 45, 7)
    assert (task.prompt, task.answer, task.category, task.difficulty) == ("23*45+7=", "1042", "mul", 2)
    assert task.meta == {"a": 23, "b": 45, "c": 7, "chain": "+"}
    assert verify_with_tools(task, "[23*45]=1035;1042").correct
    assert not verify_with_tools(task, "[23*45]=1035;1035").correct  # copying the reply is not enough
    assert not verify_with_tools(task, "[23*45+7]=?;1041").correct
    for a, b, c in ((-1, 2, 3), (2, 3.0, 1), (True, 2, 3), (2, 3, "1")):
        with pytest.raises(ValueError, match="chain_task"):
            chain_task(a, b, c)


def test_sample_chain_task_is_deterministic_and_in_range():
    import random
    from labkit.core.calculator import sample_chain_task
    first = [sample_chain_task(d, random.Random(3)) for d in (1, 2, 3, 4)]
    assert first == [sample_chain_task(d, random.Random(3)) for d in (1, 2, 3, 4)]
    rng = random.Random(0)
    for _ in range(200):
        t = sample_chain_task(2, rng)
        assert 10 <= t.meta["a"] <= 99 and 10 <= t.meta["b"] <= 99 and 1 <= t.meta["c"] <= 9
        assert int(t.answer) == t.meta["a"] * t.meta["b"] + t.meta["c"]
    for bad in (0, 5, 2.0, True):
        with pytest.raises(ValueError, match="chain digits"):
            sample_chain_task(bad, rng)


def test_chain_eval_tasks_follow_the_eval_set():
    from labkit.core.tasks import load_eval_set
    from labkit.core.calculator import chain_eval_tasks
    tasks = chain_eval_tasks((2, 3))
    products = [t for t in load_eval_set("arithmetic") if t.category == "mul" and t.difficulty in (2, 3)]
    assert len(tasks) == len(products) == 100
    assert [t.prompt.rsplit("+", 1)[0] for t in tasks] == [p.prompt[:-1] for p in products]
    assert tasks == chain_eval_tasks((2, 3))  # the addends are fixed by the prompts, not by a global seed
    assert len({t.meta["c"] for t in tasks}) > 5
    with pytest.raises(ValueError, match="no held-out mul tasks"):
        chain_eval_tasks((9,))
