"""The `reviewlstm` command line: parse, validate, call the library, print."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"expected integers >= 2, got {text!r}")
    return values


def _cells(text: str) -> tuple[str, ...]:
    from reviewlstm.nn.cells import CELLS
    cells = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in cells if c not in CELLS]
    if bad or not cells:
        raise argparse.ArgumentTypeError(f"unknown cell {bad[0] if bad else text!r}: expected some of {', '.join(CELLS)}")
    return cells


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, got {value}")
    return value


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0 or value == float("inf"):  # NaN and infinity are no positive number either
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def _cpus(least: int):
    """A count of threads or processes: `least` (0 or 1) up to this machine's CPUs."""
    def parse(text: str) -> int:
        cpus = os.cpu_count() or 1
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not least <= value <= cpus:
            raise argparse.ArgumentTypeError(f"expected {least}..{cpus} (this machine has {cpus} CPU(s)), got {value}")
        return value
    return parse


STARS = "★★★★★★★★★★"


def _model_arg(p, device: bool = True):
    p.add_argument("--model", default=None, help="model directory (default: the bundled SST-5 model)")
    p.add_argument("--threads", type=_cpus(1), default=None,
                   help="CPU threads for the model (default: torch's, one per core; 1 keeps a busy machine's "
                        "single-review latency low)")
    if device:
        p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                       help="where the model runs (auto: CUDA when there is one; default cpu)")


def _column_args(p):
    p.add_argument("--format", choices=("sst", "csv", "tsv", "jsonl", "parquet"), default=None,
                   help="file format (default: from the extension; .txt is SST trees)")
    p.add_argument("--text-column", default=None, help="default: text, review, content, ...")
    p.add_argument("--rating-column", default=None, help="default: rating, stars, label, ...")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count bad rows instead of stopping at the first")


def build_parser() -> argparse.ArgumentParser:
    from reviewlstm import __version__
    parser = argparse.ArgumentParser(prog="reviewlstm", description="Predict a review's star rating from its text.")
    parser.add_argument("--version", action="version", version=f"reviewlstm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for add in (_predict_command, _reading_commands, _training_commands, _serving_commands, _tool_commands):
        add(sub)
    return parser


def _predict_command(sub) -> None:
    """predict: texts, standard input or a whole file, on this machine or on Ray."""
    from reviewlstm.nn.config import LONG_TEXTS
    p = sub.add_parser("predict", help="rate reviews",
                       description="Rate the given texts; with no TEXT, the lines of standard input (one review a "
                                   "line); or every row of --input FILE, written to --output FILE.")
    _model_arg(p)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="review texts (none: read standard input, one a line)")
    p.add_argument("--json", action="store_true", help="one JSON object per text")
    p.add_argument("--input", help="score every row of this file (CSV, TSV, JSONL, Parquet, SST); - reads standard "
                                   "input (CSV unless --format says)")
    p.add_argument("--output", help="where to write the rows with their predictions (with --input); - writes them to "
                                    "standard output, in the input's format (CSV for Parquet or SST)")
    p.add_argument("--long-text", choices=LONG_TEXTS, default=None,
                   help="long reviews: read sentence by sentence and average, or in one pass "
                        "(default: as the model was trained, its config's long_text)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while scoring --input")
    p.add_argument("--coverage", type=_coverage, default=None, metavar="C",
                   help="also give the run of ratings that holds the true one with probability C (e.g. 0.9), "
                        "calibrated on the model's untouched validation slice")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): this process and its workers; ray: Ray Data actors, --input a file or "
                        "folder, --output a folder of Parquet files (pip install -e \".[ray]\")")
    p.add_argument("--address", default=None,
                   help="with --engine ray: an existing Ray cluster (default: a local Ray started for the run)")
    p.add_argument("--preserve-order", action="store_true",
                   help="with --engine ray: write rows in input order (slower when blocks differ in cost)")
    p.add_argument("--workers", type=_cpus(0), default=None,
                   help="processes scoring --input in parallel (default: one per CPU for 20,000+ rows; 0: none)")
    _column_args(p)
    p.set_defaults(func=cmd_predict)


