"""Actor checkpoints: self-describing (weights, config, the speakers whose styles it knows, a default template).

``meta`` holds everything needed to rebuild the actor without the dataset: n_vertices, style names
(the training speakers, in one-hot order), the motion-space size and a default template (V*3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from facerl.config import to_dataclass
from facerl.models.actor import Actor, ActorConfig, MotionSpace
from facerl.utils.checkpoint import load_checkpoint, reading_checkpoint

ACTOR_KIND = "facerl-actor"


@dataclass
class ActorMeta:
    n_vertices: int
    styles: list[str]          # training speakers, in one-hot order
    motion_dim: int            # K (== V*3 for motion_space=vertices)
    template: torch.Tensor     # (V*3,) default template for audio of unknown speakers
    faces: torch.Tensor | None = None  # (F, 3) triangles of the dataset's mesh, for rendering
    audio_hf_config: dict | None = None  # wav2vec2 / hubert architecture, so loading needs no pretrained folder

    def as_dict(self) -> dict[str, Any]:
        return {"n_vertices": self.n_vertices, "styles": list(self.styles), "motion_dim": self.motion_dim,
                "template": self.template, "faces": self.faces, "audio_hf_config": self.audio_hf_config}

    def style_index(self, name: str) -> int:
        """Index of a training style; 'average' means the style-independent mode (-1)."""
        if name == "average":
            return -1
        if name not in self.styles:
            from facerl.errors import FacerlError

            raise FacerlError(f"unknown style {name!r}; this actor knows: average, {', '.join(self.styles)}")
        return self.styles.index(name)


def build_actor(cfg: ActorConfig, meta: ActorMeta, motion: MotionSpace | None = None) -> Actor:
    if motion is None and cfg.motion_space == "basis":
        motion = MotionSpace(meta.n_vertices * 3, meta.motion_dim)
    return Actor(cfg, meta.n_vertices, len(meta.styles), motion, meta.audio_hf_config)


def load_actor(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[Actor, ActorMeta, dict]:
    """(actor in eval mode, meta, checkpoint dict) from a best.pt / last.pt of `facerl train`."""
    ckpt = load_checkpoint(path, ACTOR_KIND, keys=("model", "config", "meta"))
    with reading_checkpoint(path):
        meta = ActorMeta(**ckpt["meta"])
        actor = build_actor(to_dataclass(ActorConfig, ckpt["config"]["model"], "model."), meta)
        actor.load_state_dict(ckpt["model"])
    return actor.to(device).eval(), meta, ckpt
