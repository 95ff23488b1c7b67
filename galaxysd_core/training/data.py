"""Training data of the diffusion stages: images and captions of prepared caches, the batches of
every optimizer step (which rows, which dihedral transform: :class:`StepBatchSampler`, read through
a ``torch.utils.data.DataLoader``), and the caption augmentation of each batch (dropout for
classifier-free guidance, tag dropout, tag shuffling).

Reproducibility: the rows and transforms of a batch come from :func:`batch_generator` of its
(step, micro step, process), the caption augmentation from :func:`caption_rng`; neither depends on
the number of DataLoader workers, and a resumed run continues with the batches it would have drawn.
"""
from __future__ import annotations

import logging
import random
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import ParsedPrompt, parse_prompt
from galaxysd_core.prompts.weighting import tokenize_weighted
from galaxysd_core.schema.captioning import caption_tags, shuffle_caption, split_prefix
from galaxysd_core.schema.gz2 import caption_phrases
from galaxysd_core._utils import dihedral
from galaxysd_core.training.config import DiffusionTrainConfig

logger = logging.getLogger(__name__)


def load_training_data(cfg: DiffusionTrainConfig, show_progress: bool = True
                       ) -> Tuple[Any, List[str], Dict[str, int], Optional[Dict[str, Any]]]:
    """Images, captions, derived-label counts and the partial-vote caption report of the
    configured prepared caches.

    Returns
    -------
    images : ShardedArray or numpy.ndarray
        uint8 ``(N, H, W, 3)``, read lazily from the caches' shards (nothing is loaded but the
        tables; a cache of the earlier single-file format is in memory, with a warning).
    captions : list of str
        One caption per image (with the derived t07 roundness when ``cfg.derive_roundness``).
    derived : dict
        How many captions got each derived phrase (empty without ``derive_roundness``).
    partial_votes : dict or None
        With ``cfg.partial_vote_threshold``: the rare-phrase caption counts before and after
        (:class:`~galaxysd_core.schema.partial_votes.PartialVoteReport`), else None.

    Raises
    ------
    GalaxySDValueError
        If no cache is configured.
    """
    from galaxysd_core.data.cache import PreparedDataset, concat
    from galaxysd_core.data.shards import take_rows

    if not cfg.caches:
        raise GalaxySDValueError("no training data: give at least one prepared cache (galaxysd data prepare ...)")
    datasets = [PreparedDataset.load(c) for c in cfg.caches]
    for c, d in zip(cfg.caches, datasets):
        if not d.is_sharded:
            logger.warning("%s is a cache of the earlier single-file format: its %d images are held in memory "
                           "during training; 'galaxysd data convert %s' rewrites it as shards read from disk",
                           c, len(d), c)
    ds = datasets[0] if len(datasets) == 1 else concat(datasets)
    images, index = ds.images, ds.index
    if cfg.exclude_ids_from:
        from galaxysd_core.training.classifier_data import load_test_ids

        held_out = set(load_test_ids(cfg.exclude_ids_from))
        keep = ~index["id"].astype(str).isin(held_out).to_numpy()
        images, index = take_rows(images, np.flatnonzero(keep)), index[keep]
    captions = list(index["caption"].astype(str))
    derived: Dict[str, int] = {}
    if cfg.derive_roundness:
        from galaxysd_core.data.pseudo_labels import add_roundness

        captions, derived = add_roundness(captions, images, show_progress=show_progress)
    partial = None
    if cfg.partial_vote_threshold:
        from galaxysd_core.schema.partial_votes import add_partial_vote_phrases

        captions, report = add_partial_vote_phrases(captions, index.reset_index(drop=True), cfg.partial_vote_threshold)
        partial = report.to_dict()
        logger.info("partial-vote captions (%s): %d captions changed; before -> after %s", partial["rule"],
                    report.rows_changed, {p: f"{report.before[p]}->{report.after[p]}" for p in report.before})
    return images, captions, derived, partial


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
        own batch (sampling is with replacement from the whole latent cache, so processes draw
        independent batches rather than shards of one epoch; an "epoch" is the number of steps
        whose batches hold as many images as the data set, see :func:`steps_per_epoch`).
    micro_step, accumulation_steps : int
        Batch ``micro_step`` of the ``accumulation_steps`` accumulated into one optimizer step.

    Distinct for every (step, micro step, process). With one process and no accumulation the seed
    is ``seed * 1_000_003 + step``, that of the earlier single-process runs (which the shipped
    model was trained with), so those reproduce bit for bit (with ``latent_dihedral="encoded"``,
    the latents they were trained on; streamed or in memory, with any number of DataLoader workers).
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


