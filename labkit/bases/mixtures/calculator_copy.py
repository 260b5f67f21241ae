"""The calculator mixture plus copy drills (data/models/tiny-calc-copy): a base that uses the reply.

tiny-calc (mixture `calculator`) calls the calculator on part of the prompts but then ignores its
reply: it writes its own guess after the ';' (a 2% copy rate, measured in the model card of
tiny-calc-copy), so without `stop_after_call` a call never pays. This mixture keeps the calculator
stream (the same share of cut-free tool demonstrations, P_TOOL, so the base still calls rarely)
and adds copy drills: a tool demonstration cut right after the reply's ';', the part before the cut
moved into the prompt, so the completion is the reply copied ("347*28=[347*28]=9716;" -> "9716").
The drills cover every calculator category and length (1 to 7 result digits); on the hard ones
the reply is the only way to the answer, so the loss teaches copying, not guessing. Their answers
carry the usual noise (near misses, format slips), so the copy stays imperfect.

data/models/tiny-calc-copy2 is a third stage on this mixture as shipped (300 more steps from
tiny-calc-copy): it copies a given reply 39.5% of the time at temperature 1 instead of 12.5% (its card).
"""
import random

from labkit.bases.pretrain import demonstration
from labkit.bases.mixtures.calculator import EASY, HARD, P_HARD, P_TOOL, card_tasks, tool_demonstration
from labkit.core.tasks import sample_task, train_seed
from labkit.core.calculator import format_call

DESCRIPTION = "the calculator mixture plus drills that copy a tool reply into the answer"

P_COPY = 0.45  # share of copy drills: prompt up to the reply's ';', completion = the copied reply
P_OPEN = 0.05  # share of demonstrations resumed after the '[': copying the operands into the call
# Share of echo drills: a random 1-7 digit number plus 0 through the calculator,
# "5821+0=[5821+0]=5821;" -> "5821".
# No arithmetic prior competes with the copy there (on a product the base's own guess does), so they
# teach the pattern "after ';', write the digits between '=' and ';'" alone. (Stage 1 of
# tiny-calc-copy trained without them, P_ECHO = 0; stage 2 with them.)
P_ECHO = 0.15

__all__ = ["DESCRIPTION", "demonstrations", "card_evaluate", "card_tasks"]


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs: the calculator stream with P_COPY copy drills and P_ECHO echo drills."""
    rng = random.Random(train_seed(seed, stream=7))  # never the eval sets' seeds; not calculator's stream
    while True:
        category, level = rng.choice(HARD if rng.random() < P_HARD else EASY)
        task = sample_task(category, level, rng)
        u = rng.random()
        if u < P_TOOL:
            yield task.prompt, tool_demonstration(task, rng, p_wrong, p_slip)
        elif u < P_TOOL + P_COPY + P_OPEN + P_ECHO and u >= P_TOOL + P_COPY + P_OPEN:
            digits = rng.randint(1, 7)
            number = str(rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits))
            yield f"{number}+0=" + format_call(number + "+0"), demonstration(type(task)(**{**task.to_json(), "answer": number}), rng, p_wrong, p_slip)
        elif u < P_TOOL + P_COPY + P_OPEN:
            completion = tool_demonstration(task, rng, p_wrong, p_slip)
            cut = 1 if u >= P_TOOL + P_COPY else completion.index(";") + 1
            yield task.prompt + completion[:cut], completion[cut:]
        else:
            yield task.prompt, demonstration(task, rng, p_wrong, p_slip)


def card_evaluate(policy, tasks, samples, temperature):
    """The card measures with the calculator executed and the episode going on after a reply
    (labkit.core.calculator, stop_after_call=False): the answer is what the policy writes after the reply."""
    from labkit.core.calculator import evaluate_with_tools

    return evaluate_with_tools(policy, tasks, samples=samples, temperature=temperature, stop_after_call=False)
