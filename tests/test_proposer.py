"""labkit.core.proposer (the proposer substrate) and notebook 08's mechanism (labkit.nb.n08_creator_solver)."""

import pytest
import torch

from labkit.core.proposer import (GrammarCreator, cluster, group_advantages, majority_vote, parse_answer,
                                  parse_task, pseudo_rewards, repetition_penalty, role_prompt,
                                  uncertainty_reward)

# ------------------------------------------------------------------------------------------ parse_task


def test_parse_task_computes_the_true_answer():
    t = parse_task("12+345=")
    assert (t.prompt, t.answer, t.category, t.difficulty, t.world) == ("12+345=", "357", "add", 3, "arithmetic")
    assert parse_task("3-45=").answer == "-42" and parse_task("3-45=").category == "sub"
    assert parse_task("12*12=").answer == "144" and parse_task("0*7=").answer == "0"


@pytest.mark.parametrize("text", ["07+3=", "7+03=", "7+3", "7 +3=", "+7+3=", "-7+3=", "7/3=", "7+3==", "",
                                  "a+b=", "1+2=3", "7+3=\n", None, 12, "123456789+1="])
def test_parse_task_rejects_malformed(text):
    assert parse_task(text) is None


def test_parse_task_excludes_and_digit_limit():
    assert parse_task("1+2=", exclude={"1+2="}) is None
    assert parse_task("123+4=", max_digits=2) is None and parse_task("12+4=", max_digits=2) is not None
    with pytest.raises(ValueError):
        parse_task("1+2=", max_digits=0)


def test_parse_answer_reads_canonical_integers_only():
    assert parse_answer(" 12\n") == "12" and parse_answer("-3") == "-3"
    assert [parse_answer(x) for x in ("012", "1 2", "", "12a", None, "-0")] == [None] * 6


def test_role_prompt():
    assert role_prompt("solver", "1+2=") == "1+2=" and role_prompt("creator", "") == "?"
    with pytest.raises(ValueError):
        role_prompt("judge", "x")
    with pytest.raises(ValueError):
        role_prompt("solver", 3)

# ------------------------------------------------------------------------------------------ pseudo-labels


def test_majority_vote_by_hand():
    assert majority_vote(["12", "12", "13", None]) == ("12", 0.5)
    assert majority_vote(["5"] * 8) == ("5", 1.0)
    assert majority_vote(["1", "2", "3", "4"]) == ("1", 0.25)          # tie: the first seen
    assert majority_vote(["2", "1", "1", "2"]) == ("2", 0.5)
    assert majority_vote([None, None]) == (None, 0.0)
    with pytest.raises(ValueError):
        majority_vote([])


def test_pseudo_rewards():
    assert pseudo_rewards(["12", "13", None, "12"], "12") == [1.0, 0.0, 0.0, 1.0]
    assert pseudo_rewards([None, None], None) == [0.0, 0.0]


@pytest.mark.parametrize("p,r", [(0.5, 1.0), (0.0, 0.0), (1.0, 0.0), (0.25, 0.5), (0.75, 0.5), (0.625, 0.75)])
def test_uncertainty_reward_by_hand(p, r):
    assert uncertainty_reward(p) == pytest.approx(r)


@pytest.mark.parametrize("p", [-0.1, 1.1, float("nan"), "0.5", None])
def test_uncertainty_reward_rejects_bad_p(p):
    with pytest.raises(ValueError):
        uncertainty_reward(p)

# ------------------------------------------------------------------------------------------ repetition


def test_cluster_exact_duplicates_and_near_misses():
    assert cluster(["1+2=", "1+2=", "3*4="]) == [0, 0, 1]
    # "12+34=" and "12+35=": 3-gram Jaccard 2/6, distance 2/3 > 0.5: apart; threshold 0.7 joins them
    assert cluster(["12+34=", "12+35="]) == [0, 1]
    assert cluster(["12+34=", "12+35="], threshold=0.7) == [0, 0]
    assert cluster([]) == []


