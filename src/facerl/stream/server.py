"""`facerl serve`: live 16 kHz PCM16 audio in over a WebSocket, 30 fps ARKit frames out (``protocol.py``), plus
the live browser page (microphone -> server -> animated head) over plain HTTP on the same port.

One connection is one stream with its own :class:`facerl.stream.Animator`; the actor's weights are loaded once
and shared (inference only reads them). Per connection, three tasks:

* **reader**: validates messages and queues audio chunks (at most ``max_queued_chunks``; past that it stops
  reading, so TCP pushes back on a client that sends faster than we compute);
* **compute**: runs ``Animator.push`` (and the message encoding) in a thread pool shared by all streams, one
  call at a time per stream, so a long computation never blocks the event loop or another stream. Chunks that
  queued up meanwhile are pushed together, so a stream that fell behind catches up with fewer, larger calls;
* **sender**: sends the frames. Frames are never dropped (each is sent once, in order). Before each push the
  compute task waits until at most ``max_unsent_bytes`` of frames wait to be sent, so a client that reads
  slowly slows its own stream down (and, through the queue above, its sending); one that stops reading is
  disconnected (1008, with a reason) once a message has waited ``max_lag_s`` for it.

Heartbeats are WebSocket pings (``ping_interval``; no pong within ``ping_timeout`` closes the connection).
A browser may connect only from the server's own page unless its origin is allowed (``allow_origins``), so a
web site the user visits cannot stream to a local server. HTTP routes: ``/`` the live page, ``/head.glb`` the
neutral head with its 52 ARKit morph targets; ``/ws`` is the WebSocket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http
import ipaddress
import logging
import os
import signal
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from facerl.errors import FacerlError
from facerl.head.arkit import ARKIT_NAMES
from facerl.stream import protocol as proto

log = logging.getLogger("facerl.stream")
DEFAULT_PORT = 8765
WS_PATH = "/ws"
FRAMES_PER_MESSAGE = 300  # 10 s: long pushes (a flush, a big chunk) go out in several messages


@dataclass
class ServeOptions:
    """How the server treats its clients (every limit is per connection unless it says otherwise)."""

    max_clients: int = 16                 # streams at once; the next gets an error and close 1013
    workers: int | None = None            # compute threads shared by all streams (default: one per CPU core)
    ping_interval: float | None = 20.0    # seconds between heartbeats (None: none)
    ping_timeout: float | None = 20.0     # seconds to wait for the pong before closing
    close_timeout: float = 5.0            # seconds to wait for the client's side of a close before dropping it
    hello_timeout: float = 10.0           # seconds a new connection has to send its start message
    max_queued_chunks: int = 64           # audio messages waiting for compute before reading pauses
    max_unsent_bytes: int = 4 << 20       # frames waiting to be sent before the stream's compute waits
    max_lag_s: float = 10.0               # a client that leaves frames unread this long is disconnected (1008)
    allow_origins: Sequence[str] = ()     # browser origins besides the server's own ("*": any)
    live_page: bool = True                # serve the browser page and head.glb over HTTP


# ---------------------------------------------------------------------------------------------- the model, shared
class AnimatorPool:
    """Loads the checkpoint once; ``new(vertices)`` makes a fresh Animator on the shared weights."""

    def __init__(self, checkpoint: str | Path, style: str = "average", device: str = "cpu") -> None:
        from facerl.models.checkpoint import load_actor
        from facerl.stream import Animator

        self.checkpoint, self.style, self.device = checkpoint, style, device
        self.bundle = load_actor(checkpoint, device)
        first = Animator(checkpoint, style, device, actor_bundle=self.bundle)  # checks the encoder and the style
        self.fps, self.lookahead_ms = int(first.fps), float(first.lookahead_ms)
        self.n_vertices = int(first.meta.n_vertices)

    def new(self, vertices: bool):
        from facerl.stream import Animator

        return Animator(self.checkpoint, self.style, self.device, vertices=vertices, actor_bundle=self.bundle)


# ---------------------------------------------------------------------------------------------- the live page
@functools.lru_cache(maxsize=1)
def neutral_head_glb() -> bytes:
    """The MakeHuman head at rest with its 52 ARKit morph targets (one frame of zero weights), as GLB bytes."""
    from facerl.export.curves import ArkitCurves
    from facerl.export.gltf import write_glb
    from facerl.head.rig import load_head
    from facerl.render.commands import head_vertex_colors

    head = load_head()
    with tempfile.TemporaryDirectory(prefix="facerl-serve-") as tmp:
        path = Path(tmp) / "head.glb"
        write_glb(path, ArkitCurves(np.zeros((1, len(ARKIT_NAMES)), np.float32), 30.0), head.vertices, head.faces,
                  head.blendshapes, head_vertex_colors(head))
        return path.read_bytes()


@functools.lru_cache(maxsize=1)
def live_page() -> bytes:
    """live.html with the viewer (viewer.js), the live client (live.js) and the head inline."""
    from facerl.view.page import fill_template, script_json, static_text

    data = {"views": [{"label": "live", "glb": base64.b64encode(neutral_head_glb()).decode("ascii")}], "audio": None}
    return fill_template("live.html", {"data": script_json(data), "viewer": static_text("viewer.js"),
                                       "live": static_text("live.js")}).encode("utf-8")


def _http(status: int, body: bytes, content_type: str) -> Response:
    status = http.HTTPStatus(status)
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)


def _same_origin(origin: str, host: str | None) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and host is not None and parts.netloc.lower() == host.lower()


# ---------------------------------------------------------------------------------------------- one connection
class _ClientGone(Exception):
    """The client closed the connection (or it dropped): nothing to report."""


_END = object()


def _not_reading(lag_s: float) -> proto.ProtocolError:
    return proto.ProtocolError(f"client is not reading its frames (they waited over {lag_s:g} s); disconnected")


@dataclass
class _Outbox:
    """Messages waiting to be sent and their size in bytes; ``room`` waits until at most ``limit`` bytes wait."""

    limit: int
    lag_s: float
    items: deque = field(default_factory=deque)
    size: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, messages: list) -> None:
        self.items.extend(messages)
        self.size += sum(len(m) for m in messages if m is not _END)
        self.ready.set()

    async def get(self):
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        message = self.items.popleft()
        self.size -= 0 if message is _END else len(message)
        if self.size <= self.limit:
            self.drained.set()
        return message

    async def room(self) -> None:
        """Wait (at most ``lag_s``) until the messages waiting to be sent fit in the limit."""
        if self.size <= self.limit:
            return
        self.drained.clear()
        try:
            async with asyncio.timeout(self.lag_s):
                await self.drained.wait()
        except TimeoutError:
            raise _not_reading(self.lag_s) from None


def _encode(frames: list, samples: int, request: proto.StartRequest) -> list[str | bytes]:
    """Frames of one push -> messages of at most FRAMES_PER_MESSAGE frames each."""
    out = []
    for lo in range(0, len(frames), FRAMES_PER_MESSAGE):
        part = frames[lo: lo + FRAMES_PER_MESSAGE]
        arkit = np.stack([f.arkit for f in part]).astype(np.float32)                          # (N, 52)
        verts = np.stack([f.vertices for f in part]).astype(np.float32) if request.vertices else None  # (N, V, 3)
        samples_u32 = samples & 0xFFFFFFFF
        if request.frames == "binary":
            msg = proto.frames_binary(part[0].index, samples_u32, arkit, verts, request.dtype)
        else:
            msg = proto.frames_json(part[0].index, samples_u32, arkit, verts)
        out.append(msg)
    return out


class StreamServer:
    """The WebSocket server around an ``AnimatorPool`` (or anything with ``new(vertices)``, ``fps``,
    ``lookahead_ms`` and ``n_vertices``). Use ``async with StreamServer(pool).run(host, port) as server``."""

    def __init__(self, pool, options: ServeOptions | None = None) -> None:
        self.pool, self.opts = pool, options or ServeOptions()
        self.executor = ThreadPoolExecutor(self.opts.workers or os.cpu_count() or 1, thread_name_prefix="facerl-stream")
        self.sessions: set[ServerConnection] = set()
        self.server: Server | None = None

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    @contextlib.asynccontextmanager
    async def run(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
        try:
            self.server = await ws_serve(self._session, host, port, process_request=self._http,
                                         max_size=2 * proto.MAX_AUDIO_BYTES, compression=None,
                                         ping_interval=self.opts.ping_interval, ping_timeout=self.opts.ping_timeout,
                                         close_timeout=self.opts.close_timeout)
        except OSError as exc:
            raise FacerlError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); choose another --port") from None
        try:
            yield self
        finally:
            await self.close()

    async def close(self, reason: str = "the server is shutting down") -> None:
        """Tell every stream why it ends, close it (1001), stop listening and the compute threads."""
        if self.server is None:
            return
        server, self.server = self.server, None
        sessions = list(self.sessions)
        await asyncio.gather(*(_send_within(ws, proto.error(reason), 1.0) for ws in sessions),
                             return_exceptions=True)
        server.close(close_connections=True, code=proto.CLOSE_GOING_AWAY, reason="server shutting down")
        try:
            async with asyncio.timeout(self.opts.close_timeout + 3.0):
                await server.wait_closed()
        except TimeoutError:  # clients that do not read cannot take the close frame: drop them
            for ws in list(self.sessions):
                ws.transport.abort()
            await server.wait_closed()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ---- HTTP: the page, the head, and the checks before a WebSocket handshake --------------------------------
    async def _http(self, ws: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?")[0]
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if path != WS_PATH:
                return _http(404, f"the WebSocket is at {WS_PATH}\n".encode(), "text/plain; charset=utf-8")
            origin = request.headers.get("Origin")
            allowed = self.opts.allow_origins
            foreign = origin and not _same_origin(origin, request.headers.get("Host"))
            if foreign and "*" not in allowed and origin not in allowed:
                log.warning("refused a WebSocket from origin %s (allow it with --allow-origin)", origin)
                return _http(403, f"origin {origin} is not allowed\n".encode(), "text/plain; charset=utf-8")
            return None
        loop = asyncio.get_running_loop()
        if self.opts.live_page and path in ("/", "/index.html"):
            return _http(200, await loop.run_in_executor(self.executor, live_page), "text/html; charset=utf-8")
        if self.opts.live_page and path == "/head.glb":
            return _http(200, await loop.run_in_executor(self.executor, neutral_head_glb), "model/gltf-binary")
        if path == "/":
            return _http(200, f"facerl stream server: connect a WebSocket to {WS_PATH}\n".encode(), "text/plain")
        return _http(404, b"not found\n", "text/plain; charset=utf-8")

    # ---- one stream --------------------------------------------------------------------------------------------
    async def _session(self, ws: ServerConnection) -> None:
        peer = ws.remote_address
        if len(self.sessions) >= self.opts.max_clients:
            await _fail(ws, proto.ProtocolError(f"the server is full ({self.opts.max_clients} streams); try again "
                                                "later", proto.CLOSE_TRY_LATER))
            return
        self.sessions.add(ws)
        try:
            await self._stream(ws)
            log.info("stream from %s done", peer)
        except _ClientGone:
            log.info("stream from %s: client left", peer)
        except proto.ProtocolError as err:
            log.info("stream from %s: %s", peer, err.message)
            await _fail(ws, err)
        except FacerlError as err:
            await _fail(ws, proto.ProtocolError(str(err), proto.CLOSE_SERVER_ERROR))
        except Exception as err:  # one stream's failure must not take the server down
            log.exception("stream from %s failed", peer)
            await _fail(ws, proto.ProtocolError(f"server error: {type(err).__name__}: {err}", proto.CLOSE_SERVER_ERROR))
        finally:
            self.sessions.discard(ws)

    async def _stream(self, ws: ServerConnection) -> None:
        try:
            async with asyncio.timeout(self.opts.hello_timeout):
                hello = await ws.recv()
        except TimeoutError:
            raise proto.ProtocolError(f"no start message within {self.opts.hello_timeout:g} s") from None
        except ConnectionClosed:
            raise _ClientGone from None
        if isinstance(hello, bytes):
            raise proto.ProtocolError("binary message before start: send the JSON start message first")
        request = proto.parse_start(hello)
        loop = asyncio.get_running_loop()
        animator = await loop.run_in_executor(self.executor, self.pool.new, request.vertices)
        n_vertices = self.pool.n_vertices if request.vertices else 0
        await _send(ws, proto.ready(self.pool.fps, self.pool.lookahead_ms, ARKIT_NAMES, n_vertices))

        chunks: asyncio.Queue = asyncio.Queue(self.opts.max_queued_chunks)
        outbox = _Outbox(self.opts.max_unsent_bytes, self.opts.max_lag_s)

        async def reader() -> None:
            while True:
                try:
                    msg = await ws.recv()
                except ConnectionClosed:
                    raise _ClientGone from None
                if isinstance(msg, str):
                    proto.parse_control(msg)
                    await chunks.put(_END)
                    return
                await chunks.put(proto.parse_audio(msg))

        def step(pcm: np.ndarray | None, samples: int) -> tuple[list[str | bytes], int]:  # in a compute thread
            frames = animator.flush() if pcm is None else animator.push(pcm)
            return _encode(frames, samples, request), len(frames)

        async def compute() -> None:
            samples, n_frames = 0, 0
            while True:
                items = [await chunks.get()]
                while not chunks.empty() and items[-1] is not _END:  # catch up: push what queued meanwhile at once
                    items.append(chunks.get_nowait())
                end = items[-1] is _END
                audio = [a for a in items if a is not _END]
                await outbox.room()
                if audio:
                    pcm = audio[0] if len(audio) == 1 else np.concatenate(audio)
                    samples += len(pcm)
                    messages, n = await loop.run_in_executor(self.executor, step, pcm, samples)
                    outbox.put(messages)
                    n_frames += n
                if end:
                    messages, n = await loop.run_in_executor(self.executor, step, None, samples)
                    n_frames += n
                    outbox.put([*messages, proto.done(n_frames), _END])
                    return

        async def sender() -> None:
            while (msg := await outbox.get()) is not _END:
                try:
                    await _send_within(ws, msg, self.opts.max_lag_s)
                except TimeoutError:
                    raise _not_reading(self.opts.max_lag_s) from None
            await _fail(ws, proto.ProtocolError("done", proto.CLOSE_DONE), message=False)

        await _all_or_first_error(reader(), compute(), sender())


async def _send(ws: ServerConnection, message: str | bytes) -> None:
    try:
        await ws.send(message)
    except ConnectionClosed:
        raise _ClientGone from None


async def _send_within(ws: ServerConnection, message: str | bytes, seconds: float) -> None:
    """``_send`` or TimeoutError (``asyncio.timeout``: unlike 3.11's ``wait_for`` it never swallows a cancel)."""
    async with asyncio.timeout(seconds):
        await _send(ws, message)


async def _fail(ws: ServerConnection, err: proto.ProtocolError, message: bool = True) -> None:
    """An error message, then a close with the error's code (the reason cut to the protocol's 123 bytes). A
    client that does not read gets neither: the close would wait for its buffer to drain, so it is dropped."""
    reason = err.message.encode("utf-8")[:120].decode("utf-8", "ignore")
    try:
        if message:
            await _send_within(ws, proto.error(err.message), 2.0)
        async with asyncio.timeout((ws.close_timeout or 5.0) + 2.0):
            await ws.close(err.code, reason)
    except (ConnectionClosed, _ClientGone):
        pass
    except TimeoutError:
        ws.transport.abort()


async def _all_or_first_error(*coros) -> None:
    """Run the coroutines together; the first to raise cancels the others and its exception propagates."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------------------------------- entry points
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(checkpoint: str | Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, style: str = "average",
          max_clients: int = 16, device: str = "cpu", options: ServeOptions | None = None,
          torch_threads: int | None = 1, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``checkpoint`` (a streaming actor) until SIGINT / SIGTERM, then close every stream cleanly.

    ``torch_threads``: torch's intra-op threads; 1 (default) suits many small concurrent steps, which the
    compute pool already spreads over the cores. ``on_ready(url)`` is called once the server listens."""
    options = options or ServeOptions()
    options.max_clients = max_clients
    if not 1 <= max_clients <= 4096:
        raise FacerlError(f"--max-clients must be 1-4096, got {max_clients}")
    if not 0 <= port <= 65535:
        raise FacerlError(f"--port must be 0-65535 (0 picks a free one), got {port}")
    if not is_loopback(host):
        log.warning("serving on %s: anyone who can reach this address can stream to the model (no "
                    "authentication, no TLS); browsers allow the microphone only on localhost or https", host)
        print(f"warning: --host {host} is not loopback: the server is reachable from other machines, without "
              "authentication or encryption", flush=True)
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    pool = AnimatorPool(checkpoint, style, device)
    asyncio.run(_serve_until_signal(pool, host, port, options, on_ready))


async def _serve_until_signal(pool, host: str, port: int, options: ServeOptions,
                              on_ready: Callable[[str], None] | None) -> None:
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    signals = [s for s in (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread()]
    for s in signals:
        loop.add_signal_handler(s, stop.set)
    try:
        async with StreamServer(pool, options).run(host, port) as server:
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{server.port}/"
            print(f"facerl serve: {pool.fps} fps, look-ahead {pool.lookahead_ms:.0f} ms; live page {url}, "
                  f"WebSocket ws://{shown}:{server.port}{WS_PATH} (Ctrl-C stops it)", flush=True)
            if on_ready is not None:
                on_ready(url)
            await stop.wait()
            print("facerl serve: closing the streams", flush=True)
    finally:
        for s in signals:
            loop.remove_signal_handler(s)


class ServerThread:
    """A server on its own event loop in a daemon thread (tests, notebooks, apps embedding facerl)::

        with ServerThread(AnimatorPool(ckpt), port=0) as srv:
            ...  # connect to srv.ws_url; srv.url is the live page
    """

    def __init__(self, pool, host: str = "127.0.0.1", port: int = 0, options: ServeOptions | None = None) -> None:
        self.pool, self.host, self.req_port, self.options = pool, host, port, options or ServeOptions()
        self.loop = asyncio.new_event_loop()
        self._started, self._error, self._stop = threading.Event(), None, None
        self.thread = threading.Thread(target=self._main, name="facerl-serve", daemon=True)
        self.server: StreamServer | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._run())

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with StreamServer(self.pool, self.options).run(self.host, self.req_port) as server:
                self.server = server
                self.port = server.port
                self._started.set()
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._started.set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    def __enter__(self) -> Self:
        self.thread.start()
        self._started.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self.thread.is_alive() and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(30)

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_main(args) -> int:
    """What ``facerl serve`` runs: the argparse namespace (checkpoint, host, port, style, max_clients, device,
    allow_origin) -> serve until Ctrl-C. Returns 0."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = ServeOptions(allow_origins=tuple(getattr(args, "allow_origin", None) or ()))
    serve(args.checkpoint, args.host, args.port, args.style, args.max_clients, getattr(args, "device", "cpu"),
          options)
    return 0
