"""The REST service and its web page: FastAPI over the same library calls as the CLI.

POST /predict (one text or a batch), POST /explain, GET /health, GET /ready, GET /model, GET / (the
page), GET /docs (OpenAPI). The model is loaded once, in the background at start-up: /health answers
at once, /ready says 200 once the model is in memory. No endpoint loads, uploads or reads files
named by a request.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import api
from .explain import explain as explain_text
from .html import WEB



@dataclass
class Limits:
    """Named limits; each breach answers with the limit's name and value."""

    max_text_chars: int = 20_000      # characters in one text
    max_batch: int = 64               # texts in one /predict request
    max_body_bytes: int = 1_000_000   # bytes in one request body
    max_explain_chars: int = 5_000    # characters in one /explain text (explanations cost ~40 passes)


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, description="one review")
    texts: list[str] | None = Field(None, description="several reviews")
    long_text: Literal["sentences", "whole"] | None = None  # None: as the model was trained

    @model_validator(mode="after")
    def one_of(self):
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        return self


class Prediction(BaseModel):
    text: str
    rating: int
    probabilities: list[float]
    expected_rating: float
    tokens: int
    read_as: str


class PredictBatch(BaseModel):
    predictions: list[Prediction]


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    method: Literal["integrated_gradients", "occlusion"] = "integrated_gradients"


class Batcher:
    """Micro-batching: requests that arrive while the model is busy are scored together in the next
    batch. One forward pass over 50 short texts costs about what one over a single text costs (the
    recurrent loop's per-step overhead dominates), so under load this multiplies throughput, with no
    added wait when idle. A text's answer does not depend on its batch-mates (padding is masked)."""

    def __init__(self, predict, max_texts: int = 512):
        self.predict, self.max_texts = predict, max_texts
        self.queue: asyncio.Queue | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="model")

    async def submit(self, texts: list[str], long_text: str):
        if self.queue is None:
            self.queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, long_text, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            n = len(items[0][0])
            while not self.queue.empty() and n < self.max_texts:
                items.append(self.queue.get_nowait())
                n += len(items[-1][0])
            for mode in {it[1] for it in items}:
                group = [it for it in items if it[1] == mode]
                texts = [t for it in group for t in it[0]]
                try:
                    preds = await loop.run_in_executor(self.executor, self.predict, texts, mode)
                except Exception as e:  # every waiting request hears of it; the loop goes on
                    for it in group:
                        if not it[2].done():
                            it[2].set_exception(e)
                    continue
                k = 0
                for texts_i, _, future in group:
                    if not future.done():
                        future.set_result(preds[k:k + len(texts_i)])
                    k += len(texts_i)


def create_app(model: str | Path | None = None, limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    state: dict = {"loaded": None, "error": None}
    lock = threading.Lock()

    def load() -> None:
        try:
            loaded = api.load_model(model)
            from . import kernels
            kernels.load()  # built (once per machine) before /ready says yes, not on the first request
            state["loaded"] = loaded
        except Exception as e:  # reported by /ready and every model endpoint, never a crash
            state["error"] = f"{type(e).__name__}: {e}"

    batcher = Batcher(lambda texts, mode: api.predict(texts, model=state["loaded"], long_text=mode))
    app = FastAPI(title="reviewlstm", version=_version(),
                  description="Predict a review's star rating and see why: word contributions and LSTM gate traces.")

    @app.on_event("startup")
    def _start() -> None:
        threading.Thread(target=load, daemon=True, name="load-model").start()

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limits.max_body_bytes:
            return JSONResponse(status_code=413, content={
                "detail": f"request body is {size} bytes; the limit max_body_bytes is {limits.max_body_bytes}"})
        if request.method == "POST" and size is None:  # chunked: count what arrives
            body = await request.body()
            if len(body) > limits.max_body_bytes:
                return JSONResponse(status_code=413, content={
                    "detail": f"request body is over {limits.max_body_bytes} bytes (max_body_bytes)"})
        return await call_next(request)

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
        if not text.strip():
            raise HTTPException(422, detail=f"{field} is empty")
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

    @app.get("/health")
    def health():
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        """Readiness: 200 once the model is loaded, 503 before (or if it failed to load)."""
        if state["loaded"] is None:
            return JSONResponse(status_code=503, content={"ready": False, "detail": state["error"] or "loading"})
        return {"ready": True}

    @app.get("/model")
    def model_info():
        """The model card and metadata of the loaded model."""
        m = model_or_503()
        card = (m.path / "MODEL_CARD.md")
        return {"path": str(m.path), "config": m.config.to_dict(), "train": m.train_config, "metadata": m.metadata,
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
        preds = await batcher.submit(texts, req.long_text)
        out = [Prediction(text=t, **p.to_dict()) for t, p in zip(texts, preds)]
        return out[0] if req.text is not None else PredictBatch(predictions=out)

    @app.post("/explain")
    def explain(req: ExplainRequest):
        """Rating, per-word contributions, gate traces and the prediction after each word."""
        m = model_or_503()
        check_text(req.text, "text", limits.max_explain_chars, "max_explain_chars")
        with lock:  # explanations run autograd on the shared model: one at a time keeps memory bounded
            return explain_text(m, req.text, method=req.method).to_dict()

    return app


def _version() -> str:
    from . import __version__
    return __version__


def serve(model: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000,
          limits: Limits | None = None) -> None:
    import uvicorn
    uvicorn.run(create_app(model, limits), host=host, port=port, log_level="info")
