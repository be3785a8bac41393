"""The training recipe's mechanics: the untouched validation slice, and one reading rule from the
dev checks in training to predict and evaluate."""
import csv
import json
import random

import pytest

from support import run_cli, write_csv
from reviewlstm import api
from reviewlstm.io.data import read_examples
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.examples import split_holdout
from reviewlstm.training.train import train

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first

QUIET = dict(progress=False, embeddings="random", embed_dim=8, hidden=8)


def long_reviews(sst, n, seed):
    """Reviews of 4-8 SST sentences each (80+ tokens), rated by their sentences' rounded mean."""
    sentences = list(read_examples(sst / "train.txt"))
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        picked = rng.sample(sentences, rng.randint(4, 8))
        rows.append((" ".join(e.text for e in picked), round(sum(e.rating for e in picked) / len(picked))))
    return rows


def test_slice_is_a_tenth_by_hash_and_keeps_phrases_with_their_sentence(sst):
    examples = list(read_examples(sst / "train.txt", phrases=True))
    kept, held = split_holdout(examples, 0.1)
    lines = {e.line for e in examples}
    held_lines = {e.line for e in held}
    assert 0.06 < len(held_lines) / len(lines) < 0.14
    assert not held_lines & {e.line for e in kept}  # no phrase of a held-out sentence is trained on
    assert all(e.tokens == max((x for x in examples if x.line == e.line), key=lambda x: len(x.tokens)).tokens
               for e in held)  # the slice holds whole sentences
    again_kept, again_held = split_holdout(list(reversed(examples)), 0.1)
    assert {e.line for e in again_held} == held_lines  # order, seed and settings do not move it
    assert split_holdout(examples, 0.0) == (examples, [])


def test_the_slice_never_reaches_training_or_selection(sst, tmp_path):
    """Relabel every held-out review at random: the kept model is byte for byte the same, so neither
    the weights nor the checkpoint choice saw the slice; only the slice's own score moves."""
    rows = [(e.text, e.rating) for e in read_examples(sst / "train.txt")][:300]
    kept, held = split_holdout([type("E", (), {"text": t, "line": i, "tokens": None})() for i, (t, _) in
                                enumerate(rows)], 0.1)
    held_texts = {e.text for e in held}
    rng = random.Random(0)
    relabelled = [(t, rng.choice([r for r in range(1, 6) if r != y]) if t in held_texts else y) for t, y in rows]
    dev = write_csv(tmp_path / "dev.csv", [(e.text, e.rating) for e in read_examples(sst / "dev.txt")][:80])
    outs = []
    for name, data in (("a", rows), ("b", relabelled)):
        result = train(TrainConfig(train=str(write_csv(tmp_path / f"{name}.csv", data)), dev=str(dev),
                                   out=str(tmp_path / name), epochs=2, seed=0, **QUIET), log=lambda s: None)
        outs.append(result)
    a, b = outs
    assert (a.out / "model.safetensors").read_bytes() == (b.out / "model.safetensors").read_bytes()
    assert a.best_epoch == b.best_epoch and a.dev_metrics == b.dev_metrics
    assert a.holdout_metrics["n"] == b.holdout_metrics["n"] == len(held)
    assert a.holdout_metrics["accuracy"] != b.holdout_metrics["accuracy"]


def test_long_reviews_are_read_whole_and_dev_checks_read_as_evaluate(sst, tmp_path):
    train_csv = write_csv(tmp_path / "train.csv", long_reviews(sst, 120, 0))
    dev_csv = write_csv(tmp_path / "dev.csv", long_reviews(sst, 40, 1))
    logs = []
    result = train(TrainConfig(train=str(train_csv), dev=str(dev_csv), out=str(tmp_path / "m"), epochs=1, seed=0,
                               **QUIET), log=logs.append)
    loaded = api.load_model(result.out)
    assert loaded.config.long_text == "whole" and loaded.config.pooling == "mean"
    assert any("are read whole (picked: " in line for line in logs)
    # long reviews keep the shared dropout on their word vectors (event_dropout "auto")
    assert loaded.config.event_dropout is None and loaded.model.event_dropout.p == loaded.config.dropout
    assert any("dropout on the word vectors 0.3 (picked for whole reading)" in line for line in logs)
    # evaluate with no reading given reads as the model was trained, and so as its dev checks did
    scores = api.evaluate(dev_csv, model=loaded)
    assert scores["accuracy"] == pytest.approx(result.dev_metrics["accuracy"], abs=1e-12)
    assert scores["mae"] == pytest.approx(result.dev_metrics["mae"], abs=1e-6)
    assert api.predict("a fine film . " * 30, model=loaded).read_as == "whole"


