"""`facerl render`: vertex files + wav -> side-by-side mp4 with sound, and an optional PNG still."""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from facerl.audio import SAMPLE_RATE, read_wav, write_wav
from facerl.data.layout import load_faces
from facerl.errors import FacerlError
from facerl.head.rig import HeadRig, load_head
from facerl.render.renderer import (
    Panel,
    default_vertex_colors,
    render_still,
    render_video,
)
from facerl.utils.io import load_npy

IRIS, PUPIL = np.array([0.33, 0.22, 0.13]), np.array([0.05, 0.04, 0.04])
TONGUE = np.array([0.58, 0.28, 0.30])


def head_vertex_colors(head: HeadRig) -> np.ndarray:
    """Albedo (V, 3) for the MakeHuman head: part colours, plus an iris and pupil on each eyeball's front."""
    colors = default_vertex_colors(head.part).copy()
    for side in (-1, 1):
        eye = np.flatnonzero((head.part == 1) & (np.sign(head.vertices[:, 0]) == side))
        centre = head.vertices[eye].mean(0)
        radius = np.linalg.norm(head.vertices[eye] - centre, axis=1).max()
        front = (head.vertices[eye, 2] - centre[2]) / radius  # 1 at the cornea's apex
        colors[eye[front > 0.80]] = IRIS
        colors[eye[front > 0.94]] = PUPIL
    # The renderer has no ambient occlusion: shade the mouth interior by depth so an open mouth reads dark.
    inner = np.flatnonzero(head.part >= 2)  # teeth and tongue
    z = head.vertices[inner, 2]
    depth = np.clip((z.max() - z) / (np.ptp(z) + 1e-9), 0.0, 1.0)[:, None]  # 0 at the front, 1 at the back
    base = np.where((head.part[inner] == 3)[:, None], TONGUE, colors[inner])
    colors[inner] = base * (1.0 - 0.65 * depth)
    return colors


def load_sequence(path: str | Path, n_vertices: int) -> np.ndarray:
    """A .npy of (T, V*3) or (T, V, 3) -> (T, V, 3) float32, checked against the expected vertex count."""
    seq = load_npy(path, "vertex")
    if seq.ndim == 2 and seq.shape[1] % 3 == 0 and len(seq):
        seq = seq.reshape(len(seq), -1, 3)
    if seq.ndim != 3 or seq.shape[2] != 3 or len(seq) == 0 or seq.dtype.kind not in "fiu":
        raise FacerlError(f"{path}: expected (T, V*3) or (T, V, 3) vertices with T > 0, got shape {seq.shape}")
    if seq.shape[1] != n_vertices:
        raise FacerlError(f"{path}: {seq.shape[1]} vertices per frame, but the mesh has {n_vertices}")
    if not np.isfinite(seq).all():
        raise FacerlError(f"{path}: vertices contain NaN or inf")
    return seq.astype(np.float32)


def check_render_config(cfg) -> tuple[int, float, str]:
    """render.size (even, 16..4096), render.fps (> 0), render.backend (auto | egl | software)."""
    size, fps, backend = cfg.size, cfg.fps, cfg.backend
    if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 4096 or size % 2:
        raise FacerlError(f"render.size must be an even integer in 16..4096, got {size!r}")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not (math.isfinite(fps) and fps > 0):
        raise FacerlError(f"render.fps must be a positive number, got {fps!r}")
    if backend not in ("auto", "egl", "software"):
        raise FacerlError(f"render.backend must be auto, egl or software, got {backend!r}")
    return size, float(fps), backend


def check_output(path: str | Path, suffix: str, flag: str) -> Path:
    """Fail before any work if an output path cannot be written as asked."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise FacerlError(f"{flag} must end in {suffix}: {path}")
    if path.is_dir():
        raise FacerlError(f"{flag} is a directory: {path}")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise FacerlError(f"{flag}: {parent} is a file, not a folder")
    return path


def render_command(args: argparse.Namespace, render_cfg) -> None:
    size, fps, backend = check_render_config(render_cfg)
    out = check_output(args.out, ".mp4", "--out")
    still = check_output(args.still, ".png", "--still") if args.still else None
    if args.faces:
        faces, colors = load_faces(args.faces), None
        n_vertices = int(faces.max()) + 1
    else:
        head = load_head()
        faces, colors, n_vertices = head.faces, head_vertex_colors(head), head.n_vertices
    titles = args.titles or [Path(v).stem for v in args.vertices]
    if len(titles) != len(args.vertices):
        raise FacerlError(f"{len(titles)} titles for {len(args.vertices)} vertex files")
    seqs = [load_sequence(v, n_vertices) for v in args.vertices]
    n_frames = min(len(s) for s in seqs)
    if still is not None and args.still_frame >= n_frames:
        raise FacerlError(f"--still-frame {args.still_frame} is past the last frame ({n_frames - 1})")
    audio = read_wav(args.wav) if args.wav else None
    seconds = max(len(s) for s in seqs) / args.fps_in
    if audio is not None and abs(len(audio) / SAMPLE_RATE - seconds) > 0.1:
        print(f"warning: the audio lasts {len(audio) / SAMPLE_RATE:.2f} s but the motion {seconds:.2f} s "
              f"(--fps-in {args.fps_in:g}); the video lasts as long as the longer", file=sys.stderr)
    stride = max(1, round(args.fps_in / fps))
    panels = [Panel(s[::stride], t) for s, t in zip(seqs, titles)]
    with tempfile.TemporaryDirectory() as tmp:
        wav = None
        if audio is not None:  # normalised to 16 kHz mono PCM for muxing
            wav = Path(tmp) / "audio16k.wav"
            write_wav(wav, audio)
        try:
            info = render_video(panels, faces, out, wav_path=wav, fps=args.fps_in / stride, size=size,
                                backend=backend, vertex_colors=colors)
            if still is not None:
                f = args.still_frame
                render_still([Panel(s[f:f + 1], t) for s, t in zip(seqs, titles)], faces, still, size=size,
                             backend=backend, vertex_colors=colors)
        except ValueError as exc:  # the renderer's input checks (faces vs vertices, colours) are user errors
            raise FacerlError(str(exc)) from None
    print(f"wrote {info.path}: {info.frames} frames at {info.fps:g} fps, {info.render_fps:.1f} frames/s "
          f"({info.backend} backend)" + (f"\nwrote {still}" if still else ""))
