"""GalaxySDPipeline: text-to-galaxy (and galaxy-to-galaxy) generation with weighted prompts.

One code path for the shipped GalaxySD-mini model and a full Stable Diffusion 1.5 folder: both are
an AutoencoderKL + UNet2DConditionModel + CLIP text encoder + tokenizer + scheduler.

Reference: Ma, Sun et al. 2025, "Can AI Dream of Unseen Galaxies?", arXiv:2506.16233.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.image_processor import VaeImageProcessor
from PIL import Image

from galaxysd_core.errors import GalaxySDFileError
from galaxysd_core.pipelines.devices import cpu_generators, initial_noise
from galaxysd_core.pipelines.feature_defaults import FeatureDefaults
from galaxysd_core.pipelines.feature_guidance import branches_for, combine, normalize_features
from galaxysd_core.pipelines.inputs import check_inputs, img2img_steps
from galaxysd_core.pipelines.model_folder import TRAINING_CAPTIONS_FILE, check_model_folder
from galaxysd_core.pipelines.generation_defaults import FALLBACK, GenerationDefaults
from galaxysd_core.pipelines.output import GalaxySDPipelineOutput
from galaxysd_core.pipelines.schedulers import make_scheduler, saved_scheduler_class
from galaxysd_core.pipelines.schedulers import scheduler_name as scheduler_name_of
from galaxysd_core.pipelines.latent_mean import initial_latents, load_latent_mean
from galaxysd_core.pipelines.sky_noise import SkyNoise, sky_noise_fields
from galaxysd_core.pipelines.tree_negatives import negative_prompts_for, tree_negative
from galaxysd_core.prompts.grammar import ParsedPrompt, parse_prompt
from galaxysd_core.prompts.tokenization import is_word_level, text_max_length
from galaxysd_core.prompts.weighting import encode_weighted_prompts
from galaxysd_core.schema.gz2 import ANSWER_BY_PHRASE

__all__ = ["GalaxySDPipeline", "img2img_steps", "load_pipeline"]


def load_pipeline(model: Union[str, Path, "GalaxySDPipeline"], *, progress: bool = False,
                  device: Union[str, torch.device, None] = None, dtype: Union[str, torch.dtype, None] = None,
                  **kwargs) -> "GalaxySDPipeline":
    """A :class:`GalaxySDPipeline` from a folder (or the pipeline itself) on its device, progress bar off.

    The one loader of the app, the CLI, evaluation, sample grids and the science scripts.

    Parameters
    ----------
    model : path or GalaxySDPipeline
    progress : bool
        Show the denoising progress bar.
    device : str or torch.device, optional
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``. A folder is loaded onto the device of
        :func:`~galaxysd_core.pipelines.devices.choose_device` (None: ``$GALAXYSD_DEVICE``, else
        auto = CUDA when available); a pipeline object is only moved when ``device`` or ``dtype``
        is given (training snapshots share modules with the training run).
    dtype : str or torch.dtype, optional
        ``auto``, ``fp32``, ``fp16`` or ``bf16`` (None: ``$GALAXYSD_DTYPE``, else float16 on CUDA
        and float32 elsewhere).

    Raises
    ------
    GalaxySDFileError
        Naming the missing or corrupt file of the folder.
    GalaxySDValueError
        For an unknown or unavailable device, or a dtype the device does not support.
    """
    from galaxysd_core.pipelines.devices import choose_device

    if isinstance(model, (str, Path)):
        dtype = kwargs.get("torch_dtype") if dtype is None else dtype
        choice = choose_device(device, dtype)  # checked before the (slow) loading
        if choice.dtype != torch.float32:  # load straight into the half dtype (half the host memory)
            kwargs["torch_dtype"] = choice.dtype
        pipe = GalaxySDPipeline.from_pretrained(model, **kwargs)
    else:
        pipe, choice = model, (choose_device(device, dtype) if device is not None or dtype is not None else None)
    if choice is not None:
        modules = [m for m in (getattr(pipe, n, None) for n in ("unet", "vae", "text_encoder")) if m is not None]
        cast = any(m.dtype != choice.dtype for m in modules)  # casting what already has the dtype only warns
        pipe.to(device=choice.device, **({"dtype": choice.dtype} if cast else {}))
        pipe.device_choice = choice
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
    scheduler : a diffusers scheduler; its config is the base of the per-call scheduler, and its
        class the sampler of ``scheduler=None``.

    Notes
    -----
    Re-entrant: threads may call one pipeline at the same time and get exactly the images of
    sequential calls (``tests/test_pipeline_reentrancy.py``). A call changes no state of the
    pipeline: it builds its own sampler and random generators, runs the models in eval mode under
    ``torch.no_grad`` (thread-local), and only reads the progress-bar settings, the attention
    processors and the shared scheduler's config. What does change shared state —
    ``set_progress_bar_config``, ``set_attn_processor``, moving or offloading the models,
    ``torch.set_num_threads`` — belongs to loading and setup, never to a call. So there is no lock;
    the app limits how many calls run at once (:mod:`galaxysd_core.studio.limits`).
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, vae: AutoencoderKL, text_encoder, tokenizer, unet: UNet2DConditionModel, scheduler) -> None:
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        # The one conversion of start images (PIL, 8-bit RGB after inputs.start_image_rgb8) to VAE input.
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True)
        self.trained_features: Optional[Dict[str, int]] = None
        self.source_path: Optional[str] = None
        self.device_choice = None  # the DeviceChoice of load_pipeline (devices.describe_pipeline_device reads modules)
        #: Recommended settings of the folder (``generation_defaults.json``), used for None arguments.
        self.generation_defaults: GenerationDefaults = FALLBACK
        #: Measured SDSS sky noise added after decoding (``sky_noise.json``); None = none.
        self.sky_noise: Optional[SkyNoise] = None
        #: Mean training latent ``(C, h, w)`` sampling starts around (``latent_mean.safetensors``); None = zero.
        self.latent_mean: Optional[torch.Tensor] = None
        #: Recommended guidance strength per feature (``feature_defaults.json``); None = not measured.
        self.feature_defaults: Optional[FeatureDefaults] = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, Path], variant: Optional[str] = None,
                        torch_dtype: Optional[torch.dtype] = None, **kwargs) -> "GalaxySDPipeline":
        """Load a pipeline folder (GalaxySD-mini or a Stable Diffusion 1.5 folder) offline.

        Weights are read from safetensors only; the scheduler is the class the folder saves
        (:func:`~galaxysd_core.pipelines.schedulers.saved_scheduler_class`). A missing or
        unreadable file raises :class:`GalaxySDFileError` naming it.
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
                    raise GalaxySDFileError(f"{what} {str(path)!r} is not valid JSON: {exc}") from exc

        def load(what: str, fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except GalaxySDFileError:
                raise
            except Exception as exc:  # any parse/shape error of a corrupt file
                raise GalaxySDFileError(f"could not load the {what} of {str(root)!r}: "
                                        f"{type(exc).__name__}: {exc}") from exc

        common = dict(use_safetensors=True, variant=variant)
        if torch_dtype is not None:
            common["torch_dtype"] = torch_dtype
        vae = load("vae (vae/)", lambda: AutoencoderKL.from_pretrained(root, subfolder="vae", **common))
        unet = load("unet (unet/)", lambda: UNet2DConditionModel.from_pretrained(root, subfolder="unet", **common))
        text_encoder = load("text encoder (text_encoder/)", lambda: CLIPTextModel.from_pretrained(
            root / "text_encoder", **common))
        tokenizer = load("tokenizer (tokenizer/)", lambda: AutoTokenizer.from_pretrained(root / "tokenizer"))
        scheduler_class = saved_scheduler_class(root)
        scheduler = load("scheduler (scheduler/)", lambda: scheduler_class.from_pretrained(root, subfolder="scheduler"))
        pipe = cls(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        for module in (vae, unet, text_encoder):
            module.eval()
        captions_file = root / TRAINING_CAPTIONS_FILE
        if captions_file.is_file():
            try:
                data = json.loads(captions_file.read_text())
                pipe.trained_features = {str(k): int(v) for k, v in data.get("feature_counts", {}).items()}
            except (ValueError, AttributeError, TypeError) as exc:
                raise GalaxySDFileError(f"{str(captions_file)!r} is corrupt: {exc}") from exc
        pipe.source_path = str(root)
        pipe.generation_defaults = GenerationDefaults.load(root) or FALLBACK
        pipe.sky_noise = SkyNoise.load(root)
        pipe.feature_defaults = FeatureDefaults.load(root)
        pipe.latent_mean = load_latent_mean(root, (unet.config.in_channels, unet.config.sample_size,
                                                   unet.config.sample_size))
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
        """Caption features among ``phrases`` the loaded model never saw in training (empty if unknown).

        Only GZ2 caption features count: the survey prefix ``"sdss"`` and free text are not features."""
        if self.trained_features is None:
            return []
        return [p for p in phrases if p in ANSWER_BY_PHRASE and self.trained_features.get(p, 0) == 0]

    def tree_negative_prompt(self, prompt: str) -> str:
        """Automatic negative prompt of ``prompt`` (:func:`galaxysd_core.pipelines.tree_negatives.tree_negative`):
        the other morphologies at the GZ2 tree's branch points it passes through, e.g.
        ``"sdss, smooth, star or artifact, edge-on galaxy"`` for ``"sdss, features or disk-shaped,
        spiral galaxy"``; ``""`` when the tree rules nothing out. Phrases weighted 0 do not count."""
        return tree_negative(self.parse(prompt))

    def make_scheduler(self, name: Optional[str] = None):
        """A fresh scheduler instance (never the shared one, so concurrent calls cannot corrupt state);
        names: :data:`galaxysd_core.pipelines.schedulers.SCHEDULERS`; None = the model's own class."""
        return make_scheduler(self.scheduler.config, name, default=type(self.scheduler))

    def parse(self, prompt: str) -> ParsedPrompt:
        """Parse a prompt with this model's vocabulary (strict for GalaxySD-mini)."""
        return parse_prompt(prompt, strict=self.strict_vocabulary)

    def parse_negative(self, text: Optional[str]) -> ParsedPrompt:
        """Parse a negative prompt; None or blank is the empty (unconditional) prompt."""
        if text is None or not str(text).strip():
            return ParsedPrompt(text="", words=(), weights=())
        return self.parse(text)

    # ------------------------------------------------------------------ image <-> latent
    def _image_to_tensor(self, image: Image.Image, height: int, width: int) -> torch.Tensor:
        """``(1, 3, height, width)`` VAE input in [-1, 1] of a start image (Lanczos resize)."""
        return self.image_processor.preprocess(image, height=height, width=width)

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
                 num_inference_steps: Optional[int] = None, guidance_scale: Optional[float] = None,
                 scheduler: Optional[str] = "ddim",
                 eta: float = 0.0, height: Optional[int] = None, width: Optional[int] = None,
                 image: Optional[Union[Image.Image, np.ndarray]] = None, strength: float = 0.6,
                 output_type: str = "pil", callback: Optional[Callable[[int, int], None]] = None,
                 return_dict: bool = True, tree_negatives: Optional[bool] = None,
                 sky_noise: Optional[bool] = None, latent_mean: Optional[bool] = None,
                 feature_guidance=None) -> GalaxySDPipelineOutput:
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
            In [1, 64] (all prompts together at most 64 images).
        seed : int or list of int, optional
            One seed (image ``i`` uses ``seed + i``; all must lie in [0, 2**63-1]) or one per image;
            random in [0, 2**31) when None.
        num_inference_steps : int, optional
            In [1, 200]; None = the model's recommended value (:attr:`generation_defaults`, 20 without one).
        guidance_scale : float, optional
            Classifier-free guidance scale in [0, 30]; <= 1 disables guidance; None = the model's
            recommended value (chosen from measurements at release, see its card; 6.5 without one).
        scheduler : {"ddim", "euler_a", "euler", "dpmpp"} or None
            Sampler; None = the class the model folder saved (DDIM for the shipped model).
        eta : float
            DDIM eta in [0, 1] (0 = deterministic sampler); other samplers ignore it.
        height, width : int, optional
            Output size in pixels (default: the training resolution).
        image : PIL.Image or ndarray, optional
            A real galaxy to start from (img2img), as PIL, a uint8 ``(H, W, 3)`` array or a float
            ``(H, W, 3)`` array in [0, 1]; GalaxySD's remedy for over-bright text-only samples.
        strength : float
            Fraction in (0, 1] of the noise schedule applied to ``image`` (1 = ignore the image).
        output_type : {"pil", "np", "latent"}
        callback : callable, optional
            ``callback(step, total_steps)`` after every denoising step.
        tree_negatives : bool, optional
            Use the automatic GZ2-tree negative prompt when ``negative_prompt`` is None (GalaxySD
            itself uses plain unconditional guidance: pass False to reproduce that); None = the
            model's recommended policy.
        sky_noise : bool, optional
            Add the model's measured SDSS sky noise after decoding (:mod:`~galaxysd_core.pipelines.sky_noise`;
            nothing for a model without ``sky_noise.json``); None = the model's recommendation.
        latent_mean : bool, optional
            Start text-to-image sampling around the training data's mean latent
            (:mod:`~galaxysd_core.pipelines.latent_mean`: dark SDSS skies instead of a grey fog;
            nothing for a model without ``latent_mean.safetensors``); None = use it when the folder has it.
        feature_guidance : dict or sequence of (phrase, scale), optional
            Guidance per feature (:mod:`~galaxysd_core.pipelines.feature_guidance`, composable
            diffusion): each phrase is taken out of the prompt (the *base*) and added back with its
            own scale ``s``: ``eps = eps(neg) + g (eps(base) - eps(neg)) + sum s (eps(base + f) -
            eps(base))``. ``s = 0`` = the base prompt alone, ``s = guidance_scale`` = plain CFG with
            the feature, larger extrapolates, negative pushes the feature away; every branch of a
            step runs in one batched UNet call. None or empty: plain CFG, bit-identical.
            ``"phrase=scale"`` strings are accepted (the CLI's ``--feature``).
        """
        d = self.generation_defaults
        return self._generate(prompt, negative_prompt, num_images_per_prompt, seed,
                              d.num_inference_steps if num_inference_steps is None else num_inference_steps,
                              d.guidance_scale if guidance_scale is None else guidance_scale,
                              scheduler, eta, height, width, image, strength, output_type, callback, return_dict,
                              d.tree_negatives if tree_negatives is None else tree_negatives,
                              d.sky_noise if sky_noise is None else sky_noise,
                              True if latent_mean is None else latent_mean, feature_guidance)

    def known_feature_phrases(self) -> Optional[List[str]]:
        """Phrases feature guidance accepts: the caption vocabulary for GalaxySD-mini, any text for SD 1.5."""
        if not self.strict_vocabulary:
            return None
        from galaxysd_core.prompts.grammar import known_phrases

        return list(known_phrases())

    def _generate(self, prompt, negative_prompt, num_images_per_prompt, seed, num_inference_steps, guidance_scale,
                  scheduler_name, eta, height, width, image, strength, output_type, callback, return_dict,
                  tree_negatives=True, sky_noise=False, latent_mean=False, feature_guidance=None):
        # 1. Check inputs: prompts parsed once, seeds, a fresh sampler, the start image as 8-bit RGB
        checked = check_inputs(self, prompt, negative_prompt, num_images_per_prompt, seed, num_inference_steps,
                               guidance_scale, scheduler_name, height, width, image, strength, output_type, eta)
        prompts, parsed, seeds, scheduler = checked.prompts, checked.parsed, checked.seeds, checked.scheduler
        num_images_per_prompt, num_inference_steps = checked.num_images_per_prompt, checked.num_inference_steps
        guidance_scale, eta, strength = checked.guidance_scale, checked.eta, checked.strength
        height = height or self.default_size
        width = width or self.default_size
        device = self._execution_device
        total = len(seeds)
        do_cfg = guidance_scale > 1.0
        features = normalize_features(feature_guidance, self.known_feature_phrases())
        branches = [branches_for(p, features) for p in parsed] if features else None
        scales = branches[0].scales if branches else ()

        # 2. Encode weighted prompts: the base prompt (without the guided features), one prompt per
        #    feature of non-zero scale, and the negative prompt (automatic from the intended prompt)
        max_length = text_max_length(self.tokenizer, self.text_encoder)

        def encode(items):
            e = encode_weighted_prompts(self.text_encoder, self.tokenizer, list(items), max_length, device)
            return e.repeat_interleave(num_images_per_prompt, dim=0)

        cond = encode(parsed if branches is None else [b.base for b in branches])
        for i in range(len(scales)):
            cond = torch.cat([cond, encode([b.with_feature[i] for b in branches])])
        negs, automatic = negative_prompts_for(parsed if branches is None else [b.intended for b in branches],
                                               negative_prompt, tree_negatives)
        if do_cfg:
            if checked.negatives is not None:
                neg_parsed = checked.negatives
            else:  # automatic GZ2-tree negatives (new texts: each distinct one parsed once) or unconditional
                by_text = {n: self.parse_negative(n) for n in dict.fromkeys(negs)}
                neg_parsed = [by_text[n] for n in negs]
            uncond = encode_weighted_prompts(self.text_encoder, self.tokenizer, neg_parsed, max_length, device)
            uncond = uncond.repeat_interleave(num_images_per_prompt, dim=0)
            embeddings = torch.cat([uncond, cond])
        else:
            embeddings = cond

        # 3. Timesteps of the call's own scheduler
        scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = scheduler.timesteps
        generators = cpu_generators(seeds)  # noise of a seed drawn on the CPU: the same on every device

        # 4. Prepare latents (pure noise, or a noised real galaxy)
        shape = (1, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        noise = initial_noise(shape, generators, device, self.unet.dtype)
        if checked.init_image is not None:
            x0 = self._image_to_tensor(checked.init_image, height, width).to(device=device, dtype=self.vae.dtype)
            init = self._to_latent(self.vae.encode(x0).latent_dist.mean).repeat(total, 1, 1, 1)
            t_start = num_inference_steps - img2img_steps(num_inference_steps, strength)
            timesteps = timesteps[t_start * scheduler.order:]
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(t_start * scheduler.order)
            latents = scheduler.add_noise(init.to(noise.dtype), noise, timesteps[:1].repeat(total))
        else:  # around the training data's mean latent when the folder has one (latent_mean.py)
            mean = self.latent_mean if latent_mean else None
            if mean is not None and tuple(mean.shape) != tuple(shape[1:]):
                mean = None  # another size than the training one: no measured mean for it
            latents = initial_latents(noise, mean, scheduler, timesteps[:1])
            latent_mean = mean is not None

        # 5. Denoising loop
        step_kwargs = {}
        step_params = set(inspect.signature(scheduler.step).parameters)
        if "generator" in step_params:
            step_kwargs["generator"] = generators
        if "eta" in step_params:
            step_kwargs["eta"] = eta
        n_steps = len(timesteps)
        with self.progress_bar(total=n_steps) as bar:
            n_branches = (2 if do_cfg else 1) + len(scales)
            for i, t in enumerate(timesteps):
                model_in = torch.cat([latents] * n_branches) if n_branches > 1 else latents
                model_in = scheduler.scale_model_input(model_in, t)
                eps = self.unet(model_in, t, encoder_hidden_states=embeddings).sample
                if scales:
                    eps = combine(eps, total, guidance_scale, do_cfg, scales)
                elif do_cfg:
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
            scheduler=(scheduler_name or scheduler_name_of(type(self.scheduler))), eta=float(eta),
            height=height, width=width, sky_noise=bool(sky_noise and self.sky_noise is not None),
            latent_mean=bool(latent_mean and image is None),
            strength=float(strength) if image is not None else None, init_image=image is not None,
            model=self.source_path, model_name=Path(self.source_path).name if self.source_path else None,
            feature_guidance=[[p, float(v)] for p, v in features],
        )
        all_prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(self._from_latent(latents).to(self.vae.dtype)).sample
            pixels = (decoded.float().clamp(-1, 1) + 1) * 127.5
            if parameters["sky_noise"]:  # seeded per image, after the sampler's draws
                pixels = pixels + sky_noise_fields(self.sky_noise, generators, height, width).to(pixels.device)
            arr = pixels.clamp(0, 255).round().to(torch.uint8)
            arr = arr.permute(0, 2, 3, 1).cpu().numpy()
            images = arr if output_type == "np" else [Image.fromarray(a) for a in arr]

        # 7. Output
        out = GalaxySDPipelineOutput(images=images, seeds=seeds, prompts=all_prompts, parameters=parameters,
                                     negative_prompts=[n for n in used_negs for _ in range(num_images_per_prompt)])
        return out if return_dict else (images,)
