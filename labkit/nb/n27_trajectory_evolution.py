"""27 · Trajectory evolution: revision, recombination and refinement of trajectories (SE-Agent): the mechanism that notebooks/27_trajectory_evolution.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import math
import random
import re
from collections import Counter
from labkit.core.checks import check_choice, check_float, check_int
from labkit.core.sampling import rollout
from labkit.core.tasks import verify
from labkit.core.tasks.countdown import evaluate, parse_prompt


OPERATORS = ("revision", "recombination", "refinement")
REVISIONS = ("alternative", "repair")
_STEP = re.compile(r"([+*-]?)(0|[1-9][0-9]*)")


def steps(expression: str) -> list[str]:
    # a trajectory's steps, read left to right while well formed: "10*9-7" -> ["10", "*9", "-7"]
    out, pos = [], 0
    text = expression.strip()
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None or bool(m.group(1)) != bool(out):
            break
        out.append(m.group(0))
        pos = m.end()
    return out


def _numbers_ops(step_list: list[str]) -> tuple[list[int], list[str]]:
    return [int(s.lstrip("+*-")) for s in step_list], [s[0] for s in step_list[1:]]


def distances(task, expression: str) -> list[int]:
    # d_k = |v(s_1..k) - T| for k = 0..L, d_0 = T (nothing written yet); * before + and -, as the verifier reads it
    _, target = parse_prompt(task.prompt)
    numbers, ops = _numbers_ops(steps(expression))
    return [abs(target)] + [abs(evaluate(numbers[:k], ops[:k - 1]) - target) for k in range(1, len(numbers) + 1)]


def score(task, expression: str) -> float:
    # sigma(tau) = 1 if verify(x, tau); else 1/2 (1 - min(1, d_L / T)) * lambda, lambda = 1/2 if a number is not given
    if verify(task, expression).correct:
        return 1.0
    given, target = parse_prompt(task.prompt)
    step_list = steps(expression)
    if len(step_list) < 2 or "".join(step_list) != expression.strip():
        return 0.0
    numbers, ops = _numbers_ops(step_list)
    closeness = 1.0 - min(1.0, abs(evaluate(numbers, ops) - target) / max(abs(target), 1))
    legal = not Counter(numbers) - Counter(given)
    return 0.5 * closeness * (1.0 if legal else 0.5)


def revise(task, parent: str, pool, rng: random.Random, signal: bool = True, mode: str = "alternative") -> str:
    # revision. alternative (the authors' alternative_strategy): an opening number n* no pool trajectory opened with
    # repair: keep s_1..c*-1, c* = argmax_{k>=2} (d_k - d_{k-1}), the step that hurt most (none hurt: drop the last)
    mode = check_choice("mode", mode, REVISIONS)
    if mode == "alternative":
        given, _ = parse_prompt(task.prompt)
        if not signal:
            return str(rng.choice(given))
        opened = Counter(int(s[0]) for s in map(steps, pool) if s)
        return str(min(dict.fromkeys(given), key=lambda n: (opened[n], rng.random())))
    s = steps(parent)
    if len(s) <= 1:
        return ""
    if not signal:
        return "".join(s[:rng.randrange(len(s))])
    d = distances(task, parent)
    worst, k = max(((d[k] - d[k - 1], k) for k in range(2, len(s) + 1)), key=lambda h: (h[0], -h[1]))
    return "".join(s[:k - 1] if worst > 0 else s[:-1])


def recombine(task, a: str, b: str, rng: random.Random, signal: bool = True) -> str:
    # recombination: p = s^A_1..i + s^B_j, i = argmin_k d_k(A) (A's most promising prefix),
    # j = argmax_j (d_{j-1}(B) - d_j(B)) (B's best move) among B's moves whose number is still free
    sa, sb = steps(a), steps(b)
    if not sa:
        return ""
    given, _ = parse_prompt(task.prompt)
    if signal:
        da, db = distances(task, a), distances(task, b)
        i = min(range(1, len(sa) + 1), key=lambda k: (da[k], -k))
        moves = sorted(range(1, len(sb) + 1), key=lambda j: (db[j] - db[j - 1], j))
    else:
        i = rng.randint(1, len(sa))
        moves = rng.sample(range(1, len(sb) + 1), len(sb))
    head = sa[:i]
    free = Counter(given) - Counter(_numbers_ops(head)[0])
    for j in moves:
        move = sb[j - 1] if j > 1 else "+" + sb[0]   # B's opening number joins with +
        if free[int(move[1:])] > 0:
            return "".join(head) + move
    return "".join(head)


def refine(task, best: str, rng: random.Random, signal: bool = True) -> str:
    # refinement: restart from the pool's best trajectory tau* at its most promising prefix, i = argmin_k d_k(tau*)
    s = steps(best)
    if not s:
        return ""
    if not signal:
        return "".join(s[:rng.randint(0, len(s))])
    d = distances(task, best)
    return "".join(s[:min(range(1, len(s) + 1), key=lambda k: (d[k], -k))])


def continue_from(policy, tasks, prefixes, generator=None, max_new_tokens: int = 20, batch_size: int = 1024):
    # one model call per row: tau = p + c, c ~ pi(. | x, p) at T = 1; returns (trajectories, sampled tokens)
    if len(prefixes) != len(tasks):
        raise ValueError(f"continue_from needs one prefix per task; got {len(prefixes)} for {len(tasks)}")
    out, tokens = [], 0
    for start in range(0, len(tasks), batch_size):
        part = range(start, min(start + batch_size, len(tasks)))
        batch = rollout(policy, [tasks[i].prompt + prefixes[i] for i in part], max_new_tokens, 1.0, generator=generator)
        out += [prefixes[i] + c for i, c in zip(part, batch.completions)]
        tokens += int(batch.completion_mask.sum())
    return out, tokens


class Search:
    """Every trajectory of every problem in the order its model call was made, with its score;
    `calls()` and `tokens` are the spend. A generic record of a population search."""

    def __init__(self, tasks):
        self.tasks = list(tasks)
        self.trajectories = [[] for _ in self.tasks]
        self.scores = [[] for _ in self.tasks]
        self.tokens = 0

    def add(self, i: int, trajectory: str) -> float:
        s = score(self.tasks[i], trajectory)
        self.trajectories[i].append(trajectory)
        self.scores[i].append(s)
        return s

    def solved(self, i: int) -> bool:
        return 1.0 in self.scores[i]

    def calls(self) -> int:
        return sum(map(len, self.trajectories))

    def first_solve(self, i: int) -> int | None:
        # the calls spent on problem i when it was first solved (None: not within its calls)
        return self.scores[i].index(1.0) + 1 if self.solved(i) else None

    def solve_rate(self, budget: int) -> float:
        # solve@b: the share of problems with a verified trajectory among their first b calls
        return sum(f is not None and f <= budget for f in map(self.first_solve, range(len(self.tasks)))) / len(self.tasks)


def best_of_n(policy, tasks, budget: int, generator=None, max_new_tokens: int = 20) -> Search:
    # best-of-N: N = budget independent samples tau ~ pi(. | x)
    budget = check_int("budget", budget, min=1)
    search = Search(tasks)
    rows = [i for i in range(len(tasks)) for _ in range(budget)]
    trajs, search.tokens = continue_from(policy, [tasks[i] for i in rows], [""] * len(rows), generator, max_new_tokens)
    for i, t in zip(rows, trajs):
        search.add(i, t)
    return search


def evolve(policy, tasks, budget: int, pool_size: int = 4, children: int = 4, operators=OPERATORS,
           signal: bool = True, revision: str = "alternative", generator=None, rng: random.Random | None = None,
           max_new_tokens: int = 20) -> Search:
    # SE-Agent: pool_size pilot trajectories, then generations of `children` offspring, one call each, made by the
    # operators in turn; refinement's selection keeps the pool_size best distinct trajectories.
    # signal=False is the control: the pool shuffled, cut points and survivors drawn at random (sigma unused).
    budget = check_int("budget", budget, min=1)
    pool_size = check_int("pool_size", pool_size, min=1)
    children = check_int("children", children, min=1)
    revision = check_choice("revision", revision, REVISIONS)
    operators = tuple(operators)
    if not operators or any(op not in OPERATORS for op in operators):
        raise ValueError(f"operators must be a non-empty subset of {OPERATORS}; got {operators}")
    rng = rng or random.Random(0)
    search = Search(tasks)
    used = min(pool_size, budget)
    rows = [i for i in range(len(tasks)) for _ in range(used)]
    trajs, search.tokens = continue_from(policy, [tasks[i] for i in rows], [""] * len(rows), generator, max_new_tokens)
    for i, t in zip(rows, trajs):
        search.add(i, t)
    pools = [list(dict.fromkeys(search.trajectories[i])) for i in range(len(tasks))]
    while used < budget:
        n = min(children, budget - used)
        used += n
        rows, prefixes = [], []
        for i, task in enumerate(tasks):
            if search.solved(i):
                continue   # a verified trajectory ends the search of this problem
            pool = pools[i]
            ranked = sorted(pool, key=lambda t: -score(task, t)) if signal else rng.sample(pool, len(pool))
            count = Counter()
            for k in range(n):
                op = operators[k % len(operators)]
                r = count[op]
                count[op] += 1
                if op == "revision":
                    prefix = revise(task, ranked[r % len(ranked)], pool, rng, signal, revision)
                elif op == "recombination":
                    prefix = recombine(task, ranked[r % len(ranked)], ranked[(r + 1) % len(ranked)], rng, signal)
                else:
                    prefix = refine(task, ranked[0], rng, signal)
                rows.append(i)
                prefixes.append(prefix)
        if not rows:
            break
        trajs, tokens = continue_from(policy, [tasks[i] for i in rows], prefixes, generator, max_new_tokens)
        search.tokens += tokens
        for i, t in zip(rows, trajs):
            search.add(i, t)
        for i in dict.fromkeys(rows):
            candidates = list(dict.fromkeys(pools[i] + search.trajectories[i][-n:]))
            if signal:
                # P <- top_|P| sigma over the distinct trajectories of P and the offspring
                pools[i] = sorted(candidates, key=lambda t: -score(tasks[i], t))[:pool_size]
            else:
                pools[i] = rng.sample(candidates, min(pool_size, len(candidates)))
    return search


class Node:
    """A step prefix in the MCTS tree: N visits, W summed scores, expansions made from it."""

    def __init__(self, prefix: str, depth: int, terminal: bool = False):
        self.prefix, self.depth, self.terminal = prefix, depth, terminal
        self.children: dict[str, Node] = {}
        self.visits, self.value, self.expansions = 0, 0.0, 0


def uct(parent: Node, child: Node, c: float) -> float:
    # UCT(a) = W(a) / N(a) + c sqrt(ln N(parent) / N(a))
    return child.value / child.visits + c * math.sqrt(math.log(parent.visits) / child.visits)


def mcts(policy, tasks, budget: int, width: int = 3, c: float = 1.0, generator=None, max_new_tokens: int = 20) -> Search:
    # MCTS over step prefixes: select by UCT down to a node expanded fewer than `width` times, expand it with one
    # call (a full rollout from its prefix; its next step becomes a child), back sigma(tau) up the path
    budget = check_int("budget", budget, min=1)
    width = check_int("width", width, min=1)
    c = check_float("c", c, min=0)
    search = Search(tasks)
    roots = [Node("", 0) for _ in tasks]
    sizes = [len(parse_prompt(t.prompt)[0]) for t in tasks]
    for _ in range(budget):
        rows, paths = [], []
        for i, root in enumerate(roots):
            if search.solved(i):
                continue
            path = [root]
            while path[-1].expansions >= width:
                open_ = [ch for ch in path[-1].children.values() if not ch.terminal]
                if not open_:
                    break   # nothing below to grow: expand here again
                path.append(max(open_, key=lambda ch: uct(path[-1], ch, c)))
            rows.append(i)
            paths.append(path)
        if not rows:
            break
        trajs, tokens = continue_from(policy, [tasks[i] for i in rows], [p[-1].prefix for p in paths], generator,
                                      max_new_tokens)
        search.tokens += tokens
        for i, path, t in zip(rows, paths, trajs):
            s = search.add(i, t)
            node = path[-1]
            node.expansions += 1
            full = steps(t)
            if len(full) > node.depth and full[:node.depth] == steps(node.prefix):
                step = full[node.depth]
                if step not in node.children:
                    node.children[step] = Node(node.prefix + step, node.depth + 1, node.depth + 1 >= sizes[i])
                path = path + [node.children[step]]
            for n in path:
                # back-up: N += 1, W += sigma(tau) on the path
                n.visits += 1
                n.value += s
    return search
