#!/usr/bin/env bash
# README's test command: installs the test prerequisites (Fashion-MNIST from Debian's dataset-fashion-mnist) when
# missing, then runs the whole test suite in Release. Extra arguments go to `dotnet test` (e.g. --filter Cnn).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  sudo=""
  [ "$(id -u)" = "0" ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
fi
dotnet test MLNetDeep.sln -c Release "$@"
