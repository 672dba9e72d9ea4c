"""GLB export: structure, round trips, sparse vs dense targets, and the Khronos glTF Validator (npm)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facerl.errors import FacerlError
from facerl.export.curves import ArkitCurves
from facerl.export.gltf import (
    _load,
    read_accessor,
    read_glb_animation,
    srgb_to_linear,
    write_glb,
)
from facerl.head.arkit import ARKIT_INDEX, ARKIT_NAMES
from facerl.head.rig import load_head
from facerl.render.commands import head_vertex_colors

TOOLS = Path(__file__).resolve().parents[2] / "tools"
VALIDATOR = TOOLS / "node_modules" / "gltf-validator"


@pytest.fixture(scope="module")
def head():
    return load_head()


def speech_like(T: int, fps: float = 30.0, seed: int = 0) -> ArkitCurves:
    """(T, 52) curves: a jaw/lip rhythm plus noise on every shape, with exact 0 and 1 values."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / fps
    w = 0.15 * rng.random((T, 52))
    w[:, ARKIT_INDEX["jawOpen"]] = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    w[:, ARKIT_INDEX["mouthClose"]] = np.clip(np.cos(2 * np.pi * 3 * t), 0, 1)
    w[0] = 0.0
    w[-1, ARKIT_INDEX["jawOpen"]] = 1.0
    return ArkitCurves(np.clip(w, 0, 1), fps, audio="speech.wav")


def write_head(path: Path, head, curves: ArkitCurves, **kw) -> Path:
    write_glb(path, curves, head.vertices, head.faces, head.blendshapes, head_vertex_colors(head), **kw)
    return path


def test_round_trip_weights_times_and_names(tmp_path, head):
    curves = speech_like(45)
    anim = read_glb_animation(write_head(tmp_path / "a.glb", head, curves))
    assert anim["names"] == ARKIT_NAMES
    assert anim["n_vertices"] == head.n_vertices
    assert anim["fps"] == 30.0 and anim["audio"] == "speech.wav"
    np.testing.assert_array_equal(anim["weights"], curves.weights)  # float32 in, float32 out
    np.testing.assert_allclose(anim["times"], np.arange(45) / 30.0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sparse", [True, False])
def test_mesh_targets_and_animation_structure(tmp_path, head, sparse):
    path = write_head(tmp_path / "a.glb", head, speech_like(12), sparse=sparse)
    doc, blob = _load(path)
    mesh, prim = doc.meshes[0], doc.meshes[0].primitives[0]
    np.testing.assert_array_equal(read_accessor(doc, blob, prim.attributes.POSITION), head.vertices)
    np.testing.assert_array_equal(read_accessor(doc, blob, prim.indices).reshape(-1, 3), head.faces)
    normals = read_accessor(doc, blob, prim.attributes.NORMAL)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    assert normals[head.vertices[:, 2] > head.vertices[:, 2].max() - 0.005, 2].min() > 0.5  # nose tip faces +z
    np.testing.assert_allclose(read_accessor(doc, blob, prim.attributes.COLOR_0),
                               srgb_to_linear(head_vertex_colors(head)), atol=1e-7)
    assert mesh.extras["targetNames"] == ARKIT_NAMES and mesh.weights == [0.0] * 52
    assert len(prim.targets) == 52 and (doc.accessors[prim.targets[0]["POSITION"]].sparse is not None) == sparse
    for k in (0, ARKIT_INDEX["jawOpen"], 51):
        pos = doc.accessors[prim.targets[k]["POSITION"]]
        np.testing.assert_array_equal(read_accessor(doc, blob, prim.targets[k]["POSITION"]), head.blendshapes[k])
        assert pos.min == head.blendshapes[k].min(0).tolist() and pos.max == head.blendshapes[k].max(0).tolist()
        assert "NORMAL" in prim.targets[k]
    (anim,) = doc.animations
    (channel,), (sampler,) = anim.channels, anim.samplers
    assert channel.target.path == "weights" and channel.target.node == 0 and doc.nodes[0].mesh == 0
    assert sampler.interpolation == "LINEAR"
    assert doc.accessors[sampler.input].min == [0.0] and doc.accessors[sampler.input].max[0] == pytest.approx(11 / 30)
    assert doc.accessors[sampler.output].count == 12 * 52


def test_sparse_targets_are_much_smaller_for_a_10_second_clip(tmp_path, head):
    curves = speech_like(300)
    sizes = {s: write_head(tmp_path / f"{s}.glb", head, curves, sparse=s).stat().st_size for s in (True, False)}
    print(f"10 s GLB: sparse {sizes[True] / 1e6:.2f} MB, dense {sizes[False] / 1e6:.2f} MB")
    assert sizes[True] < 0.4 * sizes[False]
    a, b = (read_glb_animation(tmp_path / f"{s}.glb") for s in (True, False))
    np.testing.assert_array_equal(a["weights"], b["weights"])


def test_bad_inputs_raise_one_line_errors_and_leave_the_old_file(tmp_path, head):
    path = write_head(tmp_path / "a.glb", head, speech_like(5))
    before = path.read_bytes()
    curves = speech_like(5)
    with pytest.raises(FacerlError, match="targets must be"):
        write_glb(path, curves, head.vertices, head.faces, head.blendshapes[:10])
    with pytest.raises(FacerlError, match="face indices"):
        write_glb(path, curves, head.vertices, head.faces + len(head.vertices), head.blendshapes)
    with pytest.raises(FacerlError, match="colors must be"):
        write_glb(path, curves, head.vertices, head.faces, head.blendshapes, np.ones((3, 3)))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.glb"]  # no temp file left behind
    (tmp_path / "x.glb").write_bytes(b"not a glb file at all")
    with pytest.raises(FacerlError, match="not a GLB"):
        read_glb_animation(tmp_path / "x.glb")
    with pytest.raises(FacerlError, match="not found"):
        read_glb_animation(tmp_path / "missing.glb")


def validate(path: Path) -> dict:
    """The Khronos validator's JSON report for ``path`` (skips when node or the npm package is missing)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Khronos glTF validator (npm gltf-validator) cannot run")
    if not VALIDATOR.is_dir():
        pytest.skip(f"npm gltf-validator is not installed in {TOOLS} (run `npm ci --prefix tools`)")
    out = subprocess.run([node, str(TOOLS / "validate.mjs"), str(path)], capture_output=True, text=True,
                         timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("sparse", [True, False])
def test_khronos_validator_reports_no_errors_or_warnings(tmp_path, head, sparse):
    report = validate(write_head(tmp_path / "head.glb", head, speech_like(30), sparse=sparse))
    issues = report["issues"]
    print(f"validator {report['validatorVersion']}: {issues['numErrors']} errors, {issues['numWarnings']} "
          f"warnings, {issues['numInfos']} infos, {issues['numHints']} hints")
    for m in issues["messages"]:
        print(f"  severity {m['severity']} {m['code']} {m.get('pointer', '')}: {m['message']}")
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:5]
    info = report["info"]
    assert info["hasMorphTargets"] and info["animationCount"] == 1
    assert info["totalVertexCount"] == head.n_vertices and info["totalTriangleCount"] == len(head.faces)


def test_khronos_validator_on_a_single_frame_without_colours(tmp_path, head):
    path = tmp_path / "one.glb"
    write_glb(path, ArkitCurves(np.zeros((1, 52), np.float32), 30.0), head.vertices, head.faces, head.blendshapes)
    issues = validate(path)["issues"]
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:5]