def steps_per_epoch(n_images: int, batch_size: int, num_processes: int = 1, accumulation_steps: int = 1) -> int:
    """Optimizer steps whose batches, over all processes and accumulated batches, hold ``n_images``
    images (the effective batch is ``batch_size * num_processes * accumulation_steps``)."""
    return max(1, -(-int(n_images) // (int(batch_size) * int(num_processes) * int(accumulation_steps))))


class StepBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(row, transform)`` pairs, one per (optimizer step, accumulated batch) of a
    process, from step ``start_step`` to ``end_step``: the ``batch_sampler`` of the training
    DataLoaders.

    Rows are drawn with replacement from ``n`` with :func:`batch_generator` (uniformly, or in
    proportion to ``weights`` when given: the rare-caption oversampling), then the dihedral
    transform index in 0..7 of every row (``per_batch_transform``: one for the whole batch, as the
    VAE stage does). :meth:`draw` gives the same draws and the generator after them, from which the
    training loop draws the noise and timesteps of the batch, exactly as when it drew the rows
    itself from an in-memory cache.
    """

    def __init__(self, seed: int, n: int, batch_size: int, start_step: int, end_step: int, *,
                 num_processes: int = 1, process_index: int = 0, accumulation_steps: int = 1,
                 per_batch_transform: bool = False, weights: Optional[np.ndarray] = None) -> None:
        self.seed, self.n, self.batch_size = int(seed), int(n), int(batch_size)
        if weights is not None:
            weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
            if weights.shape != (self.n,) or not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()) \
                    or float(weights.sum()) <= 0:
                raise GalaxySDValueError(f"sampling weights must be {self.n} finite, non-negative numbers with a "
                                         "positive sum")
        self.weights = weights
        self.start_step, self.end_step = int(start_step), int(end_step)
        self.num_processes, self.process_index = int(num_processes), int(process_index)
        self.accumulation_steps, self.per_batch_transform = int(accumulation_steps), per_batch_transform

    def draw(self, step: int, micro_step: int = 0) -> Tuple[torch.Generator, torch.Tensor, torch.Tensor]:
        """``(generator, rows, transforms)`` of one batch; the generator continues after the draws."""
        g = batch_generator(self.seed, step, self.num_processes, self.process_index, micro_step,
                            self.accumulation_steps)
        if self.weights is None:
            rows = torch.randint(0, self.n, (self.batch_size,), generator=g)
        else:  # oversampling (schema/partial_votes.py): with replacement, in proportion to the weights
            rows = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=g)
        if self.per_batch_transform:
            k = torch.full((self.batch_size,), int(torch.randint(0, 8, (1,), generator=g)))
        else:
            k = torch.randint(0, 8, (self.batch_size,), generator=g)
        return g, rows, k

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        for step in range(self.start_step, self.end_step):
            for micro in range(self.accumulation_steps):
                _, rows, k = self.draw(step, micro)
                yield list(zip(rows.tolist(), k.tolist()))

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.accumulation_steps


def apply_dihedral(batch: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``batch[i]`` under dihedral transform ``k[i]`` (square ``NCHW`` batches), one call per transform.

    One transform for the whole batch gives :func:`~galaxysd_core._utils.dihedral`'s strided view,
    as the earlier loop did (convolutions of a strided and of a contiguous batch can round differently).
    """
    if len(k) and bool((k == k[0]).all()):
        return dihedral(batch, int(k[0]))
    out = batch.clone()
    for t in torch.unique(k).tolist():
        if t:
            m = k == t
            out[m] = dihedral(batch[m], t)
    return out


class ImageBatches(torch.utils.data.Dataset):
    """Training images as ``NCHW`` float batches in [-1, 1] under their dihedral transforms, read
    batch-wise (``__getitems__``) from a lazy :class:`~galaxysd_core.data.shards.ShardedArray`
    (or an array) of uint8 ``(N, H, W, 3)`` images; items are ``(row, transform)`` pairs."""

    def __init__(self, images) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images) * 8

    def __getitems__(self, pairs: Sequence[Tuple[int, int]]) -> Tuple[torch.Tensor, torch.Tensor]:
        rows = torch.tensor([p[0] for p in pairs], dtype=torch.long)
        k = torch.tensor([p[1] for p in pairs], dtype=torch.long)
        return rows, apply_dihedral(to_unit_range(np.asarray(self.images[rows.numpy()])), k)

    def __getitem__(self, pair: Tuple[int, int]):
        rows, x = self.__getitems__([pair])
        return x[0]


def _batch_as_is(batch):
    """``collate_fn`` of the training DataLoaders: ``__getitems__`` already returns whole batches."""
    return batch


def batch_loader(dataset, sampler: StepBatchSampler, num_workers: int = 0,
                 pin_memory: Optional[bool] = None) -> torch.utils.data.DataLoader:
    """The DataLoader of a training stage: ``sampler`` as ``batch_sampler`` (so the batches are
    those :func:`batch_generator` draws, whatever ``num_workers``), batches fetched by the
    dataset's ``__getitems__``, in order; the global torch generator is left untouched. Not passed through ``accelerator.prepare``: every process
    already draws its own batches (accelerate would shard or re-wrap the batch sampler)."""
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    # its own generator: an iterator draws a base seed, which from the global generator would shift
    # the random numbers of everything after it (the VAE's posterior samples, dropout)
    gen = torch.Generator().manual_seed(sampler.seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=int(num_workers),
                                       collate_fn=_batch_as_is, pin_memory=pin, generator=gen)
