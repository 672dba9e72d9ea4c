"""`facerl animate speech.wav`: any length of speech -> mesh animation (.mp4 with sound, .npy, OBJ folder,
ARKit curves as Live Link Face .csv / .json, animated .glb).

Dimensions: S audio samples (16 kHz), T frames (30 fps), V vertices, Da audio feature width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facerl.audio import SAMPLE_RATE, read_wav
from facerl.errors import FacerlError
from facerl.export.outputs import (
    CURVE_KINDS,
    CurveMaker,
    CurveOptions,
    head_colors,
    output_kinds,
    write_curve_output,
)
from facerl.models.actor import Actor
from facerl.models.audio import MOTION_FPS, frames_for_samples
from facerl.models.checkpoint import ActorMeta, load_actor
from facerl.utils.io import atomic_dir, save_npy

MIN_SECONDS = 0.1


@torch.inference_mode()
def long_audio_features(actor: Actor, audio: torch.Tensor, n_frames: int, window_s: float = 20.0,
                        context_s: float = 2.0) -> torch.Tensor:
    """Audio features (1, T, Da) for speech of any length: encoded in windows of ``window_s`` seconds with
    ``context_s`` seconds of context on each side, so memory stays bounded (the encoder's self-attention
    is quadratic in length); short audio is encoded in one pass."""
    if len(audio) <= (window_s + 2 * context_s) * SAMPLE_RATE:
        return actor.encode_audio(audio[None], torch.ones_like(audio, dtype=torch.bool)[None], n_frames)
    core, ctx = int(window_s * MOTION_FPS), int(context_s * MOTION_FPS)
    samples_per_frame = SAMPLE_RATE / MOTION_FPS
    parts = []
    for f0 in range(0, n_frames, core):
        f1 = min(f0 + core, n_frames)
        a0, a1 = max(f0 - ctx, 0), min(f1 + ctx, n_frames)               # frames with context
        chunk = audio[int(a0 * samples_per_frame): round(a1 * samples_per_frame)]
        feats = actor.encode_audio(chunk[None], torch.ones_like(chunk, dtype=torch.bool)[None], a1 - a0)
        parts.append(feats[:, f0 - a0: f1 - a0])
    return torch.cat(parts, 1)


def resolve_template(spec: str | None, meta: ActorMeta, ckpt: dict) -> torch.Tensor:
    """--template: a .npy (V, 3) / (V*3,), a training-corpus subject name, or the actor's default (mean) face."""
    if not spec:
        return meta.template
    if spec.endswith(".npy"):
        from facerl.utils.io import load_npy

        arr = load_npy(spec, "template")
        if arr.size != meta.n_vertices * 3 or arr.dtype.kind not in "fiu":
            raise FacerlError(f"{spec}: {arr.size // 3} vertices, the actor predicts {meta.n_vertices}")
        if not np.isfinite(arr).all():
            raise FacerlError(f"{spec}: the template contains NaN or inf")
        return torch.from_numpy(arr.astype(np.float32).reshape(-1))
    from facerl.data.layout import Layout

    root = Path(str(ckpt["config"]["dataset"]["root"]))
    layout = Layout(root)
    templates = layout.templates() if layout.templates_path.exists() else {}
    if spec not in templates:
        raise FacerlError(f"--template {spec!r} is neither a .npy file nor a subject in {layout.templates_path}")
    return torch.from_numpy(templates[spec].reshape(-1))


def write_obj_sequence(folder: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """One ``frame_NNNNN.obj`` per frame (vertices (T, V, 3)); the folder appears only when complete."""
    with atomic_dir(folder) as tmp:
        face_lines = "".join(f"f {a} {b} {c}\n" for a, b, c in (faces + 1))
        for i, frame in enumerate(vertices):
            vert_lines = "".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in frame)
            (tmp / f"frame_{i:05d}.obj").write_text(vert_lines + face_lines)


def animate(wav: str, checkpoint: str, style: str, outs: list[str], template: str | None = None,
            faces_path: str | None = None, device: str = "cpu", render_cfg=None,
            curve_options: CurveOptions | None = None) -> np.ndarray:
    """Animate ``wav`` and write every requested output (see facerl.export.outputs); returns the vertices
    (T, V, 3)."""
    kinds = output_kinds(outs)  # before the model runs, not after
    curve_options = curve_options or CurveOptions()
    actor, meta, ckpt = load_actor(checkpoint, device)
    style_idx = meta.style_index(style)
    tmpl = resolve_template(template, meta, ckpt)
    maker = None
    if CURVE_KINDS & set(kinds):  # the basis and route are checked before the model runs
        motion_basis = None if actor.motion.is_identity else actor.motion.basis.cpu().numpy()
        maker = CurveMaker(curve_options, meta.n_vertices, motion_basis)
    audio = torch.from_numpy(read_wav(wav))
    if len(audio) < MIN_SECONDS * SAMPLE_RATE:
        raise FacerlError(f"{wav} lasts {len(audio) / SAMPLE_RATE:.3f} s; need at least {MIN_SECONDS} s of speech")
    n_frames = frames_for_samples(len(audio))
    with torch.inference_mode():
        feats = long_audio_features(actor, audio.to(device), n_frames)
        motion = actor.generate(feats, torch.tensor([style_idx], device=device)).motion   # (1, T, K)
        verts = actor.vertices(motion, tmpl.to(device)[None])[0].cpu().numpy()             # (T, V*3)
    verts = verts.reshape(n_frames, -1, 3)
    if not np.isfinite(verts).all():
        raise FacerlError(f"{checkpoint} produced NaN or inf vertices (a diverged checkpoint?); nothing written")
    faces = _faces(faces_path, meta) if {"mp4", "obj", "glb"} & set(kinds) else None
    curves = None if maker is None else maker.curves(verts, tmpl.numpy().reshape(-1, 3), MOTION_FPS, Path(wav).name,
                                                    motion[0].cpu().numpy())
    colors = head_colors(meta.n_vertices) if {"mp4", "glb"} & set(kinds) else None
    for out, kind in zip(outs, kinds):
        if kind == "npy":
            save_npy(out, verts.reshape(n_frames, -1))
        elif kind == "obj":
            write_obj_sequence(Path(out), verts, faces)
        elif kind in CURVE_KINDS:
            write_curve_output(kind, out, curves, tmpl.numpy(), faces, maker.basis, colors)
        else:
            from facerl.render.commands import check_render_config
            from facerl.render.renderer import Panel, render_video

            size, fps, backend = check_render_config(render_cfg)
            stride = max(1, round(MOTION_FPS / fps))
            render_video([Panel(verts[::stride], f"facerl: style {style}")], faces, out, wav_path=wav,
                         fps=MOTION_FPS / stride, size=size, backend=backend, vertex_colors=colors)
        print(f"wrote {out}")
    return verts


def _faces(path: str | None, meta: ActorMeta) -> np.ndarray:
    if path:
        from facerl.data.layout import load_faces

        return load_faces(path)
    if meta.faces is not None:
        return meta.faces.numpy()
    from facerl.head.rig import load_head

    head = load_head()
    if head.n_vertices != meta.n_vertices:
        raise FacerlError("the checkpoint has no mesh triangles; pass --faces <dataset>/faces.npy")
    return head.faces
