"""Mechanism experiments: the relaxation Jacobian and its spectrum against finite differences and closed forms,
the sweep drivers on tiny synthetic data, and `snakemake mechanism` end to end."""

import json
import math

import pandas as pd
import pytest
import torch

from htsep.config import load_config
from htsep.data import prepare_dataset
from htsep.dynamics import (
    coupling_matrix,
    fixed_point_residual,
    relaxation_jacobian,
    relaxation_spectrum,
    spectral_radius,
    symmetric_jacobian,
)
from htsep.mechanism import (
    dt_conditions,
    landscape_analysis,
    landscape_plan,
    run_outcomes,
    stress_analysis,
    stress_plan,
    train_sweep,
)
from htsep.model import EPNetwork, phi_gradients

from .conftest import REPO, copy_workflow, snakemake

HTS = {"distribution": "normal", "mean": 0.3, "std": 0.1, "clip_min": 0.1, "clip_max": 0.6}


def linear_net(dt, sizes=(8, 6, 5, 3), seed=1, scale=0.3):
    """A float64 net whose units stay in the hard sigmoid's linear region for states in [0, 1]."""
    net = EPNetwork(list(sizes), dt, seed=seed, dtype=torch.float64)
    net.weights = [scale * w for w in net.weights]
    net.biases = [torch.full_like(b, 0.5) for b in net.biases]
    if isinstance(dt, float):
        net.dt = [torch.full_like(d, dt) for d in net.dt]  # exactly dt in float64 (sampled dt are float32)
    return net


def step_map(net, x):
    """The relaxation step as a function of the flattened free state [B, N]."""
    def f(flat):
        parts = list(torch.split(flat, net.sizes[1:], -1))
        new = net.step(parts, net.drives(x))
        return torch.cat(new, -1)
    return f


def finite_difference_jacobian(net, x, states, eps=1e-6):
    f, flat = step_map(net, x), torch.cat(states, -1)
    eye = torch.eye(flat.shape[-1], dtype=flat.dtype)
    columns = [(f(flat + eps * eye[j]) - f(flat - eps * eye[j])) / (2 * eps) for j in range(flat.shape[-1])]
    return torch.stack(columns, -1)  # [B, N, N]: column j = dF/ds_j


@pytest.mark.parametrize("dt", [0.3, HTS], ids=["uniform", "heterogeneous"])
def test_jacobian_matches_finite_difference(dt):
    torch.manual_seed(0)
    net = linear_net(dt)
    x = torch.rand(5, 8, dtype=torch.float64)
    states = [torch.rand(5, n, dtype=torch.float64) for n in net.sizes[1:]]
    u = torch.cat(phi_gradients(states, net.weights, net.drives(x)), -1)
    assert ((u > 0) & (u < 1)).all()  # every unit in the linear region
    jac = relaxation_jacobian(net, x, states)
    assert jac.shape == (5, 14, 14)
    assert torch.allclose(jac, finite_difference_jacobian(net, x, states), atol=1e-8)
    # The coupling part is the symmetric layered H: blocks W_l between adjacent layers only.
    h = coupling_matrix(net)
    assert torch.equal(h, h.mT) and torch.equal(h[6:11, :6], net.weights[1]) and not h[:6, 11:].any()


def test_saturated_units_have_zero_slope_rows():
    torch.manual_seed(1)
    net = linear_net(HTS)
    net.biases[0][:2] = 5.0  # sigma saturates at 1 ...
    net.biases[1][0] = -5.0  # ... and at 0
    x = torch.rand(4, 8, dtype=torch.float64)
    states = [torch.rand(4, n, dtype=torch.float64) for n in net.sizes[1:]]
    jac = relaxation_jacobian(net, x, states)
    dt = torch.cat(net.dt)
    for i in (0, 1, 6):  # row i = (1 - dt_i) e_i: sigma'(u_i) = 0
        expected = torch.zeros(14, dtype=torch.float64)
        expected[i] = 1 - dt[i]
        assert torch.allclose(jac[:, i], expected.expand(4, -1))
    assert torch.allclose(jac, finite_difference_jacobian(net, x, states), atol=1e-8)


