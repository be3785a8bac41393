"""The REST service and its web page: FastAPI over the same library calls as the CLI.

POST /predict (one text or a batch), POST /explain, GET /health, GET /ready, GET /model, GET / (the
page), GET /docs (OpenAPI). The model is loaded once, in the background at start-up: /health answers
at once, /ready says 200 once the model is in memory. No endpoint loads, uploads or reads files
named by a request.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import api
from .explain import explain as explain_text

WEB = Path(str(resources.files("reviewlstm") / "web"))


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
    long_text: Literal["sentences", "whole"] = "sentences"

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


def create_app(model: str | Path | None = None, limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    state: dict = {"loaded": None, "error": None}
    lock = threading.Lock()

    def load() -> None:
        try:
            state["loaded"] = api.load_model(model)
        except Exception as e:  # reported by /ready and every model endpoint, never a crash
            state["error"] = f"{type(e).__name__}: {e}"

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
    def predict(req: PredictRequest):
        """One text -> one prediction; "texts" -> {"predictions": [...]}, in order."""
        m = model_or_503()
        texts = [req.text] if req.text is not None else req.texts
        if req.texts is not None:
            if not texts:
                raise HTTPException(422, detail="texts is empty")
            if len(texts) > limits.max_batch:
                raise HTTPException(422, detail=f"texts has {len(texts)} items; the limit max_batch is {limits.max_batch}")
        for i, t in enumerate(texts):
            check_text(t, "text" if req.text is not None else f"texts[{i}]", limits.max_text_chars, "max_text_chars")
        preds = api.predict(texts, model=m, long_text=req.long_text)
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
