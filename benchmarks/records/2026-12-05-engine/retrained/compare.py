"""Compare this clone's retrained confirmatory shard with the committed one (every metric column, exactly)."""
import sys

import pandas as pd

new = pd.read_csv(sys.argv[1])
old = pd.read_csv(sys.argv[2])
keys = ["protocol", "dataset", "variant", "seed"]
merged = old.merge(new, on=keys, suffixes=("_old", "_new"))
print(len(old), len(new), len(merged), "runs matched")
print("kernels:", old.relaxation_kernel.unique(), new.relaxation_kernel.unique())
print("fingerprints:", old.code_fingerprint.unique(), new.code_fingerprint.unique())
skip = {"config", "code_fingerprint", "relaxation_kernel", "wall_seconds", "seconds"}
cols = [c[:-4] for c in merged if c.endswith("_old") and c[:-4] not in skip]
for c in cols:
    a, b = merged[c + "_old"], merged[c + "_new"]
    same = ((a == b) | (a.isna() & b.isna())).all()
    print(f"{c}: {'identical' if same else 'DIFFERENT'}")
