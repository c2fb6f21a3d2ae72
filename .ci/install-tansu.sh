#!/usr/bin/env bash
# Install tansu (a Kafka-compatible broker from crates.io) for the Kafka integration tests, when missing.
#
# The in-memory storage engine (`--storage-engine memory://tansu/`) needs the `dynostore` feature: without it
# the broker fails at start with FeatureNotEnabled. A cold install takes 10-15 minutes on 2 cores and a
# ~1.5 GB target directory, which is kept under /tmp (override with TANSU_TARGET_DIR) so that it is neither in
# the repository nor in ~/.cargo. The binary lands in ~/.cargo/bin (or $CARGO_INSTALL_ROOT/bin).
#
# Usage: .ci/install-tansu.sh            (idempotent: does nothing when `tansu --version` works)
set -euo pipefail

TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
CARGO_BIN="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"

for candidate in tansu "$CARGO_BIN/tansu"; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" --version >/dev/null 2>&1; then
        echo "tansu already installed: $("$candidate" --version 2>&1 | head -n1) ($(command -v "$candidate"))"
        exit 0
    fi
done

echo "installing tansu ${TANSU_VERSION} (features: dynostore); this takes 10-15 minutes cold"
export CARGO_TARGET_DIR="${TANSU_TARGET_DIR:-/tmp/tansu-target}"
cargo install --locked "tansu@${TANSU_VERSION}" --features dynostore

"$CARGO_BIN/tansu" --version
