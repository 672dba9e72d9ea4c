"""Benchmark: how different the corpus voices sound (issue 10, "any voice"), and whether any two are near-identical.

    .venv/bin/python benchmarks/voice_diversity.py [--seed 0] [--sentences 6]

Every voice of the corpus's bank (the seed's train / val / test pools, facerl.data.voice_bank) and, for
comparison, the corpus's former 12 voices (en-us + m1-m7, f1-f5) speak the same sentences (spoken as the
corpus speaks them: `speak_unclipped`). Per voice and per half of the sentences, 28 numbers:
mean and std over speech frames of MFCC 1-12 (DCT of the actor's 80-bin log-mel, c0 = loudness dropped),
median log f0 and its interquartile spread, speech rate (phones per second) and the share of voiced frames.
Distances are RMS over the 28 dimensions after z-scoring each by its spread over the bank (each
dimension's difference capped at 3 spreads).

* within-voice distance: half A vs half B of the same voice (other sentences: the noise floor of the measure)
* between-voice distance: half A of one voice vs half B of another
* near-identical pair: two voices closer to each other than either is to itself on other sentences
  (between < max of their two within-voice distances): this measure cannot tell them apart
* identification: half A of a voice finds its own half B as nearest neighbour among all voices
"""

from __future__ import annotations

import argparse
import tempfile
import time
from itertools import combinations

import numpy as np
import torch
from scipy.fft import dct
from tqdm import tqdm

from facerl.audio import SAMPLE_RATE
from facerl.data.synthetic import CorpusConfig, speak_unclipped
from facerl.data.voice_bank import voice_pools
from facerl.models.audio import log_mel
from facerl.speech.espeak import Espeak, Utterance, Voice, write_data_dir
from facerl.speech.sentences import make_sentences

LEGACY = [("m1", 160, 45), ("f1", 170, 55), ("m2", 150, 40), ("f2", 175, 60), ("m3", 165, 50), ("f3", 160, 50),
          ("m4", 175, 35), ("f4", 155, 65), ("m5", 160, 55), ("f5", 170, 45), ("m6", 155, 50), ("m7", 170, 40)]
HOP = 160  # 10 ms frames


def f0_track(audio: np.ndarray, window: int = 400) -> np.ndarray:
    """YIN pitch (Hz; de Cheveigne & Kawahara 2002) per 10 ms hop, 25 ms integration window, lags up to
    25 ms (40 Hz); 0 where unvoiced or quiet."""
    frame = 2 * window
    n = 1 + max(0, len(audio) - frame) // HOP
    x = np.stack([audio[i * HOP:i * HOP + frame] for i in range(n)]).astype(np.float64)   # (N, 2W)
    head = np.zeros_like(x)
    head[:, :window] = x[:, :window]
    r = np.fft.irfft(np.conj(np.fft.rfft(head, 2 * frame)) * np.fft.rfft(x, 2 * frame))[:, :window]  # (N, W)
    c = np.concatenate([np.zeros((n, 1)), np.cumsum(x ** 2, axis=1)], axis=1)                    # (N, 2W+1)
    tau = np.arange(window)
    d = np.maximum(c[:, window:window + 1] + c[:, tau + window] - c[:, tau] - 2 * r, 0.0)      # (N, W) d(tau)
    cmnd = d * tau / np.maximum(np.cumsum(d, axis=1), 1e-12)
    cmnd[:, 0] = 1.0
    lo = SAMPLE_RATE // 450
    band = cmnd[:, lo:]
    rows = np.arange(n)
    below = band < 0.15
    best = np.where(below.any(1), below.argmax(1), band.argmin(1))
    for _ in range(window):  # walk down to the bottom of the first dip under the threshold
        nxt = np.minimum(best + 1, band.shape[1] - 1)
        step = band[rows, nxt] < band[rows, best]
        if not step.any():
            break
        best = best + step
    rms = np.sqrt((x[:, :window] ** 2).mean(1))
    voiced = (band[rows, best] < 0.3) & (rms > 0.1 * rms.max())
    return np.where(voiced, SAMPLE_RATE / (lo + best), 0.0)


def features(utts: list[Utterance]) -> np.ndarray:
    """(28,) voice features of a few utterances of one voice."""
    mfcc, f0, voiced_share, phones, seconds = [], [], [], 0, 0.0
    for u in utts:
        mel = log_mel(torch.from_numpy(u.audio)[None].float())[0].numpy()        # (N, 80)
        energy = mel.mean(1)
        speech = energy > energy.max() - 8.0                                       # within ~35 dB of the peak
        mfcc.append(dct(mel[speech], type=2, norm="ortho", axis=1)[:, 1:13])
        track = f0_track(u.audio)
        f0.append(track[track > 0])
        voiced_share.append((track > 0).mean())
        phones += sum(p.phone != "SIL" for p in u.phones)
        seconds += sum(p.duration_s for p in u.phones if p.phone != "SIL")
    c, lf0 = np.concatenate(mfcc), np.log(np.concatenate(f0))
    lf0 = lf0[np.abs(lf0 - np.median(lf0)) < np.log(1.7)]  # drop octave errors of the tracker
    return np.concatenate([c.mean(0), c.std(0), [np.median(lf0), np.subtract(*np.percentile(lf0, [75, 25])),
                                                 phones / seconds, float(np.mean(voiced_share))]])


