"""What reading a model may be asked, named without torch (the command line's choices and defaults):
the explanation methods and how much of a text an explanation reads."""
from __future__ import annotations

import typing
from typing import Literal

Method = Literal["integrated_gradients", "occlusion"]  # word contributions: how they are measured
METHODS = typing.get_args(Method)
# An explanation costs about 40 passes over the text (integrated gradients' steps, the gates, every
# prefix), and its memory grows with the square of a piece's length (the prefixes): so every surface
# explains at most this many characters of a text by default (settable: `max_chars`, `reviewlstm
# explain --max-chars`, `serve --max-explain-chars`) and says where it stopped.
EXPLAIN_MAX_CHARS = 5_000
