"""Downstream science: synthetic sets, the augmentation experiment, the D-ETG search, fast
scanning of catalogs and candidate catalogs.

Modules, in the order they build on each other: ``binary_tasks`` (rare-class tasks on the real
data) -> ``binary_training`` (one-head detectors, focal loss, oversampling, metrics) ->
``synthetic`` (generator and synthetic-image cache) -> ``augmentation`` / ``augmentation_report``
(the augmentation experiment and its written results); ``scan_worker`` -> ``scan`` (scoring image
files at survey scale) -> ``detg_config`` / ``detg_heldout`` / ``detg_catalog`` -> ``detg_search``
(the dusty early-type search); ``candidates`` (reading and vetting candidate catalogs);
``script_support`` (what the ``train/`` science scripts share)."""
