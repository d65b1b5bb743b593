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
#   benches/compile-time.sh           # 10 runs per command
#   benches/compile-time.sh --quick   # 3 runs per command
#   PROFILE=release benches/compile-time.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

runs=10
case "${1:-}" in
  --quick) runs=3 ;;
  "") ;;
  -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
  *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac
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
for krate in with_errgroup with_try_join; do
  cat >"$ws/$krate/Cargo.toml" <<EOF
[package]
name = "$krate"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
errgroup = { path = "$root" }
tokio = { version = "1.47", features = ["rt", "macros"] }
EOF
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

cd "$ws"
export CARGO_TARGET_DIR="$ws/target"
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