def _reading_commands(sub) -> None:
    """evaluate, calibrate, export, explain: what else reads a trained model."""
    from reviewlstm.inference.config import EXPLAIN_MAX_CHARS, METHODS
    from reviewlstm.nn.config import LONG_TEXTS
    e = sub.add_parser("evaluate", help="score a model on a labelled file",
                       description="Accuracy, macro-F1, MAE, within ±1 star, QWK, per-class precision and recall "
                                   "and the confusion matrix.")
    _model_arg(e)
    e.add_argument("file", metavar="FILE", help="labelled reviews: CSV, TSV, JSONL, Parquet (.gz too) or SST trees")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--confusion-png", metavar="PATH", help="also draw the confusion matrix")
    e.add_argument("--coverage", type=_coverage, default=None, metavar="C",
                   help="also score the rating sets at coverage C: how often they hold the true rating, how wide")
    e.add_argument("--reliability-png", metavar="PATH",
                   help="also draw the reliability diagram (accuracy against confidence: is the model as sure as it is right?)")
    e.add_argument("--long-text", choices=LONG_TEXTS, default=None,
                   help="default: as the model was trained")
    e.add_argument("--teacher", metavar="DIR",
                   help="also score a distillation teacher (reviewlstm distill's WORK/teacher), side by side")
    _column_args(e)
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("calibrate", help="refit a model's temperature and rating sets on rated reviews",
                       description="Fit the temperature that makes the model's probabilities honest (its confidence "
                                   "matching its accuracy) on FILE, rated reviews it did not train on, refit its rating "
                                   "sets (--coverage) on the same reviews, and write the calibrated model to --out "
                                   "(train does both by itself, on --dev and on its validation slice). No rating moves.")
    _model_arg(c, device=False)
    c.add_argument("file", metavar="FILE", help="rated reviews the model did not train on (its dev set, or new ones)")
    c.add_argument("--out", required=True, metavar="DIR", help="where to write the calibrated model (--model's DIR: in place)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    _column_args(c)
    c.set_defaults(func=cmd_calibrate)

    o = sub.add_parser("export", help="write the model for another runtime (ONNX)",
                       description="Write --model as one ONNX graph (the four-gate recurrence as a Scan over any "
                                   "length, batch and time dynamic) with its vocab.json and config.json, for "
                                   "onnxruntime and the engines built on it (pip install -e \".[onnx]\").")
    _model_arg(o, device=False)
    o.add_argument("--format", choices=("onnx",), default="onnx", help="default onnx")
    o.add_argument("--out", required=True, metavar="DIR", help="a new or empty directory")
    o.set_defaults(func=cmd_export)

    x = sub.add_parser("explain", help="why a rating: word contributions and gate traces",
                       description="The rating, the words colored by their contribution, and (with --html) a page "
                                   "with the word heat map, the gate heat maps and the prediction after each word.")
    _model_arg(x, device=False)  # explanations run on the CPU
    x.add_argument("text", metavar="TEXT", help="the review to explain")
    x.add_argument("--method", choices=METHODS, default="integrated_gradients",
                   help="word contributions by integrated gradients (default) or by leaving each word out")
    x.add_argument("--json", action="store_true", help="print the whole explanation as one JSON object")
    x.add_argument("--html", metavar="FILE", help="write a self-contained page (no network needed to view it)")
    x.add_argument("--max-chars", type=int, default=EXPLAIN_MAX_CHARS, metavar="N",
                   help=f"explain at most the first N characters, to a word's end; the whole text is still rated "
                        f"(default {EXPLAIN_MAX_CHARS:,}; 0: no limit: cost grows with length)")
    x.add_argument("--show-words", type=int, default=200, metavar="N",
                   help="print the colored text when it has at most N words (default 200)")
    x.set_defaults(func=cmd_explain)


def _training_commands(sub) -> None:
    """train and distill, their flags made from TrainConfig and DistillConfig; pretrain, from PretrainConfig."""
    t = sub.add_parser("train", help="train a model on (review, rating) pairs",
                       description="Train, evaluate on --dev after every epoch, keep the best epoch in --out.")
    _train_args(t)
    t.set_defaults(func=cmd_train)

    dd = sub.add_parser("distill", help="train an LSTM on a fine-tuned transformer's ratings",
                        description="Fine-tune a teacher (MiniLM-L6, or a local Hugging Face encoder) on --train, "
                                    "label the training texts and augmented ones with its distributions (cached), "
                                    "and train an ordinary reviewlstm model on them (pip install -e \".[teacher]\").")
    _train_args(dd, "distill")
    from reviewlstm.distillation.config import DistillConfig
    add_flags(dd, DistillConfig, "distill_")
    dd.set_defaults(func=cmd_distill)

    pt = sub.add_parser("pretrain", help="teach the recurrent layer to read reviews: a language model for train --init-from",
                        description="Train the rating model's network (embedding and bidirectional four-gate layer) "
                                    "as a language model on review texts, rated or not (ULMFiT), and write it as a "
                                    "model directory that `train --init-from DIR` starts from.")
    from reviewlstm.training.config import PretrainConfig
    add_flags(pt, PretrainConfig, "pre_", "pretrain")
    pt.add_argument("--no-progress", action="store_true", help="no progress bar (the log lines stay)")
    pt.set_defaults(func=cmd_pretrain)


def _serving_commands(sub) -> None:
    """serve: its limits' flags made from apps/limits.py (the service itself is imported only when it runs)."""
    s = sub.add_parser("serve", help="the REST service and web page",
                       description="FastAPI on uvicorn: POST /predict, POST /explain, GET /health, /ready, /model, "
                                   "/docs, and the page at /.")
    _model_arg(s)
    s.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    s.add_argument("--port", type=_port, default=8000, help="default 8000")
    from dataclasses import fields
    from reviewlstm.apps.limits import LIMIT_HELP, Limits
    for f in fields(Limits):
        s.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_positive(int), default=f.default,
                       help=f"{LIMIT_HELP[f.name]} (default {f.default:,})")
    s.add_argument("--header-timeout", type=_positive(float), default=10.0,
                   help="seconds a new connection has to send its request head (default 10)")
    s.set_defaults(func=cmd_serve)


