"""A mesh lip-reader: a judge of another kind (`facerl train experiment=lipreader`).

The judge (``stage=judge``) is the reward's sibling: same data, same audio-mesh sync task, so motion that
fools the reward may fool it too. The lip-reader asks the mesh alone another question: which viseme is the
mouth showing? A small temporal conv net reads a window of lip-vertex motion (offsets from the speaker's
template) and classifies its centre frame into one of :data:`VISEMES`. It is trained on the ground truth of
the train speakers only and is never a reward; its accuracy on a method's output against the clip's true
phones is a column of the evaluation tables.

The headline number is the class-balanced accuracy (mean recall over the viseme classes present): a
static face shows one viseme everywhere and so scores chance (1/C) whatever the class frequencies, and
rare lip-critical classes (bilabials, labiodentals) count as much as the frequent lingual consonants.
Plain frame accuracy is reported beside it.

Dimensions: B windows or sequences, T frames (30 fps), W window frames, V vertices, L lip vertices,
P = L*3 lip coordinates, D width, C viseme classes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from facerl.config import to_dataclass
from facerl.data.dataset import FPS, VocaDataset, spec_from_config
from facerl.data.measures import phone_frames
from facerl.errors import FacerlError
from facerl.speech.phoneset import PHONE_CLASS, PHONE_CLASSES
from facerl.speech.timing import Phone
from facerl.train.common import (
    load_checkpoint,
    reading_checkpoint,
    resolve_device,
    rng_state,
    save_checkpoint,
    seed_everything,
)
from facerl.utils.io import check_writable

LIPREADER_KIND = "facerl-lipreader"
CHECKPOINT_NAME = "lipreader.pt"

# Phone class (facerl.speech.phoneset.PHONE_CLASS) -> viseme: what the lips show. The groups are those of
# facerl.animation.visemes (closed, lower lip to teeth, funnel/pucker, jaw open, stretch); the tongue-only
# contrasts (dental, alveolar, velar, glottal) look alike from outside and share one class, as in the
# MPEG-4 and Disney viseme sets. R, W and ER are lip-rounded; Y is spread. Diphthongs count as their onset.
VISEME_OF_CLASS: dict[str, str] = {
    "silence": "rest",
    "bilabial": "bilabial",
    "labiodental": "labiodental",
    "postalveolar": "postalveolar",
    "rounded_vowel": "rounded", "glide_round": "rounded", "rhotic": "rounded", "rhotic_vowel": "rounded",
    "open_vowel": "open",
    "spread_vowel": "spread", "glide_spread": "spread",
    "dental": "lingual", "alveolar": "lingual", "velar": "lingual", "glottal": "lingual",
}
VISEMES: tuple[str, ...] = ("rest", "bilabial", "labiodental", "postalveolar", "rounded", "open", "spread",
                            "lingual")
VISEME_INDEX = {name: i for i, name in enumerate(VISEMES)}
assert set(VISEME_OF_CLASS) == set(PHONE_CLASSES) and set(VISEME_OF_CLASS.values()) == set(VISEMES)


def viseme_of(phone: str) -> int:
    """Viseme class index of a canonical phone."""
    return VISEME_INDEX[VISEME_OF_CLASS[PHONE_CLASS[phone]]]


def frame_visemes(phones: list[Phone], n_frames: int, fps: float = FPS) -> np.ndarray:
    """(T,) int64 viseme class of each frame (sampled at t / fps); frames outside every phone are rest."""
    labels = np.full(n_frames, VISEME_INDEX["rest"], np.int64)
    for phone in phones:
        labels[phone_frames(phone, n_frames, fps)] = viseme_of(phone.phone)
    return labels


def lip_motion(vertices: np.ndarray | torch.Tensor, template: np.ndarray | torch.Tensor,
               lips: np.ndarray) -> torch.Tensor:
    """(T, V, 3) vertices and their (V, 3) template -> (T, P) float32 lip offsets from the template."""
    vertices, template = torch.as_tensor(vertices), torch.as_tensor(template)
    t = len(vertices)
    return (vertices.reshape(t, -1, 3)[:, lips] - template.reshape(-1, 3)[lips]).reshape(t, -1).float()


def pad_edges(motion: torch.Tensor, half: int) -> torch.Tensor:
    """(T, P) -> (T + 2*half, P), the first and last frames repeated: every frame gets a full window."""
    return torch.cat([motion[:1].expand(half, -1), motion, motion[-1:].expand(half, -1)])


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


@dataclass
class LipReaderNetConfig:
    """Architecture of the lip-reader (conf/trainer/lipreader.yaml documents each)."""

    window: int = 11
    width: int = 64
    depth: int = 2
    dropout: float = 0.1


class LipReaderNet(nn.Module):
    """A fully convolutional classifier: a per-frame projection of the normalised lip offsets, ``depth``
    width-3 convs, and an output conv spanning the rest of the window, so the receptive field is exactly
    ``window`` frames. On one window it gives one prediction; on a whole edge-padded sequence, every frame's
    prediction in one pass."""

    def __init__(self, n_coords: int, n_classes: int, cfg: LipReaderNetConfig) -> None:
        super().__init__()
        self.window = cfg.window
        self.register_buffer("mean", torch.zeros(n_coords))
        self.register_buffer("std", torch.ones(n_coords))
        layers: list[nn.Module] = [nn.Conv1d(n_coords, cfg.width, 1), nn.GELU(), nn.Dropout(cfg.dropout)]
        for _ in range(cfg.depth):
            layers += [nn.Conv1d(cfg.width, cfg.width, 3), nn.GELU(), nn.Dropout(cfg.dropout)]
        layers.append(nn.Conv1d(cfg.width, n_classes, cfg.window - 2 * cfg.depth))
        self.net = nn.Sequential(*layers)

    def set_input_stats(self, motion: torch.Tensor) -> None:
        """Per-coordinate mean and std of training motion (N, P); the std is floored at a tenth of its mean
        so that nearly still vertices do not turn numerical noise into evidence."""
        std = motion.std(0)
        self.mean.copy_(motion.mean(0))
        self.std.copy_(std.clamp_min(0.1 * std.mean().item()))

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        """(B, T + W - 1, P) lip offsets -> (B, T, C) viseme logits of the T centre frames."""
        x = ((motion - self.mean) / self.std).transpose(1, 2)      # (B, P, T + W - 1)
        return self.net(x).transpose(1, 2)                         # (B, T, C)


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


@dataclass
class LipReading:
    """How well the lip-reader recovers the true visemes from some motion, pooled over frames."""

    balanced_accuracy: float    # mean recall over the viseme classes that occur (the headline number)
    accuracy: float             # share of frames classified right
    frames: int
    confusion: np.ndarray       # (C, C) frame counts, rows: true viseme, columns: predicted


def reading_scores(confusion: np.ndarray) -> LipReading:
    """Accuracies of a (C, C) confusion matrix (rows true, columns predicted); classes that never occur
    are left out of the balanced mean."""
    truth = confusion.sum(1)
    present = truth > 0
    frames = int(confusion.sum())
    if frames == 0:
        raise FacerlError("lip-reading needs at least one frame")
    recall = np.diag(confusion)[present] / truth[present]
    return LipReading(float(recall.mean()), float(np.trace(confusion) / frames), frames, confusion)


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int = len(VISEMES)) -> np.ndarray:
    """(C, C) int64 counts of (true, predicted) class pairs."""
    return np.bincount(truth * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, -1)


class LipReader:
    """The frozen lip-reader: motion in, visemes out (never a reward, so nothing is trained against it)."""

    def __init__(self, net: LipReaderNet, lips: np.ndarray, n_vertices: int, device: torch.device) -> None:
        self.net = net.to(device).eval()
        self.lips, self.n_vertices, self.device = lips, n_vertices, device

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> LipReader:
        """From ``lipreader.pt`` or the folder holding it (``<run>/lipreader``)."""
        path = Path(path)
        if path.is_dir():
            path = path / CHECKPOINT_NAME
        ckpt = load_checkpoint(path, LIPREADER_KIND, keys=("net", "lips", "meta"))
        with reading_checkpoint(path):
            meta = ckpt["meta"]
            if tuple(meta["classes"]) != VISEMES:
                raise FacerlError(f"{path} was trained on other viseme classes ({', '.join(meta['classes'])}); "
                                  "retrain it with `facerl train experiment=lipreader`")
            net = LipReaderNet(meta["n_coords"], len(VISEMES), LipReaderNetConfig(**meta["net_config"]))
            net.load_state_dict(ckpt["net"])
            return cls(net, ckpt["lips"].numpy(), int(meta["n_vertices"]), resolve_device(str(device)))

    @torch.no_grad()
    def predict(self, vertices: np.ndarray, template: np.ndarray) -> np.ndarray:
        """(T, V, 3) vertices at 30 fps and their (V, 3) template -> (T,) int64 viseme class per frame."""
        if template.size != self.n_vertices * 3 or vertices.size != len(vertices) * template.size:
            raise FacerlError(f"the lip-reader reads meshes of {self.n_vertices} vertices, got vertices "
                              f"{tuple(vertices.shape)} with a template of {template.size // 3}")
        motion = pad_edges(lip_motion(vertices, template, self.lips), self.net.window // 2)   # (T + W - 1, P)
        return self.net(motion[None].to(self.device))[0].argmax(-1).cpu().numpy()

    def score(self, items: Iterable[tuple[np.ndarray, np.ndarray, list[Phone] | None]]) -> LipReading:
        """(vertices (T, V, 3) at 30 fps, template (V, 3), true phones) per sequence -> accuracies against
        the visemes of the true phones, pooled over the frames of all sequences."""
        confusion = np.zeros((len(VISEMES), len(VISEMES)), np.int64)
        for vertices, template, phones in items:
            if phones is None:
                raise FacerlError("lip-reading needs the clips' phone timings (phones/<clip>.csv); this "
                                  "dataset has none")
            predicted = self.predict(vertices, template)
            confusion += confusion_matrix(frame_visemes(phones, len(predicted)), predicted)
        return reading_scores(confusion)


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


@dataclass
class LipReaderTrainConfig:
    """Hyper-parameters of lip-reader training (conf/trainer/lipreader.yaml documents each)."""

    epochs: int = 16
    steps_per_epoch: int = 50
    max_minutes: float = 5.0
    batch_windows: int = 256
    lr: float = 0.002
    weight_decay: float = 0.01
    gain_jitter: float = 0.2
    balance_classes: bool = True
    net: LipReaderNetConfig = field(default_factory=LipReaderNetConfig)
    device: str = "auto"
    seed: int = 0

    def validate(self) -> None:
        if min(self.epochs, self.steps_per_epoch, self.batch_windows, self.net.width) < 1:
            raise FacerlError("trainer.epochs, steps_per_epoch, batch_windows and net.width must be >= 1")
        if self.net.window % 2 == 0 or self.net.depth < 0 or self.net.window < 2 * self.net.depth + 1:
            raise FacerlError(f"trainer.net.window must be odd and >= 2 * net.depth + 1, got window "
                              f"{self.net.window}, depth {self.net.depth}")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.max_minutes >= 0 and 0 <= self.gain_jitter < 1
                and 0 <= self.net.dropout < 1):
            raise FacerlError("trainer.lr must be > 0, weight_decay and max_minutes >= 0, gain_jitter and "
                              "net.dropout in [0, 1)")


@dataclass
class LabelledMotion:
    """One clip's edge-padded lip offsets and per-frame viseme labels."""

    name: str
    motion: torch.Tensor        # (T + W - 1, P)
    labels: torch.Tensor        # (T,) int64


