#!/usr/bin/env bash
# What the errgroup! macro costs at compile time.
#
# Generates a throwaway workspace in a temp dir with two crates, both
# depending on this workspace by path: `with_errgroup` (50 async fns, each one
# `errgroup!` of 5 branches) and `with_try_join` (the same fns with
# `tokio::try_join!`). Builds every dependency once, then times a rebuild of
# each crate alone (`touch src/lib.rs; cargo build`), and the build of the
# `errgroup-macros` crate by itself (`cargo clean -p errgroup-macros; cargo
# build -p errgroup-macros`, its syn/quote/proc-macro2 already built).
# Uses hyperfine if present (apt-get install hyperfine), else `date` around
# each run (median taken). Its own target dir: the workspace's is untouched.
#
# With --instructions, each crate is instead built with its rustc under
# cachegrind (valgrind --tool=cachegrind --cache-sim=no), twice: from
# scratch (CARGO_INCREMENTAL=0) and after a `touch` from its incremental
# cache; the instructions rustc executed are printed: deterministic, unlike
# the wall clock of a shared machine, so a change of a few percent shows.
# (The timed builds use whatever CARGO_INCREMENTAL says.)
# --base REV adds a third crate, the same 50 groups built against
# `git archive REV` of this repository, in the same run (REV's own
# Cargo.lock), so a change is measured against where it started.
#
#   benches/compile-time.sh           # 10 runs per command
#   benches/compile-time.sh --quick   # 3 runs per command
#   PROFILE=release benches/compile-time.sh
#   benches/compile-time.sh --instructions [--base REV]   # ~3 min per crate
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

runs=10
instructions=false
base=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runs=3 ;;
    --instructions) instructions=true ;;
    --base) base=${2:?--base needs a revision}; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$base" ] && ! $instructions; then
  echo "--base is for --instructions (wall clock on this machine is noisier than most changes)" >&2
  exit 2
fi
if $instructions && ! command -v valgrind >/dev/null 2>&1; then
  echo "--instructions needs valgrind (apt-get install valgrind)" >&2
  exit 2
fi
profile=${PROFILE:-dev}
fns=50
branches=5

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ws="$tmp/ws"
mkdir -p "$ws/with_errgroup/src" "$ws/with_try_join/src"

cat >"$ws/Cargo.toml" <<EOF
[workspace]
members = ["with_errgroup", "with_try_join"]
resolver = "3"
EOF
# manifest NAME ERRGROUP_PATH
manifest() {
  cat <<EOF
[package]
name = "$1"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
errgroup = { path = "$2" }
tokio = { version = "1.47", features = ["rt", "macros"] }
EOF
}
for krate in with_errgroup with_try_join; do
  manifest "$krate" "$root" >"$ws/$krate/Cargo.toml"
done
# The same versions as this workspace, and no index look-up when it is cached.
cp "$root/Cargo.lock" "$ws/Cargo.lock"

{
  echo "//! $fns errgroup! invocations of $branches branches each."
  for ((f = 0; f < fns; f++)); do
    echo "pub async fn f$f(x: u64) -> Result<u64, errgroup::Error<std::io::Error>> {"
    echo "    let (b0$(for ((b = 1; b < branches; b++)); do printf ', b%d' "$b"; done)) = errgroup::errgroup! {"
    echo "        type Error = std::io::Error;"
    for ((b = 0; b < branches; b++)); do
      echo "        b$b => { tokio::task::yield_now().await; Ok(x + $((f * branches + b))) },"
    done
    echo "    }?;"
    echo "    Ok(b0$(for ((b = 1; b < branches; b++)); do printf ' + b%d' "$b"; done))"
    echo "}"
  done
} >"$ws/with_errgroup/src/lib.rs"

{
  echo "//! The same $fns functions with tokio::try_join! of $branches futures."
  for ((f = 0; f < fns; f++)); do
    echo "pub async fn f$f(x: u64) -> Result<u64, std::io::Error> {"
    echo "    let (b0$(for ((b = 1; b < branches; b++)); do printf ', b%d' "$b"; done)) = tokio::try_join!("
    for ((b = 0; b < branches; b++)); do
      echo "        async { tokio::task::yield_now().await; Ok::<u64, std::io::Error>(x + $((f * branches + b))) },"
    done
    echo "    )?;"
    echo "    Ok(b0$(for ((b = 1; b < branches; b++)); do printf ' + b%d' "$b"; done))"
    echo "}"
  done
} >"$ws/with_try_join/src/lib.rs"

