"""Serve the viewer page on 127.0.0.1 with the standard library's http.server (nothing leaves the machine)."""

from __future__ import annotations

import errno
import http.server
import threading
import webbrowser

from facerl.errors import FacerlError

HOST = "127.0.0.1"


def _handler(page: bytes) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/", "/index.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args) -> None:  # quiet: one line with the URL is all the user needs
            pass

    return Handler


def start_server(html: str, port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``html`` at http://127.0.0.1:PORT/ from a daemon thread (port 0: a free one); returns (server, url).
    Stop it with ``server.shutdown(); server.server_close()``."""
    if not 0 <= port <= 65535:
        raise FacerlError(f"--port must be 0-65535 (0 picks a free one), got {port}")
    try:
        server = http.server.ThreadingHTTPServer((HOST, port), _handler(html.encode("utf-8")))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise FacerlError(f"port {port} is in use; choose another with --port (0 picks a free one)") from None
        raise FacerlError(f"cannot serve on {HOST}:{port} ({exc.strerror or exc})") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="facerl-view", daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}/"


def serve(html: str, port: int = 0, open_browser: bool = True) -> None:
    """Serve the page until Ctrl-C, printing its URL (and opening it in the default browser if asked)."""
    server, url = start_server(html, port)
    print(f"facerl viewer at {url} (Ctrl-C stops it)", flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
