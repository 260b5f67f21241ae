"""Notebook 29's mechanism (labkit.nb.n29_gym_evolution): ADCA advantages, step flags, self-questioning,
AgentEvol's filter and BC data, the update's sign, by hand."""
import random

import pytest
import torch

from labkit.core.gym import CountdownEnv, SingleTurnEnv, run_episodes
from labkit.core.tasks import Task
from labkit.nb.n29_gym_evolution import agent_evol, encode, expert_episode, grpo_train, keep, pairs, pg_update, \
    propose, step_advantages, step_flags


def cd(prompt, answer="2+3*4"):
    return Task(prompt, answer, "countdown", len(prompt.split(">")[0].split()), "countdown", {})


def play(prompt, actions):
    env = CountdownEnv(len(prompt.split(">")[0].split()))
    task = cd(prompt)
    env.start(task)
    from labkit.core.gym import Episode
    e = Episode(env.name, task, prompt=env.prompt)
    for a in actions:
        _, r, done, info = env.step(a)
        e.actions.append(a), e.rewards.append(r), e.infos.append(info)
        if done:
            break
    return e


def test_step_advantages_by_hand():
    # orm z(R) = [+1, -1]; prm raw [.2, .2, -.2] weights [.5, .5, 1]: weighted mean 0, std .2 -> [1, 1, -1]
    adv = step_advantages([1.0, 0.0], [[True, True], [False]], alpha=0.1)
    assert adv[0] == pytest.approx([1.2, 1.1], abs=1e-4)    # suffix sums of [.1, .1 + 1]
    assert adv[1] == pytest.approx([-1.1], abs=1e-4)
    out = step_advantages([1.0, 0.0], [[True, True], [False]], alpha=0.1, attribution=False)
    assert out[0] == pytest.approx([1.0, 1.0], abs=1e-4) and out[1] == pytest.approx([-1.0], abs=1e-4)


def test_step_advantages_edge_cases():
    # all outcomes equal and all flags equal: no signal at all
    assert step_advantages([1.0, 1.0], [[True], [True, True]], alpha=0.1) == [[0.0], [0.0, 0.0]]
    # alpha 0 is outcome-only
    a = step_advantages([0.0, 1.0], [[False, True], [True]], alpha=0.0)
    assert a[0] == pytest.approx([-1.0, -1.0], abs=1e-4) and a[1] == pytest.approx([1.0], abs=1e-4)
    # equal outcomes, different flags: the step rewards alone, suffix-summed. raw [.2, -.2, -.2], weights
    # [.5, .5, 1]: mean -.1, std sqrt(.03); z = [sqrt(3), -1/sqrt(3), -1/sqrt(3)]
    b = step_advantages([0.0, 0.0], [[True, False], [False]], alpha=1.0)
    r3 = 3 ** 0.5
    assert b[0] == pytest.approx([r3 - 1 / r3, -1 / r3], abs=1e-4) and b[1] == pytest.approx([-1 / r3], abs=1e-4)
    with pytest.raises(ValueError, match="one flag list per outcome"):
        step_advantages([1.0], [[True], [False]], alpha=0.1)
    with pytest.raises(ValueError):
        step_advantages([1.0, 0.0], [[True], [False]], alpha=-1)


def test_step_flags_use_precedence_and_reachability():
    # 2 3 4 > 14: "2" can still reach 14 (2+3*4); "+3" too, because *4 binds first; "*4" solves
    assert step_flags(play("2 3 4>14=", ["2", "+3", "*4"])) == [True, True, True]
    assert step_flags(play("2 3 4>14=", ["2", "+3", "+4"])) == [True, True, False]
    assert step_flags(play("2 3 4>14=", ["2", "*3", "+4"]))[:2] == [True, False]   # 6+4, 6-4, 6*4: no 14
    assert step_flags(play("2 3 4>14=", ["5"])) == [False]                          # not a given number
    assert step_flags(play("2 3 4>14=", ["2", ""])) == [True, False]                 # the agent stops
    assert step_flags(play("2 3 4>14=", ["2", "3"])) == [True, False]                # malformed


def test_propose_relabels_what_was_reached():
    tasks = propose([play("2 3 4>14=", ["2", "+3", "+4"]), play("2 3 4>14=", ["2", "+3", "+4"]),
                     play("2 3 4>14=", ["7"]), play("2 3 4>14=", ["2", ""]), play("2 3 4>14=", ["3", "-4"])])
    assert [(t.prompt, t.answer) for t in tasks] == [("2 3 4>9=", "2+3+4")]   # duplicate, 1 number, -1: dropped
    assert tasks[0].meta["target"] == 9 and tasks[0].meta["proposed_from"] == "2 3 4>14="


def test_expert_episodes_keep_and_pairs():
    e = expert_episode(CountdownEnv(3), cd("2 3 4>14=", "2+3*4"))
    assert e.actions == ["2", "+3", "*4"] and e.success
    s = expert_episode(SingleTurnEnv("sub", 2), Task("52-42=", "10", "sub", 2, "arithmetic", {"a": 52, "b": 42}))
    assert s.actions == ["10"] and s.success
    assert [(t.prompt, c) for t, c in pairs([e, s])] == [("2 3 4>14=", "2+3*4"), ("52-42=", "10")]
    lost = play("2 3 4>14=", ["5"])
    eps = [e, lost, s, lost]
    assert keep(eps, "wins", random.Random(0)) == [e, s]
    rand = keep(eps, "random", random.Random(0))
    assert len(rand) == 2 and all(x in eps for x in rand)
    with pytest.raises(ValueError):
        keep(eps, "best", random.Random(0))


def test_encode_marks_steps():
    from labkit.core.policy import load_policy
    tok = load_policy("tiny", device="cpu").tokenizer
    ids, step_of = encode(tok, "2 3 4>14=", ["2", "+3"], eos=True)
    assert len(ids) == len(step_of) and ids[-1] == tok.eos_token_id
    assert step_of[-1] == 1 and step_of.count(0) == 1 and step_of.count(1) == 3 and step_of[0] == -1


def test_pg_update_sign_and_bad_arms():
    from labkit.core.policy import load_policy
    torch.manual_seed(0)
    policy = load_policy("tiny", device="cpu")
    e = play("2 3 4>14=", ["2", "+3", "*4"])
    ids, step_of = encode(policy.tokenizer, e.prompt, e.actions, True)

    def logp():
        with torch.no_grad():
            lp = torch.log_softmax(policy.model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
            return sum(lp[t, ids[t + 1]].item() for t in range(len(ids) - 1) if step_of[t + 1] >= 0)
    before = logp()
    opt = torch.optim.SGD(policy.model.parameters(), lr=1e-2)
    pg_update(policy, opt, [e], [[1.0, 1.0, 1.0]])
    assert logp() > before
    mid = logp()
    pg_update(policy, opt, [e], [[-1.0, -1.0, -1.0]])
    assert logp() < mid
    with pytest.raises(ValueError, match="arm"):
        grpo_train(policy, [cd("2 3 4>14=")], 1, 1, 2, 1e-4, 0.1, "oracle", random.Random(0))
    with pytest.raises(ValueError, match="iterations"):
        agent_evol(policy, [e], {}, {}, 0, 1, 1, 1, 1e-4, random.Random(0))
    assert run_episodes is not None
