"""Streaming equals offline: `Animator.push` in chunks of any size vs `Actor.generate` on the whole clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.audio import read_wav
from facerl.cli import main
from facerl.errors import FacerlError
from facerl.models.checkpoint import load_actor
from facerl.models.streaming import StreamingMelEncoder, causal_log_mel, chunk_mask
from facerl.stream import Animator
from tests.conftest import tiny_train_overrides


@pytest.fixture(scope="module")
def stream_ckpt(tiny_corpus, tmp_path_factory):
    """A 2-epoch tiny actor with the streaming encoder (60 ms chunks, 0.2 s of context per layer)."""
    root = tmp_path_factory.mktemp("stream")
    assert main(["train", *tiny_train_overrides(tiny_corpus, root, "model.audio.kind=stream",
                                                "+model.audio.extra.lookahead_ms=60",
                                                "+model.audio.extra.context_ms=200")]) == 0
    return root / "runs" / "t" / "actor" / "best.pt"


def offline(ckpt, audio: np.ndarray, window: int) -> tuple[np.ndarray, int]:
    """Means (T, K) of the whole clip followed by the look-ahead's silence (what a stream's flush sees)."""
    actor = load_actor(ckpt, "cpu")[0]
    enc = actor.audio_encoder
    t = max(1, round(len(audio) * 30 / 16000))
    padded = np.concatenate([audio, np.zeros(max(enc.needed_samples(t - 1) - len(audio), 0), np.float32)])
    x = torch.from_numpy(padded)[None]
    with torch.inference_mode():
        feats = actor.encode_audio(x, torch.ones_like(x, dtype=torch.bool), t)
        return actor.generate(feats, torch.tensor([-1]), window=window, fast=False).motion[0].numpy(), t  # torch


def push_all(anim: Animator, audio: np.ndarray, chunk_ms: float) -> list:
    """Push ``audio`` in chunks of ``chunk_ms``, then flush; checks that no frame comes before its audio."""
    frames, step = [], int(16 * chunk_ms)
    for lo in range(0, len(audio), step):
        got = anim.push(audio[lo: lo + step])
        assert all(anim.encoder.needed_samples(f.index) <= lo + step for f in got)
        frames += got
    return frames + anim.flush()


@pytest.mark.parametrize("chunk_ms,fast", [(7, True), (20, True), (100, True), (1000, True), (20, False)])
def test_streamed_frames_equal_offline_generation(tiny_corpus, stream_ckpt, chunk_ms, fast):
    """Against the torch generation loop; ``fast=False`` streams through the torch decoder step (as on CUDA)."""
    audio = read_wav(min((tiny_corpus / "wav").glob("*.wav")))
    audio = np.concatenate([audio, audio])[: 16000 * 4]                            # 4 s: past the context
    window = 40                                                                     # < T: the window slides
    ref, t = offline(stream_ckpt, audio, window)
    anim = Animator(stream_ckpt, window=window, vertices=True, fast=fast)
    assert (anim.decoder is not None) == fast
    frames = push_all(anim, audio, chunk_ms)
    assert [f.index for f in frames] == list(range(t))
    basis = anim.actor.motion.basis.numpy()                                         # (K, V*3)
    verts = np.stack([f.vertices for f in frames]).reshape(t, -1)                  # (T, V*3)
    ref_verts = ref @ basis + anim.template.numpy()
    motion_scale = np.abs(ref_verts - anim.template.numpy()).max()
    assert np.abs(verts - ref_verts).max() < 1e-5 * motion_scale                    # 1e-5 of the motion
    arkit = np.stack([f.arkit for f in frames])
    ref_arkit = np.clip(ref @ anim.curves.readout, 0, 1)                            # the offline read-out
    assert arkit.shape == (t, 52) and np.abs(arkit - ref_arkit).max() < 1e-5


def test_the_encoder_never_looks_past_its_chunk():
    from facerl.models.audio import AudioEncoderConfig

    torch.manual_seed(0)
    enc = StreamingMelEncoder(AudioEncoderConfig(kind="stream", width=16, layers=2, heads=2, n_mels=20,
                                                 dropout=0.0, extra={"lookahead_ms": 60, "context_ms": 100})).eval()
    assert enc.chunk == 3 and enc.context_chunks == 2
    audio = torch.randn(1, 16000)
    ones = torch.ones_like(audio, dtype=torch.bool)
    with torch.no_grad():
        full = enc.features(audio, ones)                                            # (1, 50, D)
        cut = 21 * 320                                                              # the end of chunk 6
        part = enc.features(audio[:, :cut], ones[:, :cut])
    assert torch.allclose(full[:, :21], part, atol=1e-5)                             # the future never leaks in
    assert not torch.allclose(full[:, 21:24], full[:, 21:24] * 0 + part[:, -1:], atol=1e-3)
    assert enc.needed_samples(0) == 3 * 320 and enc.lookahead_ms == pytest.approx(60.0)
    mask = chunk_mask(7, 2, 1)
    assert mask[5].tolist() == [True, True, False, False, False, False, True]       # chunks 1..2 seen from 5
    mel = causal_log_mel(torch.randn(2, 3200), 20)
    assert mel.shape == (2, 20, 20)


def test_whole_clip_encoders_are_refused_and_bad_audio_is_a_one_line_error(tiny_actor_run, stream_ckpt):
    with pytest.raises(FacerlError, match="looks at the whole clip"):
        Animator(tiny_actor_run / "actor" / "best.pt")
    anim = Animator(stream_ckpt)
    with pytest.raises(FacerlError, match="mono"):
        anim.push(np.zeros((10, 2), np.float32))
    with pytest.raises(FacerlError, match="int16 or float"):
        anim.push(np.zeros(10, np.int32))
    with pytest.raises(FacerlError, match="NaN"):
        anim.push(np.full(10, np.nan, np.float32))
    assert anim.push(np.zeros(0, np.int16)) == []
    frames = anim.push((np.random.default_rng(0).standard_normal(16000) * 3000).astype(np.int16)) + anim.flush()
    assert len(frames) == 30 and frames[0].index == 0                               # 1 s at 30 fps, then reset
    again = anim.push(np.zeros(3200, np.float32))                                  # a new stream after flush
    assert again and again[0].index == 0 and again[-1].index == len(again) - 1
