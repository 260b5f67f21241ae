"""labkit.core.screens: the synthetic text-screen apps (notebooks 30 and 31)."""
import copy
import random

import pytest

from labkit.core import screens as S
from labkit.core.gym import TextEnv


def _task(app, difficulty, seed=0, page=None):
    for i in range(200):
        t = S.sample_task(app, difficulty, random.Random(f"{seed}:{i}"))
        if page is None or t.meta["page"] == page:
            return t
    raise AssertionError("no such task")


def _bfs(state, task, depth):
    """Fewest steps to satisfied by brute force over candidate actions + typing the initial values."""
    frontier = [state]
    for d in range(depth + 1):
        nxt = []
        for s in frontier:
            if S.satisfied(s, task):
                return d
            actions = S.candidate_actions(s, task)
            for n, w in enumerate(S.widgets(s), 1):
                if w.kind == "field":
                    actions.append(f"type {n} {task.meta['init']['fields'][w.key]}")
            for a in actions:
                new, err = S.transition(s, a)
                if err is None:
                    nxt.append(new)
        frontier = nxt
    return None


def test_render_by_hand_and_parse_back():
    state = {"app": "settings", "page": "Network", "toggles": {"wifi": True, "bt": False, "air": False, "vpn": True},
             "drafts": {}, "fields": {}, "items": {}, "selected": {},
             "order": {"home": ["Network", "Display", "Sound"], "Network": ["vpn", "back", "wifi", "bt", "air"]}}
    assert S.render(state) == "Settings / Network\n1 [x] VPN\n2 < Back\n3 [x] Wifi\n4 [ ] Bluetooth\n5 [ ] Airplane mode"
    header, ws = S.parse_screen(S.render(state))
    assert header == "Settings / Network"
    assert ws == [(1, "toggle", "VPN", True), (2, "back", "Back", None), (3, "toggle", "Wifi", True),
                  (4, "toggle", "Bluetooth", False), (5, "toggle", "Airplane mode", False)]
    new, err = S.transition(state, "click 4")
    assert err is None and new["toggles"]["bt"] is True and state["toggles"]["bt"] is False   # pure
    assert S.transition(state, "click 2")[0]["page"] == "home"
    assert S.transition(state, "click 9") == (state, "invalid")
    assert S.transition(state, "type 1 abc") == (state, "invalid")
    assert S.transition(state, "press 1") == (state, "malformed")


def test_every_widget_kind_parses_back():
    for app in S.APPS:
        for seed in range(20):
            t = _task(app, 2, seed)
            s = S.initial_state(t)
            for a in t.answer.split(";"):
                header, ws = S.parse_screen(S.render(s))
                assert [k for _, k, _, _ in ws] == [w.kind for w in S.widgets(s)]
                s, err = S.transition(s, a)
                assert err is None
            assert S.satisfied(s, t) and S.distance(s, t) == 0


def test_same_seed_same_tasks_and_held_out_app():
    a, b = S.make_tasks(S.TRAIN_APPS, (1, 3), 30, 7), S.make_tasks(S.TRAIN_APPS, (1, 3), 30, 7)
    assert [t.prompt for t in a] == [t.prompt for t in b]
    assert [t.prompt for t in a] != [t.prompt for t in S.make_tasks(S.TRAIN_APPS, (1, 3), 30, 8)]
    assert {t.category for t in a} <= set(S.TRAIN_APPS) and "mail" in S.HELD_OUT
    assert all(t.meta["app"] == "mail" for t in S.make_tasks("mail", 1, 5, 0))


def test_distance_is_optimal_and_expert_follows_it():
    rng = random.Random(0)
    for app in S.APPS:
        for seed in range(6):
            t = _task(app, rng.randint(1, 2), seed)
            s = S.initial_state(t)
            for _ in range(rng.randint(0, 3)):   # wander a little first
                s, _ = S.transition(s, rng.choice(S.candidate_actions(s, t)))
            d = S.distance(s, t)
            if d is None:
                continue
            assert _bfs(s, t, d) == d
            while d:
                s, err = S.transition(s, S.expert_action(s, t))
                assert err is None and S.distance(s, t) == d - 1
                d -= 1
            assert S.satisfied(s, t)


