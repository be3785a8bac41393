"""The REST service and its web page: FastAPI over the same library calls as the CLI.

POST /predict (one text or a batch), POST /explain, GET /health, GET /ready, GET /model, GET / (the
page), GET /docs (OpenAPI). The model is loaded once, in the background at start-up: /health answers
at once, /ready says 200 once the model is in memory. No endpoint loads, uploads or reads files
named by a request.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from . import api
from .explain import EXPLAIN_MAX_CHARS
from .predict import Prediction as PredictionResult
from .html import WEB



@dataclass
class Limits:
    """Named limits (`reviewlstm serve --max-...`, help from LIMIT_HELP); each breach answers with
    the limit's name and value."""

    max_text_chars: int = 20_000
    max_batch: int = 64
    max_body_bytes: int = 1_000_000
    max_explain_chars: int = EXPLAIN_MAX_CHARS
    max_explain_queue: int = 4
    max_gate_tokens: int = 300
    max_pass_chars: int = 100_000
    max_connections: int = 128
    body_timeout: int = 30


LIMIT_HELP = {
    "max_text_chars": "characters in one /predict text",
    "max_batch": "texts in one /predict request",
    "max_body_bytes": "bytes in one request body",
    "max_explain_chars": "characters /explain explains; past them the rest of a text is rated (by /predict) "
                         "but not explained, and the answer says where it stopped",
    "max_explain_queue": "/explain requests waiting or running; more get 503 with Retry-After",
    "max_gate_tokens": "/explain: per-unit gate values for the first N tokens (the means for all)",
    "max_pass_chars": "characters one /predict pass reads: a huge batch is read in parts, and short "
                      "requests that arrive meanwhile go in between",
    "max_connections": "open connections; one more is answered 503 with Retry-After and closed at once, so "
                       "idle or slow sockets cannot use up the process's files",
    "body_timeout": "seconds a request has to send its whole body after its head (a body trickled a byte "
                    "at a time is answered 408 and closed)",
}


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, description="one review")
    texts: list[str] | None = Field(None, description="several reviews")
    long_text: Literal["sentences", "whole"] | None = None  # None: as the model was trained
    coverage: float | None = Field(None, gt=0, lt=1, description="also give each text's rating set: the run of "
                                   "ratings holding the true one with this probability (e.g. 0.9)")

    @model_validator(mode="after")
    def one_of(self):
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        return self


def _schema_of(cls, name: str, leave_out=(), **extra):
    """A response schema made from the library's own dataclass, so the two cannot drift; `extra`
    adds fields or retypes them as the dataclass's to_dict() writes them."""
    import dataclasses
    import typing
    hints = typing.get_type_hints(cls)
    fields = {f.name: (hints[f.name], ... if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                       else None if f.default is dataclasses.MISSING else f.default)
              for f in dataclasses.fields(cls) if f.name not in leave_out}
    extra = dict(extra)
    head = {k: extra.pop(k) for k in list(extra) if k not in fields}  # new fields first (the text)
    return create_model(name, **head, **{k: extra.get(k, v) for k, v in fields.items()})


class RatingProbability(BaseModel):
    rating: int
    probability: float


# one text's answer: the text, then every field of reviewlstm.predict.Prediction as its to_dict() writes
# them (probabilities keyed by rating; the scale is in them)
Prediction = _schema_of(PredictionResult, "Prediction", leave_out=("ratings",), text=(str, ...),
                        probabilities=(list[RatingProbability], ...))


class PredictBatch(BaseModel):
    predictions: list[Prediction]


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    method: Literal["integrated_gradients", "occlusion"] = "integrated_gradients"


