"""Whether the configured model folder is usable (without loading it), and a cache key for it.

The pages load the pipeline once per server process with ``st.cache_resource`` keyed on
:func:`model_stamp` (the folder and its key files' modification times, so a retrained model is
picked up) through :func:`load_app_pipeline` (on the device of ``$GALAXYSD_DEVICE``, default the
GPU when there is one); :func:`model_status` says beforehand whether there is anything to load and,
if not, how to get it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

from galaxysd_core import config
from galaxysd_core.pipelines.model_folder import TRAINING_CAPTIONS_FILE, check_model_folder

#: Files whose modification times make up :func:`model_stamp`.
STAMP_FILES = ("model_index.json", "unet/diffusion_pytorch_model.safetensors",
               "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
               TRAINING_CAPTIONS_FILE)


@dataclass
class ModelStatus:
    """Whether a usable model folder is configured, and what to do if not.

    Attributes
    ----------
    path : pathlib.Path
        The folder checked.
    ok : bool
        True when it is a complete pipeline folder.
    message : str
        ``model <name> at <path>``, or what is wrong and how to train or configure a model.
    from_env : bool
        Whether the folder came from ``$GALAXYSD_MODEL_DIR``.
    """

    path: Path
    ok: bool
    message: str
    from_env: bool


def model_status(path: Optional[os.PathLike] = None) -> ModelStatus:
    """Check the configured model folder without loading it.

    Parameters
    ----------
    path : path-like, optional
        Folder to check; default :func:`galaxysd_core.config.model_dir`.
    """
    from_env = bool(os.environ.get(config.MODEL_DIR_ENV)) and path is None
    folder = Path(path) if path is not None else config.model_dir()
    how = (f"Train GalaxySD-mini with `python train/train_diffusion.py --caches cache/gz1_64 "
           f"--output_dir runs/galaxysd-mini` (prepare the caches with `galaxysd data prepare`) "
           f"and copy `runs/galaxysd-mini/model` to `{config.DEFAULT_MODEL_DIR.relative_to(config.PROJECT_ROOT)}`, "
           f"or point `{config.MODEL_DIR_ENV}` at a diffusers pipeline folder (GalaxySD-mini, or Stable Diffusion "
           f"1.5 fine-tuned on GZ2; safetensors weights), e.g. "
           f"`{config.MODEL_DIR_ENV}=/path/to/model streamlit run app.py`.")
    if not folder.is_dir():
        return ModelStatus(folder, False, f"No model folder at `{folder}`. {how}", from_env)
    if not (folder / "model_index.json").is_file():
        return ModelStatus(folder, False, f"`{folder}` is not a pipeline folder (no `model_index.json`). {how}",
                           from_env)
    problems, _ = check_model_folder(folder)
    if problems:
        return ModelStatus(folder, False, f"`{folder}` is incomplete ({'; '.join(problems)}). {how}", from_env)
    return ModelStatus(folder, True, f"model `{folder.name}` at `{folder}`", from_env)


def load_app_pipeline(path: os.PathLike):
    """The app's shared pipeline of a model folder, on the configured device and dtype.

    :func:`~galaxysd_core.pipelines.pipeline_galaxysd.load_pipeline` with no device given:
    ``$GALAXYSD_DEVICE`` / ``$GALAXYSD_DTYPE``, else CUDA in float16 when available, else the CPU in
    float32, so a GPU server needs no code change. Show where it runs with
    :func:`galaxysd_core.pipelines.devices.describe_pipeline_device`.
    """
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline  # imports torch: first use only

    return load_pipeline(str(path))


def model_stamp(path: os.PathLike) -> Tuple[Any, ...]:
    """Modification times (ns) of a model folder's :data:`STAMP_FILES`: a cache key that changes on retraining."""
    folder = Path(path)
    out: List[Any] = [str(folder.resolve())]
    for rel in STAMP_FILES:
        p = folder / rel
        out.append(p.stat().st_mtime_ns if p.is_file() else None)
    return tuple(out)
