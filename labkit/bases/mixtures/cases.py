"""The cases mixture (data/models/tiny-cases, notebook 22): a base that reads retrieved cases.

Notebook 22's task has a hidden procedure per family (add, sub, sort or reverse applied to a
four-digit payload). An agent retrieves cases from its memory and shows them to this base in the
prompt; the base reads them, writes the procedure's prompt for the new payload and answers it:

    prompt      "o57+31=88;x57-31=26;8431>"       up to MAX_CASES cases, then payload + '>'
    completion  "84+31=115"                        the plan (a procedure's prompt) + its answer

A case is an outcome mark, what was written then and ';': "o" marks a case that solved its task
(MemRL's "successful memories, examples to follow"), "x" one that failed ("failed memories,
examples to avoid"; Memento's positive / negative examples). The rule the demonstrations follow
(`target`): let F be the procedures shown by failed cases; follow the first successful case
whose procedure is not in F; with none, choose uniformly among the procedures not in F (all
four if F holds them all). So the order of the cases matters (the retriever's ranking), and a
failure stored in memory steers the base away from the procedure that failed.

The answer after the plan carries the usual noise (near misses, format slips), and a share of
the stream is the default mixture, so the arithmetic of data/models/tiny stays. Meant to
continue from tiny (`labkit pretrain --mixture cases --init tiny ...`).
"""
from __future__ import annotations

import random

from labkit.bases.mixtures import default
from labkit.bases.pretrain import demonstration
from labkit.core.tasks import Task, train_seed

DESCRIPTION = ("reading up to 5 retrieved cases (o = solved, x = failed) and following the first "
               "solved one whose procedure no failed case shows (notebook 22)")

PROCEDURES = ("add", "sub", "sort", "reverse")
MAX_CASES = 5
SOLVED, FAILED = "o", "x"
CASE_END = ";"
QUERY_END = ">"
# number of cases in a demonstration -> weight
N_CASES = {0: 0.08, 1: 0.2, 2: 0.2, 3: 0.17, 4: 0.17, 5: 0.18}
P_SOLVED = 0.6   # share of solved cases among the shown ones
P_PLAIN = 0.2    # share of the default mixture's demonstrations in the stream
# a failed case shows a wrong answer this often (an arithmetic slip rather than a wrong procedure)
P_FAILED_WRONG_ANSWER = 0.3

__all__ = ["DESCRIPTION", "PROCEDURES", "MAX_CASES", "prompt_for", "answer_for", "random_payload",
           "format_case", "executor_prompt", "parse_completion", "target", "demonstrations",
           "card_contexts", "card_tasks", "card_evaluate"]


def _check_payload(payload) -> str:
    if not isinstance(payload, str) or len(payload) != 4 or not payload.isdigit():
        raise ValueError(f"payload must be a string of 4 digits; got {payload!r}")
    return payload


def _check_procedure(procedure) -> str:
    if procedure not in PROCEDURES:
        raise ValueError(f"procedure must be one of {', '.join(PROCEDURES)}; got {procedure!r}")
    return procedure


def prompt_for(procedure: str, payload: str) -> str:
    """The prompt of data/models/tiny for `procedure` on a 4-digit payload: "84+31=", "s:8431="."""
    payload, procedure = _check_payload(payload), _check_procedure(procedure)
    a, b = payload[:2], payload[2:]
    return {"add": f"{a}+{b}=", "sub": f"{a}-{b}=", "sort": f"s:{payload}=", "reverse": f"r:{payload}="}[procedure]


def answer_for(procedure: str, payload: str) -> str:
    """The procedure's answer on the payload."""
    payload, procedure = _check_payload(payload), _check_procedure(procedure)
    a, b = int(payload[:2]), int(payload[2:])
    return {"add": str(a + b), "sub": str(a - b), "sort": "".join(sorted(payload)),
            "reverse": payload[::-1]}[procedure]


def random_payload(rng: random.Random) -> str:
    """Two 2-digit numbers, the first at least the second (no negative differences)."""
    a = rng.randint(10, 99)
    return f"{a}{rng.randint(10, a)}"


def format_case(text: str, solved: bool) -> str:
    """A case as the base reads it: outcome mark + what was written (plan and answer) + ';'."""
    if not isinstance(text, str) or not text or CASE_END in text or QUERY_END in text:
        raise ValueError(f"case text must be a non-empty string without ';' or '>'; got {text!r}")
    return (SOLVED if solved else FAILED) + text + CASE_END


def executor_prompt(cases, payload: str, plan: str = "") -> str:
    """The base's prompt: the cases (already formatted, in the retriever's order), the payload and
    '>'; `plan` (a procedure's prompt) is forced after it when the procedure is chosen outside."""
    cases = list(cases)
    if len(cases) > MAX_CASES:
        raise ValueError(f"at most {MAX_CASES} cases fit the base's context; got {len(cases)}")
    return "".join(cases) + _check_payload(payload) + QUERY_END + plan


