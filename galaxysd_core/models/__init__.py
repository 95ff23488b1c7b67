"""Networks: builders of the GalaxySD-mini components (diffusers / transformers classes) and the
compact morphology classifier."""
