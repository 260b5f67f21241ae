"""Task worlds: deterministic generation, correct answers, strict verifiers, shipped eval sets."""
from __future__ import annotations

import itertools
import json
import random
import re
import time

import numpy as np
import pytest

from labkit.core.paths import EVAL_DIR
from labkit.core.tasks import (CATEGORIES, DIFFICULTIES, EVAL_SEED, EVAL_SETS, MAX_ANSWER_CHARS,
                          MAX_PROMPT_CHARS, TRAIN_SEED_MIN, WORLDS, Task, Verdict, eval_prompts,
                          load_eval_set, make_tasks, sample_task, train_seed, verify)

TRAIN = train_seed(0)  # a training stream's seed: tasks drawn from it are never the eval sets'
ALL_LEVELS = [(c, d) for c in CATEGORIES for d in DIFFICULTIES[c]]
BINARY = re.compile(r"(\d+)([+*-])(\d+)=")


def arithmetic_task(prompt: str, answer: str) -> Task:
    return Task(prompt=prompt, answer=answer, category="add", difficulty=2, world="arithmetic")


def countdown_task(prompt: str) -> Task:
    return Task(prompt=prompt, answer="", category="countdown", difficulty=3, world="countdown")


def python_value(expression: str) -> int:
    """Oracle for our own test expressions (never model output): Python's precedence."""
    assert re.fullmatch(r"[0-9+*-]+", expression)
    return eval(expression, {"__builtins__": {}})  # noqa: S307 - test-made digits and + - * only


# --- registry ---------------------------------------------------------------------------

def test_categories_and_difficulties():
    assert CATEGORIES == ("add", "sub", "mul", "carry", "countdown", "sort", "reverse")
    assert DIFFICULTIES == {"add": tuple(range(1, 9)), "sub": tuple(range(1, 9)),
                            "mul": tuple(range(1, 9)), "carry": tuple(range(0, 5)),
                            "countdown": (2, 3, 4, 5), "sort": tuple(range(2, 9)),
                            "reverse": tuple(range(2, 9))}
    assert WORLDS == {"add": "arithmetic", "sub": "arithmetic", "mul": "arithmetic",
                      "carry": "arithmetic", "countdown": "countdown", "sort": "digits",
                      "reverse": "digits"}


def test_bad_category_and_difficulty_give_one_line_errors():
    with pytest.raises(ValueError, match=r"^unknown category 'foo'; accepted: add, sub, mul, "
                                         r"carry, countdown, sort, reverse$"):
        make_tasks("foo", 1, 1, 0)
    with pytest.raises(ValueError, match=r"^difficulty 9 out of range for add; accepted: 1\.\.8$"):
        make_tasks("add", 9, 1, 0)
    with pytest.raises(ValueError, match="out of range for carry; accepted: 0..4"):
        sample_task("carry", 5, random.Random(0))
    for bad in (2.0, True, "2"):
        with pytest.raises(ValueError, match="out of range"):
            make_tasks("sort", bad, 1, 0)
    with pytest.raises(ValueError, match="n must be"):
        make_tasks("add", 1, -1, 0)
    with pytest.raises(ValueError, match="unknown category"):
        verify(Task("1+1=", "2", "plus", 1, "arithmetic"), "2")


def test_numpy_integer_difficulty_is_accepted():
    task = make_tasks("add", np.int64(3), 1, 0)[0]
    assert task.difficulty == 3 and type(task.difficulty) is int


# --- generation -------------------------------------------------------------------------

@pytest.mark.parametrize("category,difficulty", ALL_LEVELS)
def test_generation_is_deterministic_from_seed(category, difficulty):
    first = make_tasks(category, difficulty, 20, seed=1234)
    assert first == make_tasks(category, difficulty, 20, seed=1234)
    other_seed = make_tasks(category, difficulty, 20, seed=1235)
    assert [t.prompt for t in first] != [t.prompt for t in other_seed]
    assert (sample_task(category, difficulty, random.Random(7))
            == sample_task(category, difficulty, random.Random(7)))


def test_categories_do_not_share_draws():
    adds = [t.meta for t in make_tasks("add", 4, 10, seed=TRAIN)]
    subs = [t.meta for t in make_tasks("sub", 4, 10, seed=TRAIN)]
    assert adds != subs


