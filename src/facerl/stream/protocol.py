"""The wire format of ``facerl serve`` (protocol version 1): 16 kHz PCM16 audio in, 30 fps ARKit frames out.

One WebSocket connection carries one stream (path ``/ws``). Text messages are JSON objects with a ``type``;
binary messages are audio (client -> server) or frames (server -> client, when asked for).

Client -> server, in this order:

1. ``{"type": "start", "sample_rate": 16000, "channels": 1, "format": "pcm16", "frames": "json",
   "vertices": false, "dtype": "float16", "version": 1}`` -- the hello. ``sample_rate`` is required and must be
   16000; the rest are optional with these defaults. ``frames`` is ``"json"`` or ``"binary"``; ``dtype``
   (``"float16"`` | ``"float32"``) is the binary frames' number type; ``vertices`` asks for the posed mesh of
   each frame as well. Unknown fields are an error (a typo must not pass silently).
2. Any number of binary messages: PCM16 little-endian mono samples, any whole number of samples (0 allowed) up
   to ``MAX_AUDIO_BYTES`` per message.
3. ``{"type": "end"}`` -- end of speech: the server flushes the frames still waiting for look-ahead.

Server -> client:

* ``{"type": "ready", "version": 1, "fps": 30, "sample_rate": 16000, "lookahead_ms": 60.0,
  "names": [52 ARKit names], "n_vertices": 0 | V}`` after a valid hello;
* frames, in order, each exactly once, as soon as their audio (plus the model's look-ahead) has arrived:
  JSON ``{"type": "frames", "start": i, "samples": s, "arkit": [[52 weights], ...]}`` (plus ``"vertices":
  [[[x, y, z] * V] * count]`` in metres when asked), or binary: the ``HEADER`` below, then ``count * 52``
  weights, then ``count * V * 3`` vertex coordinates, little-endian, in ``dtype``. ``start`` is the index of
  the first frame (frame i is at i / fps seconds of the stream); ``samples`` is how many audio samples the
  server had received when it made them (clients use it to measure latency);
* ``{"type": "done", "frames": n}`` after ``end`` once the last frame is sent; then the server closes (1000);
* ``{"type": "error", "message": "..."}`` on bad input or a server problem, then a close with the code below.

Binary frame header (``HEADER``, 28 bytes, little-endian): magic ``b"FRLF"``, version (u8), bytes per number
(u8: 2 = float16, 4 = float32), flags (u16: bit 0 = vertices follow), start (u32), count (u32), number of
weights (u16, 52), pad (u16), vertices per frame (u32, 0 without vertices), samples (u32, modulo 2**32).

Close codes: 1000 done; 1001 server shutting down; 1003 unsupported audio (rate, channels, format); 1007 invalid
payload (not JSON, an odd number of PCM bytes); 1008 protocol violation (audio before the hello, unknown or
bad fields, no start within 10 s, a client that stops reading its frames); 1009 message too big (over twice
``MAX_AUDIO_BYTES`` the WebSocket library refuses it unread, with its own reason); 1011 server error or no pong
to a heartbeat ping; 1013 server full.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

VERSION = 1
SAMPLE_RATE = 16_000
MAX_AUDIO_BYTES = 1 << 20            # one audio message: 32 s of PCM16
MAX_TEXT_BYTES = 4096                # a control message
MAGIC = b"FRLF"
HEADER = struct.Struct("<4sBBHIIHHII")
FLAG_VERTICES = 1
DTYPES = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}
BY_WIDTH = {d.itemsize: d for d in DTYPES.values()}
HELLO_FIELDS = frozenset({"type", "version", "sample_rate", "channels", "format", "frames", "vertices", "dtype"})

CLOSE_DONE, CLOSE_GOING_AWAY, CLOSE_UNSUPPORTED, CLOSE_INVALID = 1000, 1001, 1003, 1007
CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_SERVER_ERROR, CLOSE_TRY_LATER = 1008, 1009, 1011, 1013


class ProtocolError(Exception):
    """Bad input from a client: ``message`` goes back to it in an error message, then a close with ``code``."""

    def __init__(self, message: str, code: int = CLOSE_POLICY) -> None:
        super().__init__(message)
        self.message, self.code = message, code


@dataclass(frozen=True)
class StartRequest:
    """A validated hello."""

    frames: str = "json"        # "json" | "binary"
    vertices: bool = False
    dtype: str = "float16"      # binary frames only


def _json_object(text: str | bytes, what: str) -> dict:
    if len(text) > MAX_TEXT_BYTES:
        raise ProtocolError(f"{what} is over {MAX_TEXT_BYTES} bytes", CLOSE_TOO_BIG)
    try:
        msg = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"{what} is not JSON: send a JSON object such as {{\"type\": \"start\", ...}}",
                            CLOSE_INVALID) from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError(f"{what} must be a JSON object with a string \"type\"", CLOSE_INVALID)
    return msg


def _exact(value, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def parse_start(text: str | bytes) -> StartRequest:
    """The client's first message -> a ``StartRequest``; raises ``ProtocolError`` saying what is wrong."""
    msg = _json_object(text, "the first message")
    if msg["type"] != "start":
        raise ProtocolError(f"the first message must be {{\"type\": \"start\", ...}}, got type {msg['type']!r}")
    unknown = sorted(set(msg) - HELLO_FIELDS)
    if unknown:
        raise ProtocolError(f"unknown field(s) in start: {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(HELLO_FIELDS))})")
    version = msg.get("version", VERSION)
    if version != VERSION or not _exact(version, int):
        raise ProtocolError(f"protocol version {version!r} is not supported (this server speaks {VERSION})")
    if "sample_rate" not in msg:
        raise ProtocolError(f"start needs \"sample_rate\": {SAMPLE_RATE}")
    rate = msg["sample_rate"]
    if not _exact(rate, int) or rate != SAMPLE_RATE:
        raise ProtocolError(f"sample_rate must be {SAMPLE_RATE} (resample on the client), got {rate!r}",
                            CLOSE_UNSUPPORTED)
    channels = msg.get("channels", 1)
    if not _exact(channels, int) or channels != 1:
        raise ProtocolError(f"channels must be 1 (mono; downmix on the client), got {channels!r}", CLOSE_UNSUPPORTED)
    fmt = msg.get("format", "pcm16")
    if fmt != "pcm16":
        raise ProtocolError(f"format must be \"pcm16\" (16-bit little-endian PCM), got {fmt!r}", CLOSE_UNSUPPORTED)
    frames = msg.get("frames", "json")
    if frames not in ("json", "binary"):
        raise ProtocolError(f"frames must be \"json\" or \"binary\", got {frames!r}")
    vertices = msg.get("vertices", False)
    if not isinstance(vertices, bool):
        raise ProtocolError(f"vertices must be true or false, got {vertices!r}")
    dtype = msg.get("dtype", "float16")
    if dtype not in DTYPES:
        raise ProtocolError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return StartRequest(frames, vertices, dtype)


