"""The tiny policy: tokenizer round trip, presets, loading by name or path, LoRA."""
import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from labkit.core.policy import PRESETS, Policy, add_lora, build_tokenizer, count_parameters, load_policy, make_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    path = tmp_path_factory.mktemp("ckpt")
    Policy(make_model("tiny", tokenizer), tokenizer).save(path)
    return path


def test_tokenizer_is_character_level_and_round_trips(tmp_path):
    tokenizer = build_tokenizer()
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    text = "12+345= s:5813 r:0 ~!"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and len(ids) == len(text) + 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text)["input_ids"] == ids and again.padding_side == "left"


def test_tokenizer_pads_on_the_left():
    batch = build_tokenizer()(["1+1=", "12+34="], padding=True)
    assert batch["attention_mask"][0] == [0, 0, 1, 1, 1, 1, 1]


def test_presets_have_the_advertised_sizes():
    tokenizer = build_tokenizer()
    sizes = {name: count_parameters(make_model(name, tokenizer)) for name in ("tiny", "small")}
    assert 0.5e6 < sizes["tiny"] < 1.5e6 and 8e6 < sizes["small"] < 15e6
    with pytest.raises(ValueError, match="accepted: tiny"):
        make_model("huge", tokenizer)
    assert set(PRESETS) >= {"tiny", "small", "base"}


def test_load_policy_from_path_and_errors(checkpoint):
    policy = load_policy(checkpoint, device="cpu")
    assert policy.device.type == "cpu" and policy.tokenizer.padding_side == "left"
    with pytest.raises(ValueError, match="no checkpoint 'nope'"):
        load_policy("nope")


def test_shipped_base_loads_by_short_name():
    policy = load_policy("tiny", device="cpu")
    assert count_parameters(policy.model) < 1.5e6


def test_lora_trains_only_adapters(checkpoint):
    policy = load_policy(checkpoint, device="cpu", lora={"r": 4, "lora_alpha": 8})
    trainable = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    base = add_lora(load_policy(checkpoint, device="cpu"), r=2)
    ids = torch.tensor([[1, 20, 21]])
    before = base.model(input_ids=ids).logits.detach()
    loss = base.model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.optim.SGD([p for p in base.model.parameters() if p.requires_grad], lr=1.0).step()
    after = base.model(input_ids=ids).logits.detach()
    assert not torch.allclose(before, after)  # the adapters learn
