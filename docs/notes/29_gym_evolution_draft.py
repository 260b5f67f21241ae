from __future__ import annotations
import copy
import random
from collections import Counter
from functools import lru_cache
import torch
from labkit.core.checks import check_choice, check_int
from labkit.core.gym import CountdownEnv, Episode, make_envs, run_episodes
from labkit.core.tasks import Task
from labkit.core.tasks.countdown import parse_prompt, tokenize


def expert_episode(env, task: Task) -> Episode:
    # behaviour-cloning data: the reference solution played through the env, one step per action
    env.start(task)
    episode = Episode(env.name, task, prompt=env.prompt)
    if isinstance(env, CountdownEnv):
        numbers, ops = tokenize(task.answer)
        actions = [str(numbers[0])] + [o + str(n) for o, n in zip(ops, numbers[1:])]
    else:
        actions = [task.answer]
    for action in actions:
        if env.done:
            break
        _, reward, _, info = env.step(action)
        episode.actions.append(action)
        episode.rewards.append(reward)
        episode.infos.append(info)
    return episode


def encode(tokenizer, prompt: str, actions: list[str], eos: bool):
    # ids of prompt + actions (+ EOS) and, per id, the step it belongs to (-1: the prompt; EOS: the last step)
    ids = tokenizer(prompt)["input_ids"]
    step_of = [-1] * len(ids)
    for k, action in enumerate(actions):
        part = tokenizer(action, add_special_tokens=False)["input_ids"]
        ids += part
        step_of += [k] * len(part)
    if eos:
        ids.append(tokenizer.eos_token_id)
        step_of.append(max(len(actions) - 1, 0))
    return ids, step_of


def token_logprobs(policy, rows):
    # log pi(token | prefix) of every id after the first, right-padded rows; returns (logp, mask of real ids)
    pad = policy.tokenizer.pad_token_id
    width = max(map(len, rows))
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=policy.device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=policy.device)
    logits = policy.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return logp, mask[:, 1:]


def sft(policy, episodes: list[Episode], steps: int, batch_size: int, lr: float, rng: random.Random):
    # behaviour cloning: min -E_{tau ~ D} sum_t log pi(a_t | o_t), the actions of a trajectory and its EOS
    steps = check_int("steps", steps, min=0)
    optimizer = torch.optim.Adam(policy.model.parameters(), lr=lr)
    losses = []
    if not episodes:
        return losses
    policy.model.train()
    for _ in range(steps):
        batch = [episodes[rng.randrange(len(episodes))] for _ in range(batch_size)]
        enc = [encode(policy.tokenizer, e.prompt, e.actions, True) for e in batch]
        logp, mask = token_logprobs(policy, [ids for ids, _ in enc])
        labels = torch.zeros_like(mask)
        for i, (_, step_of) in enumerate(enc):
            labels[i, :len(step_of) - 1] = torch.tensor([s >= 0 for s in step_of[1:]])
        loss = -(logp * labels).sum() / labels.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    policy.model.eval()
    return losses


def explore(policy, makers: dict, tasks: dict, samples: int, generator=None) -> list[Episode]:
    # AgentEvol's exploration: `samples` episodes of the current agent on every instance of every environment
    envs = [make_envs(makers[name], [t for t in tasks[name] for _ in range(samples)]) for name in makers]
    return run_episodes(policy, [e for group in envs for e in group], generator)


def keep(episodes: list[Episode], mode: str, rng: random.Random) -> list[Episode]:
    # AgentEvol's filter: D_m = {tau : r(tau) = 1}; control "random": as many episodes drawn regardless of reward
    mode = check_choice("mode", mode, ("wins", "random"))
    wins = [e for e in episodes if e.success]
    if mode == "wins":
        return wins
    return rng.sample(episodes, len(wins))


def agent_evol(base, bc: list[Episode], makers: dict, tasks: dict, iterations: int, samples: int, sft_steps: int,
               batch_size: int, lr: float, rng: random.Random, generator=None, mode: str = "wins", log=None):
    # AgentEvol: theta_m = SFT from the base on D_s U D_m; D_{m+1} = kept episodes of pi_{theta_m} exploring
    iterations = check_int("iterations", iterations, min=1)
    data, history = list(bc), []
    for m in range(iterations):
        policy = copy.deepcopy(base)
        sft(policy, data, sft_steps, batch_size, lr, rng)
        if m == iterations - 1:
            return policy, history
        explored = explore(policy, makers, tasks, samples, generator)
        kept = keep(explored, mode, rng)
        history.append({"iteration": m, "explored": len(explored), "kept": len(kept),
                        "success": sum(e.success for e in explored) / max(len(explored), 1)})
        if log:
            log(history[-1])
        data = list(bc) + kept


# ---------------- AgentEvolver ----------------

def propose(episodes: list[Episode]) -> list[Task]:
    # self-questioning: an explored countdown trajectory becomes a task whose target is the value it reached
    out, seen = [], set()
    for e in episodes:
        numbers, ops = [], []
        value = None
        for a, info in zip(e.actions, e.infos):
            if "value" not in info or a == "":
                break
            numbers.append(int(a.lstrip("+-*")))
            ops += [a[0]] if len(numbers) > 1 else []
            value = info["value"]
        if len(numbers) < 2 or value is None or not 1 <= value <= 999:
            continue
        given, _ = parse_prompt(e.task.prompt)
        prompt = " ".join(map(str, given)) + f">{value}="
        if prompt in seen:
            continue
        seen.add(prompt)
        answer = str(numbers[0]) + "".join(o + str(n) for o, n in zip(ops, numbers[1:]))
        out.append(Task(prompt, answer, "countdown", len(given), "countdown",
                        {"numbers": given, "target": value, "proposed_from": e.task.prompt}))
    return out


