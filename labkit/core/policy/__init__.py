"""The tiny policy: char tokenizer, model presets, loading/saving, pretraining (`labkit pretrain`)."""
from labkit.core.policy.loading import Policy, add_lora, load_policy, resolve_checkpoint, shipped_models
from labkit.core.policy.models import PRESETS, count_parameters, make_model
from labkit.core.policy.tokenizer import build_tokenizer

__all__ = ["Policy", "add_lora", "load_policy", "resolve_checkpoint", "shipped_models",
           "PRESETS", "count_parameters", "make_model", "build_tokenizer"]
