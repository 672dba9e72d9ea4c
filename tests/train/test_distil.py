"""Distillation into a streaming student at tiny scale: the loss falls, the checkpoint loads and streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.models.checkpoint import load_actor
from facerl.models.streaming import StreamingMelEncoder
from facerl.train.distil import DistilConfig, distil, distil_loss, lr_at


def test_distil_loss_by_hand():
    target = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]]])        # (1, 3, 2); frame 2 is padding
    pred = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    out = distil_loss(pred, target, mask, scale=2.0, cosine_weight=0.5)
    assert out["nmse"].item() == pytest.approx((0.0 + 1.0) / 2 / 2.0)      # mean sq error per real frame / scale
    assert out["cos"].item() == pytest.approx(1.0)                          # both real frames point the same way
    assert out["loss"].item() == pytest.approx(0.25)


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 1e-3) for s in range(100)]
    assert lrs[0] < lrs[4] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05) and lrs[-1] < lrs[50] < lrs[5]


def test_distil_tiny_student_learns_loads_and_streams(tiny_corpus, tiny_actor_run, tmp_path):
    teacher_path = tiny_actor_run / "actor" / "best.pt"
    teacher, _, _ = load_actor(teacher_path)
    out = tmp_path / "student.pt"
    dc = DistilConfig(steps=40, batch_size=4, lr=3e-3, layers=1, heads=2, n_mels=40, val_every=0, finetune_steps=0)
    result = distil(teacher_path, out, dc, corpus=tiny_corpus, show=False)

    losses = [r["train_loss"] for r in result["history"]]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    assert "val_nmse" in result["history"][-1]

    student, _, ckpt = load_actor(out)
    assert isinstance(student.audio_encoder, StreamingMelEncoder)
    assert student.audio_encoder.feature_dim == teacher.audio_encoder.feature_dim
    assert ckpt["config"]["model"]["audio"]["kind"] == "stream"
    assert ckpt["config"]["model"]["audio"]["extra"] == {"lookahead_ms": 60.0, "context_ms": 1000.0}
    assert ckpt["step"] == dc.steps
    teacher_state = teacher.state_dict()
    for name, value in student.state_dict().items():       # decoder, head, motion: the teacher's, unchanged
        if not name.startswith("audio_encoder."):
            assert torch.equal(value, teacher_state[name]), name

    from facerl.stream import Animator

    anim = Animator(out)
    audio = (0.1 * np.sin(np.arange(16000) * 2 * np.pi * 220 / 16000)).astype(np.float32)   # 1 s
    frames = [f for start in range(0, len(audio), 700) for f in anim.push(audio[start:start + 700])]
    frames += anim.flush()
    assert [f.index for f in frames] == list(range(30))
    assert all(f.arkit.shape == (52,) and np.isfinite(f.arkit).all() for f in frames)


def test_distil_init_and_decoder_finetune(tiny_corpus, tiny_actor_run, tmp_path):
    teacher_path = tiny_actor_run / "actor" / "best.pt"
    dc = DistilConfig(steps=2, batch_size=2, layers=1, heads=2, n_mels=40, val_every=0)
    distil(teacher_path, tmp_path / "a.pt", dc, corpus=tiny_corpus, show=False)
    dc_ft = DistilConfig(steps=0, batch_size=2, layers=1, heads=2, n_mels=40, finetune_steps=3, finetune_lr=1e-2)
    distil(teacher_path, tmp_path / "b.pt", dc_ft, corpus=tiny_corpus, show=False, init=tmp_path / "a.pt")
    a, _, _ = load_actor(tmp_path / "a.pt")
    b, _, ckpt = load_actor(tmp_path / "b.pt")
    assert len(ckpt["finetune_history"]) == 3
    a_state, b_state = a.state_dict(), b.state_dict()
    for name, value in b_state.items():       # the encoder is the one it started from; the decoder moved
        if name.startswith("audio_encoder."):
            assert torch.equal(value, a_state[name]), name
    assert not torch.equal(a_state["head.weight"], b_state["head.weight"])


def test_motion_term_trains_the_student_through_the_frozen_decoder(tiny_corpus, tiny_actor_run, tmp_path):
    """With ``motion`` > 0 the loss includes the teacher decoder's vertex error on the student's features: it is
    recorded, it falls, and the decoder itself stays the teacher's."""
    teacher_path = tiny_actor_run / "actor" / "best.pt"
    dc = DistilConfig(steps=30, batch_size=4, lr=3e-3, layers=1, heads=2, n_mels=40, val_every=0, motion=5.0)
    result = distil(teacher_path, tmp_path / "m.pt", dc, corpus=tiny_corpus, show=False)
    motion = [r["train_motion_mm2"] for r in result["history"]]
    assert all(np.isfinite(motion)) and np.mean(motion[-5:]) < np.mean(motion[:5])
    loss, nmse, cos = (result["history"][-1][k] for k in ("train_loss", "train_nmse", "train_cos"))
    assert loss == pytest.approx(nmse + 0.5 * (1 - cos) + 5.0 * motion[-1], rel=1e-4)
    teacher, _, _ = load_actor(teacher_path)
    student, _, _ = load_actor(tmp_path / "m.pt")
    assert torch.equal(student.state_dict()["head.weight"], teacher.state_dict()["head.weight"])
