#!/usr/bin/env bash
# Does the cost of one `qspool pop --ack` stay flat as the queue gets deeper?
#
#   bench/pop-depth.sh                      # depths 100 and 1000000
#   bench/pop-depth.sh 100 10000 1000000    # any list of depths
#   BENCH_LEASES="0 20000 200000" bench/pop-depth.sh 100
#                                           # the same depth with that many live leases
#
# For each depth it builds a fresh spool, fills it with the tool itself
# (`seq N | qspool push --lines --no-sync`), then times K separate one-shot
# `qspool pop --ack` processes, one `qspool stats --json`, and a few one-message
# pushes with fsync. It ends with a table and the ratio of each depth's median
# pop time to the smallest depth's.
#
# Each spool is filled with depth + K + warmup messages, so that while the timed
# pops run the number of ready messages falls from depth + K to depth and never
# goes below the stated depth.
#
# Environment:
#   BENCH_POPS (or K)   timed pops per depth                  [200]
#   BENCH_LEASES        live leases held while the pops run, a list; each depth is
#                       measured with each (one `pop -n L --lease 12h` takes them)  [0]
#   BENCH_WARMUP        untimed pops before them               [5]
#   BENCH_PUSHES        timed one-message fsync'd pushes       [10]
#   BENCH_DIR           where the temporary spools go          [$TMPDIR or /tmp]
#   BENCH_QSPOOL        a qspool binary to measure instead of building this tree
#   BENCH_TIMER         hyperfine | python | bash              [first available]
#   BENCH_KEEP=1        keep the spools instead of deleting them
#
# Timings are with a warm page and dentry cache (the spool was just written).
# Needs bash >= 5 for the pure-bash timer; hyperfine and python3 are optional.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
POPS=${BENCH_POPS:-${K:-200}}
WARMUP=${BENCH_WARMUP:-5}
PUSHES=${BENCH_PUSHES:-10}
if [ "$#" -gt 0 ]; then DEPTHS=("$@"); else DEPTHS=(100 1000000); fi

read -r -a LEASES <<<"${BENCH_LEASES:-0}"
for n in "$POPS" "$WARMUP" "$PUSHES" "${DEPTHS[@]}" "${LEASES[@]}"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "pop-depth: not a non-negative integer: $n" >&2; exit 2; }
done
# Smallest first: every ratio is against the smallest depth.
mapfile -t DEPTHS < <(printf '%s\n' "${DEPTHS[@]}" | sort -n -u)
[ "$POPS" -ge 1 ] || { echo "pop-depth: BENCH_POPS must be at least 1" >&2; exit 2; }
[ "$PUSHES" -ge 1 ] || { echo "pop-depth: BENCH_PUSHES must be at least 1" >&2; exit 2; }

# ---- timer -----------------------------------------------------------------------------------
TIMER=${BENCH_TIMER:-}
if [ -z "$TIMER" ]; then
    if command -v hyperfine >/dev/null 2>&1; then TIMER=hyperfine
    elif command -v python3 >/dev/null 2>&1; then TIMER=python
    else TIMER=bash
    fi
fi
case $TIMER in
    hyperfine) command -v hyperfine >/dev/null 2>&1 || { echo "pop-depth: no hyperfine" >&2; exit 2; } ;;
    python) command -v python3 >/dev/null 2>&1 || { echo "pop-depth: no python3" >&2; exit 2; } ;;
    bash) ;;
    *) echo "pop-depth: BENCH_TIMER is hyperfine, python or bash, not $TIMER" >&2; exit 2 ;;
esac

# Wall-clock now in microseconds, without forking when bash has EPOCHREALTIME.
now_us() {
    if [ -n "${EPOCHREALTIME:-}" ]; then
        local t=${EPOCHREALTIME/[.,]/}
        echo "$((10#$t))"
    else
        echo "$(( $(date +%s%N) / 1000 ))"
    fi
}

# time_runs RUNS WARMUP OUTFILE CMD...: runs CMD (stdout and stderr discarded) WARMUP times
# untimed, then RUNS times, writing one wall time per run, in microseconds, to OUTFILE.
time_runs() {
    local runs=$1 warm=$2 out=$3
    shift 3
    case $TIMER in
        hyperfine)
            local q json=$out.json
            printf -v q '%q ' "$@"
            # -N: no intermediate shell, so nothing but the process itself is timed.
            hyperfine -N --style none --runs "$runs" --warmup "$warm" \
                --export-json "$json" "$q" >/dev/null 2>"$out.err" || {
                    cat "$out.err" >&2; return 1; }
            # The JSON lists every run's time in seconds under "times"; no jq needed.
            awk '/"times"/ {on = 1; next} on && /\]/ {exit}
                 on {gsub(/[ ,]/, ""); if ($0 != "") printf "%.1f\n", $0 * 1e6}' \
                "$json" >"$out"
            ;;
        python)
            python3 - "$runs" "$warm" "$out" "$@" <<'PY'
