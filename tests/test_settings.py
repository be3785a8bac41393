"""Every training setting is checked for its type and range before anything is read or built, from
the command line and from a config file alike, in one line naming the setting (and the file)."""
from __future__ import annotations

import pytest

from support import run_cli
from reviewlstm.training.config import TrainConfig


@pytest.mark.parametrize("line,message", [
    ('seed = "abc"', 'seed must be an int, got "abc"'),
    ('scale_min = "1"', 'scale_min must be an int, got "1"'),
    ("batch_size = true", "batch_size must be an int, got true"),
    ("lr = nan", "lr must be > 0, got nan"),
    ("extra_glove_words = -5", "extra_glove_words must be >= 0, got -5"),
    ('threads = 0', "threads must be >= 1, got 0"),
])
def test_a_config_file_of_wrong_types_or_ranges_is_one_line(sst, tmp_path, line, message):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'train = "{sst / "train.txt"}"\nout = "{tmp_path / "m"}"\n{line}\n')
    with pytest.raises(ValueError, match=f"^{cfg}: " if "must be an int" in message else None) as e:
        TrainConfig.from_file(cfg).validate()
    assert message in str(e.value)
    if line.startswith("seed"):  # the command line says it in one line too, before anything is read
        proc = run_cli("train", "--config", cfg)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert not (tmp_path / "m").exists()


def test_flags_out_of_range_are_refused_before_training(sst, tmp_path):
    proc = run_cli("train", "--train", sst / "train.txt", "--out", tmp_path / "m", "--extra-glove-words", -5)
    assert proc.returncode == 2 and "extra_glove_words must be >= 0, got -5" in proc.stderr, proc.stderr
    assert not (tmp_path / "m").exists()
    with pytest.raises(ValueError, match="patience must be >= 1"):
        TrainConfig(train="x", patience=0).validate()
    with pytest.raises(ValueError, match="clip must be a finite number >= 0"):
        TrainConfig(train="x", clip=-1.0).validate()


def test_build_rows_is_read_from_the_environment(monkeypatch):
    from reviewlstm import settings
    monkeypatch.delenv("REVIEWLSTM_BUILD_ROWS", raising=False)
    assert settings.build_rows(200_000) == 200_000
    monkeypatch.setenv("REVIEWLSTM_BUILD_ROWS", "0")
    assert settings.build_rows(200_000) == 0
    monkeypatch.setenv("REVIEWLSTM_BUILD_ROWS", "many")
    assert settings.build_rows(200_000) == 200_000
