r"""The proposer substrate: a model that writes tasks for another model (or itself) to solve.

Creator/solver, curriculum-agent/executor and data-free self-play notebooks (08, 09-11, 13) share
these pieces; notebook 08 (`eva`, `agent0`) teaches them.

    from labkit.core.proposer import (parse_task, majority_vote, pseudo_rewards, uncertainty_reward,
                                      repetition_penalty, group_advantages, role_prompt, GrammarCreator)

    parse_task("12+345=")            # Task(prompt='12+345=', answer='357', category='add', difficulty=3, ...)
    parse_task("07+3=")              # None: a leading zero is not a well-formed task
    majority_vote(["12", "12", "13", None])      # ('12', 0.5): the label and p_hat, its share of ALL k answers
    sample_votes(policy, tasks, k, generator)    # (rollout, [Votes]): k sampled answers per task, majority-voted
    pseudo_rewards(["12", "13", None], "12")     # [1.0, 0.0, 0.0]
    uncertainty_reward(0.5), uncertainty_reward(1.0)     # 1.0, 0.0     R_unc = 1 - 2|p - 1/2|
    repetition_penalty(["1+2=", "1+2=", "3*4="])          # [2/3, 2/3, 1/3]: the share of the batch in one's cluster
    group_advantages(torch.tensor([1., 0., 1., 1.]), [0, 0, 1, 1])  # z-scores within each group id

**True answers are for measurement only.** `parse_task` computes a proposed task's true answer with
Python integers (a model's text is parsed, never evaluated), so a notebook can measure how often a
pseudo-label is right (`pseudo_label_acc`). Training signals in the self-labelled arms come only from
`majority_vote` over the solver's own answers.

**Pseudo-labels.** `majority_vote(answers)` takes the solver's k answers to one task (None for an
answer that is not a canonical integer) and returns the most common valid answer and its share p_hat
of all k answers (invalid ones count in the denominator, as a wrong vote would). Ties go to the answer
seen first, so the result is deterministic. With no valid answer the label is None and p_hat = 0.

**Repetition penalty** (Agent0 / R-Zero): tasks in a batch are clustered and each pays the share of
the batch in its cluster, R_rep = lambda |C_k| / B. The authors cluster with BLEU distance over
whitespace tokens (average linkage, threshold 0.5); a task like "12+34=" is one whitespace token, so
here the distance is 1 - Jaccard similarity of character n-gram sets (n = 3 by default), with the
same average-linkage agglomeration and threshold. Exact duplicates are at distance 0.

**Grouped advantages.** `group_advantages(rewards, groups)` z-scores rewards within each group id
(GRPO with groups of any size, e.g. all tasks a creator wrote from one role prompt are one group);
`scale="none"` only centres them (Dr. GRPO).

**The creator.** The shipped tiny bases were pretrained to answer prompts, not to write them.
`GrammarCreator` is the simplest honest creator: a policy over the tokens of a small task grammar
(operator, operand width, then each digit), so a proposal is a string the policy wrote token by token,
with a log-probability and a gradient; the string is then parsed like any model's proposal (a zero
leading digit makes it malformed). Both operands have the same width, as the arithmetic world's tasks.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch

from labkit.core.checks import check_float, check_int
from labkit.core.sampling import rollout
from labkit.core.tasks import MAX_PROMPT_CHARS, Task
from labkit.core.tasks.base import clean_completion, is_canonical_integer

OPERATORS = {"+": "add", "-": "sub", "*": "mul"}
_TASK = re.compile(r"([0-9]+)([+*-])([0-9]+)=")
ROLES = {"solver": "", "creator": "?"}   # role tags a shared model reads before the body (solver: none)


# ---------------------------------------------------------------------------------------------
# Parsing what a proposer wrote


def _canonical(digits: str) -> bool:
    return digits == "0" or not digits.startswith("0")


def parse_task(text, max_digits: int = 8, exclude=frozenset()) -> Task | None:
    """The arithmetic Task a proposer's text states ("a+b=", "a-b=", "a*b="), or None if malformed.

    Malformed: not a string, not exactly `a op b=` (no spaces, signs or other characters), an operand
    with a leading zero or more than `max_digits` digits, a prompt longer than MAX_PROMPT_CHARS, or a
    prompt in `exclude` (e.g. `labkit.core.tasks.eval_prompts()`, to keep held-out tasks out of
    training). The answer is computed here from the parsed integers, for measurement only. Difficulty
    is the wider operand's digit count."""
    max_digits = check_int("max_digits", max_digits, min=1)
    if not isinstance(text, str) or len(text) > MAX_PROMPT_CHARS:
        return None
    m = _TASK.fullmatch(text)
    if m is None:
        return None
    left, op, right = m.groups()
    if not (_canonical(left) and _canonical(right)) or max(len(left), len(right)) > max_digits:
        return None
    if text in exclude:
        return None
    a, b = int(left), int(right)
    answer = {"+": a + b, "-": a - b, "*": a * b}[op]
    return Task(prompt=text, answer=str(answer), category=OPERATORS[op],
                difficulty=max(len(left), len(right)), world="arithmetic", meta={"a": a, "b": b})


