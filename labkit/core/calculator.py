"""A calculator tool inside the completion: call format, a safe calculator, a tool-using rollout.

Notebook 04 (`notebooks/04_self_imitation.ipynb`, paper `spear`) explains why it is there: the
policy may call a calculator in the middle of its answer, the environment writes back the exact
result, and the policy goes on. The format, in the char alphabet of the tiny policy:

    prompt        "347*28="
    completion    "[347*28]" "=9716;" "9716" <eos>
                   policy     tool      policy

The policy opens a call with `[` and closes it with `]`; the environment then inserts `=` + the
result + `;` (or `=?;` when the call is not a valid expression). The final answer is what the
policy writes after the last `;` (the whole completion when there was no call), or the last
reply itself when nothing follows it, judged by the task world's own verifier. With
`stop_after_call=True` the environment ends the episode after a reply, so a call submits its
result (notebook 04's alternative regime; by default its base `tiny-calc-copy` must copy the reply itself). Tool characters are in the sequence (the policy attends to them) but
not in the loss: `completion_mask` is 1 on policy tokens only.

The calculator parses `n op n op ...` (canonical non-negative integers, + - *, `*` first) with
labkit.core.tasks.countdown's tokenizer and evaluator: model output is data, never `eval`ed.
`max_operands=2` makes it a one-operation calculator. Chain tasks (`chain_task`, '23*45+7=' -> '1042')
pair with it: the whole prompt is refused as a call, so the policy must call '[23*45]' and use the
reply (add 7 itself, or call again): notebook 04's default task.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from labkit.core.checks import check_int
from labkit.core.evaluate import Evaluation, check_tasks, sample_and_judge
from labkit.core.policy import Policy
from labkit.core.policy.tokenizer import is_char_level
from labkit.core.sampling import (Override, Rollout, TransformersDecoder, check_prompts, check_sampling,
                                  encode_policy_prompts, eval_mode, sample)
from labkit.core.tasks import Task, Verdict, load_eval_set, verify
from labkit.core.tasks.countdown import evaluate as evaluate_expression, tokenize

CALL_OPEN, CALL_CLOSE = "[", "]"
RESULT_OPEN, RESULT_CLOSE = "=", ";"
ERROR = "?"
MAX_CALL_CHARS = 24  # longest expression the calculator reads (longer: an error, unscanned)
MAX_OPERANDS = 4
MAX_RESULT_DIGITS = 12  # results beyond this are an error (keeps completions short)

__all__ = ["CALL_OPEN", "CALL_CLOSE", "RESULT_OPEN", "RESULT_CLOSE", "calculate", "tool_output",
           "format_call", "final_answer", "count_calls", "verify_with_tools", "ToolRollout", "CalculatorHook",
           "tool_rollout", "after_reply_mask", "ToolEvaluation", "ToolJudgement", "evaluate_with_tools", "Trajectory",
           "split_rollout", "collate", "chain_task", "sample_chain_task", "chain_eval_tasks"]


def _check_max_operands(max_operands) -> int:
    if isinstance(max_operands, bool) or not isinstance(max_operands, int) or not 2 <= max_operands <= MAX_OPERANDS:
        raise ValueError(f"max_operands must be an integer in 2..{MAX_OPERANDS}; got {max_operands!r}")
    return max_operands


def calculate(expression, max_operands: int = MAX_OPERANDS) -> int | None:
    """The value of `expression` ('347*28', '12+3*4'), or None when it is not a well-formed
    `n op n ...` of at most `max_operands` canonical integers and + - * (no spaces, brackets,
    unary minus, powers, names...). Never evaluates Python. max_operands=2 is a one-operation
    calculator (notebook 04's chain task: '23*45+7' is refused, '23*45' answered)."""
    _check_max_operands(max_operands)
    if not isinstance(expression, str) or len(expression) > MAX_CALL_CHARS:
        return None
    parsed = tokenize(expression)
    if parsed is None or len(parsed[0]) > max_operands:
        return None
    value = evaluate_expression(*parsed)
    return value if len(str(abs(value))) <= MAX_RESULT_DIGITS else None


def tool_output(expression: str, max_operands: int = MAX_OPERANDS) -> str:
    """What the environment inserts after a call: '=9716;' or '=?;' for an invalid call."""
    value = calculate(expression, max_operands)
    return RESULT_OPEN + (ERROR if value is None else str(value)) + RESULT_CLOSE


def format_call(expression: str) -> str:
    """A complete call with the environment's reply: '[347*28]=9716;'."""
    return CALL_OPEN + expression + CALL_CLOSE + tool_output(expression)


def final_answer(completion: str) -> str:
    """The answer: the text after the last tool reply (all of it when there was none); when
    nothing follows the last reply, the reply itself is the answer (a call can submit its result)."""
    head, closed, tail = completion.rpartition(RESULT_CLOSE)
    if closed and not tail.strip() and RESULT_OPEN in head:
        return head.rsplit(RESULT_OPEN, 1)[1]
    return tail


def count_calls(completion: str) -> int:
    """How many tool replies a completion holds (each executed call leaves one)."""
    return completion.count(CALL_CLOSE + RESULT_OPEN)


def verify_with_tools(task: Task, completion: str) -> Verdict:
    """The task world's verdict on the final answer (the tool's reply alone earns nothing)."""
    return verify(task, final_answer(completion))


# ---------------------------------------------------------------------------------------------
# Rollout with tool calls: one KV-cache pass; the environment's characters are forced tokens


@dataclass
class ToolRollout(Rollout):
    """A labkit Rollout whose `completion_mask` covers policy tokens only; `tool_mask` marks the
    inserted tool characters (attended, never trained on); `calls` counts executed calls per row."""

    tool_mask: torch.Tensor = None  # (B, T) float
    calls: list[int] = None


class CalculatorHook:
    """`tool_rollout`'s on_token hook (labkit.core.sampling.sample): the environment around the policy.

    It reads each row's policy characters; when a row closes a call (`]` after an open `[`) it
    queues the calculator's reply, and forces the queued characters as the row's next tokens, one
    per step. Calls beyond `max_calls` get '=?;'; with `stop_after_call` a row ends with its first reply.

    text_level (None: whenever the tokenizer is not character-level, `is_char_level`): a BPE token
    may hold several characters ('8]', ']='), so the hook decodes the row's policy tokens since the
    last reply, finds a closed call in that text, and forces the reply as the tokenizer encodes it
    ('=9716;' -> its BPE tokens) after the token that closed the call. Characters that token holds
    after its `]` stay: when they begin the reply (']=' then '9716;' is forced) only the rest is
    forced; otherwise the whole reply follows them ('].' + '=9716;')."""

    def __init__(self, tokenizer, batch: int, device, max_calls: int, stop_after_call: bool, max_operands: int,
                 text_level: bool | None = None):
        self.char_id = {ch: tokenizer.convert_tokens_to_ids(ch) for ch in "0123456789+-*?=;[]"}
        self.id_char = {i: ch for ch, i in self.char_id.items()}
        self.eos_id, self.device = tokenizer.eos_token_id, device
        self.max_calls, self.stop_after_call, self.max_operands = max_calls, stop_after_call, max_operands
        self.queued: list[list[int]] = [[] for _ in range(batch)]  # the reply still to write, per row
        self.segment = [""] * batch  # policy characters since the last tool reply
        self.calls = [0] * batch
        self.text_level = not is_char_level(tokenizer) if text_level is None else bool(text_level)
        self.tokenizer = tokenizer
        self.written: list[list[int]] = [[] for _ in range(batch)]  # text level: policy tokens since the last reply

    def __call__(self, t: int, ids: torch.Tensor, alive: torch.Tensor) -> Override | None:
        next_ids = ids.tolist()
        forced, stop = [False] * len(next_ids), [False] * len(next_ids)
        for i, live in enumerate(alive.tolist()):
            if not live:
                continue
            if self.queued[i]:  # the environment speaks: a forced token, not the policy's
                next_ids[i] = self.queued[i].pop(0)
                forced[i] = True
                stop[i] = self.stop_after_call and not self.queued[i]
            elif next_ids[i] != self.eos_id:
                if not self.text_level:
                    self._read(i, next_ids[i])
                elif self._read_text(i, next_ids[i]) and not self.queued[i]:
                    stop[i] = self.stop_after_call  # the policy's own token wrote the whole reply
        if not any(forced) and not any(stop):
            return None
        return Override(ids=torch.tensor(next_ids, device=self.device), forced=torch.tensor(forced, device=self.device),
                        stop=torch.tensor(stop, device=self.device))

    def _read(self, i: int, token: int) -> None:
        """Row i's policy wrote `token`: queue a reply when it closes a call."""
        ch = self.id_char.get(token, "")
        self.segment[i] += ch if ch else "_"
        if ch == CALL_CLOSE and CALL_OPEN in self.segment[i]:
            expression = self.segment[i].rsplit(CALL_OPEN, 1)[1][:-1]
            within = self.calls[i] < self.max_calls
            reply = tool_output(expression, self.max_operands) if within else RESULT_OPEN + ERROR + RESULT_CLOSE
            self.calls[i] += 1
            self.queued[i] = [self.char_id[c] for c in reply]
            self.segment[i] = ""

    def _reply(self, i: int, expression: str) -> str:
        within = self.calls[i] < self.max_calls
        self.calls[i] += 1
        return tool_output(expression, self.max_operands) if within else RESULT_OPEN + ERROR + RESULT_CLOSE

    def _read_text(self, i: int, token: int) -> bool:
        """Row i's policy wrote `token` (any tokenizer): when the text since the last reply holds a closed
        call, queue the reply's tokens and return True. The expression is what lies between the last `[`
        and the first `]` after one; the text after that `]` (inside the same token) is kept."""
        self.written[i].append(token)
        if CALL_CLOSE not in self.tokenizer.decode([token], skip_special_tokens=True):
            return False
        text = self.tokenizer.decode(self.written[i], skip_special_tokens=True)
        opened = text.find(CALL_OPEN)
        closed = text.find(CALL_CLOSE, opened + 1) if opened >= 0 else -1
        if closed < 0:
            return False
        expression, tail = text[:closed].rsplit(CALL_OPEN, 1)[1], text[closed + 1:]
        reply = self._reply(i, expression)
        rest = reply[len(tail):] if reply.startswith(tail) else reply
        self.queued[i] = list(self.tokenizer.encode(rest, add_special_tokens=False)) if rest else []
        self.written[i] = []
        return True


@torch.no_grad()
def tool_rollout(policy: Policy, prompts: list[str], max_new_tokens: int = 32, temperature: float = 1.0,
                 top_p: float = 1.0, generator: torch.Generator | None = None, max_calls: int = 2,
                 stop_after_call: bool = False, max_operands: int = MAX_OPERANDS) -> ToolRollout:
    """Sample one completion per prompt, executing calculator calls as they close.

    Every row advances one token per step. A row whose policy just wrote `]` after an open `[`
    gets the calculator's reply queued; queued characters are fed as the row's next tokens
    instead of samples (logprob 0, entropy 0, mask 0). Calls beyond `max_calls` get '=?;'.
    stop_after_call: the row ends once its first reply is written (the reply is its answer).
    max_operands: the most numbers one call may hold (2: one operation per call).
    temperature 0 decodes greedily. Same seed and device, same completions.
    A chat policy (`Policy.chat`) reads each prompt in its chat template, its calls are found in the
    decoded text (`CalculatorHook` text_level) and its `completions` are the answers extracted from the
    whole text (`texts`): after the last reply, or the reply itself."""
    check_prompts("tool_rollout", prompts)
    check_sampling(max_new_tokens, temperature, top_p)
    check_int("max_calls", max_calls, min=0)
    _check_max_operands(max_operands)
    tokenizer = policy.tokenizer
    with eval_mode(policy.model):
        prompt_ids, prompt_mask = encode_policy_prompts(policy, prompts)
        hook = CalculatorHook(tokenizer, len(prompt_ids), policy.device, max_calls, stop_after_call, max_operands)
        decoder = TransformersDecoder(policy.model, prompt_ids, prompt_mask, mask_finished=True)
        out = sample(decoder, max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id, temperature, top_p,
                     generator, on_token=hook)
    return out.rollout(tokenizer, prompts, prompt_ids, prompt_mask, cls=ToolRollout,
                       answer_extractor=getattr(policy, "answer_extractor", None), tool_mask=out.forced_mask,
                       calls=hook.calls)


# ---------------------------------------------------------------------------------------------
# Single trajectories, and batches rebuilt from them (a replay buffer mixes batches)


@dataclass
class Trajectory:
    """One completion, unpadded: what a replay buffer stores."""

    prompt: str
    text: str
    prompt_ids: torch.Tensor  # (P,) without padding
    completion_ids: torch.Tensor  # (T,) up to the last present token
    present: torch.Tensor  # (T,) 1 for policy and tool tokens
    policy_mask: torch.Tensor  # (T,) 1 for policy tokens
    logprobs: torch.Tensor  # (T,) of the policy that sampled it
    entropies: torch.Tensor  # (T,)
    finished: bool


def split_rollout(batch: Rollout) -> list[Trajectory]:
    """The rows of a (tool) rollout as unpadded trajectories, on the CPU."""
    prompt_mask = batch.attention_mask[:, :batch.prompt_len].bool().cpu()
    present = batch.attention_mask[:, batch.prompt_len:].cpu()
    rows = []
    for i in range(len(batch)):
        length = int(present[i].nonzero().max()) + 1 if present[i].any() else 0
        rows.append(Trajectory(batch.prompts[i], batch.completions[i],
                               batch.input_ids[i, :batch.prompt_len].cpu()[prompt_mask[i]],
                               batch.completion_ids[i, :length].cpu(), present[i, :length].float(),
                               batch.completion_mask[i, :length].cpu().float(),
                               batch.logprobs[i, :length].cpu(), batch.entropies[i, :length].cpu(),
                               bool(batch.finished[i])))
    return rows


def collate(rows: list[Trajectory], pad_id: int, device="cpu") -> Rollout:
    """One Rollout of `rows`: prompts left-padded, completions right-padded (pad: mask 0)."""
    if not rows:
        raise ValueError("collate needs at least one trajectory")
    P = max(len(r.prompt_ids) for r in rows)
    T = max(max(len(r.completion_ids) for r in rows), 1)
    B = len(rows)
    ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attention = torch.zeros(B, P + T, dtype=torch.long)
    policy_mask, logprobs, entropies = (torch.zeros(B, T) for _ in range(3))
    for i, r in enumerate(rows):
        p, n = len(r.prompt_ids), len(r.completion_ids)
        ids[i, P - p:P] = r.prompt_ids
        attention[i, P - p:P] = 1
        ids[i, P:P + n] = r.completion_ids
        attention[i, P:P + n] = r.present.long()
        policy_mask[i, :n], logprobs[i, :n], entropies[i, :n] = r.policy_mask, r.logprobs, r.entropies
    return Rollout(ids.to(device), attention.to(device), P, policy_mask.to(device), logprobs.to(device),
                   entropies.to(device), [r.text for r in rows], [r.prompt for r in rows],
                   torch.tensor([r.finished for r in rows], device=device))


def after_reply_mask(completion_mask: torch.Tensor, tool_mask: torch.Tensor) -> torch.Tensor:
    """1 on the policy tokens written after a row's first tool reply (the answer that has the reply in
    its context), 0 elsewhere: splits a ToolRollout's policy tokens into before and after the feedback."""
    if completion_mask.shape != tool_mask.shape:
        raise ValueError(f"completion_mask and tool_mask must have one shape; got "
                         f"{tuple(completion_mask.shape)} and {tuple(tool_mask.shape)}")
    return (tool_mask.cumsum(-1) > 0).to(completion_mask.dtype) * completion_mask


# ---------------------------------------------------------------------------------------------
# Held-out evaluation with the tool


@dataclass
class ToolEvaluation(Evaluation):
    """labkit.core.evaluate's Evaluation plus, per sample (task-major), whether it called, whether it was right,
    and its completion."""

    called: list[bool] = None
    right: list[bool] = None
    completions: list[str] = None

    @property
    def tool_rate(self) -> float:
        return sum(self.called) / len(self.called)

    def acc_given(self, call: bool) -> float:
        """Accuracy of the samples that did (call=True) or did not call the tool; NaN if none."""
        picked = [r for c, r in zip(self.called, self.right) if c == call]
        return sum(picked) / len(picked) if picked else float("nan")


@dataclass
class ToolJudgement:
    """One sample's judgement in `evaluate_with_tools`."""

    correct: bool
    called: bool
    completion: str


@torch.no_grad()
def evaluate_with_tools(policy: Policy, tasks: list[Task], samples: int = 1, temperature: float = 1.0,
                        max_new_tokens: int = 40, batch_size: int = 512,
                        generator: torch.Generator | None = None, stop_after_call: bool = False,
                        max_operands: int = MAX_OPERANDS) -> ToolEvaluation:
    """Sample `samples` tool-using completions per task and judge their final answers."""
    check_tasks("evaluate_with_tools", tasks, samples)

    def sampler(part: list[Task]) -> ToolRollout:
        return tool_rollout(policy, [t.prompt for t in part], max_new_tokens, temperature, generator=generator,
                            stop_after_call=stop_after_call, max_operands=max_operands)

    def judge(part: list[Task], batch: ToolRollout) -> list[ToolJudgement]:
        written = batch.texts if batch.texts is not None else batch.completions  # as written (chat: before extraction)
        return [ToolJudgement(verify_with_tools(t, answer).correct, calls > 0, text)
                for t, answer, text, calls in zip(part, batch.completions, written, batch.calls)]

    ev, judged = sample_and_judge(tasks, sampler, judge, samples, batch_size)
    return ToolEvaluation(ev.tasks, ev.correct, ev.samples, ev.mean_entropy, [j.called for j in judged],
                          [j.correct for j in judged], [j.completion for j in judged])


# ---------------------------------------------------------------------------------------------
# Chain tasks: the tool's reply must be used, not only copied


def chain_task(a: int, b: int, c: int) -> Task:
    """'23*45+7=' -> '1042'. With a one-operation calculator (max_operands=2) the way through is
    to call '[23*45]' and add c to the reply oneself (or call again, '[1035+7]'): a trajectory holds
    several decisions (call, what to call, what to do with the reply). Judged by the arithmetic
    verifier (the answer's canonical integer); category 'mul', difficulty = digits of a, meta['c'] = c."""
    for name, value in (("a", a), ("b", b), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"chain_task needs integers >= 0; got {name}={value!r}")
    return Task(prompt=f"{a}*{b}+{c}=", answer=str(a * b + c), category="mul", difficulty=len(str(a)),
                world="arithmetic", meta={"a": a, "b": b, "c": c, "chain": "+"})


def sample_chain_task(digits: int, rng) -> Task:
    """A chain task whose factors both have `digits` digits (1..4) and whose addend is 1..9."""
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 4:
        raise ValueError(f"chain digits must be an integer in 1..4; got {digits!r}")
    low = 0 if digits == 1 else 10 ** (digits - 1)
    a, b = rng.randrange(low, 10 ** digits), rng.randrange(low, 10 ** digits)
    return chain_task(a, b, rng.randrange(1, 10))


def chain_eval_tasks(difficulties=(2, 3)) -> list[Task]:
    """Held-out chain tasks: the shipped arithmetic eval set's `mul` tasks of these difficulties, each
    with an addend 1..9 drawn from a generator seeded by its prompt (the same on every machine)."""
    import random

    picked = [t for t in load_eval_set("arithmetic") if t.category == "mul" and t.difficulty in set(difficulties)]
    if not picked:
        raise ValueError(f"no held-out mul tasks of difficulty {tuple(difficulties)!r}; the eval set has 1..8")
    return [chain_task(t.meta["a"], t.meta["b"], random.Random("chain/" + t.prompt).randrange(1, 10)) for t in picked]
