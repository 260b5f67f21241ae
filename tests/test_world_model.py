"""Notebook 31's mechanism (labkit.nb.n31_world_model): reading screens as text, the screen judge, the world
model and its loss, the policy, imagined episodes and world-model look-ahead."""
import random

import pytest
import torch
from torch.nn import functional as F

from labkit.core import screens as S
from labkit.nb.n31_world_model import (MAX_LINES, Bagger, Policy, WorldModel, clauses, greedy_actions, imagine,
                                       imitation_loss, lookahead, next_screen_accuracy, play, screen_candidates,
                                       screen_judge, screen_lines, world_model_loss)

HOME = "Settings\n1 > Network\n2 > Display\n3 > Sound"
SOUND_OFF = "Settings / Sound\n1 [ ] Mute\n2 < Back"
SOUND_ON = "Settings / Sound\n1 [x] Mute\n2 < Back"
MUTE = "in Sound, turn on Mute"


class RankPolicy:
    """A stand-in policy: prefers the candidates in screen order (logit -index), -inf past each row's."""

    def __call__(self, instructions, screens, candidates):
        width = max(len(c) for c in candidates)
        out = torch.full((len(candidates), width), float("-inf"))
        for i, c in enumerate(candidates):
            out[i, :len(c)] = -torch.arange(len(c), dtype=torch.float)
        return out


class TableModel:
    """A stand-in world model: (screen, action) -> next screen from a table; anything else keeps the screen."""

    def __init__(self, table):
        self.table, self.calls = table, 0

    def predict(self, screens, actions):
        self.calls += len(screens)
        return [self.table.get((o, a), o) for o, a in zip(screens, actions)]


def _random_episodes(n, seed, apps=S.TRAIN_APPS):
    rng = random.Random(seed)
    return play(lambda xs, os_: [rng.choice(screen_candidates(x, o)) for x, o in zip(xs, os_)],
                S.make_tasks(apps, (1, 3), n, seed))


# -- reading screens


def test_screen_candidates_by_hand():
    screen = "Profile / Personal\n1 Name: []\n2 [ ] Public\n3 Phone: [ana]\n4 (Save)\n5 < Back"
    instruction = 'in Personal, set Name to "kiwi", set Phone to "ivy", set Nick to "kiwi", then save'
    assert screen_candidates(instruction, screen) == [
        "click 1", "type 1 kiwi", "type 1 ivy", "click 2", "click 3", "type 3 kiwi", "type 3 ivy", "click 4", "click 5"]
    assert screen_candidates(MUTE, HOME) == ["click 1", "click 2", "click 3"]
    assert screen_candidates(MUTE, "Settings\n1 ?? not a widget") == []   # lines that are not widgets are skipped
    with pytest.raises(ValueError):
        screen_candidates(MUTE, None)


def test_screen_candidates_equal_the_apps_candidates():
    rng = random.Random(0)
    checked = 0
    for env in S.start_envs(S.make_tasks(S.APPS, (1, 3), 100, 1)):
        while not env.done:
            expected = S.candidate_actions(env.state, env.task)
            assert screen_candidates(env.instruction, env.screen) == expected, (env.instruction, env.screen)
            env.step(rng.choice(expected))
            checked += 1
    assert checked > 300


def test_screen_lines_clauses_and_bagger():
    assert screen_lines(HOME) == HOME.split("\n") + [""] * (MAX_LINES - 4)
    with pytest.raises(ValueError, match="at most"):
        screen_lines("\n".join(["x"] * (MAX_LINES + 1)))
    assert clauses(MUTE) == ["in Sound", "turn on Mute", "", "", ""]
    bag = Bagger(64)
    ids, offsets = bag(["abc", "", "abc"])
    assert offsets.tolist()[0] == 0 and ids.max() < 64
    first = ids[offsets[0]:offsets[1]].tolist()
    assert ids[offsets[2]:].tolist() == first                         # the same text, the same bag
    assert ids[offsets[1]:offsets[2]].tolist() == [0]                 # "" is one bucket (replaced by `empty` in the models)


