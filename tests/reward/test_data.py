"""Reward training windows from real tiny-corpus clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.data.dataset import VocaDataset, spec_from_corpus
from facerl.reward.data import (
    ACTOR,
    RealismNegatives,
    RewardClip,
    prepare_clip,
    sample_windows,
)
from facerl.reward.degrade import DEGRADATIONS
from facerl.reward.windows import reward_mel


@pytest.fixture(scope="module")
def raw(tiny_corpus):
    ds = VocaDataset(spec_from_corpus(str(tiny_corpus)), "train", with_phones=False)
    return [ds[i] for i in range(3)]


@pytest.fixture(scope="module")
def clips(raw):
    return [prepare_clip(c) for c in raw]


def test_prepared_clip_is_motion_and_its_log_mel(raw, clips):
    c, r = clips[0], raw[0]
    assert torch.equal(c.motion, r.vertices - r.template)
    assert torch.equal(c.mel, reward_mel(r.audio[None], len(r.vertices))[0])
    assert c.mel.shape == (4 * len(r.vertices), 128)


def test_windows_pair_mesh_and_audio_of_the_same_time(clips):
    wb = sample_windows(clips, 24, np.random.default_rng(0), n_hard=3)
    p = clips[0].motion.shape[1]
    assert wb.mesh.shape == (24, 5, p) and wb.degraded.shape == (24, 5, p)
    assert wb.mel.shape == (24, 1, 20, 128) and wb.hard_mel.shape == (24, 3, 1, 20, 128)
    assert set(wb.degradation) <= set(DEGRADATIONS) and len(set(wb.clip.tolist())) > 1
    assert torch.all(wb.shifts.abs() >= 2) and torch.all(wb.shifts.abs() <= 15)
    for i in range(24):
        c, w = clips[int(wb.clip[i])], int(wb.start[i])
        assert torch.equal(wb.mesh[i], c.motion[w: w + 5])
        assert torch.equal(wb.mel[i, 0], c.mel[4 * w: 4 * w + 20])
        for j, k in enumerate(wb.shifts[i].tolist()):
            assert 0 <= w + k and w + k + 5 <= len(c.motion)       # negatives come from real frames
            assert torch.equal(wb.hard_mel[i, j, 0], c.mel[4 * (w + k): 4 * (w + k) + 20])


def test_near_negative_is_one_frame_off(clips):
    wb = sample_windows(clips, 40, np.random.default_rng(3), n_hard=2, near=True)
    assert wb.shifts.shape == (40, 3) and wb.hard_mel.shape[1] == 3
    assert torch.all(wb.shifts[:, :2].abs() >= 2) and torch.all(wb.shifts[:, 2].abs() == 1)
    for i in range(40):
        c, w, k = clips[int(wb.clip[i])], int(wb.start[i]), int(wb.shifts[i, 2])
        assert torch.equal(wb.hard_mel[i, 2, 0], c.mel[4 * (w + k): 4 * (w + k) + 20])


def test_degraded_windows_differ_from_ground_truth(clips):
    wb = sample_windows(clips, 32, np.random.default_rng(1))
    moving = wb.mesh.abs().amax(dim=(1, 2)) > 1e-4            # a still window survives damping unchanged
    assert (wb.degraded - wb.mesh).abs().amax(dim=(1, 2))[moving].min() > 0


def test_actor_outputs_become_realism_negatives(raw):
    fake = [torch.full_like(r.vertices, 0.01) for r in raw]
    clips = [prepare_clip(r, f) for r, f in zip(raw, fake)]
    wb = sample_windows(clips, 60, np.random.default_rng(2), negatives=RealismNegatives(degrade_actor=0.0))
    is_actor = torch.tensor([k == ACTOR for k in wb.degradation])
    assert 0 < is_actor.sum() < 60
    assert torch.all(wb.degraded[is_actor] == 0.01)


def test_clips_too_short_are_refused(clips):
    short = [RewardClip("x", "s", c.motion[:6], c.mel[:24]) for c in clips]
    with pytest.raises(ValueError, match="long enough"):
        sample_windows(short, 4, np.random.default_rng(0), min_shift=2)


def test_negative_weights_choose_the_degradations(clips):
    only = RealismNegatives(**{**dict.fromkeys(DEGRADATIONS, 0.0), "jitter": 1.0})
    wb = sample_windows(clips, 30, np.random.default_rng(4), negatives=only)
    assert set(wb.degradation) == {"jitter"}


def test_degraded_actor_outputs_are_negatives_too(raw):
    fake = [torch.full_like(r.vertices, 0.01) for r in raw]
    clips = [prepare_clip(r, f) for r, f in zip(raw, fake)]
    negatives = RealismNegatives(**{**dict.fromkeys(DEGRADATIONS, 0.0), "damp": 1.0}, degrade_actor=1.0)
    wb = sample_windows(clips, 60, np.random.default_rng(5), negatives=negatives)
    assert set(wb.degradation) == {"damp", f"{ACTOR}+damp"}
    is_actor = torch.tensor([k.startswith(ACTOR) for k in wb.degradation])
    assert 0 < is_actor.sum() < 60
    scale = wb.degraded[is_actor] / 0.01                                    # damped copies of the actor's output
    assert torch.all((scale > 0.29) & (scale < 0.71)) and torch.allclose(scale, scale[:, :1, :1].expand_as(scale))
