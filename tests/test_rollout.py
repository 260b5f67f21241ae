"""Batched KV-cache sampling: same draws as model.generate, masks, log-probs, entropies."""
import pytest
import torch

from labkit.core.policy import Policy, build_tokenizer, make_model
from labkit.core.grpo import subset
from labkit.core.sampling import completion_logprobs, draw, rollout


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    model = make_model("tiny", tokenizer)
    # make EOS likely so some rows stop early and padding paths are exercised
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] *= 0
        model.model.embed_tokens.weight[tokenizer.eos_token_id] += 0.0
    return Policy(model.eval(), tokenizer)


PROMPTS = ["12+345=", "3*4=", "s:5813=", "r:1=", "7 3 2>13="] * 2


@pytest.mark.parametrize("engine", ["lean", "transformers"])
@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_same_samples_as_generate(policy, temperature, top_p, engine):
    torch.manual_seed(123)
    ours = rollout(policy, PROMPTS, max_new_tokens=12, temperature=temperature, top_p=top_p, engine=engine)
    enc = policy.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    torch.manual_seed(123)
    theirs = policy.model.generate(**enc, do_sample=True, max_new_tokens=12, temperature=temperature,
                                   top_p=top_p, top_k=0, pad_token_id=policy.tokenizer.pad_token_id,
                                   eos_token_id=policy.tokenizer.eos_token_id)
    theirs = theirs[:, enc["input_ids"].shape[1]:]
    width = ours.completion_ids.shape[1]
    assert torch.equal(theirs[:, :width], ours.completion_ids)
    assert (theirs[:, width:] == policy.tokenizer.pad_token_id).all()


def test_logprobs_entropies_and_masks_are_consistent(policy):
    torch.manual_seed(1)
    batch = rollout(policy, PROMPTS, max_new_tokens=12)
    mask = batch.completion_mask
    # the mask covers tokens up to and including EOS, nothing after
    for row, m, done in zip(batch.completion_ids, mask, batch.finished):
        n = int(m.sum())
        if done:
            assert row[n - 1] == policy.tokenizer.eos_token_id
        assert (row[n:] == policy.tokenizer.pad_token_id).all()
    recomputed, entropy = completion_logprobs(policy.model, batch, with_entropy=True)
    assert torch.allclose(recomputed * mask, batch.logprobs, atol=1e-4)
    assert torch.allclose(entropy * mask, batch.entropies, atol=1e-4)
    assert (batch.entropies <= torch.log(torch.tensor(len(policy.tokenizer))) + 1e-4).all()
    special = torch.tensor(policy.tokenizer.all_special_ids)
    plain = [int((~torch.isin(row, special) & m.bool()).sum()) for row, m in zip(batch.completion_ids, mask)]
    assert [len(t) for t in batch.completions] == plain  # one character per non-special token


@pytest.mark.parametrize("temperature", [0.5, 1.7])
def test_scoring_at_the_sampling_temperature_matches_the_sampler(policy, temperature):
    """At temperature T the sampler draws from softmax(logits / T) and logs those log-probs: the
    update must score under the same distribution, or the PPO ratio starts away from 1."""
    batch = rollout(policy, PROMPTS, max_new_tokens=8, temperature=temperature,
                    generator=torch.Generator().manual_seed(3))
    mask = batch.completion_mask
    tempered = completion_logprobs(policy.model, batch, temperature=temperature)
    assert torch.allclose(tempered * mask, batch.logprobs, atol=1e-4)
    untempered = completion_logprobs(policy.model, batch)
    assert not torch.allclose(untempered * mask, batch.logprobs, atol=1e-3)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_scoring_temperature_must_be_positive_and_finite(policy, bad):
    batch = rollout(policy, PROMPTS[:1], max_new_tokens=4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="temperature for scoring"):
        completion_logprobs(policy.model, batch, temperature=bad)


def test_same_seed_same_rollout_and_greedy_is_deterministic(policy):
    a = rollout(policy, PROMPTS, 8, generator=torch.Generator().manual_seed(7))
    b = rollout(policy, PROMPTS, 8, generator=torch.Generator().manual_seed(7))
    assert a.completions == b.completions and torch.equal(a.logprobs, b.logprobs)
    g1, g2 = rollout(policy, PROMPTS, 8, temperature=0), rollout(policy, PROMPTS, 8, temperature=0)
    assert g1.completions == g2.completions


