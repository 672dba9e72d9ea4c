"""The live page in a real headless Chromium whose microphone is a wav (``--use-fake-device-for-media-stream
--use-file-for-fake-audio-capture``): AudioWorklet capture -> 16 kHz PCM16 -> WebSocket -> frames -> the head.

* with the tiny trained streaming actor: frames arrive at 30 per second of audio, and they are exactly what an
  Animator makes of the PCM the page sent;
* with a level-driven stand-in for the model (jawOpen follows the loudness of each frame's audio; a 2-epoch
  actor does not open its mouth reliably, so the model cannot be the judge of the page's audio path): the
  mouth opens during speech and not in silence, the page's audio follows the wav's loudness, and a frame of
  speech shows an open mouth on screen where a frame of silence does not.

Skips when no Chromium binary is found (Debian: apt-get install chromium; FACERL_CHROMIUM=path overrides)."""

from __future__ import annotations

import base64
import contextlib
import json
import time

import numpy as np
import pytest
from scipy.signal import correlate

import tests.view.chromium as chromium_driver
from facerl.audio import read_wav, resample, write_wav
from facerl.head.arkit import ARKIT_INDEX
from facerl.head.rig import load_head
from facerl.stream.server import AnimatorPool, ServerThread
from tests.stream.test_server import stream_checkpoint
from tests.view.chromium import Chromium, find_chromium

BINARY = find_chromium()
pytestmark = pytest.mark.skipif(BINARY is None, reason="no Chromium binary (chromium, chromium-browser, "
                                "google-chrome) on PATH: apt-get install chromium to run the browser tests")
MIC_RATE = 48_000             # what a real microphone gives; the page resamples to 16 kHz itself
SILENCE_S, STREAM_S = 1.5, 5.5
JAW = ARKIT_INDEX["jawOpen"]


@pytest.fixture(scope="module")
def mic_wav(tiny_corpus, tmp_path_factory):
    """1.5 s of silence, ~3 s of corpus speech, silence: 48 kHz mono PCM16 (Chromium loops it)."""
    speech = np.concatenate([read_wav(w) for w in sorted((tiny_corpus / "wav").glob("*.wav"))[:1]])[: 3 * 16000]
    audio = np.concatenate([np.zeros(int(SILENCE_S * 16000)), speech, np.zeros(3 * 16000)]).astype(np.float32)
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    write_wav(path, resample(audio, 16000, MIC_RATE), MIC_RATE)
    return path, audio


@pytest.fixture(scope="module")
def browser(mic_wav):
    flags = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={mic_wav[0]}")
    with pytest.MonkeyPatch.context() as mp:  # the driver has no extra-flags argument: extend its flag list
        mp.setattr(chromium_driver, "FLAGS", chromium_driver.FLAGS + flags)
        browser = Chromium(BINARY, width=900, height=760)
    with contextlib.closing(browser):
        yield browser


class LevelAnimator:
    """A stand-in for the model with the Animator's interface: frame i's jawOpen = 8 x the RMS of its audio
    (samples [i, i+1) * 16000 / 30), the other 51 weights 0; no look-ahead."""

    fps, lookahead_ms = 30, 0.0

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.audio, self.next = np.zeros(0, np.float32), 0

    def push(self, pcm: np.ndarray):
        from facerl.stream import Frame

        self.audio = np.concatenate([self.audio, pcm.astype(np.float32) / 32768])
        out = []
        while round((self.next + 1) * 16000 / 30) <= len(self.audio):
            lo, hi = round(self.next * 16000 / 30), round((self.next + 1) * 16000 / 30)
            w = np.zeros(52, np.float32)
            w[JAW] = min(1.0, 8.0 * float(np.sqrt(np.mean(self.audio[lo:hi] ** 2))))
            out.append(Frame(self.next, self.next / 30, w))
            self.next += 1
        return out

    def flush(self):
        frames = self.push(np.zeros(534, np.int16))
        self.reset()
        return frames


class LevelPool:
    fps, lookahead_ms, n_vertices = 30, 0.0, 0

    def new(self, vertices: bool) -> LevelAnimator:
        return LevelAnimator()


def run_live(browser: Chromium, url: str, seconds: float) -> dict:
    """Open the live page, stream ``seconds`` of microphone audio, stop, wait for the server's done."""
    browser.navigate(url + "?autostart=1&record=1")
    browser.wait_for("window.facerlLive && (facerlLive.state === 'streaming' || facerlLive.error)", timeout=30)
    assert browser.evaluate("facerlLive.error") is None
    t0 = time.monotonic()
    browser.wait_for(f"facerlLive.samplesSent >= {int(seconds * 16000)} || facerlLive.error", timeout=seconds + 20)
    wall = time.monotonic() - t0
    mid = browser.evaluate("[facerlLive.frames, facerlLive.samplesSent, "
                           "facerlLive.lastFrameAt - facerlLive.firstFrameAt]")
    browser.evaluate("facerlLive.stop()")
    browser.wait_for("facerlLive.state === 'done' || facerlLive.error", timeout=20)
    state = browser.evaluate("({error: facerlLive.error, frames: facerlLive.frames, samples: facerlLive.samplesSent, "
                             "rate: facerlLive.inputRate, jaw: facerlLive.jaw, rms: facerlLive.rms})")
    pcm = base64.b64decode(browser.evaluate(
        "(() => { let s = ''; for (const c of facerlLive.sent) { const b = new Uint8Array(c.buffer); "
        "for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]); } return btoa(s); })()"))
    state.update(wall=wall, mid_frames=mid[0], mid_samples=mid[1], mid_span_ms=mid[2],
                 pcm=np.frombuffer(pcm, np.int16))
    return state