def test_sentence_models_read_long_texts_sentence_by_sentence(sst, tmp_path):
    dev_csv = write_csv(tmp_path / "dev.csv", long_reviews(sst, 30, 2))
    result = train(TrainConfig(train=str(sst / "train.txt"), dev=str(dev_csv), out=str(tmp_path / "m"), epochs=1,
                               phrases=False, max_examples=200, seed=0, **QUIET), log=lambda s: None)
    loaded = api.load_model(result.out)
    assert loaded.config.long_text == "sentences" and loaded.config.pooling == "final"
    assert loaded.config.event_dropout == 0.5  # event_dropout "auto": SENTENCE_EVENT_DROPOUT for sentences
    from reviewlstm.training.recipe import reading_rule
    examples = [type("E", (), {"line": i})() for i in range(3)]
    assert reading_rule(TrainConfig(train="x", dropout=0), examples, [["a"]] * 3)[2] is None  # no dropout asked
    config = json.loads((result.out / "config.json").read_text())
    assert config["model"]["long_text"] == "sentences" and config["model"]["long_threshold"] == 60
    scores = api.evaluate(dev_csv, model=loaded)
    assert scores["accuracy"] == pytest.approx(result.dev_metrics["accuracy"], abs=1e-12)
    assert api.predict("a fine film . " * 30, model=loaded).read_as == "sentences"
    assert api.predict("a fine film . " * 30, model=loaded, long_text="whole").read_as == "whole"


def test_init_from_a_trained_model_copies_its_layer_head_and_shared_words(tiny_model, sst, tmp_path):
    logs = []
    # a learning rate too small to move anything: what is left is what was copied
    result = train(TrainConfig(train=str(sst / "train.txt"), out=str(tmp_path / "m"), phrases=False, max_examples=100,
                               epochs=1, hidden=16, seed=5, lr=1e-12, init_from=str(tiny_model), progress=False),
                   log=logs.append)
    donor, child = api.load_model(tiny_model), api.load_model(result.out)
    theirs, mine = donor.model.state_dict(), child.model.state_dict()
    for name in theirs:
        if not name.startswith("embedding"):
            assert (mine[name] - theirs[name]).abs().max() < 1e-6, name
    shared = [t for t in child.vocab.itos[2:] if t in donor.vocab.stoi][:50]
    for t in shared:
        a = child.model.embedding.weight[child.vocab.stoi[t]]
        b = donor.model.embedding.weight[donor.vocab.stoi[t]]
        assert (a - b).abs().max() < 1e-6, t
    assert any(line.startswith(f"started from {tiny_model}") for line in logs)
    with pytest.raises(ValueError, match="--init-from .*: its layer and head do not fit this model"):
        train(TrainConfig(train=str(sst / "train.txt"), out=str(tmp_path / "n"), phrases=False, max_examples=50,
                          epochs=1, hidden=12, init_from=str(tiny_model), progress=False), log=lambda s: None)
    # on another rating scale: the layer and the shared words, and a new head of the new scale's size
    logs.clear()
    ten = train(TrainConfig(train=str(write_csv(tmp_path / "ten.csv", long_reviews(sst, 20, 3))), out=str(tmp_path / "t"),
                            scale_min=1, scale_max=10, epochs=1, hidden=16, seed=5, lr=1e-12, holdout=0,
                            extra_glove_words=0, init_from=str(tiny_model), progress=False), log=logs.append)
    child = api.load_model(ten.out)
    for name in theirs:
        if name.startswith("rnn."):
            assert (child.model.state_dict()[name] - theirs[name]).abs().max() < 1e-6, name
    assert child.model.head.weight.shape[0] == 10
    assert any("its layer (a new head: it rates 1-5)" in line for line in logs), logs


