"""Training data of the diffusion stages: images and captions of prepared caches, and the caption
augmentation of each batch (dropout for classifier-free guidance, tag dropout, tag shuffling)."""
from __future__ import annotations

import random
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import ParsedPrompt, parse_prompt
from galaxysd_core.prompts.weighting import tokenize_weighted
from galaxysd_core.schema.captioning import caption_tags, shuffle_caption, split_prefix
from galaxysd_core.schema.gz2 import caption_phrases
from galaxysd_core.training.config import DiffusionTrainConfig


def load_training_data(cfg: DiffusionTrainConfig, show_progress: bool = True
                       ) -> Tuple[np.ndarray, List[str], Dict[str, int]]:
    """Images, captions and derived-label counts of the configured prepared caches.

    Returns
    -------
    images : numpy.ndarray
        uint8 ``(N, H, W, 3)``.
    captions : list of str
        One caption per image (with the derived t07 roundness when ``cfg.derive_roundness``).
    derived : dict
        How many captions got each derived phrase (empty without ``derive_roundness``).

    Raises
    ------
    GalaxySDValueError
        If no cache is configured.
    """
    from galaxysd_core.data.cache import PreparedDataset, concat

    if not cfg.caches:
        raise GalaxySDValueError("no training data: give at least one prepared cache (galaxysd data prepare ...)")
    datasets = [PreparedDataset.load(c) for c in cfg.caches]
    ds = datasets[0] if len(datasets) == 1 else concat(datasets)
    captions = list(ds.index["caption"].astype(str))
    derived: Dict[str, int] = {}
    if cfg.derive_roundness:
        from galaxysd_core.data.pseudo_labels import add_roundness

        captions, derived = add_roundness(captions, ds.images, show_progress=show_progress)
    return ds.images, captions, derived


def feature_counts(captions: Sequence[str]) -> Dict[str, int]:
    """How often each caption phrase occurs in the training captions (0 for phrases never seen)."""
    counts = {p: 0 for p in caption_phrases()}
    for c in captions:
        for tag in caption_tags(c):
            if tag in counts:
                counts[tag] += 1
    return counts


def to_unit_range(images_u8: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` images as float ``NCHW`` tensors in [-1, 1] (the VAE's input range)."""
    return torch.from_numpy(images_u8).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def batch_generator(seed: int, step: int, num_processes: int = 1, process_index: int = 0,
                    micro_step: int = 0, accumulation_steps: int = 1) -> torch.Generator:
    """The generator of one batch (images, transforms, noise, timesteps) of one process.

    Parameters
    ----------
    seed : int
        ``cfg.seed``.
    step : int
        Optimizer step (0-based).
    num_processes, process_index : int
        ``accelerator.num_processes`` and ``accelerator.process_index``: every process draws its
        own batch (sampling is with replacement from the in-RAM latent cache, so processes draw
        independent batches rather than shards of one epoch).
    micro_step, accumulation_steps : int
        Batch ``micro_step`` of the ``accumulation_steps`` accumulated into one optimizer step.

    Distinct for every (step, micro step, process). With one process and no accumulation the seed
    is ``seed * 1_000_003 + step``, that of the earlier single-process runs (which the shipped
    model was trained with), so those reproduce bit for bit.
    """
    base = (seed * 1_000_003 + step) * accumulation_steps + micro_step
    return torch.Generator().manual_seed(base * num_processes + process_index)


def caption_rng(seed: int, step: int, num_processes: int = 1, process_index: int = 0) -> random.Random:
    """The caption-augmentation rng of a process from optimizer step ``step`` on (at start and at
    resume); ``seed * 7919 + step`` with one process, as in the earlier single-process runs."""
    return random.Random((seed * 7919 + step) * num_processes + process_index)


def drop_tags(caption: str, p: float, rng: random.Random) -> str:
    """Drop each tag after the survey prefix with probability ``p``, keeping at least one tag."""
    head, rest = split_prefix(caption)
    if len(rest) <= 1:
        return caption
    kept = [t for t in rest if rng.random() >= p] or [rng.choice(rest)]
    return ", ".join(head + kept)


def caption_batch(captions: Sequence[str], idx: torch.Tensor, rng: random.Random, cfg: DiffusionTrainConfig,
                  tokenizer, max_length: int, cache: Dict[str, List[int]]) -> torch.Tensor:
    """Token ids ``(len(idx), max_length)`` of the augmented captions of one batch.

    Each caption is emptied with probability ``cfg.caption_dropout`` (the unconditional branch of
    classifier-free guidance), otherwise its tags are dropped (``cfg.tag_dropout``) and shuffled
    (``cfg.shuffle_tags``); all random choices come from ``rng``. ``cache`` maps words to token ids
    across batches.
    """
    rows = []
    for i in idx.tolist():
        text = captions[i]
        if rng.random() < cfg.caption_dropout:
            parsed = ParsedPrompt(text="", words=(), weights=())
        else:
            if cfg.tag_dropout:
                text = drop_tags(text, cfg.tag_dropout, rng)
            if cfg.shuffle_tags:
                text = shuffle_caption(text, rng)
            parsed = parse_prompt(text, strict=False)
        rows.append(tokenize_weighted(tokenizer, parsed, max_length, cache)[0])
    return torch.tensor(rows, dtype=torch.long)
