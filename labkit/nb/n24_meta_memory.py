"""24 · Meta-memory: evolving the memory architecture, and long-term memory per user: the mechanism that notebooks/24_meta_memory.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import random
from dataclasses import dataclass, replace
import numpy as np
import torch
from labkit.bases.pretrain import encode_batch
from labkit.bases.mixtures.cases import (PROCEDURES, answer_for, executor_prompt, format_case, prompt_for,
                                         random_payload)

__all__ = ["Genome", "GENES", "random_genome", "mutate", "MemorySystem", "run_stream", "tournament",
           "random_search", "Interaction", "make_users", "kind_of", "interact", "retrieve_cases", "lora_sft",
           "follows", "PROCEDURES", "executor_prompt", "format_case", "random_payload"]   # the last four: the base's case format (labkit.bases.mixtures.cases)

SLOTS = 7   # a task of notebook 23's world: 4 surface tokens, its feature, 2 noise tokens
# EvolveLab's design space, small: encode (which slots an experience keeps), store (FIFO capacity, 0 = all),
# retrieve (how many entries vote), manage (none | prune the entries that misled | dedup equal keys)
GENES = {"capacity": (8, 32, 128, 0), "k": (1, 3, 5, 9), "manage": ("none", "prune", "dedup")}


@dataclass(frozen=True)
class Genome:
    """A memory architecture Omega = (encode, store, retrieve, manage) as a genome."""
    mask: tuple            # encode: 7 booleans, the slots an experience's key keeps (at least one)
    capacity: int = 0      # store: FIFO capacity (0 = keep everything)
    k: int = 5             # retrieve: the most similar entries that vote
    manage: str = "none"   # manage: none | prune | dedup

    def __post_init__(self):
        if len(self.mask) != SLOTS or not any(self.mask):
            raise ValueError(f"Genome: mask must have {SLOTS} booleans, at least one true; got {self.mask!r}")
        for gene in GENES:
            if getattr(self, gene) not in GENES[gene]:
                raise ValueError(f"Genome: {gene} must be one of {GENES[gene]}; got {getattr(self, gene)!r}")

    @property
    def slots(self):
        return tuple(j for j, m in enumerate(self.mask) if m)

    def __str__(self):
        return f"slots {''.join(map(str, self.slots))} cap {self.capacity or 'all'} k {self.k} {self.manage}"


def random_genome(rng: random.Random) -> Genome:
    """A genome drawn uniformly from the design space (the random-search proposal)."""
    while True:
        mask = tuple(rng.random() < 0.5 for _ in range(SLOTS))
        if any(mask):
            return Genome(mask, *(rng.choice(GENES[g]) for g in GENES))


def mutate(genome: Genome, rng: random.Random, creativity: float = 0.5) -> Genome:
    """A candidate designed from the base: each of the four modules changes with probability
    ``creativity`` (at least one does); encode flips one slot, the others take another value."""
    if not 0 < creativity <= 1:
        raise ValueError(f"mutate: creativity must be in (0, 1]; got {creativity}")
    modules = ["mask", *GENES]
    change = [m for m in modules if rng.random() < creativity] or [rng.choice(modules)]
    new = {}
    for m in change:
        if m == "mask":
            while True:
                flip = rng.randrange(SLOTS)
                mask = tuple(b != (j == flip) for j, b in enumerate(genome.mask))
                if any(mask):
                    break
            new["mask"] = mask
        else:
            new[m] = rng.choice([v for v in GENES[m] if v != getattr(genome, m)])
    return replace(genome, **new)


class MemorySystem:
    """One memory system built from a genome: encode -> store -> retrieve -> manage."""

    def __init__(self, genome: Genome, n_actions: int = 4):
        self.genome, self.n_actions = genome, n_actions
        self.keys: list[tuple] = []
        self.actions: list[int] = []

    def __len__(self):
        return len(self.keys)

    def encode(self, tokens) -> tuple:
        if len(tokens) != SLOTS:
            raise ValueError(f"MemorySystem: a task has {SLOTS} slots; got {len(tokens)}")
        return tuple(int(tokens[j]) for j in self.genome.slots)

    def store(self, tokens, action: int) -> None:
        key = self.encode(tokens)
        if self.genome.manage == "dedup":      # manage: an equal key replaces the older entry
            keep = [i for i, old in enumerate(self.keys) if old != key]
            self.keys, self.actions = [self.keys[i] for i in keep], [self.actions[i] for i in keep]
        self.keys.append(key)
        self.actions.append(int(action))
        if self.genome.capacity and len(self.keys) > self.genome.capacity:   # store: FIFO
            del self.keys[0], self.actions[0]

    def retrieve(self, tokens):
        """(action or None, indices): the k most similar entries (similarity = equal kept slots, > 0; the
        newest first among equals) vote, weighted by similarity."""
        if not self.keys:
            return None, []
        q = np.asarray(self.encode(tokens))
        sim = (np.asarray(self.keys) == q).sum(1)
        order = np.argsort(-sim[::-1], kind="stable")[: self.genome.k]
        idx = [len(sim) - 1 - int(i) for i in order if sim[len(sim) - 1 - int(i)] > 0]
        if not idx:
            return None, []
        # a = argmax_a sum_{i in top_k} sim_i 1[a_i = a]
        votes = np.bincount([self.actions[i] for i in idx], weights=sim[idx].astype(float), minlength=self.n_actions)
        return int(np.argmax(votes)), idx

    def manage(self, used, answer: int) -> int:
        """After the outcome: ``prune`` deletes the retrieved entries whose action was not the answer."""
        if self.genome.manage != "prune":
            return 0
        drop = {i for i in used if self.actions[i] != answer}
        self.keys = [key for i, key in enumerate(self.keys) if i not in drop]
        self.actions = [a for i, a in enumerate(self.actions) if i not in drop]
        return len(drop)


def run_stream(genome: Genome, tasks, seed: int = 0, n_actions: int = 4) -> float:
    """The inner loop: a fresh memory meets the task stream; first-try success, mean over the stream.
    A task without a retrieved action gets a random guess (the same guesses for every genome)."""
    if not tasks:
        raise ValueError("run_stream: the stream is empty")
    memory, rng = MemorySystem(genome, n_actions), np.random.default_rng(seed)
    wins = 0
    for x in tasks:
        guess = int(rng.integers(n_actions))
        a, used = memory.retrieve(x.tokens)
        a = guess if a is None else a
        wins += a == x.answer
        memory.manage(used, x.answer)
        memory.store(x.tokens, x.answer)       # the trajectory ends with the solving action
    return wins / len(tasks)


def tournament(base: Genome, fitness, new_batch, rounds: int = 3, n_systems: int = 3, top_t: int = 2,
               batch_x: int = 40, extra_y: int = 20, creativity: float = 0.5, rng: random.Random | None = None,
               shuffle: bool = False):
    """MemEvolve's auto-evolve: each round, n_systems candidates designed from the base; the n + 1 systems
    are scored on the same x tasks; the top t meet in finals on y tasks sampled from that batch plus x
    new ones; the finals' winner is the next base. ``shuffle``: the control, scores permuted at random
    before every selection (the signal removed, the procedure kept).
    Returns (winner, history, tasks spent); history holds one dict per round."""
    if rounds < 1 or n_systems < 1 or not 1 <= top_t <= n_systems + 1 or batch_x < 1 or not 0 <= extra_y <= batch_x:
        raise ValueError(f"tournament: need rounds, n_systems, batch_x >= 1, 1 <= top_t <= n_systems + 1, "
                         f"0 <= extra_y <= batch_x; got {rounds}, {n_systems}, {top_t}, {batch_x}, {extra_y}")
    rng = rng or random.Random(0)
    spent, history = 0, []
    for _ in range(rounds):
        systems = [base] + [mutate(base, rng, creativity) for _ in range(n_systems)]
        batch = new_batch(batch_x)
        scores = [fitness(g, batch) for g in systems]
        spent += len(systems) * len(batch)
        ranked = rng.sample(scores, len(scores)) if shuffle else scores
        top = sorted(range(len(systems)), key=lambda i: -ranked[i])[:top_t]      # the base first among equals
        finals_batch = rng.sample(batch, extra_y) + new_batch(batch_x)
        finals = [fitness(systems[i], finals_batch) for i in top]
        spent += len(top) * len(finals_batch)
        ranked = rng.sample(finals, len(finals)) if shuffle else finals
        base = systems[top[max(range(len(top)), key=lambda j: ranked[j])]]
        history.append({"systems": systems, "scores": scores, "finalists": top, "finals": finals, "winner": base})
    return base, history, spent


def random_search(fitness, new_batch, budget: int, batch_x: int = 40, rng: random.Random | None = None):
    """Random search at an equal number of evaluated tasks: budget // batch_x uniform genomes, each scored
    on its own x tasks; the best is kept. Returns (winner, [(genome, score)], tasks spent)."""
    if batch_x < 1 or budget < batch_x:
        raise ValueError(f"random_search: need 1 <= batch_x <= budget; got {batch_x}, {budget}")
    rng = rng or random.Random(0)
    tried = [(g, fitness(g, new_batch(batch_x))) for g in (random_genome(rng) for _ in range(budget // batch_x))]
    best = max(range(len(tried)), key=lambda i: tried[i][1])   # the first among equals
    return tried[best][0], tried, len(tried) * batch_x


@dataclass(frozen=True)
class Interaction:
    """One interaction of a user: a 4-digit request, the procedure the user wanted, the accepted response."""
    payload: str
    procedure: str

    @property
    def response(self) -> str:
        # what the base writes: the plan (the procedure's prompt) and its answer, "84+31=115"
        return prompt_for(self.procedure, self.payload) + answer_for(self.procedure, self.payload)


def kind_of(payload: str, kinds: int) -> int:
    """The request's topic: its first digit modulo ``kinds``."""
    return int(payload[0]) % kinds


