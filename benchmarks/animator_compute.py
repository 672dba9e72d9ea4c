"""CPU time of one live stream: `Animator.push` per second of audio, in process (no server), one thread.

Usage: python benchmarks/animator_compute.py CKPT [CKPT ...] [--chunk-ms 20] [--seconds 10] [--repeats 3]

Speech-like noise is pushed in chunks of ``--chunk-ms`` and flushed; the median CPU time (``time.process_time``)
over ``--repeats`` runs, with the range, is divided by the audio's length. 100 ms per second = a tenth of a core.
"""

import argparse
import time

import numpy as np
import torch
from stream import speech_like  # benchmarks/stream.py: the same speech-like int16 noise

from facerl.models.checkpoint import load_actor
from facerl.stream import Animator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="streaming actor checkpoints")
    ap.add_argument("--chunk-ms", type=float, default=20.0, help="chunk size pushed at a time")
    ap.add_argument("--seconds", type=float, default=10.0, help="audio per run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per checkpoint (median and range reported)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pcm, step = speech_like(args.seconds, 0), int(16 * args.chunk_ms)
    print(f"| checkpoint | look-ahead | CPU ms per s of audio (median [min-max], 1 thread, {args.chunk_ms:g} ms chunks) |")
    print("|---|---|---|")
    for ckpt in args.checkpoints:
        bundle = load_actor(ckpt)
        times = []
        for _ in range(args.repeats):
            anim = Animator(ckpt, actor_bundle=bundle)
            t0 = time.process_time()
            for lo in range(0, len(pcm), step):
                anim.push(pcm[lo: lo + step])
            anim.flush()
            times.append((time.process_time() - t0) / args.seconds * 1e3)
        print(f"| {ckpt} | {anim.lookahead_ms:.0f} ms | {np.median(times):.1f} [{min(times):.1f}-{max(times):.1f}] |")


if __name__ == "__main__":
    main()
