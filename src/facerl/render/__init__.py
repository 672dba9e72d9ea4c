"""Offscreen rendering of head-mesh sequences (frames, MP4 with audio, PNG stills)."""

from facerl.render.renderer import (
    Panel,
    RenderInfo,
    available_backend,
    default_vertex_colors,
    render_frames,
    render_still,
    render_video,
    vertex_normals,
)

__all__ = [
    "Panel",
    "RenderInfo",
    "available_backend",
    "default_vertex_colors",
    "render_frames",
    "render_still",
    "render_video",
    "vertex_normals",
]
