"""Compare page: A/B pairs on the same seeds with their difference images, and the extrapolation sweep."""
from __future__ import annotations

from typing import List, Optional

import streamlit as st

from galaxysd_core import config
from galaxysd_core.errors import GalaxySDError
from galaxysd_core.studio import ab_compare, controls, display, generation, limits, model_facts, sweep
from galaxysd_core.studio.feature_probs import feature_probability, has_head
from pages import _ui

_ui.ensure_app_navigation()

ss = st.session_state
DEFAULT_PROMPT = "sdss, smooth, completely round galaxy"
ALL_PHRASES = [p for c in controls.question_controls() for p in c.phrases]
K_PROMPT = "keep.cmp.prompt"
# shared with the Generate page (keys under "keep." survive page switches)
GEN = {"steps": ("keep.gen.steps", 20), "guidance": ("keep.gen.guidance", 6.5), "scheduler": ("keep.gen.scheduler", "ddim"),
       "negative": ("keep.gen.negative", ""), "tree": ("keep.gen.tree_negatives", True), "seed": ("keep.gen.seed", 0)}
K_SW_PHRASE, K_SW_RANGE, K_SW_N, K_SW_SEEDS = ("keep.sweep.phrase", "keep.sweep.range", "keep.sweep.n_weights",
                                               "keep.sweep.n_seeds")
K_SW_MECH, K_SW_SRANGE = "keep.sweep.mechanism", "keep.sweep.strength_range"


def gen(name: str):
    key, default = GEN[name]
    return ss.get(key, default)


def use_generate_prompt() -> None:
    ss[K_PROMPT] = ss.get("keep.gen.prompt", DEFAULT_PROMPT)


for k, v in ((K_PROMPT, ss.get("keep.gen.prompt", DEFAULT_PROMPT)), ("keep.ab.kind", "feature"),
             ("keep.ab.phrase", "merger"), ("keep.ab.weights", (1.0, 1.8)), ("keep.ab.guidances", (3.0, 6.5)),
             ("keep.ab.n", 4), ("keep.ab.seed", int(gen("seed"))), (K_SW_PHRASE, "merger"), (K_SW_RANGE, (0.8, 2.0)),
             (K_SW_N, 4), (K_SW_SEEDS, 2), (K_SW_MECH, "guidance"), (K_SW_SRANGE, (0.0, 6.0))):
    ss.setdefault(k, v)

_ui.crisp()
st.title("Compare")
pipe = _ui.get_pipeline()
_rec = generation.recommended_ui_settings(pipe, limits.MAX_UI_STEPS)  # the model card's defaults until Generate sets them
for _name, _value in (("steps", _rec["steps"]), ("guidance", _rec["guidance"]), ("tree", _rec["tree_negatives"])):
    ss.setdefault(GEN[_name][0], _value)
counts = _ui.model_counts()
classifier = _ui.get_classifier() if pipe is not None else None


def label(p: str) -> str:
    return model_facts.option_label(p, counts)


def prob_text(p: Optional[float], phrase: Optional[str]) -> str:
    return f" · P({phrase}) = {p:.2f}" if p is not None and phrase else ""


st.caption("Same seeds, one difference: what a control really does. Sampling steps, sampler and negative prompt are "
           f"the Generate page's ({gen('steps')} steps, {gen('scheduler')}). The classifier's probability of a "
           "feature is shown where it has a head for it (`assets/classifier`).")
p1, p2 = st.columns([4, 1], vertical_alignment="bottom")
p1.text_input("Base prompt", key=K_PROMPT, max_chars=1000)
p2.button("From Generate", key="btn.cmp.use_prompt", on_click=use_generate_prompt, width="stretch",
          help="Use the Generate page's current prompt")
tab_ab, tab_sweep = st.tabs(["A/B on the same seeds", "Extrapolation sweep"])

