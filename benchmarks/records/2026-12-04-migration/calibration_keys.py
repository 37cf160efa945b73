"""Key the calibration search's shard by (dataset, variant, point, seed), as the searches per reference variant and
the backprop search per dataset do (htsep.experiments.calibration.plan.KEYS). Both columns are read from each row's
own run config; nothing else changes. Run once from the repository root:
python benchmarks/records/2026-12-04-migration/calibration_keys.py"""

import json
from pathlib import Path

import pandas as pd

SHARD = Path("benchmarks/records/2026-12-01-calibration/shards/fashion_mnist-search.runs.csv")


def main() -> None:
    shard = pd.read_csv(SHARD)
    configs = shard["config"].map(json.loads)
    shard.insert(0, "dataset", configs.map(lambda run: run["dataset"]["name"]))
    shard.insert(1, "variant", configs.map(lambda run: run.get("variant", {}).get("name", "backprop")))
    kind = shard.pop("kind")
    shard.insert(4, "kind", kind)
    shard.to_csv(SHARD, index=False)


if __name__ == "__main__":
    main()
