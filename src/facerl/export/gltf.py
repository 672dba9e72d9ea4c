"""glTF 2.0 binary (GLB) export: the head mesh with normals, its ARKit morph targets and one animation of their
weights, so a curve file plays in Blender, three.js, Unity or Unreal without facerl.

Layout (one buffer, one mesh, one node, one animation):

* primitive attributes ``POSITION`` (with min/max), ``NORMAL`` (area-weighted from the neutral mesh, unit
  length), optional ``COLOR_0`` (linear RGB, as glTF defines vertex colours) and ``indices``;
* K morph targets (52 ARKit shapes) with ``POSITION`` deltas (min/max) and ``NORMAL`` deltas, names in
  ``mesh.extras.targetNames`` (the convention Blender and three.js read); default ``mesh.weights`` zeros;
* one animation: a LINEAR sampler whose input is the frame times in seconds and whose output is the T*K
  weights, and a channel on the node's ``weights`` path. ``animation.extras`` holds ``fps`` and ``audio``.

Targets are stored as **sparse** accessors: an ARKit shape moves a fifth of the head on average (226 to 2534 of
4784 vertices), so sparse targets are lossless and ~3x smaller than dense ones (``sparse=False`` writes dense
ones). Normal deltas are included because engines that do not recompute normals (three.js, Unity) would
otherwise light an open jaw with the closed jaw's normals; they cost little in sparse form.

Dimension legend: T frames, K targets, V vertices, F triangles.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pygltflib as gl

from facerl.errors import FacerlError
from facerl.render.renderer import vertex_normals
from facerl.utils.io import atomic_path, existing_file

_NP_COMPONENT = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint16): gl.UNSIGNED_SHORT,
                 np.dtype(np.uint32): gl.UNSIGNED_INT}
_COMPONENT_NP = {gl.BYTE: np.int8, gl.UNSIGNED_BYTE: np.uint8, gl.SHORT: np.int16, gl.UNSIGNED_SHORT: np.uint16,
                 gl.UNSIGNED_INT: np.uint32, gl.FLOAT: np.float32}
_TYPE_WIDTH = {gl.SCALAR: 1, gl.VEC2: 2, gl.VEC3: 3, gl.VEC4: 4, gl.MAT4: 16}


def unit_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) float32; a vertex on no (non-degenerate) face gets +z."""
    n = vertex_normals(vertices, faces)
    n[np.linalg.norm(n, axis=1) < 0.5] = (0.0, 0.0, 1.0)
    return n


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """Display (sRGB) colours in [0, 1] -> linear RGB, the space of glTF's COLOR_0."""
    c = np.clip(np.asarray(c, np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


class _Buffer:
    """The GLB's BIN chunk, built view by view (each view 4-byte aligned, as float accessors need)."""

    def __init__(self, doc: gl.GLTF2):
        self.doc, self.chunks, self.size = doc, [], 0

    def view(self, array: np.ndarray, target: int | None = None) -> int:
        data = np.ascontiguousarray(array).tobytes()
        pad = -self.size % 4
        self.chunks.append(b"\0" * pad)
        self.size += pad
        self.doc.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.size, byteLength=len(data),
                                                  target=target))
        self.chunks.append(data)
        self.size += len(data)
        return len(self.doc.bufferViews) - 1

    def accessor(self, array: np.ndarray, type_: str, target: int | None = None, bounds: bool = False) -> int:
        """A dense accessor over ``array`` (N, width) or (N,); min/max per component when ``bounds``."""
        flat = array.reshape(len(array), -1)
        acc = gl.Accessor(bufferView=self.view(array, target), componentType=_NP_COMPONENT[array.dtype],
                          count=len(array), type=type_)
        if bounds:
            acc.min, acc.max = _bounds(flat)
        self.doc.accessors.append(acc)
        return len(self.doc.accessors) - 1

    def sparse_vec3(self, delta: np.ndarray, bounds: bool) -> int:
        """A VEC3 float accessor of V zeros with the non-zero rows of ``delta`` (V, 3) stored sparsely."""
        rows = np.flatnonzero(np.any(delta != 0, axis=1))
        if rows.size == 0:  # glTF requires sparse.count >= 1: store one explicit zero
            rows = np.array([0])
        idx = rows.astype(np.uint16 if len(delta) <= 0xFFFF else np.uint32)
        sparse = gl.Sparse(count=len(rows),
                           indices=gl.AccessorSparseIndices(bufferView=self.view(idx), byteOffset=None,
                                                            componentType=_NP_COMPONENT[idx.dtype]),
                           values=gl.AccessorSparseValues(bufferView=self.view(delta[rows]), byteOffset=None))
        acc = gl.Accessor(bufferView=None, byteOffset=None, componentType=gl.FLOAT, count=len(delta),
                          type=gl.VEC3, sparse=sparse)
        if bounds:
            acc.min, acc.max = _bounds(delta)
        self.doc.accessors.append(acc)
        return len(self.doc.accessors) - 1

    def blob(self) -> bytes:
        return b"".join(self.chunks) + b"\0" * (-self.size % 4)


