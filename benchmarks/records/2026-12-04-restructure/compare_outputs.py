"""Compare two result trees (before and after a code change) table by table, ignoring what must differ.

    python compare_outputs.py BEFORE_DIR AFTER_DIR [--columns-changed max_drop ...]

Every CSV/parquet/JSON/TeX file under results/, figures/ and paper/generated of BEFORE must exist in AFTER with the
same content, except wall times (seconds, wall_seconds, hours), code fingerprints and the sums of wall times in the
paper's macros; columns named with --columns-changed are reported separately (a fix that is meant to change them).
Prints one line per file and exits 1 if anything else differs.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

TIMING = {"seconds", "wall_seconds", "wall_seconds_mean", "code_fingerprint", "code_fingerprints", "elapsed"}


def table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def same_table(a: Path, b: Path, changed: set[str]) -> tuple[bool, list[str]]:
    x, y = table(a), table(b)
    moved = sorted((set(x.columns) ^ set(y.columns)) | {c for c in changed if c in x.columns and c in y.columns
                                                        and not x[c].equals(y[c])})
    keep = [c for c in x.columns if c in y.columns and c not in TIMING and c not in changed]
    if len(x) != len(y):
        return False, moved
    return x[keep].equals(y[keep]), moved


def same_json(a: Path, b: Path) -> bool:
    def clean(obj):
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if k not in TIMING}
        return [clean(v) for v in obj] if isinstance(obj, list) else obj
    return clean(json.loads(a.read_text())) == clean(json.loads(b.read_text()))


def same_tex(a: Path, b: Path) -> bool:
    hours = re.compile(r"\\newcommand\{\\ComputeTime\}\{[^}]*\}")  # the grid's summed wall time
    return hours.sub("", a.read_text()) == hours.sub("", b.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--columns-changed", nargs="*", default=[])
    args = parser.parse_args()
    changed, bad, n = set(args.columns_changed), 0, 0
    for a in sorted(p for top in ("results", "figures", "paper/generated") for p in (args.before / top).rglob("*")
                    if p.suffix in (".csv", ".parquet", ".json", ".tex")):
        rel = a.relative_to(args.before)
        b = args.after / rel
        n += 1
        if not b.exists():
            print(f"MISSING {rel}")
            bad += 1
            continue
        if a.suffix in (".csv", ".parquet"):
            ok, moved = same_table(a, b, changed)
            if moved:
                print(f"columns changed {rel}: {', '.join(moved)}")
        else:
            ok = same_json(a, b) if a.suffix == ".json" else same_tex(a, b)
        if not ok:
            print(f"DIFF {rel}")
            bad += 1
    print(f"{n} files compared, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
