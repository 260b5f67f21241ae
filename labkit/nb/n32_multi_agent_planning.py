"""32 · Multi-agent planning: agents with frame budgets who talk mid-run: the mechanism that notebooks/32_multi_agent_planning.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import itertools
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["coverage", "ARMS", "make_videos", "train_reader", "TeamPolicy", "play", "group_advantages", "bayes_ceiling"]

ARMS = ("cpp", "vote", "shuffled", "single")


def make_videos(n, generator, frames=8, values=5, size=4, noise=0.1, asked=3):
    """n short "videos": a counter shown as `count` lit pixels of a size x size image in each frame.
    Returns (pixels (n, T, size*size), counts (n, T), query (n, asked) frame indices, answer (n,)):
    the question names `asked` distinct frames whose counts are distinct; the answer is the
    position in the query of the frame with the largest count."""
    if frames < asked or values < asked or size * size < values - 1 or n < 1:
        raise ValueError(f"make_videos: need frames >= asked, values >= asked, size^2 >= values-1, n >= 1; "
                         f"got frames={frames}, values={values}, size={size}, asked={asked}, n={n}")
    g = generator
    counts = torch.randint(values, (n, frames), generator=g)
    query = torch.rand(n, frames, generator=g).argsort(-1)[:, :asked]
    asked_counts = torch.rand(n, values, generator=g).argsort(-1)[:, :asked]
    counts.scatter_(1, query, asked_counts)
    ranks = torch.rand(n, frames, size * size, generator=g).argsort(-1).argsort(-1)
    pixels = (ranks < counts[..., None]).float() + noise * torch.randn(n, frames, size * size, generator=g)
    answer = asked_counts.argmax(-1)
    return pixels, counts, query, answer


class TeamPolicy(nn.Module):
    """One parameter-shared policy for every agent (MARL with an agent id): a frame encoder, a core MLP
    over [question, memory of the frames seen, received message, who, phase] and three heads: which
    frame to look at (T), which message token to send (M), which answer (asked)."""

    PHASES = 4  # 0 first look, 1 message, 2 second look, 3 answer

    def __init__(self, frames=8, pixels=16, asked=3, vocab=8, agents=2, feat=8, hidden=64):
        super().__init__()
        self.frames, self.asked, self.vocab, self.agents, self.feat = frames, asked, vocab, agents, feat
        self.reader = None  # a frozen frame reader (the perception tool); None: learn an encoder end to end
        self.encode = nn.Sequential(nn.Linear(pixels, 32), nn.ReLU(), nn.Linear(32, feat))
        width = asked * frames + frames * feat + frames + vocab + agents + self.PHASES
        self.core = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.look_query = nn.Linear(hidden, 16)             # pointer head: logit_t = q(h) . k(frame t's descriptor)
        self.look_key = nn.Linear(asked + 1 + feat, 16)
        self.message = nn.Linear(hidden, vocab)
        self.answer = nn.Linear(hidden, asked)

    def forward(self, question, memory, seen, received, who, phase):
        b = question.shape[0]
        x = torch.cat([question.flatten(1), memory.flatten(1), seen, received,
                       F.one_hot(torch.full((b,), who), self.agents).float(),
                       F.one_hot(torch.full((b,), phase), self.PHASES).float()], -1)
        return self.core(x)

    def look(self, h, question, memory, seen):
        """Logits over the T frames: a pointer from the state to each frame's descriptor
        [which asked slot it is (or none), seen yet, what was read there]."""
        keys = self.look_key(torch.cat([question.transpose(1, 2), seen[..., None], memory], -1))   # (n, T, 16)
        return (keys @ self.look_query(h)[..., None]).squeeze(-1)


def _draw(logits, greedy, generator):
    """Sample (or argmax) a categorical; returns (index, log-prob, entropy)."""
    logp = logits.log_softmax(-1)
    idx = logp.argmax(-1) if greedy else torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
    return idx, logp.gather(1, idx[:, None]).squeeze(1), -(logp.exp() * logp).sum(-1)


def play(policy, pixels, query, arm="cpp", greedy=False, generator=None):
    """One episode per row. cpp: agents look at one frame each, send a token, read the other's token,
    look at a second frame, answer; the team answer is drawn from the mean of their answer distributions.
    vote: the same without the message (independent agents, soft majority vote). shuffled: the received
    token comes from another episode of the batch. single: one agent with the team's budget (agents looks
    per phase), no message. Returns dict(answer, logp (summed over every action taken), entropy, looks)."""
    if arm not in ARMS:
        raise ValueError(f"play: arm must be one of {ARMS}; got {arm!r}")
    n, T, _ = pixels.shape
    A = policy.agents
    question = F.one_hot(query, T).float()
    if policy.reader is not None:
        with torch.no_grad():
            feats = policy.reader(pixels).softmax(-1)     # the tool's reading of each frame: p(count)
    else:
        feats = policy.encode(pixels)                   # (n, T, feat)
    zeros_msg = torch.zeros(n, policy.vocab)
    logp = torch.zeros(n)
    ent = torch.zeros(n)
    looks = []

    def observe(mem, seen, frame):
        hit = F.one_hot(frame, T).float()
        seen = torch.maximum(seen, hit)
        return feats * seen[..., None], seen

    if arm == "single":
        mem, seen = torch.zeros(n, T, policy.feat), torch.zeros(n, T)
        for phase in (0, 2):
            frames = []
            for slot in range(A):
                h = policy(question, mem, seen, zeros_msg, slot, phase)
                f, lp, e = _draw(policy.look(h, question, mem, seen), greedy, generator)
                logp, ent = logp + lp, ent + e
                frames.append(f)
            for f in frames:
                mem, seen = observe(mem, seen, f)
                looks.append(f)
        h = policy(question, mem, seen, zeros_msg, 0, 3)
        a, lp, e = _draw(policy.answer(h), greedy, generator)
        return {"answer": a, "logp": logp + lp, "entropy": ent + e, "looks": torch.stack(looks, 1)}

    mems = [torch.zeros(n, T, policy.feat) for _ in range(A)]
    seens = [torch.zeros(n, T) for _ in range(A)]
    for i in range(A):                                   # phase 0: each agent's first look (its plan)
        h = policy(question, mems[i], seens[i], zeros_msg, i, 0)
        f, lp, e = _draw(policy.look(h, question, mems[i], seens[i]), greedy, generator)
        logp, ent = logp + lp, ent + e
        mems[i], seens[i] = observe(mems[i], seens[i], f)
        looks.append(f)
    received = [zeros_msg] * A
    if arm != "vote":                                    # phase 1: mid-run messages
        tokens = []
        for i in range(A):
            h = policy(question, mems[i], seens[i], zeros_msg, i, 1)
            m, lp, e = _draw(policy.message(h), greedy, generator)
            logp, ent = logp + lp, ent + e
            tokens.append(m)
        if arm == "shuffled":
            perm = torch.randperm(n, generator=generator)
            tokens = [m[perm] for m in tokens]
        onehots = [F.one_hot(m, policy.vocab).float() for m in tokens]
        # each agent receives the sum of the others' tokens (one token when A = 2)
        received = [sum(onehots[j] for j in range(A) if j != i) for i in range(A)]
    for i in range(A):                                   # phase 2: the updated plan's second look
        h = policy(question, mems[i], seens[i], received[i], i, 2)
        f, lp, e = _draw(policy.look(h, question, mems[i], seens[i]), greedy, generator)
        logp, ent = logp + lp, ent + e
        mems[i], seens[i] = observe(mems[i], seens[i], f)
        looks.append(f)
    probs = torch.stack([policy.answer(policy(question, mems[i], seens[i], received[i], i, 3)).softmax(-1)
                         for i in range(A)]).mean(0)     # p_team = mean_i pi_i(y | ...)
    team_logits = probs.clamp_min(1e-12).log()
    a, lp, e = _draw(team_logits, greedy, generator)
    return {"answer": a, "logp": logp + lp, "entropy": ent + e, "looks": torch.stack(looks, 1)}


def group_advantages(rewards, group):
    """A = r - mean of the video's group (Dr. GRPO: no division by the spread)."""
    if rewards.ndim != 1 or group < 1 or rewards.shape[0] % group:
        raise ValueError(f"group_advantages: rewards must be 1-D with a multiple of group={group} rows; got {tuple(rewards.shape)}")
    r = rewards.view(-1, group)
    return (r - r.mean(1, keepdim=True)).flatten()


