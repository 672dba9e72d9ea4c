"""The viewer page and its server, without a browser: what the page embeds, errors, and the local HTTP server."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request

import numpy as np
import pytest

from facerl.audio import write_wav
from facerl.errors import FacerlError
from facerl.export.curves import ArkitCurves
from facerl.export.gltf import write_glb
from facerl.head.rig import load_head
from facerl.view import build_page, default_labels, start_server, view_main


@pytest.fixture(scope="module")
def glb(tmp_path_factory):
    head = load_head()
    path = tmp_path_factory.mktemp("glb") / "sup.glb"
    write_glb(path, ArkitCurves(np.full((6, 52), 0.1, np.float32), 30.0), head.vertices, head.faces,
              head.blendshapes)
    return path


def page_data(html: str) -> dict:
    return json.loads(re.search(r'id="facerl-data">(.*?)</script>', html, re.DOTALL).group(1))


def test_page_embeds_glbs_audio_and_the_viewer(tmp_path, glb):
    wav = tmp_path / "speech.wav"
    write_wav(wav, np.zeros(1600, np.float32))
    html = build_page([glb, glb], ["supervised", "RL </script><b>"], wav)
    data = page_data(html)
    assert [v["label"] for v in data["views"]] == ["supervised", "RL </script><b>"]
    assert base64.b64decode(data["views"][1]["glb"]) == glb.read_bytes()
    assert data["audio"]["mime"] == "audio/wav" and base64.b64decode(data["audio"]["data"]) == wav.read_bytes()
    assert "<b>" not in html and "function parseGLB" in html  # label escaped, viewer inline
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|https?://", html)  # nothing fetched: works offline


def test_page_errors(tmp_path, glb):
    with pytest.raises(FacerlError, match="1 or 2"):
        build_page([glb] * 3)
    with pytest.raises(FacerlError, match="labels"):
        build_page([glb], ["a", "b"])
    (tmp_path / "x.glb").write_text("{}")
    with pytest.raises(FacerlError, match="not a GLB"):
        build_page([tmp_path / "x.glb"])
    with pytest.raises(FacerlError, match="unsupported type"):
        build_page([glb], audio=glb)
    with pytest.raises(FacerlError, match="not found"):
        build_page([tmp_path / "missing.glb"])


def test_default_labels():
    assert default_labels(["runs/a/sup.glb", "runs/b/rl.glb"]) == ["sup", "rl"]
    assert default_labels(["runs/sup/a.glb", "runs/rl/a.glb"]) == ["sup/a", "rl/a"]


def test_server_serves_the_page_on_a_free_local_port(glb):
    html = build_page([glb])
    server, url = start_server(html, port=0)
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/html") and r.read().decode() == html
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(url + "other.js", timeout=10)
        with pytest.raises(FacerlError, match="in use"):
            start_server(html, port=server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_view_main_writes_the_page(tmp_path, glb, capsys):
    out = tmp_path / "page.html"
    assert view_main([glb], out_html=out, open_browser=False) == 0
    assert page_data(out.read_text())["views"][0]["label"] == "sup"
    assert "self-contained" in capsys.readouterr().out
