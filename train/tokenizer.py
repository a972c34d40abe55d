"""The trainer's tokenizer: a local Hugging Face tokenizer folder, or a built-in character tokenizer.

The character tokenizer needs no files and no network: one id per printable ASCII character plus
newline, then the chat special tokens. It backs the `tiny` config and the tests, where exact ids
are easy to state: newline is 1, a printable character c is `ord(c) - 30`, then `<|im_start|>` 97,
`<|im_end|>` 98, `<image>` 99, `<REGION>` 100 and the pad token `<|endoftext|>` 101.

    tok = load_tokenizer("char")              # built in
    tok = load_tokenizer("/models/Qwen2.5-1.5B-Instruct")   # local folder, never downloaded
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from tokenization.chat import add_special_tokens

UNK = "<unk>"
CHARS = [UNK, "\n"] + [chr(c) for c in range(32, 127)]


def char_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer: `CHARS[i]` has id i; specials follow from id len(CHARS)."""
    core = Tokenizer(models.WordLevel({c: i for i, c in enumerate(CHARS)}, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # decode joins characters as they are (WordLevel would put spaces between)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token=UNK)
    add_special_tokens(tok)
    return tok


def load_tokenizer(name: str) -> PreTrainedTokenizerFast:
    """`char` for the built-in tokenizer, else a local folder (offline; the chat specials are added)."""
    if name == "char":
        return char_tokenizer()
    path = Path(name)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer folder {path} does not exist: set model.tokenizer to a local folder or 'char'")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    add_special_tokens(tok)
    return tok