def test_spectrum_is_real_and_matches_eigvals_with_mixed_saturation():
    torch.manual_seed(2)
    nets = [linear_net(d, seed=s, scale=1.5) for d, s in ((0.4, 0), (HTS, 1))]
    for net in nets:  # a different set of saturated units in every sample
        net.biases = [torch.randn_like(b) for b in net.biases]
    net = EPNetwork.stack(nets)  # leading run axis, as for the stacked training
    x = torch.rand(2, 7, 8, dtype=torch.float64)
    states = [torch.rand(2, 7, n, dtype=torch.float64) for n in net.sizes[1:]]
    jac = relaxation_jacobian(net, x, states)
    eig = torch.linalg.eigvals(jac)
    assert eig.imag.abs().max() < 1e-9  # similar to a symmetric matrix
    spectrum = relaxation_spectrum(net, x, states, chunk=3)  # chunked, padded blocks
    assert torch.allclose(spectrum.eigenvalues, eig.real.sort(-1).values, atol=1e-10)
    sym = torch.linalg.eigvalsh(symmetric_jacobian(net, x, states))
    assert torch.allclose(sym, spectrum.eigenvalues, atol=1e-10)
    assert torch.allclose(spectral_radius(jac), spectrum.eigenvalues.abs().amax(-1), atol=1e-10)
    n = spectrum.n_coupled
    assert 0 < int(n.min()) < int(n.max()) < 14  # the padding path is exercised
    coupled = spectrum.coupled
    assert torch.equal(coupled.isfinite().sum(-1), n)
    # dt-free coupling gain: the top eigenvalue of H restricted to each sample's unsaturated units
    u = torch.cat(phi_gradients(states, net.weights, net.drives(x)), -1)
    h = coupling_matrix(net)
    for r in range(2):
        for b in range(7):
            active = torch.nonzero((u[r, b] > 0) & (u[r, b] < 1)).flatten()
            top = torch.linalg.eigvalsh(h[r][active][:, active])[-1]
            assert float(spectrum.coupling_max[r, b]) == pytest.approx(float(top), abs=1e-12)


@pytest.mark.parametrize("dt", [0.2, 0.9])
def test_uniform_spectrum_is_one_minus_dt_plus_dt_times_coupling_eigenvalues(dt):
    # One hidden layer, all units linear: H is bipartite with the singular values of W_2 as +-eigenvalues, so
    # J = (1 - dt) I + dt H has eigenvalues 1 - dt +- dt s_k and 1 - dt (the remaining hidden modes).
    net = linear_net(dt, sizes=(4, 5, 3), scale=0.0)
    singular = torch.tensor([1.6, 0.7, 0.2], dtype=torch.float64)
    u, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    net.weights[1] = (u[:, :3] * singular).mT.contiguous()  # [3, 5] with singular values `singular`
    states = [torch.full((2, 5), 0.1, dtype=torch.float64), torch.full((2, 3), 0.1, dtype=torch.float64)]
    x = torch.zeros(2, 4, dtype=torch.float64)
    rest = torch.full((2,), 1 - dt, dtype=torch.float64)
    expected = torch.cat([1 - dt + dt * singular, 1 - dt - dt * singular, rest]).sort().values
    spectrum = relaxation_spectrum(net, x, states)
    assert int(spectrum.n_coupled.min()) == 8
    assert spectrum.coupling_max.tolist() == pytest.approx([1.6, 1.6], abs=1e-12)  # = 1 - dt (1 - mu_max) below
    assert torch.allclose(spectrum.eigenvalues, expected.expand(2, -1), rtol=0, atol=1e-12)
    rho = max(abs(1 - dt + dt * 1.6), abs(1 - dt - dt * 1.6))
    assert spectral_radius(relaxation_jacobian(net, x, states)) == pytest.approx([rho, rho], abs=1e-12)
    if dt == 0.9:  # 1 - dt - dt * 1.6 < -1: a period-2 mode, the relaxation overshoots
        assert float(spectrum.eigenvalues[0, 0]) < -1


