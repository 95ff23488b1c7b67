"""The GalaxySD diffusion pipeline (txt2img and img2img), its output and the automatic GZ2-tree
negative prompt. One code path for the shipped mini model and a full Stable Diffusion 1.5 folder."""
