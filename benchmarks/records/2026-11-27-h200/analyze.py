"""Tables of the GPU runs: python analyze.py RUNS_DIR (the run folders of grid.tar.gz and more_seeds.tar.gz).

Only metrics.csv and summary.json came back from the GPU machine (no model.pt), so this builds the runs and epochs
tables alone (htsep.experiments.grid.tables.run_tables) and calls htsep.experiments.grid.stats.analyze with
config/config.yaml's analysis settings.

Ran before the package restructure (at the commit its record names; the imports are updated to the
subpackage layout of 2026-12-04, nothing else).
"""
import sys
from pathlib import Path

from htsep.experiments.grid.stats import analyze
from htsep.experiments.grid.tables import run_tables
from htsep.study import load_config

HERE = Path(__file__).parent


def main(runs_dir: str) -> None:
    analysis = load_config([HERE.parents[2] / "config" / "config.yaml"])["analysis"]
    paths = sorted(Path(runs_dir).glob("*/*/seed*/summary.json"))
    subsets = {"seeds0-9": lambda p: int(p.parent.name[4:]) < 10,  # the grid: 3 datasets x 5 variants x 10 seeds
               "seeds0-49": lambda p: p.parts[-4] != "kmnist"}   # MNIST and Fashion-MNIST with 40 more seeds
    for label, keep in subsets.items():
        runs, epochs = run_tables([p for p in paths if keep(p)])
        stats, summary, _ = analyze(runs, epochs, analysis)
        stats.to_csv(HERE / f"stats_{label}.csv", index=False)
        summary.to_csv(HERE / f"summary_{label}.csv", index=False)
        print(f"{label}: {len(runs)} runs")


if __name__ == "__main__":
    main(sys.argv[1])
