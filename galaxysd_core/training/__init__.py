"""Training on accelerate: the VAE, the latent cache, the UNet and text encoder, schedules,
checkpoints, and the morphology classifier."""