def test_cluster_average_linkage_not_single_linkage():
    # a-b close (0.4), b-c close (0.4), a-c far (1.0): single linkage would chain all three;
    # average linkage merges a, b and then sees mean(d(a, c), d(b, c)) = 0.7 >= 0.5
    from labkit.core import proposer
    d = torch.tensor([[0, .4, 1.], [.4, 0, .4], [1., .4, 0]], dtype=torch.float64)
    orig = proposer.distance_matrix
    proposer.distance_matrix = lambda texts, n=3: d
    try:
        assert proposer.cluster(["a", "b", "c"]) == [0, 0, 1]
    finally:
        proposer.distance_matrix = orig


def test_repetition_penalty_is_the_cluster_share():
    assert repetition_penalty(["1+2=", "1+2=", "3*4="]) == pytest.approx([2 / 3, 2 / 3, 1 / 3])
    assert repetition_penalty(["1+2="] * 4, scale=0.5) == pytest.approx([0.5] * 4)
    with pytest.raises(ValueError):
        repetition_penalty(["1+2="], scale=-1)
    with pytest.raises(ValueError):
        cluster(["1+2=", 3])

# ------------------------------------------------------------------------------------------ advantages


def test_group_advantages_by_hand():
    a = group_advantages(torch.tensor([1., 0., 1., 1.]), [0, 0, 1, 1])
    s = torch.tensor([1., 0.]).std()
    assert torch.allclose(a, torch.tensor([0.5 / (s + 1e-6), -0.5 / (s + 1e-6), 0., 0.]))
    assert torch.allclose(group_advantages([3., 1., 5.], ["x", "y", "x"], scale="none"), torch.tensor([-1., 0., 1.]))
    assert torch.equal(group_advantages([2.0], [0]), torch.zeros(1))
    with pytest.raises(ValueError):
        group_advantages([1., 2.], [0])
    with pytest.raises(ValueError):
        group_advantages([1., 2.], [0, 0], scale="max")

# ------------------------------------------------------------------------------------------ the creator


def test_grammar_creator_writes_parsable_texts_with_logprobs():
    c = GrammarCreator(max_width=3)
    p = c.sample(200, generator=torch.Generator().manual_seed(0))
    assert len(p) == 200 and p.logprobs.shape == (200,) and p.logprobs.requires_grad
    for text, (op, w, a, b) in zip(p.texts, p.tokens):
        assert text == f"{a}{op}{b}=" and len(a) == len(b) == w
        # a leading zero of a multi-digit operand is the only way to be malformed
        assert (parse_task(text) is None) == any(len(x) > 1 and x[0] == "0" for x in (a, b))
    # uniform start: log-prob of a 1-digit task = log(1/3 * 1/3 * 1/10 * 1/10)
    i = next(i for i, t in enumerate(p.tokens) if t[1] == 1)
    assert p.logprobs[i].item() == pytest.approx(torch.log(torch.tensor(1 / 900)).item(), rel=1e-5)
    again = c.sample(200, generator=torch.Generator().manual_seed(0))
    assert again.texts == p.texts


def test_grammar_creator_learns_from_reinforce():
    torch.manual_seed(0)
    c = GrammarCreator(max_width=2)
    opt = torch.optim.Adam(c.parameters(), lr=0.2)
    g = torch.Generator().manual_seed(1)
    for _ in range(40):   # reward: 2-digit multiplications
        p = c.sample(32, generator=g)
        r = torch.tensor([float(op == "*" and w == 2) for op, w, _, _ in p.tokens])
        a = group_advantages(r, [0] * len(r))
        opt.zero_grad()
        (-(a * p.logprobs).mean()).backward()
        opt.step()
    assert c.cell_probs()[2, 1] > 0.8
    with pytest.raises(ValueError):
        c.sample(0)
    with pytest.raises(ValueError):
        GrammarCreator(max_width=0)
