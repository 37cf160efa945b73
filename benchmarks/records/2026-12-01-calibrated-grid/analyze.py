"""Tables of the calibrated-protocol grid and the backprop reference: python analyze.py RUN_FOLDER_ROOT...

Reads every summary.json/metrics.csv under the given folders (in results/runs of the run, layout
<protocol>/<dataset>/<variant>/seed<seed> and backprop/<dataset>/seed<seed>) with
htsep.experiments.grid.tables.run_tables and writes runs.csv, epochs.csv, summary.csv, stats.csv and gaps.csv here with
config/config.yaml's analysis settings (htsep.experiments.grid.stats.analyze); prints the headline table.

Ran before the package restructure (at the commit its record names; the imports are updated to the
subpackage layout of 2026-12-04, nothing else).
"""
import sys
from pathlib import Path

from htsep.experiments.grid.stats import analyze
from htsep.experiments.grid.tables import run_tables
from htsep.study import load_config

HERE = Path(__file__).parent


def main(*roots: str) -> None:
    analysis = load_config([HERE.parents[2] / "config" / "config.yaml"])["analysis"]
    paths = sorted(p for root in roots for p in Path(root).glob("**/seed*/summary.json"))
    runs, epochs = run_tables(paths)
    stats, summary, gaps = analyze(runs, epochs, analysis)
    for name, table in (("runs", runs), ("epochs", epochs), ("summary", summary), ("stats", stats), ("gaps", gaps)):
        table.to_csv(HERE / f"{name}.csv", index=False)
    print(f"{len(runs)} runs")
    columns = ["protocol", "dataset", "variant", "n_runs", "final_acc_mean", "final_acc_std", "final_acc_ci_low",
               "final_acc_ci_high", "n_dead_classes", "n_unstable"]
    print(summary[columns].to_string(index=False))
    print(gaps[["protocol", "dataset", "n_pairs", "ep_mean", "backprop_mean", "gap_mean", "gap_ci_low",
                "gap_ci_high"]].to_string(index=False))
    print(stats.loc[stats["p_holm"] < analysis["alpha"], ["protocol", "dataset", "variant", "baseline", "test",
                                                          "effect_size", "p_holm"]].to_string(index=False))


if __name__ == "__main__":
    main(*sys.argv[1:])
