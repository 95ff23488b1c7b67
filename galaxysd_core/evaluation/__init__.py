"""Measuring models: metrics, real reference sets, generate-and-measure runs and sweeps, the quality
bar, model cards, sample grids and the release of a trained model (and of the classifier).

* :mod:`.metrics`: consistency, distribution and light-profile metrics;
* :mod:`.config`, :mod:`.reference`, :mod:`.runner`, :mod:`.checkpoints`: evaluation runs;
* :mod:`.quality_bar`, :mod:`.model_card`, :mod:`.sample_grid`, :mod:`.release`: shipping a model;
* :mod:`.classifier_release`: training, measuring and documenting the morphology classifier.
"""
