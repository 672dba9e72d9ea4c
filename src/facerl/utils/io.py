"""Reading arrays safely and writing files atomically: every artefact appears whole or not at all, and
never through a planted symlink.

A write goes to a hidden temp file created with ``O_CREAT | O_EXCL`` (``tempfile.mkstemp``) in the
target's folder, so a symlink or file already under that name is never opened; it is then renamed onto
the target (``os.replace`` replaces a symlink standing at the target path, never the file it points to).
Temp files are named ``.<name>.<pid>@<host>.<random>.partial<suffix>``: a process killed with SIGKILL
cannot remove its own, so every later write into the same folder removes those whose process is gone
(another host's only after a day: its pids mean nothing here).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from facerl.errors import FacerlError

_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), then restored
os.umask(_UMASK)

# .<name>.<pid>@<host>.<random>.partial<suffix> (and the older .<stem>.<pid>.partial<suffix>)
PARTIAL_RE = re.compile(r"^\..+\.(?P<pid>\d+)(@(?P<host>[0-9a-f]{8}))?(\.[A-Za-z0-9_]+)?\.partial(\.[^.]*)?$")
HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]  # pids are only comparable on one host
FOREIGN_STALE_S = 24 * 3600  # another machine's temp file is only removed once it is this old


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files and folders that dead facerl processes left in ``folder``; returns them.

    Only entries matching facerl's temp-name pattern are touched: those of this host whose process no longer
    exists, and those of another host (a shared folder) untouched for a day. Symlinks are never followed (a
    link is removed, not its target)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = PARTIAL_RE.match(entry.name)
        if not m:
            continue
        path = Path(entry.path)
        try:
            info = os.lstat(path)
            if m["host"] in (None, HOST):
                if _pid_alive(int(m["pid"])):
                    continue
            elif time.time() - info.st_mtime < FOREIGN_STALE_S:
                continue
            mode = info.st_mode
            if stat.S_ISDIR(mode):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:  # another process cleaned it first, or it is not ours to remove
            continue
    return removed


def _temp_name_parts(path: Path) -> tuple[str, str]:
    return f".{path.stem}.{os.getpid()}@{HOST}.", f".partial{path.suffix}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh, exclusively created temp file beside ``path``; rename it onto ``path`` only if the
    block succeeds, remove it otherwise (also on KeyboardInterrupt / SIGTERM)."""
    path = Path(path)
    if path.is_dir():
        raise FacerlError(f"output path is a directory: {path}")
    prefix, suffix = _temp_name_parts(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path.parent)
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise FacerlError(f"cannot write {path} ({exc.strerror or exc})") from None
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the permissions open() would give
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path` for a folder: a fresh temp folder renamed onto ``path`` (which must not
    exist) only when the block succeeds."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise FacerlError(f"{path} already exists; choose another output folder")
    prefix, suffix = _temp_name_parts(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent))
        tmp.chmod(0o777 & ~_UMASK)  # as mkdir would
    except OSError as exc:
        raise FacerlError(f"cannot write {path} ({exc.strerror or exc})") from None
    try:
        yield tmp
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove it is writable now, before any long work (one-line error)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".write-test.{os.getpid()}@{HOST}.", suffix=".partial", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise FacerlError(f"cannot write into {folder} ({exc.strerror or exc})") from None
    return folder


def existing_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` if it is a non-empty file, else a one-line error saying which ``what`` file is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise FacerlError(f"{what} file not found: {path}")
    if path.stat().st_size == 0:
        raise FacerlError(f"{what} file is empty: {path}")
    return path


def load_npy(path: str | os.PathLike, what: str = "array") -> np.ndarray:
    """A .npy file (no pickles) or a one-line error naming the file."""
    path = existing_file(path, what)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FacerlError(f"cannot read {path} as a .npy array ({exc})") from None


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def save_pickle(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)


def save_text(path: str | os.PathLike, text: str) -> None:
    """Atomic UTF-8 write with ``\n`` line ends (temp + rename); an OS error becomes one line, no temp file left."""
    try:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    except OSError as exc:
        raise FacerlError(f"cannot write {path} ({exc.strerror or exc})") from None
