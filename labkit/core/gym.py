"""A small text gym over labkit's worlds (notebook 29; meant for the agent notebooks after it).

Every environment speaks text, gym-style:

    obs = env.reset(seed)                      # a fresh instance drawn from the seed (or env.start(task))
    obs, reward, done, info = env.step(action) # one action text; the env checks it

Text environments are *append-only*: the next observation is the last one followed by the action
(``obs_{k+1} = obs_k + a_k``; the lake also appends the cell it lands in), so a whole episode is one string, ``env.prompt + "".join(actions)``,
and a language model that writes the expression in one go and one that acts a step at a time see the
same text. ``Episode`` keeps (prompt, actions, rewards, infos); ``Episode.completion`` is the actions
joined, the text to train on.

- ``SingleTurnEnv(category, difficulty)``: any task world of ``labkit.core.tasks`` as one turn (the
  answer is the action, the verifier's reward, done).
- ``CountdownEnv(difficulty)``: countdown one operation per step. The first action is a given number
  ("7"), each later one an operator and a number ("*3"); the env checks each step: a malformed step or
  a number not left ends the episode with reward 0 (``info["error"]``); reaching the target with at least
  two numbers ends it with reward 1; an empty action (the agent stops) or no number left ends it with 0.
- ``ChainEnv(ops)``: an arithmetic chain (``labkit.core.chains``) one written step per action
  ("7-5=2;"); a wrong step ends the episode with 0, the last right step with 1.
- ``LakeEnv(slip)``: ``labkit.core.control.discrete.FrozenLake`` as text: actions "l", "d", "r", "u";
  the observation grows by the action and the new cell as a letter (a..p on the 4x4 map).

``split_action(env_name, text)`` cuts a model's continuation to one action (what a policy call
returns), and ``run_episodes(policy, envs, ...)`` plays a batch of episodes with a language policy, one
model call per step for every live episode at once.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

import torch

from labkit.core.checks import check_int
from labkit.core.tasks import Task, make_tasks, sample_task, verify
from labkit.core.tasks.countdown import evaluate, parse_prompt

__all__ = ["TextEnv", "SingleTurnEnv", "CountdownEnv", "ChainEnv", "LakeEnv", "Episode", "split_action",
           "run_episodes", "make_envs"]

_COUNTDOWN_FIRST = re.compile(r"(0|[1-9][0-9]*)")
_COUNTDOWN_NEXT = re.compile(r"([+*-])(0|[1-9][0-9]*)")


class TextEnv:
    """The gym interface: reset(seed) / start(task) -> observation; step(action) -> (obs, reward, done, info)."""

    name = "text"
    max_turns = 1

    def __init__(self):
        self.task: Task | None = None
        self.observation = ""
        self.done = True
        self.turns = 0

    def sample(self, rng: random.Random) -> Task:   # an instance drawn with rng
        raise NotImplementedError

    def reset(self, seed: int) -> str:
        """A fresh instance drawn from `seed` (the same seed, the same instance)."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"{type(self).__name__}.reset: seed must be an integer; got {seed!r}")
        return self.start(self.sample(random.Random(f"{self.name}:{seed}")))

    def start(self, task: Task) -> str:
        """Start an episode on a given instance (a held-out task, a proposed one)."""
        if not isinstance(task, Task):
            raise ValueError(f"{type(self).__name__}.start needs a Task; got {task!r}")
        self.task, self.observation, self.done, self.turns = task, task.prompt, False, 0
        self._begin()
        return self.observation

    def _begin(self) -> None:
        pass

    def step(self, action: str):
        if self.done:
            raise RuntimeError(f"{type(self).__name__}.step called on a finished episode: reset it first")
        if not isinstance(action, str):
            raise ValueError(f"{type(self).__name__}.step: the action must be a string; got {action!r}")
        self.turns += 1
        self.echo = ""   # what the world writes after the action (the lake's new cell)
        reward, done, info = self._act(action)
        self.observation += action + self.echo
        if not done and self.turns >= self.max_turns:
            done, info = True, {**info, "error": info.get("error", "turns")}
        self.done = done
        return self.observation, float(reward), done, info

    def _act(self, action: str):
        raise NotImplementedError

    @property
    def prompt(self) -> str:
        return self.task.prompt


