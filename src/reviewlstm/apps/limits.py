"""The service's limits, each a setting: `reviewlstm serve --max-...` flags are made from `Limits`
(help from LIMIT_HELP), so the command line knows them without importing the service."""
from __future__ import annotations

from dataclasses import dataclass

from reviewlstm.inference.config import EXPLAIN_MAX_CHARS


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
