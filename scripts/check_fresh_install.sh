#!/usr/bin/env bash
# Runs the README's two commands in a brand-new virtual environment, as a new user would:
# the main job on the default problem (in a scratch directory), then the test suite.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

python3 -m venv "$scratch/venv"
# shellcheck disable=SC1091
. "$scratch/venv/bin/activate"
cd "$repo"
run_command=$(grep -m1 '^pip install -e \. && gcsampler run' README.md)
test_command=$(grep -m1 "^pip install -e '.\[test\]'" README.md)
echo "== $run_command"
(cd "$repo" && pip install --quiet -e . \
  && cd "$scratch" && eval "${run_command#pip install -e . && }")
echo "== $test_command"
eval "$test_command"
