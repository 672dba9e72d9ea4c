"""Folders facerl made, and only those, may be replaced: a marker file says who created a folder.

``facerl data build --overwrite`` (and the pipeline's rebuild of an unfinished corpus) deletes a dataset
root only when its marker says facerl made it and nothing but facerl's own entries sit at its top level;
a converted VOCASET folder, a `data from-speech` folder or any user folder is never removed by accident.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from facerl.errors import FacerlError
from facerl.utils.io import PARTIAL_RE, save_text

MARKER = ".facerl-owned"


def mark_owned(folder: str | os.PathLike, created_by: str) -> None:
    """Record that ``created_by`` (e.g. ``facerl data build``) made ``folder``."""
    save_text(Path(folder) / MARKER, json.dumps({"created_by": created_by}) + "\n")


def owned_by(folder: str | os.PathLike) -> str | None:
    """Which facerl command made ``folder`` (None: not facerl's, or a damaged marker)."""
    path = Path(folder) / MARKER
    if not path.is_file() or path.is_symlink():
        return None
    try:
        return str(json.loads(path.read_text())["created_by"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_owned(folder: str | os.PathLike, entries: set[str], legacy_marker: str | None = None) -> None:
    """Delete ``folder`` if facerl made it and its top level holds only ``entries`` (plus the marker and
    temp files); otherwise refuse with a line naming what is in the way. ``legacy_marker``: a file that
    marks folders made before markers existed (a corpus's corpus.json)."""
    folder = Path(folder)
    if folder.is_symlink():
        raise FacerlError(f"{folder} is a symbolic link; refusing to replace it (remove the link yourself)")
    legacy = legacy_marker is not None and (folder / legacy_marker).is_file()
    if owned_by(folder) is None and not legacy:
        raise FacerlError(f"{folder} was not created by facerl; refusing to delete it "
                          "(choose another output folder, or empty it yourself)")
    foreign = sorted(p.name for p in folder.iterdir()
                     if p.name not in entries | {MARKER} and not PARTIAL_RE.match(p.name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FacerlError(f"{folder} holds files facerl did not write ({shown}); refusing to delete it "
                          "(move them away or choose another output folder)")
    shutil.rmtree(folder)
