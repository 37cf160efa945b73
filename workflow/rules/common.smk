from htsep.experiments.calibration.plan import KEYS as calibration_keys  # noqa: E402
from htsep.experiments.calibration.plan import declared as calibration_declared  # noqa: E402
from htsep.records import to_train  # noqa: E402
from htsep.fingerprint import script_fingerprint  # noqa: E402
from htsep.experiments.frontier.plan import stage_folders, stage_members  # noqa: E402


def code(script):
    """Fingerprint of the library code a rule script executes (htsep.fingerprint), a params entry of each
    workflow job: editing that code reruns the job and everything downstream."""
    return script_fingerprint(Path(workflow.basedir) / "workflow" / "scripts" / script)


@functools.cache
def checked_training(protocol):
    """A protocol's training config, checked once for all its train jobs (ConfigError naming an unknown protocol)."""
    return protocol_training(config, protocol)


def frontier_shard_files(wildcards, name):
    """File ``name`` of every run of one (dataset, axis) part of this invocation's frontier shard (SHARD_TABLES,
    frontier.smk)."""
    return [f"{folder}/{name}" for folder in stage_folders(config, "sweep", *SHARD_TABLES[wildcards.shard])]


def calibration_summaries():
    """The summary.json of every run of the calibration searches this invocation trains (config key
    records.train)."""
    keys = to_train(config, "calibration", "runs", calibration_keys, calibration_declared(config))
    return [
        f"{CALIBRATION}/{dataset}/{variant}/{point}/seed{seed}/summary.json" for dataset, variant, point, seed in keys
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
    """This invocation's spectral shard (none in a records-only build, config key records.train none)."""
    return {} if config["records"]["train"] == "none" else dict(rules.mech_spectral.output)
