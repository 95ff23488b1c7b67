"""The shipped eye check of a candidate catalog: how many of its top candidates a person looked at
and found to show what the catalog is after (here: a visible dust lane on an early-type host).

``eye_check.json`` next to the catalog (``assets/detg_candidates/eye_check.json``)::

    {"top_n": 50, "confirmed": 2, "confirmed_ids": ["...", "..."], "possible_ids": ["..."],
     "criterion": "visible dust lane on an early-type host", "checked_by": "...", "date": "2026-12-01",
     "how": "...", "notes": "..."}

The Candidates page shows it next to the catalog. It is the developers' look at the shipped
catalog, separate from the visitors' verdicts (:mod:`galaxysd_core.studio.store`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

from galaxysd_core.errors import GalaxySDFileError

__all__ = ["EYE_CHECK_FILE", "read_eye_check", "eye_check_sentence", "contact_sheet"]

EYE_CHECK_FILE = "eye_check.json"


def read_eye_check(catalog_path: Union[str, Path, None]) -> Optional[Dict[str, Any]]:
    """The eye check next to a catalog file, None when there is none.

    Raises
    ------
    GalaxySDFileError
        The file exists but is not a valid eye check (the message names the file, not its content).
    """
    if catalog_path is None:
        return None
    path = Path(catalog_path).parent / EYE_CHECK_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        top_n, confirmed = int(data["top_n"]), int(data["confirmed"])
        ids = [str(i) for i in data.get("confirmed_ids", [])]
        possible = [str(i) for i in data.get("possible_ids", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GalaxySDFileError(f"{str(path)!r} is not a valid eye-check file ({type(exc).__name__})") from exc
    if not (0 <= confirmed <= top_n) or (ids and len(ids) != confirmed):
        raise GalaxySDFileError(f"{str(path)!r}: need 0 <= confirmed <= top_n and one id per confirmed candidate")
    return {**data, "top_n": top_n, "confirmed": confirmed, "confirmed_ids": ids, "possible_ids": possible}


def eye_check_sentence(check: Dict[str, Any]) -> str:
    """``"Eye check of the top 50 (..., 2026-12-01): 2 show a visible dust lane on an early-type host (ids ...); 3 possible."``"""
    who = ", ".join(str(check[k]) for k in ("checked_by", "date") if check.get(k))
    text = (f"Eye check of the top {check['top_n']}" + (f" ({who})" if who else "") + f": {check['confirmed']} show "
            f"a {check.get('criterion', 'the sought feature')}")
    if check["confirmed_ids"]:
        text += f" ({', '.join(check['confirmed_ids'])})"
    if check["possible_ids"]:
        text += f"; {len(check['possible_ids'])} possible ({', '.join(check['possible_ids'])})"
    if check.get("early_type_hosts") is not None:
        text += f"; {int(check['early_type_hosts'])} early-type hosts"
    return text + "."


def contact_sheet(table, image_root: Union[str, Path], path: Union[str, Path], n: int = 50, per_row: int = 10,
                  px: int = 160, crop_fractions: Optional[Dict[str, float]] = None) -> Path:
    """A PNG of the first ``n`` rows of a ranked catalog, each at the crop its source was scanned at,
    labelled with its rank and score: what the developers look at for the eye check.

    Parameters
    ----------
    table : pandas.DataFrame
        Catalog rows (``rank``, ``score``, ``image_path``, ``source``), best first.
    image_root : path
        Folder ``image_path`` is relative to (the real-data folder).
    crop_fractions : dict, optional
        Source -> central crop of the scan (the catalog provenance's ``crop_fractions``).
    """
    from PIL import Image, ImageDraw

    from galaxysd_core.data.decode import load_image
    from galaxysd_core.errors import ImageRejected

    rows = table.head(int(n))
    k = len(rows)
    sheet = Image.new("RGB", (per_row * px, max(1, -(-k // per_row)) * (px + 14)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for i, r in enumerate(rows.itertuples()):
        crop = float((crop_fractions or {}).get(r.source, 1.0))
        try:
            img = Image.fromarray(load_image(str(Path(image_root) / r.image_path), px, crop))
        except ImageRejected:
            img = Image.new("RGB", (px, px), (80, 0, 0))
        x, y = (i % per_row) * px, (i // per_row) * (px + 14)
        sheet.paste(img, (x, y))
        draw.text((x + 3, y + px), f"#{r.rank} {r.score:.3f} {str(r.source)[:7]}", fill=(230, 230, 230))
    path = Path(path)
    sheet.save(path)
    return path
