"""Offscreen rendering of head-mesh sequences to frames, MP4 videos and PNG stills.

Two backends share one interface: ``"egl"`` (moderngl standalone EGL context, e.g. Mesa
llvmpipe; per-pixel Phong shading, 4x MSAA) and ``"software"`` (pure numpy z-buffer
rasteriser, Gouraud shading). ``"auto"`` uses EGL when a context can be created and
otherwise falls back to software with a one-time warning.

Environment: ``FACERL_MSAA`` (default 4) sets the EGL sample count; 0 disables MSAA.

Dimension legend: T frames, V vertices, F triangles, S panel size in pixels, P panels.
Camera: orthographic, looking down -z (+y up), framed once from the first frame of all
panels so that motion over the sequence stays visible.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from facerl.errors import FacerlError
from facerl.utils.io import atomic_path

BACKGROUND = (0.16, 0.17, 0.20)
PART_COLORS = np.array([[0.86, 0.68, 0.57],   # 0 skin
                        [0.93, 0.93, 0.91],   # 1 eye
                        [0.95, 0.93, 0.84],   # 2 teeth
                        [0.85, 0.42, 0.47]],  # 3 tongue
                       dtype=np.float32)
_AMBIENT, _KEY, _FILL, _SPEC, _SHINE = 0.22, 0.62, 0.22, 0.12, 24.0
_LIGHT = np.array([-0.35, 0.45, 1.0], np.float32) / np.linalg.norm([-0.35, 0.45, 1.0])
_HALF = (_LIGHT + [0, 0, 1]) / np.linalg.norm(_LIGHT + [0, 0, 1])
_TITLE_FRAC = 0.07  # fraction of the panel height reserved for the title band


@dataclass
class Panel:
    """One column of the output: a vertex sequence (T, V, 3) in metres plus a title."""

    vertices: np.ndarray
    title: str = ""


@dataclass
class RenderInfo:
    """Result of :func:`render_video`. ``seconds`` is wall time (render + encode)."""

    path: Path
    frames: int
    fps: float
    backend: str
    seconds: float
    render_fps: float


def default_vertex_colors(part: np.ndarray) -> np.ndarray:
    """Per-vertex albedo (V, 3) float32 in [0, 1] from part labels (V,) (0 skin, 1 eye, 2 teeth, 3 tongue)."""
    part = np.asarray(part)
    if part.ndim != 1 or part.size and (part.min() < 0 or part.max() >= len(PART_COLORS)):
        raise ValueError(f"part must be a (V,) array with labels in [0, {len(PART_COLORS) - 1}]")
    return PART_COLORS[part.astype(np.int64)]


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Smooth unit normals (V, 3) float32: area-weighted sum of adjacent face normals."""
    v = vertices.astype(np.float32, copy=False)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])  # (F, 3)
    idx = faces.ravel()
    n = np.stack([np.bincount(idx, np.repeat(fn[:, k], 3), len(v)) for k in range(3)], axis=1)
    return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _shade(normals: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """Lit colour (N, 3) from unit normals (N, 3); same model as the GLSL fragment shader."""
    diffuse = _KEY * np.maximum(normals @ _LIGHT, 0) + _FILL * np.maximum(normals[:, 2], 0)
    spec = _SPEC * np.maximum(normals @ _HALF, 0) ** _SHINE
    return np.clip(albedo * (_AMBIENT + diffuse)[:, None] + spec[:, None], 0, 1)


@dataclass(frozen=True)
class _Framing:
    """Orthographic view volume: world point ``center`` maps to the viewport centre,
    ``half`` metres to half the viewport, z in center[2] -/+ zr to the depth range."""

    center: np.ndarray  # (3,)
    half: float
    zr: float

    @classmethod
    def fit(cls, first_frames: Sequence[np.ndarray], margin: float = 1.12) -> _Framing:
        pts = np.concatenate(first_frames)  # (P*V, 3)
        lo, hi = pts.min(0), pts.max(0)
        ext = float((hi - lo)[:2].max()) * margin
        half = 0.5 * ext / (1 - _TITLE_FRAC)
        center = 0.5 * (lo + hi) + np.array([0, half * _TITLE_FRAC, 0])  # leave room on top
        return cls(center.astype(np.float32), half, 2.0 * max(float((hi - lo).max()), 1e-6))


class _GLRenderer:
    """moderngl EGL renderer; context, program and buffers live for the whole sequence."""

    name = "egl"
    _VS = """#version 330
        uniform vec3 u_center; uniform vec3 u_scale;
        in vec3 in_pos; in vec3 in_nrm; in vec3 in_col;
        out vec3 v_nrm; out vec3 v_col;
        void main() { v_nrm = in_nrm; v_col = in_col;
                      gl_Position = vec4((in_pos - u_center) * u_scale, 1.0); }"""
    _FS = f"""#version 330
        in vec3 v_nrm; in vec3 v_col; out vec4 f_color;
        const vec3 L = vec3({_LIGHT[0]}, {_LIGHT[1]}, {_LIGHT[2]});
        const vec3 H = vec3({_HALF[0]}, {_HALF[1]}, {_HALF[2]});
        void main() {{ vec3 n = normalize(v_nrm);
            float d = {_KEY} * max(dot(n, L), 0.0) + {_FILL} * max(n.z, 0.0);
            float s = {_SPEC} * pow(max(dot(n, H), 0.0), {_SHINE});
            f_color = vec4(clamp(v_col * ({_AMBIENT} + d) + s, 0.0, 1.0), 1.0); }}"""

    def __init__(self, faces: np.ndarray, colors: np.ndarray, size: int, panels: int, fr: _Framing):
        import moderngl

        self.ctx = ctx = moderngl.create_standalone_context(backend="egl")  # raises without EGL
        self.size, self.faces = size, faces
        prog = ctx.program(vertex_shader=self._VS, fragment_shader=self._FS)
        prog["u_center"].value = tuple(fr.center)
        prog["u_scale"].value = (1 / fr.half, 1 / fr.half, -1 / fr.zr)  # nearer (+z) -> smaller depth
        nbytes = colors.shape[0] * 12
        self.pos, self.nrm = ctx.buffer(reserve=nbytes), ctx.buffer(reserve=nbytes)
        col = ctx.buffer(colors.astype("f4").tobytes())
        ibo = ctx.buffer(faces.astype("i4").tobytes())
        self.vao = ctx.vertex_array(
            prog, [(self.pos, "3f", "in_pos"), (self.nrm, "3f", "in_nrm"), (col, "3f", "in_col")],
            index_buffer=ibo)
        wh, samples = (size * panels, size), min(int(os.environ.get("FACERL_MSAA", "4")), ctx.max_samples)
        samples = samples if samples >= 2 else 0  # MSAA roughly doubles llvmpipe frame time
        self.ms_fbo = ctx.framebuffer(ctx.renderbuffer(wh, 4, samples=samples),
                                      ctx.depth_renderbuffer(wh, samples=samples))
        self.fbo = ctx.framebuffer(ctx.renderbuffer(wh, 4)) if samples else self.ms_fbo
        ctx.enable(moderngl.DEPTH_TEST)

    def draw(self, frame_vertices: Sequence[np.ndarray]) -> np.ndarray:
        """Render P meshes (V, 3) side by side -> (S, S*P, 3) uint8."""
        self.ms_fbo.use()
        self.ms_fbo.clear(*BACKGROUND, 1.0, depth=1.0)
        for i, v in enumerate(frame_vertices):
            self.pos.write(v.astype("f4").tobytes())
            self.nrm.write(vertex_normals(v, self.faces).tobytes())
            self.ms_fbo.viewport = (i * self.size, 0, self.size, self.size)
            self.vao.render()
        if self.fbo is not self.ms_fbo:
            self.ctx.copy_framebuffer(self.fbo, self.ms_fbo)
        data = self.fbo.read(components=3, alignment=1)
        w = self.size * len(frame_vertices)
        return np.frombuffer(data, np.uint8).reshape(self.size, w, 3)[::-1].copy()

    def release(self) -> None:
        self.ctx.release()


class _SoftwareRenderer:
    """Numpy z-buffer rasteriser with Gouraud shading and back-face culling."""

    name = "software"

    def __init__(self, faces: np.ndarray, colors: np.ndarray, size: int, panels: int, fr: _Framing):
        self.faces, self.colors, self.size, self.fr = faces, colors.astype(np.float32), size, fr
        self.bg = (np.array(BACKGROUND) * 255 + 0.5).astype(np.uint8)

    def draw(self, frame_vertices: Sequence[np.ndarray]) -> np.ndarray:
        """Render P meshes (V, 3) side by side -> (S, S*P, 3) uint8."""
        return np.concatenate([self._draw_one(v) for v in frame_vertices], axis=1)

    def _draw_one(self, v: np.ndarray) -> np.ndarray:
        S, fr, f = self.size, self.fr, self.faces
        lit = _shade(vertex_normals(v, f), self.colors)  # (V, 3)
        px = (v[:, 0] - fr.center[0]) / fr.half * (S / 2) + S / 2  # (V,) pixel x
        py = (fr.center[1] - v[:, 1]) / fr.half * (S / 2) + S / 2  # (V,) pixel y (down)
        x, y, z = px[f], py[f], v[:, 2][f]  # (F, 3) each
        area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
        x0 = np.clip(np.ceil(x.min(1) - 0.5), 0, S).astype(np.int64)
        x1 = np.clip(np.floor(x.max(1) - 0.5), -1, S - 1).astype(np.int64)
        y0 = np.clip(np.ceil(y.min(1) - 0.5), 0, S).astype(np.int64)
        y1 = np.clip(np.floor(y.max(1) - 0.5), -1, S - 1).astype(np.int64)
        w, h = x1 - x0 + 1, y1 - y0 + 1
        keep = np.flatnonzero((area < -1e-9) & (w > 0) & (h > 0))  # CCW in world = front
        n = w[keep] * h[keep]  # candidate pixels per triangle
        t = np.repeat(keep, n)  # (N,) triangle of each candidate pixel
        local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        ix, iy = x0[t] + local % w[t], y0[t] + local // w[t]
        sx, sy = ix + 0.5, iy + 0.5
        xt, yt = x[t], y[t]  # (N, 3)
        b = np.stack([(xt[:, (k + 1) % 3] - sx) * (yt[:, (k + 2) % 3] - sy)
                      - (xt[:, (k + 2) % 3] - sx) * (yt[:, (k + 1) % 3] - sy)
                      for k in range(3)], axis=1) / area[t, None]  # (N, 3) barycentrics
        inside = np.flatnonzero((b >= -1e-6).all(1))
        t, b, pix = t[inside], b[inside], (iy * S + ix)[inside]
        img = np.broadcast_to(self.bg, (S * S, 3)).copy()
        if not len(pix):  # nothing in view
            return img.reshape(S, S, 3)
        depth = (b * z[t]).sum(1)
        order = np.lexsort((-depth, pix))  # per pixel, nearest (largest z) first
        first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]]
        rgb = (b[first, :, None] * lit[f[t[first]]]).sum(1)  # (M, 3)
        img[pix[first]] = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
        return img.reshape(S, S, 3)

    def release(self) -> None:
        pass


