"""A character-level tokenizer as a `transformers.PreTrainedTokenizerFast`.

One token per printable ASCII character (plus newline), so a tiny model sees digits and
operators exactly, and the tokenizer saves and loads with `save_pretrained`/`from_pretrained`
like any tokenizer of the field.
"""
from tokenizers import Tokenizer, decoders, models, processors
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
CHARACTERS = tuple(chr(c) for c in range(32, 127)) + ("\n",)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The shared char tokenizer: prompts are encoded as `<bos>` + characters; padding is on the left."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    # BPE with no merges over an unsplit string is exactly a character tokenizer.
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="left",
        model_max_length=256,
        clean_up_tokenization_spaces=False,
    )


def is_char_level(tokenizer) -> bool:
    """True when every token but the special ones is one character (labkit's char tokenizer), so
    text and tokens align one to one; False for a BPE or SentencePiece tokenizer, whose tokens
    may span several characters (the calculator then reads calls from the decoded text)."""
    special = set(tokenizer.all_special_tokens)
    return all(len(token) == 1 for token in tokenizer.get_vocab() if token not in special)