# ----------------------------------------------------------------------------- A/B
with tab_ab:
    c1, c2 = st.columns([2, 3])
    kind = c1.radio("One difference", list(ab_compare.AB_KINDS), key="keep.ab.kind",
                    format_func=ab_compare.AB_KINDS.get)
    models: List = []
    with c2:
        if kind in ("feature", "weight"):
            st.selectbox("Feature", ALL_PHRASES, key="keep.ab.phrase", format_func=label)
        if kind == "weight":
            st.slider("Weights A and B", 0.0, 3.0, step=0.1, key="keep.ab.weights")
        if kind == "guidance":
            st.slider("Guidance scales A and B", 0.0, 15.0, step=0.5, key="keep.ab.guidances")
        if kind == "model":
            models = ab_compare.model_choices(config.model_dir())
            if len(models) < 2:
                st.info("Only one model folder is available. Place another trained model folder next to the "
                        f"configured one (`{config.model_dir().parent}`) or in `assets/` to compare models.",
                        icon=":material/info:")
            names = [str(m) for m in models]
            for k, default in (("keep.ab.model_a", 0), ("keep.ab.model_b", 1)):
                if names and ss.get(k) not in names:  # first visit, or a folder that went away
                    ss[k] = names[min(default, len(names) - 1)]
            if len(names) >= 2:
                m1, m2 = st.columns(2)
                m1.selectbox("Model A", names, key="keep.ab.model_a", format_func=lambda n: n.rsplit("/", 1)[-1])
                m2.selectbox("Model B", names, key="keep.ab.model_b", format_func=lambda n: n.rsplit("/", 1)[-1])
        n1, n2 = st.columns(2)
        n1.slider("Pairs (seeds)", 1, 8, key="keep.ab.n")
        n2.number_input("First seed", 0, 2**31 - 1, step=1, key="keep.ab.seed")
    run = st.button("Generate A and B", key="btn.ab.run", type="primary", disabled=pipe is None,
                    icon=":material/compare:")
    slot = st.empty()
    if run and pipe is not None:
        try:
            seeds = sweep.sweep_seeds(int(ss["keep.ab.seed"]), int(ss["keep.ab.n"]))
            names = (ss.get("keep.ab.model_a", ""), ss.get("keep.ab.model_b", ""))
            plan = ab_compare.plan_ab(
                kind, ss[K_PROMPT], seeds, phrase=ss["keep.ab.phrase"], weights=ss["keep.ab.weights"],
                guidances=ss["keep.ab.guidances"], models=names,
                model_labels=tuple(n.rsplit("/", 1)[-1] for n in names), guidance=float(gen("guidance")),
                steps=int(gen("steps")), scheduler=gen("scheduler"), negative_prompt=gen("negative"),
                tree_negatives=bool(gen("tree")))
            pipe_a = _ui.get_pipeline_at(plan.a.model) if plan.a.model else pipe
            pipe_b = _ui.get_pipeline_at(plan.b.model) if plan.b.model else pipe
            if pipe_a is not None and pipe_b is not None:
                bar = slot.progress(0.0, text="Side A ...")
                phrase = plan.phrase
                ss["cmp.ab"] = ab_compare.run_ab(
                    pipe_a, pipe_b, plan,
                    callback=lambda s, t: bar.progress(s / t, text=f"{'A' if s <= t // 2 else 'B'}: denoising step "
                                                                   f"{s if s <= t // 2 else s - t // 2}/{t // 2}"),
                    probability=(lambda ims: feature_probability(classifier, ims, phrase)) if phrase else None)
        except GalaxySDError as exc:
            _ui.show_error(exc)
        slot.empty()
    result: Optional[ab_compare.ABResult] = ss.get("cmp.ab")
    if result is not None:
        plan = result.plan
        for note in plan.notes + result.notes:
            st.caption(f":orange[{note}]")
        st.markdown(f"**A:** `{plan.a.prompt}` (guidance {plan.a.guidance:g}"
                    + (f", model {plan.a.label}" if plan.kind == "model" else "") + f")  \n**B:** `{plan.b.prompt}` "
                    f"(guidance {plan.b.guidance:g}" + (f", model {plan.b.label}" if plan.kind == "model" else "") + ")")
        if plan.phrase and not has_head(classifier, plan.phrase):
            st.caption(f"The classifier has no head for '{plan.phrase}': no probabilities.")
        st.caption(f"Mean absolute difference {result.mean_diff:.1f} / 255 per pixel. Difference images: black = equal, "
                   "red → yellow → white = larger differences, on one scale for all pairs.")
        with st.container(key="crisp-ab"):
            head = st.columns([1, 3, 3, 3])
            for col, text in zip(head, ("", f"**A: {plan.a.label}**", f"**B: {plan.b.label}**", "**|A − B|**")):
                col.markdown(text)
            for pair in result.pairs:
                cols = st.columns([1, 3, 3, 3])
                cols[0].markdown(f"seed {pair.seed}")
                with cols[1]:
                    _ui.show_generated(pair.a, f"A{prob_text(pair.prob_a, plan.phrase)}", key=f"btn.ab.a.{pair.a.uid}")
                with cols[2]:
                    _ui.show_generated(pair.b, f"B{prob_text(pair.prob_b, plan.phrase)}", key=f"btn.ab.b.{pair.b.uid}")
                cols[3].image(_ui.enlarge(pair.diff, display.RESULT_PX), caption=f"mean {pair.mean_diff:.1f}")
        st.download_button("Download A and B (zip)", key="dl.ab.zip", on_click="ignore", mime="application/zip",
                           data=lambda r=result: generation.gallery_zip([x for p in r.pairs for x in (p.a, p.b)]),
                           file_name="galaxysd_ab.zip")

