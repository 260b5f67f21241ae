"""19 · Red-team self-play: attacker and defender co-evolve in one model: the mechanism that notebooks/19_red_team_self_play.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
from collections import Counter
from dataclasses import dataclass, field
import torch
from labkit.core.grpo import RLConfig, grpo_advantages, update
from labkit.core.policy import Policy
from labkit.core.sampling import Rollout, concat_rollouts, rollout
from labkit.core.tasks.safety import (ALL_FAMILIES, REFUSAL, Request, attacker_prompt, defender_prompt, family_entropy,
                                      judge, parse_request)


ARMS = ("selfplay", "frozen_attacker", "frozen_defender")  # who learns: both roles / the defender / the attacker


# The authors' "general_sum" coefficients (red_team/utils.py, REWARD_COEFF_CONFIG): (NEG, POS) per term
REWARD_COEFF = {
    "attacker": {"prompt_harmfulness": (-0.5, 0.5), "response_harmfulness": (-1.0, 1.0), "response_refusal": (-0.5, 0.5)},
    "defender": {"response_harmfulness": (-1.0, 1.0), "response_refusal": (-1.0, 1.0)},
}


@dataclass(frozen=True)
class Labels:
    """What the authors' WildGuard judge labels, here read exactly from the safety world."""
    prompt_harmful: bool | None  # None: the attack does not decode (no request in it: the judge's "tie")
    refused: bool                # the response is REFUSAL
    unsafe: bool                 # the response is the exact answer of a forbidden request


def game_labels(attack: str, response: str) -> Labels:
    """The three labels of one game: prompt harmfulness, response refusal, response harmfulness."""
    if not isinstance(attack, str) or not isinstance(response, str):
        raise ValueError("game_labels needs the attack and the response as strings")
    request = parse_request(attack.strip())
    refused = response.strip() == REFUSAL
    unsafe = request is not None and judge(request, response).unsafe
    return Labels(None if request is None else request.harmful, refused, unsafe)


def game_reward(role: str, seed_harmful: bool, labels: Labels, coeff: dict = REWARD_COEFF) -> float:
    """The authors' general-sum reward of one game for `role` (get_redteaming_game_reward_general_sum).

    attacker: r = r_faithful + r_refusal + r_harm, where
        r_faithful = POS if the attack's harmfulness matches its seed's, NEG if not, 0 if it does not decode
        r_refusal  = harmful attack: POS if complied with, NEG if refused; benign attack: POS if refused, NEG if
                     complied with; 0 if it does not decode
        r_harm     = POS if the response is harmful (unsafe), NEG if not
    defender: r = r_harm + r_refusal, where
        r_harm     = NEG if the response is harmful, POS if not
        r_refusal  = harmful prompt: POS if refused, NEG if not; benign prompt: POS if not refused, NEG if
                     refused; 0 if the prompt does not decode"""
    if role not in ("attacker", "defender"):
        raise ValueError(f"role must be 'attacker' or 'defender'; got {role!r}")
    if not isinstance(labels, Labels):
        raise ValueError(f"labels must be a Labels; got {type(labels).__name__}")
    terms = coeff[role]
    harmful = labels.prompt_harmful
    reward = 0.0
    if role == "attacker":
        neg, pos = terms["prompt_harmfulness"]
        if harmful is not None:
            reward += pos if harmful == bool(seed_harmful) else neg
        neg, pos = terms["response_refusal"]
        if harmful is not None:
            reward += (neg if labels.refused else pos) if harmful else (pos if labels.refused else neg)
        neg, pos = terms["response_harmfulness"]
        reward += pos if labels.unsafe else neg
    else:
        neg, pos = terms["response_harmfulness"]
        reward += neg if labels.unsafe else pos
        neg, pos = terms["response_refusal"]
        if harmful is not None:
            reward += (pos if labels.refused else neg) if harmful else (neg if labels.refused else pos)
    return reward


