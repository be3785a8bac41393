"""Calibration and rating sets of a trained model, measured the way `train` makes them: the temperature
fitted on dev, the rating sets calibrated on the untouched validation slice.

    python bench/calibration.py --model DIR --train TRAIN --dev DEV [--phrases] [--coverage 0.8,0.9]
    python bench/calibration.py --data sst        # the bundled model on SST-5 (../shared/data/sst5)
    python bench/calibration.py --data amazon --model runs/amazon-default
    python bench/calibration.py --data sst --write src/reviewlstm/default_model   # how the bundled model was calibrated

The slice is the one `train` set aside from TRAIN (the same hash rule, `split_holdout`); nothing here
was chosen on it. Reported: ECE, Brier and NLL on dev and on the slice at temperature 1 and at the
fitted one (accuracy cannot move: the argmax is the same); then for each coverage the share of dev
reviews whose rating is inside their set and the sets' mean size, beside a fixed ±1 star around the
predicted rating (its coverage and size on the same reviews). --write DIR saves the model with both
(as `train` does at its end) to DIR.
"""
from __future__ import annotations

import argparse

import numpy as np

from reviewlstm import api
from reviewlstm.inference import calibration, conformal
from reviewlstm.io.data import read_examples
from reviewlstm.inference.predict import Predictor, read_distributions
from reviewlstm.training.examples import split_holdout

DATA = {"sst": ("../shared/data/sst5/train.txt", "../shared/data/sst5/dev.txt", None),
        "amazon": ("../shared/data/amazon-musical/train.csv", "../shared/data/amazon-musical/dev.csv", None)}


def pieces(loaded, examples):
    reader = Predictor(loaded)
    return [reader.piece_ids(e.text, e.tokens) for e in examples]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=sorted(DATA))
    ap.add_argument("--model", default=None)
    ap.add_argument("--train")
    ap.add_argument("--dev")
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--coverage", default="0.8,0.9")
    ap.add_argument("--write", metavar="DIR", help="save the model calibrated this way (temperature, rating sets) to DIR")
    args = ap.parse_args()
    train_path, dev_path = (args.train, args.dev) if not args.data else DATA[args.data][:2]
    loaded = api.load_model(args.model)
    cfg = loaded.config
    scale = (cfg.scale_min, cfg.scale_max)
    dev = list(read_examples(dev_path, scale=scale))
    _, held = split_holdout(list(read_examples(train_path, scale=scale)), args.holdout)
    truth = {name: np.asarray([e.rating - cfg.scale_min for e in ex]) for name, ex in (("dev", dev), ("slice", held))}
    ids = {"dev": pieces(loaded, dev), "slice": pieces(loaded, held)}
    raw = loaded.model.config.temperature
    loaded.model.config.temperature = 1.0
    t, _, _, _ = calibration.fit(loaded.model, ids["dev"], truth["dev"])
    print(f"model {loaded.path} (its own temperature {raw:g}); dev {dev_path} ({len(dev)}), slice of {train_path} "
          f"({len(held)}); temperature fitted on dev: {t:g}\n")
    print("| set | temperature | accuracy | ECE | Brier | NLL |")
    print("|---|---|---|---|---|---|")
    probs = {}
    for name in ("dev", "slice"):
        for temp in (1.0, t):
            loaded.model.config.temperature = temp
            p = read_distributions(loaded.model, ids[name])
            probs[name, temp] = p
            s = calibration.scores(p, truth[name])
            acc = float((p.argmax(1) == truth[name]).mean())
            print(f"| {name} | {temp:g} | {acc:.1%} | {s['ece']:.1%} | {s['brier']:.3f} | {s['nll']:.3f} |")
    kept = conformal.calibrate(probs["slice", t], truth["slice"], "the slice")
    print("\n| coverage asked | reached on dev | mean set size | fixed ±1 star: reached | its mean size |")
    print("|---|---|---|---|---|")
    p = probs["dev", t]
    best = p.argmax(1)
    k = p.shape[1]
    within = np.abs(best - truth["dev"]) <= 1
    width = np.mean([min(b + 1, k - 1) - max(b - 1, 0) + 1 for b in best])
    for c in (float(x) for x in args.coverage.split(",")):
        r = conformal.evaluate(p, truth["dev"], kept, c)
        print(f"| {c:.0%} | {r['reached']:.1%} | {r['mean_size']:.2f} | {within.mean():.1%} | {width:.2f} |")
    if args.write:
        import copy
        from reviewlstm.inference import artifact
        model = copy.deepcopy(loaded.model)
        model.config.temperature = t
        before, after = (calibration.scores(probs["dev", temp], truth["dev"]) for temp in (1.0, t))
        meta = {**loaded.metadata,
                "calibration": {"temperature": t, "fitted_on": f"dev ({len(dev)} reviews)", "dev_before": before,
                                "dev_after": after},
                "conformal": conformal.calibrate(probs["slice", t], truth["slice"],
                                                 f"the validation slice ({len(held)} reviews)")}
        if meta.get("holdout_metrics"):
            meta["holdout_metrics"] = {**meta["holdout_metrics"], **calibration.scores(probs["slice", t], truth["slice"])}
        artifact.save(args.write, model, loaded.vocab, loaded.train_config, meta)
        print(f"\ncalibrated model written to {args.write}")


if __name__ == "__main__":
    main()
