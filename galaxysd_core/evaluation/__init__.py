"""Measuring models: metrics, real reference sets, generate-and-measure runs and sweeps, model
cards, sample grids and the release of a trained model."""
