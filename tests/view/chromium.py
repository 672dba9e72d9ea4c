"""A minimal headless-Chromium driver for the viewer tests: the DevTools protocol over
``--remote-debugging-pipe`` (NUL-separated JSON on file descriptors 3 and 4), so it needs no Python package,
no websocket and no network port.

Flags that give WebGL in a headless container without a GPU: ``--headless=new --use-angle=swiftshader
--enable-unsafe-swiftshader`` (``--no-sandbox`` when running as root, as CI does).
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Self

import numpy as np
from PIL import Image

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless=new", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
         "--mute-audio", "--autoplay-policy=no-user-gesture-required", "--hide-scrollbars")


def find_chromium() -> str | None:
    override = os.environ.get("FACERL_CHROMIUM")
    if override:
        return shutil.which(override) or (override if os.access(override, os.X_OK) else None)
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


_MOVE_FDS = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); os.execv(sys.argv[3], sys.argv[3:])"


def _above_4(fd: int) -> int:
    """``fd`` moved to a number >= 10, so moving the other end onto 3 or 4 cannot clobber it."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Chromium:
    """One headless browser with one page; ``evaluate`` JS, ``wait_for`` a condition, ``screenshot`` to RGB."""

    def __init__(self, binary: str, width: int = 1200, height: int = 800, timeout: float = 30.0):
        self.timeout, self._id, self._buf = timeout, 0, b""
        self.profile = tempfile.mkdtemp(prefix="facerl-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        to_child_r, from_child_w = (_above_4(fd) for fd in (to_child_r, from_child_w))
        # the pipe protocol reads commands on fd 3 and writes replies on fd 4: a tiny exec wrapper moves our ends
        args = [sys.executable, "-c", _MOVE_FDS, str(to_child_r), str(from_child_w), binary, *FLAGS,
                "--remote-debugging-pipe", f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
                "about:blank"]
        if os.geteuid() == 0:
            args.insert(6, "--no-sandbox")
        self.proc = subprocess.Popen(args, pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.enable", session=True)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer {method} within {self.timeout} s")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.evaluate(f"!!({expression})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied {expression!r}; title: {self.evaluate('document.title')}")
            time.sleep(0.05)

    def screenshot(self) -> np.ndarray:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
