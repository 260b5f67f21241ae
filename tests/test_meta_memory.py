"""Notebook 24's mechanism (labkit.nb.n24_meta_memory): the memory genome and its modules by hand, MemEvolve's
tournament and random search (budgets, selection, the shuffled control), LTM's users, retrieval into the
context and the per-user LoRA update on the tiny-cases base; bad inputs."""
import random

import pytest
import torch

import labkit.nb.n24_meta_memory as M
from labkit.core.policy import add_lora, load_policy
from labkit.nb.n23_experience_distillation import Task

ALL = (True,) * 7
ONLY = lambda *slots: tuple(j in slots for j in range(7))  # noqa: E731


def task(tokens, answer, family=0):
    return Task(tuple(tokens), family, answer)


def test_genome_validates_its_modules():
    g = M.Genome(ONLY(0, 4), 32, 3, "prune")
    assert g.slots == (0, 4) and str(g) == "slots 04 cap 32 k 3 prune"
    for bad in (dict(mask=(False,) * 7), dict(mask=(True,) * 6), dict(mask=ALL, capacity=7),
                dict(mask=ALL, k=2), dict(mask=ALL, manage="forget")):
        with pytest.raises(ValueError):
            M.Genome(**bad)


def test_random_genome_and_mutate_stay_in_the_space():
    rng = random.Random(0)
    base = M.Genome(ALL, 0, 5, "none")
    for _ in range(200):
        g = M.random_genome(rng)
        assert any(g.mask) and g.capacity in M.GENES["capacity"]
        child = M.mutate(base, rng, 0.5)
        assert child != base and any(child.mask)            # at least one module redesigned
        flipped = sum(a != b for a, b in zip(child.mask, base.mask))
        assert flipped in (0, 1)                             # encode changes by one slot
    full = M.mutate(base, random.Random(1), 1.0)             # creativity 1: every module changes
    assert full.capacity != 0 and full.k != 5 and full.manage != "none" and full.mask != base.mask
    one = M.Genome(ONLY(3), 0, 5, "none")
    assert all(any(M.mutate(one, random.Random(s), 1.0).mask) for s in range(50))   # never an empty key
    with pytest.raises(ValueError):
        M.mutate(base, rng, 0)
    with pytest.raises(ValueError):
        M.mutate(base, rng, 1.5)


def test_memory_retrieves_by_weighted_vote_on_the_kept_slots():
    mem = M.MemorySystem(M.Genome(ONLY(0, 1), 0, 3, "none"))
    assert mem.encode((1, 2, 3, 4, 5, 6, 7)) == (1, 2)
    assert mem.retrieve((1, 2, 0, 0, 0, 0, 0)) == (None, [])
    mem.store((1, 2, 9, 9, 9, 9, 9), 3)      # sim 2 to the query
    mem.store((1, 5, 0, 0, 0, 0, 0), 1)      # sim 1
    mem.store((4, 2, 0, 0, 0, 0, 0), 0)      # sim 1
    mem.store((7, 7, 1, 2, 0, 0, 0), 2)      # sim 0 (slots 2-6 are not kept): never votes
    a, used = mem.retrieve((1, 2, 0, 0, 0, 0, 0))
    assert used == [0, 2, 1]                 # by similarity, the newest first among equals
    assert a == 3                            # weights: action 3: 2, action 1: 1, action 0: 1
    mem.store((1, 6, 0, 0, 0, 0, 0), 1)      # sim 1, newest: the top 3 are now 0, 4, 2
    a, used = mem.retrieve((1, 2, 0, 0, 0, 0, 0))
    assert used == [0, 4, 2] and a == 3
    mem.store((1, 8, 0, 0, 0, 0, 0), 1)      # top 3: 0 (action 3, 2), 5 and 4 (action 1, 1 + 1): a tie, the lower action
    assert mem.retrieve((1, 2, 0, 0, 0, 0, 0)) == (1, [0, 5, 4])
    assert mem.retrieve((9, 9, 0, 0, 0, 0, 0)) == (None, [])
    with pytest.raises(ValueError):
        mem.store((1, 2, 3), 0)