def make_users(n: int, kinds: int, rng: random.Random) -> list[tuple]:
    """``n`` users, each a preference: the procedure it wants for each of the ``kinds`` topics."""
    if n < 1 or kinds < 1:
        raise ValueError(f"make_users: need n >= 1 and kinds >= 1; got {n}, {kinds}")
    return [tuple(rng.choice(PROCEDURES) for _ in range(kinds)) for _ in range(n)]


def interact(user: tuple, rng: random.Random, stable: bool = True) -> Interaction:
    """A new request of ``user``; ``stable=False`` is the control: the wanted procedure is drawn afresh
    each time, so no memory of the user can predict it."""
    payload = random_payload(rng)
    procedure = user[kind_of(payload, len(user))] if stable else rng.choice(PROCEDURES)
    return Interaction(payload, procedure)


def retrieve_cases(history, payload: str, kinds: int, r: int = 1) -> list[str]:
    """Retrieval into the context: the user's past interactions on the same topic first, the newest
    first, then the others; the first ``r``, formatted as solved cases for the base to read."""
    if r < 1:
        raise ValueError(f"retrieve_cases: r must be >= 1; got {r}")
    k = kind_of(payload, kinds)
    ranked = sorted(range(len(history)), key=lambda i: (kind_of(history[i].payload, kinds) != k, -i))
    return [format_case(history[i].response, True) for i in ranked[:r]]


