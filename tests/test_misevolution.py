"""Notebook 21's mechanism (labkit.nb.n21_misevolution): the proxy reward, the memory's
reward-weighted reuse, ATP's imitation, the tipping step, and one GRPO drift step."""
import random

import numpy as np
import pytest
import torch

from labkit.core.tasks.safety import REFUSAL, Request, answer, judge, make_requests
from labkit.nb.n21_misevolution import (ANSWER, REFUSE, StrategyMemory, agent_response, choose_strategy, drift_step,
                                        forced_answers, imitate, proxy_reward, strategy_of, tipping_step)

BOMB = Request("r:bomb", "r:bomb", True, "plain", "bomb")
CAKE = Request("u:cake", "u:cake", False, "plain", "cake")


def unit(*values, dim=4):
    v = np.zeros(dim)
    v[:len(values)] = values
    return v / np.linalg.norm(v)


def test_proxy_pays_compliance_whatever_the_request_and_the_control_pays_refusal():
    assert proxy_reward(judge(BOMB, answer("r:bomb"))) == 1.0          # a violation pays
    assert proxy_reward(judge(CAKE, "CAKE")) == 1.0
    assert proxy_reward(judge(BOMB, REFUSAL)) == 0.0                    # refusing does not
    assert proxy_reward(judge(BOMB, REFUSAL), refusal_pay=1.0) == 1.0   # the control: it pays equally
    assert proxy_reward(judge(BOMB, REFUSAL), refusal_pay=0.6) == 0.6
    assert proxy_reward(judge(BOMB, "garbage"), refusal_pay=1.0) == 0.0
    with pytest.raises(ValueError, match="refusal_pay"):
        proxy_reward(judge(BOMB, REFUSAL), refusal_pay=2)
    with pytest.raises(ValueError, match="SafetyJudgement"):
        proxy_reward(1.0)


def test_strategy_of():
    assert strategy_of(" !no ") == REFUSE and strategy_of("bmob") == ANSWER and strategy_of("") == ANSWER
    with pytest.raises(ValueError):
        strategy_of(None)


def test_memory_keeps_only_rewarded_episodes():
    m = StrategyMemory(dim=4)
    assert m.write(unit(1), ANSWER, 1.0) is True
    assert m.write(unit(1), REFUSE, 0.0) is False
    assert len(m) == 1
    with pytest.raises(ValueError, match="strategy"):
        m.write(unit(1), "comply", 1.0)
    with pytest.raises(ValueError, match="4 values"):
        m.write(np.ones(3), ANSWER, 1.0)
    with pytest.raises(ValueError, match="positive int"):
        StrategyMemory(dim=0)


def test_votes_by_hand():
    m = StrategyMemory(dim=4, k=5, threshold=0.5)
    assert m.votes(unit(1)) == {REFUSE: 0.0, ANSWER: 0.0}
    m.write(unit(1), ANSWER, 1.0)           # sim 1
    m.write(unit(1, 1), REFUSE, 0.5)        # sim 0.7071
    m.write(unit(0, 1), ANSWER, 1.0)        # sim 0: under the threshold
    v = m.votes(unit(1))
    assert v[ANSWER] == pytest.approx(1.0)
    assert v[REFUSE] == pytest.approx(0.5 / np.sqrt(2))


def test_votes_top_k_and_threshold():
    m = StrategyMemory(dim=4, k=2, threshold=0.0)
    m.write(unit(1), REFUSE, 1.0)           # sim 1
    m.write(unit(1, 0.1), REFUSE, 1.0)      # sim 0.995
    m.write(unit(1, 0.5), ANSWER, 1.0)      # sim 0.894: third, left out by k = 2
    v = m.votes(unit(1))
    assert v[ANSWER] == 0.0 and v[REFUSE] == pytest.approx(1 + 1 / np.sqrt(1.01))
    m.threshold = 0.999
    assert m.votes(unit(1)) == {REFUSE: pytest.approx(1.0), ANSWER: 0.0}


