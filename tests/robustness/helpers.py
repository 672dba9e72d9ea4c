"""Shared checks of the robustness suite: how a user mistake must look, and what must stay on disk."""

from __future__ import annotations

import re
from pathlib import Path

from facerl.cli import main


def run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *patterns: str) -> str:
    """Exit 2, no traceback, exactly one ``facerl: error:`` line (the last thing printed), naming ``patterns``.

    Progress bars (tqdm redraws with carriage returns) may precede it; nothing else may."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [line.strip() for line in re.split(r"[\r\n]", err) if line.strip()]
    errors = [line for line in lines if "facerl: error:" in line]
    assert len(errors) == 1, err
    assert lines[-1].startswith("facerl: error:"), err
    assert "\n" not in errors[0]
    for pattern in patterns:
        assert pattern in errors[0], errors[0]
    return errors[0]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (symlinks as their target text): a snapshot to compare."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(root))] = f"-> {path.readlink()}".encode()
        elif path.is_file():
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def partials(root: Path) -> list[Path]:
    """facerl temp files anywhere under ``root`` (hidden ``*.partial*`` names)."""
    return [p for p in root.rglob(".*") if ".partial" in p.name]
