""""More like this" (science.similarity): neighbours against a brute-force cosine ranking, the index
cache (rebuilt when the catalog changes, never pickled), errors, and `galaxysd detg similar`."""
from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.science.similarity import SimilarityIndex, cached_index


def _index(n=200, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return SimilarityIndex(ids=[f"g{i}" for i in range(n)], embeddings=rng.normal(size=(n, d))), rng


def test_neighbours_match_a_brute_force_cosine_ranking():
    index, rng = _index()
    e = index.embeddings
    cos = e @ e[7]
    expect = [f"g{i}" for i in np.argsort(-cos) if i != 7][:10]
    res = index.similar("g7", 10)
    assert list(res["id"]) == expect and "g7" not in set(res["id"])
    np.testing.assert_allclose(res["similarity"], np.sort(cos)[::-1][1:11], atol=1e-5)
    q = rng.normal(size=16)
    out = index.similar_to_embedding(q, 5)
    qn = q / np.linalg.norm(q)
    assert list(out["id"]) == [f"g{i}" for i in np.argsort(-(e @ qn))[:5]]


@pytest.mark.parametrize("call, match", [
    (lambda ix: ix.similar("nope"), "not in this catalog"),
    (lambda ix: ix.similar("g1", 0), "k must be"),
    (lambda ix: ix.similar("g1", 200), "k must be"),
    (lambda ix: ix.similar_to_embedding(np.ones(3), 2), "embedding has 3"),
])
def test_bad_queries_are_refused_clearly(call, match):
    index, _ = _index()
    with pytest.raises(GalaxySDValueError, match=match):
        call(index)
    with pytest.raises(GalaxySDValueError, match="unique"):
        SimilarityIndex(ids=["a", "a"], embeddings=np.ones((2, 3)))


def test_cache_is_reused_and_rebuilt_when_the_catalog_changes(tmp_path):
    cat = tmp_path / "c.csv"
    cat.write_text("id,score,image_path\n")
    built = []

    def build():
        built.append(1)
        return _index(n=20)[0]

    a = cached_index(cat, tmp_path / "cache", "clf1", build)
    b = cached_index(cat, tmp_path / "cache", "clf1", build)
    assert len(built) == 1 and a.ids == b.ids and np.allclose(a.embeddings, b.embeddings)
    cached_index(cat, tmp_path / "cache", "clf2", build)  # another classifier: another index
    assert len(built) == 2
    cat.write_text("id,score,image_path\nx,1,y\n")
    os.utime(cat, (time.time() + 5, time.time() + 5))
    cached_index(cat, tmp_path / "cache", "clf1", build)
    assert len(built) == 3
    f = next((tmp_path / "cache").glob("*.npz"))
    f.write_bytes(b"garbage")
    with pytest.raises(GalaxySDFileError, match="unreadable"):
        SimilarityIndex.load(f)


def test_cli_similar_on_a_toy_catalog(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from galaxysd_core.cli import main as cli_main

    monkeypatch.setenv("GALAXYSD_HOME", str(tmp_path / "home"))
    y, x = np.mgrid[:48, :48] - 24
    rows = []
    for i in range(6):
        a, b = (3 + i, 3 + i) if i < 3 else (12, 2 + 0.3 * i)  # three round and three elongated blobs
        g = 230 * np.exp(-0.5 * ((x / a) ** 2 + (y / b) ** 2))
        Image.fromarray(np.clip(g, 0, 255).astype(np.uint8)[..., None].repeat(3, -1)).save(tmp_path / f"g{i}.png")
        rows.append({"id": f"g{i}", "score": 1 - i / 10, "image_path": f"g{i}.png"})
    pd.DataFrame(rows).to_csv(tmp_path / "cat.csv", index=False)
    rc = cli_main(["detg", "similar", "--catalog", str(tmp_path / "cat.csv"), "g4", "-k", "2",
                   "--out", str(tmp_path / "sim.csv")])
    assert rc == 0
    sim = pd.read_csv(tmp_path / "sim.csv")
    assert set(sim["id"]) == {"g3", "g5"}  # the other elongated blobs
    assert list((tmp_path / "home" / "similarity").glob("*.npz"))  # the index is cached
    assert cli_main(["detg", "similar", "--catalog", str(tmp_path / "cat.csv"), "zz"]) == 2
    assert "not in this catalog" in capsys.readouterr().err
