"""Training runs: learnable, deterministic, resumable after a kill, divergence recorded as data."""

import copy
import json

import pandas as pd
import pytest
import torch

from htsep import cli
from htsep.config import run_slice
from htsep.data.prepare import prepare_dataset
from htsep.ep.model import EPNetwork
from htsep.study import load_config
from htsep.training import checkpoints, epochs
from htsep.training import runs as train

from .conftest import REPO

CONFIGS = [REPO / "config" / "config.yaml", REPO / "config" / "test.yaml"]


@pytest.fixture(scope="module")
def data_paths(tmp_path_factory):
    return prepare_dataset("synthetic", tmp_path_factory.mktemp("data"), synthetic={"n_train": 600, "n_test": 200})


@pytest.fixture()
def run():
    return run_slice(load_config(CONFIGS), "synthetic", "hts_normal", 0)


def metrics(out):
    return pd.read_csv(out / "metrics.csv").drop(columns="seconds")


def test_learns_the_synthetic_task(run, data_paths, tmp_path):
    run["training"]["epochs"] = 4
    run["training"]["snapshot_epochs"] = [1, 3]
    summary = train.train_run(run, data_paths, tmp_path)
    model = torch.load(tmp_path / "model.pt", weights_only=False)
    assert sorted(model["snapshots"]) == [1, 3] and model["epoch"] == 4
    assert not torch.equal(model["snapshots"][3]["weights"][0], model["network"]["weights"][0])
    assert summary["final_test_acc"] > 0.9 and not summary["diverged"]
    table = metrics(tmp_path)
    assert list(table["epoch"]) == [1, 2, 3, 4]
    assert table["test_acc"].iloc[-1] > table["test_acc"].iloc[0]
    assert (table["classes_never_predicted"].iloc[-1]) == 0
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["config"] == run and saved["dt_stats"][0]["min"] >= 0.2 - 1e-7
    assert saved["dt_stats"][0]["max"] <= 0.4 + 1e-7 and saved["dt_stats"][0]["std"] > 0.02


def test_same_config_and_seed_give_identical_numbers(run, data_paths, tmp_path):
    train.train_run(run, data_paths, tmp_path / "a")
    train.train_run(run, data_paths, tmp_path / "b")
    pd.testing.assert_frame_equal(metrics(tmp_path / "a"), metrics(tmp_path / "b"))
    other = copy.deepcopy(run)
    other["seed"] = 1
    train.train_run(other, data_paths, tmp_path / "c")
    assert not metrics(tmp_path / "a").equals(metrics(tmp_path / "c"))


def kill_during_epoch(monkeypatch, epoch: int):
    """Make training die (as on SIGINT) in ``epoch``, after the checkpoint of the epoch before it."""
    real_evaluate, calls = epochs.evaluate, []

    def evaluate(*args):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt
        return real_evaluate(*args)

    monkeypatch.setattr(train, "evaluate", evaluate)
    return real_evaluate


def test_resume_after_kill_matches_uninterrupted(run, data_paths, tmp_path, monkeypatch):
    run["training"]["epochs"] = 3
    train.train_run(run, data_paths, tmp_path / "whole")
    real_evaluate = kill_during_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train.train_run(run, data_paths, tmp_path / "killed")
    assert not (tmp_path / "killed" / "metrics.csv").exists()  # nothing that looks complete
    monkeypatch.setattr(train, "evaluate", real_evaluate)
    train.train_run(run, data_paths, tmp_path / "killed")
    pd.testing.assert_frame_equal(metrics(tmp_path / "whole"), metrics(tmp_path / "killed"))


def interrupted_run(run, data_paths, folder, monkeypatch):
    """``run`` (2 epochs) killed in its second epoch: its folder holds the checkpoint of epoch 1 only."""
    run["training"]["epochs"] = 2
    real_evaluate = kill_during_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train.train_run(run, data_paths, folder)
    monkeypatch.setattr(train, "evaluate", real_evaluate)
    assert (folder / checkpoints.CHECKPOINT).exists() and not (folder / "summary.json").exists()


def test_checkpoint_of_another_config_is_not_resumed(run, data_paths, tmp_path, monkeypatch):
    interrupted_run(run, data_paths, tmp_path, monkeypatch)
    changed = copy.deepcopy(run)
    changed["training"]["beta"] = 0.2
    train.train_run(changed, data_paths, tmp_path)
    fresh = tmp_path / "fresh"
    train.train_run(changed, data_paths, fresh)
    pd.testing.assert_frame_equal(metrics(tmp_path), metrics(fresh))


