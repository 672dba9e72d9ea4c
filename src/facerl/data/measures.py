"""Per-clip ground-truth measurements that need the dataset's regions: the inner-lip gap and phone frames."""

from __future__ import annotations

import numpy as np

from facerl.data.layout import Layout
from facerl.errors import FacerlError
from facerl.head.rig import lip_gap
from facerl.speech.timing import Phone

BILABIALS = {"P", "B", "M"}
OPEN_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY"}


def clip_lip_gap(layout: Layout, clip: str) -> np.ndarray:
    """Inner-lip gap (T60,) in metres relative to the speaker's template: ~0 closed, > 0 open."""
    regions = layout.regions()
    if "inner_lip_pair" not in regions:
        raise FacerlError(f"{layout.regions_path} has no 'inner_lip_pair': cannot measure lip closure")
    subject, _ = Layout.parse_clip(clip)
    template = layout.templates()[subject]
    verts = np.load(layout.vertices(clip), mmap_mode="r").reshape(-1, len(template), 3)  # (T60, V, 3)
    pair = regions["inner_lip_pair"]
    return lip_gap(verts, pair) - lip_gap(template, pair)


def phone_frames(phone: Phone, n_frames: int, fps: float) -> np.ndarray:
    """(T,) bool: frames sampled inside the phone."""
    times = np.arange(n_frames) / fps
    return (times >= phone.start_s) & (times < phone.end_s)