export CARGO_TARGET_DIR="$ws/target"

if $instructions; then
  # The base: the same crate against REV's tree, in a workspace of its own
  # (two path packages named errgroup cannot share one lock file) and the
  # same target dir, so tokio is built once.
  crates=(with_errgroup with_try_join)
  if [ -n "$base" ]; then
    rev=$(git -C "$root" rev-parse --short "$base")
    mkdir -p "$tmp/base/src" "$tmp/base/ws/with_errgroup_at_base/src"
    git -C "$root" archive "$rev" | tar -x -C "$tmp/base/src"
    printf '[workspace]\nmembers = ["with_errgroup_at_base"]\nresolver = "3"\n' >"$tmp/base/ws/Cargo.toml"
    manifest with_errgroup_at_base "$tmp/base/src" >"$tmp/base/ws/with_errgroup_at_base/Cargo.toml"
    cp "$ws/with_errgroup/src/lib.rs" "$tmp/base/ws/with_errgroup_at_base/src/lib.rs"
    cp "$tmp/base/src/Cargo.lock" "$tmp/base/ws/Cargo.lock"
    crates+=(with_errgroup_at_base)
  fi
  # RUSTC_WRAPPER: the toolchain's own rustc (not rustup's proxy, whose
  # instructions would be counted too), under cachegrind for the crate
  # named in COUNT_CRATE.
  cat >"$tmp/count-rustc" <<'EOF'
#!/usr/bin/env bash
shift
if [ -n "${COUNT_CRATE:-}" ] && [[ " $* " == *" --crate-name $COUNT_CRATE "* ]]; then
  exec valgrind --tool=cachegrind --cache-sim=no --trace-children=yes \
    --log-file="$COUNT_OUT.log.%p" --cachegrind-out-file="$COUNT_OUT.out.%p" "$REAL_RUSTC" "$@"
fi
exec "$REAL_RUSTC" "$@"
EOF
  chmod +x "$tmp/count-rustc"
  export RUSTC_WRAPPER="$tmp/count-rustc"
  REAL_RUSTC="$(rustc --print sysroot)/bin/rustc"
  export REAL_RUSTC
  build=(cargo build --quiet --profile "$profile")
  dir_of() { if [ "$1" = with_errgroup_at_base ]; then echo "$tmp/base/ws"; else echo "$ws"; fi; }
  for krate in "${crates[@]}"; do
    (cd "$(dir_of "$krate")" && { "${build[@]}" --offline 2>/dev/null || "${build[@]}"; })
  done
  # Two builds of each crate: from scratch (CARGO_INCREMENTAL=0: a clean
  # build, CI, `--release`), where code generation dominates; and rebuilt
  # after a `touch` from its incremental cache (the dev profile's default),
  # where the macro's expansion and the type checks dominate.
  declare -A full incr
  count() { # KRATE INCREMENTAL: prints the instructions of one build
    local krate=$1 dir out="$tmp/$1.$2"
    dir=$(dir_of "$krate")
    touch "$dir/$krate/src/lib.rs"
    (cd "$dir" && CARGO_INCREMENTAL=$2 COUNT_CRATE=$krate COUNT_OUT="$out" "${build[@]}" --offline -p "$krate")
    cat "$out".out.* | awk '/^summary:/ { s += $2 } END { print s }'
  }
  echo "counting rustc instructions ($profile profile, two builds per crate under cachegrind)..."
  for krate in "${crates[@]}"; do
    (cd "$(dir_of "$krate")" && touch "$krate/src/lib.rs" && CARGO_INCREMENTAL=1 "${build[@]}" --offline -p "$krate")
    incr[$krate]=$(count "$krate" 1)
    full[$krate]=$(count "$krate" 0)
  done
  row() { printf '%-52s %11s %7s %11s %7s\n' "$@"; }
  giga() { awk -v x="$1" 'BEGIN { printf "%.3f G", x / 1e9 }'; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3fx", a / b }'; }
  line() { # LABEL CRATE
    row "$1" "$(giga "${full[$2]}")" "$(ratio "${full[$2]}" "${full[with_try_join]}")" \
      "$(giga "${incr[$2]}")" "$(ratio "${incr[$2]}" "${incr[with_try_join]}")"
  }
  echo
  row "rustc instructions ($profile)" "scratch" ratio "touched" ratio
  line "crate with $fns x errgroup! { $branches branches }" with_errgroup
  if [ -n "$base" ]; then
    line "the same against $base ($rev)" with_errgroup_at_base
  fi
  line "same crate with $fns x tokio::try_join!($branches futures)" with_try_join
  per() { awk -v a="$1" -v b="$2" -v n="$fns" 'BEGIN { printf "%.1f M", (a - b) / n / 1e6 }'; }
  echo "extra instructions per errgroup! invocation: $(per "${full[with_errgroup]}" "${full[with_try_join]}") from scratch, $(per "${incr[with_errgroup]}" "${incr[with_try_join]}") touched"
  if [ -n "$base" ]; then
    change() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }'; }
    echo "this tree against $base: $(change "${full[with_errgroup]}" "${full[with_errgroup_at_base]}") from scratch, $(change "${incr[with_errgroup]}" "${incr[with_errgroup_at_base]}") touched"
  fi
  echo
  echo "scratch: CARGO_INCREMENTAL=0; touched: rebuilt from its incremental cache after a touch."
  exit 0
