"""Any local transformers causal-LM checkpoint as a policy (issue 27): a chat model with a BPE
tokenizer loads by path, reads task prompts in its chat template, has its answers extracted, trains
with GRPO and calls the calculator at the text level. On CPU, nothing downloaded: the tokenizer is a
ByteLevel BPE trained here on task strings, the models are randomly initialised Qwen2 and Llama."""
import json
import shutil

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from labkit.core.calculator import CalculatorHook, tool_rollout, verify_with_tools
from labkit.core.checks import ParameterError
from labkit.core.evaluate import evaluate
from labkit.core.grpo import RLConfig, grpo_step
from labkit.core.policy import load_policy
from labkit.core.policy.tokenizer import is_char_level
from labkit.core.sampling import completion_logprobs, rollout
from labkit.core.tasks import Task, make_tasks, verify
from labkit.core.tasks.base import extract_answer

PAD, START, END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
TEMPLATE = ("{% for m in messages %}" + START + "{{ m['role'] }}\n{{ m['content'] }}" + END + "\n{% endfor %}"
            "{% if add_generation_prompt %}" + START + "assistant\n{% endif %}")


def bpe_tokenizer(pad: bool = True, eos: bool = True, specials=(PAD, START, END)) -> PreTrainedTokenizerFast:
    """A ByteLevel BPE trained on a few hundred task strings (no pre-split, so tokens cross
    digit/bracket boundaries: '8]=' is one token, as in real vocabularies)."""
    corpus = []
    for category, difficulty in [("add", 2), ("mul", 2), ("sub", 3), ("countdown", 3), ("sort", 4)]:
        for t in make_tasks(category, difficulty, n=60, seed=7):
            corpus += [t.prompt + t.answer, f"The answer is {t.answer}.", f"[{t.prompt[:-1]}]={t.answer};"]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=list(specials), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    specials = {**({"pad_token": PAD} if pad else {}), **({"eos_token": END} if eos else {})}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, clean_up_tokenization_spaces=False, **specials)
    tokenizer.chat_template = TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{'qwen2': dir, 'llama': dir}: random tiny models saved with the BPE tokenizer (the Llama one
    without a pad token, as Llama checkpoints ship: it pads with eos)."""
    torch.manual_seed(0)
    out = {}
    for kind, config_cls, model_cls in [("qwen2", Qwen2Config, Qwen2ForCausalLM),
                                        ("llama", LlamaConfig, LlamaForCausalLM)]:
        tokenizer = bpe_tokenizer(pad=kind == "qwen2")
        config = config_cls(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                            tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
        path = tmp_path_factory.mktemp(kind)
        model_cls(config).save_pretrained(path)
        tokenizer.save_pretrained(path)
        out[kind] = path
    return out


@pytest.fixture(scope="module")
def policies(checkpoints):
    torch.set_num_threads(1)
    return {kind: load_policy(str(path), device="cpu") for kind, path in checkpoints.items()}


class Scripted:
    """Make the policy write script[row] (token ids, one per step; EOS at the end): a forward hook on the
    output head adds a huge logit to the scripted token of each row, prefill and every step of sampling
    (under no_grad; scoring with gradients sees the model as it is). The lean Llama decoder prefills
    each distinct prompt once, in sorted order: the scripts must share their first token (a newline here)."""

    def __init__(self, policy, scripts: list[list[int]]):
        self.head, self.scripts, self.step = policy.model.get_output_embeddings(), scripts, 0

    def _hook(self, module, args, out):
        if torch.is_grad_enabled():  # scoring (completion_logprobs in an update): the model as it is
            return None
        out = out.clone()
        last = out[:, -1] if out.dim() == 3 else out
        tokens = [script[min(self.step, len(script) - 1)] for script in self.scripts]
        if self.step == 0:  # the prefill: maybe over distinct prompts only, in another order
            assert len(set(tokens)) == 1, "scripts must share their first token"
            tokens = tokens[:1] * len(last)
        for row, token in enumerate(tokens):
            last[row, token] += 1e4
        self.step += 1
        return out

    def __enter__(self):
        self.handle = self.head.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def ids_of(tokenizer, text: str, eos: bool = True) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) + ([tokenizer.eos_token_id] if eos else [])


# ---------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_a_local_checkpoint_loads_as_a_chat_policy(policies, kind):
    policy = policies[kind]
    assert policy.model.config.model_type == kind and policy.device.type == "cpu"
    assert policy.chat and policy.answer_extractor is extract_answer
    assert policy.tokenizer.padding_side == "left" and policy.tokenizer.pad_token is not None
    assert not is_char_level(policy.tokenizer)
    assert policy.format_prompt("12+34=") == f"{START}user\n12+34={END}\n{START}assistant\n"
    policy.system_prompt = "Answer with a number."
    try:
        assert policy.format_prompt("1+1=").startswith(f"{START}system\nAnswer with a number.{END}\n{START}user\n")
    finally:
        policy.system_prompt = None


def test_lora_keeps_a_chat_policy_chat(checkpoints):
    adapted = load_policy(str(checkpoints["qwen2"]), device="cpu", lora={"r": 2, "lora_alpha": 4})
    assert adapted.chat and adapted.answer_extractor is extract_answer
    assert all("lora_" in n for n, p in adapted.model.named_parameters() if p.requires_grad)


def test_the_shipped_bases_are_not_chat_policies():
    base = load_policy("tiny", device="cpu")
    assert not base.chat and base.answer_extractor is None and base.format_prompt("12+34=") == "12+34="
    assert is_char_level(base.tokenizer)


def _save(path, tokenizer, config: dict, weights_from=None, junk: bool = False):
    path.mkdir()
    if junk:
        (path / "tokenizer.json").write_text("{not json")
    (path / "config.json").write_text(json.dumps(config))
    if weights_from is not None:
        shutil.copy(weights_from / "model.safetensors", path / "model.safetensors")
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


def test_what_is_not_a_checkpoint_fails_in_one_line(checkpoints, tmp_path):
    qwen, llama = checkpoints["qwen2"], checkpoints["llama"]
    config = json.loads((qwen / "config.json").read_text())
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    cases = {
        tmp_path / "nowhere": "no checkpoint",
        tmp_path / "a_file": r"\(a file, not a directory\)",
        tmp_path / "empty": r"\(a directory without config.json\)",
        tmp_path / "broken": "config.json does not read as a JSON object",
        _save(tmp_path / "t5", bpe_tokenizer(), {"model_type": "t5"}, qwen): "model_type 't5' is not a causal LM",
        _save(tmp_path / "remote", bpe_tokenizer(), {"model_type": "my_own", "auto_map": {}}, qwen): "'my_own'",
        _save(tmp_path / "noweights", bpe_tokenizer(), config): "no weights",
        _save(tmp_path / "notokenizer", None, config, qwen): "no tokenizer",
        _save(tmp_path / "badtokenizer", None, config, qwen, junk=True): "the config or tokenizer does not load",
        _save(tmp_path / "noeos", bpe_tokenizer(pad=False, eos=False, specials=()),
              json.loads((llama / "config.json").read_text()), llama): "no eos token",
    }
    for path, message in cases.items():
        with pytest.raises(ParameterError, match=message) as error:
            load_policy(str(path), device="cpu")
        text = str(error.value)
        assert "\n" not in text and ("accepted:" in text or "give a shipped name" in text), text


# ---------------------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_rollout_reads_prompts_in_the_chat_template_and_scores_them(policies, kind):
    policy = policies[kind]
    prompts = ["12+34=", "7*8=", "s:5813="] * 2
    batch = rollout(policy, prompts, max_new_tokens=8, generator=torch.Generator().manual_seed(0))
    assert batch.prompts == prompts and len(batch.texts) == len(prompts)
    start = policy.tokenizer.convert_tokens_to_ids(START)
    for row, prompt in enumerate(prompts):
        ids = batch.input_ids[row, :batch.prompt_len][batch.attention_mask[row, :batch.prompt_len].bool()].tolist()
        assert ids == ids_of(policy.tokenizer, policy.format_prompt(prompt), eos=False)
        assert ids[:2] == [start] + ids_of(policy.tokenizer, "user", eos=False)[:1]  # the template's tokens first
    assert batch.completions == [extract_answer(t) for t in batch.texts]
    for share in (True, False):
        scored = completion_logprobs(policy.model, batch, share_prompts=share)
        mask = batch.completion_mask.bool()
        assert torch.isfinite(scored[mask]).all()
        ratio = (scored - batch.logprobs)[mask].exp()
        assert torch.allclose(ratio, torch.ones_like(ratio), atol=1e-4)


def test_one_grpo_step_changes_the_weights(policies):
    policy = policies["qwen2"]
    before = [p.detach().clone() for p in policy.model.parameters()]
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=1e-2)  # no weight decay: only gradients move it
    tasks = make_tasks("add", 1, n=2, seed=3)
    result = grpo_step(policy, optimizer, tasks, RLConfig(group_size=4, max_new_tokens=6),
                       reward_fn=lambda task, text: float(len(text) % 3),  # uneven rewards: a gradient
                       generator=torch.Generator().manual_seed(1))
    assert result.batch.prompts == [t.prompt for t in tasks for _ in range(4)]
    assert all(torch.isfinite(torch.tensor(v)) for v in result.metrics.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.model.parameters()))


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_evaluate_and_grpo_read_the_extracted_answer(policies, kind):
    policy = policies[kind]
    tasks = [Task("12+34=", "46", "add", 2, "arithmetic"), Task("5+5=", "10", "add", 1, "arithmetic")]
    said = ["\nThe answer is 46.", "\nThe answer is 11."]
    assert verify(tasks[0], said[0]).reward == 0  # the words alone are not an answer
    with Scripted(policy, [ids_of(policy.tokenizer, s) for s in said]):
        ev = evaluate(policy, tasks, temperature=0.0, max_new_tokens=12)
    assert ev.correct == [1, 0] and ev.acc == 0.5
    with Scripted(policy, [ids_of(policy.tokenizer, s) for s in said]):
        batch = rollout(policy, [t.prompt for t in tasks], max_new_tokens=12, temperature=0.0)
    assert batch.texts == said and batch.completions == ["46", "11"]
    # grpo_step verifies the rollout's completions: the extracted answers
    group = [ids_of(policy.tokenizer, s) for s in ("\nThe answer is 46.", "\n12 + 34 = 46", "\nThe answer is 45.",
                                                    "\n**46**")]
    with Scripted(policy, group):
        step = grpo_step(policy, torch.optim.SGD(policy.model.parameters(), lr=0.0), tasks[:1],
                         RLConfig(group_size=4, max_new_tokens=24))
    assert step.batch.completions == ["46", "46", "45", "46"]
    assert step.rewards.tolist() == [1.0, 1.0, 0.0, 1.0] and step.metrics["acc"] == 0.75


# ---------------------------------------------------------------------------------------------- calculator


def test_the_calculator_reads_calls_in_text_with_a_bpe_tokenizer(policies):
    policy = policies["qwen2"]
    tok = policy.tokenizer
    hook = CalculatorHook(tok, 1, "cpu", max_calls=2, stop_after_call=False, max_operands=4)
    assert hook.text_level
    # row 0 closes its call with a lone ']' token; row 1 inside a token that runs on (']=', as Qwen's
    # vocabulary has it): the text after its ']' begins the reply, so only the rest is forced
    call_ids = ids_of(tok, "[347*28]", eos=False)
    assert tok.decode(call_ids[-1:]) == "]"
    closing = ids_of(tok, "[347*28]=9716;", eos=False)
    cut = next(k for k, i in enumerate(closing) if "]" in tok.decode([i]))
    tail = tok.decode([closing[cut]]).split("]", 1)[1]
    assert tail and "=9716;".startswith(tail), "the BPE should merge ']=' (a call ending inside a token)"
    reply, rest = ids_of(tok, "=9716;", eos=False), ids_of(tok, "=9716;"[len(tail):], eos=False)
    after = ids_of(tok, " so 9716.")
    scripts = [call_ids + [0] * len(reply) + after, closing[:cut + 1] + [0] * len(rest) + after]
    tasks = [Task("347*28=", "9716", "mul", 3, "arithmetic")] * 2
    with Scripted(policy, scripts):
        batch = tool_rollout(policy, [t.prompt for t in tasks], max_new_tokens=30, temperature=0.0)
    assert batch.texts == ["[347*28]=9716; so 9716."] * 2 and batch.calls == [1, 1]
    assert batch.completions == ["9716", "9716"] and all(verify_with_tools(t, c).correct
                                                         for t, c in zip(tasks, batch.completions))
    for row, (policy_tokens, forced) in enumerate([(call_ids, reply), (closing[:cut + 1], rest)]):
        n, m = len(policy_tokens), len(forced)
        assert batch.completion_ids[row, n:n + m].tolist() == forced  # the reply, as the tokenizer encodes it
        assert batch.tool_mask[row, :n + m].tolist() == [0] * n + [1] * m  # forced: masked out of the loss
        assert batch.completion_mask[row, n:n + m].sum() == 0 and batch.logprobs[row, n:n + m].abs().sum() == 0
        assert batch.completion_mask[row, :n].sum() == n
        assert batch.attention_mask[row, batch.prompt_len + n:batch.prompt_len + n + m].tolist() == [1] * m
    # stop_after_call: the row ends with its reply
    with Scripted(policy, scripts[:1]):
        stopped = tool_rollout(policy, [tasks[0].prompt], max_new_tokens=30, temperature=0.0,
                               stop_after_call=True)
    assert stopped.texts == ["[347*28]=9716;"] and stopped.finished.tolist() == [True]
    assert verify_with_tools(tasks[0], stopped.completions[0]).correct


def test_extract_answer_by_hand():
    cases = {"The answer is 46.": "46", "12 + 34 = 46.": "46", "The answer is **46**. Hope 2 helps": "46",
             "$\\boxed{3 \\times 5 + 7}$": "3*5+7", "Answer: -3": "-3", "347 × 28 = 9,716": "9716",
             "Answer:\n\n0123": "0123", "[23*45]=1035; The answer is 1042.": "1042", "no digits": "no digits"}
    assert {text: extract_answer(text) for text in cases} == cases
