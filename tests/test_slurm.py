"""The SLURM profile: every job's resources resolve in a dry run that never needs SLURM (fast), and the test study
run through a real single-node SLURM cluster gives the local results (marker `slurm`, tests/cluster/slurm_e2e.sh)."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from .conftest import REPO, SNAKEMAKE, copy_workflow, study_train_jobs

E2E = REPO / "tests/cluster/slurm_e2e.sh"
SLURM_TOOLS = ["sbatch", "srun", "salloc", "squeue", "sacct", "scancel", "sinfo", "scontrol", "sacctmgr", "sshare"]
# Read-only query the plugin makes whenever it is imported (for its --help text), local runs included.
PLUGIN_IMPORT_QUERY = "scontrol show config"


def stub_slurm(bin_dir):
    """SLURM commands that only record their call and fail, so no cluster (real or not) can be reached."""
    bin_dir.mkdir(exist_ok=True)
    calls = bin_dir / "calls.log"
    calls.unlink(missing_ok=True)
    for tool in SLURM_TOOLS:
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\necho "{tool}: stub, no cluster" >&2\nexit 1\n')
        stub.chmod(0o755)
    return calls


def dry_run(workdir, *configfiles):
    """`snakemake -n` with the SLURM profile, SLURM commands stubbed; returns (output, SLURM commands called)."""
    calls = stub_slurm(workdir / "slurm_stubs")
    env = {**os.environ, "PATH": f"{workdir / 'slurm_stubs'}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(SNAKEMAKE), "-n", "--workflow-profile", "profiles/slurm", "--configfile", "config/test.yaml",
         *configfiles],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"dry run failed:\n{output[-4000:]}"
    assert "Using workflow specific profile profiles/slurm" in output
    return output, calls.read_text().splitlines() if calls.exists() else []


def planned_resources(output):
    """(rule, {resource: value}) of every job of a dry run, grouped jobs included."""
    jobs = []
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", output):
        rule = re.match(r"\s*(?:local)?rule (\w+):", block)
        if rule:
            line = re.search(r"^\s*resources: (.*)$", block, re.MULTILINE)
            pairs = (item.split("=", 1) for item in line.group(1).split(", ")) if line else ()
            jobs.append((rule.group(1), dict(pairs)))
    return jobs


def execution_config():
    execution = {}
    for name in ("config/config.yaml", "config/test.yaml"):
        execution.update((yaml.safe_load((REPO / name).read_text()) or {}).get("execution") or {})
    return execution


def test_slurm_dry_run_resolves_every_resource_without_slurm(tmp_path):
    workdir = copy_workflow(tmp_path)
    output, calls = dry_run(workdir)
    jobs = planned_resources(output)
    stats = re.search(r"Job stats:.*?\ntotal\s+(\d+)", output, re.DOTALL)
    assert stats and len(jobs) == int(stats.group(1)), "a job without a parsable block in the dry run"
    assert {rule for rule, _ in jobs} >= {"prepare_data", "train", "aggregate", "stats", "paper_macros", "paper"}
    for rule, resources in jobs:
        assert re.fullmatch(r"\d+", resources.get("mem_mb", "")), f"{rule}: no mem_mb in {resources}"
        assert re.fullmatch(r"\d+", resources.get("runtime", "")), f"{rule}: no runtime in {resources}"
    execution = execution_config()
    train = [resources for rule, resources in jobs if rule == "train"]
    assert len(train) == study_train_jobs()
    for resources in train:
        assert int(resources["runtime"]) == execution["train_runtime"]  # attempt 1
        assert int(resources["mem_mb"]) == execution["train_mem_mb"]
        assert resources["gpu"] == "0"
    assert "Group job train" in output  # the train jobs are planned as grouped submissions
    # The dry run neither submits nor polls: the only SLURM command is the plugin's import-time config query.
    assert set(calls) <= {PLUGIN_IMPORT_QUERY}, f"the dry run called SLURM: {calls}"
    assert not re.search(r"submitted with SLURM jobid", output)

    gpu = tmp_path / "gpu_test.yaml"
    gpu.write_text(yaml.safe_dump({"execution": {"gpu": True}}))
    output, calls = dry_run(workdir, str(gpu))
    train = [resources for rule, resources in planned_resources(output) if rule == "train"]
    assert len(train) == study_train_jobs() and all(resources["gpu"] == "1" for resources in train)
    assert set(calls) <= {PLUGIN_IMPORT_QUERY}, f"the dry run called SLURM: {calls}"


def slurm_unavailable():
    """Why this machine cannot run the SLURM end-to-end test, or None."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return f"snakemake-executor-plugin-slurm is not installed in {sys.prefix} (pip install -e '.[slurm]')"
    if not shutil.which("timeout"):
        return "coreutils `timeout` is missing"
    if shutil.which("scontrol"):
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=60)
        if ping.returncode == 0 and "UP" in ping.stdout:
            return None  # a running cluster is used as it is
    if os.geteuid() != 0:
        return "SLURM is not running and starting the test cluster (tests/cluster/slurm_cluster.sh up) needs root"
    missing = [tool for tool in ("slurmctld", "slurmd", "sbatch", "munged") if not shutil.which(tool)]
    if missing and not shutil.which("apt-get"):
        return f"SLURM is not installed ({', '.join(missing)} missing) and there is no apt-get to install it"
    return None


@pytest.mark.slurm
def test_test_study_through_slurm_equals_the_local_run(request, tmp_path):
    if os.environ.get("HTSEP_SKIP_SLURM") == "1":
        pytest.skip("HTSEP_SKIP_SLURM=1 is set: the end-to-end run through SLURM was skipped on request")
    problem = slurm_unavailable()
    if problem:
        pytest.fail(f"cannot run the SLURM end-to-end test: {problem}. Set HTSEP_SKIP_SLURM=1 to skip it.")
    local_study = request.getfixturevalue("test_study")  # only now: the skip/fail above stays instant
    result = subprocess.run(
        ["bash", str(E2E), "--local-study", str(local_study)],
        cwd=REPO, env={**os.environ, "HTSEP_BIN": str(SNAKEMAKE.parent)},
        capture_output=True, text=True, timeout=2400,
    )
    (tmp_path / "slurm_e2e.log").write_text(result.stderr + result.stdout)
    assert result.returncode == 0, (
        f"{E2E.name} exited with {result.returncode} (full log: {tmp_path / 'slurm_e2e.log'}):\n"
        f"{result.stderr[-8000:]}\n{result.stdout[-2000:]}"
    )
    assert "SLURM e2e: PASS" in result.stdout
    print(result.stdout)