def test_store_capacity_dedup_and_prune():
    fifo = M.MemorySystem(M.Genome(ALL, 8, 1, "none"))
    for i in range(10):
        fifo.store((i,) * 7, i % 4)
    assert len(fifo) == 8 and fifo.keys[0] == (2,) * 7            # the two oldest are gone
    dedup = M.MemorySystem(M.Genome(ONLY(4), 0, 1, "dedup"))
    dedup.store((0, 0, 0, 0, 5, 0, 0), 1)
    dedup.store((1, 1, 1, 1, 6, 1, 1), 2)
    dedup.store((2, 2, 2, 2, 5, 2, 2), 3)                        # key (5,) again: replaces the first
    assert dedup.keys == [(6,), (5,)] and dedup.actions == [2, 3]
    prune = M.MemorySystem(M.Genome(ONLY(4), 0, 9, "prune"))
    for a in (1, 2, 1, 3):
        prune.store((0, 0, 0, 0, 5, 0, 0), a)
    _, used = prune.retrieve((0, 0, 0, 0, 5, 0, 0))
    assert prune.manage(used, 1) == 2 and prune.actions == [1, 1]   # the entries that voted 2 and 3 are deleted
    keep = M.MemorySystem(M.Genome(ONLY(4), 0, 9, "none"))
    keep.store((0, 0, 0, 0, 5, 0, 0), 2)
    assert keep.manage([0], 1) == 0 and len(keep) == 1


def test_run_stream_by_hand():
    stream = [task((0, 0, 0, 0, 5, 1, 1), 2), task((0, 0, 0, 0, 5, 2, 2), 2), task((3, 3, 3, 3, 4, 0, 0), 1)]
    g = M.Genome(ONLY(4), 0, 1, "none")
    # task 1: an empty memory, a guess; task 2: the feature matches, right; task 3: no match, a guess
    got = M.run_stream(g, stream, seed=0)
    guesses = __import__("numpy").random.default_rng(0).integers(4, size=3)
    assert got == pytest.approx(((guesses[0] == 2) + 1 + (guesses[2] == 1)) / 3)
    with pytest.raises(ValueError):
        M.run_stream(g, [], seed=0)


def _slot_fitness(genome, tasks):
    # rewards keeping slot 4 and few others; the batch only counts
    return float(genome.mask[4]) - 0.1 * sum(genome.mask) + 0.01 * genome.k


def _batches():
    made = []

    def new_batch(n):
        made.append(n)
        return [task((0,) * 7, 0) for _ in range(n)]
    return new_batch, made


def test_tournament_budget_by_hand():
    new_batch, made = _batches()
    winner, history, spent = M.tournament(M.Genome(ALL, 0, 5, "none"), _slot_fitness, new_batch, rounds=3,
                                          n_systems=3, top_t=2, batch_x=40, extra_y=20, rng=random.Random(0))
    assert spent == 3 * ((3 + 1) * 40 + 2 * (40 + 20)) == 840
    assert made == [40, 40] * 3                         # one batch and one new half of the finals per round
    assert len(history) == 3 and all(len(h["systems"]) == 4 and len(h["finals"]) == 2 for h in history)
    assert history[0]["systems"][0] == M.Genome(ALL, 0, 5, "none")      # the base competes every round
    for before, after in zip(history, history[1:]):
        assert after["systems"][0] == before["winner"]                 # the winner is the next base
    assert winner == history[-1]["winner"]


def test_tournament_finds_the_rewarded_slot():
    start = M.Genome(ONLY(0, 1, 2, 3, 5, 6), 0, 5, "none")          # without slot 4
    winner, history, _ = M.tournament(start, _slot_fitness, _batches()[0], rounds=12, n_systems=3, top_t=2,
                                      batch_x=4, extra_y=2, rng=random.Random(0))
    assert winner.mask[4] and _slot_fitness(winner, []) > _slot_fitness(start, []) + 1
    scores = [max(h["finals"]) for h in history]
    assert scores == sorted(scores)                                  # a deterministic fitness never gets worse
    shuffled, _, _ = M.tournament(start, _slot_fitness, _batches()[0], rounds=12, n_systems=3, top_t=2,
                                  batch_x=4, extra_y=2, rng=random.Random(0), shuffle=True)
    assert _slot_fitness(shuffled, []) < _slot_fitness(winner, [])   # the control drops the signal


def test_tournament_rejects_bad_arguments():
    base, nb = M.Genome(ALL), _batches()[0]
    for bad in (dict(rounds=0), dict(n_systems=0), dict(top_t=0), dict(n_systems=2, top_t=4), dict(batch_x=0),
                dict(batch_x=10, extra_y=11), dict(extra_y=-1)):
        with pytest.raises(ValueError):
            M.tournament(base, _slot_fitness, nb, **bad)


