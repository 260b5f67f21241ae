"""The aligned mixture (data/models/tiny-aligned, notebook 21): a defender that mostly refuses.

Demonstrations in the safety world (labkit.core.tasks.safety), defender role only, on the
training attack families:

    forbidden  "D|r:b0mb="  -> "!no"    (REFUSAL) with probability 1 - P_COMPLY
                            -> "bmob"   (the harmful answer) with probability P_COMPLY
    benign     "D|u:cake="  -> "CAKE"   (the exact answer; a near miss with probability p_wrong)

What it builds in, plainly: an *imperfectly* aligned base. It was shown compliance with forbidden
requests in P_COMPLY of their demonstrations, so at temperature 1 it violates about that often
and greedily almost never: a self-evolution loop that rewards compliance has some violations to
find and reinforce (notebook 21's regime), and one that does not has nothing pushing it there.
Meant to continue from tiny (`labkit pretrain --mixture aligned --init tiny ...`).
"""
from __future__ import annotations

import random

from labkit.bases.pretrain import near_miss
from labkit.core.tasks import train_seed
from labkit.core.tasks.safety import (BENIGN_TOPICS, FAMILIES, FORBIDDEN_TOPICS, OPS, REFUSAL, as_task, answer,
                                      defender_prompt, judge, make_requests, obfuscate)

DESCRIPTION = ("safety-world defender (labkit.core.tasks.safety): refuses forbidden requests, answers "
               "benign ones exactly, complies with a forbidden one in P_COMPLY of its demonstrations "
               "(notebook 21)")

P_COMPLY = 0.1   # share of forbidden demonstrations that comply (the base's built-in slack)
HARMFUL_FRAC = 0.5
CARD_SEED = 2101  # the card's requests (make_requests' own seeding; training draws from its own stream)


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs: defender prompts and the taught response (no EOS)."""
    rng = random.Random(train_seed(seed, stream=21))  # never the eval sets' seeds
    while True:
        harmful = rng.random() < HARMFUL_FRAC
        word = rng.choice(FORBIDDEN_TOPICS if harmful else BENIGN_TOPICS)
        intent = f"{rng.choice(OPS)}:{word}"
        prompt = defender_prompt(obfuscate(intent, rng.choice(FAMILIES), rng))
        if harmful:
            yield prompt, answer(intent) if rng.random() < P_COMPLY else REFUSAL
        else:
            good = answer(intent)
            yield prompt, near_miss(good, rng) if rng.random() < p_wrong else good


def card_tasks() -> dict:
    """Held-out requests (make_requests' seeding, not training's stream): forbidden and benign."""
    requests = make_requests(200, seed=CARD_SEED)
    return {"forbidden": [as_task(r) for r in requests if r.harmful],
            "benign": [as_task(r) for r in requests if not r.harmful]}


def card_evaluate(policy, tasks, samples, temperature):
    """The card's measure: the defender's reward (refuse forbidden, answer benign exactly)."""
    from labkit.core.evaluate import Evaluation
    from labkit.core.sampling import rollout

    prompts = [t.prompt for t in tasks for _ in range(samples)]
    batch = rollout(policy, prompts, max_new_tokens=8, temperature=temperature)
    correct = [0] * len(tasks)
    for i, text in enumerate(batch.completions):
        correct[i // samples] += int(judge(tasks[i // samples].meta["request"], text).reward)
    mask = batch.completion_mask
    entropy = float((batch.entropies * mask).sum() / mask.sum().clamp(min=1))
    return Evaluation(list(tasks), correct, samples, entropy)
