"""Settings of an evaluation run: the :class:`EvaluationConfig`, the one-variable sweeps
(:class:`Sweep`), the prompts to evaluate (:func:`read_prompts`) and the evaluation prompt list
(:data:`GALAXYSD_PROMPT_TABLE`, :data:`EVALUATION_PROMPTS`).

A sweep varies one setting at a time (``guidance``, ``steps`` or the weight of one prompt tag,
``weight:<phrase>``) around the base values of the config; :func:`set_phrase_weight` writes the
prompt of a weight sweep point.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import parse_prompt

#: GalaxySD's prompt table A-P (Ma, Sun et al. 2025, arXiv:2506.16233) in this project's caption
#: vocabulary. Every phrase is a caption phrase (``parse_prompt(strict=True)`` accepts them all);
#: the arm-number and arm-winding phrases (F, G, H) have no classifier head while the training data
#: lack GZ2 tasks t10/t11, so consistency lists them as unchecked instead of scoring them.
GALAXYSD_PROMPT_TABLE: Dict[str, str] = {
    "A": "sdss, smooth, cigar shaped galaxy",
    "B": "sdss, smooth, completely round galaxy",
    "C": "sdss, features or disk-shaped, edge-on galaxy",
    "D": "sdss, smooth, in-between round galaxy",
    "E": "sdss, ring galaxy",
    "F": "sdss, features or disk-shaped, spiral galaxy, 4 spiral arms",
    "G": "sdss, features or disk-shaped, spiral galaxy, loosely wound spiral arms, 2 spiral arms",
    "H": "sdss, features or disk-shaped, spiral galaxy, tightly wound spiral arms",
    "I": "sdss, features or disk-shaped, just noticeable bulge prominence",
    "J": "sdss, features or disk-shaped, obvious bulge prominence",
    "K": "sdss, smooth, in-between round galaxy, {dust lane:1.3}",
    "L": "sdss, features or disk-shaped, edge-on galaxy, {dust lane:1.3}, with rounded edge-on bulge",
    "M": "sdss, features or disk-shaped, bar-shaped structure in the center of galaxy",
    "N": "sdss, features or disk-shaped, edge-on galaxy, with rounded edge-on bulge",
    "O": "sdss, smooth, in-between round galaxy, merger",
    "P": "sdss, features or disk-shaped, spiral galaxy, just noticeable bulge prominence, merger",
}
#: The evaluation prompts, in table order (``galaxysd evaluate --prompts table``).
EVALUATION_PROMPTS: List[str] = list(GALAXYSD_PROMPT_TABLE.values())
#: Name that ``read_prompts`` expands to :data:`EVALUATION_PROMPTS`.
PROMPT_TABLE_NAME = "table"

#: Variables a sweep can vary (``weight:<phrase>`` varies one tag's weight).
SWEEP_VARIABLES = ("guidance", "steps", "weight:<phrase>")


@dataclass
class EvaluationConfig:
    """Settings of an evaluation run (saved as ``evaluation_config.json``).

    Parameters
    ----------
    n : int
        Images per prompt and sweep point.
    seed : int
        First seed; image ``i`` uses ``seed + i``.
    steps : int
        Denoising steps.
    guidance : float
        Classifier-free guidance scale.
    scheduler : str
        Scheduler name of :class:`~galaxysd_core.pipelines.pipeline_galaxysd.GalaxySDPipeline`.
    negative_prompt : str, optional
        Fixed negative prompt; None = the pipeline's automatic GZ2-tree negative prompt when
        ``tree_negatives`` is True, else none (plain unconditional guidance, as in GalaxySD).
    tree_negatives : bool
        Let the pipeline derive each prompt's negative prompt from the GZ2 tree (the default the app
        and CLI use).
    k : int
        Neighbourhood size of precision/recall/density/coverage (Naeem et al. 2020: 5).
    kid_subsets : int
        Random subsets of the KID estimate.
    threshold : float
        Classifier probability at which a feature counts as seen.
    max_real : int
        Largest number of real reference images (a deterministic, id-hash subsample above it).
    min_reference : int
        Real images with the prompt's caption needed to use them as reference instead of all real.
    """

    n: int = 16
    seed: int = 0
    steps: int = 20
    guidance: float = 6.5
    scheduler: str = "ddim"
    negative_prompt: Optional[str] = None
    tree_negatives: bool = True
    k: int = 5
    kid_subsets: int = 50
    threshold: float = 0.5
    max_real: int = 2000
    min_reference: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise GalaxySDValueError(f"n must be a positive integer (images per prompt), got {self.n!r}")
        if self.k < 1:
            raise GalaxySDValueError(f"k must be >= 1, got {self.k}")
        if self.max_real < 2:
            raise GalaxySDValueError(f"max_real must be >= 2, got {self.max_real}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Sweep:
    """One swept variable and its values (sweeps are run one at a time, not as a grid).

    Examples
    --------
    >>> Sweep.parse("guidance=1,3,6.5")
    Sweep(variable='guidance', values=[1.0, 3.0, 6.5])
    >>> Sweep.parse("weight:dust lane=0.8,1.3,2.0").phrase
    'dust lane'
    """

    variable: str
    values: List[float]

    @property
    def phrase(self) -> Optional[str]:
        return self.variable.split(":", 1)[1] if self.variable.startswith("weight:") else None

    @classmethod
    def parse(cls, text: str) -> "Sweep":
        """Parse ``"guidance=1,3,6.5"``, ``"steps=10,20"`` or ``"weight:dust lane=0.8,1.3"``."""
        if "=" not in str(text):
            raise GalaxySDValueError(
                f"sweep {text!r} has no '='; write e.g. 'guidance=1,3,6.5' or 'weight:dust lane=0.8,1.3,2.0'")
        name, raw = str(text).rsplit("=", 1)
        name = name.strip()
        if name.startswith("weight:"):
            phrase = " ".join(name.split(":", 1)[1].split())
            if not phrase:
                raise GalaxySDValueError(f"sweep {text!r} names no phrase; write 'weight:dust lane=0.8,1.3'")
            name = f"weight:{phrase}"
        elif name not in ("guidance", "steps"):
            raise GalaxySDValueError(f"unknown sweep variable {name!r}; use one of {list(SWEEP_VARIABLES)}")
        try:
            values = [float(v) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise GalaxySDValueError(f"sweep values in {text!r} must be numbers separated by commas") from None
        if not values or not all(math.isfinite(v) for v in values):
            raise GalaxySDValueError(f"sweep {text!r} has no finite values")
        if name == "steps" and any(v < 1 or v != int(v) for v in values):
            raise GalaxySDValueError(f"steps sweep values must be positive integers, got {values}")
        return cls(variable=name, values=values)

    def apply(self, prompt: str, config: EvaluationConfig, value: float) -> Tuple[str, float, int]:
        """``(prompt, guidance, steps)`` at one sweep point."""
        if self.variable == "guidance":
            return prompt, float(value), config.steps
        if self.variable == "steps":
            return prompt, config.guidance, int(value)
        return set_phrase_weight(prompt, self.phrase, value), config.guidance, config.steps


def set_phrase_weight(prompt: str, phrase: str, weight: float) -> str:
    """Prompt with the weight of tag ``phrase`` set to ``weight`` (the tag is appended if absent)."""
    tags = parse_prompt(prompt, strict=False).phrase_weights()
    tags[phrase] = float(weight)
    parts = [tag if w == 1.0 else f"{{{tag}:{round(w, 3):g}}}" for tag, w in tags.items()]
    return ", ".join(parts)


def read_prompts(items: Sequence[str]) -> List[str]:
    """Prompts from CLI arguments: an existing file gives one prompt per non-empty, non-# line;
    the word ``table`` gives :data:`EVALUATION_PROMPTS` (GalaxySD's prompt table A-P)."""
    prompts: List[str] = []
    for item in items:
        path = Path(item)
        if str(item).strip().lower() == PROMPT_TABLE_NAME and not path.is_file():
            prompts.extend(EVALUATION_PROMPTS)
        elif path.is_file():
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
            prompts.extend(ln for ln in lines if ln and not ln.startswith("#"))
        else:
            prompts.append(str(item))
    if not prompts:
        raise GalaxySDValueError("no prompts given; pass prompt texts or a file with one prompt per line")
    return prompts
