#!/usr/bin/env bash
# Instruction count of a group of 2 trivial in-task branches against
# `tokio::try_join!` under callgrind, with a budget; the per-item cost of
# an in-task fan-out at limit = 64 against `buffer_unordered(64)` and of a
# `#[blocking] for` against `spawn_blocking` + `Vec<JoinHandle>`, each with
# its own budget; and 2 `#[spawn]` branches against `JoinSet` + token,
# with one too: exits 1 when a ratio exceeds its budget. Instruction counts do not drift with
# machine load the way times do, so this is the guard rail for the in-task
# fast path. Run by hand (valgrind is slow and not on CI).
#
#   benches/instructions.sh                  # build, count, check the budget
#   ROUNDS=20000 benches/instructions.sh     # more rounds (default 10000)
#   BUDGET=20 benches/instructions.sh        # another budget for this run
#   BLOCKING_BUDGET=3 benches/instructions.sh  # another for the blocking row
#   FANOUT_BUDGET=2 benches/instructions.sh    # another for the fan-out row
#   SPAWN_BUDGET=1 benches/instructions.sh     # another for the #[spawn] row
#
# The trivial row is also counted in benches/intask.rs's binary, the code
# `ratios.sh` times, with its loads + stores (no budget).
#
# Each side runs twice, at 1,000 rounds and at 1,000 + ROUNDS: per group =
# (Ir at the second - Ir at the first) / ROUNDS, so process start, runtime
# construction and first-use costs cancel out. Built by
# `cargo bench --no-run --bench instructions` (release, the bench profile).
set -euo pipefail
cd "$(dirname "$0")/.."

# errgroup / try_join instructions per group, measured when it was set
# (15.1x: 1,438 / 95 Ir on the trivial branch of 2026-11-27, down from
# 1,758 = 18.5x at e2fb6ff; 16.0x, 1,522 Ir, once merged with the typed
# ctx, the still-running census and the review's fixes), rounded up ~10%.
# 17.3x (1,644 Ir) re-measured at c6b36eb on the session machine of
# 2026-12-06; 16.9x (1,604 Ir) once the core kept its state under one lock
# and its lifecycle in one place; 16.6x (1,580 Ir) once in-task branches
# borrow their ctx; 13.15x (1,249 Ir) once an in-task group's
# state stays in its future until something needs an `Arc`; 8.29x (788 Ir)
# once a lent ctx keeps a `&'static str` name, every driver lends its
# group (no task-local read per poll) and the trivial path's constructors
# inline; 8.32-8.5x (799 Ir, try_join! 94-96) once compile time kept the
# per-branch code small (an in-task branch is one small type); 6.07x
# (571 Ir, try_join! 94) once the expansion pins its branches (the group's
# future holds a pointer to them), the inline group's rare records are
# boxed (a 104-byte `Scope`, built in place), the trivial path's calls
# inline, a group created with nothing lent reads one thread-local, and an
# in-task branch's poll leaves its running phase alone; 4.02x (378 Ir,
# try_join! 94) once a branch of a group without `limit` keeps no phase,
# the idle lifecycle, a branch's name and an untouched scope drop with a
# test inline (no drop calls), and the driver writes its output in place;
# 3.91x (368 Ir, try_join! 94) once merged with the memory branch;
# 3.65-3.72x (350 Ir, try_join! 94-96) once a lent ctx drops inline;
# 3.56-3.64x (342 Ir, try_join! 94-96) once the expansion's run is its
# block's tail (one copy of the result fewer); 3.45-3.52x (331 Ir,
# try_join! 94-96) once a branch of a group without `limit` keeps its body
# and its value in one enum and is handed its group's scope to each poll
# (no `&State` kept); 2.45-2.48x (233 Ir, try_join! 94-95) once an
# in-task branch is handed its name, not its ctx, the scoped keys are
# `const`s read in place, and the poll of a group without a core and of
# its branches is inlined where the group is awaited; 2.51x (238 Ir,
# try_join! 95) once merged with the `#[spawn]` row's work and the wall
# clock's (the branches' values taken where their type is known), set to
# 2.7x as the row moves ~5 Ir with code layout alone.
# Lower it when the fast path gets cheaper, so a regression shows.
BUDGET=${BUDGET:-2.7}
# The blocking row: 1.12-1.13x (2,150-2,250 / 1,900-2,000 Ir) once a blocking item
# completes on its own thread and wakes the group only when it must
# (1.88x before, a wake and a join per item). The fan-out row: 0.92-0.93x
# (420 / 454 Ir) once in-task items run in reused slots (1.74-1.99x
# before, a `FuturesUnordered` node per item), at the row's target; 0.86x
# (392.5 Ir) on main d95815f; 0.72x (329 Ir) once an in-task item's future
# is its body alone (its name, group and permit the pool's), rounded up ~10%.
BLOCKING_BUDGET=${BLOCKING_BUDGET:-1.3}
FANOUT_BUDGET=${FANOUT_BUDGET:-0.8}
# The #[spawn] row: 0.65-0.70x (5,020-5,120 / 7,200-7,900 Ir) once a
# #[spawn] branch's task future is under 128 bytes, its core is read
# inline, built without a copy and borrowed (5,600 Ir before). 0.63x
# (4,914 / 7,792 Ir) once the driver keeps its waker only on a poll that
# returns Pending and a group that returns Ok with nothing to see its end
# keeps no `Finished` cause. Its JoinSet side moves between ~7,000 and
# ~8,100 Ir from run to run (2 workers: where the tasks run and whether a
# worker parks), hence the headroom (4,914 / 7,000 = 0.70x). 0.53-0.58x
# (4,150-4,290 / 7,380-7,900 Ir) once the core is written in place and
# kept in a plain field, the #[spawn] branches of a group without `limit`
# keep no phase (the task a `SpawnUnit`, the inline one an `InlineLeaf`),
# and the join handle's poll, the task-set poll of a group that spawned
# none and the core's drop inline; our side moves +-70 Ir with glibc's
# malloc (the task cell's `memalign`): 4,290 / 7,000 = 0.61x at worst.
SPAWN_BUDGET=${SPAWN_BUDGET:-0.65}
ROUNDS=${ROUNDS:-10000}
BASE=1000

