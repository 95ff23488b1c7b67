"""Downstream science: synthetic sets, the augmentation experiment, the D-ETG detector experiment,
fast scanning of catalogs and candidate catalogs.

Modules, in the order they build on each other: ``vote_truth`` (truths from GZ2 votes: dust
lanes, early types, D-ETGs) -> ``binary_tasks`` (rare-class tasks on the real data) ->
``binary_training`` (one-head detectors, focal loss, oversampling, soft labels, metrics) and
``detection_metrics`` (ROC AUC, AP, recall in the top k %) -> ``synthetic`` (generator and
synthetic-image cache) -> ``augmentation`` / ``augmentation_report`` (the augmentation experiment
and its written results); ``detg_components`` (classifier v2: early-type gate, predicted dust-lane
votes) -> ``scan_worker`` -> ``scan`` (scoring image files at survey scale, local/Dask/Ray) ->
``detg_config`` -> ``detg_data`` -> ``detg_experiment`` -> ``detg_results`` (the D-ETG detector
arms, their held-out test and detector folders) -> ``sky_positions`` / ``detg_catalog`` (ranked
D-ETG catalogs of any catalog); ``candidates`` (reading and vetting candidate catalogs);
``script_support`` (what the ``train/`` science scripts share)."""
