"""Config validation names the bad key; job slices hold exactly what each job depends on."""

import pytest
import yaml

from htsep.config import ConfigError, run_slice
from htsep.study import load_config

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
BASE = REPO / "config" / "config.yaml"


def with_override(tmp_path, text):
    path = tmp_path / "override.yaml"
    path.write_text(text)
    return [BASE, path]


def test_shipped_configs_validate():
    for extra in ([], ["offline.yaml"], ["test.yaml"]):
        load_config([BASE, *[REPO / "config" / e for e in extra]])


@pytest.mark.parametrize("override,key", [
    ("training: {epohcs: 3}", "training"),
    ("training: {epochs: three}", "training.epochs"),
    ("data: {mnist: {split: random}}", "data.mnist.split"),
    ("variants: [{name: bad, dt: {distribution: constant, value: -0.2}}]", "variants.0.dt"),
    ("variants: [{name: bad, dt: {distribution: normal, mean: 0.3, std: 0.1, clip_min: 0.2, clip_max: 1.3}}]",
     "variants.0.dt"),
    ("model: {hidden: [256, 128]}", "training.lr"),
    ("datasets: [mnist, cifar]", "datasets.1"),
    ("run_protocols: [lab, calibratd]", "run_protocols"),
    ("protocols: {fast: {learning_rate: [0.1, 0.1]}}", "protocols.fast.learning_rate"),
    ("protocols: {long: {epochs: 40}}", "protocols.long.epochs"),
    ("protocols: {bad: {beta: -1}}", "training.beta"),
    ("protocols: {deep: {lr: [0.1]}}", "protocols.deep.lr"),
    ("calibration: {search: {beta: []}}", "calibration.search"),
    ("calibration: {search: {epochs: [1, 2]}}", "calibration.search.epochs"),
    ("calibration: {protocols: {calibrated: uniform_0.7}}", "variants"),
    ("calibration: {protocols: {backprop: uniform_0.2}}", "calibration.protocols.backprop"),
    ("calibration: {backprop_datasets: [cifar]}", "calibration.backprop_datasets.0"),
    ("calibration: {backprop_search: {momentum: [0.0, 1.0]}}", "calibration.backprop_search.momentum.1"),
    ("backprop: {mnist: {loss: mse, momentum: 0.0, lr: [.nan, 0.1]}}", "backprop.mnist.lr.0"),
    ("data: {fashion_mnist: {validation_per_class: 3001}}", "data.fashion_mnist.validation_per_class"),
    ("data: {subset: 600}", "data.fashion_mnist.validation_per_class"),  # EP's search dataset first
])
def test_bad_config_names_the_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=f"config key {key}"):
        load_config(with_override(tmp_path, override))


def test_duplicate_variant_names_rejected(tmp_path):
    dt = "{distribution: constant, value: 0.2}"
    with pytest.raises(ConfigError, match="appear more than once"):
        load_config(with_override(tmp_path, f"variants: [{{name: a, dt: {dt}}}, {{name: a, dt: {dt}}}]"))


def test_defaults_filled_and_later_files_win(tmp_path):
    config = load_config(with_override(tmp_path, "training: {beta: 0.2}\ndata: {subset: 1000}"))
    assert config["training"]["beta"] == 0.2 and config["training"]["free_steps"] == 60
    assert config["data"]["subset"] == 1000 and config["data"]["mnist"]["split"] == "official"


def test_run_slice_changes_only_with_its_own_variant(tmp_path):
    base = load_config([BASE])
    text = yaml.safe_dump({"variants": [dict(v, dt=dict(v["dt"], std=0.08)) if v["name"] == "hts_gamma" else v
                                        for v in base["variants"]]})
    changed = load_config(with_override(tmp_path, text))
    for variant in ("uniform_0.2", "hts_normal", "hts_gamma"):
        same = run_slice(base, "mnist", variant, 0) == run_slice(changed, "mnist", variant, 0)
        assert same == (variant != "hts_gamma")
    assert run_slice(base, "mnist", "hts_gamma", 0)["model"]["sizes"] == [784, 256, 10]


def test_variants_are_defined_apart_from_what_the_grid_trains(tmp_path):
    """A variant's provenance is no part of its runs; defining a variant trains it nowhere until an experiment
    selects it (grid.variants), and a selection names defined variants only."""
    base = load_config([BASE])
    uniform = next(v for v in base["variants"] if v["name"] == "uniform_1.0")
    assert uniform["provenance"] and "uniform_1.0" not in base["grid"]["variants"]
    text = yaml.safe_dump({"variants": [dict(v, provenance="elsewhere") for v in base["variants"]]})
    relabelled = load_config(with_override(tmp_path, text))
    assert run_slice(relabelled, "mnist", "uniform_1.0", 0) == run_slice(base, "mnist", "uniform_1.0", 0)
    assert "provenance" not in run_slice(base, "mnist", "uniform_1.0", 0)["variant"]
    with pytest.raises(ConfigError, match="config key grid.variants: 'uniform_0.7' is not in variants"):
        load_config(with_override(tmp_path, "grid: {variants: [uniform_0.3, uniform_0.7], seeds: [0]}"))


def test_mirror_is_not_part_of_a_run(tmp_path):
    offline = load_config(with_override(tmp_path, "data: {mirror: /somewhere}"))
    assert run_slice(offline, "mnist", "uniform_0.2", 1) == run_slice(load_config([BASE]), "mnist", "uniform_0.2", 1)


def test_protocols_override_training_and_name_their_runs(tmp_path):
    config = load_config(with_override(tmp_path, "protocols: {lab: {}, calm: {momentum: 0.0, beta: 0.5}}\n"
                                                  "run_protocols: [lab, calm]"))
    lab, calm = (run_slice(config, "mnist", "uniform_0.2", 0, p) for p in ("lab", "calm"))
    assert lab["training"] == run_slice(config, "mnist", "uniform_0.2", 0)["training"]  # the lab recipe unchanged
    assert (lab["protocol"], calm["protocol"]) == ("lab", "calm")
    assert calm["training"] == {**lab["training"], "momentum": 0.0, "beta": 0.5}
