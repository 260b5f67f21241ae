"""Load, save and adapt policies: a shipped tiny checkpoint by short name, or any local
`transformers` causal-LM checkpoint directory, so a notebook moves to a real model by changing one string.

A local checkpoint whose tokenizer has a chat template (Qwen2.5-Instruct, Llama-3-Instruct...) is a
*chat* policy: `Policy.format_prompt` wraps each task prompt ("12+34=") in one user turn and the
generation prompt, and `Policy.answer_extractor` (`labkit.core.tasks.base.extract_answer`) reads the
bare answer out of what it writes ("The answer is 46." -> "46"). The shipped char-level bases have no
chat template: their prompts and completions are used as they are.
"""
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from labkit.core.checks import ParameterError
from labkit.core.paths import MODELS_DIR
from labkit.core.tasks.base import extract_answer

ACCEPTED = ("a shipped name ({shipped}) or a local transformers causal-LM checkpoint directory "
            "(config.json, weights, and a tokenizer with an eos token)")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "pytorch_model.bin.index.json")
# without one of these, transformers would build an empty tokenizer from the model type alone
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")


@dataclass
class Policy:
    """A causal LM and its tokenizer, on one device.

    chat: wrap task prompts in the tokenizer's chat template and extract answers from the completions;
    None (the default) decides by the tokenizer: chat when it has a chat template (the shipped bases
    have none). system_prompt: a system turn before each user turn (chat policies only).
    answer_extractor: completion text -> the answer the verifiers read (`Rollout.completions`); None
    leaves completions as written, and a chat policy gets `extract_answer` unless given its own."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    chat: bool | None = None
    system_prompt: str | None = None
    answer_extractor: Callable[[str], str] | None = None

    def __post_init__(self):
        if self.chat is None:
            self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        if self.chat and self.answer_extractor is None:
            self.answer_extractor = extract_answer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def format_prompt(self, prompt: str) -> str:
        """The text the model reads for a task prompt: the prompt itself, or for a chat policy the
        chat template of [system turn,] one user turn holding the prompt, and the generation prompt."""
        if not self.chat:
            return prompt
        turns = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        turns.append({"role": "user", "content": prompt})
        return self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)

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


def _accepted() -> str:
    return ACCEPTED.format(shipped=", ".join(shipped_models()) or "none shipped yet: run `labkit pretrain`")


def resolve_checkpoint(name_or_path) -> Path:
    """The directory of a shipped base (by short name) or of a local checkpoint (holding config.json),
    or a one-line ParameterError saying what is accepted."""
    candidate = MODELS_DIR / str(name_or_path)
    if (candidate / "config.json").is_file():
        return candidate
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        return path
    why = " (a directory without config.json)" if path.is_dir() else " (a file, not a directory)" if path.exists() else ""
    raise ParameterError(f"no checkpoint {str(name_or_path)!r}{why}: give {_accepted()}")


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def check_checkpoint(name_or_path, path: Path) -> None:
    """A one-line ParameterError unless `path` holds a causal-LM config (a type transformers' AutoModelForCausalLM
    builds, no code of its own), weights and tokenizer files. The tokenizer is checked as it loads."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = str(name_or_path)
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as e:
        raise ParameterError(f"{name}: config.json does not read as a JSON object ({_first_line(e)}); "
                             f"give {_accepted()}") from None
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ParameterError(f"{name}: model_type {model_type!r} is not a causal LM transformers builds without "
                             f"the checkpoint's own code; accepted: a causal-LM checkpoint (llama, qwen2, mistral, "
                             f"gemma, phi3, ... any AutoModelForCausalLM type)")
    if not any(any(path.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        raise ParameterError(f"{name}: no weights (model.safetensors or pytorch_model.bin) next to config.json; "
                             f"give {_accepted()}")
    if not any((path / file).is_file() for file in TOKENIZER_FILES):
        raise ParameterError(f"{name}: no tokenizer (tokenizer.json, tokenizer_config.json, ...) next to "
                             f"config.json; give {_accepted()}")


def load_policy(name_or_path, device="auto", dtype=None, lora: dict | None = None) -> Policy:
    """Load a policy by shipped short name ("tiny", "tiny-calc", ...) or local checkpoint directory.

    A local directory is any transformers causal-LM checkpoint (config.json of a type AutoModelForCausalLM
    builds, its weights, a tokenizer with an eos token; no pad token: it pads with eos), loaded with
    `local_files_only=True` and `trust_remote_code=False`; anything else is a one-line ParameterError.
    A tokenizer with a chat template makes a chat policy (see `Policy`).
    `lora` (e.g. ``{"r": 8, "lora_alpha": 16}``) wraps the model in fresh `peft` LoRA adapters,
    so only the adapters train. Nothing is fetched from the network.
    """
    from labkit.core.devices import resolve_device

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weight-loading bar per notebook is noise
    path = resolve_checkpoint(name_or_path)
    check_checkpoint(name_or_path, path)
    device = resolve_device(device)
    # trust_remote_code=False: a checkpoint directory never runs code of its own here
    try:
        AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)  # reads, or fails in one line
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 (any loading failure becomes one line)
        raise ParameterError(f"{name_or_path}: the config or tokenizer does not load ({_first_line(e)}); "
                             f"give {_accepted()}") from None
    tokenizer.padding_side = "left"  # batched sampling appends on the right
    if tokenizer.eos_token is None or tokenizer.eos_token_id is None:
        raise ParameterError(f"{name_or_path}: the tokenizer has no eos token, so a completion cannot end; "
                             "accepted: a tokenizer with an eos token (it pads with it when it has no pad token)")
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
    return replace(policy, model=get_peft_model(policy.model, config))
