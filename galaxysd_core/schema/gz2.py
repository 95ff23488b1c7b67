"""Framework-free schema of the Galaxy Zoo 2 decision tree.

The 11 questions and 37 answers of GZ2 (Willett et al. 2013, MNRAS 435, 2835, Fig. 1 and Table 2),
with the column names used in the public tables (Willett et al. 2013 Table 5; Hart et al. 2016,
MNRAS 461, 3663, ``gz2_hart16.csv``): ``<question>_<answer>`` followed by a suffix such as
``_debiased`` or ``_fraction``. Each answer knows which question it leads to and the phrase used
for it in GalaxySD captions (Ma, Sun et al. 2025, arXiv:2506.16233, Sec. 2).

This module imports nothing but the standard library (like zoobot's ``label_metadata``), so the
schema can be used by readers, captioning, the app and third-party code alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

#: Survey prefix that starts every GalaxySD caption.
SURVEY_PREFIX = "sdss"

#: Column suffixes of the public GZ2 tables (Willett 2013 Table 5; Hart 2016).
SUFFIX_DEBIASED = "_debiased"
SUFFIX_FRACTION = "_fraction"
SUFFIX_WEIGHTED_FRACTION = "_weighted_fraction"
SUFFIX_COUNT = "_count"


@dataclass(frozen=True)
class Answer:
    """One answer of the GZ2 tree.

    Attributes
    ----------
    column : str
        Column stem in the public tables, e.g. ``"t01_smooth_or_features_a01_smooth"``.
    question : str
        Stem of the question it answers, e.g. ``"t01_smooth_or_features"``.
    code : str
        Answer code, e.g. ``"a01_smooth"``.
    label : str
        Short human label ("smooth").
    phrase : str
        Caption phrase of GalaxySD ("smooth", "2 spiral arms").
    captioned : bool
        Whether a caption mentions the answer. Negative answers ("no bar", "not edge-on") only
        route through the tree and are not written, as in GalaxySD captions.
    leads_to : str or None
        Stem of the next question, ``None`` where the classification ends.
    """

    column: str
    question: str
    code: str
    label: str
    phrase: str
    captioned: bool
    leads_to: Optional[str]


@dataclass(frozen=True)
class Question:
    """One GZ2 question (task) and its answers, in the order of the published tables."""

    stem: str
    text: str
    answers: Tuple[Answer, ...]

    @property
    def number(self) -> int:
        """Task number, 1..11."""
        return int(self.stem[1:3])


def _q(stem: str, text: str, answers: List[Tuple[str, str, str, bool, Optional[str]]]) -> Question:
    return Question(
        stem=stem,
        text=text,
        answers=tuple(
            Answer(column=f"{stem}_{code}", question=stem, code=code, label=label, phrase=phrase,
                   captioned=captioned, leads_to=nxt)
            for code, label, phrase, captioned, nxt in answers
        ),
    )


#: The 11 GZ2 questions in table order (t01..t11). Tree links follow Willett et al. 2013 Fig. 1.
QUESTIONS: Tuple[Question, ...] = (
    _q("t01_smooth_or_features", "Is the galaxy simply smooth and rounded, with no sign of a disk?", [
        ("a01_smooth", "smooth", "smooth", True, "t07_rounded"),
        ("a02_features_or_disk", "features or disk", "features or disk-shaped", True, "t02_edgeon"),
        ("a03_star_or_artifact", "star or artifact", "star or artifact", True, None),
    ]),
    _q("t02_edgeon", "Could this be a disk viewed edge-on?", [
        ("a04_yes", "yes", "edge-on galaxy", True, "t09_bulge_shape"),
        ("a05_no", "no", "not edge-on", False, "t03_bar"),
    ]),
    _q("t03_bar", "Is there a sign of a bar feature through the centre of the galaxy?", [
        ("a06_bar", "bar", "bar-shaped structure in the center of galaxy", True, "t04_spiral"),
        ("a07_no_bar", "no bar", "no bar", False, "t04_spiral"),
    ]),
    _q("t04_spiral", "Is there any sign of a spiral arm pattern?", [
        ("a08_spiral", "spiral", "spiral galaxy", True, "t10_arms_winding"),
        ("a09_no_spiral", "no spiral", "no spiral arms", False, "t05_bulge_prominence"),
    ]),
    _q("t05_bulge_prominence", "How prominent is the central bulge, compared with the rest of the galaxy?", [
        ("a10_no_bulge", "no bulge", "no bulge prominence", True, "t06_odd"),
        ("a11_just_noticeable", "just noticeable", "just noticeable bulge prominence", True, "t06_odd"),
        ("a12_obvious", "obvious", "obvious bulge prominence", True, "t06_odd"),
        ("a13_dominant", "dominant", "dominant bulge prominence", True, "t06_odd"),
    ]),
    _q("t06_odd", "Is there anything odd?", [
        ("a14_yes", "yes", "odd feature", False, "t08_odd_feature"),
        ("a15_no", "no", "nothing odd", False, None),
    ]),
    _q("t07_rounded", "How rounded is it?", [
        ("a16_completely_round", "completely round", "completely round galaxy", True, "t06_odd"),
        ("a17_in_between", "in between", "in-between round galaxy", True, "t06_odd"),
        ("a18_cigar_shaped", "cigar shaped", "cigar shaped galaxy", True, "t06_odd"),
    ]),
    _q("t08_odd_feature", "Is the odd feature a ring, or is the galaxy disturbed or irregular?", [
        ("a19_ring", "ring", "ring galaxy", True, None),
        ("a20_lens_or_arc", "lens or arc", "lens or arc", True, None),
        ("a21_disturbed", "disturbed", "disturbed galaxy", True, None),
        ("a22_irregular", "irregular", "irregular galaxy", True, None),
        ("a23_other", "other", "other odd feature", True, None),
        ("a24_merger", "merger", "merger", True, None),
        ("a38_dust_lane", "dust lane", "dust lane", True, None),
    ]),
    _q("t09_bulge_shape", "Does the galaxy have a bulge at its centre? If so, what shape?", [
        ("a25_rounded", "rounded", "with rounded edge-on bulge", True, "t06_odd"),
        ("a26_boxy", "boxy", "with boxy edge-on bulge", True, "t06_odd"),
        ("a27_no_bulge", "no bulge", "with no edge-on bulge", True, "t06_odd"),
    ]),
    _q("t10_arms_winding", "How tightly wound do the spiral arms appear?", [
        ("a28_tight", "tight", "tightly wound spiral arms", True, "t11_arms_number"),
        ("a29_medium", "medium", "medium wound spiral arms", True, "t11_arms_number"),
        ("a30_loose", "loose", "loosely wound spiral arms", True, "t11_arms_number"),
    ]),
    _q("t11_arms_number", "How many spiral arms are there?", [
        ("a31_1", "1", "1 spiral arm", True, "t05_bulge_prominence"),
        ("a32_2", "2", "2 spiral arms", True, "t05_bulge_prominence"),
        ("a33_3", "3", "3 spiral arms", True, "t05_bulge_prominence"),
        ("a34_4", "4", "4 spiral arms", True, "t05_bulge_prominence"),
        ("a36_more_than_4", "more than 4", "more than 4 spiral arms", True, "t05_bulge_prominence"),
        ("a37_cant_tell", "can't tell", "uncountable spiral arms", False, "t05_bulge_prominence"),
    ]),
)

#: Root question of the tree.
ROOT_QUESTION = "t01_smooth_or_features"

QUESTION_BY_STEM: Dict[str, Question] = {q.stem: q for q in QUESTIONS}
ANSWERS: Tuple[Answer, ...] = tuple(a for q in QUESTIONS for a in q.answers)
ANSWER_BY_COLUMN: Dict[str, Answer] = {a.column: a for a in ANSWERS}
ANSWER_BY_PHRASE: Dict[str, Answer] = {a.phrase: a for a in ANSWERS}

assert len(ANSWERS) == 37, "GZ2 has 37 answers (Willett et al. 2013 Table 2)"
assert len(ANSWER_BY_PHRASE) == 37, "caption phrases must be unique"


def parents_of(question_stem: str) -> List[Answer]:
    """Answers that lead to ``question_stem`` (empty for the root)."""
    return [a for a in ANSWERS if a.leads_to == question_stem]


def _depth_first_order() -> List[str]:
    order: List[str] = []

    def visit(stem: str) -> None:
        if stem in order:
            return
        # only visit a question once all questions that can lead to it were visited
        order.append(stem)
        for a in QUESTION_BY_STEM[stem].answers:
            if a.leads_to and all(p.question in order for p in parents_of(a.leads_to)):
                visit(a.leads_to)

    visit(ROOT_QUESTION)
    return order


#: Questions in the order a volunteer meets them (depth first, a question after all its parents):
#: t01, t07, t02, t09, t03, t04, t10, t11, t05, t06, t08. Captions list their phrases in this order.
TREE_ORDER: Tuple[str, ...] = tuple(_depth_first_order())
assert sorted(TREE_ORDER) == sorted(QUESTION_BY_STEM), "every question is reachable from t01"


def tree_order() -> Tuple[str, ...]:
    """Question stems in caption (reading) order."""
    return TREE_ORDER


def captioned_answers() -> List[Answer]:
    """Answers that appear in captions, in tree order: the features the app offers as sliders."""
    return [a for stem in TREE_ORDER for a in QUESTION_BY_STEM[stem].answers if a.captioned]


def caption_phrases() -> List[str]:
    """All caption phrases (the caption vocabulary), in tree order."""
    return [a.phrase for a in captioned_answers()]


def alternative_answers(phrase: str) -> List[str]:
    """Captioned phrases of the *other* answers of the question ``phrase`` answers, in tree order.

    GZ2 answers of one question exclude each other (a volunteer picks one), so "in-between round
    galaxy" has the alternatives "completely round galaxy" and "cigar shaped galaxy". Guidance per
    feature can push these away while it pulls the feature in (the *contrast* of
    :func:`galaxysd_core.pipelines.feature_guidance.contrast_scales`). Unknown phrases have none.
    """
    a = ANSWER_BY_PHRASE.get(phrase)
    if a is None:
        return []
    return [b.phrase for b in QUESTION_BY_STEM[a.question].answers if b.captioned and b.column != a.column]


def unique_ancestor_answers(answer: Answer) -> List[Answer]:
    """Answers that must have been given for ``answer``'s question to be asked at all.

    Follows parent links upward while the path is unique, e.g. ``t02_edgeon_a04_yes`` implies
    ``t01 a02 features_or_disk``. Returned root first.
    """
    chain: List[Answer] = []
    stem = answer.question
    seen = set()
    while stem not in seen:
        seen.add(stem)
        parents = parents_of(stem)
        parent_questions = {p.question for p in parents}
        if len(parent_questions) != 1:
            break  # reached from several questions (or the root): the path is not unique
        if len(parents) == 1:
            chain.append(parents[0])
        stem = parents[0].question
    return list(reversed(chain))


def _tree_paths() -> List[frozenset]:
    """Every root-to-end path through the tree, as a set of answer columns (1,265 paths)."""
    paths: List[frozenset] = []

    def walk(stem: Optional[str], taken: Tuple[str, ...]) -> None:
        if stem is None:
            paths.append(frozenset(taken))
            return
        for a in QUESTION_BY_STEM[stem].answers:
            walk(a.leads_to, taken + (a.column,))

    walk(ROOT_QUESTION, ())
    return paths


TREE_PATHS: Tuple[frozenset, ...] = tuple(_tree_paths())


def tree_exclusions(phrases: Sequence[str]) -> List[str]:
    """Other morphologies at the branch points of the GZ2 tree that ``phrases`` pass through.

    For every answer of the description and every answer it implies (its unique ancestors, e.g.
    "spiral galaxy" implies "features or disk-shaped" and "not edge-on"), the alternatives of the
    same question that lead *elsewhere* in the tree (Willett et al. 2013 Fig. 1) are returned:
    "smooth" and "star or artifact" for a disc, "edge-on galaxy" for a spiral. Alternatives that
    lead to the same next question ("in-between round galaxy" for a cigar-shaped one, "3 spiral
    arms" for a 2-armed spiral, other odd features for a merger) are degrees or variants of the
    prompted property, not other morphologies, and are not returned.

    Used as the automatic negative prompt of :class:`~galaxysd_core.pipelines.pipeline_galaxysd.GalaxySDPipeline`.
    Measured on GalaxySD-mini (64 images, guidance 6.5): putting the roundness alternatives in the
    negative pushed "cigar shaped" galaxies into edge-on-looking needles (2 % judged smooth), and
    adding the answers of questions a description never reaches (e.g. the three roundness phrases
    for a spiral) diluted the useful exclusion (edge-on look 48 % instead of 6 %); this rule gives
    98 % spiral / 6 % edge-on for the spiral prompt.

    Parameters
    ----------
    phrases : sequence of str
        Caption phrases of the description (unknown phrases are ignored).

    Returns
    -------
    list of str
        Captioned phrases in tree (reading) order; empty when ``phrases`` contradict each other
        under the tree (no path through the tree holds them all) or name no answer.
    """
    chosen = [ANSWER_BY_PHRASE[p] for p in phrases if p in ANSWER_BY_PHRASE]
    if not chosen:
        return []
    if not any({a.column for a in chosen} <= path for path in TREE_PATHS):
        return []
    implied: Dict[str, Answer] = {}
    for a in chosen:
        for b in (*unique_ancestor_answers(a), a):
            implied[b.column] = b
    excluded = set()
    for a in implied.values():
        for sib in QUESTION_BY_STEM[a.question].answers:
            if sib.column not in implied and sib.captioned and sib.leads_to != a.leads_to:
                excluded.add(sib.column)
    return [a.phrase for a in captioned_answers() if a.column in excluded]


def column(answer_column: str, suffix: str = SUFFIX_DEBIASED) -> str:
    """Full table column name, e.g. ``column("t02_edgeon_a04_yes", "_fraction")``."""
    if answer_column not in ANSWER_BY_COLUMN:
        raise KeyError(f"unknown GZ2 answer column {answer_column!r}")
    return answer_column + suffix
