"""Captions from Galaxy Zoo votes and labels, in the GalaxySD vocabulary.

A caption lists, in tree order, the phrase of the answer chosen at every question the volunteers
reached, after the survey prefix: ``"sdss, spiral galaxy, obvious bulge prominence, tightly wound
spiral arms, 2 spiral arms"`` (Ma, Sun et al. 2025, arXiv:2506.16233, Sec. 2.1).

Thresholds
----------
A question counts as *reached* when the answer gating it (:data:`WILLETT13_GATES`) was chosen (or,
for the one gate captions never write, t06 "odd: yes", when t06 was reached) and its fraction is at
least the Willett et al. (2013, MNRAS 435, 2835, Table 3) threshold for that question
("well-sampled" cuts; p_odd >= 0.42 reaches t08 without an "odd" majority), and, when vote counts are present, the question had at least ``min_votes`` votes (Willett
et al. use N >= 20 for the full sample; we default to 10 because Stripe 82 depth-normal galaxies have
~40 classifications in total). At a reached question the answer with the largest fraction is
chosen when that fraction is at least ``answer_threshold`` (0.5 = a majority of volunteers; Willett
et al. 2013 Sec. 6 use 0.8 for "clean" samples: :meth:`CaptionThresholds.clean`).

Partial tables
--------------
A table may lack whole questions (``gz2_cutouts`` keeps only t01-t09): :meth:`Captioner.bind` marks
them "not asked", so captions stop at that branch and their answers get NaN targets (never "no").
A NaN debiased fraction (Hart et al. 2016 leave some cells empty) falls back to the weighted
fraction of the same answer and row; a reached question with no usable value makes the row
uncaptionable (readers skip and list it). Both are counted in :class:`CaptioningReport`.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from collections import Counter
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.schema.gz2 import (ANSWER_BY_COLUMN, QUESTION_BY_STEM, QUESTIONS, ROOT_QUESTION, SUFFIX_COUNT,
                                      SUFFIX_DEBIASED, SUFFIX_FRACTION, SUFFIX_WEIGHTED_FRACTION, SURVEY_PREFIX,
                                      TREE_ORDER, Answer, parents_of, unique_ancestor_answers)

#: Willett et al. (2013) Table 3: minimum fraction of the answer leading to each question for the
#: question to count as answered by enough volunteers. Keys are question stems; values map the
#: leading answer column to its threshold.
WILLETT13_REACHED_THRESHOLDS: Dict[str, float] = {
    "t02_edgeon": 0.430,          # p_features
    "t03_bar": 0.715,             # p_not_edgeon (with p_features > 0.430)
    "t04_spiral": 0.715,
    "t05_bulge_prominence": 0.715,
    "t06_odd": 0.0,               # asked of every galaxy that is not a star
    "t07_rounded": 0.469,         # p_smooth
    "t08_odd_feature": 0.420,     # p_odd
    "t09_bulge_shape": 0.602,     # p_edgeon
    "t10_arms_winding": 0.619,    # p_spiral
    "t11_arms_number": 0.619,     # p_spiral (t10 answers sum to 1 when reached)
}

#: The answer whose fraction Willett et al. (2013) Table 3 thresholds for each question (the
#: comments of :data:`WILLETT13_REACHED_THRESHOLDS`): a question is reached when one of these
#: answers was chosen and its fraction passes the threshold. This differs from the immediate parent
#: for t04/t05 (every not-edge-on disk is asked them, whatever its bar, spiral or arm answers),
#: t06 (asked of every galaxy that is not a star) and t11 (p_spiral).
WILLETT13_GATES: Dict[str, Tuple[str, ...]] = {
    "t02_edgeon": ("t01_smooth_or_features_a02_features_or_disk",),
    "t03_bar": ("t02_edgeon_a05_no",),
    "t04_spiral": ("t02_edgeon_a05_no",),
    "t05_bulge_prominence": ("t02_edgeon_a05_no",),
    "t06_odd": ("t01_smooth_or_features_a01_smooth", "t01_smooth_or_features_a02_features_or_disk"),
    "t07_rounded": ("t01_smooth_or_features_a01_smooth",),
    "t08_odd_feature": ("t06_odd_a14_yes",),
    "t09_bulge_shape": ("t02_edgeon_a04_yes",),
    "t10_arms_winding": ("t04_spiral_a08_spiral",),
    "t11_arms_number": ("t04_spiral_a08_spiral",),
}

#: Galaxy Zoo 1 classes (Lintott et al. 2008) as the GZ2 answers they imply.
GZ1_CLASS_ANSWERS: Dict[str, List[str]] = {
    "elliptical": ["t01_smooth_or_features_a01_smooth"],
    "clockwise spiral": ["t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a05_no",
                         "t04_spiral_a08_spiral"],
    "anticlockwise spiral": ["t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a05_no",
                             "t04_spiral_a08_spiral"],
    "edge-on": ["t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a04_yes"],
    "don't know/star": ["t01_smooth_or_features_a03_star_or_artifact"],
    "merger": ["t06_odd_a14_yes", "t08_odd_feature_a24_merger"],
}


@dataclass
class CaptionThresholds:
    """Named, documented thresholds of :class:`Captioner` (see module docstring).

    Parameters
    ----------
    answer_threshold : float
        Minimum fraction of the winning answer at a reached question (0..1).
    min_votes : int
        Minimum number of votes at a question (only used when ``*_count`` columns exist).
    reached : dict
        Per-question minimum fraction of the leading answer (Willett et al. 2013 Table 3).
    """

    answer_threshold: float = 0.5
    min_votes: int = 10
    reached: Dict[str, float] = field(default_factory=lambda: dict(WILLETT13_REACHED_THRESHOLDS))

    @classmethod
    def clean(cls) -> "CaptionThresholds":
        """Willett et al. (2013) clean-sample cut: winning answer >= 0.8, N >= 20 votes."""
        return cls(answer_threshold=0.8, min_votes=20)

    def __post_init__(self) -> None:
        if not 0.0 <= self.answer_threshold <= 1.0:
            raise GalaxySDValueError(f"answer_threshold must be in [0, 1], got {self.answer_threshold}")
        if self.min_votes < 0:
            raise GalaxySDValueError(f"min_votes must be >= 0, got {self.min_votes}")
        for stem, value in self.reached.items():
            if stem not in QUESTION_BY_STEM:
                raise GalaxySDValueError(f"unknown question {stem!r} in reached thresholds")
            if not 0.0 <= value <= 1.0:
                raise GalaxySDValueError(f"reached threshold of {stem} must be in [0, 1], got {value}")

    def to_dict(self) -> dict:
        return asdict(self)


def _join(phrases: Sequence[str]) -> str:
    return ", ".join([SURVEY_PREFIX, *phrases])


def sort_tree_order(answers: Iterable[Answer]) -> List[Answer]:
    """Answers sorted by question tree order, then table order."""
    rank = {stem: i for i, stem in enumerate(TREE_ORDER)}
    return sorted(set(answers), key=lambda a: (rank[a.question], a.column))


def caption_from_answers(answers: Iterable[str | Answer], *, shuffle: bool = False,
                         rng: Optional[random.Random] = None) -> str:
    """Caption for a set of GZ2 answers (columns such as ``"t02_edgeon_a04_yes"``).

    Answers implied by the tree (the unique path to each question) are added, so a single label
    ``t02_edgeon_a04_yes`` gives ``"sdss, features or disk-shaped, edge-on galaxy"``.

    Raises
    ------
    GalaxySDValueError
        If a column is not one of the 37 GZ2 answers.
    """
    chosen: List[Answer] = []
    for item in answers:
        if isinstance(item, Answer):
            ans = item
        else:
            ans = ANSWER_BY_COLUMN.get(str(item))
            if ans is None:
                raise GalaxySDValueError(
                    f"unknown GZ2 answer column {item!r}; expected one of e.g. "
                    f"'t01_smooth_or_features_a01_smooth', 't08_odd_feature_a38_dust_lane'")
        chosen.append(ans)
        chosen.extend(unique_ancestor_answers(ans))
    ordered = [a for a in sort_tree_order(chosen) if a.captioned]
    phrases = [a.phrase for a in ordered]
    if shuffle:
        (rng or random).shuffle(phrases)
    return _join(phrases)


#: Other spellings of the Galaxy Zoo 1 classes: the snake-case names of the ``gz1_sdss`` labels.csv
#: (column ``gz1_class_name``) and the numeric CLASS codes 0-5 of its labels_original.csv.
GZ1_CLASS_ALIASES: Dict[str, str] = {
    "spiral_clockwise": "clockwise spiral", "spiral_anticlockwise": "anticlockwise spiral",
    "edge_on": "edge-on", "dont_know_or_star": "don't know/star",
    "0": "elliptical", "1": "clockwise spiral", "2": "anticlockwise spiral", "3": "edge-on",
    "4": "don't know/star", "5": "merger",
}


def gz1_class_key(class_name: str) -> str:
    """Canonical Galaxy Zoo 1 class (a key of :data:`GZ1_CLASS_ANSWERS`) for a name, alias or code."""
    key = str(class_name).strip().lower()
    key = GZ1_CLASS_ALIASES.get(key, key)
    if key not in GZ1_CLASS_ANSWERS:
        raise GalaxySDValueError(
            f"unknown Galaxy Zoo 1 class {class_name!r}; known: {sorted(GZ1_CLASS_ANSWERS)} "
            f"or {sorted(k for k in GZ1_CLASS_ALIASES if not k.isdigit())} or codes 0-5")
    return key


def caption_for_gz1_class(class_name: str) -> str:
    """Caption for a Galaxy Zoo 1 class name (``labels.csv`` column ``gz1_class_name``)."""
    return caption_from_answers(GZ1_CLASS_ANSWERS[gz1_class_key(class_name)])


def answer_targets(answers: Iterable[str | Answer]) -> Dict[str, float]:
    """Per-answer training targets from a set of given answers.

    Returns a mapping over all 37 answer columns: 1.0 for given (and implied) answers, 0.0 for the
    other answers of questions that were answered, NaN for questions never answered (unknown).
    """
    given = set()
    for item in answers:
        ans = item if isinstance(item, Answer) else ANSWER_BY_COLUMN[str(item)]
        given.add(ans)
        given.update(unique_ancestor_answers(ans))
    answered_questions = {a.question for a in given}
    out: Dict[str, float] = {}
    for col, ans in ANSWER_BY_COLUMN.items():
        if ans in given:
            out[col] = 1.0
        elif ans.question in answered_questions:
            out[col] = 0.0
        else:
            out[col] = math.nan
    return out


@dataclass
class CaptioningReport:
    """What a :class:`Captioner` met while captioning a table (for the preparation report).

    Attributes
    ----------
    absent_tasks : list of str
        Question stems with no fraction columns in the table ("not asked": captions stop at that
        branch; its answers get NaN targets, never "no"). E.g. ``t10_arms_winding`` and
        ``t11_arms_number`` in a table that kept only tasks t01-t09.
    fallbacks : collections.Counter
        Per answer column, how many NaN debiased fractions were replaced by the weighted fraction
        of the same answer and row (Hart et al. 2016 leave some debiased cells empty).
    rows_with_fallback : int
        Rows that used at least one fallback.
    skipped : list of str
        Rows that could not be captioned (a reached question without any usable value), with the
        reason; readers leave them out instead of captioning them wrongly.
    """

    absent_tasks: List[str] = field(default_factory=list)
    fallbacks: Counter = field(default_factory=Counter)
    rows_with_fallback: int = 0
    skipped: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"absent_tasks": list(self.absent_tasks), "fallbacks": dict(self.fallbacks),
                "n_fallbacks": int(sum(self.fallbacks.values())), "rows_with_fallback": int(self.rows_with_fallback),
                "n_skipped": len(self.skipped), "skipped": list(self.skipped)}

    def summary(self, max_lines: int = 10) -> str:
        """Human-readable lines: absent tasks, fallbacks and skipped rows (at most ``max_lines``)."""
        lines = []
        if self.absent_tasks:
            lines.append("tasks absent from the table (not asked; captions stop at that branch): "
                         + ", ".join(self.absent_tasks))
        n = sum(self.fallbacks.values())
        if n:
            per = ", ".join(f"{c} {k}" for c, k in self.fallbacks.most_common())
            lines.append(f"NaN debiased fractions replaced by the weighted fraction: {n} values in "
                         f"{self.rows_with_fallback} rows ({per})")
        if self.skipped:
            lines.append(f"rows left out (no usable vote fraction on a reached branch): {len(self.skipped)}")
            lines += [f"  {s}" for s in self.skipped[:max_lines]]
            if len(self.skipped) > max_lines:
                lines.append(f"  ... {len(self.skipped) - max_lines} more")
        return "\n".join(lines)


class Captioner:
    """Turn GZ2 vote fractions into GalaxySD captions.

    Parameters
    ----------
    thresholds : CaptionThresholds, optional
        Reached/answer thresholds; Willett et al. (2013) based defaults.
    debiased : bool
        Use the debiased fractions (``*_debiased``, Willett 2013 / Hart 2016) when True (default),
        the raw vote fractions (``*_fraction``) when False.
    shuffle : bool
        Shuffle the tags after the survey prefix (a training augmentation, GalaxySD Sec. 2.1).

    Examples
    --------
    >>> Captioner().caption(row)  # doctest: +SKIP
    'sdss, spiral galaxy, obvious bulge prominence, tightly wound spiral arms, 2 spiral arms'
    """

    def __init__(self, thresholds: Optional[CaptionThresholds] = None, debiased: bool = True,
                 shuffle: bool = False) -> None:
        self.thresholds = thresholds or CaptionThresholds()
        self.debiased = bool(debiased)
        self.shuffle = bool(shuffle)
        #: Questions without columns in the bound table (see :meth:`bind`); empty = all 11 asked.
        self.absent_tasks: Tuple[str, ...] = ()
        self.report = CaptioningReport()
        self._row_fallbacks: set = set()

    @property
    def suffix(self) -> str:
        return SUFFIX_DEBIASED if self.debiased else SUFFIX_FRACTION

    def required_columns(self, tasks: Optional[Iterable[str]] = None) -> List[str]:
        """Fraction columns a vote table must have (of all 11 questions, or of ``tasks``)."""
        wanted = set(tasks) if tasks is not None else None
        return [a.column + self.suffix for a in ANSWER_BY_COLUMN.values() if wanted is None or a.question in wanted]

    def tasks_in(self, header: Sequence[str]) -> Tuple[List[str], List[str]]:
        """``(present, absent)`` question stems of a table header.

        A question is present when every one of its answers has its fraction column (this
        captioner's suffix, or for debiased fractions at least the weighted fraction to fall back
        on); a question with only some of its columns is an error (a damaged table), not absent.
        """
        cols = set(header)
        present, absent = [], []
        for q in QUESTIONS:
            have = [a.column + self.suffix in cols
                    or (self.debiased and a.column + SUFFIX_WEIGHTED_FRACTION in cols) for a in q.answers]
            if all(have):
                present.append(q.stem)
            elif not any(have):
                absent.append(q.stem)
            else:
                missing = [a.column + self.suffix for a, h in zip(q.answers, have) if not h]
                raise GalaxySDDataError(
                    f"table has some but not all fraction columns of question {q.stem} (missing "
                    f"{', '.join(missing)}); a question is either fully present or absent")
        return present, absent

    def bind(self, header: Sequence[str]) -> List[str]:
        """Prepare to caption a table with this header; returns the vote columns to read.

        Questions without columns become "not asked" (:attr:`absent_tasks`; reported in
        :attr:`report`): captions stop at that branch and their answers get NaN targets. The
        root question (t01) must be present. Vote counts are read where a question has them all.

        Raises
        ------
        GalaxySDDataError
            When the root question is absent or a question is only partly present.
        """
        present, absent = self.tasks_in(header)
        if ROOT_QUESTION not in present:
            kind = "debiased" if self.debiased else "raw vote"
            raise GalaxySDDataError(
                f"table has no {kind} fraction columns of the first GZ2 question (e.g. "
                f"{ROOT_QUESTION + '_a01_smooth' + self.suffix!r}); a GZ2 vote table (Willett 2013 Table 5 "
                f"or Hart 2016 gz2_hart16.csv columns) is needed"
                + ("; try raw fractions (--raw-fractions / debiased=False)" if self.debiased else ""))
        self.absent_tasks = tuple(absent)
        self.report.absent_tasks = list(absent)
        cols = set(header)
        out: List[str] = []
        for stem in present:
            for a in QUESTION_BY_STEM[stem].answers:
                for suffix in (self.suffix, SUFFIX_WEIGHTED_FRACTION if self.debiased else None):
                    if suffix and a.column + suffix in cols:
                        out.append(a.column + suffix)
            counts = [a.column + SUFFIX_COUNT for a in QUESTION_BY_STEM[stem].answers]
            if all(c in cols for c in counts):
                out += counts
        return out

    def note_skipped(self, where: str) -> None:
        """Record a row that could not be captioned (listed in :attr:`report`)."""
        self.report.skipped.append(where)

    @staticmethod
    def _number(row: Mapping[str, float], name: str) -> float:
        try:
            return float(row[name])
        except (TypeError, ValueError):
            raise GalaxySDDataError(f"column {name!r} holds {row[name]!r}, not a vote fraction") from None

    def _fraction(self, row: Mapping[str, float], ans: Answer) -> float:
        name = ans.column + self.suffix
        if name not in row and not (self.debiased and ans.column + SUFFIX_WEIGHTED_FRACTION in row):
            raise GalaxySDDataError(
                f"vote table has no column {name!r}; a GZ2 table (Willett 2013 Table 5 or Hart 2016 "
                f"gz2_hart16.csv) is needed")
        value = self._number(row, name) if name in row else math.nan
        if math.isnan(value) and self.debiased and ans.column + SUFFIX_WEIGHTED_FRACTION in row:
            # Hart et al. (2016) leave some debiased cells empty; the weighted fraction of the same
            # answer is the closest measured value (the debiasing starts from it).
            fallback = self._number(row, ans.column + SUFFIX_WEIGHTED_FRACTION)
            if not math.isnan(fallback):
                self._row_fallbacks.add(ans.column)
                value = fallback
        if math.isnan(value):
            raise GalaxySDDataError(f"column {name!r} is NaN: no vote fraction to caption from"
                                    + (" (nor a weighted fraction)" if self.debiased else ""))
        if value < -1e-6 or value > 1 + 1e-6:
            raise GalaxySDDataError(f"column {name!r} = {value} is not a fraction in [0, 1]")
        return value

    def _votes(self, row: Mapping[str, float], stem: str) -> Optional[float]:
        cols = [a.column + SUFFIX_COUNT for a in QUESTION_BY_STEM[stem].answers]
        if not all(c in row for c in cols):
            return None
        total = 0.0
        for c in cols:
            v = float(row[c])
            if math.isnan(v):
                raise GalaxySDDataError(f"column {c!r} is NaN: no vote count")
            total += v
        return total

    def answers(self, row: Mapping[str, float]) -> List[Answer]:
        """Answers chosen along the reached branches, in tree order (including uncaptioned ones)."""
        chosen: List[Answer] = []
        chosen_set = set()
        reached_set = set()
        self._row_fallbacks = set()
        for stem in TREE_ORDER:
            q = QUESTION_BY_STEM[stem]
            if stem in self.absent_tasks:
                continue  # not asked in this table: the branch stops here (never read as "no")
            if stem != ROOT_QUESTION:
                gates = WILLETT13_GATES.get(stem)
                candidates = [ANSWER_BY_COLUMN[c] for c in gates] if gates else parents_of(stem)
                # A gate counts when its answer was chosen or, for an answer captions never write
                # (t06 "odd: yes"), when its question was reached and the fraction passes the
                # threshold: Willett et al. (2013) Table 3 reach t08 at p_odd >= 0.42 even without
                # an "odd" majority (rare features such as dust lanes and mergers need this).
                leading = [p for p in candidates
                           if p in chosen_set or (not p.captioned and p.question in reached_set)]
                if not leading:
                    continue  # branch not reached
                need = self.thresholds.reached.get(stem, 0.0)
                if max(self._fraction(row, p) for p in leading) < need:
                    continue
            votes = self._votes(row, stem)
            if votes is not None and votes < self.thresholds.min_votes:
                continue
            reached_set.add(stem)
            fractions = [(self._fraction(row, a), a) for a in q.answers]
            best_value, best = max(fractions, key=lambda t: t[0])
            if best_value >= self.thresholds.answer_threshold and best_value > 0:
                chosen.append(best)
                chosen_set.add(best)
        if self._row_fallbacks:  # counted once per row and answer, however often the value was read
            self.report.rows_with_fallback += 1
            self.report.fallbacks.update(self._row_fallbacks)
        return chosen

    def caption(self, row: Mapping[str, float], rng: Optional[random.Random] = None) -> str:
        """Caption of one galaxy (a mapping column -> value, e.g. a pandas row)."""
        phrases = [a.phrase for a in self.answers(row) if a.captioned]
        if self.shuffle:
            (rng or random).shuffle(phrases)
        return _join(phrases)

    def targets(self, row: Mapping[str, float]) -> Dict[str, float]:
        """Per-answer 1/0/NaN targets for the classifier (see :func:`answer_targets`)."""
        chosen = self.answers(row)
        answered = {a.question for a in chosen}
        out = {}
        for col, ans in ANSWER_BY_COLUMN.items():
            out[col] = 1.0 if ans in chosen else (0.0 if ans.question in answered else math.nan)
        return out


def caption_tags(caption: str, *, keep_prefix: bool = False) -> Tuple[str, ...]:
    """Tags of a caption in caption order, stripped, empty ones dropped; the survey prefix
    (``"sdss"``) is dropped unless ``keep_prefix``. Plain captions only: for prompts with
    ``{phrase:w}`` weights use :func:`galaxysd_core.prompts.grammar.prompt_tags`."""
    tags = tuple(t.strip() for t in str(caption).split(",") if t.strip())
    return tags if keep_prefix else tuple(t for t in tags if t != SURVEY_PREFIX)


def split_prefix(caption: str) -> Tuple[List[str], List[str]]:
    """``([prefix], tags)`` of a caption when it starts with the survey prefix, else ``([], tags)``."""
    tags = list(caption_tags(caption, keep_prefix=True))
    return (tags[:1], tags[1:]) if tags and tags[0] == SURVEY_PREFIX else ([], tags)


def shuffle_caption(caption: str, rng: Optional[random.Random] = None) -> str:
    """Shuffle the tags of a caption, keeping the survey prefix first (training augmentation)."""
    head, rest = split_prefix(caption)
    (rng or random).shuffle(rest)
    return ", ".join(head + rest)
