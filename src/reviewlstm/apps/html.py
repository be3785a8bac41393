"""A self-contained explanation page: the web page's own renderer and styles inlined with the data."""
from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path

from reviewlstm.inference.explain import Explanation

WEB = Path(str(resources.files("reviewlstm.apps") / "web"))  # index.html, app.js, style.css


def explanation_page(e: Explanation, whole=None) -> str:
    """whole: the Prediction of the whole text, when only its first part was explained."""
    data = script_json(e.to_dict())
    rated = script_json(whole.to_dict() if whole is not None else None)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>reviewlstm: {html.escape(e.text[:60])}</title>
<style>{(WEB / "style.css").read_text()}</style>
<script>window.REVIEWLSTM_EXPLANATION = {data}; window.REVIEWLSTM_PREDICTION = {rated};</script>
<script>{(WEB / "app.js").read_text()}</script>
</head><body><main>
<h1>reviewlstm</h1>
<p class="sub">{html.escape(_excerpt(e.text))}</p>
<div id="error"></div><div id="result"></div>{_whole_text(e.text)}
</main></body></html>
"""


EXCERPT_CHARS = 300  # above the rating: a long review's text comes after it, folded


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …"


def _whole_text(text: str) -> str:
    if len(text) <= EXCERPT_CHARS:
        return ""
    return (f'\n<details id="whole-text"><summary>the whole text ({len(text):,} characters)</summary>'
            f'<p class="sub">{html.escape(text)}</p></details>')


def script_json(value) -> str:
    """JSON safe inside a <script> element: every <, > and & as its \\u escape (the same value to
    JavaScript), so no text of the review ("</script>", "<!--<script>") can end the script or put
    the HTML parser into its escaped state and swallow the rest of the page."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
