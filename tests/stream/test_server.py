"""`facerl serve` end to end: a real server on a free localhost port, real `websockets` clients, a tiny trained
streaming actor. Every client run is bounded in time (``run``)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from facerl.audio import read_wav
from facerl.cli import main
from facerl.head.arkit import ARKIT_NAMES
from facerl.stream import protocol as proto
from facerl.stream.server import AnimatorPool, ServeOptions, ServerThread
from tests.conftest import tiny_train_overrides

_CKPTS: dict = {}


def stream_checkpoint(tiny_corpus, tmp_path_factory):
    """A 2-epoch tiny actor with the streaming encoder (60 ms look-ahead), trained once per session (the
    browser test imports this too)."""
    if tiny_corpus not in _CKPTS:
        root = tmp_path_factory.mktemp("serve")
        assert main(["train", *tiny_train_overrides(tiny_corpus, root, "model.audio.kind=stream",
                                                    "+model.audio.extra.lookahead_ms=60",
                                                    "+model.audio.extra.context_ms=200")]) == 0
        _CKPTS[tiny_corpus] = root / "runs" / "t" / "actor" / "best.pt"
    return _CKPTS[tiny_corpus]


@pytest.fixture(scope="module")
def ckpt(tiny_corpus, tmp_path_factory):
    return stream_checkpoint(tiny_corpus, tmp_path_factory)


@pytest.fixture(scope="module")
def pool(ckpt):
    return AnimatorPool(ckpt)


OPTIONS = {"max_clients": 8, "hello_timeout": 1.0, "max_unsent_bytes": 64 << 10, "max_lag_s": 2.0,
           "ping_interval": 1.0, "ping_timeout": 1.0, "close_timeout": 1.0}


@pytest.fixture(scope="module")
def server(pool):
    with ServerThread(pool, port=0, options=ServeOptions(**OPTIONS)) as srv:
        yield srv


@pytest.fixture(scope="module")
def speech(tiny_corpus) -> np.ndarray:
    """About 3 s of corpus speech as int16 PCM."""
    wavs = sorted((tiny_corpus / "wav").glob("*.wav"))
    audio = np.concatenate([read_wav(w) for w in wavs[:2]])[: 3 * 16000]
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def reference(pool, pcm: np.ndarray, vertices: bool = False):
    """The same audio through a local Animator: (arkit (T, 52), vertices (T, V, 3) or None)."""
    anim = pool.new(vertices)
    frames = anim.push(pcm) + anim.flush()
    assert [f.index for f in frames] == list(range(len(frames)))
    verts = np.stack([f.vertices for f in frames]) if vertices else None
    return np.stack([f.arkit for f in frames]), verts


def n_frames(pcm: np.ndarray) -> int:
    return max(1, round(len(pcm) * 30 / 16000))


async def stream(url: str, pcm: np.ndarray, chunk_ms: float = 20, realtime: bool = False, **hello):
    """Send ``pcm`` in chunks, then end; returns (ready, [Frames], done, close code)."""
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000, **hello}))
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready", ready
        step = max(1, int(16 * chunk_ms))

        async def send():
            t0 = time.monotonic()
            for k, lo in enumerate(range(0, len(pcm), step)):
                await ws.send(pcm[lo: lo + step].tobytes())
                if realtime:
                    await asyncio.sleep(max(0.0, t0 + (k + 1) * chunk_ms / 1000 - time.monotonic()))
            await ws.send(json.dumps({"type": "end"}))

        sending = asyncio.ensure_future(send())
        frames, done = [], None
        async for msg in ws:
            if isinstance(msg, str) and json.loads(msg)["type"] != "frames":
                done = json.loads(msg)
                assert done["type"] == "done", done
                continue
            frames.append(proto.decode_frames(msg))
        await sending
        return ready, frames, done, ws.close_code


def joined(frames: list[proto.Frames]) -> tuple[list[int], np.ndarray]:
    indices = [f.start + i for f in frames for i in range(len(f.arkit))]
    return indices, np.concatenate([f.arkit for f in frames])


def test_frames_arrive_in_order_one_per_30th_of_a_second(server, pool, speech):
    ready, frames, done, code = run(stream(server.ws_url, speech, chunk_ms=20))
    assert ready["fps"] == 30 and ready["names"] == ARKIT_NAMES and ready["lookahead_ms"] == pytest.approx(60.0)
    indices, arkit = joined(frames)
    assert indices == list(range(n_frames(speech))) and done == {"type": "done", "frames": len(indices)}
    assert code == 1000
    assert all(b.samples >= a.samples for a, b in itertools.pairwise(frames))
    ref, _ = reference(pool, speech)
    assert np.abs(arkit - ref).max() <= 1e-6  # JSON keeps 6 decimals


def test_a_long_message_is_one_push_however_many_frames_it_makes(server, pool, speech):
    long = np.tile(speech, 8)                          # 24 s: 720 frames in 3 messages, 540 kB: over the 64 kB unsent
    _, frames, _, code = run(stream(server.ws_url, long, chunk_ms=len(long) / 16))
    assert joined(frames)[0] == list(range(n_frames(long))) and code == 1000 and len(frames) == 3


def test_json_and_binary_forms_agree(server, pool, speech):
    pcm = speech[: 16000]
    _, js, _, _ = run(stream(server.ws_url, pcm, chunk_ms=100, frames="json"))
    _, f32, _, _ = run(stream(server.ws_url, pcm, chunk_ms=100, frames="binary", dtype="float32", vertices=True))
    _, f16, _, _ = run(stream(server.ws_url, pcm, chunk_ms=100, frames="binary"))
    (i_js, a_js), (i32, a32), (i16, a16) = joined(js), joined(f32), joined(f16)
    assert i_js == i32 == i16 == list(range(n_frames(pcm)))
    assert np.abs(a_js - a32).max() <= 1e-6 and np.abs(a16 - a32).max() <= 1e-3  # float16: 11 bits
    ref_arkit, ref_verts = reference(pool, pcm, vertices=True)
    verts = np.concatenate([f.vertices for f in f32])
    assert verts.shape == ref_verts.shape == (len(i32), pool.n_vertices, 3)
    assert np.abs(verts - ref_verts).max() < 1e-6 and np.abs(a32 - ref_arkit).max() < 1e-5  # other chunking
    assert all(f.vertices is None for f in f16)


HELLO = {"type": "start", "sample_rate": 16000}
BAD = {  # name: (messages, close code, words in the error message)
    "wrong rate": ([{**HELLO, "sample_rate": 44100}], 1003, "sample_rate must be 16000"),
    "rate as text": ([{**HELLO, "sample_rate": "16000"}], 1003, "sample_rate"),
    "stereo": ([{**HELLO, "channels": 2}], 1003, "channels must be 1"),
    "not pcm": ([{**HELLO, "format": "opus"}], 1003, "format must be"),
    "no rate": ([{"type": "start"}], 1008, "sample_rate"),
    "unknown field": ([{**HELLO, "sampel_rate": 16000}], 1008, "unknown field"),
    "bad frames form": ([{**HELLO, "frames": "xml"}], 1008, "frames must be"),
    "old version": ([{**HELLO, "version": 0}], 1008, "version"),
    "text garbage": (["hello there"], 1007, "not JSON"),
    "json not an object": (["[1, 2, 3]"], 1007, "JSON object"),
    "binary before start": ([b"\x00\x01" * 160], 1008, "binary message before start"),
    "odd pcm bytes": ([HELLO, b"\x00\x01\x02"], 1007, "even number of bytes"),
    "oversize audio": ([HELLO, b"\x00" * (proto.MAX_AUDIO_BYTES + 2)], 1009, "over the limit"),
    "second start": ([HELLO, HELLO], 1008, "already started"),
    "unknown control": ([HELLO, {"type": "pause"}], 1008, "send audio as binary"),
}


async def bad_client(url: str, messages: list) -> tuple[list[dict], int | None, str | None]:
    async with connect(url) as ws:
        for m in messages:
            await ws.send(m if isinstance(m, str | bytes) else json.dumps(m))
        replies = []
        with pytest.raises(ConnectionClosed):
            while True:
                replies.append(json.loads(await ws.recv()))
        return replies, ws.close_code, ws.close_reason


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_an_error_and_a_clean_close(server, speech, case):
    messages, code, words = BAD[case]
    replies, got_code, reason = run(bad_client(server.ws_url, messages), 20)
    errors = [r for r in replies if r["type"] == "error"]
    assert len(errors) == 1 and words in errors[0]["message"], replies
    assert got_code == code and reason  # a proper close code with the reason
    _, _, done, _ = run(stream(server.ws_url, speech[:3200]))  # ... and the server serves the next client
    assert done["frames"] == n_frames(speech[:3200])


def test_a_message_over_the_hard_limit_is_refused_by_the_library(server):
    """Past twice the limit the message is not even read: `websockets` closes with 1009 and a reason."""
    _, code, reason = run(bad_client(server.ws_url, [HELLO, b"\x00" * (2 * proto.MAX_AUDIO_BYTES + 2)]), 20)
    assert code == 1009 and "exceeds limit" in reason


def test_a_silent_client_is_timed_out_and_a_full_server_says_so(server, pool):
    async def silent():
        async with connect(server.ws_url) as ws:
            msg = json.loads(await ws.recv())  # nothing sent: the hello times out after 1 s
            await ws.wait_closed()
            return msg, ws.close_code

    msg, code = run(silent(), 10)
    assert msg["type"] == "error" and "no start message" in msg["message"] and code == 1008

    async def crowd():
        conns = [await connect(server.ws_url) for _ in range(OPTIONS["max_clients"])]
        try:
            async with connect(server.ws_url) as extra:
                msg = json.loads(await extra.recv())
                await extra.wait_closed()
                return msg, extra.close_code
        finally:
            for c in conns:
                await c.close()

    msg, code = run(crowd(), 10)
    assert "full" in msg["message"] and code == 1013


def test_four_concurrent_streams_each_get_their_own_frames(server, pool, speech):
    pcms = [speech[k * 4000: k * 4000 + 24000] for k in range(4)]

    async def four():
        return await asyncio.gather(*(stream(server.ws_url, p, chunk_ms=20 + 30 * k, frames=("json", "binary")[k % 2],
                                             dtype="float32") for k, p in enumerate(pcms)))

    for pcm, (_, frames, done, code) in zip(pcms, run(four(), 90), strict=True):
        indices, arkit = joined(frames)
        assert indices == list(range(n_frames(pcm))) and code == 1000
        assert np.abs(arkit - reference(pool, pcm)[0]).max() <= 1e-6


def test_a_client_that_stops_reading_does_not_stall_another(pool, speech, caplog):
    long = np.tile(speech, 8)                                                    # 24 s: ~720 frames of vertices
    options = ServeOptions(**{**OPTIONS, "ping_interval": None})                  # no heartbeat: only back-pressure

    async def both(srv):
        stalled = await connect(srv.ws_url, max_size=None, max_queue=1)
        await stalled.send(json.dumps({**HELLO, "frames": "binary", "dtype": "float32", "vertices": True}))
        assert json.loads(await stalled.recv())["type"] == "ready"
        stalled.transport.pause_reading()                                        # ... and never reads again
        for lo in range(0, len(long), 16000):
            await stalled.send(long[lo: lo + 16000].tobytes())
        t0 = time.monotonic()
        _, frames, _, code = await stream(srv.ws_url, speech, chunk_ms=20, realtime=True)
        took = time.monotonic() - t0
        deadline = time.monotonic() + 20
        while len(srv.server.sessions) and time.monotonic() < deadline:          # the stalled one is dropped
            await asyncio.sleep(0.1)
        left = len(srv.server.sessions)
        stalled.transport.abort()
        return frames, code, took, left

    caplog.set_level("INFO", logger="facerl.stream")
    with ServerThread(pool, port=0, options=options) as srv:
        frames, code, took, left = run(both(srv), 90)
    assert joined(frames)[0] == list(range(n_frames(speech))) and code == 1000
    assert took < len(speech) / 16000 + 2.0                                      # real time, not stalled
    assert left == 0 and "client is not reading its frames" in caplog.text      # the non-reader is disconnected


def test_heartbeat_closes_a_connection_that_stops_answering(server):
    async def deaf():
        ws = await connect(server.ws_url)
        await ws.send(json.dumps(HELLO))
        assert json.loads(await ws.recv())["type"] == "ready"
        ws.transport.pause_reading()                                             # no more pongs
        t0 = time.monotonic()
        while len(server.server.sessions) and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.05)
        ws.transport.abort()
        return len(server.server.sessions), time.monotonic() - t0

    left, took = run(deaf(), 20)
    assert left == 0 and took < OPTIONS["ping_interval"] + OPTIONS["ping_timeout"] + OPTIONS["close_timeout"] + 1.5


def test_shutdown_tells_streams_why_and_closes_them(pool, speech):
    srv = ServerThread(pool, port=0, options=ServeOptions(**OPTIONS))
    with srv:
        async def client():
            async with connect(srv.ws_url) as ws:
                await ws.send(json.dumps(HELLO))
                await ws.recv()
                await ws.send(speech[:3200].tobytes())
                threading_stop = asyncio.get_running_loop().run_in_executor(None, srv.stop)
                msgs = [m async for m in ws]
                await threading_stop
                return [json.loads(m) if isinstance(m, str) else m for m in msgs], ws.close_code

        msgs, code = run(client(), 30)
    assert {"type": "error", "message": "the server is shutting down"} in msgs and code == 1001


def test_http_serves_the_page_and_the_head_and_refuses_foreign_origins(server):
    page = urllib.request.urlopen(server.url, timeout=30).read().decode()
    assert "getUserMedia" in page and "facerl-data" in page
    glb = urllib.request.urlopen(server.url + "head.glb", timeout=30).read()
    assert glb[:4] == b"glTF"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.url + "nothing", timeout=10)
    assert err.value.code == 404

    async def origin(value: str | None, path: str = "/ws"):
        headers = {"Origin": value} if value else {}
        async with connect(f"ws://127.0.0.1:{server.port}{path}", additional_headers=headers) as ws:
            await ws.send(json.dumps(HELLO))
            return json.loads(await ws.recv())["type"]

    assert run(origin(f"http://127.0.0.1:{server.port}")) == "ready"  # the server's own page
    with pytest.raises(InvalidStatus, match="403"):
        run(origin("http://evil.example"))
    with pytest.raises(InvalidStatus, match="404"):
        run(origin(None, "/other"))


def test_protocol_binary_round_trip():
    arkit = np.random.default_rng(0).random((5, 52)).astype(np.float32)
    verts = np.random.default_rng(1).standard_normal((5, 7, 3)).astype(np.float32)
    msg = proto.frames_binary(12, 4800, arkit, verts, "float32")
    assert msg[:4] == proto.MAGIC and len(msg) == proto.HEADER.size + 4 * (5 * 52 + 5 * 7 * 3)
    back = proto.decode_frames(msg)
    assert (back.start, back.samples) == (12, 4800)
    assert np.array_equal(back.arkit, arkit) and np.array_equal(back.vertices, verts)
    half = proto.decode_frames(proto.frames_binary(0, 0, arkit))
    assert half.vertices is None and np.abs(half.arkit - arkit).max() < 1e-3


def test_sigint_closes_every_stream_and_exits_cleanly(ckpt, speech):
    code = ("import argparse, sys; from facerl.stream.server import serve_main; serve_main(argparse.Namespace("
            "checkpoint=sys.argv[1], host='127.0.0.1', port=0, style='average', max_clients=2, device='cpu', "
            "allow_origin=None))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(ckpt)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"WebSocket (ws://\S+)", line).group(1)
        assert "look-ahead 60 ms" in line

        async def client():
            async with connect(url) as ws:
                await ws.send(json.dumps(HELLO))
                await ws.recv()
                await ws.send(speech[:8000].tobytes())
                await asyncio.sleep(0.3)
                proc.send_signal(signal.SIGINT)
                msgs = [m async for m in ws]
                return [json.loads(m) for m in msgs if isinstance(m, str)], ws.close_code

        msgs, close = run(client(), 30)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    out, err = proc.communicate()
    assert msgs[-1] == {"type": "error", "message": "the server is shutting down"} and close == 1001
    assert "closing the streams" in out and "Traceback" not in err