def _tool_commands(sub) -> None:
    """download-sst5, gradients, build-kernel."""
    dl = sub.add_parser("download-sst5", help="fetch SST-5 (needs a network), check its MD5, cache it")
    dl.add_argument("--cache", help="cache directory (default $REVIEWLSTM_CACHE or ~/.cache/reviewlstm)")
    dl.add_argument("--url", default=None, help="where to fetch the archive (default: Stanford's own copy)")
    dl.set_defaults(func=cmd_download)

    g = sub.add_parser("gradients", help="the vanishing-gradient study: RNN against LSTM on the adding problem",
                       description="Measure how far back the gradient reaches in each cell, at initialization and "
                                   "after training on the adding problem, and which cell solves it at which length. "
                                   "Writes gradients.json and gradients.png into --out.")
    g.add_argument("--out", required=True, help="directory for gradients.json and gradients.png")
    g.add_argument("--cells", type=_cells, default=("lstm", "classic-lstm", "rnn"), help="comma-separated (default: all three)")
    g.add_argument("--lengths", type=_int_list, default=(25, 100), help="sequence lengths to train on (default: 25,100)")
    g.add_argument("--gradient-length", type=_positive(int), default=200, help="length at which gradient norms are measured (default: 200)")
    g.add_argument("--steps", type=_positive(int), default=1500, help="training steps at most per cell and length (default: 1500)")
    g.add_argument("--hidden", type=_positive(int), default=32, help="units per cell (default: 32)")
    g.add_argument("--lr", type=_positive(float), default=1e-2, help="Adam learning rate (default: 0.01)")
    g.add_argument("--seed", type=int, default=0, help="default: 0")
    g.set_defaults(func=cmd_gradients)

    k = sub.add_parser("build-kernel", help="compile the fast LSTM kernel now (otherwise done on first use)",
                       description="Compile the four-gate LSTM's C++ loop for this machine and cache it "
                                   "($REVIEWLSTM_CACHE or ~/.cache/reviewlstm). Without it everything still runs, "
                                   "on the slower Python loop.")
    k.set_defaults(func=cmd_build_kernel)


def _columns(args):
    from reviewlstm.io.data import Columns
    return Columns(args.text_column, args.rating_column)


def _print_prediction(text: str, p, ratings: list[int]) -> None:
    stars = STARS[:p.rating - ratings[0] + 1] + "☆" * (ratings[-1] - p.rating)
    probs = "  ".join(f"{r}:{q:.2f}" for r, q in zip(ratings, p.probabilities))
    note = {"sentences": " (read sentence by sentence)", "truncated": " (truncated)"}.get(p.read_as, "")
    shown = text if len(text) <= 70 else text[:67] + "..."
    within = ""
    if p.rating_set is not None:
        run = f"{p.rating_set[0]}" if len(p.rating_set) == 1 else f"{p.rating_set[0]}-{p.rating_set[-1]}"
        within = f"  (with {p.coverage:.0%} coverage: {run})"
    named = f" {p.label}" if p.label else ""
    print(f"{stars}  {p.rating}{named}{within}  expected {p.expected_rating:.2f}  [{probs}]{note}  {shown}")
    if p.warning:
        print(f"  warning: {p.warning}")


def cmd_predict(args) -> int:
    if args.engine == "ray" or args.address:
        return _predict_on_ray(args)
    if args.input:
        return _predict_file(args)
    return _predict_texts(args)


