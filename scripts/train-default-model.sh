#!/usr/bin/env bash
# Rebuilds the default model (models/default.json) and its report (models/report/) from a generated cohort of
# 10,000 synthetic patients with fixed seeds. Release build; about 1-2 minutes on 2 cores after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-target/default-model}"
cargo build --release
./target/release/oncowatch generate --patients 10000 --seed 42 --out "$work/cohort"
./target/release/oncowatch train --input "$work/cohort/cohort.ndjson" --out models/default.json \
  --report-dir models/report --export-features "$work/features.csv"
echo "LightGBM comparison on the same rows (needs: pip install lightgbm scikit-learn):"
python3 scripts/compare_lightgbm.py "$work/features.csv" models/report/report.json || true
python3 scripts/single_feature_auc.py "$work/features.csv" || true