@lru_cache(maxsize=None)
def _reachable(acc: int, term: int, left: tuple, target: int, used: int) -> bool:
    if used >= 2 and acc + term == target:
        return True
    for n in set(left):
        rest = list(left)
        rest.remove(n)
        rest = tuple(rest)
        for nxt in ((acc, term * n), (acc + term, n), (acc + term, -n)):
            if _reachable(*nxt, rest, target, used + 1):
                return True
    return False


def step_flags(episode: Episode) -> list[bool]:
    # the attribution: step k is GOOD iff the target is still reachable after it (a solve is reachable);
    # a malformed, unavailable or stopping step is BAD
    given, target = parse_prompt(episode.prompt)
    left, acc, term, flags = Counter(given), 0, 0, []
    for k, (a, info) in enumerate(zip(episode.actions, episode.infos)):
        if "value" not in info or a == "":
            flags.append(False)
            continue
        n = int(a.lstrip("+-*"))
        left[n] -= 1
        if k == 0:
            term = n
        elif a[0] == "*":
            term *= n
        else:
            acc, term = acc + term, (n if a[0] == "+" else -n)
        flags.append(bool(info.get("correct")) or _reachable(acc, term, tuple(sorted(left.elements())), target, k + 1))
    return flags


def _z(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    mean = (values * weights).sum() / weights.sum()
    std = ((values - mean) ** 2 * weights).sum().div(weights.sum()).sqrt()
    return (values - mean) / (std + 1e-6)


def step_advantages(outcomes: list[float], flags: list[list[bool]], alpha: float, fix_base: float = 0.2,
                    attribution: bool = True) -> list[list[float]]:
    # ADCA-GRPO (decouple): r_k = alpha z(+-fix_base) over the group's steps (each trajectory weight 1),
    # plus z(R) on the last step; A_k = sum_{j >= k} r_j. attribution=False: A_k = z(R) (outcome-only GRPO)
    R = torch.tensor(outcomes, dtype=torch.float64)
    orm = (R - R.mean()) / (R.std(unbiased=False) + 1e-6)
    out = []
    if attribution and any(flags):
        prm = torch.tensor([fix_base if f else -fix_base for fl in flags for f in fl], dtype=torch.float64)
        w = torch.tensor([1.0 / len(fl) for fl in flags for _ in fl], dtype=torch.float64)
        prm = _z(prm, w) if prm.numel() > 1 else prm * 0
    pos = 0
    for i, fl in enumerate(flags):
        rewards = [0.0] * len(fl)
        if attribution:
            rewards = [alpha * float(prm[pos + k]) for k in range(len(fl))]
        pos += len(fl)
        if rewards:
            rewards[-1] += float(orm[i])
        adv = [sum(rewards[k:]) for k in range(len(rewards))]
        out.append(adv)
    return out


def pg_update(policy, optimizer, episodes: list[Episode], advantages: list[list[float]]):
    # one on-policy step of L = -mean over action tokens of A_{step(t)} log pi(t | prefix) (PPO clip at ratio 1)
    enc = [encode(policy.tokenizer, e.prompt, e.actions, e.success or e.actions[-1] == "") for e in episodes]
    logp, mask = token_logprobs(policy, [ids for ids, _ in enc])
    adv = torch.zeros_like(logp)
    for i, ((_, step_of), a) in enumerate(zip(enc, advantages)):
        for t, s in enumerate(step_of[1:]):
            if s >= 0:
                adv[i, t] = a[s]
    weight = (adv != 0).float() + 0 * mask
    tokens = torch.tensor([[s >= 0 for s in so[1:]] + [False] * (logp.shape[1] - len(so) + 1) for _, so in enc],
                          device=logp.device).float()
    loss = -(adv * logp * tokens).sum() / tokens.sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
    optimizer.step()
    del weight
    return loss.item()


def grpo_train(base, tasks: list[Task], steps: int, per_step: int, group: int, lr: float, alpha: float,
               attribution: bool, rng: random.Random, generator=None, log=None):
    policy = copy.deepcopy(base)
    optimizer = torch.optim.Adam(policy.model.parameters(), lr=lr)
    rollouts = 0
    for step in range(steps):
        chosen = rng.sample(tasks, per_step)
        envs = make_envs(lambda t=None: CountdownEnv(chosen[0].difficulty), [t for t in chosen for _ in range(group)])
        policy.model.eval()
        eps = run_episodes(policy, envs, generator)
        rollouts += len(eps)
        advs = []
        for g in range(per_step):
            part = eps[g * group:(g + 1) * group]
            advs += step_advantages([e.ret for e in part], [step_flags(e) for e in part], alpha,
                                    attribution=attribution)
        policy.model.train()
        loss = pg_update(policy, optimizer, eps, advs)
        if log:
            log(step, {"reward": sum(e.ret for e in eps) / len(eps), "loss": loss})
    policy.model.eval()
    return policy, rollouts
