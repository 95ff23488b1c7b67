"""Settings of a diffusion training run (:class:`DiffusionTrainConfig`) and its YAML form.

Every field carries a ``help`` text in its metadata, so ``transformers.HfArgumentParser`` turns the
dataclass into the command line of ``train/train_diffusion.py`` with no hand-written flag list.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.models.mini import MiniModelConfig

#: Prompts of the validation grids written every ``validation_steps`` steps.
DEFAULT_VALIDATION_PROMPTS = [
    "sdss, smooth, completely round galaxy",
    "sdss, smooth, cigar shaped galaxy",
    "sdss, features or disk-shaped, spiral galaxy",
    "sdss, features or disk-shaped, edge-on galaxy",
    "sdss, merger",
    "sdss, star or artifact",
    "sdss, smooth, {completely round galaxy:1.3}, {dust lane:1.3}",
    "sdss, features or disk-shaped, edge-on galaxy, dust lane",
]


def _setting(default: Any = None, text: str = "", factory=None):
    """A dataclass field with its command-line help (``metadata["help"]``, read by HfArgumentParser)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class DiffusionTrainConfig:
    """All settings of a training run; saved as ``train_config.yaml`` in ``output_dir``.

    The defaults train GalaxySD-mini from scratch; :meth:`sd15_finetune` gives GalaxySD's recipe
    for fine-tuning Stable Diffusion 1.5 (Ma, Sun et al. 2025, arXiv:2506.16233, Sec. 2.2).

    Raises
    ------
    GalaxySDValueError
        On construction, for an unknown stage, scheduler or precision, a step count below 1 or a
        caption dropout outside [0, 1).
    """

    output_dir: str = _setting("runs/galaxysd-mini", "run folder: checkpoints, logs, validation grids, model/")
    caches: List[str] = _setting(factory=list, text="prepared caches to train on (galaxysd data prepare)")
    pretrained_model_name_or_path: Optional[str] = _setting(
        None, "Stable Diffusion 1.5 or GalaxySD folder to fine-tune (skips the VAE stage)")
    stage: str = _setting("all", "'vae', 'unet' or 'all'")
    exclude_ids_from: Optional[str] = _setting(
        None, "folder with a split_test_ids.csv (e.g. assets/classifier): those held-out galaxies are left "
              "out of training, so evaluations and reconstruction tests on them are honest")
    derive_roundness: bool = _setting(True, "add the derived t07 roundness to GZ1 elliptical captions")
    partial_vote_threshold: Optional[float] = _setting(
        None, "add the rare odd-feature phrases (dust lane, merger, ring, lens or arc, disturbed, irregular) to "
              "captions where f_answer x p_odd >= this share of all classifiers (schema/partial_votes.py; 0.25 "
              "for GalaxySD-mini v3); none = majority captions only")
    rare_oversampling: float = _setting(1.0, "draw captions carrying a rare odd-feature phrase this many times as "
                                             "often as the others (1 = uniform draws)")
    prediction_type: Optional[str] = _setting(None, "'epsilon' or 'v_prediction' objective; none = the model's own "
                                                    "(a fine-tuned model can switch)")
    zero_terminal_snr: bool = _setting(False, "rescale the betas to zero terminal SNR with 'trailing' timestep "
                                              "spacing (Lin et al. 2024; use with v_prediction); the saved "
                                              "scheduler config carries it")
    model: Dict = _setting(factory=lambda: MiniModelConfig().to_dict(),
                           text="GalaxySD-mini sizes (MiniModelConfig fields) as JSON")
    seed: int = _setting(0, "seed of initialisation, batches, noise and caption augmentation")
    # VAE stage
    vae_steps: int = _setting(1200, "VAE optimisation steps")
    vae_batch_size: int = _setting(32, "VAE batch size per process")
    vae_learning_rate: float = _setting(1e-3, "VAE peak learning rate (100-step warm-up, cosine decay)")
    vae_kl_weight: float = _setting(1e-6, "weight of the KL term of the VAE loss")
    vae_crop: Optional[int] = _setting(32, "train the (fully convolutional) VAE on random crops of this "
                                           "size in pixels: 4x cheaper at 64 px; 0 = whole images")
    # UNet stage
    train_batch_size: int = _setting(64, "UNet batch size per process")
    max_train_steps: int = _setting(4000, "UNet optimisation steps (whatever the number of processes; "
                                          "each process draws its own batches)")
    max_train_minutes: Optional[float] = _setting(None, "stop (with a checkpoint) after this many minutes")
    learning_rate: float = _setting(5e-4, "UNet peak learning rate")
    text_encoder_learning_rate: Optional[float] = _setting(None, "text encoder learning rate; "
                                                                 "none = learning_rate")
    train_text_encoder: bool = _setting(True, "train the text encoder with the UNet")
    lr_scheduler: str = _setting("cosine", "'cosine', 'constant' or 'one_cycle'")
    lr_warmup_steps: int = _setting(200, "linear (one_cycle: cosine) warm-up steps")
    adam_weight_decay: float = _setting(1e-2, "AdamW weight decay")
    max_grad_norm: float = _setting(1.0, "gradient clipping norm")
    min_snr_gamma: Optional[float] = _setting(5.0, "min-SNR loss weighting gamma (Hang et al. 2023); "
                                                   "0 = plain MSE")
    caption_dropout: float = _setting(0.1, "probability of an empty caption (for classifier-free guidance)")
    tag_dropout: float = _setting(0.15, "each tag after the prefix dropped alone (>= 1 kept): "
                                        "partial prompts work")
    shuffle_tags: bool = _setting(True, "shuffle the tags after the survey prefix")
    use_ema: bool = _setting(True, "keep an EMA of the weights; snapshots and the model use it")
    ema_decay: float = _setting(0.999, "EMA decay")
    mixed_precision: str = _setting("no", "'no', 'fp16' or 'bf16'")
    gradient_accumulation_steps: int = _setting(1, "batches per optimisation step")
    # data loading (training/latent_cache.py)
    latent_dihedral: str = _setting("latent", "'latent': one latent per image is encoded and cached, the 8 "
                                              "flips/quarter turns are applied to it on the fly; 'encoded': "
                                              "all 8 transformed images are encoded and cached (8x the disk, "
                                              "exact; the shipped model was trained so)")
    latent_loading: str = _setting("stream", "'stream': latents read from the sharded cache on disk through "
                                             "a DataLoader (memory independent of the data size); 'memory': "
                                             "all latents loaded into RAM first")
    dataloader_num_workers: int = _setting(0, "DataLoader worker processes reading latent / image batches "
                                              "(0: in the training process)")
    log_every: int = _setting(50, "steps between 'train' rows of train_log.jsonl (mean loss over the "
                                  "processes and those steps, lr)")
    checkpointing_steps: int = _setting(250, "steps between accelerate checkpoints")
    checkpoints_total_limit: int = _setting(3, "checkpoints kept (oldest removed)")
    validation_steps: int = _setting(500, "steps between validation grids (and snapshots)")
    validation_prompts: List[str] = _setting(factory=lambda: list(DEFAULT_VALIDATION_PROMPTS),
                                             text="prompts of the validation grids")
    validation_seeds: int = _setting(4, "images per validation prompt")
    validation_inference_steps: int = _setting(20, "denoising steps of the validation images")
    validation_guidance: float = _setting(3.0, "guidance scale of the validation images")
    save_snapshots: bool = _setting(True, "save a model folder at every validation (snapshots/step-N)")
    resume_from_checkpoint: Optional[str] = _setting(None, "'latest' or a checkpoint-<step> folder")
    num_threads: Optional[int] = _setting(None, "torch CPU threads")

    def __post_init__(self) -> None:
        # YAML stores lists; keep the in-memory form identical so configs compare equal after a round trip
        self.model = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(self.model).items()}
        if self.stage not in ("vae", "unet", "all"):
            raise GalaxySDValueError(f"stage must be 'vae', 'unet' or 'all', got {self.stage!r}")
        if self.lr_scheduler not in ("cosine", "constant", "one_cycle"):
            raise GalaxySDValueError(f"lr_scheduler must be cosine, constant or one_cycle, got {self.lr_scheduler!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise GalaxySDValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        for name in ("train_batch_size", "max_train_steps", "gradient_accumulation_steps", "log_every",
                     "checkpointing_steps", "validation_steps"):
            if int(getattr(self, name)) < 1:
                raise GalaxySDValueError(f"{name} must be >= 1")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise GalaxySDValueError("caption_dropout must be in [0, 1)")
        if self.latent_dihedral not in ("latent", "encoded"):
            raise GalaxySDValueError(f"latent_dihedral must be 'latent' or 'encoded', got {self.latent_dihedral!r}")
        if self.latent_loading not in ("stream", "memory"):
            raise GalaxySDValueError(f"latent_loading must be 'stream' or 'memory', got {self.latent_loading!r}")
        if self.prediction_type not in (None, "epsilon", "v_prediction"):
            raise GalaxySDValueError(f"prediction_type must be epsilon or v_prediction, got {self.prediction_type!r}")
        if self.zero_terminal_snr and self.prediction_type != "v_prediction":
            raise GalaxySDValueError("zero_terminal_snr needs prediction_type v_prediction: at zero SNR the noise "
                                     "is the input and an epsilon model has nothing to predict (Lin et al. 2024)")
        if self.partial_vote_threshold is not None and not 0.0 < float(self.partial_vote_threshold) <= 1.0:
            raise GalaxySDValueError(f"partial_vote_threshold must be in (0, 1], got {self.partial_vote_threshold}")
        if float(self.rare_oversampling) < 1.0:
            raise GalaxySDValueError(f"rare_oversampling must be >= 1, got {self.rare_oversampling}")
        if int(self.dataloader_num_workers) < 0:
            raise GalaxySDValueError("dataloader_num_workers must be >= 0")

    @property
    def mini_config(self) -> MiniModelConfig:
        """:attr:`model` as a :class:`~galaxysd_core.models.mini.MiniModelConfig`."""
        return MiniModelConfig.from_dict(self.model)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "DiffusionTrainConfig":
        """Read a config written by :meth:`save` (or by hand).

        Raises
        ------
        GalaxySDValueError
            If the file names settings this class does not have.
        """
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise GalaxySDValueError(f"unknown settings in {path}: {sorted(unknown)}")
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        """Write the settings as YAML (the form :meth:`from_yaml` reads)."""
        Path(path).write_text(yaml.safe_dump(asdict(self), sort_keys=False))

    @classmethod
    def sd15_finetune(cls, pretrained: str, **overrides) -> "DiffusionTrainConfig":
        """GalaxySD's published fine-tuning recipe for SD 1.5 (Ma, Sun et al. 2025 Sec. 2.2):
        batch 16, 10k steps, peak learning rate 1.6e-6 with one-cycle warm-up, fp16."""
        base = dict(pretrained_model_name_or_path=pretrained, stage="unet", train_batch_size=16,
                    max_train_steps=10_000, learning_rate=1.6e-6, lr_scheduler="one_cycle",
                    lr_warmup_steps=1000, mixed_precision="fp16", min_snr_gamma=None, derive_roundness=False)
        base.update(overrides)
        return cls(**base)
