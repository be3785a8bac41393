"""The service's settings and the shapes of its requests and answers (FastAPI validates them and
/docs shows them)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from reviewlstm.inference.config import Method
from reviewlstm.nn.model import LongText
from reviewlstm.inference.predict import Prediction as PredictionResult


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


# one text's answer: the text, then every field of reviewlstm.inference.predict.Prediction as its to_dict() writes
# them (probabilities keyed by rating; the scale is in them)
Prediction = _schema_of(PredictionResult, "Prediction", leave_out=("ratings",), text=(str, ...),
                        probabilities=(list[RatingProbability], ...))


class PredictBatch(BaseModel):
    predictions: list[Prediction]


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    method: Method = "integrated_gradients"