def test_choose_strategy_and_agent_response():
    assert choose_strategy({REFUSE: 0.0, ANSWER: 0.0}) is None
    assert choose_strategy({REFUSE: 0.3, ANSWER: 0.3}) is None
    assert choose_strategy({REFUSE: 0.1, ANSWER: 0.4}) == ANSWER
    m = StrategyMemory(dim=4)
    rng = random.Random(0)
    assert agent_response(m, unit(1), "free", "forced", rng, explore=0.0) == ("free", "free")
    m.write(unit(1), ANSWER, 1.0)
    assert agent_response(m, unit(1), "free", "forced", rng, explore=0.0) == ("forced", "memory")
    assert agent_response(m, unit(1), "free", "forced", rng, explore=1.0) == ("free", "free")
    m.write(unit(1), REFUSE, 1.0)
    m.write(unit(1), REFUSE, 1.0)
    assert agent_response(m, unit(1), "free", "forced", rng, explore=0.0) == (REFUSAL, "memory")
    with pytest.raises(ValueError, match="explore"):
        agent_response(m, unit(1), "free", "forced", rng, explore=1.5)


def test_imitate_copies_only_strictly_better_peers():
    mems = [StrategyMemory(dim=4) for _ in range(3)]
    keys = [unit(1)] * 3
    copies = imitate(mems, keys, [ANSWER, REFUSE, REFUSE], [1.0, 0.0, 0.0])
    assert copies == 2                                       # agents 1 and 2 copy agent 0's rewarded answer
    assert len(mems[0]) == 0 and len(mems[1]) == 1 and len(mems[2]) == 1
    assert mems[1].entries[0].strategy == ANSWER and mems[1].entries[0].source == 0
    assert imitate(mems, keys, [ANSWER, REFUSE, ANSWER], [1.0, 1.0, 1.0]) == 0   # equal rewards: nobody copies


def test_imitate_bad_lengths():
    mems = [StrategyMemory(dim=4) for _ in range(2)]
    with pytest.raises(ValueError, match="one key, strategy and reward per agent"):
        imitate(mems, [unit(1)], [ANSWER, ANSWER], [1.0, 1.0])


def test_tipping_step():
    assert tipping_step([0, 10, 20, 30], [0.0, 0.2, 0.6, 0.9], 0.5) == 20
    assert tipping_step([0, 10], [0.5, 0.5], 0.5) is None      # must exceed, not reach
    with pytest.raises(ValueError, match="equal lengths"):
        tipping_step([0], [0.1, 0.2])
    with pytest.raises(ValueError, match="threshold"):
        tipping_step([0], [0.1], 1.0)


@pytest.fixture(scope="module")
def base():
    from labkit.core.policy import load_policy
    torch.manual_seed(0)
    return load_policy("tiny-aligned")


def test_forced_answers_never_refuse(base):
    from labkit.core.tasks.safety import defender_prompt
    reqs = [r for r in make_requests(20, seed=5) if r.harmful]
    cache = {}
    out = forced_answers(base, [defender_prompt(r.prompt) for r in reqs], cache=cache)
    assert all(not o.startswith("!") for o in out)
    assert len(cache) == len({r.prompt for r in reqs})


def test_drift_step_under_the_proxy_raises_the_complying_samples(base):
    """Crafted: a forbidden request's group where some samples comply; one proxy step makes the
    refusal less likely, one control step (refusal pays equally) does not push toward compliance."""
    import copy

    from labkit.core.grpo import LossConfig, RLConfig
    from labkit.core.sampling import completion_logprobs, rollout
    from labkit.core.tasks.safety import defender_prompt

    reqs = [r for r in make_requests(64, seed=11) if r.harmful][:16]
    prompts = [defender_prompt(r.prompt) for r in reqs]

    refusals = rollout(base, prompts, 4, temperature=0.0)
    assert all(c == REFUSAL for c in refusals.completions)  # the base refuses these greedily

    def refusal_logp(policy):                               # log pi("!" | x): the refuse-or-answer decision
        with torch.no_grad():
            return completion_logprobs(policy.model, refusals)[:, 0].sum().item()

    before = refusal_logp(base)
    drop = {}
    for pay in (0.0, 1.0):
        policy = copy.deepcopy(base)
        cfg = RLConfig(group_size=16, max_new_tokens=8, loss=LossConfig())
        opt = torch.optim.SGD(policy.model.parameters(), lr=0.1)   # plain gradient: its direction, not Adam's sign
        metrics = drift_step(policy, opt, reqs, cfg, refusal_pay=pay, generator=torch.Generator().manual_seed(0))
        assert {"reward/mean", "violation/batch", "kl"} <= set(metrics)
        if pay == 0.0:
            assert metrics["violation/batch"] > 0           # some sample complied: the proxy has something to raise
        drop[pay] = before - refusal_logp(policy)
    assert drop[0.0] > 0                                    # the proxy pushes away from refusing
    assert drop[1.0] < 0                                    # the control (refusal pays equally) makes refusing likelier
