"""Robustness: each perturbation does what it says to a trained model (the same noise for every model, levels that
scale one draw, dt changed as declared), a zero perturbation changes nothing, records of an evaluation are accepted
by the config that declared it, bad levels are refused before any job, and the paired analysis recovers a known
difference of drops."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from htsep.config import ConfigError, run_slice
from htsep.data.splits import as_tensors, load_split, normalised
from htsep.ep.model import EPNetwork
from htsep.experiments.robustness import plan
from htsep.experiments.robustness.analysis import effects, per_model
from htsep.experiments.robustness.evaluate import NEW_DRAW, conditions, evaluate_model
from htsep.files import read_torch
from htsep.records import run_digest
from htsep.study import evaluated_runs, load_config
from htsep.training import runs as train

from .conftest import REPO, config_with
from .test_train import CONFIGS, data_paths  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def models(data_paths, tmp_path_factory):  # noqa: F811
    """Two trained lab models of seed 0 (heterogeneous and uniform dt), 2 epochs on the synthetic task."""
    config = load_config(CONFIGS)
    out = {}
    for variant in ("hts_normal", "uniform_0.3"):
        folder = tmp_path_factory.mktemp(variant)
        train.train_run(run_slice(config, "synthetic", variant, 0, "lab"), data_paths, folder)
        out[variant] = folder / "model.pt"
    return out


def spec(config, **changes) -> dict:
    return plan.setting(config) | changes


def evaluated(model, test, setting, tmp_path):
    outputs = {table: tmp_path / f"{model.parent.name}.{table}.csv" for table in plan.TABLES}
    evaluate_model(model, test, setting, outputs)
    return pd.read_csv(outputs["runs"]), pd.read_csv(outputs["conditions"])


def test_clean_accuracy_is_the_recorded_one_and_a_zero_perturbation_changes_nothing(models, data_paths, tmp_path):  # noqa: F811
    setting = spec(load_config(CONFIGS), input_noise=[0.0, 0.5], weight_noise=[0.0, 1.0], draws=2)
    runs, rows = evaluated(models["hts_normal"], data_paths["test"], setting, tmp_path)
    assert runs["clean_accuracy"].iloc[0] == runs["recorded_accuracy"].iloc[0]
    zero = rows[rows["perturbation"].isin(["input_noise", "weight_noise"]) & (rows["level"] == 0)]
    assert len(zero) == 4 and (zero["accuracy"] == runs["clean_accuracy"].iloc[0]).all()
    assert (zero["flipped"] == 0).all()
    strong = rows[rows["perturbation"].isin(["input_noise", "weight_noise"]) & (rows["level"] > 0)]
    assert (strong["flipped"] > 0).all() and (strong["accuracy"] < runs["clean_accuracy"].iloc[0]).all()


def test_a_cut_free_phase_is_relaxed_for_that_many_steps(models, data_paths, tmp_path):  # noqa: F811
    config = load_config(CONFIGS)
    trained_t1 = config["training"]["free_steps"]
    runs, rows = evaluated(models["uniform_0.3"], data_paths["test"], spec(config, free_steps=[1, 3, trained_t1]),
                           tmp_path)
    cut = rows[rows["perturbation"] == "free_steps"].set_index("level")
    assert sorted(cut.index) == [1.0, 3.0]  # the training T1 is the clean condition, not repeated
    ckpt = read_torch(models["uniform_0.3"], "model")
    net = EPNetwork.from_state_dict(ckpt["network"])
    x, y = as_tensors(load_split(data_paths["test"]), None)
    for steps in (1, 3):
        assert cut.loc[float(steps), "accuracy"] == pytest.approx(float((net.predict(x, steps) == y).double().mean()))


def test_every_model_meets_the_same_noise_and_levels_scale_one_draw(models, data_paths):  # noqa: F811
    setting = spec(load_config(CONFIGS), input_noise=[0.1, 0.2], weight_noise=[], free_steps=[], draws=1)
    pixels = load_split(data_paths["test"])["images"].reshape(-1, 784).float() / 255
    seen = {}
    for variant, model in models.items():
        ckpt = read_torch(model, "model")
        net = EPNetwork.from_state_dict(ckpt["network"])
        seen[variant] = [c for c in conditions(net, ckpt["run"], pixels, setting) if c[0] == "input_noise"]
    for a, b in zip(seen["hts_normal"], seen["uniform_0.3"], strict=True):
        assert torch.equal(a[5], b[5])
    low, high = (c[5] for c in seen["hts_normal"])
    inside = ((pixels + 2 * (low - pixels)) > 0) & ((pixels + 2 * (low - pixels)) < 1) & (low > 0) & (low < 1)
    assert inside.float().mean() > 0.3
    assert torch.allclose((high - pixels)[inside], 2 * (low - pixels)[inside], atol=1e-5)


def test_dt_is_changed_after_training_as_declared(models, data_paths):  # noqa: F811
    config = load_config(CONFIGS)
    setting = spec(config, input_noise=[], weight_noise=[], free_steps=[])
    pixels = load_split(data_paths["test"])["images"].reshape(-1, 784).float() / 255
    hts = read_torch(models["hts_normal"], "model")
    net = EPNetwork.from_state_dict(hts["network"])
    swaps = {c[2]: c[4] for c in conditions(net, hts["run"], pixels, setting)}
    assert set(swaps) == {NEW_DRAW, "uniform at its mean"}
    fresh = torch.cat(swaps[NEW_DRAW].dt)
    own = torch.cat(net.dt)
    assert not torch.equal(fresh, own) and 0.2 <= fresh.min() and fresh.max() <= 0.4
    assert torch.equal(torch.cat(swaps["uniform at its mean"].dt), torch.full_like(own, float(own.mean())))
    assert torch.equal(swaps[NEW_DRAW].weights[0], net.weights[0])  # only dt changes
    uniform = read_torch(models["uniform_0.3"], "model")
    net = EPNetwork.from_state_dict(uniform["network"])
    (swap,) = [c[4] for c in conditions(net, uniform["run"], pixels, setting)]
    drawn = torch.cat(swap.dt)
    assert float(drawn.mean()) == pytest.approx(0.3, abs=0.02)  # hts_normal's draw scaled to 0.3 / 0.3
    assert float(drawn.std()) == pytest.approx(0.05, rel=0.35) and float(drawn.std()) > 0


def test_an_evaluation_is_the_record_the_config_declares(models, data_paths, tmp_path):  # noqa: F811
    """The config a robustness row records (its run, as trained, and the setting) digests as the declared one, so
    a record of this evaluation is used, not left out."""
    config = config_with(tmp_path, test_config=True, text="robustness: {experiments: [grid]}\n")
    config["run_protocols"] = ["lab"]
    runs, _ = evaluated(models["hts_normal"], data_paths["test"], plan.setting(config), tmp_path)
    declared = plan.declared(config, evaluated_runs(config))
    assert run_digest(runs["config"].iloc[0]) == run_digest(declared[("lab", "synthetic", "hts_normal", 0)])
    assert len(declared) == 3 * 3  # the grid's variants x seeds of one protocol


@pytest.mark.parametrize(("text", "message"), [
    ("robustness: {input_noise: [0.1, -0.2]}", r"robustness.input_noise: levels are finite and >= 0, got -0.2"),
    ("robustness: {weight_noise: [.nan]}", r"config key robustness.weight_noise.0: nan is not a finite number"),
    ("robustness: {free_steps: [0]}", r"robustness.free_steps: an inference T1 is an integer from 1 to the training"),
    ("robustness: {free_steps: [21]}", r"training T1 \(20 under protocol 'lab'\), got 21"),
    ("robustness: {dt_swap: {heterogeneous: uniform_0.3}}",
     r"robustness.dt_swap.heterogeneous: variant 'uniform_0.3' has no heterogeneous dt"),
])
def test_bad_levels_are_refused_before_any_job(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        config_with(tmp_path, test_config=True, text=text + "\n")


def test_contrasts_are_the_preregistered_then_each_variant_against_the_mean_matched_control():
    config = load_config([REPO / "config" / "config.yaml"])
    found = [(c["contrast"], c["variant"], c["baseline"]) for c in plan.contrasts(config, evaluated_runs(config))]
    assert found[:2] == [("heterogeneity", "hts_normal", "uniform_0.3"), ("standard_ep", "hts_normal", "uniform_1.0")]
    assert "standard_ep_tuned" not in {name for name, _, _ in found}  # its baseline is of another protocol
    assert ("uniform_1.0 vs uniform_0.3", "uniform_1.0", "uniform_0.3") in found
    assert not any(v == b for _, v, b in found) and len(found) == len(set(found))


def simulated_models(shift: float, seeds: int, rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two variants whose drop under one condition differs by ``shift`` (a seed effect shared by both arms)."""
    seed_effect = rng.normal(0, 0.02, seeds)
    runs, rows = [], []
    for variant, offset in (("a", shift), ("b", 0.0)):
        for seed in range(seeds):
            key = {"protocol": "lab", "dataset": "mnist", "variant": variant, "seed": seed}
            runs.append({**key, "dataset_label": "MNIST", "clean_accuracy": 0.97})
            for draw in range(2):
                drop = 0.1 + offset + seed_effect[seed] + rng.normal(0, 0.002)
                rows.append({**key, "perturbation": "input_noise", "level": 0.4, "condition": "sigma 0.4",
                             "draw": draw, "accuracy": 0.97 - drop, "flipped": drop})
    return pd.DataFrame(runs), pd.DataFrame(rows)


