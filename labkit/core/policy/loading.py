"""Load, save and adapt policies: a shipped tiny checkpoint by short name, or any local
`transformers` checkpoint directory, so a notebook moves to a real model by changing one string."""
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from labkit.core.paths import MODELS_DIR


@dataclass
class Policy:
    """A causal LM and its tokenizer, on one device."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def save(self, path) -> Path:
        path = Path(path)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path


def shipped_models() -> list[str]:
    """Short names of the checkpoints shipped in data/models/."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "config.json").is_file())


def resolve_checkpoint(name_or_path) -> Path:
    candidate = MODELS_DIR / str(name_or_path)
    if (candidate / "config.json").is_file():
        return candidate
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        return path
    shipped = ", ".join(shipped_models()) or "none shipped yet (run `labkit pretrain`)"
    raise ValueError(
        f"no checkpoint {str(name_or_path)!r}: give a shipped name ({shipped}) "
        "or a local transformers checkpoint directory"
    )


def load_policy(name_or_path, device="auto", dtype=None, lora: dict | None = None) -> Policy:
    """Load a policy by shipped short name or local checkpoint directory.

    `lora` (e.g. ``{"r": 8, "lora_alpha": 16}``) wraps the model in fresh `peft` LoRA adapters,
    so only the adapters train. Nothing is fetched from the network.
    """
    from labkit.core.devices import resolve_device

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weight-loading bar per notebook is noise
    path = resolve_checkpoint(name_or_path)
    device = resolve_device(device)
    # trust_remote_code=False: a checkpoint directory never runs code of its own here
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    tokenizer.padding_side = "left"  # batched sampling appends on the right
    if tokenizer.pad_token is None:  # real checkpoints often ship without one
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, trust_remote_code=False,
                                                 dtype=dtype or torch.float32)
    model.to(device)
    policy = Policy(model=model, tokenizer=tokenizer)
    return add_lora(policy, **lora) if lora else policy


def add_lora(policy: Policy, r: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.0,
             target_modules=("q_proj", "k_proj", "v_proj", "o_proj")) -> Policy:
    """Wrap the model in LoRA adapters (`peft`); the base weights are frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                        target_modules=list(target_modules), task_type="CAUSAL_LM")
    return Policy(model=get_peft_model(policy.model, config), tokenizer=policy.tokenizer)
