"""One animation -> every file the user asked for, chosen by suffix (`facerl animate` and `facerl export`).

Dimensions: T frames (30 fps), V vertices, K blendshapes (52).

    .mp4    rendered video with the speech           .npy   vertices (T, V*3)
    folder  OBJ sequence (a name without suffix)     .csv   Live Link Face CSV (ARKit curves)
    .json   ARKit curves with fps, names, audio      .glb   glTF 2.0: the face, 52 morph targets, animation
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerl.errors import FacerlError
from facerl.utils.io import check_writable

KINDS = {".mp4": "mp4", ".npy": "npy", "": "obj", ".csv": "csv", ".json": "json", ".glb": "glb"}
CURVE_KINDS = frozenset({"csv", "json", "glb"})   # outputs made of ARKit curves
ROUTES = ("solve", "readout")


def output_kinds(outs: list[str]) -> list[str]:
    """The kind of every ``--out`` (checked before any model runs: suffix, free folder, writable parent)."""
    kinds = []
    for out in outs:
        kind = KINDS.get(Path(out).suffix.lower())
        if kind is None:
            raise FacerlError(f"--out {out}: use .mp4, .npy, .csv (Live Link Face), .json (ARKit curves), .glb "
                              "(glTF) or a folder name (OBJ sequence)")
        if kind == "obj" and (Path(out).exists() or Path(out).is_symlink()):
            raise FacerlError(f"{out} already exists; choose another output folder")
        check_writable(Path(out).parent)
        kinds.append(kind)
    return kinds


@dataclass(frozen=True)
class CurveOptions:
    """How ARKit curves are made (see facerl.export.solve): ``route`` solve (from vertices) or readout (from
    the actor's motion coefficients), the solver's ``smooth``, and a user's blendshape ``basis`` (.npz)."""

    route: str = "solve"
    smooth: float | None = None
    basis: str | None = None

    def __post_init__(self):
        if self.route not in ROUTES:
            raise FacerlError(f"--arkit must be one of {', '.join(ROUTES)}, got {self.route!r}")
        if self.smooth is not None and not 0 <= self.smooth < math.inf:
            raise FacerlError(f"--smooth must be a number >= 0, got {self.smooth}")


def load_basis(options: CurveOptions, n_vertices: int):
    """The blendshape basis for a mesh of ``n_vertices``: the user's .npz, or our head's when it fits."""
    from facerl.export.solve import BlendshapeBasis

    if options.basis:
        basis = BlendshapeBasis.load(options.basis)
    else:
        basis = BlendshapeBasis.from_head()
        if basis.n_vertices != n_vertices:
            raise FacerlError(f"ARKit outputs (.csv/.json/.glb) of a {n_vertices}-vertex mesh need its blendshapes: "
                              f"pass --basis basis.npz (neutral + the 52 ARKit-named target shapes, e.g. of a "
                              f"rigged FLAME head); facerl's own head has {basis.n_vertices}")
    if basis.n_vertices != n_vertices:
        raise FacerlError(f"{options.basis}: {basis.n_vertices} vertices, the animation has {n_vertices}")
    return basis


class CurveMaker:
    """ARKit curves for many animations of one topology, everything checked and set up once (before any model
    runs): the basis, and the solver (route solve) or the read-out matrix of the actor's ``motion_basis``
    (K_m, V*3) (route readout)."""

    def __init__(self, options: CurveOptions, n_vertices: int, motion_basis: np.ndarray | None = None) -> None:
        from facerl.export.solve import DEFAULT_SMOOTH, CurveSolver, readout_matrix

        self.basis = load_basis(options, n_vertices)
        self.solver = self.readout = None
        if options.route == "readout":
            self.readout = None if motion_basis is None else readout_matrix(motion_basis, self.basis)
            if self.readout is None:
                raise FacerlError("--arkit readout needs an actor whose motion space lies in the blendshape span "
                                  "(a PCA basis trained on this head); use --arkit solve")
        else:
            self.solver = CurveSolver(self.basis, DEFAULT_SMOOTH if options.smooth is None else options.smooth)

    def curves(self, vertices: np.ndarray, template: np.ndarray, fps: float, audio: str | None = None,
               coefficients: np.ndarray | None = None):
        """Curves of vertices (T, V, 3) of the face ``template`` (V, 3); the read-out uses ``coefficients``
        (T, K_m) of the actor's motion instead."""
        from facerl.export.curves import ArkitCurves

        if self.readout is not None:
            return ArkitCurves.clipped(coefficients @ self.readout, fps, audio)
        return self.solver.solve(vertices, template, fps, audio)


def head_colors(n_vertices: int) -> np.ndarray | None:
    """Albedo (V, 3) of facerl's head for meshes of its size, else None (the renderer's default colour)."""
    from facerl.head.rig import load_head
    from facerl.render.commands import head_vertex_colors

    head = load_head()
    return head_vertex_colors(head) if head.n_vertices == n_vertices else None


def write_curve_output(kind: str, out: str, curves, template: np.ndarray, faces: np.ndarray | None, basis,
                       colors: np.ndarray | None = None) -> None:
    """Write one .csv / .json / .glb of ``curves``; the GLB carries the face ``template`` (V, 3) as its neutral
    mesh with the basis's 52 targets, so it plays back template + sum_k w_k B_k."""
    from facerl.export import curves as C

    if kind == "csv":
        C.write_livelink_csv(curves, out)
    elif kind == "json":
        C.write_curves_json(curves, out)
    elif kind == "glb":
        from facerl.export.gltf import write_glb

        if faces is None:
            raise FacerlError("a .glb needs the mesh triangles: pass --faces faces.npy")
        write_glb(out, curves, np.asarray(template, dtype=np.float32).reshape(-1, 3), faces, basis.targets, colors)
    else:  # pragma: no cover - callers pass CURVE_KINDS only
        raise ValueError(kind)
