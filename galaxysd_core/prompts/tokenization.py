"""Word-level tokenizer over the GalaxySD caption vocabulary.

GalaxySD fine-tunes SD 1.5, whose CLIP BPE tokenizer knows ~49k sub-words. The shipped
GalaxySD-mini model is trained from scratch on a few thousand captions, so it uses one token per
vocabulary word (plus ``,``), built with the ``tokenizers`` library and wrapped as a
``transformers.PreTrainedTokenizerFast``: it saves and loads with the same ``save_pretrained`` /
``AutoTokenizer.from_pretrained`` calls as SD's ``CLIPTokenizer``, so the pipeline has one code path.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from galaxysd_core.prompts.grammar import known_words

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<|startoftext|>", "<|endoftext|>"
#: Longest tokenized prompt of the mini model, special tokens included (the longest possible GZ2
#: caption has 34 tokens).
DEFAULT_MAX_LENGTH = 48
#: Marker stored in ``tokenizer_config.json`` so the pipeline knows the vocabulary is closed.
WORD_LEVEL_MARKER = "galaxysd_word_level"


def build_word_tokenizer(extra_words: Optional[Sequence[str]] = None,
                         max_length: int = DEFAULT_MAX_LENGTH) -> PreTrainedTokenizerFast:
    """Build the word-level tokenizer of GalaxySD-mini.

    Parameters
    ----------
    extra_words : sequence of str, optional
        Words to add beyond the GZ2 caption vocabulary.
    max_length : int
        ``model_max_length``; prompts are padded to it.
    """
    words: List[str] = [PAD, UNK, BOS, EOS, ","]
    for w in [*known_words(), *(extra_words or [])]:
        if w not in words:
            words.append(w)
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(",", behavior="isolated"),
        pre_tokenizers.WhitespaceSplit(),
    ])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
        model_max_length=max_length)
    fast.init_kwargs[WORD_LEVEL_MARKER] = True
    return fast


def is_word_level(tokenizer) -> bool:
    """True for the closed-vocabulary tokenizer of GalaxySD-mini (not for SD's CLIP BPE)."""
    return bool(getattr(tokenizer, "init_kwargs", {}).get(WORD_LEVEL_MARKER, False))


def text_max_length(tokenizer, text_encoder) -> int:
    """Tokens per prompt: the tokenizer's ``model_max_length``, or the text encoder's position count
    when the tokenizer sets no real limit (transformers uses a huge sentinel, ~1e30, for "none")."""
    m = int(tokenizer.model_max_length)
    return m if m <= 10_000 else int(text_encoder.config.max_position_embeddings)