def test_screen_judge_by_hand():
    assert screen_judge(MUTE, SOUND_OFF, "click 1", SOUND_ON)
    assert not screen_judge(MUTE, SOUND_ON, "click 1", SOUND_OFF)
    assert not screen_judge(MUTE, HOME, "click 3", SOUND_OFF)          # the right page, the toggle still off
    assert not screen_judge("in Network, turn on Mute", SOUND_OFF, "click 1", SOUND_ON)   # the wrong page
    form = "Profile / Personal\n1 Name: [kiwi]\n2 (Save)\n3 < Back"
    save = 'in Personal, set Name to "kiwi", then save'
    assert screen_judge(save, form, "click 2", form)                  # drafts right and the save clicked
    assert not screen_judge(save, form, "click 1", form)              # not committed
    assert not screen_judge(save, form.replace("kiwi", "ana"), "click 2", form.replace("kiwi", "ana"))
    docs = "Files / Documents\n1 - report.txt\n2 (Delete)\n3 < Back"
    assert not screen_judge("in Documents, delete report.txt", docs, "click 2", docs)
    assert screen_judge("in Documents, delete report.txt", docs, "click 2", "Files / Documents\n1 (Delete)\n2 < Back")
    assert not screen_judge("not an instruction", SOUND_OFF, "click 1", SOUND_ON)
    assert not screen_judge(MUTE, SOUND_OFF, "click 1", "Settings / Sound\n1 ?? garbage")


def test_screen_judge_agrees_with_the_validator_on_expert_episodes():
    for t in S.make_tasks(S.APPS, (1, 3), 60, 2):
        s = S.initial_state(t)
        for action in t.answer.split(";"):
            new, error = S.transition(s, action)
            assert error is None
            assert screen_judge(t.meta["instruction"], S.render(s), action, S.render(new)) == S.satisfied(new, t), \
                (t.meta["instruction"], action)
            s = new
        assert S.satisfied(s, t)


# -- the world model


def test_world_model_loss_by_hand_and_bad_inputs():
    torch.manual_seed(0)
    model = WorldModel(hidden=8, layers=1)
    model.extend_vocab([HOME, SOUND_OFF])
    screens, actions, after = [HOME, SOUND_OFF], ["click 3", "click 1"], [SOUND_OFF, SOUND_ON]
    logits, names = model(screens, actions, extra=after)
    assert logits.shape == (2, MAX_LINES, len(names)) and SOUND_ON.split("\n")[1] in names
    by_hand = -sum(F.log_softmax(logits[b, j], -1)[names.index(line)]
                   for b, s in enumerate(after) for j, line in enumerate(screen_lines(s))) / (2 * MAX_LINES)
    assert float(world_model_loss(model, screens, actions, after).detach()) == pytest.approx(float(by_hand.detach()), rel=1e-5)
    with pytest.raises(ValueError):
        world_model_loss(model, screens, actions[:1], after)
    with pytest.raises(ValueError):
        world_model_loss(model, [], [], [])


def test_world_model_learns_a_few_transitions_exactly():
    transitions = [tr for e in _random_episodes(6, 3) for tr in e.transitions()][:16]
    torch.manual_seed(0)
    model = WorldModel(hidden=32)
    model.extend_vocab([o for tr in transitions for o in (tr[0], tr[2])])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = world_model_loss(model, *zip(*transitions))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert next_screen_accuracy(model, transitions)["all"] >= 0.9


def test_next_screen_accuracy_splits_page_changes():
    within = (SOUND_OFF, "click 1", SOUND_ON)
    navigation = (HOME, "click 3", SOUND_OFF)
    right_page = (HOME, "click 2", SOUND_OFF)
    # right within the page; across pages once the wrong screen, once the right page with the wrong widgets
    model = TableModel({(SOUND_OFF, "click 1"): SOUND_ON, (HOME, "click 2"): SOUND_ON})
    acc = next_screen_accuracy(model, [within, navigation, right_page])
    assert acc == {"all": pytest.approx(1 / 3), "within": 1.0, "navigation": 0.0, "navigation_page": 0.5}
    assert next_screen_accuracy(model, [within])["navigation"] != next_screen_accuracy(model, [within])["navigation"]


# -- the policy


def test_imitation_fits_the_shown_actions():
    steps = []                                                        # expert steps: one right action a screen
    for t in S.make_tasks(S.TRAIN_APPS, (1, 2), 6, 4):
        s = S.initial_state(t)
        for action in t.answer.split(";"):
            steps.append((t.meta["instruction"], S.render(s), action))
            s = S.transition(s, action)[0]
    steps = steps[:12]
    torch.manual_seed(0)
    policy = Policy(hidden=32)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    first = float(imitation_loss(policy, steps).detach())
    for _ in range(150):
        loss = imitation_loss(policy, steps)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first / 4
    picked = greedy_actions(policy, [s[0] for s in steps], [s[1] for s in steps])
    assert sum(p == s[2] for p, s in zip(picked, steps)) >= 10