@pytest.mark.parametrize("shift", [0.01, 0.0])
def test_the_paired_analysis_recovers_a_known_difference_of_drops(shift):
    runs, rows = simulated_models(shift, 15, np.random.default_rng(3))
    models = per_model(runs, rows)
    assert models["drop"].between(0.0, 0.3).all() and len(models) == 30  # draws averaged
    setting = {"bootstrap": 500, "bootstrap_seed": 0, "ci_level": 0.95, "alpha": 0.05, "power": 0.8,
               "simulations": 200}
    (row,) = effects(models, [{"contrast": "a vs b", "variant": "a", "baseline": "b"}], setting).to_dict("records")
    assert row["n_pairs"] == 15 and row["ci_low"] <= shift <= row["ci_high"]
    assert row["difference"] == pytest.approx(shift, abs=0.002)
    assert row["ci_high"] - row["ci_low"] < 0.005  # paired: the seed effect (10x the noise) cancels
    assert row["detectable"] <= 0.003
    assert (row["p_holm"] < 0.01) == (shift > 0)


def test_input_noise_is_clipped_to_pixels_before_normalising():
    pixels = torch.tensor([[0.0, 0.5, 1.0]])
    out = normalised((pixels + torch.tensor([[-1.0, 0.25, 1.0]])).clamp_(0.0, 1.0), {"mean": 0.5, "std": 0.5})
    assert torch.equal(out, torch.tensor([[-1.0, 0.5, 1.0]]))
    assert math.isclose(float(normalised(torch.tensor([0.3]), None)), 0.3, rel_tol=1e-6)


