#!/usr/bin/env python3
"""Trains LightGBM on the exact rows oncowatch's model saw (`oncowatch train --export-features FILE.csv`)
and compares test AUCs: LightGBM (binary objective, missing values native) against oncowatch's calibrated
smartcore model (its AUC is read from report.json). Usage:

    python3 scripts/compare_lightgbm.py FEATURES.csv REPORT_DIR/report.json
"""
import csv
import json
import math
import sys

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score


def load(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        names = header[4:]
        rows = {"train": ([], []), "calibration": ([], []), "test": ([], [])}
        for line in r:
            x = [float(v) if v != "" else math.nan for v in line[4:]]
            rows[line[3]][0].append(x)
            rows[line[3]][1].append(int(line[2]))
    return names, {k: (np.array(x), np.array(y)) for k, (x, y) in rows.items()}


def main():
    features, report = sys.argv[1], sys.argv[2]
    names, d = load(features)
    xtr, ytr = d["train"]
    xte, yte = d["test"]
    params = dict(objective="binary", n_estimators=300, learning_rate=0.05, num_leaves=31, min_child_samples=20,
                  subsample=1.0, colsample_bytree=1.0, random_state=7, verbose=-1)
    m = lgb.LGBMClassifier(**params).fit(xtr, ytr)
    auc_lgb = roc_auc_score(yte, m.predict_proba(xte)[:, 1])
    ours = json.load(open(report))["test"]["auc"]
    print(f"rows: train {len(ytr)}, test {len(yte)} ({int(yte.sum())} positive), features {len(names)}")
    print(f"{'model':<44} {'test AUC':>9}")
    print(f"{'LightGBM (binary, 300 trees, native missing)':<44} {auc_lgb:>9.4f}")
    print(f"{'oncowatch (smartcore XGRegressor + isotonic)':<44} {ours:>9.4f}")
    print(f"difference (oncowatch - LightGBM): {ours - auc_lgb:+.4f} (goal: within 0.01)")


if __name__ == "__main__":
    main()
