"""Held-out-voice phone classification: how speaker-independent are an encoder's features?

Usage: .venv/bin/python benchmarks/encoder_phones.py [--sentences 24] [--threads 2]

Speech with exact phone timings from several synthesisers (flite slt / rms / awb / kal when flite is
installed, Piper joe, two eSpeak NG variants), different sentences per voice. Every 50 Hz frame gets the
phone that contains its time. For each voice, a classifier is fitted on all the *other* voices' frames and
scored on that voice's frames (frame accuracy; phones the training voices lack are left out). Classifiers:
nearest centroid on z-scored features (``nc``) and multinomial logistic regression (``logreg``, L2, LBFGS).

Features compared (all at 50 Hz):
* ``logmel``: 80-bin log-mel (facerl.models.audio.log_mel, 25 ms window, 20 ms hop), mean/variance
  normalised per utterance;
* ``whisper``: the Whisper encoder's features (model.audio.kind=whisper, default tiny.en weights: encoder
  states minus the silent window's, see facerl.models.whisper), each clip alone in its 30 s window;
* ``whisper-raw``: the same states without subtracting the silent window's (Whisper's own output);
* ``packed``: the same clips packed several to a window (facerl.models.whisper.pack), the
  classifier trained and tested on packed features;
* ``packed<-alone``: classifier trained on ``whisper`` (alone) features, tested on packed ones -- what a
  model trained on one layout meets in the other.

Then the feature-extraction time, in seconds per minute of audio, with ``--threads`` CPU threads.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from facerl.audio import SAMPLE_RATE
from facerl.models.audio import AudioEncoderConfig, log_mel
from facerl.models.whisper import FRAME, WhisperEncoder, n_states, pack, silence_states
from facerl.speech.engines import available, speak
from facerl.speech.espeak import Espeak, Voice
from facerl.speech.phoneset import SIL
from facerl.speech.sentences import make_sentences

ESPEAK_VOICES = ("en-us+m3", "en-us+f2")


def synthesise(n_sentences: int) -> dict[str, list]:
    """{voice: [(audio (S,), phones)]}: each voice speaks its own sentences."""
    voices: list[tuple[str, str]] = []
    if available("flite") is None:
        voices += [("flite", v) for v in ("slt", "rms", "awb", "kal")]
    else:
        print(f"flite skipped: {available('flite')}")
    if available("piper") is None:
        voices.append(("piper", "joe"))
    voices += [("espeak", v) for v in ESPEAK_VOICES]
    out = {}
    for k, (engine, voice) in enumerate(voices):
        clips = []
        for text in make_sentences(n_sentences, seed=100 + k):
            if engine == "espeak":
                utt = Espeak.get().synthesize(text, Voice(voice))
                clips.append((utt.audio, utt.phones))
            else:
                speech = speak(engine, text, voice)
                clips.append((speech.audio, speech.phones))
        out[f"{engine}:{voice}"] = clips
        minutes = sum(len(a) for a, _ in clips) / SAMPLE_RATE / 60
        print(f"  {engine}:{voice}: {len(clips)} clips, {minutes:.1f} min", flush=True)
    return out


def frame_labels(phones, n_frames: int, rate_hz: float = 50.0) -> np.ndarray:
    """The phone containing each frame's time t = j / rate_hz (the last phone past the end)."""
    ends = np.array([p.end_s for p in phones])
    idx = np.searchsorted(ends, np.arange(n_frames) / rate_hz, side="right").clip(max=len(phones) - 1)
    return np.array([phones[i].phone for i in idx])


def logmel_features(audio: torch.Tensor) -> torch.Tensor:
    mel = log_mel(audio[None], n_mels=80, hop=FRAME)[0]                        # (N, 80) at 50 Hz
    return (mel - mel.mean(0)) / (mel.std(0) + 1e-5)


def nearest_centroid(x_tr, y_tr, x_te, classes):
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    centroids = torch.stack([a[y_tr == c].mean(0) for c in range(len(classes))])
    return torch.cdist(b, centroids).argmin(1)


def logistic(x_tr, y_tr, x_te, classes, l2: float = 1e-3, steps: int = 100):
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    lin = torch.nn.Linear(a.shape[1], len(classes))
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=steps, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(a), y_tr) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return lin(b).argmax(1)