class Batcher:
    """Micro-batching: requests that arrive while the model is busy are scored together in the next
    pass. One forward pass over 50 short texts costs about what one over a single text costs (the
    recurrent loop's per-step overhead dominates), so under load this multiplies throughput, with no
    added wait when idle. A pass reads at most `max_chars` characters, shortest requests first, so a
    huge batch is read over several passes and a short request is never stuck behind all of it. A
    text's answer does not depend on its batch-mates (padding is masked). Requests are batched only
    with requests asking the same `mode` (how long texts are read, the coverage of rating sets)."""

    def __init__(self, predict, max_texts: int = 512, max_chars: int = 100_000):
        self.predict, self.max_texts, self.max_chars = predict, max_texts, max_chars
        self.queue: asyncio.Queue | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="model")

    async def submit(self, texts: list[str], mode):
        if self.queue is None:
            self.queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Job(texts, mode, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        jobs: list[_Job] = []
        while True:
            if not jobs:
                jobs.append(await self.queue.get())
            while not self.queue.empty():
                jobs.append(self.queue.get_nowait())
            jobs.sort(key=lambda j: j.left_chars)  # shortest first: a huge batch waits its turn in parts
            mode = jobs[0].mode
            taken, texts, chars = [], [], 0
            for job in jobs:
                if job.mode != mode:
                    continue
                while job.next < len(job.texts) and len(texts) < self.max_texts and \
                        (not texts or chars + len(job.texts[job.next]) <= self.max_chars):
                    chars += len(job.texts[job.next])
                    texts.append(job.texts[job.next])
                    taken.append(job)
                    job.next += 1
            try:
                preds = await loop.run_in_executor(self.executor, self.predict, texts, mode)
            except Exception as e:  # every request in the pass hears of it; the loop goes on
                for job in set(taken):
                    if not job.future.done():
                        job.future.set_exception(e)
                jobs = [j for j in jobs if j not in set(taken)]
                continue
            for job, pred in zip(taken, preds):
                job.done.append(pred)
            for job in set(taken):
                if job.next == len(job.texts) and not job.future.done():
                    job.future.set_result(job.done)
            jobs = [j for j in jobs if j.next < len(j.texts) and not j.future.done()]


class _Job:
    def __init__(self, texts, mode, future):
        self.texts, self.mode, self.future = texts, mode, future
        self.next, self.done = 0, []

    @property
    def left_chars(self) -> int:
        return sum(len(t) for t in self.texts[self.next:])


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
        if "json" in headers.get("content-type", "") and body:
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
    except ValueError as e:
        if "digits" in str(e):
            return "the request body holds a number too long to read"
        return None  # malformed JSON: FastAPI's own 422 says where
    return None


async def _answer(send, status: int, detail: str, headers: list | None = None) -> None:
    import json
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def create_app(model: "str | Path | api.LoadedModel | None" = None, limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    state: dict = {"loaded": None, "error": None}

    def load() -> None:
        try:
            loaded = model if isinstance(model, api.LoadedModel) else api.load_model(model)
            api.warm_up()  # built (once per machine) before /ready says yes, not on the first request
            state["loaded"] = loaded
        except Exception as e:  # reported by /ready and every model endpoint, never a crash
            state["error"] = f"{type(e).__name__}: {e}"

    # a pass's mode: (long_text, coverage)
    batcher = Batcher(lambda texts, mode: api.predict(texts, model=state["loaded"], long_text=mode[0], coverage=mode[1]),
                      max_chars=limits.max_pass_chars)
    explainer = ThreadPoolExecutor(1, thread_name_prefix="explain")  # one at a time: memory stays bounded
    explaining = {"n": 0}
    @contextlib.asynccontextmanager
    async def lifespan(app):
        # the model loads on a thread: the server answers /health (and says "loading") meanwhile
        _log_accept_errors_once(asyncio.get_running_loop())
        threading.Thread(target=load, daemon=True, name="load-model").start()
        yield

    app = FastAPI(title="reviewlstm", version=_version(), lifespan=lifespan,
                  description="Predict a review's star rating and see why: word contributions and LSTM gate traces.")
    app.add_middleware(BodyLimit, limits=limits)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse(status_code=422, content={"detail": "; ".join(parts) or "invalid request"})

    def model_or_503():
        if state["loaded"] is None:
            raise HTTPException(503, detail=state["error"] or "the model is still loading")
        return state["loaded"]

    def check_text(text: str, field: str, limit: int, name: str) -> None:
        problem = api.text_problem(text)  # the API's and the CLI's rule
        if problem:
            raise HTTPException(422, detail=f"{field} {problem}")
        if len(text) > limit:
            raise HTTPException(422, detail=f"{field} is {len(text)} characters; the limit {name} is {limit}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return FileResponse(WEB / "index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in ("app.js", "style.css"):
            raise HTTPException(404, detail="not found")
        return FileResponse(WEB / name)

    # health and readiness are coroutines: they never wait for a worker thread, whatever the load
    @app.get("/health")
    async def health():
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        """Readiness: 200 once the model is loaded, 503 before (or if it failed to load)."""
        if state["loaded"] is None:
            return JSONResponse(status_code=503, content={"ready": False, "detail": state["error"] or "loading"})
        return {"ready": True}

    @app.get("/model")
    def model_info():
        """The model card and metadata of the loaded model."""
        m = model_or_503()
        card = (m.path / "MODEL_CARD.md")
        return {"path": m.path.name, "config": m.config.to_dict(), "train": m.train_config, "metadata": m.metadata,
                "card": card.read_text() if card.exists() else None, "limits": limits.__dict__}

    @app.post("/predict", response_model=Prediction | PredictBatch)
    async def predict(req: PredictRequest):
        """One text -> one prediction; "texts" -> {"predictions": [...]}, in order."""
        model_or_503()  # 503 until the model is loaded
        texts = [req.text] if req.text is not None else req.texts
        if req.texts is not None:
            if not texts:
                raise HTTPException(422, detail="texts is empty")
            if len(texts) > limits.max_batch:
                raise HTTPException(422, detail=f"texts has {len(texts)} items; the limit max_batch is {limits.max_batch}")
        for i, t in enumerate(texts):
            check_text(t, "text" if req.text is not None else f"texts[{i}]", limits.max_text_chars, "max_text_chars")
        if req.coverage is not None:
            from .conformal import kept
            try:
                kept(state["loaded"])
            except ValueError as e:
                raise HTTPException(422, detail=f"coverage: {str(e).split(': ', 1)[1]}") from None
        preds = await batcher.submit(texts, (req.long_text, req.coverage))
        out = [Prediction(text=t, **p.to_dict()) for t, p in zip(texts, preds)]
        return out[0] if req.text is not None else PredictBatch(predictions=out)

    @app.post("/explain")
    async def explain(req: ExplainRequest):
        """Rating, per-word contributions, gate traces and the prediction after each word, for the first
        max_explain_chars characters of the text (to a word's end: `explained_chars` says where; rate
        the whole text with /predict). Per-unit gate values come for the first max_gate_tokens tokens
        (the means over units for every token)."""
        m = model_or_503()
        check_text(req.text, "text", limits.max_text_chars, "max_text_chars")
        if explaining["n"] >= limits.max_explain_queue:
            raise HTTPException(503, detail=f"{explaining['n']} explanations are already waiting or running "
                                            f"(max_explain_queue {limits.max_explain_queue}): try again shortly",
                                headers={"Retry-After": "5"})
        explaining["n"] += 1
        try:
            out = await asyncio.get_running_loop().run_in_executor(
                explainer, lambda: api.explain(req.text, model=m, method=req.method,
                                               max_chars=limits.max_explain_chars).to_dict())
        finally:
            explaining["n"] -= 1
        return _cap_gates(out, limits.max_gate_tokens)

    return app


def _cap_gates(out: dict, tokens: int) -> dict:
    """Keep the answer proportionate: per-unit gate values for the first `tokens` tokens only."""
    cut = False
    for gate in out.get("gates", {}).values():
        if isinstance(gate, dict) and len(gate.get("units", ())) > tokens:
            gate["units"] = gate["units"][:tokens]
            cut = True
    out["gate_units_tokens"] = min(tokens, len(out.get("tokens", ()))) if cut else len(out.get("tokens", ()))
    return out


def _version() -> str:
    from . import __version__
    return __version__


def serve(model: "str | Path | api.LoadedModel | None" = None, host: str = "127.0.0.1", port: int = 8000,
          limits: Limits | None = None, header_timeout: float = 10.0) -> None:
    import resource
    import sys
    import uvicorn
    limits = limits or Limits()
    # the event loop shares the interpreter with the model and explain threads: a shorter switch
    # interval (default 5 ms) lets it answer /health between their Python steps
    sys.setswitchinterval(0.001)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # as many files as allowed: max_connections is the cap
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # keep-alive connections idle over 5 s are closed (uvicorn's default, said here so it cannot drift);
    # a connection that has not sent a whole request head within header_timeout is closed too, for
    # its first request and every later one
    uvicorn.run(create_app(model, limits), host=host, port=port, log_level="info", timeout_keep_alive=5,
                http=_guarded_protocol(header_timeout, limits.max_connections))


def _log_accept_errors_once(loop) -> None:
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


_OVER_CAPACITY = b'{"detail": "too many open connections (max_connections): try again shortly"}'


def _guarded_protocol(head_seconds: float, max_connections: int):
    """uvicorn's HTTP protocol with two guards uvicorn has no setting for: a connection is closed when
    a request head (its first or any later one on a kept-alive connection) is not in `head_seconds`
    after it could start (a client sending its headers a byte at a time would hold the socket for as
    long as it liked), and a connection past `max_connections` is answered 503 and closed at once."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class Guarded(Base):
        def connection_made(self, transport):
            super().connection_made(transport)
            self._head_timer = None
            if len(self.connections) > max_connections:
                transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                                b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
                                + str(len(_OVER_CAPACITY)).encode() + b"\r\n\r\n" + _OVER_CAPACITY)
                transport.close()
                return
            self._arm_head_timer()

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
