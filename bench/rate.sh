#!/usr/bin/env bash
# How well does a spool-wide rate limit hold, and what does it cost a pop?
#
#   bench/rate.sh              # 3 workers, -j 8 each, 100/s burst 20, for 60 s
#   BENCH_RATE_SECONDS=10 bench/rate.sh
#
# Accuracy: one spool with `init --rate R/s --burst B`, more messages than the run can take,
# and P `qspool work --wait -j J` processes whose CMD logs its start time in nanoseconds. After
# the run (SIGTERM to every worker) it prints the starts per second against the limit: the
# whole run's rate, the most in any one-second window (at most R + B), and the spread of the
# per-second counts after the first second (the burst).
#
# Cost: K one-shot `pop --ack` processes on a spool without a limit, then on one with a limit
# too high to wait for (1000000/s): the difference is the lock, read and write of `rate`.
#
# Environment:
#   BENCH_RATE          the limit, starts per second                 [100]
#   BENCH_BURST         its burst                                    [20]
#   BENCH_RATE_SECONDS  how long the workers run                     [60]
#   BENCH_WORKERS       how many work processes                      [3]
#   BENCH_JOBS          -j of each                                   [8]
#   BENCH_POPS          one-shot pops timed per spool                [300]
#   BENCH_DIR           where the temporary spools go                [$TMPDIR or /tmp]
#   BENCH_QSPOOL        a qspool binary to measure instead of building this tree
#
# Timings print; nothing is asserted but the counts.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RATE=${BENCH_RATE:-100}
BURST=${BENCH_BURST:-20}
SECONDS_RUN=${BENCH_RATE_SECONDS:-60}
WORKERS=${BENCH_WORKERS:-3}
JOBS=${BENCH_JOBS:-8}
POPS=${BENCH_POPS:-300}

if [ -n "${BENCH_QSPOOL:-}" ]; then
    Q=$BENCH_QSPOOL
else
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    Q=$ROOT/target/release/qspool
fi
WORK_DIR=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/qspool-rate.XXXXXX")
trap 'rm -rf "$WORK_DIR"' EXIT

# --- accuracy --------------------------------------------------------------------------------
spool=$WORK_DIR/accuracy
log=$WORK_DIR/starts
"$Q" -s "$spool" init --rate "$RATE/s" --burst "$BURST" >/dev/null
seq $(((RATE * SECONDS_RUN) * 3 / 2 + BURST + 100)) | "$Q" -s "$spool" push --lines --no-sync >/dev/null
pids=()
for _ in $(seq "$WORKERS"); do
    "$Q" -s "$spool" work --wait -q -j "$JOBS" -- sh -c "date +%s%N >> $log" 2>/dev/null &
    pids+=($!)
done
sleep "$SECONDS_RUN"
kill -TERM "${pids[@]}"
wait "${pids[@]}" || true

echo "## rate limit $RATE/s burst $BURST: $WORKERS x work -j $JOBS for ${SECONDS_RUN}s"
python3 - "$log" "$RATE" "$BURST" <<'EOF'
import sys
t = sorted(int(l) for l in open(sys.argv[1]) if l.strip())
rate, burst = int(sys.argv[2]), int(sys.argv[3])
span = (t[-1] - t[0]) / 1e9
most, lo = 0, 0
for hi in range(len(t)):
    while t[hi] - t[lo] >= 1_000_000_000:
        lo += 1
    most = max(most, hi - lo + 1)
per_s = {}
for x in t:
    s = (x - t[0]) // 1_000_000_000
    per_s[s] = per_s.get(s, 0) + 1
steady = [per_s.get(s, 0) for s in range(1, int(span))]
print(f"starts            {len(t)} in {span:.2f} s")
print(f"rate over the run {(len(t) - burst) / span:.2f}/s (burst taken out; limit {rate}/s)")
print(f"most in any 1 s   {most} (limit + burst = {rate + burst})")
if steady:
    print(f"per second        min {min(steady)}, median {sorted(steady)[len(steady) // 2]}, max {max(steady)} (seconds 2..{len(steady) + 1})")
if most > rate + burst + 2:
    sys.exit(f"bench/rate.sh: {most} starts in one second, over {rate} + {burst}")
EOF

# --- cost of a limited pop -------------------------------------------------------------------
time_pops() {
    local spool=$1 start end
    seq $((POPS + 5)) | "$Q" -s "$spool" push --lines --no-sync >/dev/null
    for _ in 1 2 3 4 5; do "$Q" -s "$spool" pop --ack >/dev/null; done
    start=${EPOCHREALTIME//[!0-9]/}
    for _ in $(seq "$POPS"); do "$Q" -s "$spool" pop --ack >/dev/null; done
    end=${EPOCHREALTIME//[!0-9]/}
    echo $(((end - start) / POPS))
}
"$Q" -s "$WORK_DIR/plain" init >/dev/null
"$Q" -s "$WORK_DIR/limited" init --rate 1000000/s --burst 1000000 >/dev/null
plain=$(time_pops "$WORK_DIR/plain")
limited=$(time_pops "$WORK_DIR/limited")
plain2=$(time_pops "$WORK_DIR/plain")
limited2=$(time_pops "$WORK_DIR/limited")
echo
echo "## one-shot pop --ack, $POPS per row, two rounds alternated"
echo "without a limit   ${plain} us, ${plain2} us"
echo "with a limit      ${limited} us, ${limited2} us"