def held_out_table(feats: dict[str, list[torch.Tensor]], labels: dict[str, list[np.ndarray]],
                   test_feats: dict[str, list[torch.Tensor]] | None = None) -> dict[str, dict[str, float]]:
    """{voice: {nc, logreg}} accuracy on that voice, trained on the others."""
    test_feats = test_feats or feats
    table = {}
    for held in feats:
        train = [v for v in feats if v != held]
        y_tr_names = np.concatenate([np.concatenate(labels[v]) for v in train])
        classes = sorted(set(y_tr_names))
        index = {c: i for i, c in enumerate(classes)}
        x_tr = torch.cat([torch.cat(feats[v]) for v in train])
        y_tr = torch.tensor([index[c] for c in y_tr_names])
        y_te_names = np.concatenate(labels[held])
        keep = np.array([c in index for c in y_te_names])
        x_te = torch.cat(test_feats[held])[torch.from_numpy(keep)]
        y_te = torch.tensor([index[c] for c in y_te_names[keep]])
        table[held] = {name: float((fn(x_tr, y_tr, x_te, classes) == y_te).float().mean())
                       for name, fn in (("nc", nearest_centroid), ("logreg", logistic))}
    return table


def seconds_per_minute(fn, clips: list[torch.Tensor]) -> float:
    fn(clips[:2])                                                              # warm-up
    t0 = time.perf_counter()
    fn(clips)
    minutes = sum(len(c) for c in clips) / SAMPLE_RATE / 60
    return (time.perf_counter() - t0) / minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=24, help="sentences per voice")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch and CTranslate2)")
    parser.add_argument("--compute-type", default="int8", help="CTranslate2 compute type of the whisper encoder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print("synthesising speech with exact phone timings ...", flush=True)
    speech = synthesise(args.sentences)
    clips = {v: [torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a, _ in items]
             for v, items in speech.items()}
    labels = {v: [frame_labels(ph, n_states(len(a))) for a, ph in items] for v, items in speech.items()}

    encoder = WhisperEncoder(AudioEncoderConfig(kind="whisper", compute_type=args.compute_type))

    def alone(cs):
        return [encoder.clip_features([c])[0] for c in cs]

    def packed(cs):
        return encoder.clip_features(cs)

    def logmel(cs):
        return [logmel_features(c) for c in cs]

    silence = silence_states(*encoder._where(torch.device("cpu")))            # (1500, D)
    features = {"logmel": {v: logmel(cs) for v, cs in clips.items()},
                "whisper": {v: alone(cs) for v, cs in clips.items()},
                "packed": {v: packed(cs) for v, cs in clips.items()}}
    features["whisper-raw"] = {v: [f + silence[: len(f)] for f in fs] for v, fs in features["whisper"].items()}
    for feats in features.values():   # every feature set has exactly one vector per labelled frame
        for v in feats:
            feats[v] = [f[: len(y)] for f, y in zip(feats[v], labels[v])]
    tables = {name: held_out_table(f, labels) for name, f in features.items()}
    tables["packed<-alone"] = held_out_table(features["whisper"], labels, features["packed"])

    sil_share = np.mean(np.concatenate([np.concatenate(y) for y in labels.values()]) == SIL)
    print(f"\nframe accuracy on the held-out voice (classifier fitted on the other {len(clips) - 1} voices; "
          f"SIL is {sil_share:.0%} of the frames)")
    for classifier in ("nc", "logreg"):
        print(f"\n{classifier:18s}" + "".join(f"{name:>16s}" for name in tables))
        for voice in clips:
            print(f"{voice:18s}" + "".join(f"{tables[n][voice][classifier]:16.3f}" for n in tables))
        print(f"{'mean':18s}" + "".join(f"{np.mean([tables[n][v][classifier] for v in clips]):16.3f}"
                                        for n in tables))

    every = [c for cs in clips.values() for c in cs]
    pairs = [(p, a) for v in clips for p, a in zip(features["packed"][v], features["whisper"][v])]
    rel = [float((p - a).norm() / a.norm()) for p, a in pairs]
    cos = [float(torch.nn.functional.cosine_similarity(p, a, dim=-1).mean()) for p, a in pairs]
    n_windows = sum(pack([len(c) for c in cs])[-1].window + 1 for cs in clips.values())
    print(f"\npacked vs alone: relative L2 difference median {np.median(rel):.2f} (max {max(rel):.2f}), "
          f"mean cosine {np.mean(cos):.2f} (min {min(cos):.2f}); {len(every)} clips in {n_windows} windows")
    print(f"feature extraction, s per minute of audio on {args.threads} threads "
          f"({encoder.compute_type}):")
    for name, fn in (("whisper, one clip per window", alone), ("whisper, packed", packed), ("log-mel", logmel)):
        print(f"  {name:30s} {seconds_per_minute(fn, every):8.3f}")


if __name__ == "__main__":
    main()