@functools.lru_cache(maxsize=1)  # probe (and warn) once per process
def available_backend() -> str:
    """``"egl"`` if a moderngl EGL standalone context can be created, else ``"software"``."""
    try:
        import moderngl

        moderngl.create_standalone_context(backend="egl").release()
        return "egl"
    except Exception as err:  # noqa: BLE001 - no libEGL, no driver, no moderngl, ...
        warnings.warn(f"EGL unavailable ({type(err).__name__}: {err}); using the slow "
                      "software renderer", RuntimeWarning, stacklevel=2)
        return "software"


@contextlib.contextmanager
def _open_renderer(backend: str, verts: list[np.ndarray], faces, colors, size: int):
    """Create the renderer for ``backend`` framed on the first frames; release it on exit."""
    fr = _Framing.fit([v[0] for v in verts])
    use_egl = backend == "egl" or (backend == "auto" and available_backend() == "egl")
    renderer = (_GLRenderer if use_egl else _SoftwareRenderer)(faces, colors, size, len(verts), fr)
    try:
        yield renderer
    finally:
        renderer.release()


def _validate(panels: Sequence[Panel], faces, vertex_colors, size: int, backend: str):
    """Check inputs; returns padded vertex arrays [(T, V, 3)] float32, faces (F, 3) int64, colours (V, 3).
    Panels with fewer frames than the longest one are padded by repeating their last frame."""
    if backend not in ("auto", "egl", "software"):
        raise ValueError(f"backend must be 'auto', 'egl' or 'software', got {backend!r}")
    if not panels or size < 16:
        raise ValueError(f"need at least one panel and size >= 16, got {len(panels)} panels, size {size}")
    verts = [np.asarray(p.vertices, dtype=np.float32) for p in panels]
    for p, v in zip(panels, verts):
        if v.ndim != 3 or v.shape[2] != 3 or v.shape[0] == 0 or v.shape[1] != verts[0].shape[1]:
            raise ValueError(f"panel {p.title!r}: vertices must be (T, V, 3) with the same V "
                             f"in every panel, got {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError(f"panel {p.title!r}: vertices contain NaN or inf")
    V = verts[0].shape[1]
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an integer (F, 3) array, got {faces.dtype} {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= V):
        raise ValueError(f"faces index out of range [0, {V}): min {faces.min()}, max {faces.max()}")
    colors = PART_COLORS[np.zeros(V, int)] if vertex_colors is None else np.asarray(vertex_colors, np.float32)
    if colors.shape != (V, 3):
        raise ValueError(f"vertex_colors must be ({V}, 3) floats in [0, 1], got {colors.shape}")
    T = max(len(v) for v in verts)
    verts = [np.concatenate([v, np.repeat(v[-1:], T - len(v), 0)]) if len(v) < T else v for v in verts]
    return verts, faces.astype(np.int64), colors


def _fitting_font(draw: ImageDraw.ImageDraw, text: str, px: int, max_width: float):
    """The default font at ``px`` pixels, shrunk until ``text`` fits ``max_width`` (long titles stay readable)."""
    try:
        while True:
            font = ImageFont.load_default(size=px)  # Pillow >= 10.1 with FreeType
            x0, _, x1, _ = draw.textbbox((0, 0), text, font=font)
            if x1 - x0 <= max_width or px <= 6:
                return font
            px = max(6, int(px * max_width / (x1 - x0)))
    except (TypeError, ImportError):
        return ImageFont.load_default()


def _title_alpha(titles: Sequence[str], size: int) -> np.ndarray | None:
    """Alpha mask (h, S*P) float32 of the titles, centred at the top of each panel."""
    if not any(titles):
        return None
    h = max(8, round(size * _TITLE_FRAC))
    img = Image.new("L", (size * len(titles), h), 0)
    draw = ImageDraw.Draw(img)
    for i, title in enumerate(titles):
        font = _fitting_font(draw, title, max(8, round(h * 0.7)), 0.96 * size)
        x0, y0, x1, y1 = draw.textbbox((0, 0), title, font=font)
        draw.text((i * size + (size - x1 - x0) / 2, (h - y1 - y0) / 2), title, fill=255, font=font)
    return np.asarray(img, np.float32)[:, :, None] / 255


def _frames(renderer, verts: list[np.ndarray], titles: list[str], progress: bool) -> Iterator[np.ndarray]:
    alpha = _title_alpha(titles, renderer.size)
    for t in tqdm(range(len(verts[0])), desc=f"render[{renderer.name}]", unit="frame",
                  disable=None if progress else True):
        frame = renderer.draw([v[t] for v in verts])  # (S, S*P, 3) uint8
        if alpha is not None:
            top = frame[: len(alpha)]
            top[:] = (top * (1 - alpha) + 255 * alpha + 0.5).astype(np.uint8)
        yield frame


def render_frames(panels: list[Panel], faces: np.ndarray, size: int = 512, backend: str = "auto",
                  vertex_colors: np.ndarray | None = None, progress: bool = True) -> Iterator[np.ndarray]:
    """Yield (S, S*P, 3) uint8 RGB frames, panels side by side, each titled at the top.

    Inputs are validated eagerly (ValueError); rendering starts on the first ``next``.
    Shorter panels are padded by repeating their last frame."""
    verts, faces, colors = _validate(panels, faces, vertex_colors, size, backend)
    titles = [p.title for p in panels]

    def generate() -> Iterator[np.ndarray]:
        with _open_renderer(backend, verts, faces, colors, size) as renderer:
            yield from _frames(renderer, verts, titles, progress)

    return generate()


def render_video(panels: list[Panel], faces: np.ndarray, out_path: str | os.PathLike,
                 wav_path: str | os.PathLike | None = None, fps: float = 30, size: int = 512,
                 backend: str = "auto", vertex_colors: np.ndarray | None = None,
                 progress: bool = True) -> RenderInfo:
    """Render panels to an H.264/yuv420p video (S x S*P), muxing ``wav_path`` as AAC audio.

    Writes a hidden temp file next to ``out_path`` (:func:`facerl.utils.io.atomic_path`) and renames it only
    on success; the temp file is removed on any exception (including KeyboardInterrupt)."""
    import imageio_ffmpeg

    verts, faces, colors = _validate(panels, faces, vertex_colors, size, backend)
    if size % 2:
        raise ValueError(f"video size must be even, got {size}")
    if wav_path is not None and not Path(wav_path).is_file():
        raise ValueError(f"wav_path does not exist: {wav_path}")
    out, start, count = Path(out_path), time.perf_counter(), 0
    with _open_renderer(backend, verts, faces, colors, size) as renderer, atomic_path(out) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (size * len(verts), size), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
            macro_block_size=2, quality=None, ffmpeg_log_level="error",
            output_params=["-crf", "18", "-preset", "veryfast"],
            audio_path=None if wav_path is None else str(wav_path), audio_codec="aac")
        try:
            writer.send(None)  # starts ffmpeg
            try:
                for frame in _frames(renderer, verts, [p.title for p in panels], progress):
                    writer.send(frame)
                    count += 1
            finally:
                writer.close()  # waits for ffmpeg to finish the file
        except OSError as exc:  # ffmpeg died (disk full, a vanished folder): imageio's error carries its whole log
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise FacerlError(f"ffmpeg could not write {out}: {lines[0] if lines else type(exc).__name__}") from None
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise RuntimeError(f"ffmpeg produced no output for {out}")
    seconds = time.perf_counter() - start
    return RenderInfo(out, count, fps, renderer.name, seconds, count / max(seconds, 1e-9))


def render_still(panels_or_vertices: np.ndarray | Sequence[np.ndarray] | Sequence[Panel],
                 faces: np.ndarray, out_png: str | os.PathLike, size: int = 512,
                 backend: str = "auto", vertex_colors: np.ndarray | None = None) -> Path:
    """Render one frame to PNG: a (V, 3) array, a list of (V, 3) arrays (side by side) or a
    list of Panels (their first frame). Written atomically; returns the output path."""
    items = [panels_or_vertices] if isinstance(panels_or_vertices, np.ndarray) else panels_or_vertices
    panels = [Panel(p.vertices[:1], p.title) if isinstance(p, Panel) else Panel(np.asarray(p)[None])
              for p in items]
    with contextlib.closing(render_frames(panels, faces, size, backend, vertex_colors, False)) as gen:
        frame = next(gen)
    out = Path(out_png)
    with atomic_path(out) as tmp:
        Image.fromarray(frame).save(tmp, format="PNG")
    return out
