"""Phones + audio -> 52 ARKit weight curves at 60 fps: coarticulated visemes, exact bilabial closures,
blinks, brow raises on pitch accents, gaze, per-speaker style and per-utterance randomness.

Dimensions: T frames (60 fps), K = 52 ARKit channels, N phones.
"""

from __future__ import annotations

import numpy as np

from facerl.animation import visemes
from facerl.animation.style import SpeakerStyle
from facerl.audio import SAMPLE_RATE
from facerl.head.arkit import ARKIT_INDEX, ARKIT_NAMES, N_ARKIT
from facerl.speech.phoneset import PHONE_CLASS
from facerl.speech.timing import Phone

FPS = 60
LIP_CHANNELS = [i for i, n in enumerate(ARKIT_NAMES)
                if n.startswith(("mouthFunnel", "mouthPucker", "mouthStretch", "mouthPress", "mouthRoll",
                                 "mouthSmile", "mouthUpperUp", "mouthLowerDown"))]
CLOSURE_RAMP_S = 0.035      # how fast the lips seal into and release from a bilabial closure
CLOSURE_CORE = 0.15         # the closure holds over the phone minus this share at each end
CLOSURE_THRESHOLD_M = 0.002  # lips count as closed below a 2 mm inner-lip gap (relative to the template)


def n_frames(duration_s: float, fps: int = FPS) -> int:
    return max(1, round(duration_s * fps))


def coarticulate(phones: list[Phone], times: np.ndarray, style: SpeakerStyle,
                 rng: np.random.Generator) -> np.ndarray:
    """Dominance-weighted blend of viseme keys: (T,) times -> (T, K) weights."""
    num = np.zeros((len(times), N_ARKIT))
    den = np.full((len(times), 1), 1e-6)
    for p in phones:
        alpha, spread = visemes.dominance(p.phone)
        gain = rng.normal(1.0, 0.12)  # per-instance articulation effort audio cannot predict
        for pos, target in visemes.keyframes(p.phone):
            centre = p.start_s + pos * p.duration_s
            tau = (0.5 * p.duration_s + 0.03) * spread
            tau = np.where(times < centre, tau * style.anticipation, tau * style.carryover)
            d = alpha * np.exp(-(((times - centre) / tau) ** 2))[:, None]  # (T, 1)
            num += d * target * (gain if p.phone != "SIL" else 1.0)
            den += d
    return num / den


def closure_envelope(phones: list[Phone], times: np.ndarray, lead_s: float) -> np.ndarray:
    """(T,) in [0, 1]: 1 where a bilabial's lips must be sealed, ramping in/out over CLOSURE_RAMP_S.

    The core is the phone's middle, moved earlier by the visual lead but kept inside the phone, and
    always contains the frame nearest the phone centre, so every bilabial is closed at some frame.
    """
    env = np.zeros(len(times))
    dt = times[1] - times[0] if len(times) > 1 else 1.0 / FPS
    for p in phones:
        if not visemes.is_bilabial(p.phone):
            continue
        lo = max(p.start_s, p.start_s + CLOSURE_CORE * p.duration_s - lead_s)
        hi = min(p.end_s, max(lo, p.end_s - CLOSURE_CORE * p.duration_s - lead_s))
        inside = times[(times >= p.start_s) & (times < p.end_s)]  # frames sampled within the phone
        candidates = inside if len(inside) else times
        nearest = candidates[np.argmin(np.abs(candidates - (p.centre_s - lead_s)))]
        lo, hi = min(lo, nearest), max(hi, nearest)
        dist = np.maximum(np.maximum(lo - times, times - hi), 0.0)
        env = np.maximum(env, np.clip(1.0 - dist / max(CLOSURE_RAMP_S, dt), 0.0, 1.0))
    return env


def smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing along time (T, K), edges held."""
    radius = int(3 * sigma_frames) + 1
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    k /= k.sum()
    padded = np.pad(x, ((radius, radius), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], k, mode="valid") for j in range(x.shape[1])], axis=1)


def bump(times: np.ndarray, start: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """Smooth raised-cosine pulse: 0 -> 1 over ``rise``, hold, 1 -> 0 over ``fall``."""
    t = times - start
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / rise, 0, 1))
    down = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - rise - hold) / fall, 0, 1))
    return np.where(t < rise, up, down) * (t >= 0)


def accented_vowels(phones: list[Phone], audio: np.ndarray) -> list[Phone]:
    """Vowels louder than the utterance's vowel median: a proxy for pitch accents that works on any speech."""
    vowels = [p for p in phones if PHONE_CLASS.get(p.phone, "").endswith("vowel")]
    if not vowels:
        return []
    rms = np.array([np.sqrt(np.mean(audio[int(p.start_s * SAMPLE_RATE):max(int(p.end_s * SAMPLE_RATE),
                                                                             int(p.start_s * SAMPLE_RATE) + 1)] ** 2))
                    for p in vowels])
    return [p for p, r in zip(vowels, rms) if r > np.median(rms) * 1.1]


