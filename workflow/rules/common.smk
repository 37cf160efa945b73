from htsep.experiments.calibration.plan import declared as calibration_declared  # noqa: E402
from htsep.fingerprint import script_fingerprint  # noqa: E402
from htsep.experiments.frontier.plan import stage_members  # noqa: E402


def code(script):
    """Fingerprint of the library code a rule script executes (htsep.fingerprint), a params entry of each
    workflow job: editing that code reruns the job and everything downstream."""
    return script_fingerprint(Path(workflow.basedir) / "workflow" / "scripts" / script)


def calibration_summaries():
    """The summary.json of every run of the calibration searches this invocation trains (none when config key
    records.only is set)."""
    if config["records"]["only"]:
        return []
    return [
        f"{CALIBRATION}/{dataset}/{variant}/{point}/seed{seed}/summary.json"
        for dataset, variant, point, seed in calibration_declared(config)
    ]


def frontier_outputs(stage):
    """The run files of one training job (every variant x seed of one level), as output patterns."""
    variants, seeds = stage_members(config, stage)
    return [
        f"{FRONTIER}/{stage}/{{dataset}}/{{axis}}/{{level}}/{v}/seed{s}/{name}"
        for v in variants
        for s in seeds
        for name in ("metrics.csv", "summary.json")
    ]


def reference_tables(protocol):
    """The backprop reference's tables that an EP protocol's statistics compare with (its gaps)."""
    if protocol == BACKPROP or config["backprop"] is None:
        return {}
    return {
        "reference_runs": f"{TABLES}/{BACKPROP}/runs.parquet",
        "reference_epochs": f"{TABLES}/{BACKPROP}/epochs.parquet",
    }


def spectral_shard():
    """This invocation's spectral shard (none when config key records.only is set: no grid run is trained)."""
    return {} if config["records"]["only"] else dict(rules.mech_spectral.output)