import subprocess, sys, time
runs, warm, out, cmd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
D = subprocess.DEVNULL
for _ in range(warm):
    subprocess.run(cmd, stdin=D, stdout=D, stderr=D)
with open(out, "w") as f:
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        subprocess.run(cmd, stdin=D, stdout=D, stderr=D)
        f.write("%.1f\n" % ((time.perf_counter_ns() - t0) / 1000))
PY
            ;;
        bash)
            local i t0 t1
            for ((i = 0; i < warm; i++)); do "$@" </dev/null >/dev/null 2>&1 || true; done
            : >"$out"
            for ((i = 0; i < runs; i++)); do
                t0=$(now_us)
                "$@" </dev/null >/dev/null 2>&1 || true
                t1=$(now_us)
                echo "$((t1 - t0))" >>"$out"
            done
            ;;
    esac
}

# summarize FILE: "mean median p95 min" in microseconds (p95 by nearest rank).
summarize() {
    sort -g "$1" | awk '{ v[NR] = $1; s += $1 }
        END {
            if (NR == 0) { print "nan nan nan nan"; exit }
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            r = int(0.95 * NR); if (r < 0.95 * NR) r++; if (r < 1) r = 1
            printf "%.1f %.1f %.1f %.1f\n", s / NR, med, v[r], v[1]
        }'
}

ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }

# ---- build -------------------------------------------------------------------------------------
if [ -n "${BENCH_QSPOOL:-}" ]; then
    # A binary built elsewhere (an earlier release, say), measured as it is.
    QSPOOL=$BENCH_QSPOOL
else
    echo "== building release binary"
    # Cargo says where the binary is: the target directory and the build target may be set
    # anywhere.
    QSPOOL=$(cd "$ROOT" && cargo build --release --quiet --message-format=json |
        sed -n 's/.*"executable":"\([^"]*\/qspool\)".*/\1/p' | tail -n 1)
fi
[ -x "$QSPOOL" ] || { echo "$0: cargo built no qspool binary" >&2; exit 1; }
[ -x "$QSPOOL" ] || { echo "pop-depth: no binary at $QSPOOL" >&2; exit 1; }