if ! command -v valgrind >/dev/null; then
  echo "valgrind is not installed: apt-get update && apt-get install -y valgrind" >&2
  exit 2
fi

bin=$(cargo bench --no-run --bench instructions --message-format=json 2>/dev/null |
  sed -nE 's/.*"executable":"([^"]+)".*/\1/p' | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "could not build the instructions bench: cargo bench --no-run --bench instructions" >&2
  exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# ir SIDE ROUNDS: total instructions callgrind counted for one run.
ir() {
  local f="$out/$1.$2"
  valgrind --tool=callgrind --callgrind-out-file="$f" "$bin" "$1" "$2" >/dev/null 2>"$f.log" || {
    cat "$f.log" >&2
    exit 2
  }
  sed -nE 's/^summary: ([0-9]+).*/\1/p' "$f"
}

# per_group SIDE: instructions per group of SIDE.
per_group() {
  local lo hi
  lo=$(ir "$1" "$BASE")
  hi=$(ir "$1" $((BASE + ROUNDS)))
  awk -v lo="$lo" -v hi="$hi" -v n="$ROUNDS" 'BEGIN { printf "%.1f", (hi - lo) / n }'
}

# table TITLE UNIT NAME1 VALUE1 NAME2 VALUE2 RATIO: one row's table.
table() {
  printf '%-34s %12s\n' "$1" "$2" "$3" "$4" "$5" "$6" "ratio" "${7}x"
}

# ratio_of A B: A / B, two decimals.
ratio_of() { awk -v e="$1" -v t="$2" 'BEGIN { printf "%.2f", e / t }'; }

e=$(per_group group2_errgroup)
t=$(per_group group2_try_join)
ratio=$(ratio_of "$e" "$t")
table "2 trivial in-task branches" "Ir per group" "errgroup!" "$e" "tokio::try_join!" "$t" "$ratio"
printf '%-34s %12s\n' "budget" "<= ${BUDGET}x"

# The same row in the program that times it (benches/intask.rs, which
# `ratios.sh` runs): the round compiles differently in each bench binary
# (poll_in_task's inlining once moved it by 85 Ir), and what its time
# follows is loads + stores (cachegrind's Dr + Dw), not instructions
# (benches/README.md). Per group: 20,000 groups a run, `intask 3 SIDE`
# (4 runs with its warm-up) minus `intask 1 SIDE` (2). No budget.
ibin=$(cargo bench --no-run --bench intask --message-format=json 2>/dev/null |
  sed -nE 's/.*"executable":"([^"]+)".*/\1/p' | tail -n 1)
# accesses SIDE ROUNDS: "Ir Dr+Dw" of one run of intask.
accesses() {
  local f="$out/intask.$1.$2"
  valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file="$f" "$ibin" "$2" "$1" \
    >/dev/null 2>"$f.log" || {
    cat "$f.log" >&2
    exit 2
  }
  # summary: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
  awk '$1 == "summary:" { print $2, $5 + $8 }' "$f"
}
# timed_group SIDE: "Ir accesses" per group of SIDE in intask.
timed_group() {
  local lo hi
  lo=$(accesses "$1" 1)
  hi=$(accesses "$1" 3)
  awk -v lo="$lo" -v hi="$hi" 'BEGIN {
    split(lo, l, " "); split(hi, h, " ")
    printf "%.1f %.1f", (h[1] - l[1]) / 40000, (h[2] - l[2]) / 40000 }'
}
if [ -n "$ibin" ] && [ -x "$ibin" ]; then
  read -r ie ia <<<"$(timed_group errgroup)"
  read -r ti ta <<<"$(timed_group try_join)"
  echo
  printf '%-34s %12s %12s\n' "the same, as timed (intask)" "Ir" "loads+stores" \
    "errgroup!" "$ie" "$ia" "tokio::try_join!" "$ti" "$ta" \
    "ratio" "$(ratio_of "$ie" "$ti")x" "$(ratio_of "$ia" "$ta")x"