@pytest.mark.parametrize("category,difficulty", ALL_LEVELS)
def test_every_task_is_short_printable_ascii_and_its_answer_verifies(category, difficulty):
    for task in make_tasks(category, difficulty, 200, seed=TRAIN):
        assert task.category == category and task.difficulty == difficulty
        assert task.world == WORLDS[category]
        for text, limit in ((task.prompt, MAX_PROMPT_CHARS), (task.answer, MAX_ANSWER_CHARS)):
            assert 0 < len(text) <= limit and text.isascii() and text.isprintable(), task
        assert task.prompt.endswith("=")
        assert verify(task, task.answer) == Verdict(1.0, task.answer, True, True), task


@pytest.mark.parametrize("category", ["add", "sub", "mul"])
@pytest.mark.parametrize("digits", range(1, 9))
def test_binary_arithmetic_answers_and_operand_lengths(category, digits):
    operation = {"add": int.__add__, "sub": int.__sub__, "mul": int.__mul__}[category]
    for task in make_tasks(category, digits, 100, seed=TRAIN):
        left, operator, right = BINARY.fullmatch(task.prompt).groups()
        assert operator == {"add": "+", "sub": "-", "mul": "*"}[category]
        for operand in (left, right):
            assert len(operand) == digits and (digits == 1 or operand[0] != "0")
        assert task.answer == str(operation(int(left), int(right)))
        assert task.meta == {"a": int(left), "b": int(right)}


def test_sub_produces_negative_answers():
    assert any(t.answer.startswith("-") for t in make_tasks("sub", 3, 50, seed=TRAIN))


def column_carries(a: str, b: str) -> int:
    """Carries of schoolbook addition, written independently of the generator's count."""
    carries = carry = 0
    for x, y in zip(reversed(a), reversed(b)):
        carry = 1 if int(x) + int(y) + carry >= 10 else 0
        carries += carry
    return carries


@pytest.mark.parametrize("carries", range(0, 5))
def test_carry_tasks_have_exactly_that_many_carries(carries):
    tasks = make_tasks("carry", carries, 200, seed=TRAIN)
    for task in tasks:
        left, operator, right = BINARY.fullmatch(task.prompt).groups()
        assert operator == "+" and len(left) == len(right) == 4 and "0" not in (left[0], right[0])
        assert column_carries(left, right) == carries
        assert task.answer == str(int(left) + int(right))
    assert len({t.prompt for t in tasks}) > 150  # varied, not one pattern repeated


@pytest.mark.parametrize("count", range(2, 6))
def test_countdown_tasks_are_solvable_by_their_reference(count):
    for task in make_tasks("countdown", count, 200, seed=TRAIN):
        numbers_text, target_text = re.fullmatch(r"([0-9 ]+)>([0-9]+)=", task.prompt).groups()
        numbers = [int(n) for n in numbers_text.split(" ")]
        assert len(numbers) == count and all(1 <= n <= 12 for n in numbers)
        assert 1 <= int(target_text) <= 999
        assert task.meta == {"numbers": numbers, "target": int(target_text)}
        used = [int(n) for n in re.split(r"[+*-]", task.answer)]
        assert len(used) >= 2 and all(used.count(n) <= numbers.count(n) for n in used)
        assert python_value(task.answer) == int(target_text)


@pytest.mark.parametrize("category", ["sort", "reverse"])
@pytest.mark.parametrize("length", range(2, 9))
def test_digit_tasks(category, length):
    for task in make_tasks(category, length, 100, seed=TRAIN):
        prefix, digits = re.fullmatch(r"([sr]):([0-9]+)=", task.prompt).groups()
        assert prefix == category[0] and len(digits) == length
        assert task.answer == ("".join(sorted(digits)) if category == "sort" else digits[::-1])


def test_task_json_round_trip():
    for category in CATEGORIES:
        task = make_tasks(category, DIFFICULTIES[category][-1], 1, seed=TRAIN)[0]
        assert Task.from_json(json.loads(json.dumps(task.to_json()))) == task
        assert hash(task) == hash(Task.from_json(task.to_json()))  # meta is left out of the hash


# --- verifiers: integer answers ---------------------------------------------------------

