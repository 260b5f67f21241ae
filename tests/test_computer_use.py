"""Notebook 30's mechanism (labkit.nb.n30_computer_use): the policy's reading, the text judge, SEAgent's
losses, EvoCUA's boundary and corrections."""
import math

import pytest
import torch

from labkit.core import screens as S
from labkit.core.tasks import Task
from labkit.nb.n30_computer_use import (Episode, ScreenPolicy, Step, boundary_pick, correction_loss, corrections,
                                         failure_imitation_loss, featurize, judge_episode, judge_step, outcome_loss,
                                         parse_instruction, play, step_grpo_loss)

NETWORK = "Settings / Network\n1 [x] VPN\n2 < Back\n3 [x] Wifi\n4 [ ] Bluetooth"
HOME = "Settings\n1 > Display\n2 > Network\n3 > Sound"
SOUND = "Settings / Sound\n1 Ringtone: [ana]\n2 (Save)\n3 < Back"
DOCS = "Files / Documents\n1 - report.txt\n2 * notes.txt\n3 (Delete)\n4 < Back"


class FixedPolicy(torch.nn.Module):
    """pi over candidates = softmax of the given logits (the first C of them)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits, dtype=torch.float))

    def forward(self, feats, mask):
        c = feats.shape[1]
        return self.logits[:c].expand(feats.shape[0], c).masked_fill(~mask, float("-inf")).log_softmax(-1)


def _step(n_candidates, index):
    return Step(torch.zeros(n_candidates, 22), index, f"click {index + 1}", "", "", None, None)


def test_parse_instruction_and_features_by_hand():
    instr = parse_instruction('in Sound, set Ringtone to "kiwi", then save')
    assert instr == {"page": "Sound", "on": set(), "off": set(), "set": {"Ringtone": "kiwi"}, "words": {"then", "save"}}
    actions, feats = featurize(instr, SOUND)
    assert actions == ["click 1", "type 1 kiwi", "click 2", "click 3"]
    assert feats.shape == (4, 22)
    assert feats[0, 3] == 1 and feats[0, 12] == 1 and feats[0, 13] == 0 and feats[0, 6] == 0   # a named field, draft wrong
    assert feats[1, 6] == 1 and feats[1, 14] == 1                                              # typing the wanted word
    assert feats[2, 4] == 1 and feats[2, 15] == 1 and feats[2, 18] == 1                        # Save named; drafts wrong
    assert feats[3, 1] == 1 and feats[:, 7].tolist() == [1, 1, 1, 1]                           # Back; on the page
    instr = parse_instruction("in Network, turn on Bluetooth, turn off VPN")
    assert instr["on"] == {"Bluetooth"} and instr["off"] == {"VPN"}
    _, feats = featurize(instr, NETWORK)
    assert feats[0, 10] == 1 and feats[0, 11] == 1 and feats[3, 9] == 1 and feats[3, 11] == 0
    with pytest.raises(ValueError):
        parse_instruction("turn on Wifi")


def test_judge_step_by_hand():
    toggles = parse_instruction("in Network, turn on Bluetooth")
    after = NETWORK.replace("4 [ ] Bluetooth", "4 [x] Bluetooth")
    assert judge_step(toggles, NETWORK, "click 4", after)                                  # the named toggle, the wanted way
    assert not judge_step(toggles, NETWORK, "click 3", NETWORK.replace("3 [x] Wifi", "3 [ ] Wifi"))   # another toggle
    assert not judge_step(toggles, NETWORK, "click 2", HOME)                              # leaving the target page
    assert judge_step(toggles, HOME, "click 2", NETWORK)                                  # onto the target page
    assert not judge_step(toggles, HOME, "click 1", "Settings / Display\n1 < Back")       # onto another page
    assert judge_step(toggles, "Settings / Display\n1 < Back", "click 1", HOME)           # home from another page
    assert not judge_step(toggles, NETWORK, "click 9", NETWORK)                           # no such widget
    assert not judge_step(toggles, NETWORK, "hello", NETWORK)
    fields = parse_instruction('in Sound, set Ringtone to "kiwi", then save')
    typed = SOUND.replace("[ana]", "[kiwi]")
    assert judge_step(fields, SOUND, "type 1 kiwi", typed)
    assert not judge_step(fields, SOUND, "type 1 bob", SOUND.replace("[ana]", "[bob]"))
    assert judge_step(fields, typed, "click 2", typed)                                    # commit of right drafts
    assert not judge_step(fields, SOUND, "click 2", SOUND)                                # commit of a wrong draft
    assert not judge_step(fields, SOUND, "click 1", SOUND)                                # a no-op
    items = parse_instruction("in Documents, delete notes.txt")
    assert judge_step(items, DOCS, "click 3", "Files / Documents\n1 - report.txt\n2 (Delete)\n3 < Back")
    assert not judge_step(items, DOCS.replace("1 - report", "1 * report").replace("2 * notes", "2 - notes"), "click 3",
                          "Files / Documents\n1 - notes.txt\n2 (Delete)\n3 < Back")          # removed an unnamed item
    assert not judge_step(items, DOCS, "click 1", DOCS.replace("1 - report", "1 * report").replace("2 * notes", "2 - notes"))
    assert judge_step(items, DOCS.replace("2 * notes", "2 - notes"), "click 2", DOCS)       # selecting the named item


def test_judge_episode_calls_a_return_to_a_seen_screen_redundant():
    t = next(t for t in S.make_tasks("files", 2, 40, 1) if t.meta["page"] == "Documents")
    s = S.initial_state(t)
    nav = t.answer.split(";")[0]
    names = [g[2] for g in t.meta["goals"]]
    e = Episode(t)
    s1, _ = S.transition(s, nav)
    ns = {w.key: i for i, w in enumerate(S.widgets(s1), 1)}
    actions = [nav, f"click {ns[names[0]]}", f"click {ns[names[1]]}", f"click {ns[names[0]]}", f"click {ns['remove']}"]
    for a in actions:
        new, _ = S.transition(s, a)
        e.steps.append(Step(None, 0, a, S.render(s), S.render(new), None, None))
        s = new
    assert judge_episode(e) == [True, True, True, False, True]   # the re-selection is redundant; the commit is not
    e.steps = e.steps[:4]
    assert judge_episode(e)[3] is False and judge_step(parse_instruction(t.meta["instruction"]), e.steps[3].before,
                                                       e.steps[3].action, e.steps[3].after)   # alone it looks right


def test_judge_agrees_with_the_oracle_on_expert_steps():
    for t in S.make_tasks(S.APPS, (1, 3), 30, 3):
        s, instr = S.initial_state(t), parse_instruction(t.meta["instruction"])
        for action in t.answer.split(";"):
            new, _ = S.transition(s, action)
            assert judge_step(instr, S.render(s), action, S.render(new)), (t.meta["instruction"], action)
            s = new


def test_failure_imitation_loss_by_hand_and_its_gradient():
    policy = FixedPolicy([0.0, math.log(3.0)])           # pi = (1/4, 3/4)
    loss = failure_imitation_loss(policy, [_step(2, 1), _step(2, 0)])
    assert float(loss.detach()) == pytest.approx(-(math.log(1 / 4) + math.log(3 / 4)) / 2, rel=1e-5)
    loss.backward()
    assert policy.logits.grad[1] > 0 and policy.logits.grad[0] < 0   # descending lowers pi of the failures' mix
    policy = FixedPolicy([0.0, math.log(3.0)])
    failure_imitation_loss(policy, [_step(2, 1)]).backward()
    assert policy.logits.grad[1] > 0                                   # a step down lowers pi(a_fail)
    assert float(failure_imitation_loss(policy, [])) == 0
    certain = FixedPolicy([0.0, 1e4])
    assert math.isfinite(float(failure_imitation_loss(certain, [_step(2, 1)]).detach()))


def test_step_grpo_loss_pushes_toward_the_judged_action():
    policy = FixedPolicy([0.0, 0.0, 0.0])
    steps = [_step(3, 2)] * 50
    step_grpo_loss(policy, steps, 4, torch.Generator().manual_seed(0)).backward()
    assert policy.logits.grad[2] < 0 and policy.logits.grad[0] > 0 and policy.logits.grad[1] > 0
    assert float(step_grpo_loss(policy, [], 4)) == 0
    sure = FixedPolicy([1e4, 0.0, 0.0])                  # every draw is the judged action: zero spread, no signal
    loss = step_grpo_loss(sure, [_step(3, 0)], 4, torch.Generator().manual_seed(0))
    assert float(loss) == 0
    with pytest.raises(ValueError):
        step_grpo_loss(policy, steps, 1)


def test_outcome_loss_by_hand():
    policy = FixedPolicy([0.0, 0.0])
    a, b = Episode(None), Episode(None)
    a.steps, a.success = [_step(2, 0), _step(2, 0)], True
    b.steps, b.success = [_step(2, 1)], False
    loss = outcome_loss(policy, [a, b], 2)
    adv = 1 / (math.sqrt(0.5) + 1e-4)                     # (1 - 0.5) / std([1, 0])
    assert float(loss.detach()) == pytest.approx(-(adv * math.log(0.5) - adv * math.log(0.5)) / 2, abs=1e-6)
    loss.backward()
    assert policy.logits.grad[0] < 0 < policy.logits.grad[1]
    same = Episode(None)
    same.steps, same.success = [_step(2, 0)], False
    assert float(outcome_loss(policy, [same, same], 2)) == 0
    with pytest.raises(ValueError):
        outcome_loss(policy, [a, b, a], 2)


def _fake(app, d):
    return Task("", "", app, d, "screens", {})


def test_boundary_pick_by_hand():
    tasks = [_fake("files", 1), _fake("form", 1), _fake("files", 2), _fake("form", 2)]
    stats = {("files", 1): (10, 10), ("form", 1): (0, 10), ("files", 2): (5, 10)}
    # p: files1 11/12, form1 1/12, files2 1/2, form2 unseen 1/2
    assert boundary_pick(tasks, stats, 2) == [tasks[2], tasks[3]]
    assert boundary_pick(tasks, stats, 1) == [tasks[2]]                 # tie: the earlier candidate
    assert boundary_pick(tasks, {}, 2) == tasks[:2]                      # all unseen: the first k
    assert boundary_pick(tasks, stats, 3) == [tasks[0], tasks[2], tasks[3]]   # files1 and form1 tie: the earlier
    assert boundary_pick(tasks, stats, 0) == []
    with pytest.raises(ValueError):
        boundary_pick(tasks, stats, 5)
    with pytest.raises(ValueError):
        boundary_pick(tasks, stats, -1)


def test_corrections_find_a_judged_right_action_in_the_sandbox():
    tasks = S.make_tasks(S.TRAIN_APPS, (1, 2), 16, 5, slack=0)
    policy = ScreenPolicy(8)
    eps = play(policy, tasks, torch.Generator().manual_seed(0))
    pairs, spent = corrections(policy, eps)
    failed = [e for e in eps if not e.success]
    assert failed and 0 < len(pairs) <= len(failed) and spent >= len(pairs)
    for step, k in pairs:
        ep = next(e for e in eps if step in e.steps)
        instr = parse_instruction(ep.task.meta["instruction"])
        new, _ = S.transition(step.state, step.actions[k])
        assert judge_step(instr, step.before, step.actions[k], S.render(new))
        assert not judge_step(instr, step.before, step.action, step.after)
    loss = correction_loss(policy, pairs)
    assert float(loss) > 0 and float(correction_loss(policy, [])) == 0


def test_play_is_deterministic_and_batched():
    tasks = S.make_tasks(S.HELD_OUT, (1, 3), 12, 2)
    torch.manual_seed(0)
    policy = ScreenPolicy(8)
    a = play(policy, tasks, torch.Generator().manual_seed(1))
    b = play(policy, tasks, torch.Generator().manual_seed(1))
    assert [[s.action for s in e.steps] for e in a] == [[s.action for s in e.steps] for e in b]
    for e in a:
        assert len(e.steps) <= e.task.meta["max_turns"]
        assert e.success == S.satisfied(_replay(e), e.task)


def _replay(e):
    s = S.initial_state(e.task)
    for step in e.steps:
        s, _ = S.transition(s, step.action)
    return s
