"""The service's settings and the shapes of its requests and answers (FastAPI validates them and
/docs shows them)."""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from ..explain import EXPLAIN_MAX_CHARS, Method
from ..model import LongText
from ..predict import Prediction as PredictionResult


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


class Problem(BaseModel):
    """Every refusal's body: one line naming what is wrong (a field, a limit and its value)."""
    detail: str


# the refusals each route may answer with, for its OpenAPI description: all {"detail": "..."}
PROBLEMS = {status: {"model": Problem, "description": why} for status, why in (
    (400, "a request shape the service refuses (Content-Length with Transfer-Encoding, say)"),
    (408, "the body did not arrive within body_timeout"),
    (413, "the body is over max_body_bytes"),
    (422, "malformed JSON, a missing or invalid field, a text that cannot be rated, or a limit passed"),
    (503, "the model is loading, or too many requests are waiting (Retry-After)"))}


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, description="one review")
    texts: list[str] | None = Field(None, description="several reviews")
    long_text: LongText | None = None  # None: as the model was trained
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
    method: Method = "integrated_gradients"