fi

# The fan-out row, counted: one group of items, limit = 64, against
# `buffer_unordered(64)`. Per item.
fe=$(per_group fanout_errgroup)
fb=$(per_group fanout_buffered)
fratio=$(ratio_of "$fe" "$fb")
echo
table "in-task items, limit = 64" "Ir per item" "errgroup! for" "$fe" "buffer_unordered(64)" "$fb" "$fratio"
printf '%-34s %12s\n' "budget" "<= ${FANOUT_BUDGET}x"
echo

# The `#[blocking] for` row's overhead besides the work: trivial items on
# 1 worker + 1 blocking thread, against `spawn_blocking` + `Vec`. Per item.
# Two threads: the count moves by a few percent between runs with how
# valgrind interleaves them, so its budget has some headroom (10.1x once,
# when a spent coop budget had the refused join handles re-polled, and
# growing with the item count).
be=$(per_group blocking_errgroup)
bv=$(per_group blocking_vec)
bratio=$(ratio_of "$be" "$bv")
table "blocking items, 1 worker" "Ir per item" "#[blocking] for" "$be" "spawn_blocking + Vec" "$bv" "$bratio"
printf '%-34s %12s\n' "budget" "<= ${BLOCKING_BUDGET}x"
echo

# The `group2_spawn` row, counted: 2 trivial `#[spawn]` branches against
# `JoinSet` + token on 2 workers, both threads. Per group.
se=$(per_group spawn2_errgroup)
sj=$(per_group spawn2_joinset)
sratio=$(ratio_of "$se" "$sj")
table "2 trivial #[spawn] branches" "Ir per group" "errgroup!" "$se" "JoinSet + token" "$sj" "$sratio"
printf '%-34s %12s\n' "budget" "<= ${SPAWN_BUDGET}x"
echo

if awk -v r="$ratio" -v b="$BUDGET" 'BEGIN { exit !(r > b) }'; then
  echo "FAIL: the ratio ${ratio}x exceeds the budget ${BUDGET}x" >&2
  exit 1
fi
if awk -v r="$fratio" -v b="$FANOUT_BUDGET" 'BEGIN { exit !(r > b) }'; then
  echo "FAIL: the fan-out ratio ${fratio}x exceeds its budget ${FANOUT_BUDGET}x" >&2
  exit 1
fi
if awk -v r="$bratio" -v b="$BLOCKING_BUDGET" 'BEGIN { exit !(r > b) }'; then
  echo "FAIL: the blocking ratio ${bratio}x exceeds its budget ${BLOCKING_BUDGET}x" >&2
  exit 1
fi
if awk -v r="$sratio" -v b="$SPAWN_BUDGET" 'BEGIN { exit !(r > b) }'; then
  echo "FAIL: the #[spawn] ratio ${sratio}x exceeds its budget ${SPAWN_BUDGET}x" >&2
  exit 1
fi
echo "ok"
