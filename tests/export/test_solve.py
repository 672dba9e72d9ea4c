"""Vertices -> ARKit curves: the ADMM solver against exact answers and a general-purpose optimiser."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import lsq_linear, minimize

from facerl.errors import FacerlError
from facerl.export.solve import (
    BlendshapeBasis,
    CurveSolver,
    readout_matrix,
    solve_curves,
)
from facerl.head.arkit import ARKIT_NAMES


def tiny_basis(rng: np.random.Generator, v: int = 30) -> BlendshapeBasis:
    """52 random, correlated targets on v vertices (a stand-in for a user's FLAME basis)."""
    mix = np.eye(52) + 0.3 * rng.standard_normal((52, 52))
    targets = (mix @ rng.standard_normal((52, v * 3))).reshape(52, v, 3) * 1e-3   # millimetres, in metres
    return BlendshapeBasis(rng.standard_normal((v, 3)).astype(np.float32), targets.astype(np.float32))


def test_recovers_the_curves_that_made_the_motion_on_our_head():
    rng = np.random.default_rng(0)
    basis = BlendshapeBasis.from_head()
    weights = np.clip(rng.uniform(-0.2, 0.8, (40, 52)), 0, 1).astype(np.float32)   # some exactly 0 (the bound)
    template = basis.neutral + 0.002 * rng.standard_normal(basis.neutral.shape).astype(np.float32)
    verts = basis.pose(weights, template)                                           # (T, V, 3)
    curves = solve_curves(verts, template, fps=30.0, smooth=0.0, audio="a.wav")
    assert curves.weights.shape == (40, 52) and curves.fps == 30.0 and curves.audio == "a.wav"
    assert np.abs(curves.weights - weights).max() < 5e-3                           # at the default tolerance
    assert np.abs(basis.pose(curves.weights, template) - verts).max() < 1e-5      # metres: 0.01 mm


def test_bounded_solution_matches_a_per_frame_bounded_least_squares():
    rng = np.random.default_rng(1)
    basis = tiny_basis(rng)
    weights = rng.uniform(-0.6, 1.6, (6, 52))                                       # far outside [0, 1]
    verts = basis.pose(weights) + 1e-4 * rng.standard_normal((6, 30, 3))
    got = CurveSolver(basis, smooth=0.0, steps=20000, tol=1e-8).solve(verts, basis.neutral, 30.0).weights
    b = basis.targets.reshape(52, -1).T.astype(np.float64)                          # (P, K)
    d = (verts - basis.neutral).reshape(6, -1)
    ref = np.stack([lsq_linear(b, d[t], bounds=(0, 1), tol=1e-12).x for t in range(6)])
    assert got.min() >= 0 and got.max() <= 1
    assert np.abs(got - ref).max() < 2e-3


def test_smoothness_minimises_the_documented_objective():
    rng = np.random.default_rng(2)
    basis = tiny_basis(rng, v=20)                                                  # P = 60 >= K: strictly convex
    verts = basis.pose(rng.uniform(0, 1, (7, 52))) + 3e-4 * rng.standard_normal((7, 20, 3))
    smooth = 0.5
    solver = CurveSolver(basis, smooth=smooth, steps=20000, tol=1e-8)
    got = solver.solve(verts, basis.neutral, 30.0).weights.astype(np.float64)
    b = basis.targets.reshape(52, -1).astype(np.float64)                             # (K, P)
    d = (verts - basis.neutral).reshape(7, -1)
    g = np.mean(np.sum(b * b, 1))

    def objective(w_flat):                                                           # the module docstring's
        w = w_flat.reshape(7, 52)
        r, dw = w @ b - d, np.diff(w, axis=0)
        value = (r * r).sum() + smooth * g * (dw * dw).sum()
        grad = 2 * r @ b.T
        grad[1:] += 2 * smooth * g * dw
        grad[:-1] -= 2 * smooth * g * dw
        return value / g, grad.ravel() / g

    ref = minimize(objective, np.full(7 * 52, 0.5), jac=True, method="L-BFGS-B", bounds=[(0, 1)] * (7 * 52),
                   options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12}).x.reshape(7, 52)
    assert objective(got.ravel())[0] <= objective(ref.ravel())[0] * (1 + 1e-4)
    assert np.abs(got - ref).max() < 5e-3
    rough = CurveSolver(basis, smooth=0.0, steps=20000, tol=1e-8).solve(verts, basis.neutral, 30.0).weights
    assert (np.diff(got, axis=0) ** 2).sum() < 0.5 * (np.diff(rough, axis=0) ** 2).sum()


