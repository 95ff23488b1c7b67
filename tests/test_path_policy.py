"""Server paths a visitor may reach (galaxysd_core.studio.path_policy): allow-list, symlinks, '..'."""
from __future__ import annotations

import os

import pytest

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.studio.path_policy import MAX_CATALOG_UPLOAD_BYTES, PathPolicy, is_inside, resolve_inside


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "data"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "cat.csv").write_text("id,score,image_path\n")
    (tmp_path / "secret.txt").write_text("CANARY-SECRET")
    os.symlink(tmp_path / "secret.txt", r / "link_out.csv")
    os.symlink(r / "sub" / "cat.csv", r / "link_in.csv")
    return r


def test_typed_paths_are_refused_unless_enabled(root):
    with pytest.raises(GalaxySDValueError, match="disabled on this server; upload"):
        PathPolicy({"real-data folder": root}, allow_typed=False).check_typed(str(root / "sub" / "cat.csv"))


@pytest.mark.parametrize("text", ["/proc/self/environ", "/etc/passwd", "../../etc/passwd", "sub/../../secret.txt",
                                  "link_out.csv"])
def test_paths_outside_the_roots_are_refused_without_content(root, text):
    policy = PathPolicy({"real-data folder": root}, allow_typed=True)
    with pytest.raises(GalaxySDValueError) as info:
        policy.check_typed(text, what="catalog file")
    msg = str(info.value)
    assert "outside the folders this server allows (real-data folder)" in msg
    assert "CANARY" not in msg and "root:" not in msg and str(root) not in msg


def test_paths_inside_are_resolved(root):
    policy = PathPolicy({"real-data folder": root}, allow_typed=True)
    assert policy.check_typed("sub/cat.csv") == (root / "sub" / "cat.csv").resolve()
    assert policy.check_typed(str(root / "link_in.csv")) == (root / "sub" / "cat.csv").resolve()
    assert policy.check_typed("sub", kind="dir") == (root / "sub").resolve()
    with pytest.raises(GalaxySDValueError, match="no catalog file at 'sub/nope.csv'"):
        policy.check_typed("sub/nope.csv", what="catalog file")


def test_image_paths_stay_inside_their_root(root):
    assert resolve_inside("sub/cat.csv", root) == (root / "sub" / "cat.csv").resolve()
    for bad in ("/etc/passwd", "../secret.txt", "sub/../../secret.txt", "link_out.csv", "~/x.png", ""):
        assert resolve_inside(bad, root) is None, bad
    assert is_inside(root / "sub", root) and not is_inside(root / "link_out.csv", root)


def test_upload_size_limit():
    PathPolicy().check_upload_size(MAX_CATALOG_UPLOAD_BYTES)
    with pytest.raises(GalaxySDValueError, match="at most 20 MiB"):
        PathPolicy().check_upload_size(MAX_CATALOG_UPLOAD_BYTES + 1)


def test_policy_from_config(monkeypatch, root):
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(root))
    monkeypatch.delenv("GALAXYSD_ALLOW_SERVER_PATHS", raising=False)
    policy = PathPolicy.from_config()
    assert not policy.allow_typed and "real-data folder" in policy.roots
    monkeypatch.setenv("GALAXYSD_ALLOW_SERVER_PATHS", "1")
    assert PathPolicy.from_config().allow_typed


def test_a_relative_link_out_of_one_root_is_refused_even_when_other_roots_exist(root, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    policy = PathPolicy({"catalogs folder": root, "model folder": other}, allow_typed=True)
    with pytest.raises(GalaxySDValueError, match="outside the folders this server allows") as info:
        policy.check_typed("link_out.csv", what="catalog file")  # a link out of the first root
    assert "CANARY" not in str(info.value)
    with pytest.raises(GalaxySDValueError, match="no catalog file at 'nope.csv'"):
        policy.check_typed("nope.csv", what="catalog file")  # inside every root, just missing