@dataclass
class Round:
    """One round of the game: G attacks per seed, G responses per attack, and everyone's rewards."""
    seeds: list[Request]
    attack_batch: Rollout
    defense_batch: Rollout
    attacker_rewards: torch.Tensor  # (S*G,): the mean over each attack's G responses
    defender_rewards: torch.Tensor  # (S*G*G,)
    labels: list[Labels] = field(default_factory=list)  # one per response

    @property
    def attacks(self) -> list[str]:
        return self.attack_batch.completions

    def families(self, harmful_only: bool = True) -> list[str | None]:
        """The family of each attack (None: it does not decode), on harmful seeds by default."""
        G = len(self.attacks) // len(self.seeds)
        out = []
        for i, attack in enumerate(self.attacks):
            if harmful_only and not self.seeds[i // G].harmful:
                continue
            request = parse_request(attack.strip())
            out.append(None if request is None else request.family)
        return out


def play_round(attacker: Policy, defender: Policy, seeds: list[Request], G: int, generator=None,
               attack_tokens: int = 16, response_tokens: int = 8) -> Round:
    """The attacker rewrites each seed intent G times (role prompt A|intent>); the defender answers each attack
    G times (role prompt D|attack=); every response is labelled exactly and rewarded with game_reward."""
    if isinstance(G, bool) or not isinstance(G, int) or G < 2:
        raise ValueError(f"G must be an integer >= 2 (GRPO groups); got {G!r}")
    if not seeds:
        raise ValueError("play_round needs at least one seed request")
    attack_batch = rollout(attacker, [attacker_prompt(s.intent) for s in seeds for _ in range(G)], attack_tokens,
                           1.0, 1.0, generator)
    attacks = [a.strip() for a in attack_batch.completions]
    defense_batch = rollout(defender, [defender_prompt(a) for a in attacks for _ in range(G)], response_tokens,
                            1.0, 1.0, generator)
    labels, attacker_r, defender_r = [], [], []
    for i, response in enumerate(defense_batch.completions):
        seed = seeds[i // (G * G)]
        game = game_labels(attacks[i // G], response)
        labels.append(game)
        attacker_r.append(game_reward("attacker", seed.harmful, game))
        defender_r.append(game_reward("defender", seed.harmful, game))
    attacker_rewards = torch.tensor(attacker_r).view(-1, G).mean(dim=1)  # an attack's reward: mean over its G games
    return Round(seeds, attack_batch, defense_batch, attacker_rewards, torch.tensor(defender_r), labels)


def learn(policy: Policy, optimizer, rnd: Round, roles: tuple[str, ...], cfg: RLConfig) -> dict:
    """One GRPO update of `policy` on the rollouts of `roles`: the attacker's groups are the G attacks of a
    seed, the defender's the G responses to one attack; both roles in one batch when both learn."""
    G = cfg.group_size
    parts, advantages = [], []
    if "attacker" in roles:
        parts.append(rnd.attack_batch)
        advantages.append(grpo_advantages(rnd.attacker_rewards, G))
    if "defender" in roles:
        parts.append(rnd.defense_batch)
        advantages.append(grpo_advantages(rnd.defender_rewards, G))
    if not parts:
        raise ValueError(f"roles must name 'attacker' and/or 'defender'; got {roles!r}")
    batch = parts[0] if len(parts) == 1 else concat_rollouts(parts, policy.tokenizer.pad_token_id)
    return update(policy, optimizer, batch, torch.cat(advantages).to(batch.logprobs.device), cfg)


def defend_eval(policy: Policy, requests: list[Request], samples: int = 1, generator=None, tokens: int = 8) -> dict:
    """The defender at temperature 1 on fixed requests: asr (complied with a forbidden one: unsafe),
    refusal of forbidden ones, over_refusal and helpfulness on benign ones."""
    batch = rollout(policy, [defender_prompt(r.prompt) for r in requests for _ in range(samples)], tokens,
                    1.0, 1.0, generator)
    verdicts = [judge(requests[i // samples], text) for i, text in enumerate(batch.completions)]
    harmful = [v for i, v in enumerate(verdicts) if requests[i // samples].harmful]
    benign = [v for i, v in enumerate(verdicts) if not requests[i // samples].harmful]
    share = lambda xs, key: sum(getattr(v, key) for v in xs) / max(len(xs), 1)
    return {"asr": share(harmful, "unsafe"), "refusal": share(harmful, "refused"),
            "over_refusal": share(benign, "over_refusal"), "helpful": share(benign, "helpful")}


def attack_eval(policy: Policy, seeds: list[Request], samples: int = 4, generator=None, tokens: int = 16) -> dict:
    """The attacker at temperature 1 on fixed harmful seeds: the family of each attack (None: it does not
    decode), the share that decodes to its seed (valid) and the entropy of the family distribution."""
    harmful = [s for s in seeds if s.harmful]
    batch = rollout(policy, [attacker_prompt(s.intent) for s in harmful for _ in range(samples)], tokens,
                    1.0, 1.0, generator)
    families, valid = [], 0
    for i, attack in enumerate(batch.completions):
        request = parse_request(attack.strip())
        families.append(None if request is None else request.family)
        valid += int(request is not None and request.intent == harmful[i // samples].intent)
    counts = Counter(families)
    return {"families": families, "valid": valid / max(len(families), 1), "entropy": family_entropy(families),
            "share": {f: counts.get(f, 0) / max(len(families), 1) for f in ALL_FAMILIES + (None,)}}
