"""labkit.bases.card.scored_evaluate: the card loop of mixtures whose tasks a mixture marks itself."""
import pytest
import torch

from labkit.bases.card import scored_evaluate
from labkit.core.evaluate import evaluate
from labkit.core.policy import load_policy
from labkit.core.tasks import make_tasks, verify


@pytest.fixture(scope="module")
def policy():
    return load_policy("tiny", device="cpu")


def test_scored_evaluate_with_the_verifier_equals_evaluate(policy):
    tasks = make_tasks("add", 1, 12, seed=3)
    torch.manual_seed(0)
    mine = scored_evaluate(policy, tasks, 3, 1.0, 20, lambda t, text: verify(t, text).correct)
    torch.manual_seed(0)
    ref = evaluate(policy, tasks, samples=3, temperature=1.0, max_new_tokens=20)
    assert mine.correct == ref.correct
    assert mine.mean_entropy == pytest.approx(ref.mean_entropy)


def test_scored_evaluate_counts_what_is_right_accepts(policy):
    tasks = make_tasks("add", 1, 5, seed=4)
    assert scored_evaluate(policy, tasks, 2, 1.0, 4, lambda t, text: True).correct == [2] * 5
    assert scored_evaluate(policy, tasks, 2, 1.0, 4, lambda t, text: False).correct == [0] * 5


def test_scored_evaluate_bad_inputs(policy):
    with pytest.raises(ValueError, match="at least one task"):
        scored_evaluate(policy, [], 1, 1.0, 4, lambda t, text: True)
    with pytest.raises(ValueError, match="samples"):
        scored_evaluate(policy, make_tasks("add", 1, 2, seed=5), 0, 1.0, 4, lambda t, text: True)
