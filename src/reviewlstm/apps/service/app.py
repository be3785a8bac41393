"""The FastAPI app: its endpoints over the library's calls, and `serve` (uvicorn with the guards)."""
from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from reviewlstm import api
from reviewlstm.apps.html import WEB
from reviewlstm.apps.service.batcher import Batcher
from reviewlstm.apps.service.guards import BodyLimit, guarded_protocol, log_accept_errors_once
from reviewlstm.apps.limits import Limits
from reviewlstm.apps.service.schemas import PROBLEMS, ExplainRequest, PredictBatch, PredictRequest, Prediction


class ModelSlot:
    """The service's one model: loaded on a thread at start-up (so /health answers meanwhile),
    warmed (the compiled loop ready before /ready says yes), or the reason it failed. Its Predictors
    are kept per reading mode (long_text, coverage)."""

    def __init__(self, model: "str | Path | api.LoadedModel | None"):
        self.model, self.loaded, self.error, self.predictors = model, None, None, {}

    def load(self) -> None:
        try:
            loaded = self.model if isinstance(self.model, api.LoadedModel) else api.load_model(self.model)
            api.warm_up()  # built (once per machine) before /ready says yes, not on the first request
            self.loaded = loaded
        except Exception as e:  # reported by /ready and every model endpoint, never a crash
            self.error = f"{type(e).__name__}: {e}"

    def required(self) -> "api.LoadedModel":
        """The model, or a 503 saying why there is none (still loading, or failed)."""
        if self.loaded is None:
            raise HTTPException(503, detail=self.error or "the model is still loading")
        return self.loaded

    def predict(self, texts: list[str], mode: tuple) -> list:
        """Texts the route already checked, rated in one pass (no second check)."""
        if mode not in self.predictors:
            self.predictors[mode] = api.Predictor(self.loaded, long_text=mode[0], coverage=mode[1])
        return self.predictors[mode].predict(texts)


def check_text(text: str, field: str, limit: int, name: str) -> None:
    """A request's text, checked once, here: the API's and the CLI's rule (api.text_problem), then
    the service's limit; a 422 naming the field."""
    problem = api.text_problem(text)
    if problem:
        raise HTTPException(422, detail=f"{field} {problem}")
    if len(text) > limit:
        raise HTTPException(422, detail=f"{field} is {len(text)} characters; the limit {name} is {limit}")


def create_app(model: "str | Path | api.LoadedModel | None" = None, limits: Limits | None = None) -> FastAPI:
    """The app: the model slot loading in the background, the body limit, and the routes, each part
    added by a function of its own."""
    limits = limits or Limits()
    slot = ModelSlot(model)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        log_accept_errors_once(asyncio.get_running_loop())
        threading.Thread(target=slot.load, daemon=True, name="load-model").start()
        yield

    app = FastAPI(title="reviewlstm", version=_version(), lifespan=lifespan,
                  description="Predict a review's star rating and see why: word contributions and LSTM gate traces.")
    app.add_middleware(BodyLimit, limits=limits)
    app.add_exception_handler(RequestValidationError, _invalid)
    _add_page(app)
    _add_health(app, slot, limits)
    _add_predict(app, slot, limits)
    _add_explain(app, slot, limits)
    return app


async def _invalid(request: Request, exc: RequestValidationError):
    """A request FastAPI could not validate: one line naming each field, as every refusal."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return JSONResponse(status_code=422, content={"detail": "; ".join(parts) or "invalid request"})


def _add_page(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return FileResponse(WEB / "index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in ("app.js", "style.css"):
            raise HTTPException(404, detail="not found")
        return FileResponse(WEB / name)


def _add_health(app: FastAPI, slot: ModelSlot, limits: Limits) -> None:
    # health and readiness are coroutines: they never wait for a worker thread, whatever the load
    @app.get("/health")
    async def health():
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        """Readiness: 200 once the model is loaded, 503 before (or if it failed to load)."""
        if slot.loaded is None:
            return JSONResponse(status_code=503, content={"ready": False, "detail": slot.error or "loading"})
        return {"ready": True}

    @app.get("/model")
    def model_info():
        """The model card and metadata of the loaded model."""
        m = slot.required()
        card = (m.path / "MODEL_CARD.md")
        return {"path": m.path.name, "config": m.config.to_dict(), "train": m.train_config, "metadata": m.metadata,
                "card": card.read_text() if card.exists() else None, "limits": limits.__dict__}


def _add_predict(app: FastAPI, slot: ModelSlot, limits: Limits) -> None:
    batcher = Batcher(slot.predict, max_chars=limits.max_pass_chars)  # a pass's mode: (long_text, coverage)

    @app.post("/predict", response_model=Prediction | PredictBatch, responses=PROBLEMS)
    async def predict(req: PredictRequest):
        """One text -> one prediction; "texts" -> {"predictions": [...]}, in order."""
        slot.required()  # 503 until the model is loaded
        texts = [req.text] if req.text is not None else req.texts
        if req.texts is not None:
            if not texts:
                raise HTTPException(422, detail="texts is empty")
            if len(texts) > limits.max_batch:
                raise HTTPException(422, detail=f"texts has {len(texts)} items; the limit max_batch is {limits.max_batch}")
        for i, t in enumerate(texts):
            check_text(t, "text" if req.text is not None else f"texts[{i}]", limits.max_text_chars, "max_text_chars")
        if req.coverage is not None:
            from reviewlstm.inference.conformal import kept
            try:
                kept(slot.loaded)
            except ValueError as e:
                raise HTTPException(422, detail=f"coverage: {str(e).split(': ', 1)[1]}") from None
        preds = await batcher.submit(texts, (req.long_text, req.coverage))
        out = [Prediction(text=t, **p.to_dict()) for t, p in zip(texts, preds)]
        return out[0] if req.text is not None else PredictBatch(predictions=out)


def _add_explain(app: FastAPI, slot: ModelSlot, limits: Limits) -> None:
    explainer = ThreadPoolExecutor(1, thread_name_prefix="explain")  # one at a time: memory stays bounded
    explaining = {"n": 0}

    @app.post("/explain", responses=PROBLEMS)
    async def explain(req: ExplainRequest):
        """Rating, per-word contributions, gate traces and the prediction after each word, for the first
        max_explain_chars characters of the text (to a word's end: `explained_chars` says where; rate
        the whole text with /predict). Per-unit gate values come for the first max_gate_tokens tokens
        (the means over units for every token)."""
        m = slot.required()
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
        except ValueError as e:  # a text the explainer cannot read: the library's one line, as a 422
            raise HTTPException(422, detail=f"text: {str(e).strip().splitlines()[0]}") from None
        finally:
            explaining["n"] -= 1
        return _cap_gates(out, limits.max_gate_tokens)


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
    from reviewlstm import __version__
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
                http=guarded_protocol(header_timeout, limits.max_connections))
