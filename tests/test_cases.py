"""The cases mixture (data/models/tiny-cases, notebook 22): case formats, the reading rule, the stream."""
import itertools
import random

import pytest

from labkit.bases.mixtures import load_mixture
from labkit.core.tasks import Task

cases = load_mixture("cases")


def shown(prompt):
    """The formatted cases of an executor prompt "o57+31=88;x...;8431>"."""
    return [c + ";" for c in prompt[:-5].split(";") if c]


def take(n, seed=0, p_wrong=0.0, p_slip=0.0):
    return list(itertools.islice(cases.demonstrations(seed, p_wrong, p_slip), n))


def test_prompts_answers_and_parsing_by_hand():
    assert [cases.prompt_for(p, "8431") for p in cases.PROCEDURES] == ["84+31=", "84-31=", "s:8431=", "r:8431="]
    assert [cases.answer_for(p, "8431") for p in cases.PROCEDURES] == ["115", "53", "1348", "1348"]
    assert cases.parse_completion("84+31=115") == ("add", "115")
    assert cases.parse_completion("s:8431=1348") == ("sort", "1348")
    assert cases.parse_completion("r:8431=1348") == ("reverse", "1348")
    assert cases.parse_completion("84-31=53") == ("sub", "53")
    assert cases.parse_completion("8+431=439") == (None, "439")        # not a procedure's plan
    assert cases.parse_completion("1348") == (None, "")                 # no plan at all
    assert cases.format_case("84+31=115", True) == "o84+31=115;" and cases.format_case("x", False) == "xx;"
    assert cases.executor_prompt(["o57+31=88;"], "8431") == "o57+31=88;8431>"
    assert cases.executor_prompt([], "8431", "84-31=") == "8431>84-31="


def test_the_reading_rule_by_hand():
    o = lambda text: cases.format_case(text, True)
    x = lambda text: cases.format_case(text, False)
    assert cases.target([o("57+31=88")]) == ("add",)
    assert cases.target([o("57+31=88"), o("s:5731=1357")]) == ("add",)             # the first solved case
    assert cases.target([x("57+31=88"), o("57+31=88"), o("s:5731=1357")]) == ("sort",)  # ... no failure contradicts
    assert cases.target([o("57+31=88"), x("12+10=22")]) == ("sub", "sort", "reverse")  # none survives: avoid
    assert cases.target([]) == cases.PROCEDURES
    every = [x(cases.prompt_for(p, "5731") + "1") for p in cases.PROCEDURES]
    assert cases.target(every) == cases.PROCEDURES                                     # all failed: any


def test_demonstrations_follow_the_rule_and_fit_the_context():
    pairs = take(4000)
    read = [(p, c) for p, c in pairs if p.endswith(">")]
    assert 0.7 < len(read) / len(pairs) < 0.9                                          # 1 - P_PLAIN
    for prompt, completion in read:
        shown_cases, payload = shown(prompt), prompt[-5:-1]
        procedure, answer = cases.parse_completion(completion)
        assert procedure in cases.target(shown_cases)
        assert completion == cases.prompt_for(procedure, payload) + cases.answer_for(procedure, payload)  # no noise
        assert len(shown_cases) <= cases.MAX_CASES and len(prompt) + len(completion) + 2 <= 128
    assert {len(shown(p)) for p, _ in read} == set(range(cases.MAX_CASES + 1))
    # the situations notebook 22 meets are all there: follow, avoid, a solved case overruled by a failure
    kinds = {len(cases.target(shown(p))) for p, _ in read}
    assert 1 in kinds and max(kinds) > 1


def test_same_seed_same_stream_and_noise_reaches_the_answers():
    assert take(300, seed=4) == take(300, seed=4) and take(300, seed=4) != take(300, seed=5)
    noisy = [(p, c) for p, c in take(3000, p_wrong=0.5) if p.endswith(">")]
    wrong = [c for p, c in noisy if cases.parse_completion(c)[1] != cases.answer_for(cases.parse_completion(c)[0], p[-5:-1])]
    assert 0.3 < len(wrong) / len(noisy) < 0.7
    assert all(cases.parse_completion(c)[0] is not None for _, c in noisy)             # the plan stays clean


def test_card_tasks_are_held_out_and_judged():
    tasks = cases.card_tasks()["cases"]
    assert len(tasks) == 200 and {t.category for t in tasks} == {"follow", "avoid"}
    train = {p for p, _ in take(5000)}
    assert not train & {t.prompt for t in tasks}                                       # other seeds
    task = Task("o57+31=88;8431>", "add", "follow", 1, "cases", meta={"payload": "8431"})
    assert cases.judge(task, "84+31=115") == (True, True)
    assert cases.judge(task, "84+31=116") == (True, False)
    assert cases.judge(task, "s:8431=1348") == (False, False)
    assert cases.judge(task, "57+31=88") == (False, False)                            # the case's payload copied


@pytest.mark.parametrize("call, error, text", [
    (lambda: cases.prompt_for("mul", "8431"), ValueError, "procedure must be one of add, sub, sort, reverse"),
    (lambda: cases.prompt_for("add", "843"), ValueError, "payload must be a string of 4 digits"),
    (lambda: cases.answer_for("add", 8431), ValueError, "payload must be a string of 4 digits"),
    (lambda: cases.format_case("", True), ValueError, "non-empty string without"),
    (lambda: cases.format_case("1;2", True), ValueError, "without ';' or '>'"),
    (lambda: cases.executor_prompt(["o1;"] * 6, "8431"), ValueError, "at most 5 cases"),
    (lambda: cases.parse_completion(None), TypeError, "completion must be a str"),
])
def test_bad_inputs_give_one_line_errors(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value) and "\n" not in str(info.value)


def test_shipped_base_reads_cases():
    """The shipped base follows a single solved case most of the time, greedily."""
    from labkit.core.policy import load_policy
    from labkit.core.sampling import rollout

    policy = load_policy("tiny-cases")
    rng = random.Random(0)
    prompts, wanted = [], []
    for _ in range(40):
        procedure, shown, payload = rng.choice(cases.PROCEDURES), cases.random_payload(rng), cases.random_payload(rng)
        prompts.append(cases.executor_prompt([cases.format_case(cases.prompt_for(procedure, shown)
                                                                + cases.answer_for(procedure, shown), True)], payload))
        wanted.append(cases.prompt_for(procedure, payload))
    texts = rollout(policy, prompts, max_new_tokens=12, temperature=0.0).completions
    assert sum(t.startswith(w) for t, w in zip(texts, wanted)) >= 30
