#!/usr/bin/env bash
# ONNX sample: part 1 trains with MLNetDeep and exports; part 2 scores the exports with no MLNetDeep or TorchSharp.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-data
out=${1:-$PWD/mlnetdeep-onnx}
dotnet run -c Release --project samples/MLNetDeep.Samples.Onnx -- --output "$out"
dotnet run -c Release --project samples/MLNetDeep.Samples.OnnxScoring -- "$out"