def parse_completion(completion: str) -> tuple[str | None, str]:
    """(procedure, answer) of a completion "84+31=115": the procedure its plan names (None if the
    plan is no procedure's shape) and the text after the plan's '='."""
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str; got {type(completion).__name__}")
    plan, sep, answer = completion.partition("=")
    if not sep:
        return None, ""
    procedure = None
    if plan.startswith("s:") and len(plan) == 6 and plan[2:].isdigit():
        procedure = "sort"
    elif plan.startswith("r:") and len(plan) == 6 and plan[2:].isdigit():
        procedure = "reverse"
    elif len(plan) == 5 and plan[2] in "+-" and (plan[:2] + plan[3:]).isdigit():
        procedure = "add" if plan[2] == "+" else "sub"
    return procedure, answer


def case_procedure(case: str) -> str | None:
    """The procedure a formatted case shows (None if its text names none)."""
    return parse_completion(case[1:].rstrip(CASE_END))[0]


def target(cases) -> tuple[str, ...]:
    """The procedures the rule allows for these formatted cases: one (the first solved case whose
    procedure no failed case shows) or, with no such case, every procedure not shown failed."""
    cases = list(cases)
    failed = {case_procedure(c) for c in cases if c.startswith(FAILED)}
    for c in cases:
        p = case_procedure(c)
        if c.startswith(SOLVED) and p is not None and p not in failed:
            return (p,)
    allowed = tuple(p for p in PROCEDURES if p not in failed)
    return allowed or PROCEDURES


def _case(rng: random.Random, procedure: str, solved: bool) -> str:
    payload = random_payload(rng)
    answer = answer_for(procedure, payload)
    if not solved and rng.random() < P_FAILED_WRONG_ANSWER:
        answer = demonstration(Task("", answer, procedure, 2, "cases"), rng, 1.0, 0.0)
    return format_case(prompt_for(procedure, payload) + answer, solved)


def random_cases(rng: random.Random, n: int) -> list[str]:
    """`n` formatted cases: random procedures, solved with probability P_SOLVED; often a solved
    case repeats a failed one's procedure (a distractor the failures should override)."""
    cases = []
    for _ in range(n):
        solved = rng.random() < P_SOLVED
        failed = [case_procedure(c) for c in cases if c.startswith(FAILED)]
        if solved and failed and rng.random() < 0.5:
            procedure = rng.choice(failed)          # a solved case that a failure contradicts
        else:
            procedure = rng.choice(PROCEDURES)
        cases.append(_case(rng, procedure, solved))
    if n > 1 and rng.random() < 0.3:                # failures shown first, as similarity ranks
        cases.sort(key=lambda c: not c.startswith(FAILED))   # one's own recent failures
    return cases


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs: case-reading demonstrations and P_PLAIN default ones."""
    rng = random.Random(train_seed(seed, stream=22))   # never the eval sets' seeds
    plain = default.demonstrations(seed, p_wrong, p_slip)
    counts, weights = list(N_CASES), list(N_CASES.values())
    while True:
        if rng.random() < P_PLAIN:
            yield next(plain)
            continue
        cases = random_cases(rng, rng.choices(counts, weights)[0])
        payload = random_payload(rng)
        procedure = rng.choice(target(cases))
        answer = answer_for(procedure, payload)
        task = Task(prompt_for(procedure, payload), answer, procedure, 2, "cases")
        yield executor_prompt(cases, payload), prompt_for(procedure, payload) + demonstration(task, rng, p_wrong, p_slip)


def card_contexts(n: int = 100, seed: int = 0) -> list[tuple[list[str], str]]:
    """`n` held-out (cases, payload) pairs, 1..MAX_CASES cases each, with no noise in the cases."""
    rng = random.Random(seed)      # below TRAIN_SEED_MIN: never a training stream's seed
    return [(random_cases(rng, 1 + i % MAX_CASES), random_payload(rng)) for i in range(n)]


def card_tasks() -> dict:
    """Held-out contexts as Tasks: category = 'follow' (the rule names one procedure) or 'avoid'
    (no solved case survives: any procedure not shown failed), difficulty = number of cases."""
    tasks = []
    for cases, payload in card_contexts(200, seed=22):
        allowed = target(cases)
        tasks.append(Task(executor_prompt(cases, payload), "|".join(allowed),
                          "follow" if len(allowed) == 1 else "avoid", len(cases), "cases",
                          meta={"payload": payload}))
    return {"cases": tasks}


def judge(task: Task, completion: str) -> tuple[bool, bool]:
    """(followed, correct): the plan names an allowed procedure for the task's payload, and the
    answer after it is that procedure's answer."""
    procedure, answer = parse_completion(completion)
    payload = task.meta["payload"]
    followed = procedure in task.answer.split("|") and completion.startswith(prompt_for(procedure, payload))
    return followed, followed and answer.strip() == answer_for(procedure, payload)


def card_evaluate(policy, tasks, samples, temperature):
    """The card's measure: a sample is right when it follows the rule and answers right."""
    from labkit.core.evaluate import Evaluation
    from labkit.core.sampling import rollout

    prompts = [t.prompt for t in tasks for _ in range(samples)]
    batch = rollout(policy, prompts, max_new_tokens=14, temperature=temperature)
    correct = [0] * len(tasks)
    for i, text in enumerate(batch.completions):
        correct[i // samples] += int(judge(tasks[i // samples], text)[1])
    mask = batch.completion_mask
    entropy = float((batch.entropies * mask).sum() / mask.sum().clamp(min=1))
    return Evaluation(list(tasks), correct, samples, entropy)