def test_auto_starts_long_review_models_from_the_shipped_start_model(sst, tmp_path):
    train_csv = write_csv(tmp_path / "train.csv", long_reviews(sst, 40, 3))
    logs = []
    train(TrainConfig(train=str(train_csv), out=str(tmp_path / "m"), epochs=1, seed=0, progress=False,
                      extra_glove_words=0), log=logs.append)
    started = [line for line in logs if line.startswith(f"started from {api.start_model_path()}:")]
    assert started and "(picked: reviews read whole)" in started[0], logs
    # on another scale too: the start model's layer and words, a new head (measured on IMDB's 1-10)
    ten = write_csv(tmp_path / "ten.csv", [(t, 2 * r) for t, r in long_reviews(sst, 40, 4)])
    logs.clear()
    child = train(TrainConfig(train=str(ten), out=str(tmp_path / "ten"), epochs=1, seed=0, progress=False,
                              extra_glove_words=0, scale_min=1, scale_max=10), log=logs.append)
    started = [line for line in logs if line.startswith(f"started from {api.start_model_path()}:")]
    assert started and "a new head" in started[0] and "(picked: reviews read whole)" in started[0], logs
    assert api.load_model(child.out).model.head.weight.shape[0] == 10
    start = api.load_model(api.start_model_path())  # it ships whole, and is not the model predict uses
    assert start.path != api.load_model().path and start.config.cell == "lstm"
    assert "the start for long reviews" in (start.path / "MODEL_CARD.md").read_text()
    logs.clear()  # the same shape, but SST sentences: from scratch (the SST-5 models saw SST)
    train(TrainConfig(train=str(sst / "train.txt"), out=str(tmp_path / "s"), epochs=1, phrases=False, max_examples=40,
                      progress=False, extra_glove_words=0), log=logs.append)
    assert not any(line.startswith("started from /") for line in logs)
    assert any(line.startswith("started from scratch: GloVe 6B 50d word vectors") for line in logs), logs


def test_average_weights_is_the_mean_and_average_best_keeps_it(sst, tmp_path):
    import torch
    from reviewlstm.training.finish import average_weights
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor([3], dtype=torch.int64)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor([5], dtype=torch.int64)}
    c = {"w": torch.tensor([2.0, 1.0]), "n": torch.tensor([4], dtype=torch.int64)}
    mean = average_weights([a, b, c])
    assert torch.equal(mean["w"], torch.tensor([2.0, 3.0])) and mean["n"].item() == 4 and mean["n"].dtype == torch.int64
    dev = write_csv(tmp_path / "dev.csv", [(e.text, e.rating) for e in read_examples(sst / "dev.txt")][:80])
    result = train(TrainConfig(train=str(sst / "train.txt"), dev=str(dev), out=str(tmp_path / "m"), phrases=False,
                               max_examples=200, epochs=2, average_best=3, seed=0, **QUIET), log=lambda s: None)
    meta = json.loads((result.out / "metadata.json").read_text())
    assert meta["best_epoch"] == "average of the 3 best dev checks"
    assert "dev_metrics" in meta["single_best"] and "holdout_metrics" in meta["single_best"]
    # the kept (averaged) model is what evaluate scores
    assert api.evaluate(dev, model=result.out)["accuracy"] == pytest.approx(meta["dev_metrics"]["accuracy"], abs=1e-12)


def test_a_slice_that_takes_everything_is_one_line(tmp_path):
    data = write_csv(tmp_path / "t.csv", [("great", 5), ("bad", 1)])
    proc = run_cli("train", "--train", data, "--out", tmp_path / "m", "--holdout", 0.99, "--no-progress")
    message = "t.csv: no training examples left after setting 2 aside as the validation slice (holdout 0.99)"
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    bad = run_cli("train", "--train", data, "--out", tmp_path / "m", "--average-best", -3)
    assert bad.returncode == 2 and "average_best must be >= 0, got -3" in bad.stderr