def test_random_search_spends_at_most_the_budget_and_keeps_the_best():
    new_batch, made = _batches()
    winner, tried, spent = M.random_search(_slot_fitness, new_batch, 840, batch_x=40, rng=random.Random(0))
    assert len(tried) == 21 and spent == 840 and made == [40] * 21
    assert _slot_fitness(winner, []) == max(s for _, s in tried)
    _, tried, spent = M.random_search(_slot_fitness, new_batch, 100, batch_x=40, rng=random.Random(0))
    assert len(tried) == 2 and spent == 80
    with pytest.raises(ValueError):
        M.random_search(_slot_fitness, new_batch, 10, batch_x=40)
    with pytest.raises(ValueError):
        M.random_search(_slot_fitness, new_batch, 10, batch_x=0)


def test_users_interactions_and_retrieval_into_the_context():
    assert M.kind_of("8431", 2) == 0 and M.kind_of("7431", 2) == 1 and M.kind_of("7431", 1) == 0
    users = M.make_users(3, 2, random.Random(0))
    assert len(users) == 3 and all(len(u) == 2 and set(u) <= set(M.PROCEDURES) for u in users)
    with pytest.raises(ValueError):
        M.make_users(0, 2, random.Random(0))
    user = ("add", "sort")
    rng = random.Random(0)
    for _ in range(30):
        x = M.interact(user, rng)
        assert x.procedure == user[M.kind_of(x.payload, 2)]
    assert len({M.interact(user, rng, stable=False).procedure for _ in range(60)}) == 4   # the control: anything
    x = M.Interaction("8431", "add")
    assert x.response == "84+31=115" and M.Interaction("8431", "sort").response == "s:8431=1348"
    history = [M.Interaction("8431", "add"), M.Interaction("5520", "sort"), M.Interaction("6612", "sub"),
               M.Interaction("3311", "sort")]
    # a request of topic 0 (first digit even): 6612 then 8431 (same topic, newest first), then the others newest first
    assert M.retrieve_cases(history, "2410", 2, r=3) == ["o66-12=54;", "o84+31=115;", "os:3311=1133;"]
    assert M.retrieve_cases(history, "9410", 2, r=1) == ["os:3311=1133;"]
    assert M.retrieve_cases([], "9410", 2) == []
    with pytest.raises(ValueError):
        M.retrieve_cases(history, "9410", 2, r=0)
    assert M.follows(x, "84+31=115") and M.follows(x, "84+31=116") and not M.follows(x, "s:8431=1348")


def test_lora_sft_trains_only_the_adapter():
    torch.manual_seed(0)
    pol = add_lora(load_policy("tiny-cases", device="cpu"), r=4, lora_alpha=8)
    frozen = {n: p.detach().clone() for n, p in pol.model.named_parameters() if not p.requires_grad}
    pairs = [(M.executor_prompt([], x.payload), x.response) for x in
             [M.interact(("sort",), random.Random(s)) for s in range(4)]]
    losses = M.lora_sft(pol, pairs, steps=3, batch_size=4, lr=1e-2, rng=random.Random(0))
    assert len(losses) == 3
    assert all(torch.equal(p, frozen[n]) for n, p in pol.model.named_parameters() if n in frozen)
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in pol.model.named_parameters())


def test_lora_sft_loss_falls_on_one_users_interactions():
    torch.manual_seed(0)
    pol = add_lora(load_policy("tiny-cases", device="cpu"), r=4, lora_alpha=8)
    rng = random.Random(1)
    pairs = [(M.executor_prompt([], x.payload), x.response) for x in [M.interact(("reverse",), rng) for _ in range(4)]]
    losses = M.lora_sft(pol, pairs, steps=30, batch_size=4, lr=1e-2, rng=random.Random(0))
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    assert M.lora_sft(pol, [], steps=3, batch_size=4, lr=1e-2, rng=random.Random(0)) == []


def test_lora_sft_bad_inputs():
    pol = add_lora(load_policy("tiny-cases", device="cpu"), r=2, lora_alpha=4)
    for bad in (dict(steps=-1), dict(batch_size=0), dict(lr=0)):
        args = dict(steps=1, batch_size=2, lr=1e-3) | bad
        with pytest.raises(ValueError):
            M.lora_sft(pol, [("1234>", "12+34=46")], rng=random.Random(0), **args)
    for p in pol.model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError):
        M.lora_sft(pol, [("1234>", "12+34=46")], 1, 2, 1e-3, random.Random(0))
