#!/usr/bin/env bash
# errgroup vs Go's golang.org/x/sync/errgroup, the reference users port from,
# on the same cases: per task, per 2-task group, cancellation latency of
# 1,000 blocked tasks (p50 and p99), channel throughput, memory per blocked
# task. Prints errgroup / Go for every row.
#
#   benches/vs-go.sh           # full run (~10 minutes)
#   benches/vs-go.sh --quick   # short measurements, fewer latency runs (~4 minutes)
#
# Installs nothing. Needs `go` and the x/sync source Debian ships:
#   apt-get install golang-go golang-golang-x-sync-dev
# The Go side (benches/go) builds offline against that source (a `replace`
# in its go.mod). Both sides use 2 threads (GOMAXPROCS=2, 2 tokio workers).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
case "${1:-}" in
  --quick) quick=1 ;;
  "") ;;
  -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
  *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

xsync=/usr/share/gocode/src/golang.org/x/sync/errgroup
if ! command -v go >/dev/null 2>&1 || [ ! -d "$xsync" ]; then
  echo "vs-go.sh needs Go and golang.org/x/sync's source; install them with:" >&2
  echo "  apt-get update && apt-get install -y golang-go golang-golang-x-sync-dev" >&2
  exit 1
fi
. benches/common.sh

if [ "$quick" = 1 ]; then
  crit_args=(--warm-up-time 1 --measurement-time 2)
  export REPS=3 BENCHTIME=300ms
  runs=500
  intask_rounds=300
else
  crit_args=()
  export REPS=7 BENCHTIME=1s
  runs=2000
  intask_rounds=1000
fi
export RUNS=$runs GOMAXPROCS=2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== Go: building benches/go offline against $xsync"
(cd benches/go && GOFLAGS=-mod=mod GOPROXY=off GOCACHE="${GOCACHE:-$tmp/gocache}" go build -o "$tmp/gobench" .)
echo "== Go: running"
"$tmp/gobench" bench | tee "$tmp/go.txt"
"$tmp/gobench" latency | tee -a "$tmp/go.txt"
"$tmp/gobench" mem | tee -a "$tmp/go.txt"

echo "== errgroup: criterion cases"
cargo bench --bench compare -- "${crit_args[@]}" '^(group2_|spawn_|intask_limit|channel_)'
echo "== errgroup: 2 trivial in-task branches, interleaved with try_join!"
cargo bench --bench intask -- "$intask_rounds" | tee "$(medians_file intask)"
echo "== errgroup: cancellation latency and memory"
cargo bench --no-run --bench latency --bench memory
lat() { cargo bench -q --bench latency -- "$1" "$runs" 2>/dev/null | awk '/p50_ns/ {print $2, $4, $6}'; }
read -r lat_in_id lat_in50 lat_in99 <<<"$(lat errgroup_intask)"
read -r lat_sp_id lat_sp50 lat_sp99 <<<"$(lat errgroup_spawn)"
read -r mem_in_id mem_in <<<"$(mem_side errgroup_intask)"
read -r mem_sp_id mem_sp <<<"$(mem_side errgroup_spawn)"

go_val() { awk -v k="$1" '$1 == k {print $2}' "$tmp/go.txt"; }
# per_unit CASE DIVISOR: errgroup side's median of CASE divided by DIVISOR.
per_unit() {
  local id m
  id=$(side errgroup "$1")
  [ -n "$id" ] || return 0
  m=$(median "$1" "$id")
  [ -n "$m" ] && calc "$m / $2" "%.2f"
}
id_of() { side errgroup "$1"; }

row() { printf '%-44s %-14s %-14s %-12s %-6s %s\n' "$@"; }
echo
row "case (Go: golang.org/x/sync/errgroup)" errgroup Go errgroup/Go ahead "errgroup side"
row ---- -------- -- ----------- ----- -------------
# cmp NAME OURS GO UNIT ID [higher]: one row; by default lower is better.
cmp() {
  local name=$1 ours=$2 theirs=$3 unit=$4 id=$5 better=${6:-lower} ratio ahead
  if [ -z "$ours" ] || [ -z "$theirs" ]; then
    row "$name" "${ours:--}" "${theirs:--}" - - "$id"
    return
  fi
  ratio=$(calc "$ours / $theirs")
  if [ "$better" = higher ]; then
    ahead=$(awk -v r="$ratio" 'BEGIN { print (r >= 1) ? "yes" : "no" }')
  else
    ahead=$(awk -v r="$ratio" 'BEGIN { print (r <= 1) ? "yes" : "no" }')
  fi
  row "$name" "$ours $unit" "$theirs $unit" "${ratio}x" "$ahead" "$id"
}

cmp "per task, 1,000 spawned" "$(per_unit spawn_1000 1000)" "$(go_val spawn_1000_ns_per_task)" ns "$(id_of spawn_1000)"
cmp "per task, 100,000 spawned" "$(per_unit spawn_100000 100000)" "$(go_val spawn_100000_ns_per_task)" ns "$(id_of spawn_100000)"
cmp "per item, 100,000 with limit 64" "$(per_unit intask_limit64_100000 100000)" "$(go_val limit64_100000_ns_per_item)" ns "$(id_of intask_limit64_100000)"
cmp "per 2-task group, #[spawn] branches" "$(per_unit group2_spawn 1)" "$(go_val group2_ns)" ns "$(id_of group2_spawn)"
cmp "per 2-task group, in-task branches" "$(median group2_intask errgroup)" "$(go_val group2_ns)" ns errgroup
go50=$(go_val cancel_1000_p50_ns); go99=$(go_val cancel_1000_p99_ns)
us() { [ -n "$1" ] && calc "$1 / 1000" "%.1f"; }
cmp "cancel 1,000 blocked, p50 (in-task)" "$(us "$lat_in50")" "$(us "$go50")" us "$lat_in_id, current-thread"
cmp "cancel 1,000 blocked, p99 (in-task)" "$(us "$lat_in99")" "$(us "$go99")" us "$lat_in_id, current-thread"
cmp "cancel 1,000 blocked, p50 (spawned)" "$(us "$lat_sp50")" "$(us "$go50")" us "$lat_sp_id, 2 workers"
cmp "cancel 1,000 blocked, p99 (spawned)" "$(us "$lat_sp99")" "$(us "$go99")" us "$lat_sp_id, 2 workers"
ch_ns=$(per_unit channel_10M 10000000)
go_ch=$(go_val channel_ns_per_item)
mps() { [ -n "$1" ] && calc "1000 / $1" "%.1f"; }
cmp "channel throughput, cap 1024 (M items/s)" "$(mps "$ch_ns")" "$(mps "$go_ch")" M/s "$(id_of channel_10M)" higher
cmp "memory per blocked task, in-task" "$mem_in" "$(go_val mem_blocked_bytes_per_task)" B "$mem_in_id"
cmp "memory per blocked task, spawned" "$mem_sp" "$(go_val mem_blocked_bytes_per_task)" B "$mem_sp_id"
echo
echo "errgroup/Go: lower is better except for throughput. Go's side always runs goroutines;"
echo "ids *_standin / *_placeholder are stand-ins until errgroup's fan-out / channels land."