def test_divergence_is_recorded_not_raised(data_paths, tmp_path, capsys):
    override = tmp_path / "absurd.yaml"
    override.write_text("training: {lr: [1000.0, 1000.0], weight_decay: 0.01, epochs: 3}\n")
    root = data_paths["train"].parent.parent
    code = cli.main(["train", *sum((["--config", str(c)] for c in [*CONFIGS, override]), []),
                     "--dataset", "synthetic", "--variant", "uniform_0.2", "--seed", "0",
                     "--out", str(tmp_path / "run"), "--data-root", str(root)])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    epoch = summary["diverged_epoch"]
    assert summary["diverged"] and epoch in (1, 2, 3) and summary["epochs_completed"] == epoch
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert table["diverged"].tolist() == [False] * (epoch - 1) + [True]  # training stopped at divergence
    assert pd.isna(table["test_acc"].iloc[-1]) and pd.isna(summary["final_test_acc"])
    assert f"diverged at epoch {epoch}" in capsys.readouterr().out


def test_cli_rejects_bad_config_with_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {momentun: 0.5}\n")
    code = cli.main(["train", "--config", str(CONFIGS[0]), "--config", str(bad), "--dataset", "synthetic",
                     "--variant", "uniform_0.2", "--seed", "0", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "training" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_cli_trains_several_runs_as_stacks_one_folder_each(data_paths, tmp_path, capsys):
    root = data_paths["train"].parent.parent
    common = [*sum((["--config", str(c)] for c in CONFIGS), []), "--dataset", "synthetic", "--data-root", str(root)]
    code = cli.main(["train", *common, "--protocol", "calibrated", "--variant", "uniform_0.2", "hts_normal",
                     "--seed", "0", "1", "--runs-per-job", "3", "--runs-dir", str(tmp_path / "runs")])
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == [
        "calibrated/synthetic/uniform_0.2/seed0", "calibrated/synthetic/uniform_0.2/seed1",
        "calibrated/synthetic/hts_normal/seed0", "calibrated/synthetic/hts_normal/seed1"]
    folders = [tmp_path / "runs" / "calibrated" / "synthetic" / v / f"seed{s}" for v in ("uniform_0.2", "hts_normal")
               for s in (0, 1)]
    summaries = [json.loads((f / "summary.json").read_text()) for f in folders]
    assert [s["runs_trained_together"] for s in summaries] == [3, 3, 3, 1]  # two stacks: three runs, then one
    assert {s["protocol"] for s in summaries} == {"calibrated"}
    assert summaries[0]["config"]["training"]["beta"] == 0.5  # the protocol's override (config/test.yaml)
    assert cli.main(["train", *common, "--protocol", "calibrated", "--variant", "hts_normal", "--seed", "1",
                     "--out", str(tmp_path / "alone")]) == 0
    pd.testing.assert_frame_equal(metrics(folders[3]), metrics(tmp_path / "alone"))  # a stack of one == a run
    assert not metrics(folders[2]).equals(metrics(folders[3]))  # each folder holds its own run


def test_cli_out_names_a_single_run(tmp_path, capsys):
    code = cli.main(["train", *sum((["--config", str(c)] for c in CONFIGS), []), "--dataset", "synthetic",
                     "--seed", "0", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "--out names one run folder, but 3 runs were asked for" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_checkpoint_of_other_training_code_is_not_resumed(run, data_paths, tmp_path, monkeypatch, caplog):
    """After an engine edit (another code fingerprint) a rerun retrains; it never rewrites the old numbers."""
    interrupted_run(run, data_paths, tmp_path, monkeypatch)
    ckpt = torch.load(tmp_path / checkpoints.CHECKPOINT, weights_only=True)
    assert ckpt["code"] == checkpoints.training_code()
    poisoned = {**ckpt, "metrics": [{**row, "test_acc": -1.0} for row in ckpt["metrics"]]}
    torch.save(poisoned, tmp_path / checkpoints.CHECKPOINT)  # a resume would report test_acc -1
    monkeypatch.setattr(checkpoints, "training_code", lambda: "edited-engine")
    with caplog.at_level("WARNING"):
        train.train_run(run, data_paths, tmp_path)
    assert "other training code" in caplog.text
    assert (metrics(tmp_path)["test_acc"] > 0).all()
    assert json.loads((tmp_path / "summary.json").read_text())["code_fingerprint"] == train.training_code()


def test_lab_protocol_runs_give_the_metrics_of_the_plain_training_config(data_paths, tmp_path):
    """The grid's layout (protocol in the run's identity) changes no number of the lab recipe."""
    config = load_config(CONFIGS)
    plain, lab = (run_slice(config, "synthetic", "hts_normal", 0, protocol) for protocol in (None, "lab"))
    plain["training"]["epochs"] = lab["training"]["epochs"] = 1
    train.train_run(plain, data_paths, tmp_path / "plain")
    train.train_run(lab, data_paths, tmp_path / "lab")
    pd.testing.assert_frame_equal(metrics(tmp_path / "plain"), metrics(tmp_path / "lab"))


def flushing() -> bool:
    """Does this thread flush subnormals to zero right now?"""
    return (torch.tensor([1e-39]) * 2).item() == 0


def test_dead_units_momentum_decays_to_subnormals_that_flushing_zeroes_without_changing_weights():
    """A unit whose gradient turns zero keeps a momentum buffer that shrinks by 0.9 a step into subnormals;
    flushed, the buffer is 0 instead and the weights are bitwise the same."""
    training = {"lr": [0.4], "momentum": 0.9, "weight_decay": 0.0}

    def train_dead_unit():
        net = EPNetwork([3, 2], 0.3, seed=0)
        optimizer = train.make_optimizer(net, training)
        for step in range(900):
            for p in net.parameters:
                p.grad = torch.full_like(p, 1e-3 if step == 0 else 0.0)
            optimizer.step()
        return net.parameters, optimizer.state[net.weights[0]]["momentum_buffer"]

    params, buffer = train_dead_unit()
    with train.subnormals_flushed():
        assert flushing()
        flushed_params, flushed_buffer = train_dead_unit()
    assert not flushing()
    assert (buffer != 0).all() and (buffer.abs() < torch.finfo(torch.float32).tiny).all()
    assert (flushed_buffer == 0).all()
    assert all(torch.equal(a, b) for a, b in zip(params, flushed_params, strict=True))


def test_training_flushes_subnormals_and_restores_the_default(run, data_paths, tmp_path, monkeypatch):
    seen = []
    train_epoch = epochs.train_epoch
    monkeypatch.setattr(train, "train_epoch", lambda *args: seen.append(flushing()) or train_epoch(*args))
    run["training"]["epochs"] = 2
    train.train_run(run, data_paths, tmp_path / "run")
    assert seen == [True, True] and not flushing()


@pytest.mark.parametrize(("momentum", "weight_decay"), [(0.0, 0.0), (0.9, 0.0), (0.9, 1e-3)])
def test_fused_sgd_gives_torch_optim_sgds_numbers_state_and_resume(momentum, weight_decay):
    from htsep.training.sgd import FusedSGD

    def layers():
        gen = torch.Generator().manual_seed(1)
        return [torch.randn(7, 5, generator=gen), torch.randn(7, generator=gen), torch.randn(3, 7, generator=gen)]

    ours, theirs, resumed = layers(), layers(), layers()
    groups = lambda ps: [{"params": ps[:2], "lr": 0.1}, {"params": ps[2:], "lr": 0.03}]  # noqa: E731
    sgd = FusedSGD(groups(ours), momentum, weight_decay)
    reference = torch.optim.SGD(groups(theirs), lr=0.1, momentum=momentum, weight_decay=weight_decay, fused=True)
    gen = torch.Generator().manual_seed(2)
    for step in range(4):
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        if step == 3:  # resume from torch's state after three steps: the fourth step is the same
            for p, q in zip(resumed, theirs, strict=True):
                p.copy_(q)
            again = FusedSGD(groups(resumed), momentum, weight_decay)
            again.load_state_dict(reference.state_dict())
            for p, g in zip(resumed, grads, strict=True):
                p.grad = g.clone()
            again.step()
        for ps in (ours, theirs):
            for p, g in zip(ps, grads, strict=True):
                p.grad = g.clone()
        sgd.step()
        reference.step()
        assert all(torch.equal(p, q) for p, q in zip(ours, theirs, strict=True))
    assert all(torch.equal(p, q) for p, q in zip(resumed, theirs, strict=True))
    assert not torch.equal(ours[0], layers()[0])
    state, expected = sgd.state_dict(), reference.state_dict()
    assert state["param_groups"] == expected["param_groups"]
    assert state["state"].keys() == expected["state"].keys() == ({0, 1, 2} if momentum else set())
    assert all(torch.equal(state["state"][i]["momentum_buffer"], expected["state"][i]["momentum_buffer"])
               for i in state["state"])


def test_fused_sgd_steps_parameters_that_require_grad_and_clears_their_gradients():
    from htsep.training.sgd import FusedSGD

    w = torch.ones(3, requires_grad=True)
    sgd = FusedSGD([{"params": [w], "lr": 0.5}], 0.0, 0.0)
    (2 * w).sum().backward()
    sgd.step()
    assert torch.equal(w.detach(), torch.zeros(3)) and w.requires_grad
    sgd.zero_grad()
    assert w.grad is None


def test_training_does_not_import_torch_dynamo(run, data_paths, tmp_path):
    """torch.optim's first use imports torch._dynamo (about 1 s of every job's start); training must not need it."""
    import subprocess
    import sys

    run["training"]["epochs"] = 1
    script = ("import json, sys; from htsep.training.runs import train_run; "
              f"train_run(json.loads(sys.argv[1]), {json.dumps({k: str(v) for k, v in data_paths.items()})}, "
              f"{str(tmp_path)!r}); assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'")
    done = subprocess.run([sys.executable, "-c", script, json.dumps(run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "summary.json").exists()
