import random, time, torch, sys, re
torch.set_num_threads(1)
from torch.nn import functional as F
from n31 import *
from labkit.core import screens as S
seed = int(sys.argv[1]); torch.manual_seed(seed); rng = random.Random(seed); g = torch.Generator().manual_seed(seed)
t0 = time.time()
def play(tasks, choose):
    envs = S.start_envs(tasks); eps = [{"i": e.instruction, "s": [e.screen], "a": [], "ok": False} for e in envs]
    while True:
        live = [k for k, e in enumerate(envs) if not e.done]
        if not live: return eps
        acts = choose([eps[k]["i"] for k in live], [eps[k]["s"][-1] for k in live])
        for k, a in zip(live, acts):
            _, r, _, _ = envs[k].step(a); eps[k]["a"].append(a); eps[k]["s"].append(envs[k].screen); eps[k]["ok"] = r > 0
def rand_choose(ins, scr): return [rng.choice(screen_candidates(i, s)) for i, s in zip(ins, scr)]
def pi_choose(pi, greedy):
    def c(ins, scr):
        cands = [screen_candidates(i, s) for i, s in zip(ins, scr)]
        with torch.no_grad(): lg = pi(ins, scr, cands)
        idx = lg.argmax(-1) if greedy else torch.multinomial(lg.softmax(-1), 1, generator=g).squeeze(1)
        return [cs[int(k)] for cs, k in zip(cands, idx)]
    return c
def la_choose(pi, wm, k=3, depth=2):
    def c(ins, scr):
        cands = [screen_candidates(i, s) for i, s in zip(ins, scr)]
        with torch.no_grad(): lg = pi(ins, scr, cands)
        out = []
        for b, (i, s, cs) in enumerate(zip(ins, scr, cands)):
            top = [cs[int(j)] for j in lg[b].topk(min(k, len(cs))).indices]
            best, bs = top[0], 0.0
            for a in top:
                cur, act, score = s, a, 0.0
                for d in range(depth):
                    nxt = wm.predict([cur], [act])[0]
                    if screen_judge(i, cur, act, nxt): score = 0.9 ** d; break
                    try: nc = screen_candidates(i, nxt)
                    except Exception: nc = []
                    if not nc or d == depth - 1: break
                    with torch.no_grad(): act = nc[int(pi([i], [nxt], [nc]).argmax())]
                    cur = nxt
                if score > bs: best, bs = a, score
            out.append(best)
        return out
    return c
real = play(S.make_tasks(S.TRAIN_APPS, (1, 3), 400, 100 + seed), rand_choose)
print("real success", sum(e["ok"] for e in real) / len(real), f"{time.time()-t0:.0f}s", flush=True)
trans = [(e["s"][t], e["a"][t], e["s"][t + 1]) for e in real for t in range(len(e["a"]))]
def train_wm(shuffle):
    torch.manual_seed(seed + 1); wm = WorldModel(); wm.extend_vocab([x for tr in trans for x in (tr[0], tr[2])])
    nxt = [tr[2] for tr in trans]
    if shuffle: random.Random(seed).shuffle(nxt)
    opt = torch.optim.Adam(wm.parameters(), 3e-3)
    for _ in range(300):
        idx = torch.randint(len(trans), (64,), generator=g).tolist()
        loss = world_model_loss(wm, [trans[i][0] for i in idx], [trans[i][1] for i in idx], [nxt[i] for i in idx])
        opt.zero_grad(); loss.backward(); opt.step()
    return wm
wm, shuf = train_wm(False), train_wm(True)
test = play(S.make_tasks(S.TRAIN_APPS, (1, 3), 100, 200 + seed), rand_choose)
tt = [(e["s"][t], e["a"][t], e["s"][t + 1]) for e in test for t in range(len(e["a"]))]
for name, m in (("wm", wm), ("shuffled", shuf)):
    p = m.predict([x[0] for x in tt], [x[1] for x in tt]); print(name, "next-screen acc", sum(a == x[2] for a, x in zip(p, tt)) / len(tt))
print(f"{time.time()-t0:.0f}s", flush=True)
def imagine(pi, m, n=400):
    tasks = S.make_tasks(S.TRAIN_APPS, (1, 3), n, 300 + seed); starts = [tr[0] for tr in trans]
    eps = []
    for t in tasks:
        s = rng.choice([x for x in starts if x.startswith(S._SPEC[t.meta["app"]][0])])
        eps.append({"i": t.meta["instruction"], "s": [s], "a": [], "ok": False, "T": t.meta["max_turns"]})
    live = eps
    for step in range(9):
        live = [e for e in live if not e["ok"] and len(e["a"]) < e["T"]]
        live = [e for e in live if screen_candidates(e["i"], e["s"][-1])]
        if not live: break
        acts = pi_choose(pi, False)([e["i"] for e in live], [e["s"][-1] for e in live])
        nxt = m.predict([e["s"][-1] for e in live], acts)
        for e, a, o in zip(live, acts, nxt):
            e["ok"] = screen_judge(e["i"], e["s"][-1], a, o); e["a"].append(a); e["s"].append(o)
    return eps
def bc(eps, steps=300):
    torch.manual_seed(seed + 2); pi = Policy(); opt = torch.optim.Adam(pi.parameters(), 3e-3)
    data = [(e["i"], e["s"][t], e["a"][t]) for e in eps if e["ok"] for t in range(len(e["a"]))]
    data = [d for d in data if d[2] in screen_candidates(d[0], d[1])]
    for _ in range(steps):
        idx = torch.randint(len(data), (64,), generator=g).tolist()
        ins, scr = [data[i][0] for i in idx], [data[i][1] for i in idx]; cands = [screen_candidates(a, b) for a, b in zip(ins, scr)]
        y = torch.tensor([c.index(data[i][2]) for c, i in zip(cands, idx)])
        loss = F.cross_entropy(pi(ins, scr, cands), y); opt.zero_grad(); loss.backward(); opt.step()
    return pi, len(data)
pi_real, n = bc(real); print("real pairs", n, f"{time.time()-t0:.0f}s", flush=True)
res = {}
for name, m in (("wm", wm), ("shuffled", shuf)):
    syn = imagine(pi_real, m); print(name, "synthetic judged done", sum(e["ok"] for e in syn) / len(syn), flush=True)
    res[name], n = bc(real + syn); print(name, "pairs", n, f"{time.time()-t0:.0f}s", flush=True)
ev = {"train": S.make_tasks(S.TRAIN_APPS, (1, 3), 150, 400 + seed), "mail": S.make_tasks(S.HELD_OUT, (1, 3), 150, 400 + seed)}
for arm, pi in (("real", pi_real), ("real+wm", res["wm"]), ("real+shuffled", res["shuffled"])):
    print(arm, "greedy", {k: sum(e["ok"] for e in play(v, pi_choose(pi, True))) / len(v) for k, v in ev.items()}, f"{time.time()-t0:.0f}s", flush=True)
for name, m in (("wm", wm), ("shuffled", shuf)):
    print("real+wm policy, look-ahead with", name, {k: sum(e["ok"] for e in play(v, la_choose(res["wm"], m))) / len(v) for k, v in ev.items()}, f"{time.time()-t0:.0f}s", flush=True)