class SingleTurnEnv(TextEnv):
    """One task of `category` at `difficulty`: the answer is the only action; reward = the verifier's."""

    def __init__(self, category: str, difficulty: int):
        super().__init__()
        sample_task(category, difficulty, random.Random(0))   # validates both (one-line ValueError)
        self.category, self.difficulty = category, difficulty
        self.name = f"{category}{difficulty}"

    def sample(self, rng):
        return sample_task(self.category, self.difficulty, rng)

    def _act(self, action):
        v = verify(self.task, action)
        return v.reward, True, {"correct": v.correct, "format_ok": v.format_ok}


class CountdownEnv(TextEnv):
    """Countdown one operation per step (see the module docstring)."""

    def __init__(self, difficulty: int):
        super().__init__()
        self.difficulty = check_int("difficulty", difficulty, min=2, max=5)
        self.name = f"countdown{difficulty}"
        self.max_turns = self.difficulty

    def sample(self, rng):
        return sample_task("countdown", self.difficulty, rng)

    def _begin(self):
        given, self.target = parse_prompt(self.task.prompt)
        self.left = Counter(given)
        self.numbers: list[int] = []
        self.operators: list[str] = []

    @property
    def expression(self) -> str:
        return self.observation[len(self.task.prompt):]

    def _act(self, action):
        if action == "":
            return 0.0, True, {"error": "stop", "value": self.value()}
        m = (_COUNTDOWN_NEXT if self.numbers else _COUNTDOWN_FIRST).fullmatch(action)
        if m is None:
            return 0.0, True, {"error": "malformed"}
        number = int(m.group(m.lastindex))
        if self.left[number] <= 0:
            return 0.0, True, {"error": "unavailable"}
        self.left[number] -= 1
        self.numbers.append(number)
        if self.numbers[1:]:
            self.operators.append(m.group(1))
        value = self.value()
        info = {"value": value, "distance": abs(value - self.target)}
        if len(self.numbers) >= 2 and value == self.target:
            return 1.0, True, {**info, "correct": True}
        if sum(self.left.values()) == 0:
            return 0.0, True, {**info, "error": "exhausted"}
        return 0.0, False, info

    def value(self) -> int | None:
        return evaluate(self.numbers, self.operators) if self.numbers else None


class ChainEnv(TextEnv):
    """An arithmetic chain, one step `L op X=R` per action, `;` after every step but the last."""

    def __init__(self, ops: int):
        super().__init__()
        self.ops = check_int("ops", ops, min=1, max=6)
        self.name = f"chain{ops}"
        self.max_turns = self.ops

    def sample(self, rng):
        from labkit.core.chains import make_chain
        return make_chain(self.ops, rng)

    def _act(self, action):
        from labkit.core.chains import parse_steps, solution_steps
        right = solution_steps(self.task)[self.turns - 1]
        last = self.turns == len(solution_steps(self.task))
        body = action if last else action[:-1] if action.endswith(";") else None
        steps = None if body is None else parse_steps(body)
        if not steps or len(steps) != 1:
            return 0.0, True, {"error": "malformed"}
        if steps[0] != right:
            return 0.0, True, {"error": "wrong", "step": self.turns}
        return (1.0, True, {"correct": True}) if last else (0.0, False, {})


