#!/usr/bin/env bash
# README's main job: installs Fashion-MNIST (Debian's dataset-fashion-mnist) when missing, then trains a CNN on the
# full training set, evaluates it on the 10 000 test images beside LightGbm and SdcaMaximumEntropy, and saves the
# model and its plots. Extra arguments go to the sample (e.g. --preset resnet --epochs 20).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-data
dotnet run -c Release --project samples/MLNetDeep.Samples.FashionMnist -- "$@"
