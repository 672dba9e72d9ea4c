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
from facerl.export.outputs import (
    CURVE_KINDS,
    CurveOptions,
    head_colors,
    load_basis,
    make_curves,
    write_curve_output,
)
from facerl.models.audio import MOTION_FPS
from facerl.utils.io import check_writable, load_npy

RESULT_SUFFIX = "_condition_"


def export_results(results: Path, dataset: Path, out_dir: Path, formats: list[str],
                   options: CurveOptions | None = None) -> int:
    """Write ``formats`` (csv / json / glb) of every result in ``results``; returns the number of sequences."""
    options = options or CurveOptions()
    if options.route != "solve":
        raise FacerlError("facerl export solves curves from vertices; --arkit readout needs the actor (animate)")
    bad = sorted(set(formats) - CURVE_KINDS)
    if bad or not formats:
        raise FacerlError(f"--format must be csv, json or glb (got {', '.join(bad) or 'none'})")
    if not results.is_dir():
        raise FacerlError(f"results folder not found: {results}")
    files = sorted(p for p in results.glob("*.npy") if RESULT_SUFFIX in p.stem)
    if not files:
        raise FacerlError(f"{results} holds no <clip>_condition_<style>.npy files (write them with `facerl test`)")
    layout = Layout(dataset)
    if not layout.templates_path.is_file():
        raise FacerlError(f"no {layout.templates_path}: pass --dataset, the corpus the results were made on")
    templates, faces = layout.templates(), layout.faces()
    if "glb" in formats and faces is None:
        raise FacerlError(f"a .glb needs the mesh triangles, and {dataset} has no faces.npy")
    n_vertices = next(iter(templates.values())).shape[0]
    basis = load_basis(options, n_vertices)
    colors = head_colors(n_vertices)
    check_writable(out_dir)
    for path in tqdm(files, desc="export", unit="sequence"):
        clip = path.stem.split(RESULT_SUFFIX)[0]
        subject = Layout.parse_clip(clip)[0]
        if subject not in templates:
            raise FacerlError(f"{path.name}: no template of {subject!r} in {layout.templates_path}")
        template = templates[subject]                                                         # (V, 3)
        verts = load_npy(path, "result").astype(np.float32)
        if verts.ndim != 2 or verts.shape[1] != template.size:
            raise FacerlError(f"{path}: shape {verts.shape}, expected (T, {template.size}) for {subject}")
        curves = make_curves(verts.reshape(len(verts), -1, 3), template, MOTION_FPS, basis, options,
                             audio=layout.wav(clip).name)
        for kind in formats:
            write_curve_output(kind, str(out_dir / f"{path.stem}.{kind}"), curves, template, faces, basis, colors)
    return len(files)

