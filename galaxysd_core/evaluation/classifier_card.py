"""The model card (``README.md``) of a released morphology classifier.

Written by :func:`galaxysd_core.evaluation.classifier_release.fit_from_caches` from its report:
heads with their training counts, held-out precision / recall / ROC AUC per head against the goals
(saying which fall short), the loss and resolution comparison, inference speed, training settings
and limitations.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional

from galaxysd_core.training.classifier_data import SPLIT_NAME

#: Why a head can fall short, per answer column (stated next to the failing numbers).
SHORTFALL_REASONS = {
    "t08_odd_feature_a38_dust_lane": "31 majority dust lanes in gz2_cutouts (about 4 in the test split): the AUC "
                                     "rests on a handful of galaxies and the feature is a thin line at 64 px",
    "t08_odd_feature_a24_merger": "mergers are judged on the companion, often outside or at the edge of the "
                                  "crop; GZ1 mergers and GZ2 mergers are chosen differently",
    "t08_odd_feature_a19_ring": "rings are faint, low-contrast structures that need resolution the 64-px input "
                                "lacks",
    "t03_bar_a06_bar": "weak bars are ambiguous to volunteers too (bar fractions near 0.5 are common)",
}


#: Loss of each output kind, as the card names it.
LOSS_NAMES = {"dirichlet": "Dirichlet-multinomial negative log-likelihood of the vote counts, summed over questions",
              "softmax": "masked soft cross-entropy on the debiased vote fractions, summed over questions",
              "masked_bce": "masked BCE on 1/0 labels (NaN ignored), class-balanced"}


#: Held-out ROC AUC goals per head (the issue of classifier v2), reported by the card.
GOALS: Dict[str, float] = {
    "t01_smooth_or_features_a01_smooth": 0.95,
    "t02_edgeon_a04_yes": 0.95,
    "t04_spiral_a08_spiral": 0.90,
    "t03_bar_a06_bar": 0.85,
    "t08_odd_feature_a19_ring": 0.85,
    "t08_odd_feature_a24_merger": 0.85,
    "t08_odd_feature_a38_dust_lane": 0.85,
}


def summarize(table) -> Any:
    """Mean AUCs and speed per arm (the card's comparison table)."""
    cols = [c for c in ("auc", "auc_reached", "auc_votes", "auc_conditional") if c in table.columns]
    agg = table.groupby("arm", sort=False).agg(
        **{f"mean_{c}": (c, "mean") for c in cols}, steps=("steps", "first"), epochs_run=("epochs_run", "first"),
        images_per_s=("images_per_s", "first"))
    return agg.reset_index()


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.3f}"


