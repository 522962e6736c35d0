"""OCSP over HTTP (RFC 6960 Appendix A): a small loopback responder and its client."""

from __future__ import annotations

import base64
import http.client
import sys
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer

from quicnet.cli.common import CliError

__all__ = ["post_request", "serve_ocsp"]

REQUEST_TYPE = "application/ocsp-request"
RESPONSE_TYPE = "application/ocsp-response"
MAX_REQUEST = 1 << 16  # an OCSP request is a few hundred bytes


class _Handler(BaseHTTPRequestHandler):
    """POST (A.1: the DER request as the body) and GET (A.1: base64 in the path)."""

    server: _OCSPServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            sys.stderr.write(f"ocsp: {self.address_string()} {format % args}\n")

    def _reply(self, code: int, body: bytes, content_type: str = RESPONSE_TYPE) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.answered += 1

    def do_POST(self) -> None:
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != REQUEST_TYPE:
            self._reply(415, b"expected application/ocsp-request\n", "text/plain")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_REQUEST:
            self._reply(413 if length > MAX_REQUEST else 411, b"bad length\n", "text/plain")
            return
        self._reply(200, self.server.answer(self.rfile.read(length)))

    def do_GET(self) -> None:
        encoded = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
        try:
            der = base64.b64decode(encoded, validate=True)
        except ValueError:
            der = b""
        if not der or len(der) > MAX_REQUEST:
            self._reply(400, b"expected /BASE64-OF-DER-OCSP-REQUEST\n", "text/plain")
            return
        self._reply(200, self.server.answer(der))


class _OCSPServer(HTTPServer):
    def __init__(
        self, address: tuple[str, int], answer: Callable[[bytes], bytes], verbose: bool
    ) -> None:
        super().__init__(address, _Handler)
        self.answer = answer
        self.verbose = verbose
        self.answered = 0


def serve_ocsp(
    answer: Callable[[bytes], bytes],
    port: int,
    *,
    host: str = "127.0.0.1",
    requests: int | None = None,
    verbose: bool = False,
) -> None:
    """Answer OCSP over HTTP on ``host:port`` (loopback by default) with ``answer``.

    Prints ``ACCEPT host:port`` (port 0 picks a free one) once listening;
    stops after ``requests`` answers when given.
    """
    try:
        server = _OCSPServer((host, port), answer, verbose)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    with server:
        bound_host, bound_port = server.socket.getsockname()[:2]
        print(f"ACCEPT {bound_host}:{bound_port}", flush=True)
        while requests is None or server.answered < requests:
            server.handle_request()


def post_request(url: str, der: bytes, *, timeout: float = 10.0) -> bytes:
    """POST ``der`` to an ``http://`` OCSP responder; its DER response."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise CliError(f"-url {url!r}: expected http://HOST[:PORT]/PATH")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request(
            "POST",
            parts.path or "/",
            body=der,
            headers={"Content-Type": REQUEST_TYPE, "Accept": RESPONSE_TYPE},
        )
        reply = conn.getresponse()
        body = reply.read(1 << 20)
    except OSError as exc:
        raise CliError(f"cannot reach the OCSP responder {url}: {exc.strerror or exc}") from None
    except http.client.HTTPException as exc:
        raise CliError(f"the OCSP responder {url} answered badly: {exc}") from None
    finally:
        conn.close()
    if reply.status != 200:
        raise CliError(f"the OCSP responder {url} answered HTTP {reply.status} {reply.reason}")
    return body