def test_live_page_streams_the_microphone_at_30_fps_of_audio(browser, tiny_corpus, tmp_path_factory):
    pool = AnimatorPool(stream_checkpoint(tiny_corpus, tmp_path_factory))
    with ServerThread(pool, port=0) as srv:
        got = run_live(browser, srv.url, 4.0)
    assert got["error"] is None and got["rate"] > 0
    print({k: v for k, v in got.items() if k not in ("jaw", "rms", "pcm")})
    pcm = got["pcm"]
    assert len(pcm) == got["samples"] and got["wall"] < 4.0 + 2.0      # the fake microphone runs in real time
    lookahead = 60e-3 * 30                                              # frames still waiting for their look-ahead
    expected_mid = got["mid_samples"] * 30 / 16000 - lookahead
    assert abs(got["mid_frames"] - expected_mid) <= 3                  # 30 frames per second of audio, on time
    span_s = got["mid_span_ms"] / 1000                                 # ... and at 30 per second of wall time
    assert abs((got["mid_frames"] - 1) / span_s - 30) < 4
    anim = pool.new(False)
    ref = np.stack([f.arkit for f in anim.push(pcm) + anim.flush()])    # what the model makes of the sent audio
    jaw = np.array(got["jaw"], np.float32)
    assert got["frames"] == len(jaw) == len(ref) == max(1, round(len(pcm) * 30 / 16000))
    assert np.abs(jaw - ref[:, JAW]).max() < 1e-5


def test_live_page_opens_the_mouth_during_speech(browser, mic_wav):
    with ServerThread(LevelPool(), port=0) as srv:
        got = run_live(browser, srv.url, STREAM_S)
    assert got["error"] is None
    jaw, rms = np.array(got["jaw"]), np.array(got["rms"])
    n = min(len(jaw), len(rms))
    jaw, rms = jaw[:n], rms[:n]
    speech, silence = rms > 0.03, rms < 1e-3
    assert speech.sum() > 30 and silence.sum() > 15                    # the wav's speech and silence both came
    print(f"jawOpen: speech {jaw[speech].mean():.3f} (max {jaw.max():.3f}), silence {jaw[silence].max():.4f}")
    assert jaw[silence].max() < 0.02 and jaw[speech].mean() > 0.2

    # the page's audio is the wav's, resampled 48 -> 16 kHz by the page: its loudest second matches the wav's
    # waveform at some offset (the wav loops, and the page joined it somewhere)
    pcm = got["pcm"].astype(np.float32) / 32768
    energy = np.convolve(pcm ** 2, np.ones(16000), "valid")
    seg = pcm[int(np.argmax(energy)):][:16000]
    ref = np.tile(mic_wav[1], 3)
    dot = correlate(ref, seg, "valid", method="fft")
    norms = np.sqrt(np.convolve(ref ** 2, np.ones(len(seg)), "valid")) * np.linalg.norm(seg)
    match = float(np.max(dot / np.maximum(norms, 0.1 * np.linalg.norm(seg) ** 2)))  # (loud windows only)
    print(f"page audio vs wav: waveform correlation {match:.4f} at the best offset")
    assert match > 0.98

    # on screen: the loudest frame's mouth vs a silent frame's, at the lips and not at the forehead
    head = load_head()
    shots = {}
    for name, k in (("open", int(np.argmax(jaw))), ("silent", int(np.flatnonzero(silence)[0]))):
        browser.evaluate(f"facerl.show(0, facerlLive.history[{k}])")  # the frame as received
        browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        shots[name] = browser.screenshot().astype(np.float32)
    lips = _box(browser, head.regions["lips"], pad=6)
    forehead = _box(browser, head.regions["forehead"])
    mouth_change = np.abs(shots["open"][lips] - shots["silent"][lips]).mean()
    forehead_change = np.abs(shots["open"][forehead] - shots["silent"][forehead]).mean()
    print(f"mouth |diff| {mouth_change:.1f}, forehead |diff| {forehead_change:.2f}")
    assert mouth_change > 8.0 and forehead_change < 1.0


def _box(browser: Chromium, vertices: np.ndarray, pad: int = 0) -> tuple[slice, slice]:
    xy = np.array(browser.evaluate(f"facerl.project(0, {json.dumps(vertices.tolist())})"))  # (N, 2) px
    (x0, y0), (x1, y1) = np.floor(xy.min(0)).astype(int) - pad, np.ceil(xy.max(0)).astype(int) + pad
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)
