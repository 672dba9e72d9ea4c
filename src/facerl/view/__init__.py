"""The browser viewer: one self-contained HTML page (GLBs, audio and a compact WebGL viewer inline) that plays
facerl's GLB morph-target animations side by side with their curves and the sound; see ``static/viewer.js``.

``view_main`` is what ``facerl view`` runs."""

from __future__ import annotations

import os
import webbrowser
from collections.abc import Sequence
from pathlib import Path

from facerl.view.page import build_page, default_labels, write_page
from facerl.view.server import serve, start_server

__all__ = ["build_page", "default_labels", "serve", "start_server", "view_main", "write_page"]


def view_main(glbs: Sequence[str | os.PathLike], labels: Sequence[str] | None = None,
              audio: str | os.PathLike | None = None, out_html: str | os.PathLike | None = None,
              port: int = 0, open_browser: bool = True) -> int:
    """Show 1 or 2 GLBs (side by side) with optional audio. With ``out_html``, write the page there (it works
    offline from file://) and return; otherwise serve it on 127.0.0.1:``port`` (0: a free port) until Ctrl-C.
    ``open_browser`` opens the written file or the served URL in the default browser. Returns 0."""
    if out_html is not None:
        path = write_page(out_html, glbs, labels, audio)
        print(f"wrote the viewer page {path} (self-contained: open it in any browser, also offline)")
        if open_browser:
            webbrowser.open(Path(path).resolve().as_uri())
        return 0
    serve(build_page(glbs, labels, audio), port=port, open_browser=open_browser)
    return 0
