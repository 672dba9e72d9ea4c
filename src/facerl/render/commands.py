"""`facerl render`: vertex files + wav -> side-by-side mp4 with sound, and an optional PNG still."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from facerl.audio import read_wav, write_wav
from facerl.errors import FacerlError
from facerl.head.rig import HeadRig, load_head
from facerl.render.renderer import Panel, default_vertex_colors, render_still, render_video

IRIS, PUPIL = np.array([0.33, 0.22, 0.13]), np.array([0.05, 0.04, 0.04])


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
    return colors


def load_sequence(path: str | Path, n_vertices: int) -> np.ndarray:
    """A .npy of (T, V*3) or (T, V, 3) -> (T, V, 3) float32, checked against the expected vertex count."""
    path = Path(path)
    if not path.is_file():
        raise FacerlError(f"vertex file not found: {path}")
    if path.stat().st_size == 0:
        raise FacerlError(f"vertex file is empty: {path}")
    try:
        seq = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise FacerlError(f"cannot read {path} as a .npy array ({exc})") from None
    if seq.ndim == 2 and seq.shape[1] % 3 == 0:
        seq = seq.reshape(len(seq), -1, 3)
    if seq.ndim != 3 or seq.shape[2] != 3 or len(seq) == 0:
        raise FacerlError(f"{path}: expected (T, V*3) or (T, V, 3) vertices, got shape {seq.shape}")
    if seq.shape[1] != n_vertices:
        raise FacerlError(f"{path}: {seq.shape[1]} vertices per frame, but the mesh has {n_vertices}")
    if not np.isfinite(seq).all():
        raise FacerlError(f"{path}: vertices contain NaN or inf")
    return seq.astype(np.float32)


def render_command(args: argparse.Namespace, render_cfg) -> None:
    if args.faces:
        if not Path(args.faces).is_file():
            raise FacerlError(f"faces file not found: {args.faces}")
        faces, colors = np.load(args.faces), None
        n_vertices = int(faces.max()) + 1
    else:
        head = load_head()
        faces, colors, n_vertices = head.faces, head_vertex_colors(head), head.n_vertices
    if not str(args.out).endswith(".mp4"):
        raise FacerlError(f"--out must end in .mp4: {args.out}")
    if args.wav and not Path(args.wav).is_file():
        raise FacerlError(f"audio file not found: {args.wav}")
    stride = max(1, int(round(args.fps_in / render_cfg.fps)))
    titles = args.titles or [Path(v).stem for v in args.vertices]
    if len(titles) != len(args.vertices):
        raise FacerlError(f"{len(titles)} titles for {len(args.vertices)} vertex files")
    seqs = [load_sequence(v, n_vertices) for v in args.vertices]
    panels = [Panel(s[::stride], t) for s, t in zip(seqs, titles)]
    with tempfile.TemporaryDirectory() as tmp:
        wav = None
        if args.wav:  # normalise any wav (rate, channels, sample format) to 16 kHz mono PCM for muxing
            wav = Path(tmp) / "audio16k.wav"
            write_wav(wav, read_wav(args.wav))
        try:
            info = render_video(panels, faces, args.out, wav_path=wav, fps=args.fps_in / stride,
                                size=render_cfg.size, backend=render_cfg.backend, vertex_colors=colors)
        except ValueError as exc:  # the renderer's input checks (size, faces, colours) are user errors here
            raise FacerlError(str(exc)) from None
    print(f"wrote {info.path}: {info.frames} frames at {info.fps:g} fps, {info.render_fps:.1f} frames/s "
          f"({info.backend} backend)")
    if args.still:
        frame = min(max(args.still_frame, 0), min(len(s) for s in seqs) - 1)
        path = render_still([Panel(s[frame:frame + 1], t) for s, t in zip(seqs, titles)], faces, args.still,
                            size=render_cfg.size, backend=render_cfg.backend, vertex_colors=colors)
        print(f"wrote {path}")
