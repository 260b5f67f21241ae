"""Presets of small causal LMs built from `transformers` configs.

Llama-style blocks (RoPE, RMSNorm, SwiGLU) because that is what real checkpoints use, so code
written against the tiny model runs unchanged on a real one.
"""
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel


@dataclass(frozen=True)
class Preset:
    hidden: int
    layers: int
    heads: int
    mlp: int
    note: str


PRESETS = {
    "tiny": Preset(hidden=128, layers=4, heads=4, mlp=384, note="~0.8M parameters: laptop CPU"),
    "small": Preset(hidden=320, layers=8, heads=8, mlp=1024, note="~11M parameters: gpu scale"),
    "base": Preset(hidden=512, layers=12, heads=8, mlp=1536, note="~38M parameters: gpu scale"),
}


def make_model(preset: str, tokenizer, max_positions: int = 128) -> PreTrainedModel:
    """A freshly initialised causal LM of the named preset, sized to the tokenizer."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; accepted: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=p.hidden,
        intermediate_size=p.mlp,
        num_hidden_layers=p.layers,
        num_attention_heads=p.heads,
        num_key_value_heads=p.heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
