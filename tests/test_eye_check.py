"""The shipped eye check of a candidate catalog (science/eye_check.py) and the one of the shipped D-ETG catalog."""
import json
from pathlib import Path

import pandas as pd
import pytest

from galaxysd_core.errors import GalaxySDFileError
from galaxysd_core.science.eye_check import EYE_CHECK_FILE, eye_check_sentence, read_eye_check

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "detg_candidates"


def test_reads_validates_and_describes(tmp_path):
    cat = tmp_path / "candidates.csv"
    assert read_eye_check(cat) is None and read_eye_check(None) is None
    (tmp_path / EYE_CHECK_FILE).write_text(json.dumps({
        "top_n": 50, "confirmed": 1, "confirmed_ids": ["J1"], "possible_ids": ["J2", "J3"],
        "criterion": "visible dust lane on an early-type host", "checked_by": "dev", "date": "2026-12-01"}))
    check = read_eye_check(cat)
    assert eye_check_sentence(check) == ("Eye check of the top 50 (dev, 2026-12-01): 1 show a visible dust lane on an "
                                         "early-type host (J1); 2 possible (J2, J3).")
    (tmp_path / EYE_CHECK_FILE).write_text(json.dumps({"top_n": 50, "confirmed": 2, "confirmed_ids": ["J1"]}))
    with pytest.raises(GalaxySDFileError, match="one id per confirmed"):
        read_eye_check(cat)
    (tmp_path / EYE_CHECK_FILE).write_text("secret-content{")
    with pytest.raises(GalaxySDFileError, match=EYE_CHECK_FILE) as info:
        read_eye_check(cat)
    assert "secret-content" not in str(info.value)


def test_the_shipped_check_names_candidates_of_the_shipped_top():
    check = read_eye_check(SHIPPED / "candidates.csv")
    if check is None:
        pytest.skip("no eye check shipped with assets/detg_candidates")
    top = pd.read_csv(SHIPPED / "candidates.csv", dtype={"id": str}).head(check["top_n"])
    assert set(check["confirmed_ids"]) | set(check["possible_ids"]) <= set(top["id"])
    assert not set(check["confirmed_ids"]) & set(check["possible_ids"])
