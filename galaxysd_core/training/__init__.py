"""Training on accelerate: run settings (``config``), training data and caption augmentation
(``data``), the VAE stage (``vae``), the latent cache (``latent_cache``), the UNet and text-encoder
stage (``diffusion``), learning-rate schedules (``schedules``), checkpoints (``checkpoints``),
validation grids and model folders (``snapshots``), and the morphology classifier."""
