"""`facerl export RESULTS`: ARKit files for every sequence of a results folder (facerl's or another method's).

A results folder holds ``<clip>_condition_<style>.npy`` vertices (T, V*3) at 30 fps, as `facerl test` writes
them and as FaceFormer-family code does. Each sequence's face is its subject's template in the dataset
(``<root>/templates.pkl``); its curves are solved on the blendshape basis (facerl's head, or ``--basis``) and
written as ``<out>/<clip>_condition_<style>.{csv,json,glb}``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from facerl.data.layout import Layout
from facerl.errors import FacerlError
from facerl.eval.evaluate import RESULT_RE
from facerl.export.outputs import (
    CURVE_KINDS,
    CurveMaker,
    CurveOptions,
    head_colors,
    write_curve_output,
)
from facerl.models.audio import MOTION_FPS
from facerl.utils.io import check_writable, load_npy


def export_results(results: Path, dataset: Path, out_dir: Path, formats: list[str],
                   options: CurveOptions | None = None) -> int:
    """Write ``formats`` (csv / json / glb) of every result in ``results``; returns the number of sequences."""
    options = options or CurveOptions()
    if options.route != "solve":
        raise FacerlError("facerl export solves curves from vertices; --arkit readout needs the actor (animate)")
    formats = list(dict.fromkeys(formats))
    bad = sorted(set(formats) - CURVE_KINDS)
    if bad or not formats:
        raise FacerlError(f"--format must be csv, json or glb (got {', '.join(bad) or 'none'})")
    if not results.is_dir():
        raise FacerlError(f"results folder not found: {results}")
    files = sorted(p for p in results.glob("*.npy") if RESULT_RE.match(p.stem))  # as `facerl evaluate` reads them
    if not files:
        raise FacerlError(f"{results} holds no <clip>_condition_<style>.npy files (write them with `facerl test`)")
    layout = Layout(dataset)
    if not layout.templates_path.is_file():
        raise FacerlError(f"no {layout.templates_path}: pass --dataset, the corpus the results were made on")
    templates = layout.templates()
    faces = layout.faces() if "glb" in formats else None
    if "glb" in formats and faces is None:
        raise FacerlError(f"a .glb needs the mesh triangles, and {dataset} has no faces.npy")
    n_vertices = next(iter(templates.values())).shape[0]
    maker = CurveMaker(options, n_vertices)
    colors = head_colors(n_vertices)
    check_writable(out_dir)
    for path in tqdm(files, desc="export", unit="sequence"):
        clip = RESULT_RE.match(path.stem)["clip"]
        subject = Layout.parse_clip(clip)[0]
        if subject not in templates:
            raise FacerlError(f"{path.name}: no template of {subject!r} in {layout.templates_path}")
        template = templates[subject]                                                         # (V, 3)
        verts = load_npy(path, "result")
        if verts.ndim != 2 or verts.shape[1] != template.size or len(verts) == 0 or verts.dtype.kind not in "fiu":
            raise FacerlError(f"{path}: shape {verts.shape} ({verts.dtype}), expected (T > 0, {template.size}) "
                              f"numbers for {subject}")
        try:
            export_sequence(verts.astype(np.float32).reshape(len(verts), -1, 3), template, maker,
                            [str(out_dir / f"{path.stem}.{kind}") for kind in formats], faces, colors,
                            audio=layout.wav(clip).name)
        except FacerlError as exc:
            raise FacerlError(f"{path.name}: {exc}") from None
    return len(files)


def export_sequence(vertices: np.ndarray, template: np.ndarray, maker: CurveMaker, outs: list[str],
                    faces: np.ndarray | None, colors: np.ndarray | None, audio: str | None = None) -> None:
    """Solve the curves of one animation (T, V, 3) of the face ``template`` (V, 3) and write each of ``outs``
    (.csv / .json / .glb, by suffix)."""
    curves = maker.curves(vertices, template, MOTION_FPS, audio)
    for out in outs:
        write_curve_output(Path(out).suffix[1:].lower(), out, curves, template, faces, maker.basis, colors)
