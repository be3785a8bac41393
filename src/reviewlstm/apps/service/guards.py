"""What keeps the service answering under abuse: the body's size and arrival time counted as it
comes (an ASGI wrapper), malformed JSON answered 422, request heads timed, connections capped."""
from __future__ import annotations

import asyncio

from reviewlstm.apps.limits import Limits


class BodyLimit:
    """ASGI middleware: the request body counted as it arrives, whatever the headers say, and read no
    further than max_body_bytes (413); Content-Length with Transfer-Encoding is a 400 (a request
    smuggling shape). JSON bodies that are not UTF-8, nest too deep or hold a number too long to read
    are a 422 naming what is wrong, as every other malformed request is."""

    def __init__(self, app, limits: Limits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        limit = self.limits.max_body_bytes
        if "content-length" in headers and "transfer-encoding" in headers:
            return await _answer(send, 400, "Content-Length and Transfer-Encoding together: send one of them")
        size = headers.get("content-length")
        if size is not None and (not size.strip().isdigit()):
            return await _answer(send, 400, f"Content-Length {size!r} is not a number")
        if size is not None and int(size) > limit:
            return await _answer(send, 413, f"request body is {size} bytes; the limit max_body_bytes is {limit}")
        body, more = bytearray(), True
        deadline = asyncio.get_running_loop().time() + self.limits.body_timeout
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - asyncio.get_running_loop().time(), 0))
            except asyncio.TimeoutError:
                return await _answer(send, 408, f"the request body did not arrive within {self.limits.body_timeout} s "
                                                "(body_timeout)")
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                return await _answer(send, 413, f"request body is over {limit} bytes (max_body_bytes)")
        if "json" in headers.get("content-type", "").lower() and body:  # application/json, any case, +json
            problem = _json_problem(bytes(body))
            if problem:
                return await _answer(send, 422, problem)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}
        return await self.app(scope, replay, send)


def _json_problem(body: bytes) -> str | None:
    import json
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"the request body is not valid UTF-8 (byte {e.start})"
    try:
        json.loads(text)
    except RecursionError:
        return "the request body's JSON nests too deep"
    except json.JSONDecodeError as e:  # said here, for every JSON media type, not left to the framework
        return f"the request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
    except ValueError as e:
        if "digits" in str(e):
            return "the request body holds a number too long to read"
        return f"the request body is not valid JSON: {str(e)[:200]}"
    return None


async def _answer(send, status: int, detail: str, headers: list | None = None) -> None:
    import json
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def log_accept_errors_once(loop) -> None:
    """Out of file descriptors, asyncio logs a traceback at every accept it retries: one line a minute
    says it instead (the connection cap keeps the service below the limit; this is for the rest)."""
    import errno
    import logging
    said = {"at": float("-inf")}
    log = logging.getLogger("uvicorn.error")

    def handler(loop, context):
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            if loop.time() - said["at"] >= 60:
                said["at"] = loop.time()
                log.warning("cannot accept connections: %s (said once a minute; max_connections caps them)",
                            exc.strerror or exc)
            return
        loop.default_exception_handler(context)
    loop.set_exception_handler(handler)


REFUSED_LINGER = 2.0  # seconds a refused connection is read (and dropped) before it is closed
_OVER_CAPACITY = b'{"detail": "too many open connections (max_connections): try again shortly"}'


def guarded_protocol(head_seconds: float, max_connections: int):
    """uvicorn's HTTP protocol with two guards uvicorn has no setting for: a connection is closed when
    a request head (its first or any later one on a kept-alive connection) is not in `head_seconds`
    after it could start (a client sending its headers a byte at a time would hold the socket for as
    long as it liked), and a connection past `max_connections` is answered 503 and closed at once."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class Guarded(Base):
        _refused = False

        def connection_made(self, transport):
            super().connection_made(transport)
            self._head_timer = None
            if len(self.connections) > max_connections:
                # a lingering close: the 503, then our side shut, what the client still sends read and
                # dropped until it closes (or REFUSED_LINGER seconds pass). Closing at once with its
                # request unread would make the kernel answer with a reset instead of the 503.
                self._refused = True
                transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                                b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
                                + str(len(_OVER_CAPACITY)).encode() + b"\r\n\r\n" + _OVER_CAPACITY)
                if transport.can_write_eof():
                    transport.write_eof()
                    self._head_timer = self.loop.call_later(REFUSED_LINGER, transport.close)
                else:
                    transport.close()
                return
            self._arm_head_timer()

        def data_received(self, data):
            if self._refused:
                return  # a refused connection's request: read and dropped
            super().data_received(data)

        def eof_received(self):
            if self._refused:
                self.transport.close()
                return False
            return super().eof_received()

        def _arm_head_timer(self):
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(head_seconds, self._head_late)

        def _head_late(self):
            waiting_for_a_head = self.cycle is None or self.cycle.response_complete
            if waiting_for_a_head and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self):
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_timer()  # the next request's head has as long as the first's had

        def connection_lost(self, exc):
            if getattr(self, "_head_timer", None) is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)
    return Guarded
