from htsep.experiments.calibration.plan import CALIBRATED, search_points  # noqa: E402
from htsep.fingerprint import script_fingerprint  # noqa: E402
from htsep.experiments.frontier.plan import stage_members  # noqa: E402


def code(script):
    """Fingerprint of the library code a rule script executes (htsep.fingerprint), a params entry of each
    workflow job: editing that code reruns the job and everything downstream."""
    return script_fingerprint(Path(workflow.basedir) / "workflow" / "scripts" / script)


def run_files(name):
    """One file of every EP run in the grid (every protocol in run_protocols)."""
    return expand(
        f"{RUNS}/{name}",
        protocol=config["run_protocols"],
        dataset=config["datasets"],
        variant=VARIANTS,
        seed=config["seeds"],
    )


def backprop_files(name):
    """One file of every backprop reference run (none when config key backprop is null)."""
    if config["backprop"] is None:
        return []
    return expand(f"{BACKPROP_RUNS}/{name}", dataset=config["datasets"], seed=config["seeds"])


def calibration_summaries():
    """The summary.json of every run of the calibration search (EP and backprop points x seeds)."""
    return [
        f"{CALIBRATION}/{kind}/{point}/seed{seed}/summary.json"
        for kind in CALIBRATED
        for point in search_points(config, kind)
        for seed in config["calibration"]["seeds"]
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
