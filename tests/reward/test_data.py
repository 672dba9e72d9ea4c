"""Reward training windows from a real tiny-corpus batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.data.dataset import VocaDataset, collate, spec_from_corpus
from facerl.reward.data import sample_windows
from facerl.reward.degrade import DEGRADATIONS
from facerl.reward.windows import reward_mel


@pytest.fixture(scope="module")
def batch(tiny_corpus):
    ds = VocaDataset(spec_from_corpus(str(tiny_corpus)), "train", with_phones=False)
    return collate([ds[i] for i in range(3)])


def test_windows_pair_mesh_and_audio_of_the_same_time(batch):
    wb = sample_windows(batch, np.random.default_rng(0), per_clip=6, n_hard=3)
    n = 3 * 6
    p = batch.vertices.shape[2]
    assert wb.mesh.shape == (n, 5, p) and wb.degraded.shape == (n, 5, p)
    assert wb.mel.shape == (n, 1, 20, 128) and wb.hard_mel.shape == (n, 3, 1, 20, 128)
    assert set(wb.degradation) <= set(DEGRADATIONS) and wb.clip.tolist() == sorted(wb.clip.tolist())
    assert torch.all(wb.shifts.abs() >= 2) and torch.all(wb.shifts.abs() <= 15)
    # recover each window's start from the mesh and check its audio is the same time span
    motion = batch.vertices - batch.template[:, None]
    mel = reward_mel(batch.audio, batch.vertices.shape[1])
    for i in range(n):
        b = int(wb.clip[i])
        starts = [w for w in range(motion.shape[1] - 4) if torch.equal(motion[b, w: w + 5], wb.mesh[i])]
        assert starts, "window not found in its clip"
        w = starts[0]
        assert torch.equal(wb.mel[i, 0], mel[b, 4 * w: 4 * w + 20])
        k = int(wb.shifts[i, 0])
        assert torch.equal(wb.hard_mel[i, 0, 0], mel[b, 4 * (w + k): 4 * (w + k) + 20])
        assert w + k + 5 <= int(batch.frame_mask[b].sum())      # negatives come from real frames


def test_degraded_windows_differ_from_ground_truth(batch):
    wb = sample_windows(batch, np.random.default_rng(1), per_clip=4)
    assert (wb.degraded - wb.mesh).abs().amax(dim=(1, 2)).min() > 0
