"""Per-clip cache of a frozen audio encoder's features, so a large frozen encoder runs once per clip, not per epoch.

Dimensions: S audio samples (16 kHz), N encoder frames (encoder ``rate_hz``), D feature width.

Features live in memory and, when a root is given, in ``<root>/<fingerprint>/<name>.npy``. The fingerprint
hashes the encoder's class, config and weights, so different or retrained encoders never share files.
Only encoders with ``frozen=True`` may be cached: a trainable encoder's features change every step.
The clip ``name`` is the key, so it must identify the audio (use a new root if a corpus is rebuilt).
:meth:`FeatureCache.get_many` computes all missing clips of a batch in one call of the encoder's
``clip_features`` (Whisper packs them into shared 30 s windows, see :mod:`facerl.models.whisper`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facerl.models.audio import AudioEncoder
from facerl.utils.io import save_npy

log = logging.getLogger(__name__)

_SIMPLE = (bool, int, float, str, tuple, type(None))


def _config_of(encoder: nn.Module) -> dict:
    """What besides the weights decides the features: the encoder's simple attributes and its submodules' configs."""
    out = {k: v for k, v in vars(encoder).items()
           if not k.startswith("_") and k != "training" and isinstance(v, _SIMPLE)}
    seen = set()
    for prefix, module in encoder.named_modules():
        config = getattr(module, "config", None)
        if config is None or id(config) in seen:
            continue
        seen.add(id(config))
        if hasattr(config, "to_dict"):                     # transformers PretrainedConfig
            out[f"config:{prefix}"] = config.to_dict()
        elif dataclasses.is_dataclass(config):
            out[f"config:{prefix}"] = dataclasses.asdict(config)
    return out


def _strip_bookkeeping(value):
    """Drop keys that name where a model came from (``_name_or_path``, ``transformers_version``), not what it is."""
    if isinstance(value, dict):
        return {k: _strip_bookkeeping(v) for k, v in value.items()
                if not str(k).startswith("_") and k != "transformers_version"}
    if isinstance(value, (list, tuple)):
        return [_strip_bookkeeping(v) for v in value]
    return value


def encoder_fingerprint(encoder: nn.Module) -> str:
    """16 hex characters identifying the encoder's class, config and exact weights."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{type(encoder).__module__}.{type(encoder).__qualname__}".encode())
    config = _strip_bookkeeping(_config_of(encoder))
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())                 # raw bytes: any dtype, bfloat16 included
    return h.hexdigest()


class FeatureCache:
    """Features of a frozen encoder per clip name: memory first, then ``<root>/<fingerprint>/<name>.npy``, then compute.

    ``root=None`` keeps features in memory only. Unreadable or corrupt files are recomputed and rewritten.
    """

    def __init__(self, root: str | Path | None, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.dir = Path(root) / fingerprint if root is not None else None
        self._memory: dict[str, torch.Tensor] = {}

    @classmethod
    def for_encoder(cls, root: str | Path | None, encoder: AudioEncoder) -> FeatureCache:
        return cls(root, encoder_fingerprint(encoder))

    def path(self, name: str) -> Path | None:
        if self.dir is None:
            return None
        if not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"clip name must be a relative path without '..', got {name!r}")
        return self.dir / f"{name}.npy"

    def get(self, name: str, audio: torch.Tensor, encoder: AudioEncoder) -> torch.Tensor:
        """(S,) 16 kHz audio -> (N, D) float32 CPU features of ``encoder`` (which must be frozen)."""
        return self.get_many([name], [audio], encoder)[0]

    def get_many(self, names: list[str], audios: list[torch.Tensor], encoder: AudioEncoder) -> list[torch.Tensor]:
        """[(S_i,)] -> [(N_i, D)] float32 CPU features; the clips found neither in memory nor on disk are
        encoded together (one ``encoder.clip_features`` call)."""
        if not encoder.frozen:
            raise ValueError(f"only frozen encoders may be cached; {type(encoder).__name__} has frozen=False")
        missing = []
        for name in dict.fromkeys(names):
            if name in self._memory:
                continue
            path = self.path(name)
            features = self._load(path, encoder.feature_dim) if path is not None else None
            if features is None:
                missing.append(name)
            else:
                self._memory[name] = features
        if missing:
            audio_of = dict(zip(names, audios))
            for name, features in zip(missing, self._compute([audio_of[n] for n in missing], encoder)):
                path = self.path(name)
                if path is not None:
                    save_npy(path, features.numpy())
                self._memory[name] = features
        return [self._memory[name] for name in names]

    @staticmethod
    def _compute(audios: list[torch.Tensor], encoder: AudioEncoder) -> list[torch.Tensor]:
        param = next(encoder.parameters(), None)
        clips = [a.reshape(-1).to(device=param.device if param is not None else a.device, dtype=torch.float32)
                 for a in audios]                                            # [(S_i,)]
        with torch.no_grad():
            features = encoder.clip_features(clips)                          # [(N_i, D)]
        return [f.float().cpu() for f in features]

    @staticmethod
    def _load(path: Path, feature_dim: int) -> torch.Tensor | None:
        if not path.exists():
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            log.warning("recomputing unreadable cached features %s (%s)", path, err)
            return None
        if array.ndim != 2 or array.shape[1] != feature_dim or array.dtype != np.float32:
            log.warning("recomputing cached features %s with shape %s %s", path, array.shape, array.dtype)
            return None
        return torch.from_numpy(array)
