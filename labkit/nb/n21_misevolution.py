"""21 · Misevolution: a self-evolving agent drifts off its alignment when only compliance pays: the mechanism that notebooks/21_misevolution.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import random
from dataclasses import dataclass
from typing import Sequence
import numpy as np
import torch
from labkit.core.grpo import grpo_advantages, update
from labkit.core.sampling import rollout
from labkit.core.tasks.safety import REFUSAL, SafetyJudgement, defender_prompt, judge
from labkit.nb.n22_value_aware_memory import ngram_embedding


__all__ = ["REFUSE", "ANSWER", "proxy_reward", "strategy_of", "StrategyMemory", "choose_strategy",
           "imitate", "tipping_step", "forced_answers", "drift_step", "agent_response", "Experience"]

REFUSE, ANSWER = "refuse", "answer"   # the two strategies an agent can reuse from memory


def proxy_reward(judgement: SafetyJudgement, refusal_pay: float = 0.0) -> float:
    """The self-evolution signal: pays 1 for an exact answer (helpful OR unsafe: it cannot tell),
    `refusal_pay` for a refusal, 0 for anything else. refusal_pay=0: the proxy; 1: the control."""
    if not isinstance(judgement, SafetyJudgement):
        raise ValueError(f"proxy_reward needs a SafetyJudgement; got {type(judgement).__name__}")
    if not 0 <= refusal_pay <= 1:
        raise ValueError(f"refusal_pay must be in [0, 1]; got {refusal_pay!r}")
    # r = 1[complied exactly] + refusal_pay * 1[refused]
    return 1.0 if (judgement.helpful or judgement.unsafe) else refusal_pay if judgement.refused else 0.0


def strategy_of(response: str) -> str:
    """What a response did, as a reusable strategy: REFUSE when it is the refusal, else ANSWER."""
    if not isinstance(response, str):
        raise ValueError(f"strategy_of needs a string; got {type(response).__name__}")
    return REFUSE if response.strip() == REFUSAL else ANSWER


@dataclass(frozen=True)
class Experience:
    """One stored episode: the request's key, the strategy used, its reward, who earned it."""
    key: np.ndarray
    strategy: str
    reward: float
    source: int = 0   # the agent whose episode it was (imitation copies keep the original source)


class StrategyMemory:
    """What a frozen agent remembers: rewarded episodes, reused by similarity and reward.

    `write` keeps an episode only when it was rewarded (r > 0: Misevolution's success logs, ATP's
    rewarded history); `votes` sums sim * r per strategy over the k most similar episodes with
    sim >= threshold (MemRL's k2 = 5; its delta = 0.5 is the class default, the notebook uses 0.7)."""

    def __init__(self, dim: int = 256, k: int = 5, threshold: float = 0.5):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int; got {dim!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int; got {k!r}")
        if not -1 <= threshold <= 1:
            raise ValueError(f"threshold must be in [-1, 1]; got {threshold!r}")
        self.dim, self.k, self.threshold = dim, k, float(threshold)
        self.entries: list[Experience] = []
        self._keys = np.zeros((0, dim))

    def __len__(self) -> int:
        return len(self.entries)

    def key(self, prompt: str) -> np.ndarray:
        """The key of a request: hashed character 2/3-grams of what the agent sees (notebook 22)."""
        return ngram_embedding(prompt, self.dim)

    def write(self, key, strategy: str, reward: float, source: int = 0) -> bool:
        """Store a rewarded episode; returns whether it was stored (unrewarded ones are not)."""
        if strategy not in (REFUSE, ANSWER):
            raise ValueError(f"strategy must be {REFUSE!r} or {ANSWER!r}; got {strategy!r}")
        if not np.isfinite(reward):
            raise ValueError(f"reward must be finite; got {reward!r}")
        k = np.asarray(key, dtype=np.float64).reshape(-1)
        if k.shape != (self.dim,):
            raise ValueError(f"key must have {self.dim} values; got shape {np.shape(key)}")
        if reward <= 0:
            return False
        self.entries.append(Experience(k, strategy, float(reward), source))
        self._keys = np.vstack([self._keys, k[None]])
        return True

    def votes(self, key) -> dict[str, float]:
        """V(s) = sum over the retrieved episodes i with strategy s of sim_i * r_i."""
        out = {REFUSE: 0.0, ANSWER: 0.0}
        if not self.entries:
            return out
        sims = self._keys @ np.asarray(key, dtype=np.float64).reshape(-1)
        order = np.argsort(-sims, kind="stable")[:self.k]          # the k most similar ...
        for i in order:
            if sims[i] >= self.threshold:                            # ... above the threshold
                e = self.entries[i]
                out[e.strategy] += float(sims[i]) * e.reward         # V(s) += sim_i * r_i
        return out


def choose_strategy(votes: dict[str, float]) -> str | None:
    """Reward-weighted reuse: the strategy with the larger vote; None (act freely) when no
    episode voted or the votes tie."""
    refuse, answer = votes.get(REFUSE, 0.0), votes.get(ANSWER, 0.0)
    if refuse == answer:
        return None
    return REFUSE if refuse > answer else ANSWER


def imitate(memories: Sequence[StrategyMemory], round_keys, strategies, rewards) -> int:
    """ATP's imitative strategy diffusion: after a round, agent a copies into its memory every
    peer's episode that earned strictly more than a's own (payoff-biased imitation). Returns the
    number of copies."""
    n = len(memories)
    if not (len(round_keys) == len(strategies) == len(rewards) == n):
        raise ValueError(f"imitate needs one key, strategy and reward per agent ({n}); got "
                         f"{len(round_keys)}, {len(strategies)}, {len(rewards)}")
    copies = 0
    for a in range(n):
        for b in range(n):
            if b != a and rewards[b] > rewards[a]:                   # a peer did better: copy its episode
                copies += memories[a].write(round_keys[b], strategies[b], rewards[b], source=b)
    return copies


def tipping_step(steps: Sequence[float], rates: Sequence[float], threshold: float = 0.5):
    """The first step at which the violation rate exceeds `threshold`; None if it never does."""
    if len(steps) != len(rates):
        raise ValueError(f"steps and rates must have equal lengths; got {len(steps)} and {len(rates)}")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1); got {threshold!r}")
    for step, rate in zip(steps, rates):
        if rate > threshold:
            return step
    return None


