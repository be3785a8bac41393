"""The `reviewlstm` command line: parse, validate, call the library, print."""
from __future__ import annotations

import argparse
import sys


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"expected integers >= 2, got {text!r}")
    return values


def _cells(text: str) -> tuple[str, ...]:
    from .cells import CELLS
    cells = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in cells if c not in CELLS]
    if bad or not cells:
        raise argparse.ArgumentTypeError(f"unknown cell {bad[0] if bad else text!r}: expected some of {', '.join(CELLS)}")
    return cells


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="reviewlstm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"reviewlstm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("gradients", help="the vanishing-gradient study: RNN against LSTM on the adding problem",
                       description="Measure how far back the gradient reaches in each cell, at initialization and "
                                   "after training on the adding problem, and which cell solves it at which length. "
                                   "Writes gradients.json and gradients.png into --out.")
    g.add_argument("--out", required=True, help="directory for gradients.json and gradients.png")
    g.add_argument("--cells", type=_cells, default=("lstm", "classic-lstm", "rnn"), help="comma-separated (default: all three)")
    g.add_argument("--lengths", type=_int_list, default=(25, 100), help="sequence lengths to train on (default: 25,100)")
    g.add_argument("--gradient-length", type=_positive(int), default=200, help="length at which gradient norms are measured (default: 200)")
    g.add_argument("--steps", type=_positive(int), default=1500, help="training steps at most per cell and length (default: 1500)")
    g.add_argument("--hidden", type=_positive(int), default=32)
    g.add_argument("--lr", type=_positive(float), default=1e-2)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_gradients)
    return parser


def cmd_gradients(args) -> int:
    from .gradients import StudyConfig, report, run_study
    cfg = StudyConfig(cells=args.cells, lengths=args.lengths, gradient_length=args.gradient_length,
                      steps=args.steps, hidden=args.hidden, lr=args.lr, seed=args.seed)
    print(f"adding problem, cells {', '.join(cfg.cells)}, lengths {', '.join(map(str, cfg.lengths))}, "
          f"at most {cfg.steps} steps each", flush=True)
    result = run_study(cfg, args.out, log=lambda line: print(line, flush=True))
    print(report(result))
    print(f"wrote {args.out}/gradients.json and {args.out}/gradients.png ({result['seconds']:.0f}s)")
    return 0


class UserError(Exception):
    """A problem with what the user gave us: printed as one line, exit code 2."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UserError, ValueError, OSError) as e:
        print(f"reviewlstm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"reviewlstm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