fi

cd "$ws"
build=(cargo build --quiet --profile "$profile")
offline=()
if "${build[@]}" --offline --workspace 2>/dev/null; then
  offline=(--offline)
else
  echo "(building dependencies online: some crates were not in the local cache)"
  "${build[@]}" --workspace
fi
build+=("${offline[@]}")

# time_cmd NAME PREPARE COMMAND: prints "NAME MEDIAN_SECONDS".
time_cmd() {
  local name=$1 prepare=$2 cmd=$3
  if command -v hyperfine >/dev/null 2>&1; then
    hyperfine --style none --warmup 1 --runs "$runs" --prepare "$prepare" \
      --export-csv "$tmp/$name.csv" "$cmd" >/dev/null 2>>"$tmp/hyperfine.log"
    # columns: command,mean,stddev,median,user,system,min,max
    echo "$name $(awk -F, 'NR == 2 {print $4}' "$tmp/$name.csv")"
  else
    local i t0 t1 samples=()
    for ((i = 0; i < runs + 1; i++)); do
      bash -c "$prepare"
      t0=$(date +%s.%N)
      bash -c "$cmd"
      t1=$(date +%s.%N)
      [ "$i" -gt 0 ] && samples+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    done
    echo "$name $(printf '%s\n' "${samples[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
  fi
}

echo "timing ($profile profile, $runs runs each, $(command -v hyperfine >/dev/null && echo hyperfine || echo date))..."
read -r _ t_eg < <(time_cmd errgroup "touch with_errgroup/src/lib.rs" "${build[*]} -p with_errgroup")
read -r _ t_tj < <(time_cmd try_join "touch with_try_join/src/lib.rs" "${build[*]} -p with_try_join")
read -r _ t_mac < <(time_cmd macros "cargo clean --quiet ${offline[*]} -p errgroup-macros" "${build[*]} -p errgroup-macros")
macro_deps="cargo clean --quiet ${offline[*]} -p errgroup-macros -p syn -p quote -p proc-macro2"
read -r _ t_mac_cold < <(time_cmd macros_cold "$macro_deps" "${build[*]} -p errgroup-macros")

row() { printf '%-58s %10s %10s\n' "$@"; }
secs() { awk -v x="$1" 'BEGIN { printf "%.3f", x }'; }
echo
row "build ($profile), median of $runs" seconds ratio
row "crate with $fns x errgroup! { $branches branches }" "$(secs "$t_eg")" "$(awk -v a="$t_eg" -v b="$t_tj" 'BEGIN { printf "%.2fx", a / b }')"
row "same crate with $fns x tokio::try_join!($branches futures)" "$(secs "$t_tj")" "1.00x"
row "errgroup-macros alone (syn/quote/proc-macro2 built)" "$(secs "$t_mac")" "$(awk -v a="$t_mac" -v b="$t_tj" 'BEGIN { printf "%.2fx", a / b }')"
row "errgroup-macros with syn/quote/proc-macro2 from scratch" "$(secs "$t_mac_cold")" "$(awk -v a="$t_mac_cold" -v b="$t_tj" 'BEGIN { printf "%.2fx", a / b }')"
echo "extra per errgroup! invocation: $(awk -v a="$t_eg" -v b="$t_tj" -v n="$fns" 'BEGIN { printf "%.1f ms", (a - b) / n * 1000 }')"
echo
echo "ratio: against the try_join! crate's rebuild. Dependencies (tokio, errgroup) are built once beforehand."
