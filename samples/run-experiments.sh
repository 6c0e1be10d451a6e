#!/usr/bin/env bash
# Issue 10's show-it runs with the mlnetdeep command-line tool, one after another (about 70 minutes on 2 cores):
#   bike-hour regression (10 min budget, evaluated on the test file), SMS spam (12 min, 5-fold cross-validation,
#   held-out 20 %), GitHub issues (10 min each optimising micro- and then macro-accuracy, held-out 20 %), and a
#   Fashion-MNIST subset (20 min: the first 6 000 training images as PNG folders, tested on all 10 000 test images)
#   beside the README's hand-set SmallCnn trained on the same 6 000 images.
# Every experiment writes its leaderboard, summary, model and consumption project under the output folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-data
data=$(cd ../shared/data && pwd)
out=${1:-$PWD/mlnetdeep-experiments}
mkdir -p "$out"
dotnet build -c Release src/MLNetDeep.Cli
dotnet build -c Release samples/MLNetDeep.Samples.FashionMnist
cli="dotnet src/MLNetDeep.Cli/bin/Release/net10.0/MLNetDeep.Cli.dll"

$cli regression --dataset "$data/tabular/bike-hour-train.csv" --label-col cnt --ignore-cols instant,dteday,casual,registered \
  --test-dataset "$data/tabular/bike-hour-test.csv" --max-trials 10000 --train-time 600 --trial-time 180 --output "$out/bike" --overwrite
$cli classification --dataset "$data/text/sms-spam.tsv" --has-header false --label-col 0 --allow-quoting false \
  --test-fraction 0.2 --cv-folds 5 --max-trials 10000 --train-time 720 --trial-time 300 --output "$out/sms" --overwrite
$cli classification --dataset "$data/text/github-issues.tsv" --label-col Area --ignore-cols ID \
  --test-fraction 0.2 --max-trials 10000 --train-time 600 --trial-time 180 --output "$out/github" --overwrite
$cli classification --dataset "$data/text/github-issues.tsv" --label-col Area --ignore-cols ID --optimizing-metric MacroAccuracy \
  --test-fraction 0.2 --max-trials 10000 --train-time 600 --trial-time 180 --output "$out/github-macro" --overwrite

fashion="dotnet samples/MLNetDeep.Samples.FashionMnist/bin/Release/net10.0/MLNetDeep.Samples.FashionMnist.dll"
$fashion --export-images "$out/fashion-png" --train-rows 6000
$fashion --train-rows 6000 --epochs 5 --skip-baselines --output "$out/fashion-handset"
$cli image-classification --dataset "$out/fashion-png/train" --test-dataset "$out/fashion-png/test" \
  --max-trials 10000 --train-time 1200 --trial-time 300 --output "$out/fashion" --overwrite
