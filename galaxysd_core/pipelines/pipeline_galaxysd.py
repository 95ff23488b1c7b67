"""GalaxySDPipeline: text-to-galaxy (and galaxy-to-galaxy) generation with weighted prompts.

One code path for the shipped GalaxySD-mini model and a full Stable Diffusion 1.5 folder: both are
an AutoencoderKL + UNet2DConditionModel + CLIP text encoder + tokenizer + scheduler.

Reference: Ma, Sun et al. 2025, "Can AI Dream of Unseen Galaxies?", arXiv:2506.16233.
"""
from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, UNet2DConditionModel)
from PIL import Image

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.pipelines.model_folder import check_model_folder
from galaxysd_core.pipelines.output import GalaxySDPipelineOutput
from galaxysd_core.schema.gz2 import SURVEY_PREFIX
from galaxysd_core.prompts.grammar import ParsedPrompt, known_phrases, parse_prompt
from galaxysd_core.prompts.weighting import encode_weighted_prompts
from galaxysd_core.prompts.tokenization import is_word_level

#: Scheduler names accepted by ``scheduler=`` -> (class, extra config).
SCHEDULERS: Dict[str, tuple] = {
    "ddim": (DDIMScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "dpmpp": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
}
#: Input limits (checked by :meth:`GalaxySDPipeline.check_inputs`).
MAX_STEPS = 200
MAX_IMAGES = 64
MAX_GUIDANCE = 30.0
MAX_SEED = 2**63 - 1
#: File listing the captions the model was trained on (written by training).
TRAINING_CAPTIONS_FILE = "training_captions.json"


def img2img_steps(num_inference_steps: int, strength: float) -> int:
    """Denoising steps an img2img call runs: ``round(steps * strength)``, at most ``steps``
    (the diffusers rule: the start image is noised to ``strength`` of the schedule)."""
    return min(int(round(int(num_inference_steps) * float(strength))), int(num_inference_steps))


def load_pipeline(model: Union[str, Path, "GalaxySDPipeline"], *, progress: bool = False,
                  **kwargs) -> "GalaxySDPipeline":
    """A :class:`GalaxySDPipeline` from a folder (or the pipeline itself), progress bar off by default.

    The one loader of the app, the CLI, evaluation, sample grids and the science scripts.

    Raises
    ------
    GalaxySDFileError
        Naming the missing or corrupt file of the folder.
    """
    pipe = model if not isinstance(model, (str, Path)) else GalaxySDPipeline.from_pretrained(model, **kwargs)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=not progress)
    return pipe


