"""The morphology classifier's probability of one feature on generated images (sweeps, A/B pairs).

The shipped classifier (``assets/classifier``; :class:`~galaxysd_core.models.classifier.MorphologyClassifier`)
has one head per GZ2 answer with enough training galaxies; images of any size are resized to its
input size. A feature without a head (e.g. "dust lane" for the shipped one) has no probability:
the functions return None and the page says so.
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

import numpy as np

from galaxysd_core import config
from galaxysd_core.errors import GalaxySDError

logger = logging.getLogger(__name__)


def load_feature_classifier(path: Optional[os.PathLike] = None):
    """The morphology classifier of ``path`` (default the shipped ``assets/classifier``), or None when it
    cannot be loaded (the pages then show no probabilities)."""
    from galaxysd_core.models.classifier import MorphologyClassifier  # imports torch: only when needed

    folder = path or config.DEFAULT_CLASSIFIER_DIR
    try:
        return MorphologyClassifier.from_pretrained(folder).eval()
    except GalaxySDError as exc:
        logger.warning("no classifier for feature probabilities: %s", exc)
        return None


def has_head(classifier, phrase: str) -> bool:
    """Whether ``classifier`` has a head for caption feature ``phrase``."""
    return classifier is not None and phrase in list(classifier.feature_phrases)


def feature_probability(classifier, images: Sequence[np.ndarray], phrase: str) -> Optional[np.ndarray]:
    """Probability ``(N,)`` that each image shows ``phrase`` (classifier head, sigmoid), or None without a head.

    Parameters
    ----------
    classifier : MorphologyClassifier or None
    images : sequence of numpy.ndarray
        ``(H, W, 3)`` uint8 images, all the same size.
    phrase : str
        Caption feature, e.g. ``"spiral galaxy"``.
    """
    if not has_head(classifier, phrase) or len(images) == 0:
        return None
    k = list(classifier.feature_phrases).index(phrase)
    probs = classifier.predict_proba(np.stack([np.asarray(im, dtype=np.uint8) for im in images]))
    return probs[:, k].detach().cpu().numpy().astype(float)
