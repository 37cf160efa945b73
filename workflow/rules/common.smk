def run_files(name):
    """One file of every run in the grid."""
    return expand(f"{RUNS}/{name}", dataset=config["datasets"], variant=VARIANTS, seed=config["seeds"])


MECHANISM_FIGURES = ["spectral_radius", "eigenvalue_moduli", "relaxation", "landscape", "stress"]
