"""labkit.core.gym: the text gym over labkit's worlds (notebook 29), by hand-worked episodes."""
import pytest
import torch

from labkit.core.gym import ChainEnv, CountdownEnv, Episode, LakeEnv, SingleTurnEnv, instances, make_envs, \
    run_episodes, split_action
from labkit.core.tasks import Task


def cd(prompt, answer="1+1"):
    return Task(prompt, answer, "countdown", len(prompt.split(">")[0].split()), "countdown", {})


def test_countdown_steps_and_success():
    env = CountdownEnv(3)
    assert env.start(cd("1 7 12>85=")) == "1 7 12>85="
    assert env.step("1") == ("1 7 12>85=1", 0.0, False, {"value": 1, "distance": 84})
    obs, r, done, info = env.step("+12")
    assert (obs, r, done, info["value"]) == ("1 7 12>85=1+12", 0.0, False, 13)
    obs, r, done, info = env.step("*7")   # precedence: 1 + 12*7
    assert (obs, r, done, info["value"], info["correct"]) == ("1 7 12>85=1+12*7", 1.0, True, 85, True)
    with pytest.raises(RuntimeError):
        env.step("+1")


def test_countdown_errors_end_with_zero():
    env = CountdownEnv(3)
    env.start(cd("2 3 4>9="))
    _, r, done, info = env.step("5")          # not a given number
    assert (r, done, info["error"]) == (0.0, True, "unavailable")
    env.start(cd("2 3 4>9="))
    env.step("2")
    _, r, done, info = env.step("3")          # a number without an operator
    assert (r, done, info["error"]) == (0.0, True, "malformed")
    env.start(cd("2 3 4>9="))
    env.step("2")
    _, r, done, info = env.step("")           # the agent stops
    assert (r, done, info["error"]) == (0.0, True, "stop")
    env.start(cd("2 3 4>99="))
    env.step("2"), env.step("+3")
    _, r, done, info = env.step("+4")         # every number used, target missed
    assert (r, done, info["error"]) == (0.0, True, "exhausted")
    env.start(cd("2 2 4>4="))
    env.step("2")
    _, r, done, _ = env.step("+2")            # reaching the target with two numbers ends it
    assert (r, done) == (1.0, True)
    env.start(cd("4 2 3>4="))
    _, r, done, _ = env.step("4")             # one number equal to the target is not a solution
    assert (r, done) == (0.0, False)


def test_countdown_repeated_number_counts():
    env = CountdownEnv(2)
    env.start(cd("3 5>6="))
    env.step("3")
    _, r, done, info = env.step("+3")
    assert (r, done, info["error"]) == (0.0, True, "unavailable")


def test_reset_is_seeded_and_validates():
    a, b = CountdownEnv(4), CountdownEnv(4)
    assert a.reset(3) == b.reset(3)
    assert a.reset(3) != a.reset(4) or a.reset(5) != a.reset(6)
    with pytest.raises(ValueError):
        a.reset("x")
    with pytest.raises(ValueError):
        CountdownEnv(9)
    with pytest.raises(ValueError):
        SingleTurnEnv("nope", 1)
    with pytest.raises(ValueError):
        a.step(3)


def test_single_turn():
    env = SingleTurnEnv("sub", 2)
    env.start(Task("52-17=", "35", "sub", 2, "arithmetic", {}))
    assert env.step("35")[1:3] == (1.0, True)
    env.start(Task("52-17=", "35", "sub", 2, "arithmetic", {}))
    assert env.step("36")[1:3] == (0.0, True)


def test_chain_env():
    from labkit.core.chains import make_chain
    import random
    env = ChainEnv(2)
    task = make_chain(2, random.Random(0))
    env.start(task)
    from labkit.core.chains import solution_steps
    s1, s2 = solution_steps(task)
    assert env.step(s1.text + ";")[1:3] == (0.0, False)
    assert env.step(s2.text)[1:3] == (1.0, True)
    env.start(task)
    _, r, done, info = env.step(f"{s1.left}{s1.op}{s1.operand}={s1.result + 1};")
    assert (r, done, info["error"]) == (0.0, True, "wrong")


def test_lake_env_deterministic():
    env = LakeEnv(slip=0.0)
    env.reset(0)
    # SFFF / FHFH / FFFH / HFFG: down down right right down right reaches G (cell 15)
    for a in "ddrrd":
        assert env.step(a)[1:3] == (0.0, False)
    obs, r, done, _ = env.step("r")
    assert (r, done, obs[-1]) == (1.0, True, "p")
    env.reset(0)
    assert env.step("x")[1:3] == (0.0, True)   # not an action


def test_split_action():
    env = CountdownEnv(3)
    env.start(cd("1 7 12>85="))
    assert split_action(env, "1+12*7") == "1"
    env.step("1")
    assert split_action(env, "+12*7") == "+12"
    assert split_action(env, "") == ""
    chain = ChainEnv(2)
    assert split_action(chain, "1+2=3;3+1=4") == "1+2=3;"
    assert split_action(SingleTurnEnv("add", 1), "12") == "12"


def test_instances_and_episode():
    assert instances(CountdownEnv(3), 4, 1) == instances(CountdownEnv(3), 4, 1)
    e = Episode("countdown3", cd("1 2>3="), ["1", "+2"], [0.0, 1.0], [{}, {}], "1 2>3=")
    assert (e.completion, e.ret, e.success) == ("1+2", 1.0, True)


def test_run_episodes_with_scripted_policy(monkeypatch):
    # a scripted "model": always continues with the whole reference solution; the env takes one step a call
    import labkit.core.sampling as sampling

    class Fake:
        def __init__(self, completions):
            self.completions = completions

    calls = []

    def fake_rollout(policy, prompts, *a, **k):
        calls.append(list(prompts))
        return Fake(["1+12*7"[len(p) - len("1 7 12>85="):] for p in prompts])

    monkeypatch.setattr(sampling, "rollout", fake_rollout)
    envs = make_envs(lambda: CountdownEnv(3), [cd("1 7 12>85=")] * 2)
    eps = run_episodes(None, envs, torch.Generator())
    assert [e.actions for e in eps] == [["1", "+12", "*7"]] * 2
    assert all(e.success for e in eps) and len(calls) == 3
    with pytest.raises(ValueError):
        run_episodes(None, envs, prompts=["a"])
