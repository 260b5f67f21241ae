"""The one sampling loop (`labkit.core.sampling.sample`): its on_token hook, its bookkeeping, its
bad inputs, and the one sample-and-judge evaluator (`labkit.core.evaluate.sample_and_judge`)."""
from types import SimpleNamespace

import pytest
import torch

from labkit.core.evaluate import sample_and_judge
from labkit.core.policy import build_tokenizer, make_model
from labkit.core.sampling import Override, decoder_for, encode_prompts, rollout, sample

EOS, PAD, VOCAB = 2, 0, 12


class ScriptedDecoder:
    """Row i's logits favour script[i][k] at the k-th call (prefill k = 0), whatever was fed; it
    records what each step was fed."""

    def __init__(self, scripts):
        self.scripts, self.calls, self.fed = scripts, 0, []

    def _logits(self):
        logits = torch.full((len(self.scripts), VOCAB), -50.0)
        for i, row in enumerate(self.scripts):
            logits[i, row[min(self.calls, len(row) - 1)]] = 50.0
        self.calls += 1
        return logits

    def prefill(self):
        return self._logits()

    def step(self, ids, t, present):
        self.fed.append((t, ids.tolist(), present.tolist()))
        return self._logits()


def _sample(scripts, on_token=None, max_new_tokens=6, **kwargs):
    decoder = ScriptedDecoder(scripts)
    return decoder, sample(decoder, max_new_tokens, EOS, PAD, temperature=0.0, on_token=on_token, **kwargs)


def test_without_a_hook_rows_end_at_eos_and_are_padded():
    decoder, out = _sample([[3, 4, EOS], [5, EOS]])
    assert out.tokens.tolist() == [[3, 4, EOS], [5, EOS, PAD]]
    assert out.completion_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert out.forced_mask.sum() == 0 and out.finished.tolist() == [True, True]
    assert (out.logprobs[out.completion_mask.bool()] > -1e-6).all()  # greedy on a near one-hot: log pi ~ 0
    # each step is fed the token just written and which rows wrote it
    assert decoder.fed == [(0, [3, 5], [True, True]), (1, [4, EOS], [True, True])]


def test_a_hook_that_forces_tokens():
    """Row 0's tokens 1 and 2 are the environment's: written, fed to the decoder, masked out of
    the policy's tokens, with log-prob and entropy 0; row 1 is untouched."""
    def force(t, ids, alive):
        if t in (1, 2):
            return Override(ids=torch.tensor([9, 0]), forced=torch.tensor([True, False]))
        return None

    decoder, out = _sample([[3, 4, 5, 6, EOS], [7, 8, 8, EOS]], on_token=force)
    assert out.tokens.tolist() == [[3, 9, 9, 6, EOS], [7, 8, 8, EOS, PAD]]
    assert out.completion_mask.tolist() == [[1, 0, 0, 1, 1], [1, 1, 1, 1, 0]]
    assert out.forced_mask.tolist() == [[0, 1, 1, 0, 0], [0, 0, 0, 0, 0]]
    assert out.present.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    forced = out.forced_mask.bool()
    assert (out.logprobs[forced] == 0).all() and (out.entropies[forced] == 0).all()
    assert [fed[1][0] for fed in decoder.fed[:3]] == [3, 9, 9]  # the forced tokens are in the context
    assert out.finished.tolist() == [True, True]


def test_a_hook_that_stops_a_row():
    """A stop ends the row after this token, like EOS: finished, padded, no longer fed as present."""
    seen = []

    def stop_row_1(t, ids, alive):
        seen.append(alive.tolist())
        return Override(stop=torch.tensor([False, True])) if t == 1 else None

    decoder, out = _sample([[3, 4, 5, EOS], [7, 8, 8, 8, 8, 8]], on_token=stop_row_1)
    assert out.tokens.tolist() == [[3, 4, 5, EOS], [7, 8, PAD, PAD]]
    assert out.completion_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert out.finished.tolist() == [True, True]
    assert seen == [[True, True], [True, True], [True, False], [True, False]]
    assert decoder.fed[-1] == (2, [5, PAD], [True, False])
    # a row that runs out of tokens is not finished
    _, out = _sample([[3, 3, 3, 3]], max_new_tokens=3)
    assert out.finished.tolist() == [False] and out.completion_mask.tolist() == [[1, 1, 1]]


