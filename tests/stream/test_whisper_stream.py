"""Whisper on short windows as a streaming encoder: made from a Whisper actor by ``facerl.train.distil
--whisper-window-ms``, it streams through the Animator and equals offline generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.audio import read_wav
from facerl.cli import main
from facerl.data.layout import Layout
from facerl.models.checkpoint import load_actor
from facerl.models.whisper import WhisperWindowEncoder
from facerl.stream import Animator
from facerl.train.distil import main as distil_main
from tests.conftest import tiny_train_overrides
from tests.stream.test_animator import offline, push_all


@pytest.fixture(scope="module")
def window_ckpt(tiny_corpus, tmp_path_factory):
    """A 1-epoch tiny Whisper actor, then its 1 s-window streaming version with 3 decoder fine-tune steps."""
    root = tmp_path_factory.mktemp("wstream")
    assert main(["train", *tiny_train_overrides(tiny_corpus, root, "trainer.epochs=1",
                                                "model.audio.kind=whisper")]) == 0
    teacher = root / "runs" / "t" / "actor" / "best.pt"
    out = root / "window.pt"
    assert distil_main([str(teacher), str(out), "--whisper-window-ms", "1000", "--finetune-steps", "3",
                        "--batch-size", "2"]) == 0
    return teacher, out


def test_window_actor_is_the_teacher_with_a_streaming_encoder(window_ckpt):
    teacher_path, path = window_ckpt
    actor, _, ckpt = load_actor(path)
    teacher = load_actor(teacher_path)[0]
    enc = actor.audio_encoder
    assert isinstance(enc, WhisperWindowEncoder) and enc.streams
    assert enc.chunk == 3 and enc.window_states == 50 and enc.lookahead_ms == pytest.approx(60.0)
    assert ckpt["config"]["model"]["audio"]["extra"]["stream_window_ms"] == 1000
    assert len(ckpt["finetune_history"]) == 3
    assert not torch.equal(actor.state_dict()["head.weight"], teacher.state_dict()["head.weight"])  # fine-tuned


def test_window_features_never_look_past_their_chunk(window_ckpt, tiny_corpus):
    enc = load_actor(window_ckpt[1])[0].audio_encoder
    audio = torch.from_numpy(read_wav(Layout(tiny_corpus).wav("SynthTalk_11_m6_TA_sentence21")))
    full = enc.clip_features([audio])[0]                                   # (N, D)
    part = enc.clip_features([audio[: 21 * 320 * 3]])[0]                   # the first 21 chunks only
    assert len(audio) > 2 * 21 * 320 * 3 and len(part) == 63
    assert full.shape == (-(-len(audio) // 320), enc.feature_dim) and full.abs().max() > 0.1
    assert torch.allclose(full[: len(part)], part, atol=1e-5)


@pytest.mark.parametrize("chunk_ms", [20, 1000])
def test_whisper_window_stream_equals_offline_generation(window_ckpt, tiny_corpus, chunk_ms):
    path = window_ckpt[1]
    audio = read_wav(Layout(tiny_corpus).wav("SynthTalk_11_m6_TA_sentence21"))
    window = 40                                                            # < T: the window slides
    ref, t = offline(path, audio, window)
    anim = Animator(path, window=window, vertices=True)
    frames = push_all(anim, audio, chunk_ms)
    assert [f.index for f in frames] == list(range(t)) and t > 2 * window
    ref_verts = ref @ anim.actor.motion.basis.numpy() + anim.template.numpy()
    verts = np.stack([f.vertices for f in frames]).reshape(t, -1)
    motion_scale = np.abs(ref_verts - anim.template.numpy()).max()
    assert motion_scale > 0 and np.abs(verts - ref_verts).max() < 1e-5 * motion_scale
    arkit = np.stack([f.arkit for f in frames])
    assert np.abs(arkit - np.clip(ref @ anim.curves.readout, 0, 1)).max() < 1e-5


def test_window_needs_a_whisper_teacher(tiny_actor_run, tmp_path, capsys):
    assert distil_main([str(tiny_actor_run / "actor" / "best.pt"), str(tmp_path / "x.pt"),
                        "--whisper-window-ms", "1000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a Whisper teacher" in err and len(err.splitlines()) == 1
    assert distil_main([str(tmp_path / "missing.pt"), str(tmp_path / "x.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert distil_main([str(tiny_actor_run / "actor" / "best.pt"), str(tmp_path / "x.pt"), "--whisper-window-ms",
                        "1000", "--motion", "1"]) == 2
    assert "--motion would be ignored" in capsys.readouterr().err
    assert distil_main([str(tiny_actor_run / "actor" / "best.pt"), str(tmp_path / "x.pt"), "--whisper-window-ms",
                        "-5"]) == 2
    assert "must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