def _bounds(flat: np.ndarray) -> tuple[list[float], list[float]]:
    # float32 -> Python float is exact, so the JSON bounds equal the stored values as the validator requires
    return [float(x) for x in flat.min(0)], [float(x) for x in flat.max(0)]


def _check_inputs(weights: np.ndarray, names: tuple[str, ...], neutral: np.ndarray, faces: np.ndarray,
                  targets: np.ndarray, colors: np.ndarray | None) -> None:
    V = len(neutral)
    if neutral.ndim != 2 or neutral.shape[1] != 3 or V == 0:
        raise FacerlError(f"GLB export: neutral must be (V, 3) vertices, got shape {neutral.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise FacerlError(f"GLB export: faces must be (F, 3) triangles, got shape {faces.shape}")
    if faces.min() < 0 or faces.max() >= V:
        raise FacerlError(f"GLB export: face indices must lie in [0, {V - 1}]")
    if targets.shape != (len(names), V, 3):
        raise FacerlError(f"GLB export: targets must be ({len(names)}, {V}, 3) offsets (one per curve name), "
                          f"got shape {targets.shape}")
    if weights.ndim != 2 or weights.shape[1] != len(names) or len(weights) == 0:
        raise FacerlError(f"GLB export: weights must be (T > 0, {len(names)}), got shape {weights.shape}")
    if colors is not None and colors.shape != (V, 3):
        raise FacerlError(f"GLB export: colors must be ({V}, 3), got shape {colors.shape}")
    for what, a in (("neutral", neutral), ("targets", targets), ("weights", weights), ("colors", colors)):
        if a is not None and not np.isfinite(a).all():
            raise FacerlError(f"GLB export: {what} contain NaN or inf")


def write_glb(path: str | os.PathLike, curves: Any, neutral: np.ndarray, faces: np.ndarray,
              targets: np.ndarray, colors: np.ndarray | None = None, *, sparse: bool = True,
              morph_normals: bool = True) -> None:
    """Write ``curves`` (an ``ArkitCurves``: weights (T, K), fps, names, audio) as a GLB at ``path``, atomically.

    ``neutral`` (V, 3) metres, ``faces`` (F, 3), ``targets`` (K, V, 3) blendshape offsets in the order of
    ``curves.names``, ``colors`` (V, 3) display (sRGB) albedo in [0, 1] or None (stored linearised)."""
    weights = np.asarray(curves.weights, np.float32)  # (T, K)
    names = tuple(curves.names)
    neutral = np.asarray(neutral, np.float32)
    faces = np.asarray(faces)
    targets = np.asarray(targets, np.float32)
    colors = None if colors is None else np.asarray(colors, np.float32)
    _check_inputs(weights, names, neutral, faces, targets, colors)
    fps = float(curves.fps)
    if not fps > 0:
        raise FacerlError(f"GLB export: fps must be > 0, got {fps}")
    V = len(neutral)

    doc = gl.GLTF2(asset=gl.Asset(generator="facerl", version="2.0"))
    buf = _Buffer(doc)
    normals = unit_normals(neutral, faces)
    attrs = gl.Attributes(POSITION=buf.accessor(neutral, gl.VEC3, gl.ARRAY_BUFFER, bounds=True),
                          NORMAL=buf.accessor(normals, gl.VEC3, gl.ARRAY_BUFFER))
    if colors is not None:
        attrs.COLOR_0 = buf.accessor(srgb_to_linear(colors), gl.VEC3, gl.ARRAY_BUFFER)
    index_type = np.uint16 if V <= 0xFFFF else np.uint32  # 0xFFFF itself is the primitive-restart value
    indices = buf.accessor(faces.astype(index_type).reshape(-1), gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER)

    morphs = []
    for k in range(len(names)):
        pos = targets[k]  # (V, 3)
        nrm = unit_normals(neutral + pos, faces) - normals if morph_normals else None
        if sparse:
            t = gl.Attributes(POSITION=buf.sparse_vec3(pos, bounds=True))
            if nrm is not None:
                t.NORMAL = buf.sparse_vec3(nrm, bounds=False)
        else:
            t = gl.Attributes(POSITION=buf.accessor(pos, gl.VEC3, gl.ARRAY_BUFFER, bounds=True))
            if nrm is not None:
                t.NORMAL = buf.accessor(nrm, gl.VEC3, gl.ARRAY_BUFFER)
        morphs.append(t)

    material = gl.Material(name="skin", pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[1.0, 1.0, 1.0, 1.0] if colors is not None else [0.72, 0.45, 0.34, 1.0],
        metallicFactor=0.0, roughnessFactor=0.6), doubleSided=True)  # the head is open at the neck and mouth
    doc.materials.append(material)
    doc.meshes.append(gl.Mesh(name="head", weights=[0.0] * len(names), extras={"targetNames": list(names)},
                              primitives=[gl.Primitive(attributes=attrs, indices=indices, material=0,
                                                       mode=gl.TRIANGLES, targets=morphs)]))
    doc.nodes.append(gl.Node(name="head", mesh=0))
    doc.scenes.append(gl.Scene(name="facerl", nodes=[0]))
    doc.scene = 0

    times = (np.arange(len(weights)) / fps).astype(np.float32)  # (T,) seconds
    sampler = gl.AnimationSampler(input=buf.accessor(times, gl.SCALAR, bounds=True),
                                  output=buf.accessor(weights.reshape(-1), gl.SCALAR),
                                  interpolation=gl.ANIM_LINEAR)
    doc.animations.append(gl.Animation(
        name="arkit", samplers=[sampler],
        channels=[gl.AnimationChannel(sampler=0, target=gl.AnimationChannelTarget(node=0, path="weights"))],
        extras={"fps": fps, "audio": getattr(curves, "audio", None)}))

    blob = buf.blob()
    doc.buffers.append(gl.Buffer(byteLength=len(blob)))
    doc.set_binary_blob(blob)
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"".join(doc.save_to_bytes()))