def test_ended_rows_are_left_alone_by_the_hook():
    def force_everything(t, ids, alive):
        return Override(ids=torch.tensor([9, 9]), forced=torch.tensor([True, True]),
                        stop=torch.tensor([False, False]))

    _, out = _sample([[3, EOS], [5, 6, 7]], max_new_tokens=3, on_token=lambda t, ids, alive: (
        force_everything(t, ids, alive) if t == 2 else None))
    assert out.tokens.tolist() == [[3, EOS, PAD], [5, 6, 9]]  # row 0 had ended: it keeps its pad


@pytest.mark.parametrize("engine", ["lean", "transformers"])
def test_forcing_one_row_leaves_the_other_rows_and_the_draws_alone(engine):
    """The generator draws for every row at every step, whatever the hook does, so forcing row 0
    changes nothing in the others: the same seed gives them the same tokens."""
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    model = make_model("tiny", tokenizer).eval()
    prompts = ["12+34=", "5*6=", "7-1=", "9="]
    ids, mask = encode_prompts(tokenizer, prompts, "cpu")

    def run(on_token):
        decoder = decoder_for(model, engine, ids, mask, 8)
        return sample(decoder, 8, tokenizer.eos_token_id, tokenizer.pad_token_id, 1.0,
                      generator=torch.Generator().manual_seed(4), on_token=on_token)

    seven = tokenizer.convert_tokens_to_ids("7")
    plain = run(None)
    forced = run(lambda t, ids, alive: Override(ids=torch.full((4,), seven), forced=torch.tensor([True] + [False] * 3)))
    assert (forced.tokens[0] == seven).all() and forced.completion_mask[0].sum() == 0
    width = min(plain.tokens.shape[1], forced.tokens.shape[1])
    assert torch.equal(plain.tokens[1:, :width], forced.tokens[1:, :width])
    assert torch.allclose(plain.logprobs[1:, :width], forced.logprobs[1:, :width], atol=1e-5)
    # and a hook that changes nothing changes nothing, bit for bit
    same = run(lambda t, ids, alive: None)
    assert torch.equal(plain.tokens, same.tokens) and torch.equal(plain.logprobs, same.logprobs)
    assert torch.equal(plain.entropies, same.entropies)


def test_rollout_matches_sample_and_a_fixed_seed():
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    policy = SimpleNamespace(model=make_model("tiny", tokenizer).eval(), tokenizer=tokenizer,
                             device=torch.device("cpu"))
    a = rollout(policy, ["1+1=", "22*3="], 6, generator=torch.Generator().manual_seed(1))
    b = rollout(policy, ["1+1=", "22*3="], 6, generator=torch.Generator().manual_seed(1))
    assert a.completions == b.completions and torch.equal(a.logprobs, b.logprobs)


# ------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs,message", [
    (dict(max_new_tokens=0), "max_new_tokens must be an integer >= 1; got 0"),
    (dict(max_new_tokens=2.5), "max_new_tokens must be an integer >= 1; got 2.5"),
    (dict(temperature=-1.0), r"temperature \(0: greedy\) must be a finite number >= 0; got -1.0"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=0.0), r"top_p must be a finite number in \(0, 1\]; got 0.0"),
    (dict(top_p=1.5), r"top_p must be a finite number in \(0, 1\]; got 1.5"),
    (dict(on_token=3), r"on_token must be callable as on_token\(t, ids, alive\) or None; got int"),
])
def test_bad_settings(kwargs, message):
    args = dict(max_new_tokens=4, temperature=1.0) | kwargs
    decoder = ScriptedDecoder([[3, EOS]])
    with pytest.raises(ValueError, match=message) as error:
        sample(decoder, args.pop("max_new_tokens"), EOS, PAD, **args)
    assert "\n" not in str(error.value)
    assert decoder.calls == 0  # refused before the model ran


