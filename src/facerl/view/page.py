"""The viewer page: ONE self-contained HTML file with the GLBs, the audio and the WebGL viewer inline, so it opens
offline from ``file://`` as well as from :mod:`facerl.view.server`.

The viewer itself is ``static/viewer.js`` (WebGL, no dependencies) inside ``static/viewer.html``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from facerl.errors import FacerlError
from facerl.utils.io import existing_file, save_text

AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg",
               ".flac": "audio/flac", ".m4a": "audio/mp4", ".opus": "audio/ogg"}
MAX_VIEWS = 2  # side by side: e.g. "supervised | RL"
_SLOT = re.compile(r"\{\{(\w+)\}\}")


def static_text(name: str) -> str:
    """A file of facerl/view/static (viewer.js, live.js, the HTML templates)."""
    return resources.files("facerl.view").joinpath("static", name).read_text(encoding="utf-8")


def script_json(data: dict) -> str:
    """``data`` as JSON to inline in a <script> element: <, > and & escaped, so no string can close it."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def fill_template(name: str, slots: dict[str, str]) -> str:
    """The static HTML template ``name`` with each ``{{slot}}`` replaced by ``slots[slot]``."""
    return _SLOT.sub(lambda m: slots[m.group(1)], static_text(name))


def _glb_bytes(path: str | os.PathLike) -> bytes:
    data = existing_file(path, "GLB").read_bytes()
    if data[:4] != b"glTF":
        raise FacerlError(f"{path} is not a GLB file (no glTF binary header); write one with --out X.glb")
    return data


def default_labels(glbs: Sequence[str | os.PathLike]) -> list[str]:
    """File stems, or parent/stem where the stems are equal (runs/sup/a.glb vs runs/rl/a.glb)."""
    paths = [Path(p) for p in glbs]
    stems = [p.stem for p in paths]
    if len(set(stems)) < len(stems):
        return [f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem for p in paths]
    return stems


def build_page(glbs: Sequence[str | os.PathLike], labels: Sequence[str] | None = None,
               audio: str | os.PathLike | None = None) -> str:
    """The viewer HTML for 1 or 2 GLBs (side by side, each under its label) and an optional audio file."""
    if not 1 <= len(glbs) <= MAX_VIEWS:
        raise FacerlError(f"the viewer shows 1 or {MAX_VIEWS} GLB files side by side, got {len(glbs)}")
    labels = list(labels) if labels else default_labels(glbs)
    if len(labels) != len(glbs):
        raise FacerlError(f"{len(labels)} labels for {len(glbs)} GLB files")
    views = [{"label": str(label), "glb": base64.b64encode(_glb_bytes(p)).decode("ascii")}
             for p, label in zip(glbs, labels, strict=True)]
    data: dict = {"views": views, "audio": None}
    if audio is not None:
        mime = AUDIO_TYPES.get(Path(audio).suffix.lower())
        if mime is None:
            raise FacerlError(f"audio {audio}: unsupported type (use one of {', '.join(sorted(AUDIO_TYPES))})")
        data["audio"] = {"mime": mime, "name": Path(audio).name,
                         "data": base64.b64encode(existing_file(audio, "audio").read_bytes()).decode("ascii")}
    subtitle = " | ".join(labels) + (f" · audio {Path(audio).name}" if audio is not None else "")
    return fill_template("viewer.html", {"subtitle": _html_escape(subtitle), "data": script_json(data),
                                         "script": static_text("viewer.js")})


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def write_page(path: str | os.PathLike, glbs: Sequence[str | os.PathLike], labels: Sequence[str] | None = None,
               audio: str | os.PathLike | None = None) -> Path:
    """Write the self-contained viewer page atomically; returns its path."""
    html = build_page(glbs, labels, audio)
    save_text(path, html)
    return Path(path)