def _metrics_table(rows, lines) -> None:
    lines += ["| feature | test pos | test neg | precision | recall | ROC AUC | goal | | AUC if reached (n) |",
              "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        goal = r.get("goal")
        has_goal = goal is not None and not (isinstance(goal, float) and math.isnan(goal))
        verdict = "" if not has_goal else ("meets" if r.get("meets_goal") else "**falls short**")
        lines.append(f"| {r['phrase']} | {r['n_pos']} | {r['n_neg']} | {_fmt(r['precision'])} | "
                     f"{_fmt(r['recall'])} | {_fmt(r['auc'])} | {_fmt(goal) if has_goal else ''} | {verdict} | "
                     f"{_fmt(r.get('auc_reached'))} ({r.get('n_reached', 0)}) |")


def _experiments(table, lines, shipped: str) -> None:

    summary = summarize(table)
    lines += ["", "## Choice of loss and resolution (measured)", "",
              "Each arm trained on the same caches, split and heads for the same number of steps "
              "(`train/compare_classifier.py`, table in `experiments.csv`), then measured on the test split: "
              "mean over heads of the ROC AUC of the head probability (all test images; gz2_cutouts test "
              "images only), of the conditional AUC among galaxies whose question was reached, and of the AUC "
              "of the expected vote fraction on gz2_cutouts galaxies whose question was answered (how well "
              "the votes themselves are learned). images/s: measured during the run on the shared machine "
              "(load varies; see Speed for the benchmark).", "",
              "| arm | mean AUC | mean AUC (vote source) | mean AUC if reached | mean AUC of fractions | steps | "
              "epochs | images/s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary.to_dict("records"):
        lines.append(f"| {r['arm']} | {_fmt(r.get('mean_auc'))} | {_fmt(r.get('mean_auc_votes'))} | "
                     f"{_fmt(r.get('mean_auc_reached'))} | {_fmt(r.get('mean_auc_conditional'))} | {r['steps']} | "
                     f"{r['epochs_run']} | {r['images_per_s']:.0f} |")
    best = summary.sort_values("mean_auc", ascending=False).iloc[0]["arm"]
    lines += ["", f"Best mean AUC: **{best}**. Shipped: **{shipped}**."]
    heads = [c for c in table["column"].unique()]
    arms = list(dict.fromkeys(table["arm"]))
    lines += ["", "Per head (ROC AUC on all test images):", "",
              "| feature | " + " | ".join(arms) + " |", "|---|" + "---:|" * len(arms)]
    for col in heads:
        sub = table[table["column"] == col]
        phrase = sub["phrase"].iloc[0]
        vals = [_fmt(float(sub.loc[sub["arm"] == a, "auc"].iloc[0])) if (sub["arm"] == a).any() else "" for a in arms]
        lines.append(f"| {phrase} | " + " | ".join(vals) + " |")


def classifier_card(model, report: Mapping[str, Any], experiments=None) -> str:
    """Markdown model card of a classifier from the report of ``fit_from_caches``.

    Parameters
    ----------
    model : MorphologyClassifier
    report : mapping
        ``config.json["training"]`` of the classifier.
    experiments : pandas.DataFrame, optional
        Table of :func:`~galaxysd_core.evaluation.classifier_experiments.compare_arms`.
    """
    m = report["metrics"]
    s = report["settings"]
    h = report["history"]
    output = s.get("output", model.config.output)
    size = model.config.image_size
    lines = [
        "# GalaxySD morphology classifier (v2)",
        "",
        f"Compact CNN (`galaxysd_core/models/classifier.py`, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
        f"parameters, {size}x{size} input, {model.embedding_dim}-d embedding) that says which Galaxy Zoo 2 "
        "features an image shows, with one head per GZ2 answer that has at least "
        f"{s['min_positives']} majority-gated positives in the training data. Used for prompt consistency "
        "(every head checks the prompts naming its feature), the real-image benchmark, `galaxysd classify` "
        "and as the feature space of the domain distribution metrics (`galaxysd_core/evaluation/metrics`). "
        "It is NOT an Inception network: `domain_fd` / `domain_kid` are not comparable with published FID/KID.",
        "",
        "## What it predicts",
        "",
    ]
    if output in ("dirichlet", "softmax"):
        lines += [
            f"Trained on the volunteers' votes, not on hard labels: the last layer gives, for every answer of the "
            f"{len(model.layout.questions)} modelled questions ({', '.join(model.layout.questions)}), "
            + ("a Dirichlet concentration (1-100); the vote counts of each question are a Dirichlet-multinomial "
               "draw (Walmsley et al. 2022, zoobot), so a question few volunteers answered weighs little and one "
               "nobody reached (or that the table lacks, t10/t11 here) weighs nothing."
               if output == "dirichlet" else
               "one logit; a softmax over each question's answers gives the expected vote fractions, trained "
               "with soft cross-entropy on the debiased vote fractions (questions nobody answered, or that the "
               "table lacks, t10/t11 here, are masked). For head probabilities the fractions are read as a "
               "Dirichlet of total concentration 20 (about 20 votes)."),
            "Single-label sources (Galaxy Zoo 1 classes, the GZ2 example images) enter as one-hot "
            + (f"votes ({s.get('hard_label_votes', 5):g} votes)" if output == "dirichlet" else "fractions")
            + " for the questions their label answers; other questions of theirs are masked.",
            "",
            "Each head's probability is that of the **majority-gated label** the captioner writes (the evaluation "
            "truth): P(question reached) x P(answer fraction >= 0.5), with the question reached when its gating "
            "answer passes the Willett et al. (2013) threshold, all read from the predicted vote distributions "
            "(`galaxysd_core/models/vote_heads.py`). So 'bar' is only probable for a probable face-on disc, and "
            "`predict_fractions` gives the expected vote fractions themselves.",
        ]
    else:
        lines += ["One sigmoid per head, trained with class-balanced masked BCE on 1/0 labels."]
    lines += ["", "## Heads", "", "| head | GZ2 answer column | train pos | train neg |", "|---|---|---:|---:|"]
    for row in report["train_label_counts"]:
        lines.append(f"| {row['phrase']} | `{row['column']}` | {row['n_pos']} | {row['n_neg']} |")
    lines += [
        "",
        "## Held-out real images",
        "",
        f"Fixed split: {report['n_test']} test / {report['n_train']} train images, "
        f"{100 * s['test_fraction']:.0f} % of every caption group chosen by SHA-256 of the id (`{SPLIT_NAME}`, "
        "reuse it for any evaluation on real images). Truth: the majority-gated captioner labels, i.e. 1 where "
        "the caption names the feature and 0 where it does not; for the GZ2 vote source a branch that was not "
        "reached counts as 0 (an elliptical has no majority bar), for single-label sources only what the label "
        "answers is known (Galaxy Zoo 1 classes completed with the negatives they imply). Threshold 0.5. "
        "`AUC if reached`: the conditional probability among test galaxies whose question was reached "
        "(e.g. bar vs no bar among face-on discs), the harder within-question test.",
        "",
    ]
    _metrics_table(m, lines)
    from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN

    short = [r for r in m if r.get("meets_goal") is False]
    met = [r for r in m if r.get("meets_goal") is True]
    lines += ["", f"Goals: {len(met)} of {len(GOALS)} met on the full test split"
              + (", and every head with a goal meets it." if not short else ".")]
    for r in short:
        reason = SHORTFALL_REASONS.get(r["column"], "too few or too ambiguous examples")
        lines.append(f"- **{r['phrase']}** falls short: AUC {_fmt(r['auc'])} < {r['goal']:.2f} on {r['n_pos']} test "
                     f"positives; {reason}.")
    for col, goal in GOALS.items():
        if col not in model.feature_columns:
            lines.append(f"- **{ANSWER_BY_COLUMN[col].phrase}** (goal {goal:.2f}) falls short by having no head: "
                         f"fewer than {s['min_positives']} majority-gated positives in the training data, so prompts "
                         "naming it are reported as unchecked by consistency (a measurement from the vote outputs "
                         "is in the next table, on a handful of positives).")
    for r in report.get("metrics_vote_sources") or []:
        if r.get("meets_goal") is False:
            lines.append(f"- on the gz2_cutouts test images alone, **{r['phrase']}** reaches {_fmt(r['auc'])} "
                         f"(< {r['goal']:.2f}): the Galaxy Zoo 1 part of the split is easier (clear single-class "
                         "galaxies), the vote source holds the ambiguous cases.")
    below = report.get("below_rule_metrics") or []
    if below:
        lines += ["", f"Answers below the head rule (fewer than {s['min_positives']} majority positives), so no "
                      "head and not checked by consistency, measured anyway from the vote outputs of their "
                      "modelled question (few positives: anecdotal):", ""]
        _metrics_table(below, lines)
    if report.get("metrics_vote_sources"):
        lines += ["", f"On the {report.get('n_test_with_votes', '?')} test images with GZ2 votes (gz2_cutouts) only:", ""]
        _metrics_table(report["metrics_vote_sources"], lines)
    cons = report.get("consistency_on_real_test")
    if cons is not None:
        lines += ["", f"Consistency of held-out real images with their own captions: **{_fmt(cons)}** "
                      f"(GalaxySD paper, real images: 0.895; their classifier and label set differ)."]
    if experiments is not None and len(experiments):
        _experiments(experiments, lines, f"{output}-{size}" + ("" if model.config.stem_stride == 2 else
                                                               f"-s{model.config.stem_stride}"))
    bench = report.get("bench")
    if bench:
        lines += ["", "## Speed", "",
                  f"`bench/bench_classifier.py`: **{bench['images_per_s']:.0f} images/s** with {bench['threads']} "
                  f"CPU threads, batch {bench['batch_size']}, {bench['n_images']} images of "
                  f"{bench['input_size']} px (goal 500 images/s on 2 cores; {bench.get('note', '')})."]
        if bench.get("variants"):
            lines += ["", "Same heads, other inputs (untrained weights, same cost as trained): "
                      + ", ".join(f"{k} {v:.0f} images/s" for k, v in bench["variants"].items())
                      + ". A 128-px input at the 64-px network's cost needs the stride-4 stem, which measured "
                        "worse (table above); the stride-2 stem at 128 px misses the speed goal."]
    lines += [
        "",
        "## Training",
        "",
        f"- data: {', '.join(report['caches'])} ({report['n_total']} images; sources: "
        f"{', '.join(f'{k} {v}' for k, v in report['sources'].items())})",
        f"- single-class sources completed with implied negatives: {', '.join(s['exclusive_sources']) or 'none'}",
        f"- loss: {LOSS_NAMES.get(h.get('loss_kind', 'masked_bce'), h.get('loss_kind'))}",
        "- augmentation: random flips and 90-degree rotations (8 symmetries of the square)",
        f"- optimiser: AdamW, peak lr {s['learning_rate']} (one-cycle, time-budget aware), weight decay "
        f"{s['weight_decay']}, batch {s['batch_size']}, epochs {h['epochs_run']}/{s['epochs']}"
        f"{' (stopped by the time budget)' if h['stopped_early'] else ''}, seed {s['seed']}",
        f"- wall time: {h['wall_time_s']:.0f} s on CPU ({report['torch_threads']} torch threads, shared machine)",
        f"- final training loss: {h['loss'][-1]:.4f}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}",
        "",
        "## Limitations",
        "",
        "- gz2_cutouts is not a random GZ2 sample (balanced by smooth / edge-on / spiral / bar); its tasks t10 and "
        "t11 are absent, so there are no arm-winding or arm-number heads.",
        "- Rare answers (dust lane, merger, disturbed, irregular) have few test positives: their figures are "
        "uncertain by several hundredths.",
        "- Trained on real images only; on generated images with artefacts the probabilities are an "
        "estimate, not ground truth.",
        "",
        "Data: SDSS (acknowledge SDSS) and Galaxy Zoo 1/2 (Lintott et al. 2008, 2011; Willett et al. 2013; "
        "Hart et al. 2016).",
        "",
        "## Reproduce",
        "",
        "```",
        f"python train/train_classifier.py --cache {' '.join(report['caches'])} --output {output} "
        f"--image-size {size} --stem-stride {s.get('stem_stride', 2)} --epochs {s['epochs']} "
        f"--batch-size {s['batch_size']} --lr {s['learning_rate']} --max-minutes {s['max_minutes']} --seed {s['seed']}",
        "```",
        "",
        "With a wall-clock budget the number of steps depends on the machine's load.",
        "",
    ]
    return "\n".join(lines)
