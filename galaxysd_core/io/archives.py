"""Archives of generated images ("download all"): file names and one zip of PNG + FITS + manifest."""
from __future__ import annotations

import io
import json
import zipfile
from typing import Any, Dict, Iterable, List, Mapping, Optional

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.io.fits import fits_bytes
from galaxysd_core.io.png import png_bytes
from galaxysd_core.io.provenance import provenance


def image_file_name(index: int, seed: Optional[int], stem: str = "galaxysd") -> str:
    """File stem of the ``index``-th image: ``galaxysd_003_seed42``."""
    return f"{stem}_{int(index):03d}" + (f"_seed{int(seed)}" if seed is not None else "")


def zip_images(items: Iterable[Any], *, include_fits: bool = True, fits_dtype: str = "float32",
               stem: str = "galaxysd") -> bytes:
    """One zip with a PNG (and FITS) per image and a ``manifest.json`` of all settings ("download all").

    Parameters
    ----------
    items : iterable
        Objects with attributes (or mappings with keys) ``image``, ``prompt``, ``seed`` and
        ``parameters``, e.g. :class:`galaxysd_core.studio.generation.GalleryItem`.
    include_fits : bool
        Also write ``<name>.fits``.
    fits_dtype : {"float32", "uint8"}
    stem : str
        File name prefix.

    Returns
    -------
    bytes
        Zip archive content (deflated).

    Raises
    ------
    GalaxySDValueError
        When ``items`` is empty.
    """
    def get(item: Any, key: str) -> Any:
        return item[key] if isinstance(item, Mapping) else getattr(item, key)

    manifest: List[Dict[str, Any]] = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, item in enumerate(items):
            image, prompt, seed = get(item, "image"), get(item, "prompt"), get(item, "seed")
            params = get(item, "parameters") or {}
            name = image_file_name(i, seed, stem)
            zf.writestr(f"{name}.png", png_bytes(image, prompt, seed, params))
            if include_fits:
                zf.writestr(f"{name}.fits", fits_bytes(image, prompt, seed, params, dtype=fits_dtype))
            manifest.append({"file": f"{name}.png", **provenance(prompt, seed, params)})
        if not manifest:
            raise GalaxySDValueError("no images to put in the zip; generate some first")
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return buf.getvalue()
