#!/usr/bin/env bash
# The sequences sample with R's forecast package as the sunspots peer: installs Debian's r-base-core and
# r-cran-forecast (and Fashion-MNIST) when missing, then runs every section. Extra arguments go to the sample
# (e.g. --only sunspots, --fashion-epochs 12).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-data
if ! command -v Rscript >/dev/null || ! Rscript -e 'library(forecast)' >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = "0" ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq r-base-core r-cran-forecast
fi
dotnet run -c Release --project samples/MLNetDeep.Samples.Sequences -- --r "$@"
