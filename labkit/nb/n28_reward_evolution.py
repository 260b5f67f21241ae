"""28 · Reward evolution: a meta-optimiser that writes the reward (DERL): the mechanism that notebooks/28_reward_evolution.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import copy
import random
import re
import torch
from labkit.core.checks import check_float, check_int
from labkit.core.grpo import RLConfig, grpo_step
from labkit.core.sampling import rollout
from labkit.core.tasks import sample_task, verify
from labkit.core.tasks.base import clean_completion


# The atomic primitives g_k(x, y) in [0, 1] (the authors' g1 outcome, g2 format, g4 loose outcome, and a length term)
PRIMITIVES = ("correct", "format", "digits", "length", "lead")


def primitives(task, completion: str) -> dict[str, float]:
    # g(x, y) for one completion: exact answer, canonical integer, per-digit partial credit (right-aligned
    # digits that match, over the longer length), right number of characters, right first character (sign or digit)
    v = verify(task, completion)
    if not v.format_ok:
        return {"correct": 0.0, "format": 0.0, "digits": 0.0, "length": 0.0, "lead": 0.0}
    text, answer = clean_completion(completion), task.answer
    same = sum(a == b for a, b in zip(reversed(text), reversed(answer)))
    return {"correct": float(v.correct), "format": 1.0, "digits": same / max(len(text), len(answer)),
            "length": float(len(text) == len(answer)), "lead": float(text[0] == answer[0])}


class ExpressionError(ValueError):
    """A reward expression that does not parse: one line, the text and why."""


MAX_CHARS = 200
MAX_DEPTH = 12
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_]+)|(\S))")


def tokenize(text: str) -> list[str]:
    # numbers, primitive names, + - * ( ); anything else is an error (never eval'd)
    if not isinstance(text, str):
        raise ExpressionError(f"a reward expression is a string; got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ExpressionError(f"reward expression longer than {MAX_CHARS} characters")
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:   # only trailing whitespace is left
            break
        number, name, other = m.groups()
        if other is not None and other not in "+-*()":
            raise ExpressionError(f"malformed reward expression {text!r}: unexpected character {other!r}")
        if name is not None and name not in PRIMITIVES:
            raise ExpressionError(f"malformed reward expression {text!r}: unknown primitive {name!r} "
                                  f"(known: {', '.join(PRIMITIVES)})")
        out.append(number or name or other)
        pos = m.end()
    return out


def parse(text: str):
    """A reward expression -> its tree: ("num", v) | ("var", name) | ("neg", e) | (op, left, right), op in + - *.
    Grammar: expr := term (("+" | "-") term)*; term := factor ("*" factor)*; factor := number | primitive |
    "-" factor | "(" expr ")". Raises ExpressionError (a ValueError) with one line for anything else."""
    tokens, pos = tokenize(text), 0

    def fail(why):
        raise ExpressionError(f"malformed reward expression {text!r}: {why}")

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr(depth):
        node = term(depth)
        while peek() in ("+", "-"):
            node = (take(), node, term(depth))
        return node

    def term(depth):
        node = factor(depth)
        while peek() == "*":
            take()
            node = ("*", node, factor(depth))
        return node

    def factor(depth):
        if depth > MAX_DEPTH:
            fail(f"nested deeper than {MAX_DEPTH}")
        tok = peek()
        if tok is None:
            fail("ends too early")
        take()
        if tok == "(":
            node = expr(depth + 1)
            if peek() != ")":
                fail("unbalanced parenthesis")
            take()
            return node
        if tok == "-":
            return ("neg", factor(depth + 1))
        if tok in PRIMITIVES:
            return ("var", tok)
        if tok[0].isdigit():
            return ("num", float(tok))
        fail(f"unexpected {tok!r}")

    if not tokens:
        fail("empty")
    tree = expr(0)
    if pos != len(tokens):
        fail(f"unexpected {tokens[pos]!r} after a complete expression")
    if not variables(tree):
        fail("uses no primitive")   # the authors' check: a formula must read at least one g
    return tree


def variables(tree) -> set[str]:
    # the primitives a tree reads
    if tree[0] == "var":
        return {tree[1]}
    if tree[0] == "num":
        return set()
    return set().union(*(variables(t) for t in tree[1:]))


def evaluate(tree, values: dict[str, float]) -> float:
    # R(x, y) = f_phi(g_1(x, y), ..., g_K(x, y)): the tree applied to the primitives' values
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "var":
        return float(values[tree[1]])
    if kind == "neg":
        return -evaluate(tree[1], values)
    a, b = evaluate(tree[1], values), evaluate(tree[2], values)
    return a + b if kind == "+" else a - b if kind == "-" else a * b


def render(tree) -> str:
    # the canonical text of a tree (parse(render(t)) == t): binary nodes in parentheses except at the top
    def inner(t, top=False):
        if t[0] == "num":
            return f"{t[1]:g}"
        if t[0] == "var":
            return t[1]
        if t[0] == "neg":
            return f"-{inner(t[1])}"
        s = f"{inner(t[1])} {t[0]} {inner(t[2])}"
        return s if top else f"({s})"
    return inner(tree, True)


def reward_fn(text: str):
    # the inner loop's reward r(x, y) = f_phi(g(x, y)) of a parsed expression, as grpo_step's reward_fn
    tree = parse(text)
    return lambda task, completion: evaluate(tree, primitives(task, completion))


# The Meta-Optimizer's vocabulary: operators and leaves of prefix (Polish) notation
OPS = ("+", "-", "*")
CONSTANTS = ("0.5", "2")
VOCAB = OPS + PRIMITIVES + CONSTANTS


def valid_next(prefix: list[str], max_tokens: int) -> list[bool]:
    # the grammar as a mask: an operator opens one more slot, a leaf fills one; the expression must close
    # within max_tokens and read at least one primitive (the authors' sampler constrains the vocabulary only)
    need = 1 + sum(t in OPS for t in prefix) - sum(t not in OPS for t in prefix)
    left = max_tokens - len(prefix)
    if need <= 0 or left <= 0:
        return [False] * len(VOCAB)
    has_var = any(t in PRIMITIVES for t in prefix)
    mask = []
    for tok in VOCAB:
        if tok in OPS:
            mask.append(need + 1 <= left - 1)
        elif tok in CONSTANTS:
            mask.append(has_var or need > 1)
        else:
            mask.append(True)
    return mask


def prefix_to_tree(tokens: list[str]):
    # prefix tokens ["+", "correct", "*", "0.5", "digits"] -> ("+", ("var", "correct"), ("*", ("num", .5), ...))
    pos = 0

    def node():
        nonlocal pos
        if pos >= len(tokens):
            raise ExpressionError(f"prefix expression {' '.join(tokens)!r} ends too early")
        tok = tokens[pos]
        pos += 1
        if tok in OPS:
            return (tok, node(), node())
        if tok in PRIMITIVES:
            return ("var", tok)
        if tok in CONSTANTS:
            return ("num", float(tok))
        raise ExpressionError(f"unknown token {tok!r} in a prefix expression")

    tree = node()
    if pos != len(tokens):
        raise ExpressionError(f"prefix expression {' '.join(tokens)!r} has tokens after its end")
    return tree


class MetaOptimizer(torch.nn.Module):
    """pi_phi(tau): a small autoregressive model (GRU) over the prefix tokens of a reward expression.
    The output layer starts at zero, so the untrained policy draws uniformly among the valid next tokens:
    its samples are the random-search baseline over the same grammar."""

    def __init__(self, hidden: int = 32, max_tokens: int = 7):
        super().__init__()
        self.max_tokens = check_int("max_tokens", max_tokens, min=1)
        self.embed = torch.nn.Embedding(len(VOCAB) + 1, hidden)   # + a start token
        self.cell = torch.nn.GRUCell(hidden, hidden)
        self.out = torch.nn.Linear(hidden, len(VOCAB))
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.zeros_(self.out.bias)

    def _logits(self, tokens: list[list[str]]):
        # masked next-token log-probabilities at every position of each sequence: (B, L, V)
        B, L = len(tokens), self.max_tokens
        h = torch.zeros(B, self.cell.hidden_size)
        prev = torch.full((B,), len(VOCAB), dtype=torch.long)
        out = []
        for t in range(L):
            h = self.cell(self.embed(prev), h)
            mask = torch.tensor([valid_next(seq[:t], L) if t <= len(seq) else [False] * len(VOCAB) for seq in tokens])
            alive = mask.any(-1, keepdim=True)
            # a finished row gets an all-valid mask (no -inf rows, no NaN gradients) and log-probs of 0
            logits = self.out(h).masked_fill(~(mask | ~alive), float("-inf"))
            out.append(torch.where(alive, logits.log_softmax(-1), torch.zeros_like(logits)))
            prev = torch.tensor([VOCAB.index(seq[t]) if t < len(seq) else 0 for seq in tokens])
        return torch.stack(out, 1)

    def log_probs(self, tokens: list[list[str]]) -> torch.Tensor:
        # log pi_phi(tau_t | tau_<t) of each sampled token: (B, L), 0 after a sequence's end
        logp = self._logits(tokens)
        idx = torch.tensor([[VOCAB.index(s[t]) if t < len(s) else 0 for t in range(self.max_tokens)] for s in tokens])
        chosen = logp.gather(-1, idx[..., None]).squeeze(-1)
        lengths = torch.tensor([len(s) for s in tokens])
        return chosen * (torch.arange(self.max_tokens)[None] < lengths[:, None])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> list[list[str]]:
        # tau ~ pi_phi: n prefix sequences, each a complete expression by construction
        n = check_int("n", n, min=1)
        seqs = [[] for _ in range(n)]
        h = torch.zeros(n, self.cell.hidden_size)
        prev = torch.full((n,), len(VOCAB), dtype=torch.long)
        for t in range(self.max_tokens):
            h = self.cell(self.embed(prev), h)
            mask = torch.tensor([valid_next(s, self.max_tokens) for s in seqs])
            alive = mask.any(-1)
            if not alive.any():
                break
            probs = self.out(h).masked_fill(~mask, float("-inf")).softmax(-1)
            probs[~alive] = 1.0 / len(VOCAB)   # finished rows still draw, so the others' stream is unchanged
            pick = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            for i in range(n):
                if alive[i]:
                    seqs[i].append(VOCAB[pick[i]])
            prev = pick
        return seqs


def meta_advantages(scores, shuffle: bool = False, rng: random.Random | None = None, eps: float = 1e-6) -> torch.Tensor:
    # A_i = (s_i - mean(s)) / (std(s) + eps) over one iteration's population (the authors' outer GRPO);
    # shuffle=True is the control: the same scores, permuted across candidates before they are used
    s = [float(x) for x in scores]
    if len(s) < 2:
        raise ValueError(f"a population needs at least 2 scores; got {len(s)}")
    if shuffle:
        (rng or random.Random(0)).shuffle(s)
    s = torch.tensor(s)
    return (s - s.mean()) / (s.std() + eps)


def meta_update(meta, optimizer, tokens, advantages, ref=None, epochs: int = 4, clip: float = 0.2,
                kl_coef: float = 0.001) -> dict:
    # GRPO on the Meta-Optimizer: L = -mean_t min(rho_t A, clip(rho_t, 1 -+ eps) A) + beta KL(pi || pi_ref),
    # rho_t = pi_phi(tau_t | tau_<t) / pi_old(tau_t | tau_<t), over `epochs` passes (authors: ppo_epochs 4, k3 KL)
    epochs = check_int("epochs", epochs, min=1)
    if len(tokens) != len(advantages):
        raise ValueError(f"one advantage per sampled expression; got {len(advantages)} for {len(tokens)}")
    mask = torch.tensor([[t < len(s) for t in range(meta.max_tokens)] for s in tokens], dtype=torch.float32)
    A = torch.as_tensor(advantages, dtype=torch.float32)[:, None]
    with torch.no_grad():
        old = meta.log_probs(tokens)
        ref_lp = ref.log_probs(tokens) if ref is not None else None
    for _ in range(epochs):
        logp = meta.log_probs(tokens)
        rho = (logp - old).exp()
        loss_t = -torch.min(rho * A, rho.clamp(1 - clip, 1 + clip) * A)
        if ref_lp is not None and kl_coef:
            d = ref_lp - logp   # k3 = exp(d) - d - 1 >= 0 (verl's low_var_kl)
            loss_t = loss_t + kl_coef * (d.exp() - d - 1)
        loss = (loss_t * mask).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {"loss": loss.item()}


def accuracy(policy, tasks, samples: int, seed: int, max_new_tokens: int = 6) -> float:
    # acc = E_x E_{y ~ pi(.|x), T=1} 1[verify(x, y)], `samples` answers per task, a fixed generator
    g = torch.Generator(device=policy.model.device).manual_seed(seed)
    rows = [t for t in tasks for _ in range(samples)]
    out = rollout(policy, [t.prompt for t in rows], max_new_tokens, 1.0, generator=g).completions
    return sum(verify(t, y).correct for t, y in zip(rows, out)) / len(rows)


def inner_run(base, text: str, seed: int, steps: int, prompts: int, lr: float, category: str = "add",
              difficulty: int = 3, group_size: int = 8, max_new_tokens: int = 6):
    """The inner loop: a copy of the base trained by GRPO for `steps` steps with the reward r = f_phi(g(x, y))
    of expression `text`. `seed` fixes the training problems and the samples, so two expressions scored with
    one seed meet the same problems. Returns the trained policy and its mean training accuracy."""
    fn = reward_fn(text)
    steps, prompts = check_int("steps", steps, min=1), check_int("prompts", prompts, min=1)
    lr = check_float("lr", lr, gt=0)
    policy = copy.deepcopy(base)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    g = torch.Generator(device=policy.model.device).manual_seed(seed)
    cfg = RLConfig(group_size=group_size, max_new_tokens=max_new_tokens)
    acc = []
    for _ in range(steps):
        tasks = [sample_task(category, difficulty, rng) for _ in range(prompts)]
        acc.append(grpo_step(policy, optimizer, tasks, cfg, reward_fn=fn, generator=g).metrics["acc"])
    return policy, sum(acc) / len(acc)


class InnerRuns:
    """Scores reward expressions by inner runs, cached by (canonical expression, seed index): an expression met
    twice with one seed is trained once. Each entry: validation accuracy (the meta-reward), test accuracy
    (measured, never used to choose) and the mean training accuracy."""

    def __init__(self, base, val_tasks, test_tasks, seeds, steps, prompts, lr, val_samples=2, test_samples=8,
                 eval_seed=0, **task):
        self.base, self.val, self.test, self.seeds = base, list(val_tasks), list(test_tasks), list(seeds)
        self.steps, self.prompts, self.lr, self.task = steps, prompts, lr, task
        self.val_samples, self.test_samples, self.eval_seed = val_samples, test_samples, eval_seed
        self.cache, self.trained = {}, 0

    def score(self, text: str, k: int) -> dict:
        if not 0 <= k < len(self.seeds):
            raise ValueError(f"seed index {k} out of range 0..{len(self.seeds) - 1}")
        key = (render(parse(text)), k)
        if key not in self.cache:
            policy, train_acc = inner_run(self.base, text, self.seeds[k], self.steps, self.prompts, self.lr, **self.task)
            self.cache[key] = {"val": accuracy(policy, self.val, self.val_samples, self.eval_seed),
                               "test": accuracy(policy, self.test, self.test_samples, self.eval_seed + 1),
                               "train_acc": train_acc}
            self.trained += 1
        return self.cache[key]


def meta_search(runs: InnerRuns, mode: str, iterations: int, population: int, seed: int, meta_lr: float = 0.05,
                max_tokens: int = 7, epochs: int = 4, kl_coef: float = 0.001, on_iteration=None) -> list[dict]:
    """DERL's outer loop. Each iteration the Meta-Optimizer samples `population` expressions, each is scored by
    an inner run (all with the iteration's seed index), and the policy is updated by GRPO on the scores.
    mode: "derl" (the authors'), "random" (no update: the untrained policy's samples, uniform over valid tokens)
    or "shuffled" (the control: updates on scores permuted across the population). The same seed gives the
    same initial Meta-Optimizer and sampling stream in every mode. Returns one row per candidate."""
    if mode not in ("derl", "random", "shuffled"):
        raise ValueError(f"mode must be derl, random or shuffled; got {mode!r}")
    iterations, population = check_int("iterations", iterations, min=1), check_int("population", population, min=2)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        meta = MetaOptimizer(max_tokens=max_tokens)
    ref = copy.deepcopy(meta).requires_grad_(False)
    optimizer = torch.optim.Adam(meta.parameters(), lr=check_float("meta_lr", meta_lr, gt=0))
    g, rng, rows = torch.Generator().manual_seed(seed), random.Random(seed), []
    for it in range(iterations):
        tokens = meta.sample(population, g)
        texts = [render(prefix_to_tree(t)) for t in tokens]
        scores = [runs.score(x, it) for x in texts]
        rows += [{"iteration": it, "expression": x, **s} for x, s in zip(texts, scores)]
        if mode != "random":
            adv = meta_advantages([s["val"] for s in scores], shuffle=mode == "shuffled", rng=rng)
            meta_update(meta, optimizer, tokens, adv, ref, epochs, kl_coef=kl_coef)
        if on_iteration:
            on_iteration(it, rows[-population:])
    return rows


def fixed_search(runs: InnerRuns, text: str, n: int) -> list[dict]:
    # a fixed reward (outcome-only, a hand composite) given the same number of inner runs: n seeds
    return [{"iteration": k, "expression": text, **runs.score(text, k)} for k in range(check_int("n", n, min=1))]


def best(rows: list[dict]) -> dict:
    # the arm's choice: the run with the highest validation accuracy (the first on ties); its test accuracy is reported
    if not rows:
        raise ValueError("no inner runs to choose from")
    return max(rows, key=lambda r: r["val"])