def test_event_dropout_is_its_own_setting_saved_with_the_model(sst, tmp_path):
    import torch

    from reviewlstm.nn.model import ModelConfig, RatingModel
    out = tmp_path / "m"
    train(TrainConfig(train=str(sst / "train.txt"), dev=str(sst / "dev.txt"), out=str(out), phrases=False,
                      epochs=1, hidden=8, max_examples=60, dropout=0.4, event_dropout=0.0, progress=False),
          log=lambda s: None)
    loaded = api.load_model(out)
    assert loaded.config.event_dropout == 0.0 and loaded.config.dropout == 0.4
    # None (and configs saved before the setting) means the events share the one dropout
    model = RatingModel(ModelConfig(vocab_size=10, hidden=4, dropout=0.25)).train()
    assert model.event_dropout.p == 0.25
    events = torch.ones(2, 3, 50)
    assert torch.equal(RatingModel(ModelConfig(vocab_size=10, hidden=4, event_dropout=0.0)).train()
                       .event_dropout(events), events)
    with pytest.raises(ValueError, match="event_dropout must be in"):
        TrainConfig(train="x", event_dropout=1.5).validate()
    with pytest.raises(ValueError, match="event_dropout must be in"):
        TrainConfig(train="x", event_dropout="half").validate()
    TrainConfig(train="x", event_dropout="auto").validate()
    TrainConfig(train="x", event_dropout=None).validate()


def test_train_says_what_it_started_from_and_when_the_epoch_limit_stopped_it(sst, tmp_path):
    """From scratch is said as plainly as a start model is; a run whose last dev check was its best,
    ended by --epochs rather than by patience, says so and how to go on."""
    logs = []
    train(TrainConfig(train=str(sst / "train.txt"), dev=str(sst / "dev.txt"), out=str(tmp_path / "m"), phrases=False,
                      max_examples=80, epochs=1, evals_per_epoch=1, init_from=None, **QUIET), log=logs.append)
    assert any(line.startswith("started from scratch: random word vectors, a new layer and head") for line in logs), logs
    limit = [line for line in logs if line.startswith("stopped at the epoch limit (1) with dev still improving")]
    assert limit and "--resume --epochs 2" in limit[0], logs


