#!/usr/bin/env bash
# Runs errgroup's side-by-side benches and prints one table: case, errgroup
# median, alternative median, ratio errgroup / other, and the target from the
# performance issue. Both sides of a case run in the same process, one after
# the other, so compare the ratios: absolute times drift with machine load.
#
#   benches/ratios.sh            # criterion defaults (3 s warm-up, 5 s measurement per side)
#   benches/ratios.sh --quick    # 1 s warm-up, 2 s measurement: a rough table in a few minutes
#   benches/ratios.sh --no-run   # only print the table from the last run's results
#   benches/ratios.sh -- FILTER  # only the criterion cases matching FILTER (a regex), no memory rows
#
# Reads target/criterion/<case>/<side>/new/estimates.json (the median's
# point estimate). Memory rows come from benches/memory.rs, one process per
# side. Cancellation p50/p99 over many runs: `cargo bench --bench latency`.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh

crit_args=()
run=1
filter=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) crit_args=(--warm-up-time 1 --measurement-time 2) ;;
    --no-run) run=0 ;;
    --) shift; filter=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

mem_in=""; mem_in_o=""; mem_sp=""; mem_sp_o=""
if [ "$run" = 1 ]; then
  cargo bench --bench compare -- "${crit_args[@]}" "${filter[@]}"
  if [ ${#filter[@]} -eq 0 ]; then
    cargo bench --no-run --bench memory
    mem_in=$(mem_side errgroup_intask); mem_in_o=$(mem_side futures_unordered)
    mem_sp=$(mem_side errgroup_spawn); mem_sp_o=$(mem_side joinset)
  fi
fi

# case | target text | max ratio errgroup/other (of times) | what the other side is
cases=(
  "group2_intask|<= 5x|5|tokio::try_join!, current-thread"
  "group2_spawn|<= 0.6x|0.6|JoinSet + CancellationToken, 2 workers"
  "spawn_1000|<= 1.2x|1.2|tokio::spawn + Vec<JoinHandle>, 2 workers"
  "spawn_100000|<= 1.2x|1.2|tokio::spawn + Vec<JoinHandle>, 2 workers"
  "intask_limit64_100000|<= 1.1x|1.1|stream::iter(..).buffer_unordered(64), current-thread"
  "cancel_1000_intask|<= 1.0x|1.0|FuturesUnordered + token; failure -> group returned"
  "channel_10M|thrpt >= 0.9x|1.1111|raw tokio mpsc, 2 workers (time ratio <= 1.11x)"
)

row() { printf '%-22s %-34s %-13s %-24s %-13s %-7s %-13s %s\n' "$@"; }

echo
row case errgroup-side errgroup other-side other ratio target met
row ---- ------------- -------- ---------- ----- ----- ------ ---
for spec in "${cases[@]}"; do
  IFS='|' read -r name target max _ <<<"$spec"
  e_id=$(side errgroup "$name"); o_id=$(side other "$name")
  e=""; o=""
  if [ -n "$e_id" ]; then e=$(median "$name" "$e_id"); fi
  if [ -n "$o_id" ]; then o=$(median "$name" "$o_id"); fi
  if [ -n "$e" ] && [ -n "$o" ]; then
    ratio="$(calc "$e / $o")x"
    met=$(awk -v e="$e" -v o="$o" -v m="$max" 'BEGIN { print (e / o <= m) ? "yes" : "NO" }')
  else
    ratio="-"; met="not run"
  fi
  row "$name" "${e_id:--}" "$(fmt_ns "$e")" "${o_id:--}" "$(fmt_ns "$o")" "$ratio" "$target" "$met"
done

# mem_row CASE "ID BYTES" "ID BYTES"
mem_row() {
  local e_id e o_id o
  read -r e_id e <<<"$2"
  read -r o_id o <<<"$3"
  if [ -n "${e:-}" ] && [ -n "${o:-}" ]; then
    row "$1" "$e_id" "$e B" "$o_id" "$o B" "$(calc "$e / $o")x" "<= 1.1x" \
      "$(awk -v e="$e" -v o="$o" 'BEGIN { print (e / o <= 1.1) ? "yes" : "NO" }')"
  fi
}
mem_row mem_per_blocked_intask "$mem_in" "$mem_in_o"
mem_row mem_per_blocked_spawn "$mem_sp" "$mem_sp_o"

echo
echo "ratio = errgroup median / other median (lower is better); the channel target is on throughput."
echo "mem rows: peak RSS (VmHWM) per task, 100,000 tasks blocked on their ctx, one process per side."
echo "Sides named *_standin / *_placeholder stand in for errgroup features that have not landed yet."
