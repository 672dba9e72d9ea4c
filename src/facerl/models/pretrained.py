"""Self-supervised speech encoders (wav2vec 2.0, HuBERT) from Hugging Face transformers behind ``AudioEncoder``.

Dimensions: B batch, S audio samples (16 kHz), N encoder frames (``rate_hz``, 50 Hz for the released
checkpoints), D feature width (``config.hidden_size``).

As in FaceFormer, the CNN feature encoder is always frozen; ``freeze=True`` freezes the transformer too,
which makes the encoder a fixed function of the audio whose features can be cached per clip
(:mod:`facerl.models.feature_cache`). Nothing is downloaded unless ``pretrained`` is a hub id.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from facerl.audio import SAMPLE_RATE
from facerl.errors import FacerlError
from facerl.models.audio import AudioEncoder, AudioEncoderConfig

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")   # org/name, the form every wav2vec2 / HuBERT checkpoint has
_HOW_TO = ("pass a local directory written by save_pretrained (e.g. download facebook/wav2vec2-base-960h "
           "and save it with Wav2Vec2Model.save_pretrained)")


def _one_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _resolve_source(cfg: AudioEncoderConfig) -> tuple[str, bool]:
    """``cfg.pretrained`` -> (directory or hub id, whether it is a local directory)."""
    source = cfg.pretrained.strip()
    if not source:
        raise FacerlError(f"audio encoder {cfg.kind!r} needs `pretrained`: {_HOW_TO}")
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path), True
    if path.exists() or not _HUB_ID.match(source):
        raise FacerlError(f"pretrained {cfg.kind} encoder: {source} is not a directory; {_HOW_TO}")
    return source, False


def _load_model(kind: str, source: str, is_dir: bool):
    """Load Wav2Vec2Model / HubertModel in float32; FacerlError if the checkpoint is missing or of another kind."""
    from transformers import AutoConfig, HubertModel, Wav2Vec2Model

    model_cls = {"wav2vec2": Wav2Vec2Model, "hubert": HubertModel}[kind]
    # A hub id is tried against the local Hugging Face cache first, so a cached model loads offline
    # without the hub client's network retries.
    attempts = (True,) if is_dir else (True, False)
    error: BaseException | None = None
    for local_files_only in attempts:
        try:
            config = AutoConfig.from_pretrained(source, local_files_only=local_files_only)
        except (OSError, ValueError) as err:
            error = err
            continue
        if config.model_type != kind:
            # Same parameter names in both families, so loading the wrong one would silently mis-initialise.
            raise FacerlError(f"{source} holds a {config.model_type!r} model, not {kind!r}; "
                              f"set the audio encoder kind to match")
        try:
            return model_cls.from_pretrained(source, config=config, local_files_only=local_files_only,
                                             dtype=torch.float32)
        except (OSError, ValueError) as err:
            error = err
    where = "directory" if is_dir else "hub id (not in the local cache and not downloadable)"
    raise FacerlError(f"cannot load {kind} from {where} {source}: {_one_line(error)}; {_HOW_TO}")


def normalise_audio(audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
    """(B, S), (B, S) bool -> (B, S): zero mean, unit variance over each clip's real samples, padding 0.

    The same per-utterance normalisation Wav2Vec2FeatureExtractor(do_normalize=True) applies.
    """
    m = audio_mask.to(audio.dtype)                                   # (B, S)
    n = m.sum(dim=1, keepdim=True).clamp(min=1.0)                    # (B, 1)
    mean = (audio * m).sum(dim=1, keepdim=True) / n
    var = ((audio - mean) ** 2 * m).sum(dim=1, keepdim=True) / n
    return (audio - mean) / torch.sqrt(var + 1e-7) * m


class PretrainedSpeechEncoder(AudioEncoder):
    """wav2vec 2.0 (``kind="wav2vec2"``) or HuBERT (``kind="hubert"``): (B, S) 16 kHz -> (B, N, D) last hidden state.

    ``self.model`` is the transformers ``Wav2Vec2Model`` / ``HubertModel``. Models whose CNN uses layer norm
    (``feat_extract_norm="layer"``, e.g. the large lv60 checkpoints) get an attention mask, as the
    transformers docs prescribe. Group-norm models (wav2vec2-base, hubert-base) were trained without one and
    their first conv normalises over the whole sequence, so a padded batch is encoded clip by clip instead;
    either way a clip gets the same features in a padded batch as alone.
    """

    def __init__(self, cfg: AudioEncoderConfig, hf_config: dict | None = None) -> None:
        """``hf_config``: the model's transformers config as a dict; when given, the architecture is built from
        it without reading ``cfg.pretrained`` (a facerl checkpoint then supplies the weights)."""
        super().__init__()
        if cfg.kind not in ("wav2vec2", "hubert"):
            raise FacerlError(f"PretrainedSpeechEncoder supports wav2vec2 and hubert, not {cfg.kind!r}")
        if hf_config is not None:
            from transformers import (
                HubertConfig,
                HubertModel,
                Wav2Vec2Config,
                Wav2Vec2Model,
            )

            config_cls, model_cls = {"wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
                                     "hubert": (HubertConfig, HubertModel)}[cfg.kind]
            self.model = model_cls(config_cls.from_dict(hf_config))
        else:
            source, is_dir = _resolve_source(cfg)
            self.model = _load_model(cfg.kind, source, is_dir)
        config = self.model.config
        self.feature_dim = config.hidden_size
        self.rate_hz = SAMPLE_RATE / math.prod(config.conv_stride)       # 16000 / 320 = 50 Hz
        self.uses_attention_mask = config.feat_extract_norm == "layer"
        # FaceFormer freezes the CNN feature encoder even when fine-tuning the transformer
        # (HubertModel lacks the public freeze_feature_encoder that Wav2Vec2Model has).
        freeze_cnn = getattr(self.model, "freeze_feature_encoder", self.model.feature_extractor._freeze_parameters)
        freeze_cnn()
        self.frozen = cfg.freeze
        if self.frozen:
            self.model.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> PretrainedSpeechEncoder:
        # A frozen encoder is a fixed function of the audio: no dropout or SpecAugment while the actor trains.
        return super().train(mode and not self.frozen)

    def output_length(self, n_samples: int) -> int:
        """Encoder frames N produced from ``n_samples`` of audio (valid convolutions, no padding)."""
        n = n_samples
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            n = (n - kernel) // stride + 1
        return n

    def min_samples(self) -> int:
        """Receptive field of the CNN: the fewest samples that give one frame."""
        n, jump = 0, 1
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            n, jump = n + (kernel - 1) * jump, jump * stride
        return n + 1

    def features(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        """(B, S), (B, S) bool -> (B, N, D) at ``rate_hz``; frames past a clip's end are padding."""
        mask = audio_mask.to(torch.bool)
        x = normalise_audio(audio, mask)                              # (B, S)
        if x.shape[1] < self.min_samples():                           # too short for one frame: pad with silence
            pad = self.min_samples() - x.shape[1]
            x, mask = F.pad(x, (0, pad)), F.pad(mask, (0, pad), value=False)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if self.uses_attention_mask:
                return self.model(x, attention_mask=mask.long()).last_hidden_state   # (B, N, D)
            if bool(mask.all()):
                return self.model(x).last_hidden_state                               # (B, N, D)
            return self._features_clip_by_clip(x, mask)

    def _features_clip_by_clip(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, S), (B, S) -> (B, N, D), each clip encoded alone on its real samples, zero frames after its end."""
        n = self.output_length(x.shape[1])
        out = []
        for clip, clip_mask in zip(x, mask):
            length = max(int(clip_mask.sum()), self.min_samples())
            h = self.model(clip[None, :length]).last_hidden_state[0]               # (N_clip, D)
            out.append(F.pad(h, (0, 0, 0, n - h.shape[0])))                         # (N, D)
        return torch.stack(out)                                                    # (B, N, D)
