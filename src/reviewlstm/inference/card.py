"""The model card: MODEL_CARD.md, written with every model from its config, its training settings and
its metadata (data, scores, calibration, the n-gram path, distillation, warnings first)."""
from __future__ import annotations

from pathlib import Path

from reviewlstm.nn.config import ModelConfig


STAGES = {"teacher": "teacher fine-tuning", "augment": "augmenting", "label": "labelling",
          "augment_and_label": "augmenting and labelling", "student": "student"}


def _sst_file(path, fmt) -> bool:
    """Whether the training file was SST trees, the only kind with phrases (phrases=True is the
    default, and means nothing for a CSV)."""
    if fmt:
        return fmt == "sst"
    from reviewlstm.io.data import DataError, detect_format
    try:
        return bool(path) and detect_format(Path(path)) == "sst"
    except DataError:
        return False


def model_card(cfg: ModelConfig, train: dict, meta: dict) -> str:
    dev = meta.get("dev_metrics") or {}
    data = meta.get("train_data", {})
    lines = [
        "# reviewlstm model card", "",
        f"A {'bidirectional ' if cfg.bidirectional else ''}{cfg.cell} ({cfg.num_layers} layer(s), hidden {cfg.hidden}, "
        f"{cfg.pooling} pooling) over {cfg.embed_dim}-d {train.get('embeddings', '?')} embeddings, "
        f"rating {cfg.scale_min}..{cfg.scale_max}" + (
            f" ({', '.join(f'{r} {name}' for r, name in zip(cfg.ratings, cfg.label_names))})." if cfg.labels else "."),
        *([""] + [f"**Warning:** {w}" for w in meta["warnings"]] if meta.get("warnings") else []),
        "",
        "## Trained on", "",
        f"- {data.get('path', '?')} (sha256 {data.get('sha256', '?')[:16]}…), {data.get('examples', '?')} examples"
        f"{' (every labelled phrase)' if train.get('phrases') and _sst_file(data.get('path'), train.get('format')) else ''}",
        f"- {train.get('epochs', '?')} epochs at most, seed {train.get('seed', '?')}, best epoch {meta.get('best_epoch', '?')}",
        "", "## Scores (dev)", "",
    ]
    majority = meta.get("majority_rating")

    def scores(m: dict) -> str:
        return (f"accuracy {m['accuracy']:.1%}, macro-F1 {m['macro_f1']:.3f}, MAE {m['mae']:.3f} stars, "
                f"within ±1 star {m['within_one']:.1%}, QWK {m['qwk']:.3f}")

    def section(m: dict | None, about: str, baseline: dict | None, missing: str) -> list[str]:
        if not m:
            return [missing]
        out = [f"- {m.get('n')} {about}", f"- {scores(m)}"]
        return out + ([f"- always {majority} stars would score: {scores(baseline)}"] if baseline else [])

    lines += section(dev, f"examples from {(meta.get('dev_data') or {}).get('path', '?')} (the checkpoint was chosen "
                          "on them, so this figure is optimistic by the choosing)",
                     meta.get("dev_majority_metrics"), "- no dev set was given")
    lines += ["", "## Scores (validation slice, untouched)", ""]
    lines += section(meta.get("holdout_metrics"), "training reviews set aside by a hash of their text before "
                     "training, never used for any choice, scored once on the kept model",
                     meta.get("holdout_majority_metrics"),
                     "- no validation slice was set aside (holdout 0)" if "holdout_data" in meta else "- not scored yet")
    if meta.get("calibration"):
        c = meta["calibration"]
        b, a = c.get("dev_before") or {}, c.get("dev_after") or {}
        lines += ["", "## Calibration", "",
                  f"- softmax temperature {c.get('temperature')}, fitted on {c.get('fitted_on', 'dev')} by the "
                  "negative log-likelihood: the probabilities are divided down to the frequencies they claim, "
                  "no rating moves",
                  f"- on dev: expected calibration error {b.get('ece', 0):.1%} -> {a.get('ece', 0):.1%}, Brier "
                  f"{b.get('brier', 0):.3f} -> {a.get('brier', 0):.3f}, NLL {b.get('nll', 0):.3f} -> {a.get('nll', 0):.3f}"]
        held = meta.get("holdout_metrics") or {}
        if "ece" in held:
            lines.append(f"- on the untouched validation slice, calibrated: ECE {held['ece']:.1%}, Brier {held['brier']:.3f}")
    if meta.get("ngram_path"):
        g = meta["ngram_path"]
        lines += ["", "## The n-gram path", ""]
        if g.get("kept"):
            r, m = g["dev_recurrent"], g["dev_mixed"]
            lines += [f"- TF-IDF word 1-2-grams + logistic regression over {g['features']:,} n-grams of the training "
                      f"reviews, beside the recurrent path: each rating's probability is {g['share']:g} x the recurrent "
                      f"path's + {1 - g['share']:g} x the n-gram path's, the share chosen on {g.get('chosen_on', 'dev')}"
                      + (f" by {g['rule']}" if g.get("rule") else ""),
                      f"- there: the recurrent path alone accuracy {r['accuracy']:.1%}, MAE {r['mae']:.3f}; "
                      + (f"the n-gram path alone {g['dev_ngrams']['accuracy']:.1%}, MAE {g['dev_ngrams']['mae']:.3f}; "
                         if g.get("dev_ngrams") else "") + f"mixed {m['accuracy']:.1%}, MAE {m['mae']:.3f}"]
            if g.get("slice_recurrent"):
                s = g["slice_recurrent"]
                lines.append(f"- on the untouched validation slice: the recurrent path alone accuracy {s['accuracy']:.1%}, "
                             f"MAE {s['mae']:.3f} (mixed: the slice's scores above)")
        else:
            lines.append(f"- not kept: {g.get('why') or (g.get('chosen_on', 'dev') + ' was best with the recurrent path alone')}")
    if meta.get("reading"):
        lines += ["", "## Reading", "", f"- {meta['reading']}"]
    if meta.get("distillation"):
        d = meta["distillation"]
        trained = d.get("teacher_trained") or {}
        lines += ["", "## Distilled from a teacher", "",
                  f"- teacher: {d.get('teacher_source')} fine-tuned on {trained.get('examples', '?')} training examples "
                  f"({trained.get('epochs', '?')} epoch(s), lr {trained.get('lr', '?')}, at most "
                  f"{d.get('teacher_max_length')} wordpieces, {d.get('teacher_pooling', 'mean')} pooling, "
                  f"{d.get('teacher_head', 'linear')} head; "
                  f"kept in {d.get('teacher')})"]
        if d.get("teacher_dev_metrics"):
            lines.append(f"- the teacher on dev: {scores(d['teacher_dev_metrics'])}")
        ensemble = (d.get("teacher_check") or {}).get("ensemble") or {}
        weight = ensemble.get("weight", 1.0)
        if weight < 1:
            lines.append(f"- the labels are the ensemble teacher's: {weight:g} x the teacher's distributions + "
                         f"{1 - weight:g} x TF-IDF + LR's, the weight chosen on dev (there: accuracy "
                         f"{ensemble['accuracy']:.1%}, MAE {ensemble['mae']:.3f})")
        unrated = d.get("unrated_texts") or 0
        lines += [f"- trained on {d.get('labelled_texts')} training texts with the teacher's labels and the gold "
                  f"rating, {d.get('augmented_texts')} augmented texts (masking {d.get('mask_p')}, GloVe neighbours "
                  f"{d.get('replace_p')}, n-grams {d.get('ngram_p')})"
                  + (f" and {unrated} unrated texts from {', '.join(d.get('unlabeled_files') or [])}" if unrated else "")
                  + " with the teacher's labels alone",
                  f"- loss: {d.get('alpha')} x cross-entropy on the gold rating + {1 - d.get('alpha', 0):g} x "
                  f"T^2 x KL(teacher || student), T = {d.get('temperature')}",
                  "- time per stage: " + ", ".join(f"{STAGES.get(k, k)} {v:,.0f} s" for k, v in (d.get("seconds") or {}).items())
                  + " (the work itself, whichever run did it: a resumed or cached stage counts what it first cost)"]
    if meta.get("curves"):
        lines += ["", "## Training curves", "",
                  f"![training curves]({meta['curves']['png']})", "",
                  f"The loss, dev accuracy and MAE at every check, the kept checkpoint marked; the numbers are in "
                  f"[{meta['curves']['json']}]({meta['curves']['json']})."]
    lines += ["", "## Limits", "",
              "- Trained on one domain (the training file's); reviews of other things, other languages, sarcasm "
              "and very long texts read less well.",
              f"- Texts longer than {cfg.max_length} tokens are not read whole (see docs/your-own-reviews.md, 'Long reviews').",
              "- Words never seen in training or in the pretrained vectors read as <unk>.", ""]
    return "\n".join(lines)