def test_spectral_radius_is_the_contraction_rate_of_the_relaxation():
    torch.manual_seed(3)
    net = linear_net(HTS, scale=0.8)
    x = torch.rand(3, 8, dtype=torch.float64)
    fixed = net.relax(x, 3000)
    assert float(fixed_point_residual(net, x, fixed).max()) < 1e-13
    rho = relaxation_spectrum(net, x, fixed).eigenvalues.abs().amax(-1)
    assert float(rho.max()) < 1
    # Along the slowest eigenvector of J, the nonlinear relaxation's error shrinks by rho every step ...
    eigenvalues, vectors = torch.linalg.eig(relaxation_jacobian(net, x, fixed))
    top = eigenvalues.abs().argmax(-1)
    direction = vectors.real[torch.arange(3), :, top]  # [B, N] (the spectrum is real)
    start = [s + d for s, d in zip(fixed, torch.split(1e-7 * direction, net.sizes[1:], -1), strict=True)]

    def error_after(states, steps):
        states = net.relax(x, steps, init=states)
        return torch.cat([s - f for s, f in zip(states, fixed, strict=True)], -1).norm(dim=-1)

    assert torch.allclose((error_after(start, 10) / error_after(start, 0)) ** 0.1, rho, rtol=1e-5)
    # ... and no perturbation shrinks more slowly than that.
    start = [s + 1e-7 * torch.randn_like(s) for s in fixed]
    assert ((error_after(start, 60) / error_after(start, 0)) ** (1 / 60) <= rho + 1e-6).all()


def test_dt_conditions_swap_uniform_and_hts():
    uniform = [torch.full((4,), 0.2), torch.full((2,), 0.2)]
    hts = [torch.tensor([0.25, 0.3, 0.35, 0.4]), torch.tensor([0.2, 0.3])]
    conditions = dt_conditions(uniform, {"hts_normal": hts}, [0.2, 0.3], swap_hts=True)
    assert [(s, k) for s, k, _ in conditions] == [("own", "own"), ("uniform 0.3", "uniform"),
                                                  ("hts_normal", "hts")]
    assert conditions[2][2] is not uniform and torch.equal(conditions[2][2][0], hts[0])
    conditions = dt_conditions(hts, {"hts_normal": hts}, [0.2, 0.3], swap_hts=True)
    assert [s for s, _, _ in conditions] == ["own", "uniform 0.2", "uniform 0.3"]
    assert float(conditions[2][2][1][0]) == pytest.approx(0.3)