def parse_control(text: str) -> str:
    """A text message after the hello: only ``{"type": "end"}`` is allowed; returns its type."""
    msg = _json_object(text, "a text message")
    if msg["type"] == "start":
        raise ProtocolError("the stream has already started (one stream per connection)")
    if msg["type"] != "end" or len(msg) != 1:
        raise ProtocolError("after start, send audio as binary messages and {\"type\": \"end\"} last; "
                            f"got {text[:80]!r}")
    return "end"


def parse_audio(data: bytes) -> np.ndarray:
    """A binary audio message -> (S,) int16 samples."""
    if len(data) > MAX_AUDIO_BYTES:
        raise ProtocolError(f"audio message of {len(data)} bytes is over the limit of {MAX_AUDIO_BYTES}; "
                            "send smaller chunks", CLOSE_TOO_BIG)
    if len(data) % 2:
        raise ProtocolError(f"audio message of {len(data)} bytes: PCM16 needs an even number of bytes",
                            CLOSE_INVALID)
    return np.frombuffer(data, dtype="<i2")


def dumps(msg: dict) -> str:
    return json.dumps(msg, separators=(",", ":"))


def ready(fps: int, lookahead_ms: float, names: list[str], n_vertices: int) -> str:
    return dumps({"type": "ready", "version": VERSION, "fps": fps, "sample_rate": SAMPLE_RATE,
                  "lookahead_ms": float(lookahead_ms), "names": list(names), "n_vertices": n_vertices})


def error(message: str) -> str:
    return dumps({"type": "error", "message": message})


def done(n_frames: int) -> str:
    return dumps({"type": "done", "frames": n_frames})


def frames_json(start: int, samples: int, arkit: np.ndarray, vertices: np.ndarray | None = None) -> str:
    """arkit (N, 52), vertices (N, V, 3) or None -> a JSON frames message (6 decimals: 1e-6 of a weight, 1 um)."""
    msg = {"type": "frames", "start": start, "samples": samples, "arkit": np.round(arkit, 6).tolist()}
    if vertices is not None:
        msg["vertices"] = np.round(vertices, 6).tolist()
    return dumps(msg)


def frames_binary(start: int, samples: int, arkit: np.ndarray, vertices: np.ndarray | None = None,
                  dtype: str = "float16") -> bytes:
    """arkit (N, K), vertices (N, V, 3) or None -> header + weights + vertices."""
    dt = DTYPES[dtype]
    n, k = arkit.shape
    v = 0 if vertices is None else vertices.shape[1]
    head = HEADER.pack(MAGIC, VERSION, dt.itemsize, FLAG_VERTICES if v else 0, start, n, k, 0, v, samples)
    parts = [head, np.ascontiguousarray(arkit, dt).tobytes()]
    if v:
        parts.append(np.ascontiguousarray(vertices, dt).tobytes())
    return b"".join(parts)


@dataclass
class Frames:
    """A decoded frames message (JSON or binary): frames ``start .. start + len(arkit) - 1``."""

    start: int
    samples: int
    arkit: np.ndarray                   # (N, 52) float32
    vertices: np.ndarray | None = None  # (N, V, 3) float32


def decode_frames(msg: str | bytes) -> Frames:
    """A frames message of either form -> ``Frames`` (for clients, tests and benchmarks)."""
    if isinstance(msg, str):
        obj = json.loads(msg)
        if obj.get("type") != "frames":
            raise ValueError(f"not a frames message: {msg[:120]}")
        verts = obj.get("vertices")
        return Frames(obj["start"], obj["samples"], np.asarray(obj["arkit"], np.float32).reshape(-1, 52),
                      None if verts is None else np.asarray(verts, np.float32))
    magic, version, width, flags, start, n, k, _, v, samples = HEADER.unpack_from(msg)
    if magic != MAGIC or version != VERSION or width not in BY_WIDTH:
        raise ValueError("not a facerl binary frames message")
    dt = BY_WIDTH[width]
    arkit = np.frombuffer(msg, dt, n * k, HEADER.size).reshape(n, k).astype(np.float32)
    verts = None
    if flags & FLAG_VERTICES:
        verts = np.frombuffer(msg, dt, n * v * 3, HEADER.size + n * k * width).reshape(n, v, 3).astype(np.float32)
    return Frames(start, samples, arkit, verts)
