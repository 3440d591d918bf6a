#!/usr/bin/env bash
# Run every experiment of Alexander et al. (NeurIPS 2025) and collect the figures.
#
# usage: scripts/reproduce_paper.sh [OUT_DIR] [SCALE] [PRESET_PATTERN]
#   OUT_DIR         where the sweeps go (default: runs/paper-<time>)
#   SCALE           fraction of the paper's draws per seed, in (0, 1] (default: 1, the paper's
#                   1e8 and 1e9; on a CPU use about 0.001 to 0.01 for a look)
#   PRESET_PATTERN  shell pattern of the presets to run (default: all, the '-as-run' variants
#                   of Figs. 3 and 4 included; e.g. 'fig[12]-*')
#
# Each preset becomes OUT_DIR/<preset>/ (a sweep directory: run directories, results.csv,
# gen_loss and acceptance_rate figures); OUT_DIR/figures/ collects every preset's figures and
# OUT_DIR/results.csv concatenates every results.csv. Presets already finished in OUT_DIR are
# skipped and an interrupted one continues where it stopped (`gcsampler sweep --resume`), so
# the script can be run again after an interruption.
set -euo pipefail

out=${1:-runs/paper-$(date +%Y%m%d-%H%M%S)}
scale=${2:-1}
pattern=${3:-*}
gcsampler=${GCSAMPLER:-gcsampler}

mkdir -p "$out/figures"
presets=$($gcsampler sweep --list_presets | awk '{print $1}')
for preset in $presets; do
  # shellcheck disable=SC2254
  case $preset in $pattern) ;; *) continue ;; esac
  if [[ -f "$out/$preset/gen_loss.png" ]]; then
    echo "== $preset: done already, skipped"
  else
    start=$SECONDS
    if [[ -f "$out/$preset/sweep.json" ]]; then
      echo "== $preset: continuing"
      $gcsampler sweep --resume "$out/$preset" | tee -a "$out/$preset.txt"
    else
      echo "== $preset"
      $gcsampler sweep --preset "$preset" --scale "$scale" --out "$out/$preset" \
        | tee "$out/$preset.txt"
    fi
    echo "$preset: $((SECONDS - start)) s" | tee -a "$out/timings.txt"
  fi
  for figure in "$out/$preset"/gen_loss.{png,pdf} "$out/$preset"/acceptance_rate.{png,pdf}; do
    cp "$figure" "$out/figures/$preset-$(basename "$figure")"
  done
done

# One table for all presets: the header of the first, the rows of all.
first=1
for table in "$out"/*/results.csv; do
  if (( first )); then head -n 1 "$table"; first=0; fi
  tail -n +2 "$table" | sed "s|^|$(basename "$(dirname "$table")"),|"
done | awk 'NR == 1 {print "preset," $0; next} {print}' > "$out/results.csv"
echo "figures: $out/figures/   all results: $out/results.csv"
