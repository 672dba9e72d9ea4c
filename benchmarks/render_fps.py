"""Renderer throughput: the head with a jaw-open sinusoid, per available backend.

Usage: python benchmarks/render_fps.py [--frames 150] [--size 512] [--panels 1]
Prints frames/s for render only (iterating render_frames) and for render + H.264 encode.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from facerl.head.arkit import ARKIT_INDEX, N_ARKIT
from facerl.head.rig import load_head
from facerl.render import (
    Panel,
    available_backend,
    default_vertex_colors,
    render_frames,
    render_video,
)


def jaw_sequence(frames: int, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, V, 3) vertices with jawOpen = 0.5 - 0.5 cos(2 pi 1.5 Hz t), faces (F, 3), colours (V, 3)."""
    rig = load_head()
    w = np.zeros((frames, N_ARKIT), np.float32)
    w[:, ARKIT_INDEX["jawOpen"]] = 0.5 - 0.5 * np.cos(2 * np.pi * 1.5 * np.arange(frames) / fps)
    return rig.pose(w), rig.faces, default_vertex_colors(rig.part)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--panels", type=int, default=1)
    args = ap.parse_args()

    seq, faces, colors = jaw_sequence(args.frames)
    panels = [Panel(seq, f"panel {i}") for i in range(args.panels)]
    backends = ["egl", "software"] if available_backend() == "egl" else ["software"]
    print(f"{args.frames} frames, {args.panels} panel(s) of {args.size}x{args.size}, "
          f"V={seq.shape[1]}, F={len(faces)}, cpus={os.cpu_count()}")
    for backend in backends:
        start = time.perf_counter()
        n = sum(1 for _ in render_frames(panels, faces, args.size, backend, colors, progress=False))
        render_fps = n / (time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as tmp:
            info = render_video(panels, faces, Path(tmp) / "bench.mp4", fps=30, size=args.size,
                                backend=backend, vertex_colors=colors, progress=False)
        print(f"{backend:>9}: render only {render_fps:6.1f} fps | render + encode "
              f"{info.render_fps:6.1f} fps ({info.seconds:.1f} s)")


if __name__ == "__main__":
    main()
