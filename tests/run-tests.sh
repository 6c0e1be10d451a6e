#!/usr/bin/env bash
# README's test command: installs the test prerequisites (Fashion-MNIST from Debian's dataset-fashion-mnist) when
# missing, then runs the whole test suite in Release. Extra arguments go to `dotnet test` (e.g. --filter Cnn).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-data
dotnet test MLNetDeep.sln -c Release "$@"