class GalaxySDPipeline(DiffusionPipeline):
    """Generate galaxies from GalaxySD captions with feature weights (``{dust lane:1.3}``).

    Parameters
    ----------
    vae : AutoencoderKL
    text_encoder : transformers.CLIPTextModel
    tokenizer : transformers tokenizer (word-level for GalaxySD-mini, CLIP BPE for SD 1.5)
    unet : UNet2DConditionModel
    scheduler : a diffusers scheduler; its config is the base of the per-call scheduler.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, vae: AutoencoderKL, text_encoder, tokenizer, unet: UNet2DConditionModel, scheduler) -> None:
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self._call_lock = threading.Lock()
        self.trained_features: Optional[Dict[str, int]] = None
        self.source_path: Optional[str] = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, Path], variant: Optional[str] = None,
                        torch_dtype: Optional[torch.dtype] = None, **kwargs) -> "GalaxySDPipeline":
        """Load a pipeline folder (GalaxySD-mini or a Stable Diffusion 1.5 folder) offline.

        Weights are read from safetensors only. A missing or unreadable file raises
        :class:`GalaxySDFileError` naming it.
        """
        from transformers import AutoTokenizer, CLIPTextModel

        root = Path(pretrained_model_name_or_path)
        if not root.is_dir():
            raise GalaxySDFileError(f"model folder {str(root)!r} does not exist (expected a diffusers pipeline folder "
                                    f"with model_index.json)")
        problems, required = check_model_folder(root, variant)
        if problems:
            raise GalaxySDFileError(f"model folder {str(root)!r} is incomplete: {problems[0]}")
        for what, path in required.items():
            if path.suffix == ".json":
                try:
                    json.loads(path.read_text())
                except (ValueError, UnicodeDecodeError) as exc:
                    raise GalaxySDFileError(f"{what} {str(path)!r} is not valid JSON: {exc}") from None

        def load(what: str, fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except GalaxySDFileError:
                raise
            except Exception as exc:  # any parse/shape error of a corrupt file
                raise GalaxySDFileError(f"could not load the {what} of {str(root)!r}: "
                                        f"{type(exc).__name__}: {exc}") from None

        common = dict(use_safetensors=True, variant=variant)
        if torch_dtype is not None:
            common["torch_dtype"] = torch_dtype
        vae = load("vae (vae/)", lambda: AutoencoderKL.from_pretrained(root, subfolder="vae", **common))
        unet = load("unet (unet/)", lambda: UNet2DConditionModel.from_pretrained(root, subfolder="unet", **common))
        text_encoder = load("text encoder (text_encoder/)", lambda: CLIPTextModel.from_pretrained(
            root / "text_encoder", **common))
        tokenizer = load("tokenizer (tokenizer/)", lambda: AutoTokenizer.from_pretrained(root / "tokenizer"))
        scheduler = load("scheduler (scheduler/)", lambda: DDIMScheduler.from_pretrained(root, subfolder="scheduler"))
        pipe = cls(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        for module in (vae, unet, text_encoder):
            module.eval()
        captions_file = root / TRAINING_CAPTIONS_FILE
        if captions_file.is_file():
            try:
                data = json.loads(captions_file.read_text())
                pipe.trained_features = {str(k): int(v) for k, v in data.get("feature_counts", {}).items()}
            except (ValueError, AttributeError, TypeError) as exc:
                raise GalaxySDFileError(f"{str(captions_file)!r} is corrupt: {exc}") from None
        pipe.source_path = str(root)
        return pipe

    # ------------------------------------------------------------------ helpers
    @property
    def strict_vocabulary(self) -> bool:
        """True when the tokenizer only knows the GZ2 caption vocabulary (GalaxySD-mini)."""
        return is_word_level(self.tokenizer)

    @property
    def default_size(self) -> int:
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    def unseen_features(self, phrases: Sequence[str]) -> List[str]:
        """Phrases the loaded model never saw in training (empty if unknown)."""
        if self.trained_features is None:
            return []
        return [p for p in phrases if self.trained_features.get(p, 0) == 0]

    def tree_negative_prompt(self, prompt: str) -> str:
        """Automatic negative prompt of ``prompt``: the other morphologies at the GZ2 tree's branch
        points it passes through (:func:`galaxysd_core.schema.gz2.tree_exclusions`), e.g.
        ``"sdss, smooth, star or artifact, edge-on galaxy"`` for ``"sdss, features or disk-shaped,
        spiral galaxy"``; ``""`` when the tree rules nothing out. Phrases weighted 0 do not count."""
        from galaxysd_core.schema.gz2 import tree_exclusions

        tags = [t for t, w in self.parse(prompt).phrase_weights().items() if w > 0]
        excluded = tree_exclusions(tags)
        if not excluded:
            return ""
        return ", ".join(([SURVEY_PREFIX] if SURVEY_PREFIX in tags else []) + excluded)

    def make_scheduler(self, name: Optional[str] = None):
        """A fresh scheduler instance (never the shared one, so concurrent calls cannot corrupt state)."""
        if name is None:
            return DDIMScheduler.from_config(self.scheduler.config)
        key = str(name).lower()
        if key not in SCHEDULERS:
            raise GalaxySDValueError(f"unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}")
        klass, extra = SCHEDULERS[key]
        return klass.from_config(self.scheduler.config, **extra)

    def parse(self, prompt: str) -> ParsedPrompt:
        """Parse a prompt with this model's vocabulary (strict for GalaxySD-mini)."""
        return parse_prompt(prompt, strict=self.strict_vocabulary)

    def _parse_negative(self, text: Optional[str]) -> ParsedPrompt:
        if text is None or not str(text).strip():
            return ParsedPrompt(text="", words=(), weights=())
        return self.parse(text)

    # ------------------------------------------------------------------ checks
    def check_inputs(self, prompt, negative_prompt, num_images_per_prompt, seed, num_inference_steps,
                     guidance_scale, scheduler, height, width, image, strength, output_type) -> List[str]:
        """Validate every user input; raise :class:`GalaxySDValueError` with the fix. Returns the prompt list."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt) if isinstance(prompt, (list, tuple)) else None
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise GalaxySDValueError("prompt must be a non-empty string or list of strings, "
                                     "e.g. 'sdss, smooth, completely round galaxy'")
        for p in prompts:
            self.parse(p)
        if negative_prompt is not None:
            negs = [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
            if len(negs) not in (1, len(prompts)):
                raise GalaxySDValueError(f"give one negative prompt or one per prompt ({len(prompts)}), not {len(negs)}")
            for n in negs:
                if not isinstance(n, str):
                    raise GalaxySDValueError("negative_prompt must be a string or list of strings")
                self._parse_negative(n)
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise GalaxySDValueError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
        total = len(prompts) * num_images_per_prompt
        if total > MAX_IMAGES:
            raise GalaxySDValueError(f"{total} images requested; at most {MAX_IMAGES} per call — split the request")
        if seed is not None:
            seeds = [seed] if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else seed
            if not isinstance(seeds, (list, tuple)) or not all(
                    isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
                raise GalaxySDValueError(f"seed must be an integer or a list of integers, got {seed!r}")
            if any(not 0 <= int(s) <= MAX_SEED for s in seeds):
                raise GalaxySDValueError(f"seeds must lie in [0, 2**63-1], got {seed!r}")
            if isinstance(seed, (list, tuple)) and len(seed) != total:
                raise GalaxySDValueError(f"{len(seed)} seeds given for {total} images; give one seed or one per image")
        if not isinstance(num_inference_steps, int) or not 1 <= num_inference_steps <= MAX_STEPS:
            raise GalaxySDValueError(f"num_inference_steps must be an integer in [1, {MAX_STEPS}], got {num_inference_steps!r}")
        if not isinstance(guidance_scale, (int, float)) or not 0.0 <= float(guidance_scale) <= MAX_GUIDANCE \
                or not np.isfinite(guidance_scale):
            raise GalaxySDValueError(f"guidance_scale must be a number in [0, {MAX_GUIDANCE}], got {guidance_scale!r}")
        self.make_scheduler(scheduler)
        for name, value in (("height", height), ("width", width)):
            if value is None:
                continue
            step = self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)
            if not isinstance(value, int) or value < step or value % step or value > 4 * self.default_size:
                raise GalaxySDValueError(f"{name} must be a multiple of {step} between {step} and "
                                         f"{4 * self.default_size} pixels (the model was trained at "
                                         f"{self.default_size}), got {value!r}")
        if image is not None:
            if not isinstance(image, (Image.Image, np.ndarray)):
                raise GalaxySDValueError("image must be a PIL image or an RGB uint8 array (H, W, 3)")
            if isinstance(image, np.ndarray) and (image.ndim != 3 or image.shape[2] != 3):
                raise GalaxySDValueError(f"image array must have shape (H, W, 3), got {image.shape}")
            if not isinstance(strength, (int, float)) or not 0.0 < float(strength) <= 1.0:
                raise GalaxySDValueError(f"strength must be in (0, 1], got {strength!r}")
        if output_type not in ("pil", "np", "latent"):
            raise GalaxySDValueError(f"output_type must be 'pil', 'np' or 'latent', got {output_type!r}")
        return prompts

    # ------------------------------------------------------------------ image <-> latent
    def _image_to_tensor(self, image, height: int, width: int) -> torch.Tensor:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image.astype(np.uint8))
        image = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
        arr = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(arr).permute(2, 0, 1)[None]

    def _to_latent(self, z: torch.Tensor) -> torch.Tensor:
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return (z - shift) * self.vae.config.scaling_factor

    def _from_latent(self, z: torch.Tensor) -> torch.Tensor:
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return z / self.vae.config.scaling_factor + shift

    # ------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(self, prompt: Union[str, List[str]], negative_prompt: Optional[Union[str, List[str]]] = None,
                 num_images_per_prompt: int = 1, seed: Optional[Union[int, List[int]]] = None,
                 num_inference_steps: int = 20, guidance_scale: float = 6.5, scheduler: Optional[str] = "ddim",
                 eta: float = 0.0, height: Optional[int] = None, width: Optional[int] = None,
                 image: Optional[Union[Image.Image, np.ndarray]] = None, strength: float = 0.6,
                 output_type: str = "pil", callback: Optional[Callable[[int, int], None]] = None,
                 return_dict: bool = True, tree_negatives: bool = True) -> GalaxySDPipelineOutput:
        """Generate galaxies.

        Parameters
        ----------
        prompt : str or list of str
            GalaxySD prompt(s), e.g. ``"sdss, smooth, {completely round:1.3} galaxy, {dust lane:1.3}"``.
        negative_prompt : str or list of str, optional
            Prompt to steer away from (weighted the same way); ``""`` = unconditional. When None and
            ``tree_negatives`` is True, each prompt gets its automatic GZ2-tree negative prompt
            (:meth:`tree_negative_prompt`).
        num_images_per_prompt : int
        seed : int or list of int, optional
            One seed (image ``i`` uses ``seed + i``) or one per image; random when None.
        num_inference_steps : int
        guidance_scale : float
            Classifier-free guidance scale; <= 1 disables guidance.
        scheduler : {"ddim", "euler_a", "euler", "dpmpp"}
        eta : float
            DDIM eta (0 = deterministic sampler).
        height, width : int, optional
            Output size in pixels (default: the training resolution).
        image : PIL.Image or ndarray, optional
            A real galaxy to start from (img2img); GalaxySD's remedy for over-bright text-only samples.
        strength : float
            Fraction of the noise schedule applied to ``image`` (1 = ignore the image).
        output_type : {"pil", "np", "latent"}
        callback : callable, optional
            ``callback(step, total_steps)`` after every denoising step.
        tree_negatives : bool
            Use the automatic GZ2-tree negative prompt when ``negative_prompt`` is None (GalaxySD
            itself uses plain unconditional guidance: pass False to reproduce that).
        """
        with self._call_lock:
            return self._generate(prompt, negative_prompt, num_images_per_prompt, seed, num_inference_steps,
                                  guidance_scale, scheduler, eta, height, width, image, strength, output_type,
                                  callback, return_dict, tree_negatives)

    def _generate(self, prompt, negative_prompt, num_images_per_prompt, seed, num_inference_steps, guidance_scale,
                  scheduler_name, eta, height, width, image, strength, output_type, callback, return_dict,
                  tree_negatives=True):
        # 1. Check inputs
        prompts = self.check_inputs(prompt, negative_prompt, num_images_per_prompt, seed, num_inference_steps,
                                    guidance_scale, scheduler_name, height, width, image, strength, output_type)
        height = height or self.default_size
        width = width or self.default_size
        device = self._execution_device
        total = len(prompts) * num_images_per_prompt
        if seed is None:
            seeds = [secrets.randbelow(2**31) for _ in range(total)]
        elif isinstance(seed, (list, tuple)):
            seeds = [int(s) for s in seed]
        else:
            seeds = [int(seed) + i for i in range(total)]
        do_cfg = guidance_scale > 1.0

        # 2. Encode weighted prompts (and the negative prompt)
        max_length = int(self.tokenizer.model_max_length)
        if max_length > 10_000:  # tokenizer without a limit: use the text encoder's positions
            max_length = int(self.text_encoder.config.max_position_embeddings)
        parsed = [self.parse(p) for p in prompts]
        cond = encode_weighted_prompts(self.text_encoder, self.tokenizer, parsed, max_length, device)
        cond = cond.repeat_interleave(num_images_per_prompt, dim=0)
        automatic = negative_prompt is None and bool(tree_negatives)
        if automatic:
            negs = [self.tree_negative_prompt(p) for p in prompts]
        else:
            negs = negative_prompt if isinstance(negative_prompt, (list, tuple)) else [negative_prompt] * len(prompts)
            if len(negs) == 1:
                negs = negs * len(prompts)
        negs = ["" if n is None else str(n) for n in negs]
        if do_cfg:
            uncond = encode_weighted_prompts(self.text_encoder, self.tokenizer,
                                             [self._parse_negative(n) for n in negs], max_length, device)
            uncond = uncond.repeat_interleave(num_images_per_prompt, dim=0)
            embeddings = torch.cat([uncond, cond])
        else:
            embeddings = cond

        # 3. Prepare a fresh scheduler and its timesteps
        scheduler = self.make_scheduler(scheduler_name)
        scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = scheduler.timesteps
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]

        # 4. Prepare latents (pure noise, or a noised real galaxy)
        shape = (1, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        noise = torch.cat([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators]).to(device)
        noise = noise.to(self.unet.dtype)
        if image is not None:
            x0 = self._image_to_tensor(image, height, width).to(device=device, dtype=self.vae.dtype)
            init = self._to_latent(self.vae.encode(x0).latent_dist.mean).repeat(total, 1, 1, 1)
            t_start = num_inference_steps - img2img_steps(num_inference_steps, strength)
            timesteps = timesteps[t_start * scheduler.order:]
            if len(timesteps) == 0:
                raise GalaxySDValueError(f"strength {strength} with {num_inference_steps} steps leaves no "
                                         f"denoising step; raise strength or steps")
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(t_start * scheduler.order)
            latents = scheduler.add_noise(init.to(noise.dtype), noise, timesteps[:1].repeat(total))
        else:
            latents = noise * scheduler.init_noise_sigma

        # 5. Denoising loop
        step_kwargs = {}
        import inspect
        step_params = set(inspect.signature(scheduler.step).parameters)
        if "generator" in step_params:
            step_kwargs["generator"] = generators
        if "eta" in step_params:
            step_kwargs["eta"] = eta
        n_steps = len(timesteps)
        with self.progress_bar(total=n_steps) as bar:
            for i, t in enumerate(timesteps):
                model_in = torch.cat([latents] * 2) if do_cfg else latents
                model_in = scheduler.scale_model_input(model_in, t)
                eps = self.unet(model_in, t, encoder_hidden_states=embeddings).sample
                if do_cfg:
                    eps_uncond, eps_cond = eps.chunk(2)
                    eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
                latents = scheduler.step(eps, t, latents, **step_kwargs).prev_sample
                bar.update()
                if callback is not None:
                    callback(i + 1, n_steps)

        # 6. Decode
        used_negs = negs if do_cfg else [""] * len(prompts)  # without guidance no negative prompt acts
        parameters = dict(
            negative_prompt=used_negs[0] if len(set(used_negs)) == 1 else list(used_negs),
            tree_negatives=bool(automatic and do_cfg), num_images_per_prompt=num_images_per_prompt,
            num_inference_steps=num_inference_steps, guidance_scale=float(guidance_scale),
            scheduler=(scheduler_name or "ddim"), eta=float(eta), height=height, width=width,
            strength=float(strength) if image is not None else None, init_image=image is not None,
            model=self.source_path, model_name=Path(self.source_path).name if self.source_path else None,
        )
        all_prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(self._from_latent(latents).to(self.vae.dtype)).sample
            arr = ((decoded.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            arr = arr.permute(0, 2, 3, 1).cpu().numpy()
            images = arr if output_type == "np" else [Image.fromarray(a) for a in arr]

        # 7. Output
        out = GalaxySDPipelineOutput(images=images, seeds=seeds, prompts=all_prompts, parameters=parameters,
                                     negative_prompts=[n for n in used_negs for _ in range(num_images_per_prompt)])
        return out if return_dict else (images,)
