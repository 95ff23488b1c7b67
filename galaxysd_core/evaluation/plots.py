"""Static figures of a model card (PNG, matplotlib with the Agg backend): metrics over training,
the guidance / negative-prompt front, pixel histograms of real and generated galaxies.

The app draws its interactive versions with plotly (:mod:`galaxysd_core.studio.figures`); these
are the frozen ones next to the card, readable on any Markdown viewer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def training_curves(metrics: pd.DataFrame, path: Union[str, Path]) -> Path:
    """Domain FD, KID, precision/recall and consistency against the training step
    (``training_metrics.csv`` rows: one per snapshot, means over the prompts)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    m = metrics.sort_values("step")
    axes[0].plot(m["step"], m["domain_fd"], "o-", color="tab:red")
    axes[0].set_title("Frechet distance to real (lower is better)")
    if "domain_kid" in m:
        ax2 = axes[0].twinx()
        ax2.plot(m["step"], m["domain_kid"], "s--", color="tab:purple")
        ax2.set_ylabel("KID", color="tab:purple")
    axes[0].set_ylabel("FD (classifier embedding)", color="tab:red")
    for col, colour in (("precision", "tab:blue"), ("recall", "tab:orange")):
        axes[1].plot(m["step"], m[col], "o-", label=col, color=colour)
    axes[1].axhline(0.6, color="grey", lw=0.8, ls=":")
    axes[1].set_ylim(0, 1)
    axes[1].legend()
    axes[1].set_title("realism (precision), diversity (recall)")
    axes[2].plot(m["step"], m["consistency"], "o-", color="tab:green")
    axes[2].set_ylim(0, 1)
    axes[2].set_title("prompt consistency")
    for ax in axes:
        ax.set_xlabel("training step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def front_plot(summary: pd.DataFrame, path: Union[str, Path]) -> Path:
    """Recall against consistency of every (guidance, negative-prompt policy) setting, precision as
    colour, the Pareto front circled and the chosen default starred (GalaxySD Fig. 5)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for tree, marker in ((True, "o"), (False, "^")):
        s = summary[summary["tree_negatives"] == tree]
        if s.empty:
            continue
        sc = ax.scatter(s["consistency"], s["recall"], c=s["precision"], vmin=0, vmax=1, cmap="viridis",
                        marker=marker, s=70, label="tree negative prompt" if tree else "plain guidance")
        for _, r in s.iterrows():
            ax.annotate(f"{r['guidance']:g}", (r["consistency"], r["recall"]), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)
    if "on_front" in summary:
        f = summary[summary["on_front"]]
        ax.scatter(f["consistency"], f["recall"], s=190, facecolors="none", edgecolors="black", lw=0.8)
    if "chosen" in summary and summary["chosen"].any():
        c = summary[summary["chosen"]].iloc[0]
        ax.scatter([c["consistency"]], [c["recall"]], marker="*", s=320, color="red", label="chosen default")
    ax.axhline(0.6, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("mean prompt consistency")
    ax.set_ylabel("mean recall (diversity)")
    ax.set_title("guidance x negative-prompt policy (numbers: guidance)")
    fig.colorbar(sc, ax=ax, label="mean precision (realism)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def histogram_plot(backgrounds: Dict, path: Union[str, Path]) -> Path:
    """Pixel-value histograms (log density) of real and generated sets
    (:func:`galaxysd_core.evaluation.background.compare_backgrounds` output)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    bins = backgrounds["bins"]
    centres = [(a + b) / 2 for a, b in zip(bins[:-1], bins[1:])]
    styles = {"real": dict(color="black", lw=2)}
    for name, h in backgrounds["histograms"].items():
        label = name if name == "real" else f"{name} (TV {backgrounds[name]['histogram_tv']:.3f})"
        ax.semilogy(centres, [max(v, 1e-7) for v in h], label=label, **styles.get(name, {}))
    ax.set_xlabel("pixel value (8-bit, all channels)")
    ax.set_ylabel("density")
    ax.set_title("pixel histograms: real held-out cutouts vs generated")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def feature_curves_plot(curves: pd.DataFrame, chosen: Dict[str, float], path: Union[str, Path],
                        goal: float = 0.3) -> Path:
    """Effect of guidance per feature against its strength (one panel per feature), with the spread
    (generated vs real) on a second axis and the chosen default strength marked
    (:mod:`galaxysd_core.evaluation.feature_curves`)."""
    import math

    plt = _plt()
    phrases = list(dict.fromkeys(curves["phrase"]))
    cols = 5
    rows = math.ceil(len(phrases) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.5 * rows), squeeze=False)
    for ax, phrase in zip(axes.flat, phrases):
        allc = curves[curves["phrase"] == phrase]
        if "contrast" not in allc.columns:
            allc = allc.assign(contrast=0.0)
        c = allc[allc["contrast"] == 0].sort_values("strength")
        ax.plot(c["strength"], c["effect"], "o-", color="tab:blue", ms=3)
        for i, (w, cc) in enumerate(allc[allc["contrast"] > 0].groupby("contrast")):
            # contrast curves start from the plain prompt (strength 1): no contrast at or below it
            cc = pd.concat([c[c["strength"] == 1.0], cc.sort_values("strength")])
            ax.plot(cc["strength"], cc["effect"], "^--" if i == 0 else "v:", color="tab:purple", ms=3, lw=0.9,
                    label=f"contrast w {w:.2g}")
        if (allc["contrast"] > 0).any():
            ax.legend(fontsize=6, loc="upper left", frameon=False)
        ax.axhline(goal, color="tab:blue", lw=0.7, ls=":")
        ax.axvline(1.0, color="grey", lw=0.6, ls="--")
        if phrase in chosen:
            ax.axvline(chosen[phrase], color="tab:green", lw=1.2)
        ax.set_ylim(min(-0.1, float(allc["effect"].min()) - 0.05), max(0.8, float(allc["effect"].max()) + 0.05))
        ax.set_title(phrase if len(phrase) < 30 else phrase[:28] + "…", fontsize=8)
        ax.tick_params(labelsize=7)
        if c["spread"].notna().any():
            ax2 = ax.twinx()
            ax2.plot(c["strength"], c["spread"], "s--", color="tab:orange", ms=2, lw=0.8)
            ax2.set_ylim(0, max(1.6, float(c["spread"].max()) + 0.1))
            ax2.tick_params(labelsize=6, colors="tab:orange")
    for ax in list(axes.flat)[len(phrases):]:
        ax.axis("off")
    fig.suptitle("Guidance per feature: classifier v2 effect (blue; purple: with contrast; dotted: goal 0.3) and "
                 "spread vs real (orange) against strength (x guidance; dashed: plain prompt; green: default)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def image_rows_figure(rows, path: Union[str, Path], per_row: int = 10) -> Path:
    """Labelled rows of galaxy images: ``rows`` = ``[(label, uint8 array (N, H, W, 3)), ...]``, the first
    ``per_row`` images of each (an empty row says "none")."""
    plt = _plt()
    fig, axes = plt.subplots(len(rows), per_row, figsize=(1.3 * per_row, 1.45 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(images):
                ax.imshow(np.asarray(images[c]))
        axes[r, 0].set_title(label + ("" if len(images) else ": none"), fontsize=8, loc="left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sharpness_plot(report: Dict, path: Union[str, Path], title: str = "") -> Path:
    """Radially averaged power spectra of generated and real galaxies (log power), the three bands
    shaded and the generated/real ratio per band in the legend (:mod:`galaxysd_core.evaluation.sharpness`)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    f = report["freq"]
    axes[0].semilogy(f, report["power_real"], "o-", ms=2, label=f"real ({report['n_real']})", color="tab:blue")
    axes[0].semilogy(f, report["power_generated"], "s-", ms=2, label=f"generated ({report['n_generated']})",
                     color="tab:orange")
    if "power_generated_clean" in report:  # the same galaxies without the added sky noise
        axes[0].semilogy(f, report["power_generated_clean"], "--", lw=1, color="tab:orange",
                         label="generated, no added sky noise")
    if "noise_floor_real" in report:
        axes[0].semilogy(f, np.maximum(report["noise_floor_real"], 1e-9), ":", lw=1.2, color="tab:blue",
                         label="real: sky-noise floor (corners)")
    ratio = report["power_generated"] / report["power_real"]
    axes[1].plot(f, ratio, "o-", ms=2, color="tab:orange")
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[1].axhline(0.7, color="tab:green", lw=0.8, ls=":")
    r = report["ratios"]
    for ax in axes:
        for lo, hi, c in ((1 / 6, 2 / 6, "tab:green"),):
            ax.axvspan(lo, hi, color=c, alpha=0.08)
        ax.set_xlabel("spatial frequency (cycles / pixel)")
    axes[0].set_ylabel("power (luminance, Hann window)")
    axes[0].legend(fontsize=8)
    axes[1].set_ylabel("generated / real")
    axes[1].set_ylim(0, max(1.6, float(np.nanmax(ratio)) * 1.05) if len(ratio) else 1.6)
    title1 = (f"band ratios: low {r['low']:.2f}, middle {r['middle']:.2f} (shaded; goal 0.7), "
              f"high {r['high']:.2f}")
    if "structure" in report:
        title1 += f"\nstructure only (no noise / real minus floor): middle {report['structure']['middle']:.2f}"
    axes[1].set_title(title1, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
