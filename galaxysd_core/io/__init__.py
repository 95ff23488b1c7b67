"""Files out and in: PNG with AUTOMATIC1111 parameters, FITS with provenance, archives and
validated uploads."""
