"""Where the study's outputs go, and how numbers appear in their names: the one place rules, CLI and library read
them from."""

RUNS_ROOT = "results/runs"
RUN_LAYOUT = "{protocol}/{dataset}/{variant}/seed{seed}"  # one EP run of the grid below a runs folder
RUNS = f"{RUNS_ROOT}/{RUN_LAYOUT}"  # (a Snakemake pattern)
BACKPROP_RUNS = RUNS_ROOT + "/backprop/{dataset}/seed{seed}"  # one backprop reference run
TABLES = "results/tables"  # the grid's tables and statistics
CALIBRATION = "results/calibration"
MECHANISM = "results/mechanism"
LANDSCAPE = f"{MECHANISM}/landscape"
FRONTIER = "results/frontier"
CONFIRMATORY = "results/confirmatory"
FACTORIAL = "results/factorial"
ROBUSTNESS = "results/robustness"
SENSITIVITY = "results/sensitivity"
DEPTH = "results/depth"
FIGURE_DIR = "figures"
GENERATED_DIR = "paper/generated"  # the paper's generated LaTeX


def run_folder(protocol: str, dataset: str, variant: str, seed: int, root: str = RUNS_ROOT) -> str:
    """The folder of one grid run below ``root`` (``RUNS`` when root is the default)."""
    return f"{root}/" + RUN_LAYOUT.format(protocol=protocol, dataset=dataset, variant=variant, seed=seed)


def number(x: float) -> str:
    """A number as names, labels and the paper show it: 0.30 -> '0.3', 1e-4 -> '0.0001', 5.0 -> '5'."""
    return f"{float(x):g}"