def write_run(folder, acc, diverged=False):
    folder.mkdir(parents=True)
    epochs = len(acc)
    metrics = pd.DataFrame({"epoch": range(1, epochs + 1), "test_acc": acc, "diverged": [False] * epochs,
                            "free_residual": 1e-5, "relax_steps_to_tol": 30.0, "relax_unconverged_frac": 0.1,
                            "relax_oscillation": 0.01})
    if diverged:
        metrics.loc[epochs - 1, ["test_acc", "diverged"]] = [math.nan, True]
    metrics.to_csv(folder / "metrics.csv", index=False)
    summary = {"dataset": "synthetic", "dataset_label": "Synthetic", "variant": folder.parent.name, "seed": 0,
               "final_test_acc": None if diverged else acc[-1], "best_test_acc": max(a for a in acc if a == a),
               "epochs_completed": epochs, "diverged": diverged, "diverged_epoch": epochs if diverged else None,
               "dt_stats": [{"layer": 1, "mean": 0.3, "std": 0.1}, {"layer": 2, "mean": 0.2, "std": 0.0}],
               "config": {"model": {"sizes": [4, 3, 1]}, "sweep": {"name": "stress", "lr_multiplier": 2, "beta": 0.1}}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder / "summary.json"


def test_run_outcomes_classify_breakage(tmp_path):
    paths = [write_run(tmp_path / "fine" / "s", [0.5, 0.7, 0.8]),
             write_run(tmp_path / "collapsed" / "s", [0.5, 0.8, 0.7]),
             write_run(tmp_path / "chance" / "s", [0.16, 0.15, 0.15]),
             write_run(tmp_path / "diverged" / "s", [0.5, 0.6, math.nan], diverged=True)]
    out = run_outcomes(paths, collapse_drop=0.05, chance_acc=0.2).set_index("variant")
    assert out["broke"].to_dict() == {"fine": False, "collapsed": True, "chance": True, "diverged": True}
    assert out.loc["collapsed", "collapsed"] and out.loc["collapsed", "max_drop"] == pytest.approx(0.1)
    assert out.loc["chance", "chance_level"] and not out.loc["chance", "collapsed"]
    assert out.loc["diverged", "diverged"] and not out.loc["diverged", "chance_level"]
    assert out.loc["fine", "lr_multiplier"] == 2 and out.loc["fine", "sweep_name"] == "stress"
    # dt pooled over the 3 + 1 neurons: mean (3 * 0.3 + 0.2) / 4
    assert out.loc["fine", "dt_mean"] == pytest.approx(0.275)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    """config.yaml + test.yaml, with mechanism sweeps cut to a few runs on 15 images per class."""
    config = load_config([REPO / "config/config.yaml", REPO / "config/test.yaml"])
    config["training"] |= {"probe_size": 20}
    small = {"train_subset": 15, "test_subset": 60, "epochs": 2, "seeds": [0, 1]}
    config["mechanism"]["landscape"] |= {**small, "means": [0.2, 0.6], "stds": [0, 0.1]}
    config["mechanism"]["stress"] |= {**small, "lr_multipliers": [1, 20], "betas": [0.1, 1.0]}
    root = tmp_path_factory.mktemp("data")
    paths = prepare_dataset("synthetic", root, synthetic={"n_train": 300, "n_test": 100, "seed": 0})
    return config, {k: str(v) for k, v in paths.items()}


def run_plan(plan, workdir, data):
    for jobs in plan.values():
        train_sweep([run for _, run in jobs], [str(workdir / folder) for folder, _ in jobs], data)
    return [workdir / folder / "summary.json" for jobs in plan.values() for folder, _ in jobs]


def test_landscape_driver(tiny_config, tmp_path):
    config, data = tiny_config
    plan = landscape_plan(config)
    assert list(plan) == ["0.2", "0.6"] and all(len(jobs) == 4 for jobs in plan.values())
    summaries = run_plan(plan, tmp_path, data)
    outputs = {k: str(tmp_path / f"out/{k}.{ext}") for k, ext in (("runs", "parquet"), ("runs_csv", "csv"),
                                                                  ("table", "csv"), ("pdf", "pdf"), ("png", "png"))}
    landscape_analysis(summaries, outputs, {"landscape": config["mechanism"]["landscape"], "chance_acc": 0.2,
                                            "analysis": {"collapse_drop": 0.05, "alpha": 0.05}})
    runs, table = pd.read_parquet(outputs["runs"]), pd.read_csv(outputs["table"])
    assert len(runs) == 8 and set(zip(runs["mean"], runs["std"], strict=True)) == {(0.2, 0), (0.2, 0.1), (0.6, 0),
                                                                                  (0.6, 0.1)}
    assert (runs.loc[runs["std"] == 0, "dt_std"] < 1e-6).all() and (runs.loc[runs["std"] > 0, "dt_std"] > 0.05).all()
    assert runs["dt_mean"].to_numpy() == pytest.approx(runs["mean"].to_numpy(), abs=0.04)
    assert len(table) == 4 and (table["n_runs"] == 2).all()
    assert (table["break_cp_low"] <= table["break_rate"]).all()
    assert (table["break_rate"] <= table["break_cp_high"]).all()
    summary = json.loads(summaries[0].read_text())
    assert summary["config"]["training"]["epochs"] == 2 and summary["config"]["dataset"]["train_subset"] == 15
    assert len(pd.read_csv(summaries[0].parent / "metrics.csv")) == 2


def test_stress_driver(tiny_config, tmp_path):
    config, data = tiny_config
    plan = stress_plan(config)
    assert list(plan) == ["1", "20"] and all(len(jobs) == 2 * 2 * 2 for jobs in plan.values())
    summaries = run_plan(plan, tmp_path, data)
    outputs = {k: str(tmp_path / f"out/{k}.{ext}") for k, ext in (
        ("runs", "parquet"), ("runs_csv", "csv"), ("table", "csv"), ("compare", "csv"), ("pdf", "pdf"), ("png", "png"))}
    stress_analysis(summaries, outputs, {"stress": config["mechanism"]["stress"], "variants": config["variants"],
                                         "chance_acc": 0.2, "analysis": {"collapse_drop": 0.05, "alpha": 0.05}})
    runs, table, compare = (pd.read_parquet(outputs["runs"]), pd.read_csv(outputs["table"]),
                            pd.read_csv(outputs["compare"]))
    assert len(runs) == 16 and len(table) == 8 and len(compare) == 4
    assert set(compare["variant"]) == {"hts_normal"} and set(compare["reference"]) == {"uniform_0.2"}
    assert compare["p_holm"].between(compare["p"], 1).all()
    summary = json.loads((tmp_path / "results/mechanism/stress/synthetic/lr20_beta1/uniform_0.2/seed0/"
                                     "summary.json").read_text())
    assert summary["config"]["training"]["lr"] == pytest.approx([20 * lr for lr in config["training"]["lr"]])
    assert summary["config"]["training"]["beta"] == 1.0
    # x20 learning rates break at least some runs; x1 break none of them on this easy task
    broke = runs.groupby("lr_multiplier")["broke"].sum()
    assert broke[20] > 0 and broke[1] == 0


def test_mechanism_workflow_end_to_end(tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / "batch.yaml").write_text("execution: {batch_runs: true, runs_per_job: 9}\n")
    snakemake(workdir, "mechanism", "--configfile", "config/test.yaml", "batch.yaml")
    spectral = pd.read_parquet(workdir / "results/mechanism/spectral.parquet")
    # 9 grid runs x epochs {1, 2} x 3 dt conditions (own + 2 swaps) x {T1, long}
    assert len(spectral) == 9 * 2 * 3 * 2
    assert set(spectral["relax"]) == {"T1", "long"} and set(spectral["steps"]) == {20, 100}
    assert spectral.groupby(["variant", "seed", "epoch", "relax"]).size().eq(3).all()
    own = spectral[spectral["dt_source"] == "own"]
    assert (own.loc[own["variant"] == "hts_normal", "dt_std"] > 0.02).all()
    assert (spectral.loc[spectral["dt_kind"] == "uniform", "dt_std"] < 1e-6).all()
    # a uniform run given the HTS dt of its seed uses exactly that run's dt
    swapped = spectral[(spectral["dt_source"] == "hts_normal")].set_index(["seed", "epoch", "relax"])
    hts_own = own[own["variant"] == "hts_normal"].set_index(["seed", "epoch", "relax"])
    assert swapped["dt_mean"].to_numpy() == pytest.approx(hts_own.loc[swapped.index, "dt_mean"].to_numpy())
    for column in ("frac_rho_ge_1", "frac_fixed", "relax_unconverged_frac", "active_frac_mean"):
        assert spectral[column].between(0, 1).all()
    assert (spectral["rho_median"] > 0).all() and spectral["rho_median"].notna().all()
    # the spectral radius is at least every unit's 1 - dt (saturated units contribute exactly that)
    assert (spectral["rho_max"] >= 1 - spectral["dt_mean"] - spectral["dt_std"] * 3).all()
    landscape = pd.read_csv(workdir / "results/mechanism/landscape.csv")
    assert len(landscape) == 4 and (landscape["n_runs"] == 2).all()
    stress = pd.read_csv(workdir / "results/mechanism/stress.csv")
    assert len(stress) == 2 * 2 * 2 and (stress["n_runs"] == 2).all()
    assert len(pd.read_csv(workdir / "results/mechanism/stress_compare.csv")) == 4
    tex = (workdir / "paper/generated/mechanism.tex").read_text()
    for name in ("MechHTSRho", "MechMatchedRho", "MechRefRho", "MechHTSRhoVsMatched", "MechSwapText",
                 "MechLandscapeText", "MechStressPooled", "MechStressSignificantText"):
        assert f"\\newcommand{{\\{name}}}" in tex
    for figure in ("spectral_radius", "eigenvalue_moduli", "relaxation", "landscape", "stress"):
        assert (workdir / f"figures/mechanism/{figure}.pdf").stat().st_size > 1000


def test_plans_follow_the_config(tiny_config):
    config, _ = tiny_config
    from htsep.config import ConfigError
    from htsep.mechanism import spectral_runs

    config = {**config, "mechanism": {**config["mechanism"], "spectral": {
        **config["mechanism"]["spectral"], "variants": ["uniform_0.2", "not_in_grid"], "seeds": [1]}}}
    assert spectral_runs(config) == [("synthetic", "uniform_0.2", 1)]  # unknown variants are left out
    config["mechanism"]["spectral"]["variants"] = ["not_in_grid"]
    with pytest.raises(ConfigError, match="mechanism.spectral.variants"):
        spectral_runs(config)
