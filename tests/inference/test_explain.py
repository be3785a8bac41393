"""Explanations over the public seams, checked against what they claim."""
import pytest
import torch

from reviewlstm import api
from reviewlstm.inference.explain import explain
from reviewlstm.inference.predict import pad_batch

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return api.load_model(tiny_model)


def test_integrated_gradients_add_up_to_the_change_from_zero_events(loaded):
    e = explain(loaded, "a gorgeous , witty , seductive movie .", steps=256)
    model = loaded.model
    ids, lengths = pad_batch([loaded.vocab.encode(e.tokens)])
    ratings = torch.tensor(loaded.config.ratings, dtype=torch.float32)
    with torch.no_grad():
        zero = model.probabilities(model.from_embeddings(torch.zeros_like(model.embed(ids)), lengths))[0]
    gap = e.expected_rating - float(zero @ ratings)
    assert abs(sum(e.contributions) - gap) < 0.05 * abs(gap) + 1e-3
    for k in range(5):  # per rating too
        assert abs(sum(row[k] for row in e.class_contributions) - (e.probabilities[k] - float(zero[k]))) < 0.01
    assert len(e.contributions) == len(e.tokens) == 8


def test_occlusion_is_the_drop_when_a_word_is_left_out(loaded):
    text = "dull , lifeless and far too long ."
    e = explain(loaded, text, method="occlusion")
    tokens = e.tokens
    without = " ".join(tokens[:3] + tokens[4:])  # leave out "and"
    p = api.predict(without, model=loaded, long_text="whole")
    assert e.contributions[3] == pytest.approx(e.expected_rating - p.expected_rating, abs=1e-5)


def test_gate_traces_and_trajectory(loaded):
    e = explain(loaded, "the plot is thin but the acting is superb .")
    T = len(e.tokens)
    for name in ("learn", "forget", "remember", "use", "forget_gate"):
        assert len(e.gates[name]["mean"]) == T and len(e.gates[name]["units"][0]) == 16
    assert all(0 <= v <= 1 for v in e.gates["forget_gate"]["mean"])
    assert len(e.ltm_norm) == T and len(e.stm_norm) == T
    assert len(e.trajectory) == T
    # after the last word, the trajectory is the prediction itself
    assert e.trajectory[-1] == pytest.approx(e.probabilities, abs=1e-5)
    first = api.predict("the", model=loaded, long_text="whole")
    assert e.trajectory[0] == pytest.approx(first.probabilities, abs=1e-5)


def test_explanation_matches_prediction_and_states_truncation(loaded):
    text = "good " * (loaded.config.max_length + 5)
    e = explain(loaded, text, gates=False, trajectory=False)
    assert e.truncated and len(e.tokens) == loaded.config.max_length and e.total_tokens == loaded.config.max_length + 5
    short = explain(loaded, "a fine film .")
    p = api.predict("a fine film .", model=loaded)
    assert short.rating == p.rating and short.probabilities == pytest.approx(p.probabilities, abs=1e-5)
    with pytest.raises(ValueError, match="method must be one of"):
        explain(loaded, "x", method="shap")


def test_a_long_review_is_explained_as_predict_reads_it(loaded):
    """Over 60 tokens predict reads sentence by sentence; explain must explain that same rating."""
    sentences = ["a gorgeous , witty , seductive movie .", "dull , lifeless and far too long .",
                 "the plot is thin but the acting is superb .", "i laughed , i cried , i loved it ."]
    text = " ".join(sentences * 3)
    p = api.predict(text, model=loaded)
    e = explain(loaded, text, method="occlusion")
    assert p.read_as == e.read_as == "sentences" and sum(e.sentences) == len(e.tokens) == p.tokens
    assert e.rating == p.rating and e.probabilities == pytest.approx(p.probabilities, abs=1e-5)
    assert e.trajectory[-1] == pytest.approx(e.probabilities, abs=1e-5)
    assert len(e.gates["learn"]["mean"]) == len(e.tokens) == len(e.contributions)
    # a sentence's occlusion contributions, scaled by its share of the average: the first word of the
    # first sentence is worth (its drop within that sentence) x (the sentence's share of the tokens)
    alone = explain(loaded, sentences[0], method="occlusion")
    share = e.sentences[0] / sum(e.sentences)
    assert e.contributions[0] == pytest.approx(alone.contributions[0] * share, abs=1e-5)
    whole = explain(loaded, text, long_text="whole", gates=False, trajectory=False)
    assert whole.read_as == "whole" and whole.sentences == [len(e.tokens)]
