"""The "spot the fake" quiz: real galaxies of a prompt mixed with one generated galaxy.

:func:`start_quiz_round` draws real cutouts matching the prompt (any caption when fewer than three
match), generates one galaxy with a fresh seed and shuffles it in (:func:`new_quiz_round`). The
answers are stored by :meth:`galaxysd_core.studio.store.Store.add_quiz_answer`; 25 % correct is
chance with four images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import pandas as pd

from galaxysd_core._utils import resize_images
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.studio.generation import GenerationRequest, generate, random_seed
from galaxysd_core.studio.real_data import load_real_images, real_matches

#: Real galaxies shown with the generated one.
QUIZ_REAL = 3
#: Real galaxies drawn for a round (the cutouts shown are picked among them).
QUIZ_POOL = 32


@dataclass
class QuizRound:
    """A "spot the fake" round: images (one generated) and the position of the fake.

    Attributes
    ----------
    images : list of numpy.ndarray
        ``(H, W, 3)`` uint8, all the same size.
    fake_index : int
        Position of the generated image in ``images``.
    prompt : str
        Prompt of the generated image (and of the real ones, unless ``match`` is ``"any caption"``).
    real_ids : list of str
        Ids of the real galaxies, in display order.
    fake_seed : int
        Seed of the generated image.
    answered : int or None
        Position the player chose.
    match : str
        How the real galaxies match the prompt (see
        :func:`~galaxysd_core.studio.real_data.real_matches`; ``"any caption"`` when too few did).
    """

    images: List[np.ndarray]
    fake_index: int
    prompt: str
    real_ids: List[str]
    fake_seed: int
    answered: Optional[int] = None
    match: str = ""

    @property
    def correct(self) -> Optional[bool]:
        """Whether the answer found the fake (None before answering)."""
        return None if self.answered is None else self.answered == self.fake_index

    def answer(self, position: int) -> bool:
        """Record the player's choice; False (nothing changed) when the round was already answered."""
        if self.answered is not None:
            return False
        self.answered = int(position)
        return True

    def real_id(self, position: int) -> Optional[str]:
        """Id of the real galaxy shown at ``position`` (None for the fake)."""
        if position == self.fake_index:
            return None
        return self.real_ids[position if position < self.fake_index else position - 1]


def new_quiz_round(real_images: np.ndarray, real_ids: Sequence[str], fake_image: np.ndarray, prompt: str,
                   fake_seed: int, n_real: int = QUIZ_REAL, rng: Optional[np.random.Generator] = None) -> QuizRound:
    """Mix ``n_real`` real cutouts and one generated image in random order.

    The generated image is resized (Lanczos) to the size of the real cutouts.

    Raises
    ------
    GalaxySDValueError
        With fewer than ``n_real`` real images.
    """
    rng = rng or np.random.default_rng()
    if len(real_images) < n_real:
        raise GalaxySDValueError(f"the quiz needs {n_real} real galaxies, only {len(real_images)} were found; "
                                 f"choose a more common prompt or another data folder")
    pick = rng.choice(len(real_images), size=n_real, replace=False)
    fake = resize_images(np.asarray(fake_image, dtype=np.uint8)[None], real_images.shape[1])[0]
    pos = int(rng.integers(0, n_real + 1))
    images = [real_images[i] for i in pick]
    images.insert(pos, fake)
    return QuizRound(images=images, fake_index=pos, prompt=prompt, real_ids=[real_ids[i] for i in pick],
                     fake_seed=int(fake_seed))


def start_quiz_round(pipe, index: pd.DataFrame, prompt: str, resolution: int,
                     rng: Optional[np.random.Generator] = None) -> QuizRound:
    """A new round for ``prompt``: real galaxies of the index and one galaxy generated with a random seed.

    Real galaxies with the prompt's caption are preferred; when fewer than :data:`QUIZ_REAL`
    match, any galaxies of the index are used (``match == "any caption"``).

    Raises
    ------
    GalaxySDValueError
        Too few readable real galaxies, or an invalid prompt.
    ServerBusyError
        No generation slot within the timeout.
    """
    rng = rng or np.random.default_rng()
    pool, match = real_matches(index, prompt, QUIZ_POOL, seed=int(rng.integers(1e9)))
    if len(pool) < QUIZ_REAL:
        pool, match = index.sample(min(QUIZ_POOL, len(index)), random_state=rng), "any caption"
    # decode only a few more than are shown (unreadable files are skipped), not the whole pool
    pool = pool.sample(min(len(pool), QUIZ_REAL + 3), random_state=int(rng.integers(2**31)))
    real, ids = load_real_images(pool, resolution)
    fake_seed = random_seed()
    item = generate(pipe, GenerationRequest(prompt=prompt, n_images=1, seed=fake_seed))[0]
    quiz = new_quiz_round(real, ids, item.image, prompt, fake_seed, rng=rng)
    quiz.match = match
    return quiz
