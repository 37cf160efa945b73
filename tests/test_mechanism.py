"""`snakemake mechanism` end to end on config/test.yaml: spectra, sweeps, their tables, figures and macros."""

import pandas as pd
import pytest

from htsep.report.figures import FIGURES

from .conftest import copy_workflow, snakemake


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
    tex = (workdir / "paper/generated/mechanism.tex").read_text()
    for name in ("MechHTSRho", "MechMatchedRho", "MechRefRho", "MechHTSRhoVsMatched", "MechSwapText",
                 "MechLandscapeText"):
        assert f"\\newcommand{{\\{name}}}" in tex
    for figure in FIGURES:
        if figure.mechanism:
            assert (workdir / figure.path("pdf")).stat().st_size > 1000, figure.name