def parse_answer(completion) -> str | None:
    """A solver's answer as a vote: the canonical integer it wrote (surrounding whitespace stripped), else None."""
    if not isinstance(completion, str):
        return None
    text = clean_completion(completion)
    return text if text is not None and is_canonical_integer(text) else None


def role_prompt(role: str, body: str) -> str:
    """The prompt one shared model reads in `role` ("solver": the body as is; "creator": '?' + body)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; accepted: {', '.join(ROLES)}")
    if not isinstance(body, str):
        raise ValueError(f"a role prompt's body is a string; got {type(body).__name__}")
    return ROLES[role] + body


# ---------------------------------------------------------------------------------------------
# Pseudo-labels and rewards


def majority_vote(answers) -> tuple[str | None, float]:
    """(label, p_hat): the most common non-None answer and its share of all k answers.

    p_hat = (1/k) sum_i 1[o_i = label]  (Agent0's self-consistency). Ties go to the answer seen first;
    no valid answer gives (None, 0.0). Raises on an empty list."""
    answers = list(answers)
    if not answers:
        raise ValueError("majority_vote needs at least one answer")
    valid = [a for a in answers if a is not None]
    if not valid:
        return None, 0.0
    counts = Counter(valid)
    top = max(counts.values())
    label = next(a for a in valid if counts[a] == top)   # first seen among the most common
    return label, top / len(answers)


def pseudo_rewards(answers, label) -> list[float]:
    """r_i = 1[o_i = label] (0 for every answer when the label is None)."""
    return [1.0 if label is not None and a == label else 0.0 for a in answers]


@dataclass
class Votes:
    """A solver's k answers to one task and their majority vote. `label`, `p_hat` and `rewards` come from
    the answers alone (what a self-labelled arm trains on); `right` (label = true answer) and `acc` (share
    of right answers) are measured with the parser's true answer, never trained on."""
    answers: list
    label: str | None
    p_hat: float
    right: bool
    acc: float

    @property
    def rewards(self) -> list[float]:
        return pseudo_rewards(self.answers, self.label)


def sample_votes(policy, tasks, k: int, generator=None, max_new_tokens: int = 8):
    """(rollout, [Votes]): `k` answers per task sampled at temperature 1 in one batch, majority-voted.
    Notebooks 08 (the creator's solver) and 09 (TTRL on test questions) use it."""
    # o_1..o_k ~ pi(. | x);  y~ = argmax_y sum_i 1[o_i = y];  p_hat = (1/k) sum_i 1[o_i = y~];  r_i = 1[o_i = y~]
    k = check_int("k", k, min=2)
    if not tasks:
        raise ValueError("sample_votes needs at least one task")
    batch = rollout(policy, [t.prompt for t in tasks for _ in range(k)], max_new_tokens, 1.0, generator=generator)
    votes = []
    for i, task in enumerate(tasks):
        answers = [parse_answer(c) for c in batch.completions[i * k:(i + 1) * k]]
        label, p_hat = majority_vote(answers)
        votes.append(Votes(answers, label, p_hat, label == task.answer, sum(a == task.answer for a in answers) / k))
    return batch, votes


def uncertainty_reward(p_hat) -> float:
    """Agent0's R_unc = 1 - 2 |p_hat - 1/2|: 1 when the solver is split in half, 0 when unanimous or never agreeing."""
    p = check_float("p_hat", p_hat, min=0.0, max=1.0)
    return 1.0 - 2.0 * abs(p - 0.5)


def ngrams(text: str, n: int = 3) -> frozenset:
    """The set of character n-grams of `text` (the whole text when it is shorter than n)."""
    if len(text) <= n:
        return frozenset([text])
    return frozenset(text[i:i + n] for i in range(len(text) - n + 1))


def distance_matrix(texts, n: int = 3) -> torch.Tensor:
    """d_ij = 1 - |G_i & G_j| / |G_i | G_j| over character n-gram sets (0 on the diagonal)."""
    grams = [ngrams(t, n) for t in texts]
    k = len(grams)
    d = torch.zeros(k, k, dtype=torch.float64)
    for i in range(k):
        for j in range(i + 1, k):
            union = len(grams[i] | grams[j])
            d[i, j] = d[j, i] = 1.0 - len(grams[i] & grams[j]) / union
    return d


def cluster(texts, threshold: float = 0.5, n: int = 3) -> list[int]:
    """Average-linkage agglomerative clusters of `texts`: merge the closest pair of clusters while their
    mean pairwise distance is below `threshold`. Returns a cluster id per text (ids in order of first member)."""
    texts = list(texts)
    threshold = check_float("threshold", threshold, min=0.0, max=1.0)
    if any(not isinstance(t, str) for t in texts):
        raise ValueError("cluster takes a list of strings")
    k = len(texts)
    if k == 0:
        return []
    d = distance_matrix(texts, n)
    members = {i: [i] for i in range(k)}
    cd = d.clone()
    cd.fill_diagonal_(float("inf"))
    alive = torch.ones(k, dtype=torch.bool)
    while alive.sum() > 1:
        masked = cd.clone()
        masked[~alive] = float("inf")
        masked[:, ~alive] = float("inf")
        flat = int(torch.argmin(masked))
        i, j = divmod(flat, k)
        if not masked[i, j] < threshold:
            break
        i, j = min(i, j), max(i, j)
        ni, nj = len(members[i]), len(members[j])
        # Lance-Williams for average linkage: d(k, i+j) = (n_i d(k, i) + n_j d(k, j)) / (n_i + n_j)
        merged = (ni * cd[i] + nj * cd[j]) / (ni + nj)
        cd[i], cd[:, i] = merged, merged
        cd[i, i] = float("inf")
        alive[j] = False
        members[i] += members.pop(j)
    label = [0] * k
    for new_id, root in enumerate(sorted(members, key=lambda r: min(members[r]))):
        for m in members[root]:
            label[m] = new_id
    return label


def repetition_penalty(texts, scale: float = 1.0, threshold: float = 0.5, n: int = 3) -> list[float]:
    """R_rep(x_i) = scale * |C_k| / B for x_i in cluster C_k of the batch of B texts (see `cluster`)."""
    scale = check_float("scale", scale, min=0.0)
    labels = cluster(texts, threshold, n)
    sizes = Counter(labels)
    return [scale * sizes[c] / len(labels) for c in labels]


def group_advantages(rewards, groups, scale: str = "std", eps: float = 1e-6) -> torch.Tensor:
    """A_i = (r_i - mean_g) / (std_g + eps) within each group id g (sample std; a group of one gets 0).
    scale="none": A_i = r_i - mean_g. `groups` is one hashable id per reward."""
    r = torch.as_tensor(rewards, dtype=torch.float32)
    groups = list(groups)
    if r.ndim != 1 or len(groups) != r.numel():
        raise ValueError(f"need one group id per reward; got {len(groups)} ids for rewards of shape {tuple(r.shape)}")
    if scale not in ("std", "none"):
        raise ValueError(f"scale must be 'std' or 'none'; got {scale!r}")
    out = torch.zeros_like(r)
    for g in dict.fromkeys(groups):
        idx = torch.tensor([i for i, x in enumerate(groups) if x == g])
        part = r[idx]
        centred = part - part.mean()
        if scale == "std":
            centred = centred / (part.std() + eps) if len(idx) > 1 else torch.zeros_like(part)
        out[idx] = centred
    return out


# ---------------------------------------------------------------------------------------------
# A creator that writes tasks in a tiny grammar


@dataclass
class Proposals:
    """What a creator wrote: the texts, their tokens, and the log-probability of each (with gradient)."""

    texts: list[str]
    tokens: list[tuple]           # (op, width, digits of a, digits of b) per proposal
    logprobs: torch.Tensor        # (B,) sum of the token log-probs, differentiable

    def __len__(self) -> int:
        return len(self.texts)


class GrammarCreator(torch.nn.Module):
    """A creator policy over the grammar  task := a op b '=' ; op in {+,-,*}; |a| = |b| = w in 1..max_width.

    It writes an operator, a width given the operator, then each digit: the leading digit of a
    multi-digit operand from its own logits, the others from shared digit logits. Nothing stops it from
    writing a leading zero: such a text is malformed (parse_task returns None), which is what the
    creator's format gate and `task_valid_rate` see. All logits start at zero (uniform)."""

    def __init__(self, max_width: int = 3):
        super().__init__()
        self.max_width = check_int("max_width", max_width, min=1, max=8)
        self.ops = list(OPERATORS)
        self.op_logits = torch.nn.Parameter(torch.zeros(len(self.ops)))
        self.width_logits = torch.nn.Parameter(torch.zeros(len(self.ops), self.max_width))
        self.lead_logits = torch.nn.Parameter(torch.zeros(10))
        self.digit_logits = torch.nn.Parameter(torch.zeros(10))

    def cell_probs(self) -> torch.Tensor:
        """P(op, width) as an (ops, widths) table (no gradient)."""
        with torch.no_grad():
            return self.op_logits.softmax(0)[:, None] * self.width_logits.softmax(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Proposals:
        """Write n proposals (draws in a fixed order, so one generator seed gives the same texts)."""
        n = check_int("n", n, min=1)
        op_lp = self.op_logits.log_softmax(0)
        width_lp = self.width_logits.log_softmax(1)
        lead_lp, digit_lp = self.lead_logits.log_softmax(0), self.digit_logits.log_softmax(0)
        ops = torch.multinomial(op_lp.exp().detach(), n, replacement=True, generator=generator)
        widths = torch.multinomial(width_lp[ops].exp().detach(), 1, generator=generator).squeeze(1)
        W = self.max_width
        lead = torch.multinomial(lead_lp.exp().detach(), 2 * n, replacement=True, generator=generator).view(n, 2)
        rest = torch.multinomial(digit_lp.exp().detach(), 2 * n * W, replacement=True, generator=generator).view(n, 2, W)
        texts, tokens, logps = [], [], []
        for i in range(n):
            o, w = int(ops[i]), int(widths[i]) + 1
            lp = op_lp[o] + width_lp[o, w - 1]
            operands = []
            for side in range(2):
                if w == 1:
                    ds = [int(rest[i, side, 0])]
                    lp = lp + digit_lp[ds[0]]
                else:
                    ds = [int(lead[i, side])] + [int(x) for x in rest[i, side, :w - 1]]
                    lp = lp + lead_lp[ds[0]] + digit_lp[ds[1:]].sum()
                operands.append("".join(map(str, ds)))
            texts.append(f"{operands[0]}{self.ops[o]}{operands[1]}=")
            tokens.append((self.ops[o], w, operands[0], operands[1]))
            logps.append(lp)
        return Proposals(texts, tokens, torch.stack(logps))
