"""Every error names the file it is about and suggests only what applies to the command given."""
from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq

import pytest

from support import run_cli
from reviewlstm import api
from reviewlstm.inference import artifact
from reviewlstm.io.data import DataError

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first


def test_the_output_format_is_not_sent_to_the_input_flag(tiny_model, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text\ngood\n")
    with pytest.raises(DataError) as e:
        api.score_file(src, tmp_path / "o.dat", model=tiny_model, fmt="csv", progress=False)
    assert "o.dat: cannot tell the output's format from its name" in str(e.value) and "--format" not in str(e.value)


def test_evaluate_does_not_suggest_a_flag_it_lacks(tiny_model, tmp_path):
    src = tmp_path / "ten.csv"
    src.write_text("text,rating\ngood,9\n")
    with pytest.raises(DataError) as e:
        api.evaluate(src, model=tiny_model)
    assert "is not an integer in 1..5" in str(e.value) and "--scale" not in str(e.value)
    assert "a model trained on it" in str(e.value)


def test_a_corrupt_parquet_names_the_file(tiny_model, tmp_path):
    src = tmp_path / "r.parquet"
    pq.write_table(pa.table({"text": [f"review number {k} was fine" for k in range(5000)]}), src, compression="snappy")
    raw = bytearray(src.read_bytes())
    for k in range(200, 2200):  # the data pages, not the footer: the file opens, its pages do not
        raw[k] ^= 0x5A
    src.write_bytes(bytes(raw))
    proc = run_cli("predict", "--model", tiny_model, "--input", src, "--output", tmp_path / "o.csv", "--no-progress")
    assert proc.returncode == 2 and f"{src}: " in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_deep_or_huge_json_in_a_model_names_the_file(tiny_model, tmp_path):
    for name, text in (("config.json", "[" * 100_000 + "]" * 100_000), ("metadata.json", '{"n": ' + "9" * 5000 + "}"),
                       ("vocab.json", "[" * 100_000 + "]" * 100_000)):
        out = tmp_path / name.split(".")[0]
        shutil.copytree(tiny_model, out)
        (out / name).write_text(text)
        if name != "metadata.json":  # its checksum would refuse the edit first, as it should
            meta = json.loads((out / "metadata.json").read_text())
            del meta["sha256"]
            (out / "metadata.json").write_text(json.dumps(meta))
        with pytest.raises(artifact.ArtifactError) as e:
            artifact.load(out)
        assert f"{out / name}" in str(e.value) and "\n" not in str(e.value)
