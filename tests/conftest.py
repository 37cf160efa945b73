"""Shared fixtures: one end-to-end workflow run on config/test.yaml, reused by every workflow test."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "profiles", "paper", "environment.yml"]
# Local runs use no cluster: with SLURM installed but its controller down, the SLURM executor plugin's
# `scontrol show config` at every snakemake start waits 9-10 s; an empty SLURM_CONF makes it fail at once.
LOCAL_ENV = {**os.environ, "SLURM_CONF": "/dev/null"}


def config_with(tmp_path: Path, text: str = "", test_config: bool = False) -> dict:
    """config/config.yaml (and config/test.yaml with ``test_config``) with ``text`` as one more config file on top."""
    from htsep.study import load_config

    extra = tmp_path / "extra.yaml"
    extra.write_text(text)
    return load_config([REPO / "config" / "config.yaml", *([REPO / "config" / "test.yaml"] if test_config else []),
                        extra])


def study_train_jobs() -> int:
    """The single EP runs the test study trains: the grid's, the confirmatory experiment's and the factorial's cells
    the grid lacks (counted from the test config's own lists)."""
    from htsep.experiments.confirmatory.plan import arms
    from htsep.study import load_config

    config = load_config([REPO / "config/config.yaml", REPO / "config/test.yaml"])
    grid, preregistration, factorial = config["grid"], config["preregistration"], config["factorial"]
    keys = {(p, d, v, s) for p in config["run_protocols"] for d in config["datasets"] for v in grid["variants"]
            for s in grid["seeds"]}
    keys |= {(arm_protocol, d, v, s) for p in config["run_protocols"] for arm_protocol, v in arms(config, p)
             for d in config["datasets"] for s in preregistration["seeds"]}
    keys |= {(factorial["protocol"], d, v, s) for d in factorial["datasets"] for v in factorial["variants"]
             for s in factorial["seeds"]}
    return len(keys)


def copy_workflow(dest: Path) -> Path:
    """A fresh copy of the workflow (not of results) to run in isolation."""
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("build", "generated", "__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(SNAKEMAKE), "--cores", "2", *args], cwd=workdir, capture_output=True, text=True,
                            env=LOCAL_ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def test_study(tmp_path_factory) -> Path:
    """The whole DAG on config/test.yaml, run once per test session; returns its working directory."""
    workdir = copy_workflow(tmp_path_factory.mktemp("study"))
    snakemake(workdir, "--configfile", "config/test.yaml")
    return workdir
