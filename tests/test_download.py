"""Resumable, checksum-verified download against a local HTTP server (127.0.0.1, random port)."""
from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from galaxysd_core.data import download as dl
from galaxysd_core.errors import GalaxySDChecksumError, GalaxySDFileError

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _State:
    def __init__(self):
        self.files = {"/data.bin": PAYLOAD}
        self.requests = []          # (path, Range header or None)
        self.drop_after = None      # first full response stops after this many bytes
        self.honour_range = True


def _handler(state):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            body = state.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            if rng and state.honour_range:
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            chunk = body[start:]
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if state.drop_after is not None:
                cut, state.drop_after = state.drop_after, None
                self.wfile.write(chunk[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)

    return Handler


@pytest.fixture
def server():
    state = _State()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_plain_download_verified(server, tmp_path):
    p = dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, sha256=SHA256,
                         size=len(PAYLOAD), show_progress=False)
    assert p.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    # a verified existing file is not fetched again
    n = len(server.requests)
    dl.download_file(f"{server.url}/data.bin", p, md5=MD5, show_progress=False)
    assert len(server.requests) == n


def test_resume_from_part_file(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:40_000])
    p = dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, show_progress=False)
    assert p.read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", "bytes=40000-")]


def test_resume_after_dropped_connection(server, tmp_path):
    server.drop_after = 30_000
    p = dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, show_progress=False,
                         retries=2, chunk_size=4096)
    assert p.read_bytes() == PAYLOAD
    assert server.requests[0][1] is None
    assert server.requests[1][1] is not None and server.requests[1][1].startswith("bytes=")
    assert int(server.requests[1][1][6:-1]) > 0


def test_server_ignoring_range_restarts(server, tmp_path):
    server.honour_range = False
    (tmp_path / "data.bin.part").write_bytes(b"garbage" * 100)
    p = dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, show_progress=False)
    assert p.read_bytes() == PAYLOAD


def test_complete_part_file_416(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    p = dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, show_progress=False)
    assert p.read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes(server, tmp_path):
    with pytest.raises(GalaxySDChecksumError, match="md5"):
        dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin", md5="0" * 32, show_progress=False)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()
    with pytest.raises(GalaxySDChecksumError, match="size"):
        dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin", size=5, show_progress=False)


def test_corrupt_existing_file_is_replaced(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(b"old and wrong")
    p = dl.download_file(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, show_progress=False)
    assert p.read_bytes() == PAYLOAD


def test_http_error_and_unreachable(server, tmp_path):
    with pytest.raises(GalaxySDFileError, match="404"):
        dl.download_file(f"{server.url}/nope.bin", tmp_path / "x", show_progress=False)
    with pytest.raises(GalaxySDFileError, match="failed after"):
        dl.download_file("http://127.0.0.1:9/x.bin", tmp_path / "y", show_progress=False, retries=0, timeout=2)


def test_download_gz2_with_base_url_and_extract(server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("images/3.jpg", b"jpegbytes")
        zf.writestr("__MACOSX/images/._3.jpg", b"junk")
    archive = buf.getvalue()
    server.files["/gz2_filename_mapping.csv"] = b"objid,sample,asset_id\n1,original,3\n"
    server.files["/images_gz2.zip"] = archive
    files = [dl.RemoteFile("gz2_filename_mapping.csv", "http://invalid.example/x",
                           md5=hashlib.md5(server.files["/gz2_filename_mapping.csv"]).hexdigest()),
             dl.RemoteFile("images_gz2.zip", "http://invalid.example/y", md5=hashlib.md5(archive).hexdigest())]
    paths = dl.download_gz2(tmp_path, files=files, base_url=server.url + "/", show_progress=False, extract=True)
    assert (tmp_path / "gz2_filename_mapping.csv").is_file()
    assert (tmp_path / "images_gz2" / "images" / "3.jpg").read_bytes() == b"jpegbytes"
    assert not (tmp_path / "images_gz2" / "__MACOSX").exists()
    assert paths[-1] == tmp_path / "images_gz2"


def test_unsafe_zip_refused(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../outside.txt", b"x")
    with pytest.raises(GalaxySDFileError, match="unsafe"):
        dl.extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()


def test_published_files(monkeypatch):
    monkeypatch.delenv(dl.BASE_URL_ENV, raising=False)
    names = [f.name for f in dl.GZ2_FILES]
    assert names == ["gz2_filename_mapping.csv", "gz2_hart16.csv.gz", "images_gz2.zip"]
    assert all(f.md5 is None or len(f.md5) == 32 for f in dl.GZ2_FILES)
    assert dl.file_by_name("images_gz2.zip").url("http://mirror/") == "http://mirror/images_gz2.zip"
    assert "zenodo.org/records/3565489" in dl.file_by_name("images_gz2.zip").url()