def read_split(ds: VocaDataset, lips: np.ndarray, half: int, desc: str) -> list[LabelledMotion]:
    """Every clip of a split as lip offsets and viseme labels (the full meshes are not kept)."""
    out = []
    for i in tqdm(range(len(ds)), desc=desc, unit="clip", leave=False):
        clip = ds[i]
        if clip.phones is None:
            raise FacerlError(f"the lip-reader learns from phone timings, but {ds.layout.phones(clip.name)} "
                              "does not exist (VOCASET has none; use a facerl-built corpus)")
        motion = lip_motion(clip.vertices, clip.template, lips)                               # (T, P)
        labels = torch.from_numpy(frame_visemes(clip.phones, len(motion)))
        out.append(LabelledMotion(clip.name, pad_edges(motion, half), labels))
    return out


def sample_windows(clips: list[LabelledMotion], n: int, window: int, rng: np.random.Generator,
                   gain_jitter: float) -> tuple[torch.Tensor, torch.Tensor]:
    """N random training windows (N, W, P) and their centre labels (N,). Each window's motion is scaled by
    a gain in [1 - gain_jitter, 1 + gain_jitter]: speakers articulate more or less widely (the corpus's
    per-speaker gains), and a viseme should not be read from the amplitude alone."""
    lengths = np.array([len(c.labels) for c in clips])
    flat = rng.integers(0, lengths.sum(), n)                       # frames uniformly over all clips
    clip_of = np.searchsorted(np.cumsum(lengths), flat, side="right")
    frame = flat - np.concatenate([[0], np.cumsum(lengths)[:-1]])[clip_of]
    windows = torch.stack([clips[c].motion[f:f + window] for c, f in zip(clip_of, frame)])   # (N, W, P)
    labels = torch.stack([clips[c].labels[f] for c, f in zip(clip_of, frame)])              # (N,)
    gain = torch.from_numpy(rng.uniform(1 - gain_jitter, 1 + gain_jitter, (n, 1, 1))).float()
    return windows * gain, labels


