"""Every advantage function of facerl.rl.advantages against values computed by hand."""

from __future__ import annotations

import pytest
import torch

from facerl.rl.advantages import (
    advantages,
    frame_advantage,
    group_mean,
    normalize,
    per_frame,
)

# 2 clips x G=2 samples, 3 windows each; clip 1's last window is padding
REWARD = torch.tensor([[1.0, 2.0, 3.0],
                       [3.0, 2.0, 1.0],
                       [0.0, 4.0, 9.0],
                       [2.0, 0.0, 9.0]])
MASK = torch.tensor([[True, True, True], [True, True, True], [True, True, False], [True, True, False]])
VALUE = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])


def test_group_mean_per_window_compares_the_same_window_across_samples():
    assert torch.equal(group_mean(REWARD, 2, MASK)[:, :2], torch.tensor([[2.0, 2.0], [2.0, 2.0], [1.0, 2.0],
                                                                          [1.0, 2.0]]))
    assert torch.equal(group_mean(torch.tensor([1.0, 3.0, 5.0, 9.0]), 2), torch.tensor([2.0, 2.0, 7.0, 7.0]))


def test_per_window_group_advantage():
    expected = torch.tensor([[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 2.0, 0.0], [1.0, -2.0, 0.0]])
    assert torch.equal(advantages(REWARD, MASK, 2, "group", per_window=True), expected)


def test_per_sequence_group_advantage_uses_real_windows_only():
    # sequence returns: 2, 2, 2 (0 and 4), 1 (2 and 0) -> group means 2, 2, 1.5, 1.5
    adv = advantages(REWARD, MASK, 2, "group", per_window=False)
    assert torch.allclose(adv, torch.tensor([0.0, 0.0, 0.5, -0.5]))


@pytest.mark.parametrize("baseline", ["critic", "sample_critic"])
def test_critic_advantages_subtract_the_value(baseline):
    per_window = advantages(REWARD, MASK, 2, baseline, per_window=True, value_w=VALUE)
    assert torch.equal(per_window, (REWARD - VALUE) * MASK)
    per_seq = advantages(REWARD, MASK, 2, baseline, per_window=False, value_w=VALUE)
    assert torch.allclose(per_seq, torch.tensor([2 - 1.0, 2 - 2.0, 2 - 0.5, 1 - 1.0]))


def test_no_baseline_is_the_reward():
    assert torch.equal(advantages(REWARD, MASK, 2, "none", per_window=True), REWARD * MASK)
    assert torch.allclose(advantages(REWARD, MASK, 2, "none", per_window=False), torch.tensor([2.0, 2.0, 2.0, 1.0]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="values"):
        advantages(REWARD, MASK, 2, "critic", per_window=True)
    with pytest.raises(ValueError, match="unknown"):
        advantages(REWARD, MASK, 2, "magic", per_window=True)


def test_normalize_divides_by_the_std_of_real_entries():
    adv = torch.tensor([[1.0, -1.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    out = normalize(adv, mask)
    assert torch.allclose(out[mask], torch.tensor([1.0, -1.0]) / torch.tensor([1.0, -1.0]).std())
    assert torch.allclose(normalize(torch.tensor([2.0, 4.0])), torch.tensor([2.0, 4.0]) / 2 ** 0.5)


def test_frame_advantage_averages_the_windows_containing_each_frame():
    # 6 frames, 2 windows of 5: frame 0 sees window 0 only, frames 1-4 both, frame 5 window 1 only
    adv = frame_advantage(torch.tensor([[1.0, 3.0]]), torch.tensor([[True, True]]))
    assert torch.allclose(adv, torch.tensor([[1.0, 2.0, 2.0, 2.0, 2.0, 3.0]]))
    # a padded window does not count: frames only it covers get 0
    adv = frame_advantage(torch.tensor([[1.0, 3.0]]), torch.tensor([[True, False]]))
    assert torch.allclose(adv, torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]]))


def test_per_frame_broadcasts_sequence_advantages():
    assert torch.equal(per_frame(torch.tensor([1.0, -2.0]), MASK[:2], 7), torch.tensor([[1.0] * 7, [-2.0] * 7]))
