"""17 · Interaction rewards: agents that solve, criticise and score each other (CoMAS): the mechanism that notebooks/17_interaction_rewards.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import random
from dataclasses import dataclass
import torch
from labkit.core.checks import check_int
from labkit.core.grpo import RLConfig, update
from labkit.core.judge import SEP, judge_prompt, refine_prompt
from labkit.core.sampling import concat_rollouts, rollout
from labkit.core.tasks import verify


ROLES = ("solver", "critic", "scorer")
SCORES = {"y": 3, "n": 1}   # the scorer's verdict on the authors' 1-3 scale
FALLBACK_SCORE = 2          # the authors' _extract_score: an unreadable score counts as 2 (neutral)
SOLUTION_TOKENS, EVALUATION_TOKENS, SCORE_TOKENS = 8, 20, 2


def evaluation_of(text: str) -> str:
    # the critic's evaluation as the scorer reads it: its marks "fy v4930 cn", cut before any verdict, one line
    return text.split("=")[0].replace(SEP, "").replace("\n", " ").strip()[:16]


def scorer_prompt(task, solution: str, evaluation: str) -> str:
    # c ~ pi_k(. | x, a, e): the scorer reads the problem, the solution and the critique, and writes y or n
    return f"{judge_prompt(task, solution, 'rubric')}{evaluation_of(evaluation)} ="


def parse_score(text: str) -> int:
    # c in {1, 2, 3}: y -> 3, n -> 1, unreadable -> 2 (the authors' neutral fallback)
    return SCORES.get(text.strip(), FALLBACK_SCORE)


def interaction_rewards(score: int) -> tuple[float, float, float]:
    # s = (c - 1) / 2;  r_solver = s,  r_critic = 1 - s,  r_scorer = 0   (the authors' CoMASReward.run)
    if isinstance(score, bool) or score not in (1, 2, 3):
        raise ValueError(f"a score is 1, 2 or 3; got {score!r}")
    s = (score - 1) / 2
    return s, 1.0 - s, 0.0


def whiten(rewards: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    # REINFORCE++: A_o = (r_o - mu) / sigma, mu and sigma over all of one agent's tokens (|o| weights)
    rewards, w = torch.as_tensor(rewards, dtype=torch.float32), torch.as_tensor(lengths, dtype=torch.float32)
    if rewards.ndim != 1 or rewards.shape != w.shape or not len(w) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need one reward and one token count >= 0 per completion, some tokens; got "
                         f"{tuple(rewards.shape)} rewards and {tuple(w.shape)} counts")
    mu = (rewards * w).sum() / w.sum()
    var = (((rewards - mu) ** 2) * w).sum() / w.sum()
    return (rewards - mu) * var.clamp(min=eps).rsqrt()


def assign_agents(n_agents: int, n_items: int, rng: random.Random) -> list[int]:
    # who criticises (or scores) each solution: every agent equally often, in shuffled order (authors' agent_order)
    n_agents = check_int("n_agents", n_agents, min=1)
    n_items = check_int("n_items", n_items, min=0)
    if n_items % n_agents:
        raise ValueError(f"{n_items} items do not split evenly over {n_agents} agents")
    order = list(range(n_agents)) * (n_items // n_agents)
    rng.shuffle(order)
    return order


@dataclass
class Discussion:
    """One solution of one round: who solved, criticised and scored it, and what they wrote."""
    problem: int
    solver: int
    solution: str
    critic: int = -1
    evaluation: str = ""
    scorer: int = -1
    score_text: str = ""
    score: int = FALLBACK_SCORE
    correct: bool = False   # the verifier's verdict: measured, never used for training


def _by_agent(agent_of: list[int], prompts: list[str], agents, tokens: int, generator) -> dict:
    # one batched rollout per agent over the requests assigned to it: {agent: (rows, Rollout)}
    out = {}
    for a in range(len(agents)):
        rows = [i for i, who in enumerate(agent_of) if who == a]
        if rows:
            out[a] = (rows, rollout(agents[a], [prompts[i] for i in rows], tokens, 1.0, generator=generator))
    return out


def play(agents, tasks, rounds: int = 2, generator=None, rng: random.Random | None = None, coin: bool = False):
    """CoMAS's interaction on `tasks`: each round every agent solves every problem (after the first round,
    reading one earlier solution of it and its critique), a shuffled agent criticises each solution and
    another shuffled agent scores it. coin=True replaces every score by a fair coin (3 or 1): the control.
    Returns the discussions of each round and, per agent, its (role, Rollout, rewards) parts."""
    rounds = check_int("rounds", rounds, min=1)
    rng = rng or random.Random(0)
    N, P = len(agents), len(tasks)
    if N < 1 or P < 1:
        raise ValueError(f"play needs at least one agent and one task; got {N} agents and {P} tasks")
    history, parts = [], {a: [] for a in range(N)}
    for r in range(rounds):
        # solver step: discussion p * N + i is agent i's solution of problem p
        prompts = []
        for p in range(P):
            for _ in range(N):
                if r == 0:
                    prompts.append(tasks[p].prompt)
                else:   # the discussion so far: one earlier solution of this problem and its critique
                    ref = history[-1][p * N + rng.randrange(N)]
                    prompts.append(refine_prompt(tasks[p], ref.solution, ref.evaluation))
        solver_of = [i for _ in range(P) for i in range(N)]
        discussions = [None] * (P * N)
        solved = _by_agent(solver_of, prompts, agents, SOLUTION_TOKENS, generator)
        for a, (rows, batch) in solved.items():
            for n, text in zip(rows, batch.completions):
                discussions[n] = Discussion(n // N, a, text, correct=verify(tasks[n // N], text).correct)
        # critic step: e ~ pi_j(. | x, a), j from a shuffled balanced list
        critic_of = assign_agents(N, P * N, rng)
        criticised = _by_agent(critic_of, [judge_prompt(tasks[d.problem], d.solution, "rubric") for d in discussions],
                               agents, EVALUATION_TOKENS, generator)
        for a, (rows, batch) in criticised.items():
            for n, text in zip(rows, batch.completions):
                discussions[n].critic, discussions[n].evaluation = a, text.strip()
        # scorer step: c ~ pi_k(. | x, a, e), k from another shuffled list
        scorer_of = assign_agents(N, P * N, rng)
        scored = _by_agent(scorer_of, [scorer_prompt(tasks[d.problem], d.solution, d.evaluation) for d in discussions],
                           agents, SCORE_TOKENS, generator)
        for a, (rows, batch) in scored.items():
            for n, text in zip(rows, batch.completions):
                d = discussions[n]
                d.scorer, d.score_text = a, text
                # the control: a fair coin instead of the scorer's verdict (the scorer's sample is still drawn)
                d.score = (3 if rng.random() < 0.5 else 1) if coin else parse_score(text)
        # each role's rewards, in the batches of the agent that wrote them
        for role, done in zip(ROLES, (solved, criticised, scored)):
            for a, (rows, batch) in done.items():
                rewards = [interaction_rewards(discussions[n].score)[ROLES.index(role)] for n in rows]
                parts[a].append((role, batch, torch.tensor(rewards)))
        history.append(discussions)
    return history, parts


def learn(agent, optimizer, parts, cfg: RLConfig, roles=ROLES) -> dict:
    """One REINFORCE++ update of one agent on what it wrote this step in `roles` (all three: the authors')."""
    chosen = [(b, r) for role, b, r in parts if role in roles]
    if not chosen:
        raise ValueError(f"no completions of roles {roles!r} to learn from")
    batch = concat_rollouts([b for b, _ in chosen], agent.tokenizer.pad_token_id)
    advantages = whiten(torch.cat([r for _, r in chosen]), batch.completion_mask.sum(-1).cpu())
    return update(agent, optimizer, batch, advantages.to(batch.logprobs.device), cfg)


def scorer_agreement(history) -> dict:
    """The scores against the verifier (measured, never trained on): agreement of c = 3 with a right solution,
    p_plus = P(c = 3 | right), p_minus = P(c = 3 | wrong), the share of c = 3 and of unreadable scores."""
    ds = [d for rnd in history for d in rnd]
    if not ds:
        raise ValueError("no discussions to measure")
    right = [d.score == 3 for d in ds if d.correct]
    wrong = [d.score == 3 for d in ds if not d.correct]
    return {"agree": sum((d.score == 3) == d.correct for d in ds) / len(ds),
            "p_plus": sum(right) / max(len(right), 1), "p_minus": sum(wrong) / max(len(wrong), 1),
            "accept": sum(d.score == 3 for d in ds) / len(ds),
            "unreadable": sum(d.score == FALLBACK_SCORE for d in ds) / len(ds),
            "solver_acc": sum(d.correct for d in ds) / len(ds)}


def heldout_acc(agent, tasks, generator=None) -> float:
    # acc = E_x verify(x, a), a ~ pi(. | x) at temperature 1: one answer per held-out task
    answers = rollout(agent, [t.prompt for t in tasks], SOLUTION_TOKENS, 1.0, generator=generator).completions
    return sum(verify(t, a).correct for t, a in zip(tasks, answers)) / len(tasks)
