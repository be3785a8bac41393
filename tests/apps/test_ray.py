"""Scoring through Ray Data: every row back, the same predictions as `reviewlstm predict --input`."""
import csv

import pytest

from support import run_cli

import ray  # in the test install (.[test]); for users the [ray] extra is optional
pytestmark = [pytest.mark.usefixtures("compiled_kernel"), pytest.mark.ray]


@pytest.fixture(scope="module")
def local_ray():
    from reviewlstm.apps.ray_scoring import ensure_ray
    r = ensure_ray(num_cpus=2)
    yield r.get_runtime_context().gcs_address
    r.shutdown()


def reviews(n: int) -> list[dict]:
    words = ["a gorgeous , witty movie", "dull and far too long", "fine", "the plot is thin but the acting is superb"]
    rows = [{"id": f"r{i}", "text": f"{words[i % 4]} number {i} ."} for i in range(n)]
    rows[7]["text"] = ""           # empty
    rows[99]["text"] = "   "       # blank
    return rows


def test_ray_scores_every_row_as_predict_does(local_ray, tiny_model, tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq
    folder = tmp_path / "in"
    folder.mkdir()
    a, b = reviews(2500), [{**r, "id": "p" + r["id"][1:]} for r in reviews(2500)]
    with open(folder / "a.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text"])
        w.writeheader()
        w.writerows(a)
        f.write('r-ragged,"one",two\n')  # a malformed row: it comes back with its error
    b[5]["text"] = None             # a missing text in Parquet
    pq.write_table(pa.Table.from_pylist(b), folder / "b.parquet")

    out = tmp_path / "out"
    proc = run_cli("predict", "--model", tiny_model, "--input", folder, "--output", out, "--engine", "ray",
                   "--address", local_ray, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rated 4995 of 5001 rows" in proc.stdout, proc.stdout
    got = pads.dataset(str(out), format="parquet").to_table().to_pandas().set_index("id")
    assert len(got) == 5001 and got.index.is_unique

    native = []
    for name in ("a.csv", "b.parquet"):
        target = tmp_path / f"{name}.native.parquet"
        assert run_cli("predict", "--model", tiny_model, "--input", folder / name, "--output", target,
                       "--no-progress").returncode == 0
        native.append(pq.read_table(target).to_pandas())
    want = pd.concat(native).set_index("id")
    assert len(want) == len(got)
    joined = pd.merge(want, got, left_index=True, right_index=True, suffixes=("", "_ray"))
    assert len(joined) == 5001
    rated = joined["predicted_rating"].notna()
    assert (rated == joined["predicted_rating_ray"].notna()).all() and rated.sum() == 4995
    assert (joined.loc[rated, "predicted_rating"] == joined.loc[rated, "predicted_rating_ray"]).all()
    for k in range(1, 6):
        assert (joined.loc[rated, f"p_{k}"] - joined.loc[rated, f"p_{k}_ray"]).abs().max() <= 1e-6
    assert set(joined.loc[~rated, "error_ray"]) == set(joined.loc[~rated, "error"])
    assert got.loc["r-ragged", "error"].startswith("ragged row") and got.loc["r-ragged", "source_line"] == 2502
    assert got.loc["r7", "error"] == "empty text in column 'text'"


def test_a_ray_dataset_in_a_ray_dataset_out(local_ray, tiny_model):
    import pandas as pd
    from reviewlstm import api
    from reviewlstm.apps.ray_scoring import score_dataset
    frame = pd.DataFrame({"review_id": range(6), "body": ["great", "", None, "awful film", "fine", "ok"]})
    out = score_dataset(ray.data.from_pandas(frame), model=tiny_model, text_column="body",
                        preserve_order=True).to_pandas()
    assert list(out["review_id"]) == list(range(6))  # every row, in order (preserve_order)
    assert list(out["error"].fillna("")) == ["", "text is empty", "text is missing", "", "", ""]
    alone = api.predict("awful film", model=tiny_model)
    assert out.loc[3, "predicted_rating"] == alone.rating and abs(out.loc[3, "p_1"] - alone.probabilities[0]) < 1e-5
