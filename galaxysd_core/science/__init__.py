"""Downstream science: synthetic sets, the augmentation experiment, the D-ETG search, fast
scanning of catalogs and candidate catalogs."""
