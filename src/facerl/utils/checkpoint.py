"""Self-describing checkpoints: atomic writes with a content checksum, safe one-line-error loading, and the
device a config asks for. Every part of facerl (models, reward, training, evaluation) loads through here."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from facerl.errors import FacerlError
from facerl.utils.io import atomic_path


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is a user error, not a traceback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FacerlError(f"unknown device {name!r} (expected auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FacerlError("device=cuda requested but no CUDA GPU is available (use trainer.device=cpu or auto)")
    return device


def content_digest(tree: Any) -> str:
    """SHA-256 of a checkpoint's contents (keys, tensors' dtype, shape and bytes, plain values): PyTorch's
    zip format has no checksum of its own, so a flipped byte inside a tensor would otherwise load silently."""
    h = hashlib.sha256()

    def feed(node: Any) -> None:
        if isinstance(node, dict):
            h.update(b"{")
            for key in sorted(node, key=str):
                h.update(repr(key).encode())
                feed(node[key])
            h.update(b"}")
        elif isinstance(node, (list, tuple)):
            h.update(b"[")
            for item in node:
                feed(item)
            h.update(b"]")
        elif isinstance(node, torch.Tensor):
            t = node.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(node).encode())

    feed(tree)
    return h.hexdigest()


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Atomic write (temp file + rename): a crash never leaves a half-written checkpoint. The payload's
    ``checksum`` (:func:`content_digest`) lets loading report a corrupted file instead of using it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: v for k, v in payload.items() if k != "checksum"}
    with atomic_path(path) as tmp:
        torch.save({**payload, "checksum": content_digest(payload)}, tmp)


KIND_NAMES = {"facerl-actor": "actor", "facerl-reward": "reward-model / judge", "facerl-lipreader": "lip-reader"}


def _first_line(exc: BaseException) -> str:
    """The informative line of an exception (PyTorch's state-dict errors start with a title line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("Error(s) in loading")]
    text = (useful or lines or [type(exc).__name__])[0].split(". ")[0]  # torch's advice follows the first sentence
    return text if len(text) <= 200 else text[:197] + "..."


def load_checkpoint(path: str | os.PathLike, kind: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a facerl checkpoint safely (``weights_only=True``: tensors and plain containers only, so a
    tampered file cannot run code); every failure is a one-line error naming the file. ``keys``: entries
    the caller needs."""
    path = Path(path)
    what = KIND_NAMES.get(kind, kind)
    if not path.is_file():
        raise FacerlError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise FacerlError(f"checkpoint {path} is empty (0 bytes): an interrupted copy? retrain or copy it again")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc).lower()
        if "unsupported" in text and "global" in text:  # weights_only refused an object: foreign or tampered
            raise FacerlError(f"{path} holds objects other than tensors and plain containers: not a facerl "
                              "checkpoint, or a tampered one; refusing to load it") from None
        raise FacerlError(f"cannot read checkpoint {path}: damaged or not a PyTorch file") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged or foreign files
        raise FacerlError(f"cannot read checkpoint {path}: damaged or not a PyTorch file "
                          f"({type(exc).__name__}: {_first_line(exc)})") from None
    expected = ckpt.pop("checksum", None) if isinstance(ckpt, dict) else None
    if expected is not None and expected != content_digest(ckpt):  # older checkpoints have none
        raise FacerlError(f"checkpoint {path} is corrupted (its contents do not match their checksum): "
                          "copy it again or retrain")
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        found = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise FacerlError(f"{path} is not a facerl {what} checkpoint (found {found!r})")
    missing = [k for k in keys if k not in ckpt]
    if missing:
        raise FacerlError(f"{path} is damaged: the {what} checkpoint has no {', '.join(missing)} entry")
    return ckpt


@contextlib.contextmanager
def reading_checkpoint(path: str | os.PathLike) -> Iterator[None]:
    """Turn what goes wrong while rebuilding a model from a loaded checkpoint (a missing entry, a tensor of
    the wrong shape, a config of the wrong type) into one line naming the file."""
    try:
        yield
    except KeyError as exc:
        raise FacerlError(f"{path} is damaged or from another facerl version: no entry {exc.args[0]!r}") from None
    except (RuntimeError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise FacerlError(f"{path} does not fit the model it describes (damaged or from another facerl "
                          f"version): {_first_line(exc)}") from None
