"""29 · Gym evolution: AgentEvol (explore, keep wins, retrain) and AgentEvolver (self-questioning, self-navigating, self-attributing): the mechanism that notebooks/29_gym_evolution.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import copy
import random
from collections import Counter
from functools import lru_cache
import torch
from labkit.core.checks import check_choice, check_float, check_int
from labkit.core.gym import CountdownEnv, Episode, make_envs, run_episodes
from labkit.core.tasks import Task
from labkit.core.tasks.countdown import parse_prompt, tokenize
from labkit.core.tasks.hints import hinted_prompt, procedural_hint
from labkit.nb.n16_verification import sft


KEEP_MODES = ("wins", "random")


def expert_episode(env, task: Task) -> Episode:
    # behaviour-cloning data D_s: the reference solution played through the env, one step per action
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


def pairs(episodes: list[Episode]) -> list[tuple]:
    # an append-only episode is one text: (task, a_1 a_2 .. a_L), the pair notebook 16's sft trains on
    return [(e.task, e.completion) for e in episodes]


def explore(policy, makers: dict, tasks: dict, samples: int, generator=None) -> list[Episode]:
    # AgentEvol's exploration: `samples` episodes of the current agent on every instance of every environment
    samples = check_int("samples", samples, min=1)
    envs = [env for name in makers for env in make_envs(makers[name], [t for t in tasks[name] for _ in range(samples)])]
    return run_episodes(policy, envs, generator)


def keep(episodes: list[Episode], mode: str, rng: random.Random) -> list[Episode]:
    # AgentEvol's filter: D_m = {tau : r(tau) = 1}; control "random": as many episodes drawn regardless of reward
    mode = check_choice("mode", mode, KEEP_MODES)
    wins = [e for e in episodes if e.success]
    if mode == "wins":
        return wins
    return rng.sample(episodes, len(wins))


def agent_evol(base, bc: list[Episode], makers: dict, tasks: dict, iterations: int, samples: int, sft_steps: int,
               batch_size: int, lr: float, rng: random.Random, generator=None, mode: str = "wins", log=None):
    # AgentEvol: theta_m = SFT from the base on D_s U D_m (m = 0: D_s alone); D_{m+1} = kept episodes of
    # pi_{theta_m} exploring every environment; returns pi_{theta_M} and the exploration history
    iterations = check_int("iterations", iterations, min=1)
    mode = check_choice("mode", mode, KEEP_MODES)
    data, history = list(bc), []
    for m in range(iterations):
        policy = copy.deepcopy(base)
        sft(policy, pairs(data), sft_steps, batch_size, lr, rng)
        if m == iterations - 1:
            return policy, history
        explored = explore(policy, makers, tasks, samples, generator)
        kept = keep(explored, mode, rng)
        history.append({"iteration": m, "explored": len(explored), "kept": len(kept),
                        "success": sum(e.success for e in explored) / max(len(explored), 1)})
        if log:
            log(m, history[-1])
        data = list(bc) + kept


def success(policy, makers: dict, tasks: dict, samples: int, generator=None) -> dict:
    # held-out success rate per environment (no hint, T = 1): the share of its episodes with return 1
    episodes = explore(policy, makers, tasks, samples, generator)
    return {name: sum(e.success for e in episodes if e.env == name) / max(sum(e.env == name for e in episodes), 1)
            for name in makers}


def propose(episodes: list[Episode]) -> list[Task]:
    # self-questioning: an explored countdown trajectory that used >= 2 numbers becomes a task whose target is
    # the value it reached (1..999), its reference solution the trajectory itself; one task per distinct prompt
    out, seen = [], set()
    for e in episodes:
        numbers, ops, value = [], [], None
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
    # can acc + term, continued with some of the numbers `left` (in any order, + - *), reach the target?
    if used >= 2 and acc + term == target:
        return True
    for n in set(left):
        rest = list(left)
        rest.remove(n)
        for nxt in ((acc, term * n), (acc + term, n), (acc + term, -n)):
            if _reachable(*nxt, tuple(rest), target, used + 1):
                return True
    return False


def step_flags(episode: Episode) -> list[bool]:
    # self-attributing: step k is GOOD iff the target is still reachable after it (a solving step is GOOD);
    # a malformed, unavailable or stopping step is BAD. The env's exact search stands in for the LLM judge.
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
        flags.append(bool(info.get("correct"))
                     or _reachable(acc, term, tuple(sorted(left.elements())), target, k + 1))
    return flags


def step_advantages(outcomes: list[float], flags: list[list[bool]], alpha: float, fix_base: float = 0.2,
                    attribution: bool = True) -> list[list[float]]:
    # ADCA-GRPO (the authors' `decouple`) over one group of trajectories:
    #   r^prm_k = z(+fix_base if GOOD else -fix_base), z over the group's steps, each trajectory weight 1
    #   r^orm = z(R) over the group, on the last step;  r_k = alpha r^prm_k (+ r^orm at the last step)
    #   A_k = sum_{j >= k} r_j.   attribution=False: A_k = z(R) at every step (outcome-only GRPO)
    if len(outcomes) != len(flags):
        raise ValueError(f"step_advantages needs one flag list per outcome; got {len(flags)} for {len(outcomes)}")
    alpha = check_float("alpha", alpha, min=0)
    R = torch.tensor(outcomes, dtype=torch.float64)
    orm = (R - R.mean()) / (R.std(unbiased=False) + 1e-6)
    steps = [f for fl in flags for f in fl]
    prm = torch.zeros(len(steps), dtype=torch.float64)
    if attribution and steps:
        raw = torch.tensor([fix_base if f else -fix_base for f in steps], dtype=torch.float64)
        w = torch.tensor([1.0 / len(fl) for fl in flags for _ in fl], dtype=torch.float64)
        mean = (raw * w).sum() / w.sum()
        std = ((raw - mean) ** 2 * w).sum().div(w.sum()).sqrt()
        prm = (raw - mean) / (std + 1e-6)
    out, pos = [], 0
    for i, fl in enumerate(flags):
        r = [alpha * float(prm[pos + k]) if attribution else 0.0 for k in range(len(fl))]
        pos += len(fl)
        if r:
            r[-1] += float(orm[i])
        out.append([sum(r[k:]) for k in range(len(r))])
    return out


ARMS = ("outcome", "adca", "adca_shuffled", "navigate")


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


def pg_update(policy, optimizer, episodes: list[Episode], advantages: list[list[float]]) -> float:
    # one on-policy step of L = -sum_t A_{step(t)} log pi(t | prompt, a_<t) / (action tokens): PPO at ratio 1.
    # The prompt is the env's own (a hint shown while acting is stripped here: AgentEvolver's `alldiscard`)
    tok = policy.tokenizer
    enc = [encode(tok, e.prompt, e.actions, e.success or e.actions[-1] == "") for e in episodes]
    width = max(len(ids) for ids, _ in enc)
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r, _ in enc], device=policy.device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in enc], device=policy.device)
    adv = torch.zeros(len(enc), width - 1, dtype=torch.float32)
    act = torch.zeros(len(enc), width - 1, dtype=torch.float32)
    for i, ((_, step_of), a) in enumerate(zip(enc, advantages)):
        for t, s in enumerate(step_of[1:]):
            if s >= 0:
                adv[i, t], act[i, t] = a[s], 1.0
    adv, act = adv.to(policy.device), act.to(policy.device)
    policy.model.train()
    logits = policy.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    loss = -(adv * logp * act).sum() / act.sum().clamp(min=1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
    optimizer.step()
    policy.model.eval()
    return loss.item()


def grpo_train(base, tasks: list[Task], steps: int, per_step: int, group: int, lr: float, alpha: float, arm: str,
               rng: random.Random, generator=None, hint_level: int = 2, exp_ratio: float = 0.5, log=None):
    # `steps` updates, each on `per_step` proposed tasks x `group` episodes (the same rollouts in every arm):
    #   outcome: A = z(R);  adca: step attribution;  adca_shuffled: the flags permuted within the group (control);
    #   navigate: outcome-only, a share exp_ratio of each group acts with the experience (the source trajectory's
    #   hint) shown in front of the prompt, stripped in the update (self-navigating)
    arm = check_choice("arm", arm, ARMS)
    steps, per_step, group = (check_int(n, v, min=1) for n, v in (("steps", steps), ("per_step", per_step), ("group", group)))
    policy = copy.deepcopy(base)
    optimizer = torch.optim.Adam(policy.model.parameters(), lr=lr)
    rollouts = 0
    for step in range(steps):
        chosen = rng.sample(tasks, min(per_step, len(tasks)))
        owners = [t for t in chosen for _ in range(group)]
        envs = [env for t in owners for env in make_envs(lambda t=t: CountdownEnv(t.difficulty), [t])]
        shown = None
        if arm == "navigate":
            guided = [k < round(group * exp_ratio) for t in chosen for k in range(group)]
            shown = [hinted_prompt("", procedural_hint(t, hint_level)) if g else "" for t, g in zip(owners, guided)]
        eps = run_episodes(policy, envs, generator, prompts=shown)
        rollouts += len(eps)
        advs = []
        for g in range(len(chosen)):
            part = eps[g * group:(g + 1) * group]
            flags = [step_flags(e) for e in part]
            if arm == "adca_shuffled":
                pool = [f for fl in flags for f in fl]
                rng.shuffle(pool)
                flags = [pool[sum(map(len, flags[:i])):sum(map(len, flags[:i + 1]))] for i in range(len(flags))]
            advs += step_advantages([e.ret for e in part], flags, alpha, attribution=arm.startswith("adca"))
        loss = pg_update(policy, optimizer, eps, advs)
        if log:
            log(step, {"reward/mean": sum(e.ret for e in eps) / len(eps), "loss": loss})
    return policy, rollouts
