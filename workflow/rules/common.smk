from htsep.fingerprint import script_fingerprint  # noqa: E402


def code(script):
    """Fingerprint of the library code a rule script executes (htsep.fingerprint), a params entry of each
    workflow job: editing that code reruns the job and everything downstream."""
    return script_fingerprint(Path(workflow.basedir) / "workflow" / "scripts" / script)


def run_files(name):
    """One file of every EP run in the grid (every protocol in run_protocols)."""
    return expand(f"{RUNS}/{name}", protocol=config["run_protocols"], dataset=config["datasets"], variant=VARIANTS,
                  seed=config["seeds"])


def backprop_files(name):
    """One file of every backprop reference run (none when config key backprop is null)."""
    if config["backprop"] is None:
        return []
    return expand(f"{BACKPROP_RUNS}/{name}", dataset=config["datasets"], seed=config["seeds"])
