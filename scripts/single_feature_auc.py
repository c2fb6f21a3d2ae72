#!/usr/bin/env python3
"""How hard the generated cohort is: the AUC of each feature alone (either direction; a missing value ranks
lowest) on the rows `oncowatch train --export-features FILE.csv` wrote. Usage:

    python3 scripts/single_feature_auc.py FEATURES.csv [TOP]
"""
import csv
import sys

from sklearn.metrics import roc_auc_score


def main():
    rows = list(csv.DictReader(open(sys.argv[1], newline="")))
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    names = list(rows[0].keys())[4:]
    y = [int(r["label"]) for r in rows]
    res = []
    for n in names:
        vals = [r[n] for r in rows]
        if all(v == "" for v in vals):
            continue
        x = [float(v) if v != "" else -1e12 for v in vals]
        a = roc_auc_score(y, x)
        res.append((max(a, 1 - a), n))
    res.sort(reverse=True)
    print(f"{len(rows)} rows, {sum(y)} positive; single-feature AUC (goal: none above 0.75)")
    for a, n in res[:top]:
        print(f"  {n:<30} {a:.3f}")


if __name__ == "__main__":
    main()