def bayes_ceiling(known, values=5, asked=3):
    """The best accuracy possible knowing the counts of `known` of the asked frames (uniform distinct counts)."""
    triples = list(itertools.permutations(range(values), asked))
    best = {}
    for t in triples:
        key = t[:known]
        best.setdefault(key, [0] * asked)
        best[key][max(range(asked), key=lambda j: t[j])] += 1
    return sum(max(v) for v in best.values()) / len(triples)


def train_reader(generator, values=5, size=4, noise=0.1, steps=600, batch=256, lr=1e-2):
    """The perception tool: an MLP that reads a frame's count, trained supervised on fresh frames."""
    reader = nn.Sequential(nn.Linear(size * size, 32), nn.ReLU(), nn.Linear(32, values))
    opt = torch.optim.Adam(reader.parameters(), lr=lr)
    for _ in range(steps):
        pixels, counts, _, _ = make_videos(batch // 8, generator, values=values, size=size, noise=noise)
        loss = F.cross_entropy(reader(pixels.flatten(0, 1)), counts.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in reader.parameters():
        p.requires_grad_(False)
    return reader


def coverage(looks, query):
    """|F ∩ q| / |q| per row: the share of the asked frames that any look of the team landed on."""
    if looks.ndim != 2 or query.ndim != 2 or looks.shape[0] != query.shape[0]:
        raise ValueError(f"coverage: looks (n, L) and query (n, k); got {tuple(looks.shape)} and {tuple(query.shape)}")
    return (query[:, :, None] == looks[:, None, :]).any(-1).float().mean(1)
