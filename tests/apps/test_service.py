"""The REST service, for real: uvicorn on 127.0.0.1, a real HTTP client, the tiny trained model."""
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from support import free_port, run_cli, start_server

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first


@pytest.fixture(scope="module")
def server(tiny_model):
    proc, url = start_server(tiny_model, "--max-text-chars", 2000, "--max-batch", 8, "--max-body-bytes", 50_000)
    assert proc.stdout.readline().startswith(f"reviewlstm serve: the page at {url}/, the API's reference at {url}/docs")
    yield url
    proc.terminate()
    proc.wait(10)


def test_health_ready_model_docs(server):
    assert httpx.get(server + "/health").json() == {"status": "ok"}
    assert httpx.get(server + "/ready").json() == {"ready": True}
    m = httpx.get(server + "/model").json()
    assert m["config"]["hidden"] == 16 and m["card"].startswith("# reviewlstm model card")
    assert m["limits"]["max_batch"] == 8
    assert m["path"] == "tiny" and "/" not in m["path"]  # the model's name, not where this server keeps it
    p = httpx.post(server + "/predict", json={"text": "これは素晴らしい映画です"}).json()
    assert p["known_share"] == 0.0 and "mostly a guess" in p["warning"]
    spec = httpx.get(server + "/openapi.json").json()
    assert {"/predict", "/explain", "/health", "/ready", "/model"} <= set(spec["paths"])
    assert httpx.get(server + "/docs").status_code == 200


def test_predict_matches_the_cli(server, tiny_model):
    text = "a gorgeous , witty , seductive movie ."
    r = httpx.post(server + "/predict", json={"text": text})
    assert r.status_code == 200
    cli = json.loads(run_cli("predict", "--model", tiny_model, text, "--json").stdout)
    served = r.json()
    assert served["rating"] == cli["rating"] and served["text"] == cli["text"]
    assert served["tokens"] == cli["tokens"] and served["read_as"] == cli["read_as"]
    assert [o["rating"] for o in served["probabilities"]] == [o["rating"] for o in cli["probabilities"]] == [1, 2, 3, 4, 5]
    assert [o["probability"] for o in served["probabilities"]] == pytest.approx(
        [o["probability"] for o in cli["probabilities"]], abs=1e-6)
    assert served["expected_rating"] == pytest.approx(cli["expected_rating"], abs=1e-6)
    batch = httpx.post(server + "/predict", json={"texts": ["dull .", text]}).json()["predictions"]
    assert [p["text"] for p in batch] == ["dull .", text]
    assert batch[1]["rating"] == cli["rating"]


def test_explain_endpoint(server):
    r = httpx.post(server + "/explain", json={"text": "the acting is superb .", "method": "occlusion"})
    assert r.status_code == 200
    e = r.json()
    assert e["tokens"] == ["the", "acting", "is", "superb", "."] and len(e["contributions"]) == 5
    assert len(e["gates"]["forget_gate"]["mean"]) == 5 and len(e["trajectory"]) == 5


@pytest.mark.parametrize("body,status,message", [
    ({"text": "x" * 2001}, 422, "the limit max_text_chars is 2000"),
    ({"texts": ["ok"] * 9}, 422, "the limit max_batch is 8"),
    ({"text": "   "}, 422, "text is empty"),
    ({"texts": []}, 422, "texts is empty"),
    ({}, 422, "exactly one of 'text' or 'texts'"),
    ({"text": "a", "texts": ["b"]}, 422, "exactly one of"),
    ({"text": 5}, 422, "text"),
    ({"text": "ok", "colour": 1}, 422, "colour"),
])
def test_bad_requests_name_the_problem(server, body, status, message):
    r = httpx.post(server + "/predict", json=body)
    assert r.status_code == status
    assert message in r.json()["detail"]


def test_malformed_json_and_oversized_body(server):
    r = httpx.post(server + "/predict", content=b'{"text": "unfinished', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    r = httpx.post(server + "/predict", json={"text": "y" * 60_000})
    assert r.status_code == 413 and "max_body_bytes is 50000" in r.json()["detail"]
    r = httpx.post(server + "/explain", json={"text": "z" * 6000})
    assert r.status_code == 422 and "max_text_chars is 2000" in r.json()["detail"]


def test_concurrent_clients_get_their_own_answers(server):
    """50 clients at once; each answer is the one its text gets alone (no cross-talk, no errors)."""
    texts = [f"review {i} : {'great fun' if i % 2 else 'a tedious mess'} , {'!' * (i % 3)}" for i in range(50)]
    alone = {t: httpx.post(server + "/predict", json={"text": t}).json() for t in texts}

    def client(i):
        with httpx.Client(base_url=server, timeout=30) as c:
            out = []
            for k in range(4):
                t = texts[(i + k) % 50]
                r = c.post("/predict", json={"text": t})
                out.append((t, r.status_code, r.json()))
            return out

    with ThreadPoolExecutor(50) as pool:
        results = [x for chunk in pool.map(client, range(50)) for x in chunk]
    assert len(results) == 200
    for t, status, body in results:
        assert status == 200 and body["text"] == t
        assert body["rating"] == alone[t]["rating"]
        assert body["probabilities"] == [{"rating": o["rating"], "probability": pytest.approx(o["probability"], abs=1e-6)}
                                         for o in alone[t]["probabilities"]]


def test_binds_to_loopback_by_default_and_bad_model_is_one_line(tmp_path):
    proc = run_cli("serve", "--model", tmp_path / "missing", "--port", free_port())
    assert proc.returncode == 2 and "no such model directory" in proc.stderr and "Traceback" not in proc.stderr
    from reviewlstm.apps.cli import build_parser
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


def test_the_response_schema_is_the_librarys_prediction():
    import dataclasses
    from reviewlstm.inference.predict import Prediction
    from reviewlstm.apps.service import create_app
    openapi = create_app().openapi()["components"]["schemas"]
    schema = openapi["Prediction"]["properties"]
    # every field as to_dict() writes it: the scale lives in the keyed probabilities, not beside them
    assert list(schema) == ["text"] + [f.name for f in dataclasses.fields(Prediction) if f.name != "ratings"]
    assert schema["probabilities"]["items"]["$ref"].endswith("/RatingProbability")
    assert list(openapi["RatingProbability"]["properties"]) == ["rating", "probability"]


def test_predict_carries_rating_sets_when_asked(server, tiny_model):
    """coverage: each answer carries its rating set, as the CLI's; texts asking different coverages in
    the same moment are batched apart; a coverage out of (0, 1) is refused by the schema."""
    text = "a gorgeous , witty , seductive movie ."
    cli = json.loads(run_cli("predict", "--model", tiny_model, text, "--json", "--coverage", "0.8").stdout)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda c: httpx.post(server + "/predict", json={"text": text, "coverage": c}).json(),
                                [0.8, 0.5, 0.8, None]))
    assert answers[0]["rating_set"] == answers[2]["rating_set"] == cli["rating_set"] and answers[0]["coverage"] == 0.8
    assert answers[1]["coverage"] == 0.5 and set(answers[1]["rating_set"]) <= set(answers[0]["rating_set"])
    assert answers[3]["rating_set"] is None and answers[3]["coverage"] is None
    bad = httpx.post(server + "/predict", json={"text": text, "coverage": 1.2})
    assert bad.status_code == 422 and "coverage" in bad.json()["detail"]