def upper_face(times: np.ndarray, phones: list[Phone], audio: np.ndarray, style: SpeakerStyle,
               rng: np.random.Generator) -> np.ndarray:
    """Blinks, brow raises on accents, slow gaze shifts: (T, K) weights."""
    w = np.zeros((len(times), N_ARKIT))
    duration = times[-1] + 1.0 / FPS
    t = rng.uniform(0.0, 60.0 / style.blink_per_min)
    while t < duration:  # Poisson blinks, ~70 ms close, ~30 ms hold, ~130 ms reopen
        b = bump(times, t, rng.uniform(0.06, 0.09), rng.uniform(0.0, 0.05), rng.uniform(0.10, 0.16))
        amp = rng.uniform(0.85, 1.0)
        w[:, ARKIT_INDEX["eyeBlinkLeft"]] = np.maximum(w[:, ARKIT_INDEX["eyeBlinkLeft"]], amp * b)
        w[:, ARKIT_INDEX["eyeBlinkRight"]] = np.maximum(w[:, ARKIT_INDEX["eyeBlinkRight"]],
                                                        amp * b * rng.uniform(0.9, 1.0))
        t += max(0.25, rng.exponential(60.0 / style.blink_per_min))
    for p in accented_vowels(phones, audio):
        if rng.random() < style.brow_prob:
            b = style.brow_gain * rng.uniform(0.6, 1.2) * bump(times, p.start_s - 0.08, 0.12, p.duration_s, 0.25)
            for name, share in (("browInnerUp", 1.0), ("browOuterUpLeft", 0.8), ("browOuterUpRight", 0.8)):
                w[:, ARKIT_INDEX[name]] = np.maximum(w[:, ARKIT_INDEX[name]], share * b)
    t = 0.0
    while t < duration:  # gaze: fixations of 0.5-2.5 s with small saccades
        span = (times >= t)
        h, v = rng.normal(0, 0.12), rng.normal(0, 0.08)
        for side in ("Left", "Right"):
            out_in = ("eyeLookOut", "eyeLookIn") if side == "Left" else ("eyeLookIn", "eyeLookOut")
            w[span, ARKIT_INDEX[out_in[0] + side]] = max(h, 0)
            w[span, ARKIT_INDEX[out_in[1] + side]] = max(-h, 0)
            w[span, ARKIT_INDEX["eyeLookUp" + side]] = max(v, 0)
            w[span, ARKIT_INDEX["eyeLookDown" + side]] = max(-v, 0)
        t += rng.uniform(0.5, 2.5)
    return w


def apply_style(w: np.ndarray, style: SpeakerStyle, rng: np.random.Generator) -> np.ndarray:
    """Speaker gains, smile bias (with slow drift), left/right asymmetry."""
    w = w.copy()
    utterance_effort = rng.normal(1.0, 0.08)
    w[:, ARKIT_INDEX["jawOpen"]] *= style.jaw_gain * utterance_effort
    w[:, LIP_CHANNELS] *= style.lip_gain * utterance_effort
    drift = smooth(rng.normal(0, 1, (len(w), 1)), sigma_frames=30)[:, 0]
    smile = np.clip(style.smile_bias + 0.15 * drift / (drift.std() + 1e-6) * 0.5, 0.0, None)
    for side in ("Left", "Right"):
        w[:, ARKIT_INDEX["mouthSmile" + side]] += smile
        w[:, ARKIT_INDEX["eyeSquint" + side]] += 0.3 * smile
        w[:, ARKIT_INDEX["cheekSquint" + side]] += 0.3 * smile
    for i, name in enumerate(ARKIT_NAMES):
        if name.endswith("Left") and name.startswith("mouth"):
            w[:, i] *= 1.0 + style.asymmetry
        elif name.endswith("Right") and name.startswith("mouth"):
            w[:, i] *= 1.0 - style.asymmetry
    return w


def animate(phones: list[Phone], audio: np.ndarray, style: SpeakerStyle, rng: np.random.Generator,
            fps: int = FPS) -> np.ndarray:
    """Phones and their audio (S,) at 16 kHz -> ARKit weights (T, 52) at ``fps``, T = round(S / 16k * fps)."""
    times = np.arange(n_frames(len(audio) / SAMPLE_RATE, fps)) / fps
    lips = coarticulate(phones, times + style.lead_s, style, rng)  # lips lead the sound
    lips = smooth(lips, sigma_frames=0.012 * fps)
    w = apply_style(lips, style, rng) + upper_face(times, phones, audio, style, rng)
    # Bilabials seal the lips exactly: mouthClose cancels the jaw's lip separation (ARKit convention).
    jaw, close = ARKIT_INDEX["jawOpen"], ARKIT_INDEX["mouthClose"]
    env = closure_envelope(phones, times, style.lead_s)
    w[:, close] = (1 - env) * w[:, close] + env * w[:, jaw]
    for side in ("Left", "Right"):  # stretched or lowered lips would leave a gap at the midline
        for name in ("mouthLowerDown", "mouthUpperUp", "mouthFunnel"):
            key = name + side if name != "mouthFunnel" else name
            w[:, ARKIT_INDEX[key]] *= 1 - env
    return np.clip(w, 0.0, 1.0).astype(np.float32)