@pytest.mark.parametrize("returned,message", [
    (torch.tensor([1, 2]), "on_token must return an Override or None; got Tensor"),
    (Override(forced=torch.tensor([1, 0])), r"Override.forced must be a bool tensor of shape \(2,\); got torch.int64"),
    (Override(stop=torch.tensor([True])),
     r"Override.stop must be a bool tensor of shape \(2,\); got torch.bool tensor of shape \(1,\)"),
    (Override(stop=[True, False]), r"Override.stop must be a bool tensor of shape \(2,\); got list"),
    (Override(forced=torch.tensor([True, False])),
     r"Override.ids must be a long tensor of shape \(2,\) when rows are forced; got None"),
    (Override(ids=torch.tensor([1.0, 2.0]), forced=torch.tensor([True, False])), "Override.ids must be a long tensor"),
])
def test_a_bad_hook_answer_is_one_line_naming_what_is_accepted(returned, message):
    with pytest.raises(ValueError, match=message) as error:
        _sample([[3, 4, EOS], [5, 6, EOS]], on_token=lambda t, ids, alive: returned)
    assert "\n" not in str(error.value)


def test_rollouts_refuse_a_bare_string_or_no_prompts():
    tokenizer = build_tokenizer()
    policy = SimpleNamespace(model=make_model("tiny", tokenizer), tokenizer=tokenizer, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="rollout needs at least one prompt, as a list of strings; got a string"):
        rollout(policy, "1+1=")
    with pytest.raises(ValueError, match="got an empty list"):
        rollout(policy, [])


# ------------------------------------------------------------------------------- sample and judge

class _Batch(SimpleNamespace):
    def __len__(self):
        return self.rows


def test_sample_and_judge_is_task_major_and_batched():
    calls = []

    def sampler(part):
        calls.append(list(part))
        n = len(part)
        return _Batch(rows=n, entropies=torch.full((n, 3), 2.0), completion_mask=torch.tensor([[1.0, 1.0, 0.0]] * n),
                      completions=[str(t) for t in part])

    def judge(part, batch):
        return [SimpleNamespace(correct=int(text) % 2 == 0, text=text) for text in batch.completions]

    ev, judged = sample_and_judge([1, 2, 4], sampler, judge, samples=2, batch_size=4)
    assert calls == [[1, 1, 2, 2], [4, 4]]
    assert [j.text for j in judged] == ["1", "1", "2", "2", "4", "4"]
    assert ev.correct == [0, 2, 2] and ev.samples == 2 and ev.acc == 4 / 6
    assert ev.mean_entropy == 2.0  # over generated tokens only


@pytest.mark.parametrize("kwargs,message", [
    (dict(tasks=[]), "sample_and_judge needs at least one task; got none"),
    (dict(samples=0), "samples must be an integer >= 1; got 0"),
    (dict(batch_size=0), "batch_size must be an integer >= 1; got 0"),
    (dict(judge=lambda part, batch: []), "judge must return one judgement per row; got 0 for 2"),
    (dict(sampler=lambda part: _Batch(rows=1, entropies=torch.zeros(1, 1), completion_mask=torch.zeros(1, 1))),
     "sampler must return one completion per task; got 1 for 2"),
])
def test_sample_and_judge_bad_input(kwargs, message):
    args = dict(tasks=["a"], samples=2, batch_size=8,
                sampler=lambda part: _Batch(rows=len(part), entropies=torch.zeros(len(part), 1),
                                            completion_mask=torch.zeros(len(part), 1), completions=list(part)),
                judge=lambda part, batch: [SimpleNamespace(correct=True)] * len(part)) | kwargs
    with pytest.raises(ValueError, match=message):
        sample_and_judge(args.pop("tasks"), args.pop("sampler"), args.pop("judge"), **args)
