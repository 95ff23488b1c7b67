"""Prompts: the ``{phrase:w}`` grammar, the word-level tokenizer over the caption vocabulary and the
per-token weighting of text-encoder output (GalaxySD Sec. 2.3)."""
