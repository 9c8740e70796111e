"""Serve the dashboard and a fresh JSON export on localhost.

This is a development convenience, not a production web server: it binds to 127.0.0.1 only,
serves files from ``web/`` and generates ``rides.json`` from the database on each request.
"""

from __future__ import annotations

import functools
import http.server
from pathlib import Path

from sprocket.export import to_json
from sprocket.storage import Store

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, db: Path, **kwargs):
        self.db = db
        super().__init__(*args, directory=str(WEB_ROOT), **kwargs)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        if self.path.split("?", 1)[0] == "/rides.json":
            store = Store(self.db)
            try:
                body = to_json(store.rides()).encode("utf-8")
            finally:
                store.close()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, fmt: str, *args) -> None:
        # Quieter than the default: one short line per request, no timestamps.
        print(f"{self.command} {self.path} -> {fmt % args}")


def serve(db: Path, port: int = 8750) -> None:
    handler = functools.partial(Handler, db=db)
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        print(f"dashboard on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
