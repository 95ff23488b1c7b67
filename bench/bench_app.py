#!/usr/bin/env python
"""Benchmark the Generate page: cold start to the first generated image, then warm generations.

Drives ``app.py`` with Streamlit's ``AppTest`` (the page code, the cached pipeline, the generation
gate and the gallery, without a browser) and presses *Generate* like a user.

* **cold**: from the start of this process (before importing streamlit, torch or the model) to the
  first image in the gallery: imports, first page run (loads the pipeline into
  ``st.cache_resource``) and one generation;
* **warm**: further presses of *Generate* in the same session (pipeline cached), median and range;
* **pipeline only**: the same request called directly on the pipeline, to show the page overhead.

Examples
--------
::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_app.py                 # configured model or an untrained mini
    .venv/bin/python bench/bench_app.py --model assets/galaxysd-mini --threads 2 --repeats 5
    .venv/bin/python bench/bench_app.py --random-mini --threads 1   # shipped architecture, random weights
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_app.py --quick      # 2 warm presses, the same request

Goals on an idle machine: cold start to the first image <= 10 s, a warm generation through the page
<= 2 s (4 images x 20 steps of the shipped model). The load average is printed with the numbers: on
a busy machine (a training running) they are upper bounds, not the app's speed.

The model is ``--model``, else ``$GALAXYSD_MODEL_DIR``, else the shipped ``assets/galaxysd-mini``
when it exists, else an untrained GalaxySD-mini built in a temporary folder (numbers then measure
the app, not a real model).
"""
from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model folder (default: $GALAXYSD_MODEL_DIR, the shipped model, or an untrained mini)")
    p.add_argument("--images", type=int, default=4, help="images per press (default 4, the page default)")
    p.add_argument("--steps", type=int, default=20, help="denoising steps (default 20, the page default)")
    p.add_argument("--repeats", type=int, default=5, help="warm presses (default 5)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    p.add_argument("--quick", action="store_true", help="2 warm presses and 1 direct call (a smoke run)")
    p.add_argument("--random-mini", action="store_true",
                   help="use an untrained model with the GalaxySD-mini architecture (same cost as the trained one)")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 2)

    import diffusers  # noqa: F401  (import cost is part of a cold start)
    import streamlit  # noqa: F401
    import torch

    t_imports = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    from galaxysd_core import config

    model = args.model or os.environ.get(config.MODEL_DIR_ENV)
    kind = "given"
    tmp = None
    if args.random_mini:
        from galaxysd_core.models.mini import build_mini_components
        from galaxysd_core.pipelines.pipeline_galaxysd import GalaxySDPipeline

        tmp = tempfile.TemporaryDirectory()
        model, kind = str(Path(tmp.name) / "mini"), "untrained GalaxySD-mini architecture (timing only)"
        GalaxySDPipeline(**build_mini_components()).save_pretrained(model)
    elif not model:
        if (config.DEFAULT_MODEL_DIR / "model_index.json").is_file():
            model, kind = str(config.DEFAULT_MODEL_DIR), "shipped"
        else:
            from galaxysd_core.models.mini import build_mini_components
            from galaxysd_core.pipelines.pipeline_galaxysd import GalaxySDPipeline

            tmp = tempfile.TemporaryDirectory()
            model, kind = str(Path(tmp.name) / "mini"), "untrained GalaxySD-mini (no trained model found; timing only)"
            GalaxySDPipeline(**build_mini_components()).save_pretrained(model)
    os.environ[config.MODEL_DIR_ENV] = str(model)
    os.environ.setdefault(config.STORE_URL_ENV, f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite")
    t_model_ready = time.perf_counter()
    build = t_model_ready - t_imports if tmp is not None else 0.0

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800).run()
    t_page = time.perf_counter()
    if at.exception or at.error:
        print("page error:", [e.value for e in at.exception] + [e.value for e in at.error], file=sys.stderr)
        return 1
    at.slider(key="keep.gen.n_images").set_value(args.images).run()
    at.slider(key="keep.gen.steps").set_value(args.steps).run()
    t_settings = time.perf_counter()
    at.button(key="btn.gen.generate").click().run()
    t_first = time.perf_counter()
    n = len(at.session_state["gen.gallery"])
    if n != args.images:
        print(f"expected {args.images} images, the gallery has {n}: {[e.value for e in at.error]}", file=sys.stderr)
        return 1

    warm = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        at.button(key="btn.gen.generate").click().run()
        warm.append(time.perf_counter() - t)

    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

    pipe = load_pipeline(model)
    direct = []
    for i in range(max(1, min(args.repeats, 3))):
        t = time.perf_counter()
        pipe("sdss, smooth, completely round galaxy", num_images_per_prompt=args.images, seed=i,
             num_inference_steps=args.steps, output_type="np")
        direct.append(time.perf_counter() - t)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"model: {model} ({kind}); {pipe.default_size}x{pipe.default_size} px; torch threads "
          f"{torch.get_num_threads()}; {args.images} images x {args.steps} steps per press; load average "
          f"{load:.1f} on {os.cpu_count()} CPUs" + (" (busy machine: upper bounds)" if load > 0.5 * (os.cpu_count() or 1)
                                                     else ""))
    print(f"cold start to first image: {t_first - T_START - build:.2f} s  [imports {t_imports - T_START:.2f} s, "
          f"first page run incl. model load {t_page - t_model_ready:.2f} s, first generation "
          f"{t_first - t_settings:.2f} s]" + (f" (not counting {build:.2f} s building the test model)" if build else ""))
    latest = at.session_state["gen.latest"] if "gen.latest" in at.session_state else []
    if len(latest) != args.images:  # the page shows the last press beside the controls
        print(f"the page shows {len(latest)} latest images, expected {args.images}", file=sys.stderr)
        return 1
    print(f"warm generation through the page: median {statistics.median(warm):.2f} s "
          f"(min {min(warm):.2f}, max {max(warm):.2f}, n={len(warm)}); "
          f"{statistics.median(warm) / args.images:.2f} s per image")
    print(f"pipeline only (same request, no page): median {statistics.median(direct):.2f} s; page overhead "
          f"{statistics.median(warm) - statistics.median(direct):+.2f} s")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