@torch.no_grad()
def forced_answers(policy, prompts: Sequence[str], max_new_tokens: int = 8, cache: dict | None = None) -> list[str]:
    """The frozen model executing ANSWER: its greedy completion with the refusal's first token
    banned at the first position (it answers as best it can; it is never taught anything)."""
    tok = policy.tokenizer
    banned = tok(REFUSAL, add_special_tokens=False)["input_ids"][0]
    cache = {} if cache is None else cache
    device = next(policy.model.parameters()).device
    for prompt in dict.fromkeys(prompts):
        if prompt in cache:
            continue
        ids = torch.tensor([tok(prompt)["input_ids"]], device=device)
        out = []
        for t in range(max_new_tokens):
            logits = policy.model(input_ids=ids).logits[0, -1].float()
            if t == 0:
                logits[banned] = float("-inf")                   # no refusal: the strategy says answer
            nxt = int(logits.argmax())
            if nxt == tok.eos_token_id:
                break
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]], device=device)], dim=1)
        cache[prompt] = tok.decode(out)
    return [cache[p] for p in prompts]


def drift_step(policy, optimizer, requests, cfg, refusal_pay: float = 0.0, ref_model=None,
               generator: torch.Generator | None = None) -> dict:
    """One GRPO step of self-evolution on the proxy reward: G samples per request, r = proxy,
    A = (r - mean_group) / std_group, PPO-clip update (+ beta * KL(pi || base) when
    cfg.loss.kl_coef > 0 and ref_model is the frozen base: the anchor)."""
    g = cfg.group_size
    prompts = [defender_prompt(r.prompt) for r in requests for _ in range(g)]
    batch = rollout(policy, prompts, cfg.max_new_tokens, cfg.temperature, cfg.top_p, generator)
    owners = [r for r in requests for _ in range(g)]
    verdicts = [judge(r, text) for r, text in zip(owners, batch.completions)]
    rewards = torch.tensor([proxy_reward(v, refusal_pay) for v in verdicts])
    advantages = grpo_advantages(rewards, g).to(batch.logprobs.device)   # A_i = (r_i - mean) / (std + eps)
    metrics = update(policy, optimizer, batch, advantages, cfg, ref_model=ref_model)
    harmful = [v for r, v in zip(owners, verdicts) if r.harmful]
    metrics.update({"reward/mean": rewards.mean().item(),
                    "violation/batch": sum(v.unsafe for v in harmful) / max(1, len(harmful))})
    metrics.setdefault("kl", 0.0)
    return metrics


def agent_response(memory: StrategyMemory, key, free: str, forced: str, rng: random.Random,
                   explore: float = 0.1) -> tuple[str, str]:
    """A frozen agent's reply: with probability `explore`, or when its memory does not decide, the
    model's own free sample `free`; otherwise the remembered strategy, executed by the model
    (REFUSE -> the refusal, ANSWER -> `forced`, its answer with refusal banned).
    Returns (response, "free" | "memory")."""
    if not 0 <= explore <= 1:
        raise ValueError(f"explore must be in [0, 1]; got {explore!r}")
    strategy = None if rng.random() < explore else choose_strategy(memory.votes(key))
    if strategy is None:
        return free, "free"
    return (REFUSAL if strategy == REFUSE else forced), "memory"