def _predict_on_ray(args) -> int:
    """--engine ray: --input files or a folder scored by Ray Data actors into Parquet files."""
    if args.coverage is not None:
        raise UserError("--coverage is for the local engine (TEXT, standard input or --input): Ray scoring writes "
                        "the probabilities, p_<rating>, without rating sets")
    if not (args.input and args.output) or args.texts:
        raise UserError("--engine ray scores --input FILE_OR_FOLDER into --output FOLDER (Parquet files)")
    import time
    from reviewlstm.apps import ray_scoring
    started = time.perf_counter()
    ray_scoring.ensure_ray(args.address)
    counts = ray_scoring.score_to_parquet([args.input], args.output, model=args.model, fmt=args.format,
                                          text_column=args.text_column, long_text=args.long_text,
                                          preserve_order=args.preserve_order)
    seconds = time.perf_counter() - started
    print(f"rated {counts['rows'] - counts['errors']} of {counts['rows']} rows from {args.input} with Ray in "
          f"{seconds:.1f}s -> {counts['files']} Parquet file(s) in {args.output}")
    if counts["errors"]:
        print(f"{counts['errors']} row(s) could not be rated and have an error column instead of a prediction "
              f"(their source_file and source_line say where)", file=sys.stderr)
    return 0


def _predict_file(args) -> int:
    """--input FILE --output FILE: every row back, in order, with its prediction or its error."""
    from reviewlstm import api
    if args.texts:
        raise UserError("give TEXT arguments or --input FILE, not both")
    if not args.output:
        raise UserError("--input needs --output FILE for the scored rows")
    import tempfile
    with tempfile.TemporaryDirectory(prefix="reviewlstm-") as spool:  # ours alone: stdin's or stdout's rows
        source, target = _spooled(args.input, args.format, Path(spool)), _spool_target(args, Path(spool))
        try:
            s = api.score_file(source, target, model=args.model, fmt=args.format or ("csv" if args.input == "-" else None),
                               columns=_columns(args), coverage=args.coverage, skip_bad_rows=args.skip_bad_rows,
                               progress=not args.no_progress, long_text=args.long_text, workers=args.workers)
        except ValueError as e:  # a DataError names the file: standard input by its own name, not our copy's
            if "-" not in (args.input, args.output):
                raise
            message = str(e)
            if args.input == "-":
                message = message.replace(source, "standard input")
            if args.output == "-":
                message = message.replace(target, "standard output")
            raise UserError(message) from None
        if args.input == "-":
            s.bad_rows.first = [line.replace(source, "standard input") for line in s.bad_rows.first]
        if args.output == "-":
            with open(target, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.flush()
    rated = s.rows - s.errors
    where = "standard input" if args.input == "-" else args.input
    print(f"read {s.bad_rows.rows} rows from {where}; rated {rated} in {s.seconds:.1f}s "
          f"({rated / max(s.seconds, 1e-9):.0f}/s"
          + (f"; compiling the kernel took {s.build_seconds:.0f}s more, once for this machine" if s.build_seconds else "")
          + f") -> {'standard output' if args.output == '-' else s.output}",
          file=sys.stderr if args.output == "-" else sys.stdout)
    if s.bad_rows.count:
        if s.skipped:
            print(s.bad_rows.summary(), file=sys.stderr)
        else:
            print(f"{s.errors} row(s) could not be rated and have an error column instead of a prediction: "
                  + "; ".join(s.bad_rows.first)
                  + (f" and {s.errors - len(s.bad_rows.first)} more" if s.errors > len(s.bad_rows.first) else ""),
                  file=sys.stderr)
    return 0


def _spooled(path: str, fmt: str | None, spool: Path) -> str:
    """--input -: standard input copied to a file of our own (the readers take files), named for its
    format; any other path as it is."""
    if path != "-":
        return path
    source = spool / f"stdin.{fmt or 'csv'}"
    with open(source, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f)
    return str(source)


def _spool_target(args, spool: Path) -> str:
    """--output -: a file of our own in the input's format (CSV where that cannot be a stream of
    lines), copied to standard output once whole; any other path as it is."""
    if args.output != "-":
        return args.output
    from reviewlstm.io.data import detect_format
    fmt = args.format or ("csv" if args.input == "-" else detect_format(args.input))
    return str(spool / f"scored.{fmt if fmt in ('csv', 'tsv', 'jsonl') else 'csv'}")


def _predict_texts(args) -> int:
    """TEXT arguments or standard input's lines, printed (or --json, one object a text)."""
    import json
    from reviewlstm import api
    if args.output:
        raise UserError("--output goes with --input FILE")
    api.warm_up(build=False)  # a few texts: the Python loop answers before a build would finish
    texts, where = args.texts, "TEXT"
    numbers = list(range(1, len(texts) + 1))
    if not texts:
        if sys.stdin is None or sys.stdin.isatty():
            raise UserError("give at least one TEXT, texts on standard input (one a line), or --input FILE")
        lines, where = [line.rstrip("\r\n") for line in sys.stdin], "line"
        # blank lines separate, they are not reviews: skipped and counted, as --input skips empty rows
        numbers = [n for n, t in enumerate(lines, 1) if t.strip()]
        texts = [lines[n - 1] for n in numbers]
        if not texts:
            raise UserError("standard input holds no text: give one review a line, or TEXT arguments")
        if len(texts) < len(lines):
            blank = [n for n, t in enumerate(lines, 1) if not t.strip()]
            print(f"skipped {len(blank)} blank line(s) of standard input (line {', '.join(map(str, blank[:10]))}"
                  f"{' and more' if len(blank) > 10 else ''}); --json outputs carry each review's line",
                  file=sys.stderr)
    kept, bad = [], []
    for n, t in zip(numbers, texts):
        problem = api.text_problem(t, decoded=True)
        if problem:  # bytes the shell passed that are not UTF-8, a lone surrogate, ...
            message = f"{where} {n} {problem}" + (" (standard input: one review a line)" if where == "line" else "")
            if not args.skip_bad_rows:
                raise UserError(message)
            bad.append(message)
            continue
        kept.append((n, t))
    if bad:
        print(f"skipped {len(bad)} bad text(s): " + "; ".join(bad[:10]) + (" and more" if len(bad) > 10 else ""),
              file=sys.stderr)
    if not kept:
        raise UserError("no text left to rate")
    loaded = api.load_model(args.model)
    preds = api.predict([t for _, t in kept], model=loaded, long_text=args.long_text, coverage=args.coverage)
    for (n, text), p in zip(kept, preds):
        if args.json:
            # allow_nan=False: --json is JSON; a NaN would be refused in one line, never printed bare
            print(json.dumps({"text": text, **({"line": n} if where == "line" else {}), **p.to_dict()}, allow_nan=False))
        else:
            _print_prediction(text, p, loaded.config.ratings)
    return 0


def _coverage(value: str) -> float:
    try:
        c = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a coverage between 0 and 1, got {value!r}") from None
    if not 0 < c < 1:
        raise argparse.ArgumentTypeError(f"expected a coverage between 0 and 1 (exclusive), got {value!r}")
    return c


def _default_text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_flags(parser, cls, prefix: str, command: str | None = None) -> None:
    """One flag per field of a settings dataclass (options.option): its type, choices (a Literal),
    default and help all read from the field, so nothing here restates a setting. The value lands in
    `prefix + field name`, None when the flag is not given (the dataclass's default then holds)."""
    import dataclasses
    import typing
    from reviewlstm.options import choices, hints, scalar
    types = hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", False) or meta.get("only") not in (None, command):
            continue
        tp, kwargs = scalar(types[f.name]), {}
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif meta["parse"] is not None:
            kwargs["type"] = _parsed(meta["parse"])
        elif choices(tp):
            kwargs["choices"] = choices(tp)
        elif typing.get_origin(tp) is list:
            kwargs["nargs"] = "+"
        elif tp in (int, float):
            kwargs["type"] = _positive(tp) if meta["positive"] else tp
        if "action" not in kwargs and "choices" not in kwargs:
            kwargs["metavar"] = meta["metavar"] or flag[2:].upper().replace("-", "_")
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = f" (default {_default_text(default)})" if meta["show_default"] else ""
        parser.add_argument(flag, dest=prefix + f.name, default=None, help=meta["help"] + shown, **kwargs)


def _parsed(parse):
    """A field's own parser as an argparse type: its ValueError becomes argparse's one-line error."""
    def run(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    run.__name__ = parse.__name__
    return run


def from_flags(args, cls, prefix: str) -> dict:
    """The fields whose flags were given: {field name: value}."""
    import dataclasses
    return {f.name: getattr(args, prefix + f.name) for f in dataclasses.fields(cls)
            if getattr(args, prefix + f.name, None) is not None}


def _train_args(t, command: str = "train") -> None:
    """The training settings, shared by train and distill (whose student they describe)."""
    from reviewlstm.training.config import TrainConfig
    t.add_argument("--config", help="a TOML or YAML file of training settings; flags override it")
    add_flags(t, TrainConfig, "cfg_", command)
    t.add_argument("--scale", help="rating scale as MIN-MAX (default 1-5)")
    t.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    t.add_argument("--resume", action="store_true", help="continue from --out/checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (the log lines stay)")
    _column_args(t)


def cmd_distill(args) -> int:
    from reviewlstm.distillation.distill import DistillConfig, distill
    student = _train_config(args)
    settings = from_flags(args, DistillConfig, "distill_")
    result = distill(DistillConfig(student=student, **settings), log=lambda line: print(line, file=sys.stderr, flush=True))
    if result.out is None:
        print(f"stopped after {settings['until']}: the teacher is in {result.teacher}"
              + (f", its labels in {result.transfer}" if result.transfer else "") + "; --resume goes on")
        return 0
    if result.student is None:  # --resume of a distillation already finished: said in the log
        print(f"distilled model already in {result.out}: nothing to do")
        return 0
    dev, held = result.student.dev_metrics, result.student.holdout_metrics
    print(f"distilled model written to {result.out} (teacher in {result.teacher}"
          + (f"; dev accuracy {dev['accuracy']:.1%}, MAE {dev['mae']:.3f}" if dev else "")
          + (f"; validation slice accuracy {held['accuracy']:.1%}, MAE {held['mae']:.3f}" if held else "")
          + "; " + ", ".join(f"{stage} {_duration(sec)}" for stage, sec in result.seconds.items()) + ")")
    return 0


def cmd_evaluate(args) -> int:
    import json
    from reviewlstm import api
    from reviewlstm.inference.metrics import format_report
    result = api.evaluate(args.file, model=args.model, fmt=args.format, columns=_columns(args),
                          skip_bad_rows=args.skip_bad_rows, confusion_png=args.confusion_png, long_text=args.long_text,
                          reliability_png=args.reliability_png, coverage=args.coverage)
    teacher = None
    if args.teacher:
        from reviewlstm.distillation.distill import evaluate_teacher
        teacher = evaluate_teacher(args.file, args.teacher, fmt=args.format, columns=_columns(args),
                                   skip_bad_rows=args.skip_bad_rows)
        teacher["model"] = str(args.teacher)
    if args.json:
        print(json.dumps({"model": result, "teacher": teacher} if teacher else result))
    elif teacher:
        from reviewlstm.inference.metrics import format_side_by_side
        print(format_side_by_side({"model": result, "teacher": teacher}))
    else:
        print(format_report(result))
        if result.get("bad_rows"):
            print(result["bad_rows"])
        if args.confusion_png:
            print(f"confusion matrix drawn in {args.confusion_png}")
        if args.reliability_png:
            print(f"reliability diagram drawn in {args.reliability_png}")
        if result.get("rating_sets"):
            r = result["rating_sets"]
            print(f"rating sets at {r['target']:.0%} coverage (calibrated on {r['calibrated_on']}): {r['reached']:.1%} of "
                  f"these reviews' ratings inside, {r['mean_size']:.2f} ratings a set on average")
    floor = result.get("majority")
    if floor and result["accuracy"] <= floor["accuracy"]:
        print(f"reviewlstm: warning: the model is no more accurate on {args.file} than always {floor['rating']} "
              f"({result['accuracy']:.1%} against {floor['accuracy']:.1%}): a model trained on reviews like these "
              "(reviewlstm train) may do better", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from reviewlstm import api
    from reviewlstm.inference.onnx_export import describe
    path = api.export(args.out, model=args.model, format=args.format)
    print(f"exported {describe(path)}")
    return 0


def cmd_calibrate(args) -> int:
    import json
    from reviewlstm import api
    r = api.calibrate(args.file, args.out, model=args.model, fmt=args.format, columns=_columns(args),
                      skip_bad_rows=args.skip_bad_rows)
    if args.json:
        print(json.dumps(r))
        return 0
    b, a = r["dev_before"], r["dev_after"]
    print(f"temperature {r['temperature']:g} fitted on {r['fitted_on']}: ECE {b['ece']:.1%} -> {a['ece']:.1%}, "
          f"Brier {b['brier']:.3f} -> {a['brier']:.3f}, NLL {b['nll']:.3f} -> {a['nll']:.3f} (no rating moves); "
          f"calibrated model written to {r['out']}")
    print(f"rating sets (--coverage) refitted on the same {r['fitted_on']}")
    return 0


def _train_config(args):
    from reviewlstm.training.config import TrainConfig
    overrides = from_flags(args, TrainConfig, "cfg_")
    overrides.update({k: v for k, v in {"format": args.format, "text_column": args.text_column,
                                         "rating_column": args.rating_column}.items() if v is not None})
    if overrides.get("init_from") == "none":
        overrides["init_from"] = None
    for flag, name in (("skip_bad_rows", "skip_bad_rows"), ("resume", "resume"), ("overwrite", "overwrite")):
        if getattr(args, flag):
            overrides[name] = True
    if args.no_progress:
        overrides["progress"] = False
    if args.scale:
        try:
            lo, hi = (int(x) for x in args.scale.split("-"))
        except ValueError:
            raise UserError(f"--scale must look like 1-5, got {args.scale!r}") from None
        if hi <= lo:
            raise UserError(f"--scale {args.scale}: the lowest rating comes first and the highest must be above it (e.g. 1-5)")
        overrides["scale_min"], overrides["scale_max"] = lo, hi
    cfg = TrainConfig.from_file(args.config, **overrides) if args.config else TrainConfig(**overrides)
    if not cfg.out or cfg.out == "model" and "out" not in overrides and not args.config:
        raise UserError("--out DIR is required: where to write the model")
    return cfg


def cmd_train(args) -> int:
    from reviewlstm import api
    cfg = _train_config(args)
    result = api.train(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun: rank 0 reports
        return 0
    dev = result.dev_metrics
    held = result.holdout_metrics
    print(f"model written to {result.out} (best epoch {result.best_epoch}"
          + (f", dev accuracy {dev['accuracy']:.1%}, MAE {dev['mae']:.3f}" if dev else "")
          + (f", validation slice accuracy {held['accuracy']:.1%}, MAE {held['mae']:.3f}" if held else "")
          + f", {result.seconds:.0f}s)")
    return 0


def _colored(tokens, contributions) -> str:
    """Words on a green (up) / red (down) background scaled by contribution; plain numbers without a terminal."""
    top = max((abs(c) for c in contributions), default=1.0) or 1.0
    if not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
        return " ".join(f"{t}({c:+.2f})" for t, c in zip(tokens, contributions))
    greens, reds = (22, 28, 34, 40, 46), (52, 88, 124, 160, 196)
    out = []
    for t, c in zip(tokens, contributions):
        level = min(int(abs(c) / top * 5), 4)
        if abs(c) / top < 0.1:
            out.append(t)
        else:
            out.append(f"\033[48;5;{(greens if c > 0 else reds)[level]}m\033[97m{t}\033[0m")
    return " ".join(out)


def _moved(tokens: list[str], contributions: list[float], sign: int, k: int = 5) -> str:
    """The k words that moved the rating most in one direction: each word once (its occurrences summed,
    counted when more than one), none that rounds to 0.00."""
    total: dict[str, float] = {}
    count: dict[str, int] = {}
    for t, c in zip(tokens, contributions):
        total[t] = total.get(t, 0.0) + c
        count[t] = count.get(t, 0) + 1
    ranked = sorted((c * sign, t) for t, c in total.items() if round(c * sign, 2) > 0)[::-1][:k]
    return ", ".join(f"{t}{f' ×{count[t]}' if count[t] > 1 else ''} {c * sign:+.2f}" for c, t in ranked) or "none"


def cmd_explain(args) -> int:
    import json
    from tqdm import tqdm
    from reviewlstm import api
    from reviewlstm.apps.html import explanation_page
    api.warm_up(build=False)  # one text: never worth a build
    problem = api.text_problem(args.text)
    if problem:
        raise UserError(f"TEXT {problem}")
    loaded = api.load_model(args.model)
    # a pass is one read: the whole text, or one sentence of a long one (the bar never says "1/1 sentence" of two)
    bar = tqdm(total=None, unit="pass", desc="explaining", file=sys.stderr, leave=False,
               disable=None if not args.json else True)

    def on_piece(done, total):
        bar.total = total
        bar.update(done - bar.n)
    try:
        e = api.explain(args.text, model=loaded, method=args.method, max_chars=args.max_chars or None,
                        on_piece=on_piece)
    finally:
        bar.close()
    whole = api.predict(args.text, model=loaded) if e.explained_chars < e.text_chars else None
    if args.html:
        from pathlib import Path
        Path(args.html).write_text(explanation_page(e, whole), encoding="utf-8")
    if args.json:
        print(json.dumps({**e.to_dict(), "prediction": whole.to_dict() if whole else None}, allow_nan=False))
        return 0
    ratings = loaded.config.ratings
    p = whole or e
    stars = STARS[:p.rating - ratings[0] + 1] + "☆" * (ratings[-1] - p.rating)
    print(f"{stars}  {p.rating}  expected {p.expected_rating:.2f}  "
          + "  ".join(f"{r}:{q:.2f}" for r, q in zip(ratings, p.probabilities)))
    if whole:
        print(f"note: the text has {e.text_chars:,} characters; the first {e.explained_chars:,} are explained "
              f"below (rated {e.rating} there; --max-chars N explains more, at about 40 passes over it)")
    # the words that moved the rating most come first; the whole text, colored, after
    up, down = _moved(e.tokens, e.contributions, +1), _moved(e.tokens, e.contributions, -1)
    print(f"pushed up: {up}")
    print(f"pushed down: {down}  ({e.method.replace('_', ' ')}, stars of expected rating)")
    if len(e.tokens) <= args.show_words:
        print(_colored(e.tokens, e.contributions))
    else:
        print(f"({len(e.tokens):,} words: --json or --html shows every word's contribution)")
    if e.read_as == "sentences":
        print(f"note: read sentence by sentence ({len(e.sentences)} sentences, averaged by length), as predict does "
              f"for texts over {loaded.config.long_threshold} tokens")
    if e.truncated:
        print(f"note: a piece longer than {e.max_length} tokens was cut there (the prediction's rule)")
    if e.ngram_share:
        print(f"note: {e.ngram_share:.0%} of this rating is the model's n-gram path's (TF-IDF 1-2-grams + logistic "
              "regression); the contributions are mixed at the same share, the gates are the recurrent path's")
    if args.html:
        print(f"page written to {args.html}")
    return 0


def cmd_serve(args) -> int:
    from reviewlstm.apps.service import Limits, serve
    if isinstance(args.model, (str, os.PathLike)):
        from reviewlstm import api
        api.load_model(args.model)  # a bad --model fails here, as one line, before the server starts
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"reviewlstm serve: warning: listening on {args.host}: the service has no authentication, and "
              "anyone who can reach this machine can use it", file=sys.stderr)
    from dataclasses import fields
    where = f"[{args.host}]" if ":" in args.host else args.host
    print(f"reviewlstm serve: the page at http://{where}:{args.port}/, the API's reference at "
          f"http://{where}:{args.port}/docs (ready once /ready says so)", file=sys.stderr, flush=True)
    serve(args.model, host=args.host, port=args.port, header_timeout=args.header_timeout,
          limits=Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)}))
    return 0


