"""The REST service and its web page: FastAPI over the same library calls as the CLI.

POST /predict (one text or a batch), POST /explain, GET /health, GET /ready, GET /model, GET / (the
page), GET /docs (OpenAPI). The model is loaded once, in the background at start-up: /health answers
at once, /ready says 200 once the model is in memory. No endpoint loads, uploads or reads files
named by a request.

    schemas.py   the request and answer shapes (the limits themselves: apps/limits.py)
    batcher.py   texts of concurrent requests rated in one model pass
    guards.py    the body counted as it arrives, malformed JSON, request heads timed, connections capped
    app.py       create_app (the endpoints) and serve (uvicorn)
"""
from reviewlstm.apps.limits import LIMIT_HELP, Limits
from reviewlstm.apps.service.app import create_app, serve

__all__ = ["LIMIT_HELP", "Limits", "create_app", "serve"]
