"""`facerl serve` over localhost: per-chunk latency, frames/s and CPU per stream for 1, 4 and 16 concurrent
streams sending 20 ms and 100 ms chunks in real time.

Usage: python benchmarks/stream.py [--checkpoint runs/stream/actor/best.pt] [--streams 1 4 16] [--chunks 20 100]
                                   [--seconds 10] [--offline CKPT ...] [--no-full-prefix]

After the streams, the offline table of benchmarks/actor_speed.py (10 s and 60 s of speech: the NumPy decode
loop, the torch KV-cache loop and the full-prefix reference, in the same run) for ``--offline`` checkpoints
(default: the streaming one and runs/pipeline/actor/best.pt when it exists; ``--offline`` with no value: none).

The server runs in its own process (as `facerl serve` does: one compute thread per core, one torch thread
each); this process runs every client with `websockets`, each pacing its audio like a microphone (chunk k is
sent when its last sample would have been spoken; the streams start spread over one chunk). Columns:

* **chunk -> frames** (p50 / p99, ms): from sending a chunk to receiving all the frames it completes (the
  frames whose audio plus look-ahead it finishes; found by pushing the same chunks through a local Animator):
  compute + transport + queueing, nothing subtracted. Chunks that complete no frame are not counted.
* **look-ahead** (ms): the model's wait for audio past a frame's time; it comes on top of the above.
* **speech -> frame** (p50 / p99, ms): from the moment frame i's instant (i / 30 s) was spoken to its
  arrival: look-ahead + waiting for the chunk to fill + compute + transport, what a viewer sees.
* **frames/s**: frames received per second of wall time, all streams together (real time: 30 x streams).
* **CPU/stream**: the server's CPU time per second of wall time, divided by the streams (100 % = one core).
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from websockets.asyncio.client import connect

from facerl.stream import Animator
from facerl.stream import protocol as proto

RATE, FPS = 16000, 30


def speech_like(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    audio = 0.1 * rng.standard_normal(len(t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def completing_chunk(checkpoint: str, pcm: np.ndarray, step: int) -> np.ndarray:
    """(T,) for each frame, the index of the chunk whose arrival lets the Animator make it (-1: the flush)."""
    anim, owner = Animator(checkpoint), []
    for k, lo in enumerate(range(0, len(pcm), step)):
        owner += [k] * len(anim.push(pcm[lo: lo + step]))
    owner += [-1] * len(anim.flush())
    return np.array(owner)


def server_cpu_seconds(pid: int) -> float:
    try:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def one_stream(url: str, pcm: np.ndarray, step: int, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Send ``pcm`` paced from ``t0``; returns (send time per chunk, arrival time per frame)."""
    chunk_s = step / RATE
    n_chunks = -(-len(pcm) // step)
    sent = np.zeros(n_chunks)
    arrived: dict[int, float] = {}
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": RATE, "frames": "binary"}))
        assert json.loads(await ws.recv())["type"] == "ready"

        async def send() -> None:
            for k in range(n_chunks):
                await asyncio.sleep(max(0.0, t0 + (k + 1) * chunk_s - time.perf_counter()))
                sent[k] = time.perf_counter()
                await ws.send(pcm[k * step: (k + 1) * step].tobytes())
            await ws.send(json.dumps({"type": "end"}))

        sender = asyncio.ensure_future(send())
        async for msg in ws:
            now = time.perf_counter()
            if isinstance(msg, bytes):
                f = proto.decode_frames(msg)
                for i in range(len(f.arkit)):
                    arrived[f.start + i] = now
        await sender
    return sent, np.array([arrived[i] for i in range(len(arrived))])


async def run_config(url: str, pcm: list[np.ndarray], step: int, owner: list[np.ndarray]) -> dict:
    n = len(pcm)
    t0 = time.perf_counter() + 0.5
    starts = [t0 + (s / n) * step / RATE for s in range(n)]     # spread over one chunk, as real users would be
    results = await asyncio.gather(*(one_stream(url, p, step, t) for p, t in zip(pcm, starts, strict=True)))
    chunk_lat, speech_lat, frames, last = [], [], 0, 0.0
    for (sent, arrived), own, t in zip(results, owner, starts, strict=True):
        assert len(arrived) == len(own), (len(arrived), len(own))
        for k in np.unique(own[own >= 0]):
            chunk_lat.append(arrived[own == k].max() - sent[k])
        live = own >= 0                                                  # frames of the stream, not of the flush
        speech_lat.extend(arrived[live] - (t + np.flatnonzero(live) / FPS))
        frames += len(arrived)
        last = max(last, arrived.max())
    chunk_lat, speech_lat = np.array(chunk_lat) * 1e3, np.array(speech_lat) * 1e3
    return {"chunk_p50": np.percentile(chunk_lat, 50), "chunk_p99": np.percentile(chunk_lat, 99),
            "speech_p50": np.percentile(speech_lat, 50), "speech_p99": np.percentile(speech_lat, 99),
            "fps": frames / (last - t0), "wall": last - t0}


def start_server(checkpoint: str, max_clients: int) -> tuple[subprocess.Popen, str]:
    code = ("import sys; from facerl.stream.server import serve; "
            "serve(sys.argv[1], port=0, max_clients=int(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", code, checkpoint, str(max_clients)], stdout=subprocess.PIPE,
                            text=True)
    for line in proc.stdout:
        m = re.search(r"WebSocket (ws://\S+)", line)
        if m:
            return proc, m.group(1)
    raise SystemExit(f"the server did not start (exit code {proc.wait()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/stream/actor/best.pt", help="a streaming actor (experiment=stream)")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16], help="concurrent streams")
    ap.add_argument("--chunks", type=float, nargs="+", default=[20, 100], help="chunk sizes in ms")
    ap.add_argument("--seconds", type=float, default=10.0, help="audio per stream")
    ap.add_argument("--offline", nargs="*", help="checkpoints for the offline speed table (see above)")
    ap.add_argument("--no-full-prefix", action="store_true", help="offline table without the slow reference")
    args = ap.parse_args()
    torch.set_num_threads(1)  # this process only paces clients (and maps frames to chunks once, below)

    lookahead = Animator(args.checkpoint).lookahead_ms
    audio = [speech_like(args.seconds, s) for s in range(max(args.streams))]
    proc, url = start_server(args.checkpoint, max(args.streams) + 2)  # + closing ones
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} cores (load average {load:.1f} before the run); server pid {proc.pid} at {url}; "
          f"{args.seconds:g} s of audio per stream; "
          f"look-ahead {lookahead:.0f} ms")
    rows = []
    try:
        for chunk_ms in args.chunks:
            step = round(chunk_ms * RATE / 1000)
            owner = [completing_chunk(args.checkpoint, a, step) for a in audio]
            for n in args.streams:
                asyncio.run(run_config(url, audio[:1], step, owner[:1]))  # warm-up, not timed
                cpu0, mine0 = server_cpu_seconds(proc.pid), time.process_time()
                r = asyncio.run(run_config(url, audio[:n], step, owner[:n]))
                r["cpu"] = (server_cpu_seconds(proc.pid) - cpu0) / r["wall"] / n
                r["client_cpu"] = (time.process_time() - mine0) / r["wall"]
                rows.append((chunk_ms, n, r))
                print(f"  chunk {chunk_ms:g} ms, {n} streams: chunk->frames p99 {r['chunk_p99']:.1f} ms; the clients "
                      f"used {100 * r['client_cpu']:.0f} % of a core", flush=True)
    finally:
        proc.send_signal(2)  # SIGINT: the server closes its streams and exits
        proc.wait(30)

    print()
    print("| chunk | streams | chunk -> frames p50 / p99 | look-ahead | speech -> frame p50 / p99 | frames/s | "
          "CPU/stream |")
    print("|---|---|---|---|---|---|---|")
    for chunk_ms, n, r in rows:
        print(f"| {chunk_ms:g} ms | {n} | {r['chunk_p50']:.1f} / {r['chunk_p99']:.1f} ms | {lookahead:.0f} ms | "
              f"{r['speech_p50']:.0f} / {r['speech_p99']:.0f} ms | {r['fps']:.0f} (real time {30 * n}) | "
              f"{100 * r['cpu']:.0f} % |")

    offline = args.offline
    if offline is None:
        offline = [args.checkpoint] + (["runs/pipeline/actor/best.pt"] if Path("runs/pipeline/actor/best.pt").exists()
                                       else [])
    if offline:
        from actor_speed import offline_table

        from facerl.models.checkpoint import load_actor

        torch.set_num_threads(os.cpu_count() or 1)
        for ckpt in offline:
            actor, meta, _ = load_actor(ckpt)
            print(f"\noffline, {ckpt} (audio {actor.cfg.audio.kind}, {torch.get_num_threads()} threads):")
            offline_table(actor, meta.template, [10.0, 60.0], 3, not args.no_full_prefix)


if __name__ == "__main__":
    main()
