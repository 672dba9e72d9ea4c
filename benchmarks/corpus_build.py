"""Benchmark: build the default synthetic corpus (12 subjects x 40 sentences, 128 voices) and print its size and time.

    .venv/bin/python benchmarks/corpus_build.py [--out /tmp/facerl_bench_corpus] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from facerl.data.synthetic import CorpusConfig, build_corpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "facerl_bench_corpus"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    s = build_corpus(CorpusConfig(out=args.out, workers=args.workers))
    size_gb = sum(f.stat().st_size for f in os.scandir(os.path.join(args.out, "vertices_npy"))) / 1e9
    print(f"cores: {os.cpu_count()}  workers: {args.workers}")
    print(f"clips: {s.clips}  speakers: {s.speakers}  voices: {s.voices}  audio: {s.audio_minutes:.1f} min  "
          f"vertices: {size_gb:.2f} GB")
    print(f"build time: {s.seconds:.1f} s  ({s.clips / s.seconds:.1f} clips/s, "
          f"{s.audio_minutes * 60 / s.seconds:.1f} s of animated speech per second)")
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