def test_validator_rejects_collateral_and_wrong_deletes():
    t = _task("files", 1, page="Documents")
    s = S.initial_state(t)
    s, _ = S.transition(s, t.answer.split(";")[0])   # to the page
    target = t.meta["goals"][0][2]
    other = next(w for w in S.widgets(s) if w.kind == "item" and w.key != target)
    n = S.widgets(s).index(other) + 1
    remove = next(i for i, w in enumerate(S.widgets(s), 1) if w.key == "remove")
    s, _ = S.transition(s, f"click {n}")
    s, _ = S.transition(s, f"click {remove}")
    assert S.distance(s, t) is None and S.expert_action(s, t) is None and not S.satisfied(s, t)
    t = _task("settings", 1, page="Network")
    s = S.initial_state(t)
    s, _ = S.transition(s, t.answer.split(";")[0])
    goal_key = t.meta["goals"][0][1]
    n_other = next(i for i, w in enumerate(S.widgets(s), 1) if w.kind == "toggle" and w.key != goal_key)
    s2, _ = S.transition(s, f"click {n_other}")
    assert S.distance(s2, t) == S.distance(s, t) + 1   # the collateral toggle must be undone


def test_fields_count_only_when_committed():
    t = _task("form", 1, page="Personal")
    s = S.initial_state(t)
    plan = t.answer.split(";")
    for a in plan[:-1]:
        s, _ = S.transition(s, a)
    assert not S.satisfied(s, t) and S.distance(s, t) == 1   # typed, not saved
    s, _ = S.transition(s, plan[-1])
    assert S.satisfied(s, t)


def test_env_is_a_text_env_with_append_only_observations():
    env = S.ScreenEnv()
    assert isinstance(env, TextEnv)
    obs = env.reset(3)
    assert obs == env.instruction + "\n" + env.screen + "\n> " and obs == env.prompt
    assert env.reset(3) == obs
    plan = env.task.answer.split(";")
    for i, a in enumerate(plan):
        before = env.observation
        obs, r, done, info = env.step(a)
        assert obs == before + a + "\n" + info["screen"] + "\n> " and info["screen"] == env.screen
        assert info["distance"] == len(plan) - i - 1
        assert (r, done) == ((1.0, True) if i == len(plan) - 1 else (0.0, False))
    with pytest.raises(RuntimeError):
        env.step("click 1")


def test_env_runs_out_of_turns_and_reports_errors():
    t = _task("mail", 1)
    env = S.start_envs([t])[0]
    rewards = []
    for _ in range(t.meta["max_turns"]):
        _, r, done, info = env.step("click 99")
        rewards.append(r)
        assert info["error"] == "invalid"      # a no-op keeps its own error, even on the last turn
    assert done and sum(rewards) == 0
    env.start(t)
    for _ in range(t.meta["max_turns"]):       # wander home <-> a page: valid, never done early
        back = [i for i, w in enumerate(S.widgets(env.state), 1) if w.kind == "back"]
        _, r, done, info = env.step(f"click {back[0] if back else 1}")
    assert done and r == 0 and info["error"] == "turns"


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown app"):
        S.make_tasks("paint", 1, 3, 0)
    with pytest.raises(ValueError):
        S.make_tasks("mail", 4, 3, 0)
    with pytest.raises(ValueError):
        S.ScreenEnv(apps=[])
    with pytest.raises(ValueError):
        S.ScreenEnv().start(copy.copy(None))
    assert S.parse_action("click 0") is None and S.parse_action("type 2") is None
    assert S.parse_action(" type 2 ana ") == ("type", 2, "ana") and S.parse_action(3) is None
    with pytest.raises(ValueError):
        S.parse_screen(None)
