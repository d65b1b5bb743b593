# Shell helpers shared by ratios.sh and vs-go.sh (sourced, not run).

# The cargo target directory (honours CARGO_TARGET_DIR), and criterion's results in it.
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]*)".*/\1/')
crit="$target_dir/criterion"

# What the interleaved benches (intask, scaling, loopback) printed last, one file
# per bench: `CASE/SIDE .. median_ns NS` lines.
medians_file() { echo "$target_dir/medians-$1.txt"; }

# median CASE SIDE: the median an interleaved bench printed, or the
# median point estimate (ns) criterion recorded; empty if none. The
# interleaved one first: a case that moved out of criterion
# (group2_intask) may still have its old results in target/criterion.
median() {
  local f="$crit/$1/$2/new/estimates.json" m
  m=$(interleaved_field median_ns "$1/$2")
  if [ -n "$m" ]; then
    echo "$m"
  elif [ -f "$f" ]; then
    sed -E 's/.*"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.eE+-]+).*/\1/' "$f"
  fi
}

# cpu CASE SIDE: the mean CPU time (ns, the whole process) an interleaved
# bench printed for that side; empty if none.
cpu() { interleaved_field cpu_ns "$1/$2"; }

# interleaved_field NAME CASE/SIDE: the value after NAME on that side's line.
interleaved_field() {
  cat "$target_dir"/medians-*.txt 2>/dev/null |
    awk -v f="$1" -v id="$2" '$1 == id { for (i = 2; i < NF; i++) if ($i == f) v = $(i + 1) } END { print v }'
}

# side errgroup|other CASE: the id of that side of CASE (`errgroup`, a
# stand-in's `errgroup_*`, or the alternative's); empty if the case has no results.
side() {
  local want=$1 case_dir="$crit/$2" d name
  [ -d "$case_dir" ] || return 0
  for d in "$case_dir"/*/; do
    name=$(basename "$d")
    [ "$name" = report ] && continue
    [ -f "$d/new/estimates.json" ] || continue
    case "$name" in
      errgroup*) if [ "$want" = errgroup ]; then echo "$name"; return; fi ;;
      *) if [ "$want" = other ]; then echo "$name"; return; fi ;;
    esac
  done
}

# fmt_ns NS: a duration for people.
fmt_ns() {
  awk -v x="$1" 'BEGIN {
    if (x == "") { print "-"; exit }
    if (x >= 1e9) printf "%.3f s", x / 1e9
    else if (x >= 1e6) printf "%.3f ms", x / 1e6
    else if (x >= 1e3) printf "%.2f us", x / 1e3
    else printf "%.1f ns", x }'
}

# calc EXPR [FORMAT]: awk arithmetic, e.g. calc "$a / $b" (printed with FORMAT, default %.2f).
calc() { awk "BEGIN { printf \"${2:-%.2f}\", $1 }" 2>/dev/null || true; }

# mem_side SIDE: "ID BYTES" from one process of the memory bench.
mem_side() {
  cargo bench -q --bench memory -- "$1" 2>/dev/null | awk '/bytes_per_task/ {print $2, $NF}'
}