class LakeEnv(TextEnv):
    """FrozenLake (labkit.core.control.discrete) as text: cell letters a.., actions l d r u."""

    ACTIONS = "ldru"   # gym's order: left, down, right, up

    def __init__(self, slip: float = 0.0, horizon: int = 30):
        super().__init__()
        from labkit.core.control.discrete import FrozenLake
        self.world = FrozenLake(slip=slip, horizon=horizon)
        self.name, self.max_turns = "lake", horizon

    def sample(self, rng):
        self.world.reseed(rng.randrange(2 ** 31))
        return Task("lake:a", "", "lake", 0, "lake", {})

    def start(self, task):
        out = super().start(task)
        self.cell = self.world.start
        return out

    def _act(self, action):
        if len(action) != 1 or action not in self.ACTIONS:
            return 0.0, True, {"error": "malformed"}
        state = self.world.one_hot(torch.tensor([self.cell]))
        move = torch.nn.functional.one_hot(torch.tensor([self.ACTIONS.index(action)]), 4).float()
        nxt, reward = self.world.step(state, move)
        self.cell = int(nxt.argmax())
        self.echo = chr(ord("a") + self.cell)   # the new cell joins the text after the action
        return float(reward), bool(self.world.terminal(nxt)), {"cell": self.cell}


def split_action(env: TextEnv, text: str) -> str:
    """One action from a model's continuation of the observation: countdown its first step, a chain its
    first step with its `;`, a single turn the whole text, the lake its first character."""
    if isinstance(env, CountdownEnv):
        m = (_COUNTDOWN_NEXT if env.numbers else _COUNTDOWN_FIRST).match(text)
        return m.group(0) if m else text[:1]
    if isinstance(env, ChainEnv):
        cut = text.find(";")
        return text if cut < 0 else text[:cut + 1]
    if isinstance(env, LakeEnv):
        return text[:1]
    return text


@dataclass
class Episode:
    """One played episode: its task, the actions, the reward of each step and each step's info."""
    env: str
    task: Task
    actions: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    infos: list[dict] = field(default_factory=list)
    prompt: str = ""

    @property
    def completion(self) -> str:
        return "".join(self.actions)

    @property
    def ret(self) -> float:
        return sum(self.rewards)

    @property
    def success(self) -> bool:
        return self.ret > 0


def run_episodes(policy, envs: list[TextEnv], generator=None, max_new_tokens: int = 20, temperature: float = 1.0,
                 prompts: list[str] | None = None) -> list[Episode]:
    """Play every env (already started) to its end: each turn one model call for every live episode, the
    continuation cut to one action by `split_action`. `prompts` (optional, one per env) is the context the
    policy is shown in front of the observation's own prompt (a hint, say); the env never sees it."""
    from labkit.core.sampling import rollout
    if prompts is not None and len(prompts) != len(envs):
        raise ValueError(f"run_episodes needs one context per env; got {len(prompts)} for {len(envs)}")
    episodes = [Episode(e.name, e.task, prompt=e.prompt) for e in envs]
    while True:
        live = [i for i, e in enumerate(envs) if not e.done]
        if not live:
            return episodes
        shown = [(prompts[i] if prompts else "") + envs[i].observation for i in live]
        batch = rollout(policy, shown, max_new_tokens, temperature, generator=generator)
        for i, text in zip(live, batch.completions):
            action = split_action(envs[i], text)
            _, reward, _, info = envs[i].step(action)
            episodes[i].actions.append(action)
            episodes[i].rewards.append(reward)
            episodes[i].infos.append(info)


def make_envs(make, tasks: list[Task]) -> list[TextEnv]:
    """One env per task, each started on it (make() builds a fresh env)."""
    out = []
    for task in tasks:
        env = make()
        env.start(task)
        out.append(env)
    return out


def instances(env: TextEnv, n: int, seed: int) -> list[Task]:
    """n instances of env's world, the same for the same seed (make_tasks where the world has one)."""
    n = check_int("n", n, min=0)
    if isinstance(env, CountdownEnv):
        return make_tasks("countdown", env.difficulty, n, seed)
    if isinstance(env, SingleTurnEnv):
        return make_tasks(env.category, env.difficulty, n, seed)
    rng = random.Random(f"{env.name}:{seed}")
    return [env.sample(rng) for _ in range(n)]
