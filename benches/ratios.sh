#!/usr/bin/env bash
# Runs errgroup's side-by-side benches (compare, intask, scaling, loopback) and
# prints one table: case, errgroup median, alternative median, ratio
# errgroup / other, and the case's target; then the
# scaling table (1 worker vs 2). Both sides of a case run in the same
# process (criterion's one after the other, intask's, scaling's and
# loopback's in turn, round after round), so compare the ratios: absolute
# times drift with machine load.
#
#   benches/ratios.sh            # criterion defaults (3 s warm-up, 5 s measurement per side)
#   benches/ratios.sh --quick    # 1 s warm-up, 2 s measurement, fewer intask/scaling/loopback rounds
#   benches/ratios.sh --no-run   # only print the tables from the last run's results
#   benches/ratios.sh -- FILTER  # only the cases matching FILTER (a regex), no memory rows
#
# Reads target/criterion/<case>/<side>/new/estimates.json (the median's
# point estimate) and target/medians-{intask,scaling,loopback}.txt (what those
# benches printed). Memory rows come from benches/memory.rs, one process
# per side. Cancellation p50/p99 over many runs: `cargo bench --bench
# latency`. The instruction count of the in-task fast path, with its
# budget, is separate (it needs valgrind): benches/instructions.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh

crit_args=()
intask_rounds=1000; scaling_rounds=10; loopback_rounds=200
run=1
filter=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) crit_args=(--warm-up-time 1 --measurement-time 2); intask_rounds=300; scaling_rounds=5; loopback_rounds=60 ;;
    --no-run) run=0 ;;
    --) shift; filter=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