def test_ratings_in_words_are_declared_in_order_kept_and_shown_back(sst, tmp_path):
    """A rating column of words: refused with a hint until their order is declared (--ratings), then
    rated 1..K, the words kept in the model and shown back by predict, its JSON and file scoring;
    evaluate reads them the same way; a word not declared is a bad row naming it."""
    names = {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}
    rows = [(e.text, names[e.rating].upper() if i % 7 == 0 else names[e.rating])
            for i, e in enumerate(read_examples(sst / "train.txt"))][:200]
    data = write_csv(tmp_path / "words.csv", rows)
    plain = run_cli("train", "--train", data, "--out", tmp_path / "x", "--epochs", 1, "--no-progress")
    assert plain.returncode == 2 and "--ratings negative,neutral,positive" in plain.stderr
    out = tmp_path / "m"
    proc = run_cli("train", "--train", data, "--dev", data, "--out", out, "--epochs", 1, "--hidden", 8,
                   "--embeddings", "random", "--ratings", "negative, neutral, positive", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    loaded = api.load_model(out)
    assert loaded.config.ratings == [1, 2, 3] and loaded.config.label_names == ["negative", "neutral", "positive"]
    assert "rating 1..3 (1 negative, 2 neutral, 3 positive)" in (out / "MODEL_CARD.md").read_text()
    p = api.predict("a fine film", model=out)
    assert p.label == ["negative", "neutral", "positive"][p.rating - 1]
    one = json.loads(run_cli("predict", "--model", out, "a fine film", "--json").stdout)
    assert one["label"] == p.label and [o["label"] for o in one["probabilities"]] == ["negative", "neutral", "positive"]
    assert f" {p.rating} {p.label}" in run_cli("predict", "--model", out, "a fine film").stdout
    scored = tmp_path / "scored.csv"
    assert run_cli("predict", "--model", out, "--input", data, "--output", scored, "--no-progress").returncode == 0
    first = next(csv.DictReader(open(scored)))
    assert first["predicted_label"] == ["negative", "neutral", "positive"][int(first["predicted_rating"]) - 1]
    assert api.evaluate(data, model=out)["n"] == 200
    odd = write_csv(tmp_path / "odd.csv", rows[:5] + [("a strange one", "mixed")])
    bad = run_cli("evaluate", odd, "--model", out)
    assert bad.returncode == 2 and "odd.csv:7" in bad.stderr and "not one of the declared ratings" in bad.stderr


def test_the_ngram_share_and_temperature_are_chosen_on_half_of_dev_no_check_read(sst, tmp_path):
    """--mixture-on held-half: dev halved by a hash of its texts; relabel the held half at random and
    the recurrent path is the same to the byte (no dev check read that half), while the n-gram share and
    the temperature, chosen there, are recorded as chosen there; by default all of dev chooses both."""
    from safetensors.torch import load_file
    rows = [(e.text, e.rating) for e in read_examples(sst / "train.txt")][:300]
    train_csv = write_csv(tmp_path / "train.csv", rows)
    dev_rows = [(e.text, e.rating) for e in read_examples(sst / "dev.txt")]
    assert len(dev_rows) >= 200  # the fewest dev reviews that are halved
    mixing, checked = split_holdout([type("E", (), {"text": t, "line": i, "tokens": None})() for i, (t, _) in
                                     enumerate(dev_rows)], 0.5)
    held = {e.text for e in mixing}
    rng = random.Random(1)
    relabelled = [(t, rng.choice([r for r in range(1, 6) if r != y]) if t in held else y) for t, y in dev_rows]
    runs = {}
    for name, data in (("a", dev_rows), ("b", relabelled)):
        dev = write_csv(tmp_path / f"dev-{name}.csv", data)
        runs[name] = train(TrainConfig(train=str(train_csv), dev=str(dev), out=str(tmp_path / name), epochs=2, seed=0,
                                       mixture_on="held-half", **QUIET), log=lambda s: None)
    recurrent = [{k: v for k, v in load_file(str(runs[n].out / "model.safetensors")).items()
                  if not k.startswith("ngrams")} for n in "ab"]
    assert recurrent[0].keys() == recurrent[1].keys() and all((recurrent[0][k] == recurrent[1][k]).all()
                                                              for k in recurrent[0])
    assert [(h["dev_accuracy"], h["dev_nll"]) for h in runs["a"].history] == \
        [(h["dev_accuracy"], h["dev_nll"]) for h in runs["b"].history]
    meta = json.loads((runs["a"].out / "metadata.json").read_text())
    where = f"the held half of dev ({len(mixing)} reviews no dev check read)"
    assert meta["ngram_path"]["chosen_on"] == where and meta["ngram_path"]["rule"] == "the mixture's lowest NLL"
    assert meta["calibration"]["fitted_on"] == where and meta["dev_metrics"]["n"] == len(dev_rows)
    card = (runs["a"].out / "MODEL_CARD.md").read_text()
    assert where in card
    # the default: the early-stopping rule on all of dev
    old = train(TrainConfig(train=str(train_csv), dev=str(tmp_path / "dev-a.csv"), out=str(tmp_path / "c"), epochs=2,
                            seed=0, **QUIET), log=lambda s: None)
    meta = json.loads((old.out / "metadata.json").read_text())
    assert meta["ngram_path"]["chosen_on"] == f"dev ({len(dev_rows)} reviews)"
    assert meta["calibration"]["fitted_on"] == f"dev ({len(dev_rows)} reviews)"


def test_cross_fit_chooses_the_share_and_temperature_on_dev_read_out_of_selection(sst, tmp_path):
    """--mixture-on cross-fit: early stopping reads all of dev, each half of dev keeps the check best on
    it, and the temperature and n-gram share are chosen on dev as read by the other half's check. With
    one check a run, that reading is the kept model's own; the saved model reads dev as evaluate does."""
    rows = [(e.text, e.rating) for e in read_examples(sst / "train.txt")][:300]
    train_csv = write_csv(tmp_path / "train.csv", rows)
    dev_rows = [(e.text, e.rating) for e in read_examples(sst / "dev.txt")]
    dev = write_csv(tmp_path / "dev.csv", dev_rows)
    logs: list[str] = []
    one = train(TrainConfig(train=str(train_csv), dev=str(dev), out=str(tmp_path / "one"), epochs=1, evals_per_epoch=1,
                            seed=0, mixture_on="cross-fit", **QUIET), log=logs.append)
    meta = json.loads((one.out / "metadata.json").read_text())
    cf = meta["cross_fit"]
    assert sum(cf["halves"]) == len(dev_rows) and min(cf["halves"]) > 0.3 * len(dev_rows)
    assert cf["chosen_at"] == [1, 1] and cf["dev_out_of_selection"] == cf["dev_kept"]
    where = f"dev read out of selection ({len(dev_rows)} reviews, cross-fitted)"
    assert meta["calibration"]["fitted_on"] == where and meta["ngram_path"]["chosen_on"] == where
    assert meta["ngram_path"]["rule"] == "the mixture's lowest NLL"
    assert any(line.startswith("dev read out of selection") for line in logs), logs
    # several checks: each half's choice is one of them, and the saved model reads dev as evaluate does
    more = train(TrainConfig(train=str(train_csv), dev=str(dev), out=str(tmp_path / "more"), epochs=2, seed=0,
                             mixture_on="cross-fit", **QUIET), log=lambda s: None)
    meta = json.loads((more.out / "metadata.json").read_text())
    assert set(meta["cross_fit"]["chosen_at"]) <= {h["epoch"] for h in more.history}
    ev = api.evaluate(dev, model=more.out)
    assert ev["accuracy"] == pytest.approx(meta["dev_metrics"]["accuracy"])
    assert ev["nll"] == pytest.approx(meta["dev_metrics"]["nll"], abs=1e-6)
    assert where in (more.out / "MODEL_CARD.md").read_text()


def test_what_train_returns_is_a_model_every_call_takes(sst, tmp_path):
    """`rl.predict(..., model=rl.train(...))`: the result is path-like, the model it wrote."""
    rows = [(e.text, e.rating) for e in read_examples(sst / "train.txt")][:120]
    result = api.train(train=str(write_csv(tmp_path / "t.csv", rows)), out=str(tmp_path / "m"), epochs=1, **QUIET,
                       log=lambda s: None)
    assert api.predict("a fine film", model=result).rating == api.predict("a fine film", model=tmp_path / "m").rating
    assert api.load_model(result).path == (tmp_path / "m")


def test_a_model_no_better_than_the_commonest_rating_is_told_so_in_the_log_card_curves_and_evaluate(tmp_path):
    """A file nine tenths 5 stars and a one-epoch model: the log, the card's first lines and evaluate say
    it is no more accurate than always 5 stars; the curves carry that floor."""
    rng = random.Random(0)
    words = ["good", "fine", "bad", "dull", "great", "plot", "cast", "music", "long", "short"]
    rows = [(" ".join(rng.choice(words) for _ in range(8)), 5 if i % 10 else 1) for i in range(400)]
    train_csv = write_csv(tmp_path / "skewed.csv", rows)
    logs: list[str] = []
    result = train(TrainConfig(train=str(train_csv), out=str(tmp_path / "m"), epochs=1, seed=0, **QUIET),
                   log=logs.append)
    warning = [line for line in logs if "no more accurate than always 5 stars on the validation slice" in line]
    assert warning and "--class-weights" in warning[0], logs
    card = (result.out / "MODEL_CARD.md").read_text().splitlines()
    assert any(line.startswith("**Warning:** the kept model is no more accurate") for line in card[:8]), card[:8]
    curves = json.loads((result.out / "curves.json").read_text())
    assert curves["majority"]["slice"]["accuracy"] >= result.holdout_metrics["accuracy"]
    done = run_cli("evaluate", train_csv, "--model", result.out)
    assert done.returncode == 0 and "always 5 (the file's commonest rating): accuracy 90.0%" in done.stdout
    assert "warning: the model is no more accurate" in done.stderr