@pytest.mark.parametrize("completion,reward,format_ok,parsed", [
    ("12", 1.0, True, "12"),
    (" 12\n", 1.0, True, "12"),
    ("\t12\r\n", 1.0, True, "12"),
    ("13", 0.0, True, "13"),
    ("-12", 0.0, True, "-12"),
    ("", 0.0, False, None),
    ("   \n", 0.0, False, None),
    ("1 2", 0.0, False, None),
    ("12\n3", 0.0, False, None),
    ("１２", 0.0, False, None),        # full-width digits
    ("١٢", 0.0, False, None),          # Arabic-Indic digits
    ("12abc", 0.0, False, None),
    ("1e9", 0.0, False, None),
    ("2+2", 0.0, False, None),
    ("+12", 0.0, False, None),
    ("012", 0.0, False, None),
    ("12.0", 0.0, False, None),
    ("0x0c", 0.0, False, None),
    ("1_2", 0.0, False, None),
])
def test_integer_verifier_rules(completion, reward, format_ok, parsed):
    verdict = verify(arithmetic_task("5+7=", "12"), completion)
    assert verdict == Verdict(reward, parsed, reward == 1.0, format_ok)


def test_integer_verifier_signs_zero_and_leading_zeros():
    negative = Task("3-15=", "-12", "sub", 2, "arithmetic")
    assert verify(negative, "-12").reward == 1.0
    assert verify(negative, "\u221212") == Verdict(0.0, None, False, False)  # unicode minus
    assert verify(negative, "--12").format_ok is False
    zero = Task("5-5=", "0", "sub", 1, "arithmetic")
    assert verify(zero, "0").reward == 1.0
    assert verify(zero, "-0") == Verdict(0.0, None, False, False)
    assert verify(zero, "00") == Verdict(0.0, None, False, False)
    seven = Task("3+4=", "7", "add", 1, "arithmetic")
    assert verify(seven, "007") == Verdict(0.0, None, False, False)


@pytest.mark.parametrize("filler", ["1", " ", "-"])
def test_huge_completion_is_rejected_fast(filler):
    task = arithmetic_task("5+7=", "12")
    huge = "12" + filler * 10**6
    start = time.perf_counter()
    for _ in range(100):
        assert verify(task, huge) == Verdict(0.0, None, False, False)
    assert time.perf_counter() - start < 0.1


# --- verifiers: digit strings -----------------------------------------------------------

def test_digit_string_verifier():
    task = Task("s:3010=", "0013", "sort", 4, "digits")
    assert verify(task, "0013") == Verdict(1.0, "0013", True, True)
    assert verify(task, " 0013\n").reward == 1.0
    assert verify(task, "13") == Verdict(0.0, "13", False, True)
    assert verify(task, "0031") == Verdict(0.0, "0031", False, True)
    for bad in ("", "0 013", "001３", "0013x", "-0013", "+0013", "0013" * 100):
        assert verify(task, bad) == Verdict(0.0, None, False, False), bad


# --- verifiers: countdown ---------------------------------------------------------------

@pytest.mark.parametrize("prompt,completion,reward", [
    ("3 5 7>22=", "3*5+7", 1.0),
    ("3 5 7>22=", "7+5*3", 1.0),
    ("3 5 7>22=", "7+3*5", 1.0),
    ("3 5 7>22=", " 5*3+7\n", 1.0),
    ("3 5 7>22=", "3+5*7", 0.0),        # 38: precedence, not left-to-right
    ("3 5 7>22=", "3*5", 0.0),
    ("2 3 4>14=", "2+3*4", 1.0),
    ("2 3 4>20=", "2+3*4", 0.0),        # (2+3)*4 would be 20
    ("10 2 3>5=", "10-2-3", 1.0),       # minus is left-associative
    ("10 2 3>11=", "10-2-3", 0.0),
    ("2 3 4 5>-14=", "2-4*5+3+1*1", 0.0),  # 1 is not given
    ("2 3 4 5>-15=", "2-4*5+3", 1.0),   # negative intermediate and target
    ("3 5 7>22=", "2*11", 0.0),         # numbers not given
    ("5 3 7>22=", "5*5-3", 0.0),        # 5 used twice, given once
    ("5 5 3>22=", "5*5-3", 1.0),        # ... fine when given twice
    ("3 5 7 0>0=", "3*0", 1.0),
])
def test_countdown_verifier_values(prompt, completion, reward):
    verdict = verify(countdown_task(prompt), completion)
    assert verdict == Verdict(reward, completion.strip(), reward == 1.0, True)


@pytest.mark.parametrize("completion", [
    "", "22", "3", "3 * 5 + 7", "3*5 +7", "(3*5)+7", "-3+5*7", "3*-5", "3+*5", "3*5+", "+3*5",
    "07+15", "3*5+7=22", "3x5+7", "3/5+7", "3^5", "3**5", "３*５+７", "3\u22125", "3*5+7abc",
    "3" + "+3" * 40, "1e1+12",
])
def test_countdown_verifier_rejects_malformed(completion):
    assert verify(countdown_task("3 5 7>22="), completion) == Verdict(0.0, None, False, False)