def describe(name: str, a: np.ndarray, b: np.ndarray, scale: np.ndarray, labels: list[str]) -> None:
    """a, b: (V, 28) features of sentence halves A and B per voice."""
    za, zb = a / scale, b / scale
    # each dimension counts at most 3 spreads: one unreliable number (e.g. the pitch spread of a barely
    # voiced variant) cannot make two halves of one voice look like two voices
    d = np.sqrt((np.clip(np.abs(za[:, None] - zb[None]), 0, 3) ** 2).mean(-1))     # (V, V): A of i vs B of j
    within = np.diag(d)
    pairs = list(combinations(range(len(a)), 2))
    between = np.array([min(d[i, j], d[j, i]) for i, j in pairs])
    near = int(sum(b < max(within[i], within[j]) for b, (i, j) in zip(between, pairs)))
    ident = float((d.argmin(1) == np.arange(len(a))).mean())
    print(f"{name}: {len(a)} voices, {len(between)} pairs")
    print(f"  between-voice distance: min {between.min():.3f}  5% {np.percentile(between, 5):.3f}  "
          f"median {np.median(between):.3f}  max {between.max():.3f}")
    print(f"  within-voice distance (other sentences): median {np.median(within):.3f}  max {within.max():.3f}")
    print(f"  near-identical pairs (closer than to themselves): {near}   "
          f"min between / median within: {between.min() / np.median(within):.2f}")
    print(f"  nearest-neighbour identification from other sentences: {100 * ident:.1f} %")
    closest = ", ".join(f"{labels[pairs[k][0]]} ~ {labels[pairs[k][1]]} {between[k]:.2f}" for k in np.argsort(between)[:3])
    print(f"  closest pairs: {closest}")


def speak_all(voices: list[Voice], texts: list[str], data_dir: str | None) -> list[list[Utterance]]:
    engine = Espeak.get(data_dir)
    return [[speak_unclipped(engine, t, v)[0] for t in texts]
            for v in tqdm(voices, desc="speaking", unit="voice", leave=False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="corpus seed (the voice bank depends on it)")
    ap.add_argument("--sentences", type=int, default=6, help="sentences per voice (split in two halves)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    torch.set_num_threads(1)  # small STFTs: threads only contend
    pools = voice_pools(args.seed, CorpusConfig().pool_sizes())
    bank = [v for split in ("train", "val", "test") for v in pools[split]]
    texts = make_sentences(args.sentences, seed=777)
    half = args.sentences // 2

    legacy_utts = speak_all([Voice(f"en-us+{v}", rate, pitch) for v, rate, pitch in LEGACY], texts, None)
    with tempfile.TemporaryDirectory(prefix="facerl-espeak-") as d:
        write_data_dir(d, [v.variant for v in bank])
        bank_utts = speak_all([v.voice for v in bank], texts, d)

    def halves(utts):
        return (np.stack([features(u[:half]) for u in utts]), np.stack([features(u[half:]) for u in utts]))

    a, b = halves(bank_utts)
    la, lb = halves(legacy_utts)
    scale = np.concatenate([a, b]).std(0) + 1e-9     # one scale for both sets: distances are comparable

    texts_unique = len({v.variant.text().split("\n", 2)[2] for v in bank})  # without the name line
    print(f"voice bank (seed {args.seed}): {len(bank)} voices "
          f"({', '.join(f'{s} {len(p)}' for s, p in pools.items())}), {texts_unique} distinct parameter sets")
    for kind in ("male", "female", "child"):
        f0 = np.exp([(a[i, 24] + b[i, 24]) / 2 for i, v in enumerate(bank) if v.kind == kind])
        print(f"  {kind:6s} {len(f0):3d} voices, median f0 per voice: min {f0.min():.0f}  median "
              f"{np.median(f0):.0f}  max {f0.max():.0f} Hz")
    peak = max(float(np.abs(u.audio).max()) for us in bank_utts for u in us)
    print(f"  loudest sample {peak:.3f} (speak_unclipped keeps it below 0.98)")
    describe("bank", a, b, scale, [f"{v.id}({v.kind} {v.base})" for v in bank])
    describe("former 12 voices", la, lb, scale, [v for v, _, _ in LEGACY])
    print(f"[{time.perf_counter() - t0:.0f} s, {len(texts)} sentences per voice]")


if __name__ == "__main__":
    main()
