"""The calculator_chain mixture (data/models/tiny-calc-chain): chain drills teach what to call and how to
use the reply, never a chain task from its start."""
import itertools
import re

from labkit.bases.mixtures import load_mixture
from labkit.core.calculator import RESULT_CLOSE, calculate

mixture = load_mixture("calculator_chain")
CHAIN = re.compile(r"(\d+)\*(\d+)\+(\d)=")


def take(n, seed=0, p_wrong=0.0, p_slip=0.0):
    return list(itertools.islice(mixture.demonstrations(seed, p_wrong, p_slip), n))


def test_chain_drills_by_hand_and_shares():
    pairs = take(4000)
    chain = [(p, c) for p, c in pairs if CHAIN.match(p)]
    what = [(p, c) for p, c in chain if p.endswith("[")]
    use = [(p, c) for p, c in chain if p.endswith(RESULT_CLOSE)]
    assert len(what) + len(use) == len(chain)  # no other kind of chain demonstration
    assert abs(len(what) / len(pairs) - mixture.P_WHAT) < 0.03
    assert abs(len(use) / len(pairs) - mixture.P_USE) < 0.03
    typos = 0
    for prompt, completion in what:  # the call's operands, closed: "23*45+7=[" -> "23*45]"
        a, b, _ = CHAIN.match(prompt).groups()
        assert completion.endswith("]") and completion[:-1].split("*")[1] == b
        typos += completion != f"{a}*{b}]"
    assert typos < 0.15 * len(what)  # P_CALL_TYPO = 0.05 of the calls have a wrong operand digit
    for prompt, completion in use:  # "23*45+7=[23*45]=1035;" -> "1042" (noise off)
        a, b, c = map(int, CHAIN.match(prompt).groups())
        assert prompt.endswith(f"[{a}*{b}]={calculate(f'{a}*{b}')};")
        assert completion == str(a * b + c)


def test_no_chain_task_is_shown_from_its_start():
    # whether to open a call on a chain prompt is left to what the calculator stream taught on plain products
    for prompt, completion in take(4000):
        if CHAIN.match(prompt):
            assert prompt.endswith("[") or prompt.endswith(RESULT_CLOSE)


def test_same_seed_same_stream_and_noise_reaches_the_use_drills():
    assert take(300, seed=5) == take(300, seed=5)
    assert take(300, seed=5) != take(300, seed=6)
    noisy = [(p, c) for p, c in take(3000, p_wrong=0.5) if CHAIN.match(p) and p.endswith(RESULT_CLOSE)]
    wrong = [1 for p, c in noisy if c != str(chain_value(p))]
    assert 0.3 < len(wrong) / len(noisy) < 0.7


def chain_value(prompt):
    a, b, c = map(int, CHAIN.match(prompt).groups())
    return a * b + c
