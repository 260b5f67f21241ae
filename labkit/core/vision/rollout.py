"""Sampling, log-probs and the policy-gradient update for image-prefixed prompts.

The same contract as `labkit.core.sampling` (a `Rollout` with ids, masks and per-token log-probs), with
the images carried beside the text: `VisionRollout.pixel_values` is None for a text-only batch.
The update is labkit.core.grpo.optimise with this module's log-probabilities; with `cfg.loss.kl_coef` set it
adds the k3 KL penalty to a frozen reference (`frozen_copy` of the model RL starts from), whose
log-probs it computes on the same batch, at the sampling temperature, without gradients.
"""
import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from labkit.core.grpo import RLConfig, optimise, ppo_clip_loss
from labkit.core.sampling import (Rollout, TransformersDecoder, autocast, cache_keyword, check_prompts, check_sampling,
                                  check_scoring_temperature, encode_prompts, entropy_of, eval_mode, sample)


@dataclass
class VisionRollout(Rollout):
    """A `Rollout` whose row i was prompted by image i (pixel_values (B, C, H, W)) and prompts[i];
    pixel_values None: text-only prompts."""

    pixel_values: torch.Tensor | None = None

    def rows(self, index: torch.Tensor) -> "VisionRollout":
        rows = index.tolist()
        return VisionRollout(self.input_ids[index], self.attention_mask[index], self.prompt_len,
                             self.completion_mask[index], self.logprobs[index], self.entropies[index],
                             [self.completions[i] for i in rows], [self.prompts[i] for i in rows],
                             self.finished[index],
                             None if self.pixel_values is None else self.pixel_values[index])


def _prefix_len(model, pixel_values) -> int:
    return 0 if pixel_values is None else model.prefix_len


class VisionDecoder(TransformersDecoder):
    """The decoder of `labkit.core.sampling.sample` for a TinyVLM: the prefill reads [image prefix |
    prompt] (the model embeds the images), then each step feeds one token to the language model's
    cache, the mask and positions counting the prefix. Without pixel_values, the plain language model."""

    def __init__(self, model, prompt_ids: torch.Tensor, text_mask: torch.Tensor, pixel_values: torch.Tensor | None):
        prefix = text_mask.new_ones(len(text_mask), _prefix_len(model, pixel_values))
        super().__init__(model, prompt_ids, torch.cat([prefix, text_mask], dim=1))  # mask: everything seen so far
        self.cache = {cache_keyword(model.language_model): DynamicCache()}
        self.text_mask, self.images = text_mask, pixel_values

    def prefill(self) -> torch.Tensor:
        if self.images is None:
            return super().prefill()
        with autocast(self.step_ids.device):  # the model puts the prefix in front and positions both
            out = self.model(input_ids=self.step_ids, attention_mask=self.text_mask, pixel_values=self.images,
                             use_cache=True, logits_to_keep=1, **self.cache)
        return out.logits[:, -1, :].float()


@torch.no_grad()
def vlm_rollout(model, tokenizer, prompts: list[str], pixel_values: torch.Tensor | None = None,
                max_new_tokens: int = 40, temperature: float = 1.0,
                generator: torch.Generator | None = None) -> VisionRollout:
    """Sample one completion per (image, prompt) row with a KV cache; temperature 0 is greedy.
    Row i reads [image i's prefix | <bos> prompt i]; without pixel_values, the prompt alone."""
    check_prompts("vlm_rollout", prompts)
    if pixel_values is not None and len(pixel_values) != len(prompts):
        raise ValueError(f"need one image per prompt; got {len(pixel_values)} images for {len(prompts)} prompts")
    check_sampling(max_new_tokens, temperature)
    device = next(model.parameters()).device
    images = None if pixel_values is None else pixel_values.to(device)
    with eval_mode(model):
        prompt_ids, text_mask = encode_prompts(tokenizer, prompts, device)
        decoder = VisionDecoder(model, prompt_ids, text_mask, images)
        out = sample(decoder, max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id, temperature,
                     generator=generator, exp_logprobs=True)
    return out.rollout(tokenizer, prompts, prompt_ids, text_mask, cls=VisionRollout, pixel_values=images)


def vlm_completion_logprobs(model, batch: VisionRollout, with_entropy: bool = False, temperature: float = 1.0):
    """Per-token log-probs (and entropies) of the completion tokens, with gradients, in one forward
    pass over [image prefix | prompt | completion], under softmax(logits / temperature)."""
    k = _prefix_len(model, batch.pixel_values)
    with autocast(batch.input_ids.device):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       pixel_values=batch.pixel_values,
                       position_ids=None if k else (batch.attention_mask.long().cumsum(-1) - 1).clamp(min=0)).logits
    logits = logits[:, k + batch.prompt_len - 1:-1].float()  # the logits at position t predict token t + 1
    logp_all = F.log_softmax(logits / check_scoring_temperature(temperature), dim=-1)
    logp = logp_all.gather(-1, batch.completion_ids[..., None]).squeeze(-1)
    return (logp, entropy_of(logp_all)) if with_entropy else logp


def frozen_copy(model):
    """A copy of `model` that cannot learn: its own parameters (a deep copy), eval mode, and
    requires_grad False everywhere. The KL reference of `vlm_update` (the cold start as it was before
    RL), and notebook 12's optional frozen reader of descriptions."""
    frozen = copy.deepcopy(model)
    frozen.eval()
    frozen.requires_grad_(False)
    return frozen


def _check_reference(model, ref_model):
    if ref_model is None:
        raise ValueError("cfg.loss.kl_coef > 0 needs ref_model, the frozen reference (frozen_copy of the model "
                         "RL starts from); without it the KL term would silently be dropped")
    if ref_model is model:
        raise ValueError("ref_model is the policy being trained (its KL to itself is 0); pass frozen_copy(model) "
                         "made before training")
    own = {p.data_ptr() for p in model.parameters()}
    if any(p.requires_grad or p.data_ptr() in own for p in ref_model.parameters()):
        raise ValueError("ref_model must be frozen: no parameter shared with the policy and none with "
                         "requires_grad (use frozen_copy(model))")


def vlm_update(model, optimizer: torch.optim.Optimizer, batch: VisionRollout, advantages: torch.Tensor,
               cfg: RLConfig, loss_fn=ppo_clip_loss, ref_model=None) -> dict:
    """labkit.core.grpo.update for image-prefixed batches: epochs x minibatches of the per-token loss.

    With cfg.loss.kl_coef = beta > 0, the loss adds beta * k3(pi_theta || pi_ref) per completion token
    (labkit.core.grpo.k3_kl), the reference's log-probs computed once here on the whole batch (image prefix
    included) at cfg.temperature; ref_model is then required and must be frozen (`frozen_copy`). With
    kl_coef 0, ref_model is ignored, as in labkit.core.grpo.update."""
    ref_logp = None
    if cfg.loss.kl_coef:
        _check_reference(model, ref_model)
        with torch.no_grad():
            ref_logp = vlm_completion_logprobs(ref_model, batch, temperature=cfg.temperature)
    return optimise(model, optimizer, batch, advantages, cfg, loss_fn, ref_logp, logprobs_fn=vlm_completion_logprobs,
                    select=lambda b, index: b.rows(index))