def _load(path: str | os.PathLike) -> tuple[gl.GLTF2, bytes]:
    path = existing_file(path, "GLB")
    data = path.read_bytes()
    if data[:4] != b"glTF" or len(data) < 20:
        raise FacerlError(f"{path} is not a GLB file (no glTF binary header)")
    try:
        doc = gl.GLTF2.load_from_bytes(data)
    except (ValueError, KeyError, UnicodeDecodeError, struct.error) as exc:
        raise FacerlError(f"cannot read {path} as GLB ({exc})") from None
    return doc, doc.binary_blob() or b""


def read_accessor(doc: gl.GLTF2, blob: bytes, index: int) -> np.ndarray:
    """Decode accessor ``index`` (dense or sparse, tightly packed or strided) -> (count, width) array."""
    acc = doc.accessors[index]
    width, dtype = _TYPE_WIDTH[acc.type], np.dtype(_COMPONENT_NP[acc.componentType])
    out = np.zeros((acc.count, width), dtype)
    if acc.bufferView is not None:
        bv = doc.bufferViews[acc.bufferView]
        start = (bv.byteOffset or 0) + (acc.byteOffset or 0)
        stride = bv.byteStride or width * dtype.itemsize
        raw = np.frombuffer(blob, np.uint8, count=stride * (acc.count - 1) + width * dtype.itemsize, offset=start)
        rows = np.lib.stride_tricks.as_strided(raw, (acc.count, width * dtype.itemsize), (stride, 1))
        out[:] = np.ascontiguousarray(rows).view(dtype).reshape(acc.count, width)
    if acc.sparse is not None:
        sp = acc.sparse
        ibv, vbv = doc.bufferViews[sp.indices.bufferView], doc.bufferViews[sp.values.bufferView]
        idx = np.frombuffer(blob, _COMPONENT_NP[sp.indices.componentType], count=sp.count,
                            offset=(ibv.byteOffset or 0) + (sp.indices.byteOffset or 0))
        vals = np.frombuffer(blob, dtype, count=sp.count * width,
                             offset=(vbv.byteOffset or 0) + (sp.values.byteOffset or 0))
        out[idx.astype(np.int64)] = vals.reshape(sp.count, width)
    return out


def read_glb_animation(path: str | os.PathLike) -> dict:
    """The weights animation of a GLB written by :func:`write_glb` (or any GLB whose first animation drives a
    mesh's morph weights): ``names`` (K,), ``times`` (T,) s, ``weights`` (T, K) float32, ``n_vertices``,
    ``fps`` and ``audio`` (None when absent)."""
    doc, blob = _load(path)
    if not doc.meshes or not doc.animations:
        raise FacerlError(f"{path}: no mesh or no animation in this GLB")
    mesh = doc.meshes[0]
    names = list((mesh.extras or {}).get("targetNames") or [])
    K = len(mesh.primitives[0].targets or [])
    channel = next((c for c in doc.animations[0].channels if c.target.path == "weights"), None)
    if channel is None or K == 0:
        raise FacerlError(f"{path}: the first animation has no morph-weights channel")
    sampler = doc.animations[0].samplers[channel.sampler]
    if (sampler.interpolation or gl.ANIM_LINEAR) not in (gl.ANIM_LINEAR, gl.ANIM_STEP):
        raise FacerlError(f"{path}: {sampler.interpolation} keyframes (in/out tangents) are not read; "
                          "facerl reads LINEAR or STEP weights")
    times = read_accessor(doc, blob, sampler.input)[:, 0].astype(np.float32)  # (T,)
    values = read_accessor(doc, blob, sampler.output)
    if values.size != len(times) * K:
        raise FacerlError(f"{path}: {values.size} weights for {len(times)} keyframes x {K} targets")
    weights = values.reshape(len(times), K).astype(np.float32)  # (T, K)
    extras = doc.animations[0].extras or {}
    return {"names": names or [f"target{k}" for k in range(K)], "times": times, "weights": weights,
            "n_vertices": doc.accessors[mesh.primitives[0].attributes.POSITION].count,
            "fps": extras.get("fps"), "audio": extras.get("audio"), "path": Path(path)}
