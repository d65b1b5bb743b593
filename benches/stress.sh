#!/usr/bin/env bash
# The big sizes of tests/stress.rs, in release mode: 1,000,000 sequential
# groups on every path (success, error, panic, dropped midway, deadline;
# the two that wait a timer tick per group run 20,000) and 100,000
# concurrent tasks in one group, each checked to leave the live heap where it
# found it. CI runs the same tests at small sizes.
#
#   benches/stress.sh                        # everything (about fifteen minutes on 2 busy cores)
#   STRESS_GROUPS=100000 benches/stress.sh   # fewer sequential groups per path
#
# Prints, per path: the groups run, the time, live bytes and blocks before
# and after, and the process's RSS at the start and the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# One test at a time: the counting allocator sees every thread of the binary.
exec cargo test --release --test stress -- --ignored --test-threads=1 --nocapture
