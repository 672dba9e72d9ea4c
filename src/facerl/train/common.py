"""What every training stage shares: seeding, device, torchrun/DDP context, atomic self-describing checkpoints."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from facerl.errors import FacerlError
from facerl.utils.io import atomic_path


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch (all devices); returns a generator for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


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


@dataclass
class DistContext:
    """torchrun world: rank 0 logs, validates and writes checkpoints."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world, local_rank), device


def close_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def rng_state() -> dict[str, Any]:
    """CPU, Python and (only) the current CUDA device's generator: a run may resume on another GPU count."""
    return {"torch": torch.get_rng_state(), "python": random.getstate()[1][:625],
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(int(x) for x in state["python"]), None))
    if isinstance(state.get("cuda"), torch.Tensor) and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


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


KIND_NAMES = {"facerl-actor": "actor", "facerl-reward": "reward-model / judge"}


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


# Settings that may differ when a run resumes: where things live and how long it goes on, not what it learns.
RESUME_FREE = ("paths", "pipeline", "render", "data", "run_name", "trainer.resume", "trainer.accept_changes",
               "trainer.epochs", "trainer.max_minutes", "trainer.device", "trainer.cache_dir")
_MISSING = "<unset>"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def config_changes(saved: dict, current: dict, ignore: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (saved value, current value)}`` for every setting that differs, except the free ones
    (:data:`RESUME_FREE`) and the config sections in ``ignore`` (those a stage does not use)."""
    old, new = _flatten(saved), _flatten(current)
    skip = RESUME_FREE + ignore
    # A key the saved config lacks is a setting added by a later facerl version: the run used its behaviour
    # from before, which the new key's default keeps, so it is not a change (a key dropped since still is).
    return {key: (old.get(key, _MISSING), new.get(key, _MISSING)) for key in sorted(old)
            if old[key] != new.get(key, _MISSING) and not any(key == s or key.startswith(s + ".") for s in skip)}


def describe_changes(changes: dict[str, tuple[Any, Any]], limit: int = 6) -> str:
    parts = [f"{key}={old!r} -> {new!r}" for key, (old, new) in list(changes.items())[:limit]]
    return ", ".join(parts) + (f" and {len(changes) - limit} more" if len(changes) > limit else "")


def check_resume(path: Path, saved: dict, current: dict, accept: bool, fixed: tuple[str, ...],
                 ignore: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """Compare the whole training config of a checkpoint being resumed with the one asked for now.

    No difference: resume. A difference in a ``fixed`` section (the architecture) is never accepted. Any
    other difference is refused unless ``accept`` (``trainer.accept_changes=true``); then the changes are
    returned, for the trainer to apply and record in its checkpoints."""
    changes = config_changes(saved, current, ignore)
    if not changes:
        return {}
    architecture = {k: v for k, v in changes.items() if k.split(".")[0] in fixed}
    if architecture:
        section = next(iter(architecture)).split(".")[0]
        raise FacerlError(f"{path} was trained with another {section} config ({describe_changes(architecture)}); "
                          "use another run_name or trainer.resume=false")
    if not accept:
        raise FacerlError(f"{path} was trained with other settings ({describe_changes(changes)}); resume "
                          "without those overrides, start over with trainer.resume=false, or continue with the new "
                          "settings with trainer.accept_changes=true")
    print(f"resuming {path} with changed settings (trainer.accept_changes=true; recorded in the checkpoint): "
          f"{describe_changes(changes)}")
    return changes


def record_changes(previous: list | None, epoch: int, changes: dict[str, tuple[Any, Any]]) -> list:
    """The checkpoint's ``config_changes`` log: every accepted change, with the epoch it took effect."""
    log = list(previous or [])
    if changes:
        log.append({"epoch": epoch, "changes": {k: [old, new] for k, (old, new) in changes.items()}})
    return log


def apply_optimizer_settings(opt: torch.optim.Optimizer, **settings: float) -> None:
    """After ``opt.load_state_dict`` (which restores the saved lr): the hyper-parameters asked for now."""
    for group in opt.param_groups:
        group.update(settings)