def every_expression(numbers: list[int]):
    """All expressions over ordered subsets of >= 2 of the numbers (by position, so a
    number given twice may appear twice)."""
    for size in range(2, len(numbers) + 1):
        for chosen in itertools.permutations(range(len(numbers)), size):
            for operators in itertools.product("+-*", repeat=size - 1):
                yield str(numbers[chosen[0]]) + "".join(
                    op + str(numbers[i]) for op, i in zip(operators, chosen[1:]))


@pytest.mark.parametrize("count", [2, 3, 4])
def test_countdown_verifier_accepts_exactly_the_valid_expressions(count):
    for task in make_tasks("countdown", count, 5, seed=TRAIN):
        solutions = 0
        for expression in every_expression(task.meta["numbers"]):
            right = python_value(expression) == task.meta["target"]
            assert verify(task, expression) == Verdict(float(right), expression, right, True)
            solutions += right
        assert solutions >= 1


# --- eval sets --------------------------------------------------------------------------

def test_eval_sets_have_the_documented_counts():
    for name, spec in EVAL_SETS.items():
        tasks = load_eval_set(name)
        assert len(tasks) == sum(len(levels) * n for levels, n in spec.values())
        for category, (levels, n) in spec.items():
            assert levels == DIFFICULTIES[category]
            for difficulty in levels:
                subset = load_eval_set(name, category=category, difficulty=difficulty)
                assert len(subset) == n
                assert all(t.category == category and t.difficulty == difficulty for t in subset)
    sizes = [len(load_eval_set(name)) for name in ("arithmetic", "countdown", "digits")]
    assert sizes == [1700, 400, 700]
    assert len(load_eval_set("arithmetic", category="carry")) == 500
    assert len(load_eval_set("digits", difficulty=2)) == 100


def test_eval_sets_match_the_generator_and_verify():
    for name, spec in EVAL_SETS.items():
        regenerated = [t for category, (levels, n) in spec.items() for d in levels
                       for t in make_tasks(category, d, n, seed=EVAL_SEED)]
        shipped = load_eval_set(name)
        assert shipped == regenerated, f"{name}: run python -m labkit.core.tasks.make_eval_sets"
        for task in shipped:
            assert len(task.prompt) <= MAX_PROMPT_CHARS and len(task.answer) <= MAX_ANSWER_CHARS
            assert task.prompt.isascii() and task.prompt.isprintable()
            assert verify(task, task.answer).reward == 1.0


def test_eval_sets_are_small_and_errors_are_clear():
    assert sum((EVAL_DIR / f"{name}.jsonl").stat().st_size for name in EVAL_SETS) < 1_000_000
    with pytest.raises(ValueError, match="^unknown eval set 'algebra'; accepted: arithmetic, "
                                         "countdown, digits$"):
        load_eval_set("algebra")
    with pytest.raises(ValueError, match="category 'sort' not in eval set arithmetic"):
        load_eval_set("arithmetic", category="sort")
    with pytest.raises(ValueError, match=r"^difficulty 9 not in eval set digits for sort; "
                                         r"accepted: 2\.\.8$"):
        load_eval_set("digits", category="sort", difficulty=9)


def test_eval_prompts_cover_every_eval_task():
    prompts = eval_prompts()
    assert all(t.prompt in prompts for name in EVAL_SETS for t in load_eval_set(name))
    training = make_tasks("mul", 8, 100, seed=TRAIN)
    assert not any(t.prompt in prompts for t in training)


def test_train_seed_is_the_hand_offset_it_replaced():
    """train_seed(seed, stream) is TRAIN_SEED_MIN + seed + stream, the value the hand-written offsets
    (`1000 + seed`, `seed + TRAIN_SEED_MIN + 7`) had: the same seed still draws the same tasks."""
    assert TRAIN_SEED_MIN == 1000 > EVAL_SEED
    assert [train_seed(s) for s in range(3)] == [1000, 1001, 1002]
    assert train_seed(3, stream=22) == 1025 and train_seed(np.int64(2), 7) == 1009
    assert make_tasks("add", 2, 5, seed=train_seed(0)) == make_tasks("add", 2, 5, seed=1000)
    for bad in (-1, 1.0, True, "0", None):
        with pytest.raises(ValueError, match="^seed must be a non-negative integer"):
            train_seed(bad)
        with pytest.raises(ValueError, match="^stream must be a non-negative integer"):
            train_seed(0, bad)