def cmd_download(args) -> int:
    from reviewlstm.io.data import SST5_URL, download_sst5
    path = download_sst5(args.cache, url=args.url or SST5_URL)
    print(f"SST-5 train, dev and test trees in {path}")
    return 0


def cmd_pretrain(args) -> int:
    from reviewlstm import api
    settings = from_flags(args, api.PretrainConfig, "pre_")
    if args.no_progress:
        settings["progress"] = False
    result = api.pretrain(api.PretrainConfig(**settings), log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"language model written to {result.out} ({result.tokens:,} tokens, {result.steps:,} steps, held-out "
          f"perplexity {result.perplexity['forward']:.1f} forward / {result.perplexity['backward']:.1f} backward, "
          f"{_duration(result.seconds)}): train --init-from {result.out} starts from it")
    return 0


def cmd_gradients(args) -> int:
    from reviewlstm.training.gradients import StudyConfig, report, run_study
    cfg = StudyConfig(cells=args.cells, lengths=args.lengths, gradient_length=args.gradient_length,
                      steps=args.steps, hidden=args.hidden, lr=args.lr, seed=args.seed)
    print(f"adding problem, cells {', '.join(cfg.cells)}, lengths {', '.join(map(str, cfg.lengths))}, "
          f"at most {cfg.steps} steps each", flush=True)
    result = run_study(cfg, args.out, log=lambda line: print(line, flush=True))
    print(report(result))
    print(f"wrote {args.out}/gradients.json and {args.out}/gradients.png ({result['seconds']:.0f}s)")
    return 0


