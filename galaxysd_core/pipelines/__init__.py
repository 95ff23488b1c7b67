"""The GalaxySD diffusion pipeline (txt2img and img2img; ``pipeline_galaxysd``) and what it is
made of: input limits and checks (``inputs``), samplers by name (``schedulers``), the automatic
GZ2-tree negative prompt (``tree_negatives``), the model-folder layout (``model_folder``) and the
output dataclass (``output``). One code path for the shipped mini model and a full Stable
Diffusion 1.5 folder."""