def class_weights(clips: list[LabelledMotion]) -> torch.Tensor:
    """(C,) inverse-frequency cross-entropy weights, mean 1 over the classes that occur (0 for absent ones):
    the loss then aims at the balanced accuracy that is reported."""
    counts = torch.bincount(torch.cat([c.labels for c in clips]), minlength=len(VISEMES)).float()
    weights = torch.where(counts > 0, 1.0 / counts.clamp_min(1), 0.0)
    return weights * (counts > 0).sum() / weights.sum()


@torch.no_grad()
def validate_lipreader(net: LipReaderNet, clips: list[LabelledMotion], device) -> LipReading:
    """Whole sequences of the val speakers, every frame classified."""
    net.eval()
    confusion = np.zeros((len(VISEMES), len(VISEMES)), np.int64)
    for clip in clips:
        predicted = net(clip.motion[None].to(device))[0].argmax(-1).cpu().numpy()   # (T,)
        confusion += confusion_matrix(clip.labels.numpy(), predicted)
    net.train()
    return reading_scores(confusion)


def train_lipreader(cfg: DictConfig) -> Path:
    """Train the lip-reader on the train speakers' ground truth; returns ``<run>/lipreader/lipreader.pt``
    (the epoch with the best val balanced accuracy). Always starts afresh: it takes about a minute."""
    tc = to_dataclass(LipReaderTrainConfig, cfg.trainer, "trainer.")
    tc.validate()
    device = resolve_device(tc.device)
    seed_everything(tc.seed)
    out_dir = check_writable(Path(cfg.paths.run_dir) / "lipreader")  # now, not after the loading
    out_path = out_dir / CHECKPOINT_NAME

    spec = spec_from_config(cfg.dataset)
    train_ds = VocaDataset(spec, "train", with_phones=True)
    lips = train_ds.layout.regions().get("lips")
    if lips is None:
        raise FacerlError(f"{train_ds.layout.regions_path} has no 'lips' region: the lip-reader reads lips")
    half = tc.net.window // 2
    train_clips = read_split(train_ds, lips, half, "train lip motion")
    val_clips = read_split(VocaDataset(spec, "val", with_phones=True), lips, half, "val lip motion")
    n_coords = train_clips[0].motion.shape[1]

    net = LipReaderNet(n_coords, len(VISEMES), tc.net)
    net.set_input_stats(torch.cat([c.motion[half:len(c.motion) - half] for c in train_clips]))
    net.to(device)
    weights = class_weights(train_clips).to(device) if tc.balance_classes else None
    opt = torch.optim.AdamW(net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    rng = np.random.default_rng(tc.seed)
    n_frames = sum(len(c.labels) for c in train_clips)
    print(f"lip-reader: {sum(p.numel() for p in net.parameters()) / 1e3:.1f} k parameters, {len(VISEMES)} visemes, "
          f"{len(lips)} lip vertices, window {tc.net.window} frames; {len(train_clips)} train clips "
          f"({n_frames} frames) / {len(val_clips)} val clips, device {device}")

    meta = {"n_coords": n_coords, "n_vertices": len(train_ds.templates[train_ds.spec.train_subjects[0]]),
            "classes": list(VISEMES), "net_config": asdict(tc.net), "fps": FPS}
    total = tc.epochs * tc.steps_per_epoch
    step, history, best, capped = 0, [], -1.0, False
    t_start = time.perf_counter()
    bar = tqdm(total=total, desc="lip-reader", unit="step")
    for epoch in range(1, tc.epochs + 1):
        for _ in range(tc.steps_per_epoch):
            windows, labels = sample_windows(train_clips, tc.batch_windows, tc.net.window, rng, tc.gain_jitter)
            logits = net(windows.to(device))[:, 0]                                # (N, C)
            loss = F.cross_entropy(logits, labels.to(device), weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
            capped = tc.max_minutes > 0 and time.perf_counter() - t_start > tc.max_minutes * 60
            if capped:
                break
        val = validate_lipreader(net, val_clips, device)
        record = {"epoch": epoch, "step": step, "time_s": round(time.perf_counter() - t_start, 1),
                  "train_loss": loss.item(), "val_balanced_accuracy": val.balanced_accuracy,
                  "val_accuracy": val.accuracy}
        history.append(record)
        tqdm.write(f"lip-reader epoch {epoch:3d}/{tc.epochs}: val balanced acc {val.balanced_accuracy:.3f}, "
                   f"acc {val.accuracy:.3f} ({record['time_s']:.0f} s)")
        if val.balanced_accuracy > best:
            best = val.balanced_accuracy
            save_checkpoint(out_path, {
                "kind": LIPREADER_KIND, "net": net.state_dict(), "lips": torch.as_tensor(lips), "meta": meta,
                "config": OmegaConf.to_container(cfg, resolve=True), "metrics": record, "history": history,
                "step": step, "epoch": epoch, "optimizer": opt.state_dict(), "rng": rng_state()})
        if capped:
            break
    bar.close()
    if capped:
        print(f"WARNING: the lip-reader stopped at step {step} of {total}: trainer.max_minutes={tc.max_minutes} "
              "(a safety cap) was reached; it is under-trained, its numbers are not comparable", flush=True)
    print(f"lip-reader: best val balanced accuracy {best:.3f} (chance {1 / len(VISEMES):.3f}), "
          f"{time.perf_counter() - t_start:.0f} s: {out_path}")
    return out_path
