"""Accuracy of the offline aligner (facerl.speech.align) on speech whose phone timings are known exactly.

    .venv/bin/python benchmarks/aligner_accuracy.py --sentences 480

Speech: sentences from facerl.speech.sentences, each spoken by one of eight stock eSpeak en-us voices in
turn (male and female variants, 150-175 words/min), with eSpeak's sample-exact phone events as the truth.
The aligner gets only the audio and the sentence text (plus the two grammar words the CMU dictionary
lacks, as a user would pass them with --dict). About 8 sentences per second on 2 CPU cores.

Reference convention: eSpeak starts an unvoiced stop (P T K CH) at its burst and leaves the closure
silence at the end of the phone before. Hand-labelled corpora (TIMIT with closures folded, CMU ARCTIC,
Buckeye), and so the acoustic models aligners are trained on, count the closure as part of the stop, as do
the lips (a P is closed during its closure). The reference therefore moves those boundaries back to where the closure
starts (the level drops below 10 % of the previous phone's peak); the raw eSpeak numbers are printed too.

Boundaries: CMU and eSpeak pronunciations differ in places, so the two phone sequences are matched by a
Levenshtein alignment; the onset of every phone present in both (same symbol, matched) is one boundary,
except the first phone of both (always at 0). A failure is a sentence the aligner rejects.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facerl.audio import SAMPLE_RATE
from facerl.errors import FacerlError
from facerl.speech.align import align_text
from facerl.speech.espeak import Espeak, Voice
from facerl.speech.sentences import make_sentences
from facerl.speech.timing import Phone

TOLERANCE_S = 0.020
# eSpeak's stock en-us variants, male and female, at their own pace (words/min) and pitch (0-100)
VOICES = [Voice("en-us+m1", 160, 45), Voice("en-us+f1", 170, 55), Voice("en-us+m2", 150, 40),
          Voice("en-us+f2", 175, 60), Voice("en-us+m3", 165, 50), Voice("en-us+f3", 160, 50),
          Voice("en-us+m4", 175, 35), Voice("en-us+f4", 155, 65)]
UNVOICED_STOPS = ("P", "T", "K", "CH")
CLOSURE_LEVEL = 0.1  # closure = the tail of the previous phone quieter than this fraction of its peak
MIN_CLOSURE_S = 0.010
# The two words of the sentence grammar that neither the CMU dictionary nor its inflection rules cover,
# passed the way a user passes them (--dict).
EXTRA_PRONUNCIATIONS = "BOYISHLY  B OY1 IH0 SH L IY0\nZOOKEEPER  Z UW1 K IY2 P ER0\n"


def stop_closures_to_stops(phones: list[Phone], audio: np.ndarray) -> list[Phone]:
    """Move each unvoiced stop's onset back from eSpeak's burst to the start of its closure."""
    out = list(phones)
    win, hop, ringing = 80, 40, 48  # 5 ms RMS windows, 2.5 ms hop; skip the 3 ms of resampling ringing
    for i in range(1, len(out)):
        prev, stop = out[i - 1], out[i]
        if stop.phone not in UNVOICED_STOPS or prev.phone == "SIL":
            continue
        lo, hi = round(prev.start_s * SAMPLE_RATE), round(stop.start_s * SAMPLE_RATE) - ringing
        starts = np.arange(lo, hi - win + 1, hop)
        if len(starts) < 2:
            continue
        rms = np.sqrt([np.mean(audio[s:s + win] ** 2) for s in starts])  # (windows,)
        loud = np.flatnonzero(rms >= CLOSURE_LEVEL * rms.max())
        onset = (starts[loud[-1]] + win) / SAMPLE_RATE if len(loud) else None  # end of the last loud window
        if onset is None or loud[-1] == len(starts) - 1 or stop.start_s - onset < MIN_CLOSURE_S:
            continue
        out[i - 1], out[i] = Phone(prev.start_s, onset, prev.phone), Phone(onset, stop.end_s, stop.phone)
    return out


def matched_pairs(ref: list[str], hyp: list[str]) -> list[tuple[int, int]]:
    """Index pairs of identical symbols on a minimum-edit-distance path between two phone sequences."""
    n, m = len(ref), len(hyp)
    cost = np.zeros((n + 1, m + 1), int)  # (n+1, m+1) edit distances of prefixes
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            if ref[i - 1] == hyp[j - 1]:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def onset_errors(ref: list[Phone], hyp: list[Phone]) -> list[float]:
    """Signed onset errors (s), aligned minus true, of the phones both sequences share."""
    pairs = matched_pairs([p.phone for p in ref], [p.phone for p in hyp])
    return [hyp[j].start_s - ref[i].start_s for i, j in pairs if (i, j) != (0, 0)]


def summary(errors: list[float]) -> tuple[int, float, float, float]:
    """(boundaries, median |error| ms, % within the tolerance, mean signed error ms)."""
    e = np.asarray(errors)
    if not len(e):
        return 0, float("nan"), float("nan"), float("nan")
    return len(e), 1000 * np.median(np.abs(e)), 100 * np.mean(np.abs(e) <= TOLERANCE_S), 1000 * e.mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=480,
                        help="sentences to synthesise and align (default 480, about a minute)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the sentence generator")
    args = parser.parse_args()

    t0 = time.perf_counter()
    tmp = tempfile.TemporaryDirectory()
    dictionary = Path(tmp.name) / "extra.dict"
    dictionary.write_text(EXTRA_PRONUNCIATIONS)
    texts = make_sentences(args.sentences, args.seed)
    voices = VOICES
    per_voice: dict[str, dict] = {v.name: {"n": 0, "failed": 0, "errors": [], "raw": []} for v in voices}
    for k, text in enumerate(tqdm(texts, desc="synthesise + align", unit="sentence")):
        voice = voices[k % len(voices)]
        utt = Espeak.get().synthesize(text, voice)
        stats = per_voice[voice.name]
        stats["n"] += 1
        try:
            aligned = align_text(utt.audio, text, dictionary)
        except FacerlError:
            stats["failed"] += 1
            continue
        stats["errors"] += onset_errors(stop_closures_to_stops(utt.phones, utt.audio), aligned)
        stats["raw"] += onset_errors(utt.phones, aligned)
    tmp.cleanup()

    print(f"\naligner accuracy: {args.sentences} eSpeak sentences, {len(voices)} voices, "
          f"{time.perf_counter() - t0:.0f} s (reference: eSpeak phone events, stop closures counted in the stop)\n")
    print(f"| {'voice':11s} | sentences | failed | boundaries | median abs error (ms) | within 20 ms | bias (ms) |")
    print("|-------------|----------:|-------:|-----------:|---------------------:|-------------:|----------:|")
    rows = [(name, s) for name, s in per_voice.items() if s["n"]]
    total = {"n": sum(s["n"] for _, s in rows), "failed": sum(s["failed"] for _, s in rows),
             "errors": [e for _, s in rows for e in s["errors"]], "raw": [e for _, s in rows for e in s["raw"]]}
    for name, s in [*rows, ("all", total)]:
        n, median, within, bias = summary(s["errors"])
        print(f"| {name:11s} | {s['n']:9d} | {100 * s['failed'] / s['n']:5.1f}% | {n:10d} | {median:20.1f} | "
              f"{within:11.1f}% | {bias:9.1f} |")
    n, median, within, bias = summary(total["raw"])
    print(f"\nraw eSpeak labels (stop closure in the phone before): median {median:.1f} ms, "
          f"{within:.1f}% within 20 ms, bias {bias:.1f} ms")
    print(f"failure rate {100 * total['failed'] / total['n']:.1f}% ({total['failed']}/{total['n']}); "
          f"target: >= 80% of boundaries within 20 ms -> {'met' if summary(total['errors'])[2] >= 80 else 'NOT met'}")


if __name__ == "__main__":
    main()
