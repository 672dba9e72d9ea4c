"""Policy and value losses and their diagnostics (facerl.rl.losses) against hand-computed values."""

from __future__ import annotations

import math

import torch

from facerl.rl.losses import (
    explained_variance,
    gaussian_entropy,
    gaussian_kl,
    policy_loss,
    value_loss,
)


def test_policy_loss_without_clipping_is_minus_ratio_times_advantage():
    logp = torch.tensor([[0.0, math.log(2.0), 0.0]], requires_grad=True)
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, 1.0, 5.0]])
    mask = torch.tensor([[True, True, False]])
    loss, stats = policy_loss(logp, old, adv, mask)
    assert math.isclose(loss.item(), -(1 * 1 + 2 * 1) / 2, rel_tol=1e-6)
    # approx_kl = mean((r - 1) - log r) = (0 + (1 - log 2)) / 2
    assert math.isclose(stats["approx_kl"], (1 - math.log(2)) / 2, rel_tol=1e-6)
    assert stats["clipfrac"] == 0.0
    loss.backward()
    # d(-mean(r A))/d logp = -r A / n on real frames, 0 on padding
    assert torch.allclose(logp.grad, torch.tensor([[-0.5, -1.0, 0.0]]))


def test_ppo_clipping_takes_the_pessimistic_term():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.5, 0.5]]))
    old = torch.zeros(1, 4)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    loss, stats = policy_loss(logp, old, adv, mask, clip=0.2)
    # min(r A, clip(r) A): 1.2, 0.5, -1.5, -0.8
    assert math.isclose(loss.item(), -(1.2 + 0.5 - 1.5 - 0.8) / 4, rel_tol=1e-6)
    assert stats["clipfrac"] == 1.0


def test_value_loss_and_explained_variance():
    target = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, True, False]])
    value = torch.tensor([[1.0, 2.0, 5.0, 0.0]])
    assert math.isclose(value_loss(value, target, mask).item(), 4 / 3, rel_tol=1e-6)
    assert explained_variance(target, target, mask) == 1.0
    assert math.isclose(explained_variance(torch.full_like(target, 2.0), target, mask), 0.0, abs_tol=1e-9)
    # residual (0, 0, -2): var 4/3, target var 1 -> 1 - 4/3
    assert math.isclose(explained_variance(value, target, mask), 1 - 4 / 3, rel_tol=1e-6)
    assert math.isnan(explained_variance(value, torch.ones_like(target), mask))


def test_gaussian_kl_is_zero_for_equal_policies_and_matches_torch():
    torch.manual_seed(0)
    mean, ref = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    ls, rls = torch.full((3,), -1.0), torch.full((3,), -0.5)
    mask = torch.ones(2, 4, dtype=torch.bool)
    assert gaussian_kl(mean, ls, mean, ls, mask).abs().item() < 1e-6
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mean, ls.exp()),
                                                 torch.distributions.Normal(ref, rls.exp())).sum(-1).mean()
    assert torch.allclose(gaussian_kl(mean, ls, ref, rls, mask), expected, atol=1e-5)


def test_entropy_matches_torch():
    ls = torch.tensor([-1.0, 0.0, 0.5])
    assert torch.allclose(gaussian_entropy(ls), torch.distributions.Normal(torch.zeros(3), ls.exp()).entropy().sum())
