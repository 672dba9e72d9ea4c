"""The CC0 MakeHuman head with 52 ARKit blendshapes (see ``assets/README.md`` for provenance).

Dimensions: T frames, V vertices, K blendshapes (52), I identity shape targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from facerl.head.arkit import ARKIT_NAMES

ASSET = "makehuman_head.npz"
REGION_NAMES = ("lips", "eye_region", "forehead", "face", "upper_face", "inner_lip_pair")


@dataclass(frozen=True)
class HeadRig:
    vertices: np.ndarray        # (V, 3) float32, metres, neutral MakeHuman head
    faces: np.ndarray           # (F, 3) int32 triangles
    part: np.ndarray            # (V,) uint8: 0 skin, 1 eye, 2 teeth, 3 tongue
    blendshapes: np.ndarray     # (K, V, 3) float32 offsets in metres, ARKit order
    identity_basis: np.ndarray  # (I, V, 3) float32 shape targets for speaker templates
    identity_names: tuple[str, ...]
    regions: dict[str, np.ndarray]

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    def template(self, identity: np.ndarray | None = None) -> np.ndarray:
        """Speaker template (V, 3): neutral head plus identity targets weighted by ``identity`` (I,)."""
        if identity is None:
            return self.vertices.copy()
        return (self.vertices + np.tensordot(identity, self.identity_basis, axes=1)).astype(np.float32)

    def pose(self, weights: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
        """ARKit weights (T, K) -> vertices (T, V, 3) = template + sum_k w_k * B_k."""
        base = self.vertices if template is None else template
        offsets = np.tensordot(weights.astype(np.float32), self.blendshapes, axes=1)  # (T, V, 3)
        return (base[None] + offsets).astype(np.float32)


@lru_cache(maxsize=1)
def load_head() -> HeadRig:
    with resources.files("facerl.assets").joinpath(ASSET).open("rb") as fh:
        data = dict(np.load(fh))
    names = [str(n) for n in data["blendshape_names"]]
    if names != ARKIT_NAMES:
        raise RuntimeError("head asset blendshapes are not in ARKit order; regenerate it")
    return HeadRig(
        vertices=data["vertices"], faces=data["faces"], part=data["part"],
        blendshapes=data["blendshapes"], identity_basis=data["identity_basis"],
        identity_names=tuple(str(n) for n in data["identity_names"]),
        regions={name: data[f"region_{name}"] for name in REGION_NAMES},
    )


def lip_gap(vertices: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Inner-lip gap in metres along +y: (..., V, 3) -> (...); ~0 when the lips meet, > 0 when open."""
    upper, lower = pair
    return vertices[..., upper, 1] - vertices[..., lower, 1]