# ----------------------------------------------------------------------------- sweep
with tab_sweep:
    st.caption("The base prompt with one feature at several strengths (or weights), the same seeds in every column, "
               "to see how one galaxy changes and where the model stops following the feature (GalaxySD Sec. 3). "
               "Under each column: the classifier's mean probability of the feature.")
    st.radio("Sweep", list(controls.MECHANISMS), key=K_SW_MECH, format_func=controls.MECHANISMS.get, horizontal=True,
             help="Feature guidance: strength x guidance scale is the feature's own guidance (0 = without the "
                  "feature, 1 = the plain prompt). Embedding weight: the text encoder's output at the phrase times w.")
    guided = ss[K_SW_MECH] == "guidance"
    s1, s2, s3, s4 = st.columns([3, 3, 2, 2])
    s1.selectbox("Feature", ALL_PHRASES, key=K_SW_PHRASE, format_func=label)
    if guided:
        s2.slider("Strength range (1 = plain prompt)", controls.STRENGTH_MIN, controls.STRENGTH_MAX,
                  step=controls.STRENGTH_STEP, key=K_SW_SRANGE)
    else:
        s2.slider("Weight range", 0.0, 3.0, step=0.1, key=K_SW_RANGE)
    s3.slider("Columns", 2, 6, key=K_SW_N)
    s4.slider("Seeds", 1, 4, key=K_SW_SEEDS)
    lo, hi = ss[K_SW_SRANGE] if guided else ss[K_SW_RANGE]
    weights = sweep.sweep_values(lo, hi, int(ss[K_SW_N]))
    seeds = sweep.sweep_seeds(int(gen("seed")), int(ss[K_SW_SEEDS]))
    st.caption(f"{'strengths' if guided else 'weights'} {', '.join(f'{w:g}' for w in weights)} · seeds {', '.join(map(str, seeds))} · "
               f"{len(weights) * len(seeds)} images x {gen('steps')} steps")
    if st.button("Run sweep", key="btn.gen.sweep", disabled=pipe is None, icon=":material/grid_view:"):
        slot = st.empty()
        bar = slot.progress(0.0, text="Sweep ...")
        try:
            res = sweep.run_sweep(
                pipe, ss[K_PROMPT], ss[K_SW_PHRASE], weights, seeds, negative_prompt=gen("negative"),
                tree_negatives=bool(gen("tree")), steps=int(gen("steps")), guidance=float(gen("guidance")),
                scheduler=gen("scheduler"), callback=lambda s, t: bar.progress(s / t, text=f"Denoising step {s}/{t}"),
                mechanism=ss[K_SW_MECH])
            phrase = res.phrase
            ss["gen.sweep"] = sweep.add_probabilities(res, lambda ims: feature_probability(classifier, ims, phrase))
        except GalaxySDError as exc:
            _ui.show_error(exc)
        slot.empty()
    result: Optional[sweep.SweepResult] = ss.get("gen.sweep")
    if result is not None:
        if model_facts.is_rare(result.phrase, counts):
            st.warning(f"'{result.phrase}' was seen in {counts.get(result.phrase, 0)} training captions: every column "
                       f"is an extrapolation.", icon=":material/explore:")
        col_probs = result.column_probabilities()
        with st.container(key="crisp-sweep"):
            header = st.columns(len(result.weights) + 1)
            what = "strength" if result.mechanism == "guidance" else "weight"
            header[0].markdown(f"**seed \\ {what}**")
            for col, w in zip(header[1:], result.weights):
                col.markdown(f"**{result.phrase} {what} {w:g}**")
            for i, (seed, row) in enumerate(zip(result.seeds, result.grid)):
                cols = st.columns(len(result.weights) + 1)
                cols[0].markdown(f"seed {seed}")
                for j, (col, item) in enumerate(zip(cols[1:], row)):
                    col.image(_ui.enlarge(item.image, 128),
                              caption=f"P = {result.probs[i][j]:.2f}" if result.probs is not None else None)
            footer = st.columns(len(result.weights) + 1)
            footer[0].markdown(f"**P({result.phrase})**, mean")
            for j, col in enumerate(footer[1:]):
                col.markdown(f"**{col_probs[j]:.2f}**" if col_probs is not None else "–")
        if col_probs is None:
            st.caption(f"The classifier has no head for '{result.phrase}': no probabilities under the columns.")
        st.download_button("Download sweep (zip)", key="dl.gen.sweep",
                           data=lambda r=result: generation.gallery_zip([it for row in r.grid for it in row]),
                           file_name=f"galaxysd_sweep_{result.phrase.replace(' ', '_')}.zip", mime="application/zip",
                           on_click="ignore")
_ui.show_enlarged_dialog()
