from htsep.fingerprint import script_fingerprint  # noqa: E402


def code(script):
    """Fingerprint of the library code a rule script executes (htsep.fingerprint): a params entry of every
    rule, so that editing that code reruns the rule and everything downstream."""
    return script_fingerprint(Path(workflow.basedir) / "workflow" / "scripts" / script)


def run_files(name):
    """One file of every run in the grid."""
    return expand(f"{RUNS}/{name}", dataset=config["datasets"], variant=VARIANTS, seed=config["seeds"])

