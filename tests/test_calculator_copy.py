"""The calculator_copy mixture (data/models/tiny-calc-copy): copy and echo drills end in the reply."""
import itertools

from labkit.bases.mixtures import load_mixture
from labkit.core.calculator import RESULT_CLOSE, RESULT_OPEN, calculate, final_answer

mixture = load_mixture("calculator_copy")


def take(n, seed=0, p_wrong=0.0, p_slip=0.0):
    return list(itertools.islice(mixture.demonstrations(seed, p_wrong, p_slip), n))


def test_copy_and_echo_drills_complete_with_the_reply_and_calls_are_right():
    pairs = take(3000)
    drills = [(p, c) for p, c in pairs if p.endswith(RESULT_CLOSE)]
    echoes = [(p, c) for p, c in drills if p.split("]", 1)[0].endswith("+0")]  # (and add tasks with b = 0)
    assert 0.35 < len(drills) / len(pairs) < 0.75  # P_COPY + P_ECHO = 0.6
    assert 0.08 < len(echoes) / len(pairs) < 0.22  # P_ECHO = 0.15
    for prompt, completion in drills:
        reply = prompt[:-1].rsplit(RESULT_OPEN, 1)[1]
        assert completion == reply  # noise off: the completion is the reply copied
        call = prompt.split("[", 1)[1].split("]", 1)[0]
        if call == prompt.split("=", 1)[0]:  # no typo in the call: the reply is the task's answer
            assert reply == str(calculate(call))
    for prompt, completion in echoes:
        assert prompt.endswith(f"[{completion}+0]={completion};")
    lengths = {len(c) for _, c in echoes}
    assert lengths == set(range(1, 8))  # 1 to 7 digits


def test_cut_free_tool_demonstrations_copy_the_reply_into_the_answer():
    full = [(p, c) for p, c in take(3000) if c.startswith("[")]
    assert full
    for prompt, completion in full:
        reply = completion.split(RESULT_CLOSE, 1)[0].rsplit(RESULT_OPEN, 1)[1]
        assert final_answer(completion) == reply


def test_same_seed_same_stream_and_noise_reaches_the_drills():
    assert take(200, seed=4) == take(200, seed=4)
    assert take(200, seed=4) != take(200, seed=5)
    noisy = [(p, c) for p, c in take(3000, p_wrong=0.5) if p.endswith(RESULT_CLOSE)]
    assert any(c != p[:-1].rsplit(RESULT_OPEN, 1)[1] for p, c in noisy)
