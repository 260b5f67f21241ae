"""A tiny vision-language model: patch encoder -> projector -> prefix of the tiny Llama's input.

    image (3, 16, 16) -> 16 patches of 4x4x3 -> MLP -> [mean over patches | each patch + its position]
    -> projector -> 17 prefix embeddings, then the prompt's token embeddings; the Llama (labkit's
    `tiny` preset) reads both. The pooled token (like a CLS token) makes "how many of a colour" a
    linear read-out of the image, which a 0.8M-parameter model learns within a CPU-minutes budget.

`TinyVLM` is a `transformers.PreTrainedModel` with its own config, so it saves and loads with
`save_pretrained`/`from_pretrained` and moves with `.to(device)` like any model of the field.
Without `pixel_values` it is the plain language model (the text-only second pass of Vision-SR1).
"""
from pathlib import Path

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, PretrainedConfig, PreTrainedModel

from labkit.core.policy.models import PRESETS
from labkit.core.sampling import position_ids_for


class TinyVLMConfig(PretrainedConfig):
    model_type = "labkit_tiny_vlm"

    def __init__(self, text_config: dict | None = None, image_size: int = 16, patch_size: int = 4,
                 channels: int = 3, encoder_hidden: int = 128, **kwargs):
        self.text_config = dict(text_config or {})
        self.image_size, self.patch_size, self.channels = image_size, patch_size, channels
        self.encoder_hidden = encoder_hidden
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class TinyVLM(PreTrainedModel):
    config_class = TinyVLMConfig
    base_model_prefix = "vlm"
    _supports_sdpa = True
    _supports_attention_backend = True

    def __init__(self, config: TinyVLMConfig):
        super().__init__(config)
        if config.image_size % config.patch_size:
            raise ValueError(f"image_size {config.image_size} must be a multiple of patch_size {config.patch_size}")
        text = LlamaConfig(**config.text_config)
        patch_dim = config.channels * config.patch_size ** 2
        self.patch_embed = nn.Sequential(nn.Linear(patch_dim, config.encoder_hidden), nn.GELU(),
                                         nn.Linear(config.encoder_hidden, config.encoder_hidden))
        self.patch_position = nn.Parameter(torch.randn(config.num_patches, config.encoder_hidden) * 0.02)
        self.projector = nn.Linear(config.encoder_hidden, text.hidden_size)
        self.language_model = LlamaForCausalLM(text)
        self.post_init()
        # post_init draws every Linear at std 0.02, which through three layers makes the image prefix
        # ~10x smaller than a token embedding (and its gradients vanish): the encoder keeps
        # PyTorch's fan-in initialisation instead
        for layer in (*self.patch_embed, self.projector):
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    @property
    def prefix_len(self) -> int:
        return self.config.num_patches + 1  # the pooled token, then one per patch

    def embed_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + num_patches, hidden): the prefix the language model reads."""
        c, p = self.config.channels, self.config.patch_size
        if pixel_values.dim() != 4 or pixel_values.shape[1] != c or pixel_values.shape[-1] != self.config.image_size \
                or pixel_values.shape[-2] != self.config.image_size:
            raise ValueError(f"pixel_values must be (B, {c}, {self.config.image_size}, {self.config.image_size}); "
                             f"got {tuple(pixel_values.shape)}")
        b = pixel_values.shape[0]
        patches = pixel_values.unfold(2, p, p).unfold(3, p, p)  # (B, C, h, w, p, p)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)
        features = self.patch_embed(patches.to(self.patch_position.dtype))
        pooled = features.mean(dim=1, keepdim=True)  # counts of what the patches show, up to a scale
        return self.projector(torch.cat([pooled, features + self.patch_position], dim=1))

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, position_ids=None, labels=None,
                **kwargs):
        """With `pixel_values`, `input_ids`/`attention_mask`/`labels` cover the text only: the image
        prefix goes in front and the logits cover [prefix | text]. Without, the plain Llama (also
        how cached decoding continues: then `attention_mask` covers everything seen so far)."""
        if pixel_values is None:
            return self.language_model(input_ids=input_ids, attention_mask=attention_mask,
                                       position_ids=position_ids, labels=labels, **kwargs)
        prefix = self.embed_image(pixel_values)
        b, k = prefix.shape[:2]
        embeds = torch.cat([prefix, self.language_model.get_input_embeddings()(input_ids)], dim=1)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = torch.cat([attention_mask.new_ones(b, k), attention_mask], dim=1)
        if labels is not None:
            labels = torch.cat([labels.new_full((b, k), -100), labels], dim=1)
        return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask,
                                   position_ids=position_ids_for(attention_mask), labels=labels, **kwargs)


def make_vlm(tokenizer, preset: str = "tiny", image_size: int = 16, patch_size: int = 4,
             max_positions: int = 128) -> TinyVLM:
    """A fresh TinyVLM whose language model is labkit's `preset` Llama (untied head)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; accepted: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    text = dict(vocab_size=len(tokenizer), hidden_size=p.hidden, intermediate_size=p.mlp,
                num_hidden_layers=p.layers, num_attention_heads=p.heads, num_key_value_heads=p.heads,
                max_position_embeddings=max_positions, tie_word_embeddings=False,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id)
    config = TinyVLMConfig(text_config=text, image_size=image_size, patch_size=patch_size,
                           encoder_hidden=p.hidden, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return TinyVLM(config)


def load_vlm(name_or_path="tiny-vlm", device="auto"):
    """(model, tokenizer) from a shipped name (data/models/<name>) or a checkpoint directory."""
    from transformers import PreTrainedTokenizerFast

    from labkit.core.devices import resolve_device
    from labkit.core.policy.loading import resolve_checkpoint

    path = resolve_checkpoint(name_or_path)
    # trust_remote_code=False: a checkpoint directory never runs code of its own here
    config = TinyVLMConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    if config.model_type != TinyVLMConfig.model_type:
        raise ValueError(f"{Path(path).name} is not a TinyVLM checkpoint (model_type {config.model_type!r})")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True,
                                                        trust_remote_code=False)
    tokenizer.padding_side = "left"
    model = TinyVLM.from_pretrained(path, local_files_only=True, trust_remote_code=False,
                                    dtype=torch.float32)
    return model.to(resolve_device(device)), tokenizer