def cmd_build_kernel(args) -> int:
    from reviewlstm import api
    kernel = api.warm_up()
    if not kernel.ready:
        print(f"fast LSTM kernel: {kernel.status}")
        return 1
    # say whether this run compiled it or found it built: "compiled" for a cached build misleads
    print(f"fast LSTM kernel: {'compiled now' if kernel.built_now else 'already built'}: {kernel.status}")
    return 0


def _duration(seconds: float) -> str:
    """12 s, 3 min 05 s, 1 h 02 min: a stage's time as a person reads it."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class UserError(Exception):
    """A problem with what the user gave us: printed as one line, exit code 2."""


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so every `finally` runs: temporary outputs are removed, workers stopped
    raise KeyboardInterrupt


def _runtime(args) -> None:
    """--threads and --device of the commands that run a model: the thread count set before anything
    runs; a model on another device loaded here, so the command's every call uses it."""
    threads, device = getattr(args, "threads", None), getattr(args, "device", "cpu")
    if threads and getattr(args, "func", None) is not cmd_train and hasattr(args, "model"):
        import torch
        torch.set_num_threads(threads)
    if hasattr(args, "model") and device != "cpu" and getattr(args, "func", None) is not cmd_train:
        from reviewlstm import api
        args.model = api.load_model(args.model, device=device)


def main(argv: list[str] | None = None) -> int:
    import signal
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:  # the command line, not a caller's process
        signal.signal(signal.SIGTERM, _terminate)
    try:
        _runtime(args)
        code = args.func(args)
        sys.stdout.flush()  # inside the try: a reader that went away (| head) is met here, not at exit
        return code
    except BrokenPipeError:
        # the reader of our output stopped reading (`| head -1`): not an error of ours; stdout goes to
        # /dev/null so the interpreter's own flush at exit does not complain again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE
    except (UserError, ValueError, OSError, RuntimeError) as e:
        from reviewlstm.settings import debug
        if debug():
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, OSError) and e.filename and str(e.filename) not in message:
            message = f"{e.filename}: {message}"
        print(f"reviewlstm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"reviewlstm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