def test_before_any_evaluation_the_tables_figure_and_section_say_so(tmp_path):
    from htsep.experiments.robustness.analysis import write_robustness
    from htsep.experiments.robustness.paper import robustness_text
    from htsep.experiments.robustness.plots import robustness_figure

    config = load_config(CONFIGS)
    outputs = {name: tmp_path / f"{name}.csv" for name in ("runs", "conditions", "summary", "effects", "provenance")}
    write_robustness({"runs": [], "conditions": []}, {}, outputs,
                     {"declared": [], "robustness": config["robustness"],
                      "contrasts": plan.contrasts(config, evaluated_runs(config))})
    assert pd.read_csv(outputs["effects"]).empty and "clean_accuracy" in pd.read_csv(outputs["runs"]).columns
    robustness_text({"runs": outputs["runs"], "effects": outputs["effects"]}, tmp_path / "robustness.tex",
                    {"robustness": config["robustness"], "contrasts": ["heterogeneity"], "caption": "c"})
    assert "No model has been evaluated yet" in (tmp_path / "robustness.tex").read_text()
    fig = robustness_figure(pd.read_csv(outputs["summary"]), ["synthetic"], config["variants"])
    assert "No model has been evaluated yet." in [t.get_text() for t in fig.axes[0].texts]


def test_a_model_that_failed_in_training_is_left_out_of_the_contrasts(tmp_path):
    from htsep.experiments.robustness.analysis import failed

    runs = pd.DataFrame({"recorded_accuracy": [0.97, float("nan"), 0.1, 0.5],
                         "clean_accuracy": [0.97, 0.098, 0.1, 0.5]})
    assert failed(runs, 0.2).tolist() == [False, True, True, False]
