"""Exploration noise (facerl.rl.noise): the draws have the stated law and each is scored by its exact density."""

from __future__ import annotations

import pytest
import torch

from facerl.rl.noise import draw, log_prob, smooth_factor


def test_antithetic_pairs_are_negated():
    e = draw((4, 6, 3), "antithetic", 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(e[1], -e[0]) and torch.equal(e[3], -e[2]) and not torch.equal(e[0], e[2])
    with pytest.raises(ValueError):
        draw((3, 6, 3), "antithetic", 3)


def test_smooth_noise_has_unit_variance_and_is_correlated_in_time():
    e = draw((4000, 12, 1), "smooth", 1, width=3.0, generator=torch.Generator().manual_seed(0))[..., 0]
    assert torch.allclose(e.var(0), torch.ones(12), atol=0.08)
    lag1 = (e[:, 1:] * e[:, :-1]).mean()
    assert 0.85 < lag1 < 0.95                      # 0.95 * exp(-1 / 18)


@pytest.mark.parametrize("kind", ["white", "antithetic", "smooth"])
def test_log_prob_is_the_exact_density_of_the_draws(kind):
    torch.manual_seed(0)
    n, t, k = 2, 7, 3
    mean, log_std = torch.randn(n, t, k), torch.tensor([-1.0, -0.5, 0.2])
    sample = mean + log_std.exp() * torch.randn(n, t, k)
    got = log_prob(mean, sample, log_std, kind, width=2.0).sum(1)            # (N,) whole sequences
    if kind == "smooth":
        factor = smooth_factor(t, 2.0).double()
        cov = factor @ factor.T
        expected = sum(torch.distributions.MultivariateNormal(mean[..., j].double(), cov * log_std[j].exp() ** 2)
                       .log_prob(sample[..., j].double()) for j in range(k))
    else:
        expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(sample).sum((1, 2))
    assert torch.allclose(got.double(), expected.double(), atol=1e-3)
