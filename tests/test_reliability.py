"""Nothing silently wrong: hostile and damaged files, forced reruns, non-finite settings, config text in LaTeX, CLI
errors (issue 22; one test per case)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from htsep.config import ConfigError
from htsep.data.splits import load_split
from htsep.ep import fused
from htsep.experiments.frontier.paper import frontier_text
from htsep.experiments.mechanism.spectra import spectral_experiment
from htsep.files import DamagedFileError, read_torch, write_json, write_torch
from htsep.report.tex import tex_text
from htsep.run_tables import run_tables
from htsep.study import load_config
from htsep.training import checkpoints
from htsep.training import runs as train

from .conftest import REPO
from .test_train import CONFIGS, data_paths, interrupted_run, metrics, run  # noqa: F401  (fixtures)


class Payload:
    """Unpickling this runs a shell command (what a crafted checkpoint could do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def assert_set_aside(err: pytest.ExceptionInfo, path) -> None:
    assert str(path) in str(err.value) and f"rerun to remake {path.name}" in str(err.value)
    assert not path.exists() and path.with_name(path.name + ".damaged").exists()


def test_a_crafted_checkpoint_runs_no_code_and_is_set_aside(run, data_paths, tmp_path):  # noqa: F811
    run["training"]["epochs"] = 1
    marker = tmp_path / "pwned"
    torch.save({"run": run, "payload": Payload(marker)}, tmp_path / checkpoints.CHECKPOINT)
    with pytest.raises(DamagedFileError) as err:
        train.train_run(run, data_paths, tmp_path)
    assert not marker.exists()
    assert_set_aside(err, tmp_path / checkpoints.CHECKPOINT)
    train.train_run(run, data_paths, tmp_path)  # the rerun starts afresh
    assert len(metrics(tmp_path)) == 1


def test_every_file_the_pipeline_writes_loads_without_unpickling(run, data_paths, tmp_path, monkeypatch):  # noqa: F811
    interrupted_run(run, data_paths, tmp_path, monkeypatch)
    state = torch.load(tmp_path / checkpoints.CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1 and state["metrics"][0]["epoch"] == 1 and state["engine"]
    train.train_run(run, data_paths, tmp_path)
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    assert model["epoch"] == 2 and len(model["network"]["dt"]) == 2
    for split in data_paths.values():
        assert len(torch.load(split, weights_only=True)["labels"]) > 0


def test_a_finished_run_leaves_no_checkpoint_and_a_forced_rerun_retrains(run, data_paths, tmp_path,  # noqa: F811
                                                                          caplog):
    run["training"]["epochs"] = 1
    train.train_run(run, data_paths, tmp_path)
    assert not (tmp_path / checkpoints.CHECKPOINT).exists()
    first = metrics(tmp_path)
    with caplog.at_level("INFO"):
        train.train_run(run, data_paths, tmp_path)
    assert "resuming" not in caplog.text
    pd.testing.assert_frame_equal(first, metrics(tmp_path))


@pytest.mark.skipif(fused.engine(train.EPNetwork([784, 32, 10], 0.3)) != "fused-cpu", reason="no fused kernel here")
def test_a_resume_across_engines_is_refused(run, data_paths, tmp_path, monkeypatch, caplog):  # noqa: F811
    """Epoch 1 by the fused kernel, then the PyTorch ops: the run starts afresh, so its summary's engine computed
    every number."""
    interrupted_run(run, data_paths, tmp_path / "mixed", monkeypatch)
    monkeypatch.setattr(fused, "enabled", False)
    with caplog.at_level("WARNING"):
        summary = train.train_run(run, data_paths, tmp_path / "mixed")
    assert "another engine" in caplog.text and summary["relaxation_engine"] == "torch"
    train.train_run(run, data_paths, tmp_path / "torch")
    pd.testing.assert_frame_equal(metrics(tmp_path / "mixed"), metrics(tmp_path / "torch"))


@pytest.mark.parametrize("extra, key", [
    ("training: {lr: [.nan, 0.02]}", "training.lr.0"),
    ("training: {beta: .nan}", "training.beta"),
    ("training: {momentum: .nan}", "training.momentum"),
    ("training: {momentum: 1.0}", "training.momentum"),
    ("variants: [{name: a, dt: {distribution: normal, mean: .nan, std: 0.05}}]", "variants.0.dt.mean"),
    ("variants: [{name: a, dt: {distribution: normal, mean: 0.3, std: .inf}}]", "variants.0.dt.std"),
    ("frontier: {protocol: lab, axes: {lr: {key: momentum, mode: scale, levels: [1, 20]}}}",
     "frontier.axes.lr: level 20"),
    ("frontier: {axes: {lr: {key: beta, mode: set, levels: [1, .nan]}}}", "frontier.axes.lr.levels.1"),
    ("frontier: {protocol: lab, axes: {m: {key: momentum, mode: scale, levels: [0.5, 1]}},\n"
     "pilot: {levels: {m: [1, 2]}}}",
     "frontier.axes.m: level 2 (pilot)"),
    ("data: {subset: 7000}", "data.subset"),
    ("variants: [{name: '..', dt: {distribution: constant, value: 0.2}}]", "variants.0.name"),
    ("protocols: {'.': {}}", "protocols"),
    ("frontier_shard: {seeds: [0, 40]}", "frontier_shard.seeds"),
])
def test_unusable_settings_are_config_errors_naming_the_key(tmp_path, extra, key):
    (tmp_path / "extra.yaml").write_text(extra + "\n")
    with pytest.raises(ConfigError, match=f"config key {key}".replace(".", r"\.").replace("(", r"\(")
                       .replace(")", r"\)")):
        load_config([REPO / "config" / "config.yaml", tmp_path / "extra.yaml"])


def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _finished_run(run, data_paths, folder, epochs=2):  # noqa: F811
    run["training"]["epochs"] = epochs
    train.train_run(run, data_paths, folder)
    return folder / "summary.json"


def test_a_truncated_prepared_split_is_named_and_set_aside(data_paths, tmp_path):  # noqa: F811
    copy = tmp_path / "train.pt"
    copy.write_bytes(data_paths["train"].read_bytes())
    _truncate(copy)
    with pytest.raises(DamagedFileError, match="prepared split") as err:
        load_split(copy)
    assert_set_aside(err, copy)


def test_a_truncated_checkpoint_is_named_and_set_aside(run, data_paths, tmp_path, monkeypatch):  # noqa: F811
    interrupted_run(run, data_paths, tmp_path, monkeypatch)
    _truncate(tmp_path / checkpoints.CHECKPOINT)
    with pytest.raises(DamagedFileError, match="checkpoint") as err:
        train.train_run(run, data_paths, tmp_path)
    assert_set_aside(err, tmp_path / checkpoints.CHECKPOINT)


def test_a_truncated_model_is_named_and_set_aside(run, data_paths, tmp_path):  # noqa: F811
    _finished_run(run, data_paths, tmp_path)
    _truncate(tmp_path / "model.pt")
    with pytest.raises(DamagedFileError, match="trained model") as err:
        spectral_experiment([tmp_path / "model.pt"], {}, {}, {})  # the spectra read the trained models
    assert_set_aside(err, tmp_path / "model.pt")


@pytest.mark.parametrize("damage, named", [
    (lambda folder: pd.read_csv(folder / "metrics.csv").head(1).to_csv(folder / "metrics.csv", index=False),
     "metrics.csv"),
    (lambda folder: (folder / "metrics.csv").write_bytes(os.urandom(300)), "metrics.csv"),
    (lambda folder: (folder / "summary.json").write_text((folder / "summary.json").read_text()[:50]),
     "summary.json"),
])
def test_damaged_run_tables_are_named_and_set_aside(run, data_paths, tmp_path, damage, named):  # noqa: F811
    summary = _finished_run(run, data_paths, tmp_path)
    damage(tmp_path)
    with pytest.raises(DamagedFileError) as err:
        run_tables([summary])
    assert_set_aside(err, tmp_path / named)


def test_config_text_reaches_latex_as_plain_text(tmp_path):
    hostile = r"\input{/etc/hostname} 50% & #1 {braces} $math$ ~ ^ _ and level $\times8$"
    assert tex_text(hostile) == (r"\textbackslash{}input\{/etc/hostname\} 50\% \& \#1 \{braces\} \$math\$ "
                                 r"\textasciitilde{} \textasciicircum{} \_ and level $\times8$")
    config = load_config([REPO / "config" / "config.yaml"])
    tables = {name: tmp_path / f"{name}.csv" for name in ("fits", "critical", "cells")}
    for path in tables.values():
        path.write_text("")
    out = tmp_path / "frontier.tex"
    frontier_text(tables, out, {"frontier": {**config["frontier"], "design_note": hostile},
                                "variants": config["variants"], "caption": "A caption."})
    text = out.read_text()
    assert r"\textbackslash{}input\{/etc/hostname\}" in text and r"\input{/etc" not in text


@pytest.mark.parametrize("args, named", [
    (["train", "--dataset", "foo"], "--dataset"),
    (["train", "--dataset", "synthetic", "--runs-per-job", "0"], "--runs-per-job"),
    (["train", "--dataset", "synthetic", "--seed", "-1"], "--seed"),
    (["data", "prepare", "--dataset", "mnist", "--root", "x", "--subset", "0"], "--subset"),
    (["data", "prepare", "--dataset", "mnist", "--root", "x", "--holdout-fraction", "1.5"], "--holdout-fraction"),
    (["train", "--dataset", "synthetic", "--config", "{broken}"], "is not valid YAML"),
    (["train", "--dataset", "synthetic", "--config", "{cuda}"], "training.device"),
])
def test_cli_user_errors_are_one_line_naming_the_argument(tmp_path, args, named):
    (tmp_path / "broken.yaml").write_text("training: {lr: [0.1, 0.2\n")
    (tmp_path / "cuda.yaml").write_text("training: {device: cuda, epochs: 1}\n")
    args = [a.format(broken=tmp_path / "broken.yaml", cuda=tmp_path / "cuda.yaml") for a in args]
    if args[0] == "train":
        args = ["train", *sum((["--config", str(c)] for c in CONFIGS), []), *args[1:],
                "--data-root", str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs")]
    if torch.cuda.is_available() and named == "training.device":
        pytest.skip("this machine has CUDA")
    out = subprocess.run([sys.executable, "-m", "htsep.cli", *args], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    errors = [line for line in out.stderr.splitlines() if "INFO" not in line and "Warning" not in line
              and not line.startswith(("W1", "  "))]
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(errors) == 1 and named in errors[0], out.stderr


def test_outputs_are_group_readable_and_the_same_content_gives_the_same_bytes(tmp_path):
    state = {"weights": [torch.arange(6.0).reshape(2, 3)], "epoch": 3, "run": {"seed": 1}}
    write_torch(tmp_path / "a" / "model.pt", state)
    write_torch(tmp_path / "b" / "model.pt", state)
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    assert torch.equal(read_torch(tmp_path / "a" / "model.pt", "model")["weights"][0], state["weights"][0])
    write_json(tmp_path / "s.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "s.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 1}
