"""What a pipeline folder must hold (diffusers layout, safetensors weights only).

One list of required files, used by :meth:`GalaxySDPipeline.from_pretrained` before loading and by
the app's model check (:func:`galaxysd_core.studio.model_status.model_status`) without loading.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

#: File of a model folder with the feature counts of the training captions (written by training,
#: read by :meth:`GalaxySDPipeline.from_pretrained` for ``unseen_features``); optional.
TRAINING_CAPTIONS_FILE = "training_captions.json"


def required_files(root: Path, variant: Optional[str] = None) -> Dict[str, Path]:
    """``what -> path`` of the files a GalaxySD-mini or Stable Diffusion 1.5 folder must hold."""
    suffix = f".{variant}.safetensors" if variant else ".safetensors"
    root = Path(root)
    return {
        "model_index.json": root / "model_index.json",
        "scheduler config": root / "scheduler" / "scheduler_config.json",
        "vae config": root / "vae" / "config.json",
        "vae weights": root / "vae" / f"diffusion_pytorch_model{suffix}",
        "unet config": root / "unet" / "config.json",
        "unet weights": root / "unet" / f"diffusion_pytorch_model{suffix}",
        "text encoder config": root / "text_encoder" / "config.json",
        "text encoder weights": root / "text_encoder" / f"model{suffix}",
    }


def check_model_folder(root: Path, variant: Optional[str] = None) -> Tuple[List[str], Dict[str, Path]]:
    """Problems of a model folder (empty when complete) and its required files.

    Each problem names the missing file relative to the folder, e.g. ``"missing unet weights
    'unet/diffusion_pytorch_model.safetensors'"``, with a hint when only pickle ``.bin`` weights
    are present (pickles are never loaded).
    """
    root = Path(root)
    required = required_files(root, variant)
    problems: List[str] = []
    for what, path in required.items():
        if not path.is_file():
            hint = ""
            if "weights" in what and path.parent.is_dir() and any(path.parent.glob("*.bin")):
                hint = " (only pickle .bin weights are there; convert them to safetensors, pickles are never loaded)"
            problems.append(f"missing {what} {str(path.relative_to(root))!r}{hint}")
    tok_dir = root / "tokenizer"
    if not ((tok_dir / "tokenizer.json").is_file() or (tok_dir / "vocab.json").is_file()):
        problems.append("missing tokenizer/tokenizer.json (or tokenizer/vocab.json + merges.txt)")
    return problems, required
