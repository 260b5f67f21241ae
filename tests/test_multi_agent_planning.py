"""Notebook 32's multi-agent planning: videos, group advantages by hand, Bayes ceilings, the play loop's
budgets per arm, and that the message reaches the other agent only in the cpp arm."""
import pytest
import torch

from labkit.nb import n32_multi_agent_planning as m


def test_make_videos_answers_the_largest_asked_count():
    g = torch.Generator().manual_seed(0)
    pixels, counts, query, answer = m.make_videos(50, g, noise=0.0)
    assert pixels.shape == (50, 8, 16) and query.shape == (50, 3)
    assert torch.equal(pixels.sum(-1).round().long(), counts)
    asked = counts.gather(1, query)
    assert torch.equal(asked.argmax(-1), answer)
    assert all(len(set(row.tolist())) == 3 for row in asked)
    assert all(len(set(row.tolist())) == 3 for row in query)


def test_make_videos_rejects_bad_sizes():
    with pytest.raises(ValueError):
        m.make_videos(5, torch.Generator(), frames=2)


def test_group_advantages_by_hand():
    r = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.5, 0.5])
    got = m.group_advantages(r, 2)
    assert torch.allclose(got, torch.tensor([0.5, -0.5, 0.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError):
        m.group_advantages(r, 4)


def test_bayes_ceiling_by_hand():
    assert m.bayes_ceiling(0) == pytest.approx(1 / 3)
    assert m.bayes_ceiling(3) == pytest.approx(1.0)
    # knowing one count v of 0..4: the asked frame is the max with probability C(v,2)/C(4,2) -> best guess
    assert m.bayes_ceiling(1) == pytest.approx(0.5833333, abs=1e-6)
    assert m.bayes_ceiling(1) < m.bayes_ceiling(2) < 1


@pytest.mark.parametrize("arm", m.ARMS)
def test_play_spends_the_same_budget_in_every_arm(arm):
    torch.manual_seed(0)
    policy = m.TeamPolicy()
    pixels, _, query, _ = m.make_videos(6, torch.Generator().manual_seed(1))
    out = policy and m.play(policy, pixels, query, arm, generator=torch.Generator().manual_seed(2))
    assert out["looks"].shape == (6, 4)
    assert out["answer"].shape == (6,) and out["logp"].shape == (6,)
    out["logp"].sum().backward()


def test_play_rejects_an_unknown_arm():
    with pytest.raises(ValueError):
        m.play(m.TeamPolicy(), *m.make_videos(2, torch.Generator())[::2], arm="chat")


def test_the_message_reaches_the_peer_only_in_cpp():
    torch.manual_seed(0)
    policy = m.TeamPolicy()
    pixels, _, query, _ = m.make_videos(64, torch.Generator().manual_seed(1))
    seen = []
    original = policy.forward

    def spy(question, memory, seen_, received, who, phase):
        if phase == 3:
            seen.append(received.sum().item())
        return original(question, memory, seen_, received, who, phase)

    policy.forward = spy
    m.play(policy, pixels, query, "cpp", generator=torch.Generator().manual_seed(2))
    assert seen and all(s == 64 for s in seen)
    seen.clear()
    m.play(policy, pixels, query, "vote", generator=torch.Generator().manual_seed(2))
    assert all(s == 0 for s in seen)


def test_coverage_counts_distinct_asked_frames():
    looks = torch.tensor([[1, 1, 1, 1], [0, 2, 5, 7]])
    query = torch.tensor([[1, 2, 3], [2, 5, 6]])
    assert torch.allclose(m.coverage(looks, query), torch.tensor([1 / 3, 2 / 3]))
    with pytest.raises(ValueError):
        m.coverage(looks[0], query)