@pytest.mark.parametrize("kwargs,match", [(dict(prompts=[]), "at least one prompt"),
                                          (dict(max_new_tokens=0), "max_new_tokens"),
                                          (dict(top_p=0.0), "top_p")])
def test_bad_arguments(policy, kwargs, match):
    args = dict(prompts=["1+1="], max_new_tokens=4) | kwargs
    with pytest.raises(ValueError, match=match):
        rollout(policy, **args)


def test_entropy_ignores_masked_tokens_instead_of_giving_nan():
    from labkit.core.sampling import entropy_of

    logits = torch.tensor([[0.0, 0.0, float("-inf")], [0.0, 0.0, 0.0]])
    h = entropy_of(logits.log_softmax(-1))
    assert torch.allclose(h, torch.log(torch.tensor([2.0, 3.0])))


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_lean_and_transformers_engines_agree(policy, temperature):
    """Same draws, log-probs and entropies to float rounding; groups share a prompt prefill."""
    prompts = [p for p in PROMPTS[:5] for _ in range(4)]
    a = rollout(policy, prompts, 12, temperature, generator=torch.Generator().manual_seed(3), engine="transformers")
    b = rollout(policy, prompts, 12, temperature, generator=torch.Generator().manual_seed(3), engine="lean")
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.attention_mask, b.attention_mask)
    assert a.completions == b.completions and torch.equal(a.finished, b.finished)
    assert torch.allclose(a.logprobs, b.logprobs, atol=1e-5)
    assert torch.allclose(a.entropies, b.entropies, atol=1e-5)


def test_auto_engine_honours_hooks_and_lean_refuses_what_it_cannot_decode(policy):
    calls = []
    handle = policy.model.model.layers[0].register_forward_hook(lambda *args: calls.append(1))
    try:
        rollout(policy, ["1+1="], 4, generator=torch.Generator().manual_seed(0))  # auto: transformers
        assert len(calls) >= 2  # the hooked layer ran for the prefill and every decode step
        with pytest.raises(ValueError, match="engine 'lean' needs a plain LlamaForCausalLM without hooks"):
            rollout(policy, ["1+1="], 4, engine="lean")
    finally:
        handle.remove()
    with pytest.raises(ValueError, match="engine must be one of auto, lean, transformers; got 'fast'"):
        rollout(policy, ["1+1="], 4, engine="fast")


def test_shared_prompt_logprobs_match_with_the_same_gradients(policy):
    prompts = [p for p in PROMPTS[:3] for _ in range(4)]
    batch = rollout(policy, prompts, 6, generator=torch.Generator().manual_seed(0))
    batch = subset(batch, torch.randperm(len(batch), generator=torch.Generator().manual_seed(1)))  # groups shuffled
    model = policy.model
    results = []
    for share in (False, True):
        logp, entropy = completion_logprobs(model, batch, with_entropy=True, share_prompts=share)
        ((logp + entropy) * batch.completion_mask).sum().backward()
        results.append((logp.detach(), entropy.detach(), [p.grad.clone() for p in model.parameters()]))
        model.zero_grad(set_to_none=True)
    (lp0, h0, g0), (lp1, h1, g1) = results
    mask = batch.completion_mask.bool()
    assert torch.allclose(lp0[mask], lp1[mask], atol=1e-5) and torch.allclose(h0[mask], h1[mask], atol=1e-5)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_draw_uses_the_generator_and_returns_on_the_probs_device():
    probs = torch.tensor([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5], [0.5, 0.0, 0.5]])
    first = draw(probs, torch.Generator().manual_seed(3))
    assert first.device == probs.device and first.shape == (3,)
    assert first[0] == 1 and first[2] != 1           # zero-probability ids are never drawn
    assert torch.equal(first, draw(probs, torch.Generator().manual_seed(3)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("generator_device", ["cpu", "cuda", "cuda:0"])
def test_draw_on_cuda_with_any_generator_device(generator_device):
    # a generator made with device="cuda" reports "cuda" while tensors live on "cuda:0":
    # they are the same device, and a CPU generator gives the same ids as on the CPU
    probs = torch.rand(64, 50).softmax(-1)
    ids = draw(probs.cuda(), torch.Generator(device=generator_device).manual_seed(1))
    assert ids.device.type == "cuda"
    if generator_device == "cpu":
        assert torch.equal(ids.cpu(), draw(probs, torch.Generator().manual_seed(1)))
