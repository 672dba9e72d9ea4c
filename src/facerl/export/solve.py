"""Vertices -> ARKit curves: bounded least squares on a blendshape basis with a temporal smoothness term.

Dimensions: T frames, V vertices, P = V*3 coordinates, K blendshapes (52).

For offsets d_t (the animated vertices minus the face's template) and a basis B (K, P) of blendshape
offsets, the weights W (T, K) minimise

    sum_t |W_t B - d_t|^2 + smooth * g * sum_t |W_t - W_{t-1}|^2,   subject to 0 <= W <= 1,

with g = mean(diag(B B^T)), so ``smooth`` is in units of "one average blendshape". Every frame is
solved at once by ADMM (Boyd et al. 2011, section 5): the unconstrained step has the closed form

    W G + smooth * g * L W + rho W = R,     G = B B^T (K, K),  L the (T, T) path-graph Laplacian,

and both G and L are diagonalised once: G by its eigenvectors, L by the orthonormal DCT-II (the
eigenvectors of the path graph with free ends, eigenvalues 2 - 2 cos(pi i / T)), so a step costs two
DCTs of (T, K) and two (K, K) products. The box constraint is a clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.fft import dct, idct
from threadpoolctl import ThreadpoolController

from facerl.errors import FacerlError
from facerl.export.curves import ArkitCurves
from facerl.head.arkit import ARKIT_NAMES

DEFAULT_SMOOTH = 0.03   # smoothness (module docstring): on val, the lowest LVE and closure as at 0; 0.1 lost 1.2 points
ADMM_STEPS = 3000     # a cap: steps stop once both ADMM residuals are below ADMM_TOL
ADMM_TOL = 1e-4       # in weight units (primal |W - Z| and dual rho |Z - Z_prev|, max over frames and shapes)
ADMM_RELAX = 1.6      # over-relaxation (Boyd et al. 2011, 3.4.3): 1.5-1.8 typically halves the steps
_THREADS = ThreadpoolController()  # made once: each bare threadpool_limits() call rescans the libraries (~1 ms)
ADMM_RHO = 0.02       # ADMM penalty in units of g: G/g has eigenvalues 0.0015 .. 24 on our head, and 0.01-0.03
                      # recovered ground-truth curves to 3e-4 in 100 steps where 0.3 left errors of 0.06


@dataclass(frozen=True)
class BlendshapeBasis:
    """A head's neutral shape (V, 3) and its 52 ARKit blendshape offsets (K, V, 3), in ARKit order."""

    neutral: np.ndarray
    targets: np.ndarray

    @property
    def n_vertices(self) -> int:
        return len(self.neutral)

    @classmethod
    def from_head(cls) -> BlendshapeBasis:
        """The MakeHuman head's blendshapes, on which facerl's synthetic corpus is built."""
        from facerl.head.rig import load_head

        head = load_head()
        return cls(head.vertices, head.blendshapes)

    @classmethod
    def load(cls, path: str | Path) -> BlendshapeBasis:
        """A user's basis: an ``.npz`` with ``neutral`` (V, 3) and one array (V, 3) per ARKit name holding that
        target's shape (absolute positions, like a shape key), e.g. exported from a rigged FLAME head."""
        path = Path(path)
        if not path.is_file():
            raise FacerlError(f"blendshape basis not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise FacerlError(f"{path} is not a readable .npz ({exc})") from None
        missing = [n for n in ["neutral", *ARKIT_NAMES] if n not in arrays]
        if missing:
            raise FacerlError(f"{path} lacks {len(missing)} arrays: {', '.join(missing[:6])}"
                              f"{' ...' if len(missing) > 6 else ''} (needs neutral + the 52 ARKit names)")
        neutral = np.asarray(arrays["neutral"], dtype=np.float64)
        if neutral.ndim != 2 or neutral.shape[1] != 3:
            raise FacerlError(f"{path}: neutral has shape {neutral.shape}, expected (V, 3)")
        shapes = [np.asarray(arrays[n], dtype=np.float64) for n in ARKIT_NAMES]
        bad = [n for n, s in zip(ARKIT_NAMES, shapes) if s.shape != neutral.shape]
        if bad:
            raise FacerlError(f"{path}: {bad[0]} has shape {arrays[bad[0]].shape}, neutral {neutral.shape}")
        targets = np.stack(shapes) - neutral                                          # (K, V, 3)
        if not (np.isfinite(neutral).all() and np.isfinite(targets).all()):
            raise FacerlError(f"{path} holds NaN or infinite values")
        return cls(neutral.astype(np.float32), targets.astype(np.float32))

    def pose(self, weights: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
        """Weights (T, K) -> vertices (T, V, 3) = template (default: neutral) + sum_k w_k * B_k."""
        base = self.neutral if template is None else np.asarray(template, dtype=np.float32).reshape(-1, 3)
        return base[None] + np.tensordot(np.asarray(weights, dtype=np.float32), self.targets, axes=1)


class CurveSolver:
    """Solves many clips against one basis; the basis's Gram matrix and eigenvectors are computed once."""

    def __init__(self, basis: BlendshapeBasis, smooth: float = DEFAULT_SMOOTH, steps: int = ADMM_STEPS,
                 tol: float = ADMM_TOL) -> None:
        if not (0 <= smooth < np.inf) or steps < 1 or not tol > 0:
            raise FacerlError(f"the solver needs 0 <= smooth < inf, steps >= 1 and tol > 0, got {smooth}, {steps}, {tol}")
        self.basis, self.steps, self.tol = basis, steps, tol
        self.b = basis.targets.reshape(len(basis.targets), -1).astype(np.float32)    # (K, P)
        with _THREADS.limit(limits=1, user_api="blas"):
            gram = (self.b.astype(np.float64) @ self.b.T.astype(np.float64))          # (K, K)
            self.scale = float(np.mean(np.diag(gram)))                                # g: an average |B_k|^2
            self.g_eig, self.g_vec = np.linalg.eigh(gram / self.scale)                # (K,), (K, K)
        self.smooth, self.rho = smooth, ADMM_RHO
        self.last_steps = 0                                                           # of the latest solve

    def solve(self, vertices: np.ndarray, template: np.ndarray, fps: float, audio: str | None = None) -> ArkitCurves:
        """Animated vertices (T, V, 3) or (T, V*3) of a face with neutral ``template`` (V, 3) -> curves."""
        t = len(vertices)
        d = np.asarray(vertices, dtype=np.float32).reshape(t, -1) - np.asarray(template, dtype=np.float32).reshape(1, -1)
        if d.shape[1] != self.b.shape[1]:
            raise FacerlError(f"the animation has {d.shape[1] // 3} vertices, the blendshape basis "
                              f"{self.b.shape[1] // 3}")
        if not np.isfinite(d).all():
            raise FacerlError("the animation holds NaN or infinite values")
        # One BLAS thread: the products are small, and threads fighting other work cost 2-5x (measured).
        with _THREADS.limit(limits=1, user_api="blas"):
            rhs = (d @ self.b.T).astype(np.float64) / self.scale                      # (T, K): B d_t / g
            weights = self._admm(rhs)
        return ArkitCurves(weights=weights.astype(np.float32), fps=fps, audio=audio)

    def _admm(self, rhs: np.ndarray) -> np.ndarray:
        """min_W 1/2 tr(W G W^T) - tr(W^T rhs) + smooth/2 |D W|^2 over 0 <= W <= 1 (G, rhs in units of g)."""
        t = len(rhs)
        l_eig = 2.0 - 2.0 * np.cos(np.pi * np.arange(t) / t)                          # (T,) path Laplacian
        base = self.g_eig[None] + self.smooth * l_eig[:, None]                         # (T, K) eigenvalues
        q, rho = self.g_vec, self.rho

        def unconstrained(r: np.ndarray) -> np.ndarray:                               # solves W G + s L W + rho W = r
            return idct(dct(r @ q, type=2, norm="ortho", axis=0) / (base + rho), type=2, norm="ortho", axis=0) @ q.T

        z, u = np.zeros_like(rhs), np.zeros_like(rhs)                                 # (T, K) each; u scaled by rho
        for step in range(1, self.steps + 1):
            w = unconstrained(rhs + rho * (z - u))
            w_hat = ADMM_RELAX * w + (1 - ADMM_RELAX) * z
            z_prev, z = z, np.clip(w_hat + u, 0.0, 1.0)
            u += w_hat - z
            primal, dual = np.abs(w - z).max(), rho * np.abs(z - z_prev).max()
            if primal < self.tol and dual < self.tol:
                break
            if step % 10 == 0 and max(primal, dual) > 10 * min(primal, dual):         # residual balancing (3.4.1):
                factor = 2.0 if primal > dual else 0.5                                # a new rho costs nothing, the
                rho, u = rho * factor, u / factor                                     # eigenbasis stays the same
        self.last_steps = step
        return z


def solve_curves(vertices: np.ndarray, template: np.ndarray, fps: float, basis: BlendshapeBasis | None = None,
                 smooth: float = DEFAULT_SMOOTH, audio: str | None = None) -> ArkitCurves:
    """ARKit curves of one animation (T, V, 3) of the face ``template`` (V, 3); basis: our head's by default."""
    return CurveSolver(basis or BlendshapeBasis.from_head(), smooth).solve(vertices, template, fps, audio)


SPAN_TOLERANCE = 1e-3   # largest relative part of a motion-basis row outside the blendshape span for a read-out


def readout_matrix(motion_basis: np.ndarray, basis: BlendshapeBasis) -> np.ndarray | None:
    """The map M (K_m, K) with ``coefficients @ M`` = ARKit weights, for an actor whose motion basis
    (K_m, P) lies in the span of the blendshapes (a PCA of blendshape-driven motion does, to ~1e-6), or None.

    Route (b) of the export: the actor predicts the curves itself (a linear read-out of its own motion
    coefficients, no solve); weights outside [0, 1] are clipped by :class:`ArkitCurves`."""
    b = basis.targets.reshape(len(basis.targets), -1).astype(np.float64)              # (K, P)
    m = np.asarray(motion_basis, dtype=np.float64)                                     # (K_m, P)
    if m.ndim != 2 or m.shape[1] != b.shape[1] or len(m) == 0:
        return None
    x, *_ = np.linalg.lstsq(b.T, m.T, rcond=None)                                      # (K, K_m)
    outside = np.linalg.norm(m.T - b.T @ x, axis=0) / np.maximum(np.linalg.norm(m, axis=1), 1e-30)
    return x.T.astype(np.float32) if outside.max() <= SPAN_TOLERANCE else None
