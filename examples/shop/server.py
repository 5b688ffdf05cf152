"""The shop's HTTP server: GET /price/<item> answers with JSON from shop.handlers.

The customer's segment and region come in the X-Segment and X-Region
headers; the ``new_payment_flow`` flag decides which payment flow the
answer offers them.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from illunare import FeatureFlags

# Bound once, at import: because illunare tracks shop.handlers from its first
# import, this name follows every swap and rollback.
from shop.handlers import price

#: the flags the shop consults; the demo gives it a shared backend
FLAGS = FeatureFlags()


class ShopRequestHandler(BaseHTTPRequestHandler):
    """Serves /price/<item>."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle's algorithm
    # meets the client's delayed ACK and every keep-alive request waits 40 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        """Answer one request."""
        if not self.path.startswith("/price/"):
            self.send_error(404)
            return
        answer = price(self.path.removeprefix("/price/"))
        customer = {
            "user_segment": self.headers.get("X-Segment"),
            "region": self.headers.get("X-Region"),
        }
        new_flow = FLAGS.is_enabled("new_payment_flow", customer)
        answer["payment_flow"] = "new" if new_flow else "classic"
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the demo's output to its report."""


def serve() -> ThreadingHTTPServer:
    """A server on a free loopback port (not yet serving)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), ShopRequestHandler)
    server.daemon_threads = True
    return server