# ---- scratch space -----------------------------------------------------------------------------
BASE=${BENCH_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/qspool-pop-depth.XXXXXX")
cleanup() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "== kept spools in $WORK"
    else
        echo "== removing $WORK"
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

EXTRA=$((POPS + WARMUP))
echo "== $("$QSPOOL" --version), timer: $TIMER, $(nproc 2>/dev/null || echo '?') CPUs"
echo "== scratch: $WORK ($(df -PT "$WORK" | awk 'NR == 2 { print $2 }'))"
echo "== depths: ${DEPTHS[*]}; $POPS timed + $WARMUP warm-up pops per depth"
echo "== each spool gets depth + $EXTRA messages, so the pops run at depth+$POPS down to depth"

# Process start-up floor: what any qspool invocation costs before it touches a spool.
time_runs "$POPS" "$WARMUP" "$WORK/baseline.us" "$QSPOOL" --version
read -r B_MEAN B_MED B_P95 _ < <(summarize "$WORK/baseline.us")
echo "== baseline \`qspool --version\`: median $(ms "$B_MED") ms, mean $(ms "$B_MEAN") ms, p95 $(ms "$B_P95") ms"

ROWS=()
BASE_MED=
for depth in "${DEPTHS[@]}"; do
for live in "${LEASES[@]}"; do
    spool=$WORK/spool-$depth-$live
    fill=$((depth + EXTRA + live))
    echo
    echo "== depth $depth, $live live leases: filling $spool with $fill messages"
    t0=$(now_us)
    seq "$fill" | "$QSPOOL" -s "$spool" push --lines --no-sync >/dev/null
    t1=$(now_us)
    fill_us=$((t1 - t0))
    fill_rate=$(awk -v n="$fill" -v u="$fill_us" 'BEGIN { printf "%.0f", n / (u / 1e6) }')
    echo "   fill: $(ms "$fill_us") ms, $fill_rate msg/s"
    if [ "$live" -gt 0 ]; then
        # The oldest messages, held for the whole run as a batch consumer holds them.
        "$QSPOOL" -s "$spool" pop -n "$live" --json --lease 12h >/dev/null
        echo "   leased $live messages for 12h"
    fi

    # The bucket tree the fill made: how many directories per level, and the widest of each.
    new=$spool/new
    l1=$(find "$new" -mindepth 1 -maxdepth 1 -type d | wc -l)
    l2=$(find "$new" -mindepth 2 -maxdepth 2 -type d | wc -l)
    l3=$(find "$new" -mindepth 3 -maxdepth 3 -type d | wc -l)
    # find lists each directory's entries together, so `uniq -c` needs no sort; no `head` either,
    # since a reader that quits early would kill the writer with SIGPIPE under pipefail.
    widest() { find "$new" -mindepth "$1" -maxdepth "$1" "${@:2}" -printf '%h\n' | uniq -c |
        awk '$1 > m { m = $1 } END { print m + 0 }'; }
    max_l2=$(widest 2 -type d)
    max_l3=$(widest 3 -type d)
    max_leaf=$(widest 4)
    first_leaf=$(find "$new" -mindepth 3 -maxdepth 3 -type d | sort | sed -n 1p)
    first_leaf_n=$(find "$first_leaf" -mindepth 1 -maxdepth 1 | wc -l)
    echo "   tree: $l1 top-level (KKKKKKK), $l2 second-level (SSS), $l3 leaf (MMM) dirs;"
    echo "         widest: $max_l2 SSS in one KKKKKKK, $max_l3 MMM in one SSS, $max_leaf messages in one leaf;"
    echo "         first leaf holds $first_leaf_n messages"

    stats_json=$("$QSPOOL" -s "$spool" stats --json)
    ready=$(printf '%s' "$stats_json" | grep -o '"ready": *[0-9]*' | grep -o '[0-9]*$' || true)
    echo "   ready before pops: ${ready:-?}"

    echo "   timing $POPS pops (after $WARMUP warm-up pops)"
    time_runs "$POPS" "$WARMUP" "$WORK/pop-$depth.us" "$QSPOOL" -s "$spool" pop --ack
    read -r P_MEAN P_MED P_P95 P_MIN < <(summarize "$WORK/pop-$depth.us")

    stats_json=$("$QSPOOL" -s "$spool" stats --json)
    ready_after=$(printf '%s' "$stats_json" | grep -o '"ready": *[0-9]*' | grep -o '[0-9]*$' || true)
    done_after=$(printf '%s' "$stats_json" | grep -o '"done": *[0-9]*' | grep -o '[0-9]*$' || true)
    echo "   ready after pops: ${ready_after:-?} (done: ${done_after:-?})"
    if [ -n "$ready_after" ] && [ "$ready_after" -lt "$depth" ]; then
        echo "   WARNING: depth fell below $depth during the pops" >&2
    fi

    # One stats --json, timed on its own (it lstat's every message, so it grows with depth).
    t0=$(now_us)
    "$QSPOOL" -s "$spool" stats --json >/dev/null
    t1=$(now_us)
    stats_us=$((t1 - t0))

    # One-message pushes with fsync (the default), a few times for a stable median.
    time_runs "$PUSHES" 1 "$WORK/push-$depth.us" "$QSPOOL" -s "$spool" push bench-one-message
    read -r _ U_MED _ _ < <(summarize "$WORK/push-$depth.us")

    [ -n "$BASE_MED" ] || BASE_MED=$P_MED
    ratio=$(awk -v a="$P_MED" -v b="$BASE_MED" 'BEGIN { printf "%.2f", a / b }')
    echo "   pop: mean $(ms "$P_MEAN") ms, median $(ms "$P_MED") ms, p95 $(ms "$P_P95") ms, min $(ms "$P_MIN") ms; ratio $ratio"
    echo "   stats --json: $(ms "$stats_us") ms; push (fsync) median of $PUSHES: $(ms "$U_MED") ms"

    ROWS+=("$(printf '%10s %8s %10s %10s %9s %9s %9s %7s %10s %10s %8s %9s' \
        "$depth" "$live" "$(awk -v u="$fill_us" 'BEGIN { printf "%.2f", u / 1e6 }')" "$fill_rate" \
        "$(ms "$P_MEAN")" "$(ms "$P_MED")" "$(ms "$P_P95")" "${ratio}x" \
        "$(ms "$stats_us")" "$(ms "$U_MED")" "$l2/$l3" "$max_leaf")")

    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$spool"; fi
done
done

echo
echo "== results ($POPS one-shot \`pop --ack\` per depth, ms; ratio = median / median of the first row;"
echo "   depth held between depth+$POPS and depth by $EXTRA extra messages; baseline --version median $(ms "$B_MED") ms)"
printf '%10s %8s %10s %10s %9s %9s %9s %7s %10s %10s %8s %9s\n' \
    depth leases fill_s fill_msg/s pop_mean pop_med pop_p95 ratio stats_ms push_fs_ms SSS/MMM max_leaf
for r in "${ROWS[@]}"; do echo "$r"; done