def lora_sft(policy, pairs, steps: int, batch_size: int, lr: float, rng: random.Random, optimizer=None):
    """The per-user adapter: min_phi -sum log pi_{theta + BA}(response | request) over the user's interactions,
    ``steps`` Adam steps on batches drawn with replacement; only the LoRA parameters train. Returns the losses."""
    if steps < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(f"lora_sft: need steps >= 0, batch_size >= 1, lr > 0; got {steps}, {batch_size}, {lr}")
    params = [p for p in policy.model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("lora_sft: the model has no trainable parameters (wrap it with add_lora first)")
    optimizer = optimizer or torch.optim.Adam(params, lr=lr)
    tok, losses = policy.tokenizer, []
    if not pairs:
        return losses
    policy.model.train()
    for _ in range(steps):
        batch = [pairs[rng.randrange(len(pairs))] for _ in range(batch_size)]
        ids, mask, labels = encode_batch(tok, batch)     # right-padded; labels on the response and EOS only
        loss = policy.model(input_ids=ids.to(policy.device), attention_mask=mask.to(policy.device),
                            labels=labels.to(policy.device)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    policy.model.eval()
    return losses


def follows(interaction: Interaction, completion: str) -> bool:
    """The response is personalised: its plan is the procedure the user wanted, on the request's payload."""
    return completion.startswith(prompt_for(interaction.procedure, interaction.payload))
