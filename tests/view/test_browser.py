"""The viewer in a real headless Chromium (software WebGL): seeking to an open vowel and to a bilabial changes the
mouth's pixels and nothing on the forehead; two GLBs side by side; audio embedded and driving the frame.

Skips when no Chromium binary is found (Debian: apt-get install chromium; FACERL_CHROMIUM=path overrides)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facerl.audio import SAMPLE_RATE, write_wav
from facerl.export.curves import ArkitCurves
from facerl.export.gltf import write_glb
from facerl.head.arkit import ARKIT_INDEX
from facerl.head.rig import load_head
from facerl.render.commands import head_vertex_colors
from facerl.view import write_page
from tests.view.chromium import Chromium, find_chromium

FPS, T = 30.0, 30
OPEN, CLOSED = 8, 20  # frame of an open vowel (jawOpen 0.8) and of a bilabial (lips pressed, jaw closed)
BINARY = find_chromium()
pytestmark = pytest.mark.skipif(BINARY is None, reason="no Chromium binary (chromium, chromium-browser, "
                                "google-chrome) on PATH: apt-get install chromium to run the browser tests")


def viseme_curves(jaw: float = 0.8) -> ArkitCurves:
    """1 s: an /a/ peaking at frame OPEN, then a /b/ around frame CLOSED: lips pressed (mouthPress), jaw shut and
    mouthClose equal to jawOpen (ARKit's convention: mouthClose cancels the jaw's lip separation)."""
    w = np.zeros((T, 52), np.float32)
    for df, scale in ((-2, 0.4), (-1, 0.85), (0, 1.0), (1, 0.85), (2, 0.4)):
        w[OPEN + df, ARKIT_INDEX["jawOpen"]] = jaw * scale
    for f in range(CLOSED - 2, CLOSED + 3):
        w[f, [ARKIT_INDEX["jawOpen"], ARKIT_INDEX["mouthClose"]]] = 0.03
        w[f, [ARKIT_INDEX["mouthPressLeft"], ARKIT_INDEX["mouthPressRight"]]] = 0.7
        w[f, ARKIT_INDEX["mouthRollLower"]] = 0.1
    return ArkitCurves(w, FPS, audio="speech.wav")


@pytest.fixture(scope="module")
def head():
    return load_head()


@pytest.fixture(scope="module")
def glbs(tmp_path_factory, head):
    root = tmp_path_factory.mktemp("view")
    paths = []
    for name, jaw in (("supervised", 0.8), ("rl", 0.4)):
        paths.append(root / f"{name}.glb")
        write_glb(paths[-1], viseme_curves(jaw), head.vertices, head.faces, head.blendshapes,
                  head_vertex_colors(head))
    wav = root / "speech.wav"
    t = np.arange(int(SAMPLE_RATE * T / FPS)) / SAMPLE_RATE
    write_wav(wav, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    return paths, wav


@pytest.fixture(scope="module")
def browser():
    with Chromium(BINARY, width=900, height=760) as chromium:
        yield chromium


def open_page(browser: Chromium, page, frame: int) -> None:
    url = page.resolve().as_uri() + f"#frame={frame}"
    browser.navigate(url)
    browser.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete' && "
                     f"window.facerlReady && window.facerl.frame === {frame}")
    assert browser.evaluate("window.facerl.error") is None


def seek(browser: Chromium, frame: int) -> np.ndarray:
    browser.evaluate(f"location.hash = '#frame={frame}'")
    browser.wait_for(f"window.facerlReady && window.facerl.frame === {frame}")
    assert browser.evaluate("document.title") == f"facerl ready frame={frame}"
    return browser.screenshot().astype(np.float32)


def box(browser: Chromium, view: int, vertices: np.ndarray, pad: int = 0) -> tuple[slice, slice]:
    """Screenshot rows/cols around ``vertices`` as the viewer projects them in view ``view``."""
    xy = np.array(browser.evaluate(f"facerl.project({view}, {json.dumps(vertices.tolist())})"))  # (N, 2) px
    (x0, y0), (x1, y1) = np.floor(xy.min(0)).astype(int) - pad, np.ceil(xy.max(0)).astype(int) + pad
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)


def union(a: tuple[slice, slice], b: tuple[slice, slice]) -> tuple[slice, slice]:
    return tuple(slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(a, b, strict=True))


def dark_share(img: np.ndarray, region: tuple[slice, slice], level: float = 100.0) -> float:
    luma = img[region] @ np.array([0.299, 0.587, 0.114], np.float32)
    return float((luma < level).mean())


def test_open_vowel_and_bilabial_frames_differ_at_the_mouth_only(tmp_path, browser, glbs, head):
    page = write_page(tmp_path / "one.html", glbs[0][:1])
    open_page(browser, page, 0)
    vowel = seek(browser, OPEN)
    mouth_open = box(browser, 0, head.regions["lips"])
    gap_open = np.ptp(np.array(browser.evaluate(f"facerl.project(0, {head.regions['inner_lip_pair'].tolist()})"))[:, 1])
    forehead = box(browser, 0, head.regions["forehead"])
    bilabial = seek(browser, CLOSED)
    mouth = union(mouth_open, box(browser, 0, head.regions["lips"]))
    gap_closed = np.ptp(np.array(browser.evaluate(f"facerl.project(0, {head.regions['inner_lip_pair'].tolist()})"))[:, 1])
    again = seek(browser, OPEN)

    assert mouth[0].stop - mouth[0].start > 40 and mouth[1].stop - mouth[1].start > 60  # the face fills the view
    assert gap_open > 20 and gap_closed < 5  # inner-lip gap in pixels
    mouth_change = np.abs(vowel[mouth] - bilabial[mouth]).mean()
    dark_open, dark_closed = dark_share(vowel, mouth), dark_share(bilabial, mouth)
    forehead_change = np.abs(vowel[forehead] - bilabial[forehead]).mean()
    print(f"mouth box {mouth}: mean |diff| {mouth_change:.1f}, dark share {dark_open:.3f} (open) vs "
          f"{dark_closed:.3f} (bilabial); forehead mean |diff| {forehead_change:.3f}")
    assert mouth_change > 15.0  # grey levels, mean over the mouth box
    assert dark_open > 2 * dark_closed and dark_open - dark_closed > 0.1  # the open mouth's cavity
    assert forehead_change < 1.0
    assert np.abs(again - vowel).max() == 0  # seeking is deterministic


def test_two_glbs_side_by_side_with_embedded_audio(tmp_path, browser, glbs, head):
    (sup, rl), wav = glbs
    page = write_page(tmp_path / "two.html", [sup, rl], ["supervised", "RL"], wav)
    open_page(browser, page, OPEN)
    views = browser.evaluate("facerl.views.map(v => v.label)")
    labels = browser.evaluate("[...document.querySelectorAll('.view .label')].map(e => e.textContent)")
    assert views == labels == ["supervised", "RL"]
    img = browser.screenshot().astype(np.float32)
    left, right = box(browser, 0, head.regions["lips"]), box(browser, 1, head.regions["lips"])
    assert left[1].stop < right[1].start  # two heads next to each other
    assert dark_share(img, left) > dark_share(img, right) + 0.05  # supervised opens wider (jaw 0.8 vs 0.4)

    browser.wait_for("facerl.audio && facerl.audio.readyState >= 1")
    assert browser.evaluate("facerl.audio.duration") == pytest.approx(T / FPS, abs=0.01)
    browser.evaluate("location.hash = '#t=0.5'")
    browser.wait_for("window.facerl.frame === 15")
    assert browser.evaluate("facerl.audio.currentTime") == pytest.approx(0.5, abs=1e-3)

    # playing: the audio clock drives the frame. At half speed a wall-clock driver would run ahead of the sound:
    # after ~0.4 s of wall time the sound is ~0.2 s on, a wall clock ~0.4 s.
    browser.evaluate("facerl.audio.playbackRate = 0.5; document.getElementById('play').click()")
    browser.wait_for("facerl.audio.currentTime > 0.7 || facerl.audio.ended", timeout=10)
    lag, playing = browser.evaluate("[Math.abs(facerl.time - facerl.audio.currentTime), !facerl.audio.paused]")
    assert playing and lag < 2.0 / FPS                                     # measured while it plays
    browser.evaluate("document.getElementById('play').click()")  # pause
    t, frame, paused, error = browser.evaluate("[facerl.audio.currentTime, facerl.frame, facerl.audio.paused, "
                                               "facerl.audioError || null]")
    assert error is None and paused and abs(frame - t * FPS) <= 0.5 + 1e-6  # the frame shown is the sound's


def test_wireframe_toggle_and_orbit(tmp_path, browser, glbs):
    page = write_page(tmp_path / "wire.html", glbs[0][:1])
    open_page(browser, page, 0)
    shaded = browser.screenshot().astype(np.float32)
    browser.evaluate("document.getElementById('wire').click()")
    wire = browser.screenshot().astype(np.float32)
    assert np.abs(wire - shaded).mean() > 5
    browser.evaluate("location.hash = '#frame=0&wire=0&yaw=60'")
    browser.wait_for("!document.getElementById('wire').checked")
    turned = browser.screenshot().astype(np.float32)
    assert np.abs(turned - shaded).mean() > 5
