"""What every training stage shares: seeding, torchrun/DDP context, resume checks (checkpoint I/O itself: utils/checkpoint)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from facerl.errors import FacerlError
from facerl.utils.checkpoint import (  # noqa: F401 - the trainers' shared toolbox
    KIND_NAMES,
    content_digest,
    load_checkpoint,
    reading_checkpoint,
    resolve_device,
    save_checkpoint,
)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch (all devices); returns a generator for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


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
