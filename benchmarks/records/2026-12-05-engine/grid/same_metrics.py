"""Do two workdirs' runs have the same numbers? Every run folder of the first found in the second is compared on its
metrics.csv (every column but the wall time ``seconds``).

    python same_metrics.py <workdir a> <workdir b>
"""

import sys
from pathlib import Path

import pandas as pd

a, b = Path(sys.argv[1]), Path(sys.argv[2])
found = same = 0
for metrics in sorted(a.glob("results/runs/*/*/*/*/metrics.csv")):
    other = b / metrics.relative_to(a)
    if other.exists():
        found += 1
        same += pd.read_csv(metrics).drop(columns="seconds").equals(pd.read_csv(other).drop(columns="seconds"))
print(f"{found} runs of {a} found in {b}: {same} with identical metrics.csv (every column but seconds)")
