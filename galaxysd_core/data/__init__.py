"""Real data in: the only code that knows file layouts (GZ2 release, catalog + images, vote
tables), the resumable GZ2 download, safe image decoding and the prepared training cache."""