mem_in=""; mem_in_o=""; mem_sp=""; mem_sp_o=""
if [ "$run" = 1 ]; then
  cargo bench --bench compare -- "${crit_args[@]}" "${filter[@]}"
  # The interleaved benches (sides in turn, round after round; see
  # benches/common/mod.rs) print medians, kept for --no-run.
  wanted() {
    local id
    [ ${#filter[@]} -eq 0 ] && return 0
    for id in "$@"; do [[ $id =~ ${filter[0]} ]] && return 0; done
    return 1
  }
  if wanted group2_intask/; then
    cargo bench --bench intask -- "$intask_rounds" | tee "$(medians_file intask)"
  fi
  if wanted cpu10k_1w/ cpu10k_2w/; then
    cargo bench --bench scaling -- "$scaling_rounds" | tee "$(medians_file scaling)"
  fi
  if wanted tcp3_loopback/; then
    cargo bench --bench loopback -- "$loopback_rounds" | tee "$(medians_file loopback)"
  fi
  if [ ${#filter[@]} -eq 0 ]; then
    cargo bench --no-run --bench memory
    mem_in=$(mem_side errgroup_intask); mem_in_o=$(mem_side futures_unordered)
    mem_sp=$(mem_side errgroup_spawn); mem_sp_o=$(mem_side joinset)
  fi
fi

# case | target text | max ratio errgroup/other (of times, "-": none) | what
# the other side is | errgroup side's id | other side's id (the last two
# only where a case has more than two sides)
cases=(
  "group2_intask|<= 3x|3|tokio::try_join!, current-thread|errgroup|try_join"
  "group2_spawn|<= 0.6x|0.6|JoinSet + CancellationToken, 2 workers"
  "spawn_1000|<= 1.2x|1.2|tokio::spawn + Vec<JoinHandle>, 2 workers"
  "spawn_100000|<= 1.2x|1.2|tokio::spawn + Vec<JoinHandle>, 2 workers"
  "intask_limit64_100000|<= 1.1x|1.1|stream::iter(..).buffer_unordered(64), current-thread"
  "cancel_1000_intask|<= 1.0x|1.0|FuturesUnordered + token; failure -> group returned"
  "channel_10M|thrpt >= 0.9x|1.1111|raw tokio mpsc, 2 workers (time ratio <= 1.11x)"
  "cpu10k_1w|<= 1.1x|1.1|tokio::spawn + Vec<JoinHandle>, 1 worker|errgroup_spawn_for|tokio_spawn_vec"
  "cpu10k_2w|<= 1.1x|1.1|tokio::spawn + Vec<JoinHandle>, 2 workers|errgroup_spawn_for|tokio_spawn_vec"
  "cpu10k_1w|-|-|rayon par_iter, 1 thread|errgroup_spawn_for|rayon_par_iter"
  "cpu10k_2w|-|-|rayon par_iter, 2 threads|errgroup_spawn_for|rayon_par_iter"
  "cpu10k_1w|<= 1.1x|1.1|spawn_blocking + Vec<JoinHandle>, 1 blocking thread|errgroup_blocking_for|spawn_blocking_vec"
  "cpu10k_2w|<= 1.1x|1.1|spawn_blocking + Vec<JoinHandle>, 2 blocking threads|errgroup_blocking_for|spawn_blocking_vec"
  "cpu10k_1w|-|-|spawn_blocking + FuturesUnordered, 1 blocking thread|errgroup_blocking_for|spawn_blocking_unordered"
  "cpu10k_2w|-|-|spawn_blocking + FuturesUnordered, 2 blocking threads|errgroup_blocking_for|spawn_blocking_unordered"
  "tcp3_loopback|<= 1.05x|1.05|tokio::try_join!, 2 workers|errgroup_intask|try_join"
  "tcp3_loopback|<= 1.05x|1.05|JoinSet + CancellationToken, 2 workers|errgroup_spawn|joinset_token"
)

row() { printf '%-22s %-34s %-13s %-24s %-13s %-7s %-13s %s\n' "$@"; }

echo
row case errgroup-side errgroup other-side other ratio target met
row ---- ------------- -------- ---------- ----- ----- ------ ---
for spec in "${cases[@]}"; do
  IFS='|' read -r name target max _ e_id o_id <<<"$spec"
  if [ -z "$e_id" ]; then e_id=$(side errgroup "$name"); o_id=$(side other "$name"); fi
  e=""; o=""
  if [ -n "$e_id" ]; then e=$(median "$name" "$e_id"); fi
  if [ -n "$o_id" ]; then o=$(median "$name" "$o_id"); fi
  if [ -n "$e" ] && [ -n "$o" ]; then
    ratio="$(calc "$e / $o")x"
    if [ "$max" = - ]; then
      met=-
    else
      met=$(awk -v e="$e" -v o="$o" -v m="$max" 'BEGIN { print (e / o <= m) ? "yes" : "NO" }')
    fi
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

# Scaling: each side of the CPU-bound fan-out on 1 worker and on 2. CPU is
# what the whole process used per fan-out (it does not shrink on a busy
# machine); cores = CPU / wall, how many cores the side actually got.
echo
row2() { printf '%-22s %-11s %-11s %-8s %-11s %-11s %-9s %s\n' "$@"; }
row2 "cpu10k side" "1 worker" "2 workers" speedup "cpu 1w" "cpu 2w" "cores 1w" "cores 2w"
row2 ----------- -------- --------- ------- ------ ------ -------- --------
for id in errgroup_spawn_for tokio_spawn_vec rayon_par_iter errgroup_blocking_for spawn_blocking_vec \
  spawn_blocking_unordered; do
  one=$(median cpu10k_1w "$id"); two=$(median cpu10k_2w "$id")
  c1=$(cpu cpu10k_1w "$id"); c2=$(cpu cpu10k_2w "$id")
  speedup="-"; cores1="-"; cores2="-"
  if [ -n "$one" ] && [ -n "$two" ]; then speedup="$(calc "$one / $two")x"; fi
  if [ -n "$one" ] && [ -n "$c1" ]; then cores1=$(calc "$c1 / $one"); fi
  if [ -n "$two" ] && [ -n "$c2" ]; then cores2=$(calc "$c2 / $two"); fi
  row2 "$id" "$(fmt_ns "$one")" "$(fmt_ns "$two")" "$speedup" "$(fmt_ns "$c1")" "$(fmt_ns "$c2")" "$cores1" "$cores2"
done
# The CPU time ratios: the cost side of the same runs, steadier than the
# wall times while the machine is busy.
cpu_ratio() {
  local e o
  e=$(cpu "$1" "$2"); o=$(cpu "$1" "$3")
  if [ -n "$e" ] && [ -n "$o" ]; then calc "$e / $o"; echo x; else echo -; fi
}
echo
row3() { printf '%-46s %-9s %s\n' "$@"; }
row3 "cpu10k CPU time, errgroup / other" "1 worker" "2 workers"
for pair in "errgroup_spawn_for tokio_spawn_vec" "errgroup_spawn_for rayon_par_iter" \
  "errgroup_blocking_for spawn_blocking_vec" "errgroup_blocking_for spawn_blocking_unordered"; do
  read -r e_id o_id <<<"$pair"
  row3 "$e_id / $o_id" "$(cpu_ratio cpu10k_1w "$e_id" "$o_id" | tr -d '\n')" \
    "$(cpu_ratio cpu10k_2w "$e_id" "$o_id" | tr -d '\n')"
done
row3 "tcp3 CPU time, errgroup_intask / try_join" "$(cpu_ratio tcp3_loopback errgroup_intask try_join | tr -d '\n')"
row3 "tcp3 CPU time, errgroup_spawn / joinset_token" "$(cpu_ratio tcp3_loopback errgroup_spawn joinset_token | tr -d '\n')"

echo
echo "ratio = errgroup median / other median (lower is better); the channel target is on throughput."
echo "group2_intask: medians of runs of 20,000 groups, the sides in turn (benches/intask.rs)."
echo "cpu10k: 10,000 items of ~50 us of CPU each; speedup = time on 1 worker / on 2: at most 2x on 2 cores,"
echo "and only as much as 'cores 2w' allows (other sessions' builds take their share: re-run on a quiet machine)."
echo "tcp3: 3 loopback request/responses per group; its CPU time includes the in-process server's."
echo "mem rows: peak RSS (VmHWM) per task, 100,000 tasks blocked on their ctx, one process per side."
echo "Sides named *_standin / *_placeholder stand in for errgroup features that have not landed yet."