def test_policy_and_imitation_reject_bad_actions():
    policy = Policy(hidden=8, layers=1)
    with pytest.raises(ValueError, match="not a candidate"):
        imitation_loss(policy, [(MUTE, HOME, "click 9")])
    with pytest.raises(ValueError, match="no steps"):
        imitation_loss(policy, [])
    with pytest.raises(ValueError, match="not a candidate action"):
        policy([MUTE], [HOME], [["click 12"]])
    assert greedy_actions(policy, [], []) == []


# -- imagined episodes and look-ahead


def test_imagine_stops_on_the_judge_turns_and_broken_screens():
    model = TableModel({(HOME, "click 1"): SOUND_ON, (HOME, "click 2"): SOUND_ON, (HOME, "click 3"): SOUND_ON})
    gen = torch.Generator().manual_seed(0)
    done = imagine(RankPolicy(), model, [MUTE] * 3, [HOME] * 3, [4, 4, 0], gen)
    assert [e.success for e in done] == [True, True, False]
    assert [len(e.actions) for e in done] == [1, 1, 0]
    assert done[0].screens == [HOME, SOUND_ON]
    broken = TableModel({(HOME, a): "Settings\n1 ?? broken" for a in ("click 1", "click 2", "click 3")})
    out = imagine(RankPolicy(), broken, [MUTE], [HOME], [5], gen)[0]
    assert not out.success and len(out.actions) == 1                  # the broken screen ends it
    stuck = imagine(RankPolicy(), TableModel({}), [MUTE], [HOME], [3], gen)[0]
    assert not stuck.success and len(stuck.actions) == 3              # the turns run out
    with pytest.raises(ValueError):
        imagine(RankPolicy(), model, [MUTE], [HOME, HOME], [1], gen)


def test_lookahead_takes_the_imagined_success():
    model = TableModel({(HOME, "click 3"): SOUND_ON})                 # only the policy's third choice succeeds
    assert lookahead(RankPolicy(), model, [MUTE], [HOME], k=3, depth=1) == ["click 3"]
    assert lookahead(RankPolicy(), model, [MUTE], [HOME], k=2, depth=2) == ["click 1"]     # not among the top 2
    assert lookahead(RankPolicy(), model, [MUTE], [HOME], k=1, depth=2) == ["click 1"]     # k = 1 is greedy
    never = TableModel({})
    assert lookahead(RankPolicy(), never, [MUTE, MUTE], [HOME, SOUND_OFF], k=3, depth=2) == ["click 1", "click 1"]
    assert never.calls == 3 * 2 + 2 * 2                               # k x depth imagined steps a screen
    with pytest.raises(ValueError):
        lookahead(RankPolicy(), never, [MUTE], [HOME], k=0)


def test_lookahead_depth_and_discount():
    # click 3 opens Sound with Mute off; there the greedy policy clicks 1, which turns it on: success at step 1
    two_steps = TableModel({(HOME, "click 3"): SOUND_OFF, (SOUND_OFF, "click 1"): SOUND_ON})
    assert lookahead(RankPolicy(), two_steps, [MUTE], [HOME], k=3, depth=1) == ["click 1"]
    assert lookahead(RankPolicy(), two_steps, [MUTE], [HOME], k=3, depth=2) == ["click 3"]
    # an immediate success (gamma^0) beats a later one of a more probable action (gamma^1)
    both = TableModel({(HOME, "click 1"): SOUND_OFF, (SOUND_OFF, "click 1"): SOUND_ON, (HOME, "click 2"): SOUND_ON})
    assert lookahead(RankPolicy(), both, [MUTE], [HOME], k=3, depth=2, discount=0.9) == ["click 2"]
    # equal scores: the policy's order
    tie = TableModel({(HOME, "click 2"): SOUND_ON, (HOME, "click 3"): SOUND_ON})
    assert lookahead(RankPolicy(), tie, [MUTE], [HOME], k=3, depth=1) == ["click 2"]