def test_a_users_basis_loads_from_named_target_shapes(tmp_path):
    rng = np.random.default_rng(3)
    basis = tiny_basis(rng)
    arrays = {"neutral": basis.neutral, **{n: basis.neutral + basis.targets[k] for k, n in enumerate(ARKIT_NAMES)}}
    np.savez(tmp_path / "flame_arkit.npz", **arrays)
    loaded = BlendshapeBasis.load(tmp_path / "flame_arkit.npz")
    assert np.allclose(loaded.targets, basis.targets, atol=1e-6) and np.array_equal(loaded.neutral, basis.neutral)

    del arrays["jawOpen"], arrays["tongueOut"]
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(FacerlError, match="lacks 2 arrays: jawOpen, tongueOut"):
        BlendshapeBasis.load(tmp_path / "partial.npz")
    with pytest.raises(FacerlError, match="not found"):
        BlendshapeBasis.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FacerlError, match="not a readable"):
        BlendshapeBasis.load(tmp_path / "junk.npz")


def test_bad_animations_are_one_line_errors():
    basis = tiny_basis(np.random.default_rng(4))
    solver = CurveSolver(basis)
    with pytest.raises(FacerlError, match="31 vertices, the blendshape basis 30"):
        solver.solve(np.zeros((5, 31, 3)), np.zeros((31, 3)), 30.0)
    bad = np.zeros((5, 30, 3))
    bad[2, 3, 1] = np.nan
    with pytest.raises(FacerlError, match="NaN"):
        solver.solve(bad, basis.neutral, 30.0)
    for smooth in (-1, float("nan"), float("inf")):
        with pytest.raises(FacerlError, match="0 <= smooth < inf"):
            CurveSolver(basis, smooth=smooth)


def test_readout_maps_motion_coefficients_inside_the_span_and_refuses_others():
    rng = np.random.default_rng(5)
    basis = tiny_basis(rng)
    b = basis.targets.reshape(52, -1)
    mix = rng.standard_normal((10, 52))
    motion_basis = mix @ b                                   # (K_m, P): 10 directions inside the blendshape span
    m = readout_matrix(motion_basis, basis)
    coeffs = rng.standard_normal((4, 10))
    assert m is not None and np.allclose(coeffs @ m, coeffs @ mix, atol=1e-4)
    outside = motion_basis + 1e-2 * np.abs(motion_basis).max() * rng.standard_normal(motion_basis.shape)
    assert readout_matrix(outside, basis) is None
    assert readout_matrix(np.zeros((0, b.shape[1])), basis) is None


def test_overshooting_motion_on_our_head_converges_to_the_bounded_optimum():
    """Other methods' outputs overshoot the rig: many bounds active at once (the slow case for ADMM)."""
    rng = np.random.default_rng(6)
    basis = BlendshapeBasis.from_head()
    weights = rng.uniform(-0.5, 1.5, (60, 52))
    verts = basis.pose(weights) + 5e-4 * rng.standard_normal((60, basis.n_vertices, 3))
    solver = CurveSolver(basis, smooth=0.0)
    got = solver.solve(verts, basis.neutral, 30.0).weights.astype(np.float64)
    assert solver.last_steps < solver.steps                                        # stopped by the tolerance
    b = basis.targets.reshape(52, -1).T.astype(np.float64)                          # (P, K)
    d = (verts - basis.neutral).reshape(60, -1).astype(np.float64)
    frames = [0, 17, 59]
    ref = np.stack([lsq_linear(b, d[t], bounds=(0, 1), tol=1e-10).x for t in frames])
    residual = np.linalg.norm(got[frames] @ b.T - d[frames], axis=1)
    assert np.all(residual <= np.linalg.norm(ref @ b.T - d[frames], axis=1) * 1.001)
    assert np.abs(got[frames] - ref).max() < 0.02
