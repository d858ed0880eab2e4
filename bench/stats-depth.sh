#!/usr/bin/env bash
# What do `qspool stats` and `qspool list` cost, in wall time and peak memory, as the spool
# gets deeper?
#
#   bench/stats-depth.sh                          # depths 10000 100000 1000000
#   BENCH_DEPTHS="1000 50000" bench/stats-depth.sh
#   bench/stats-depth.sh 100 10000 1000000        # arguments win over BENCH_DEPTHS
#
# For each depth it builds a fresh spool of that many ready messages with the tool itself, in
# one process (`seq N | qspool push --lines --no-sync`). One burst already spreads the messages
# over as many millisecond buckets as the push takes milliseconds, as real traffic would; the
# bucket tree it made is printed. Then it measures these four, BENCH_RUNS times each, in rounds
# (each round runs all four once, so that a slow spell of the machine hits every command alike)
# after BENCH_WARMUP untimed rounds:
#
#   stats --json                  stdout to a file (one line; its "ready" is checked)
#   stats --prometheus            stdout to a file
#   list --json | wc -l           the whole listing through a pipe; the RSS is list's, not wc's
#   list --json --limit 10        stdout to a file
#
# Peak memory is the maximum resident set size of the qspool process itself:
#   time   GNU time's `/usr/bin/time -f '%e %M' -o FILE qspool ...` (the kernel's ru_maxrss of
#          that one child, in KiB). Debian: `apt-get install time`. The default when installed.
#   proc   VmHWM of /proc/PID/status, sampled every 10 ms while qspool runs, counted only once
#          the process is qspool (after exec). A lower bound: a peak between the last sample and
#          the exit is missed, and a run shorter than a sample shows 0. Its wall time is late by
#          up to one sample period, too.
# Wall time is the bench's own clock (bash's EPOCHREALTIME, microseconds) around the command,
# /usr/bin/time or the sampling loop included (about a millisecond); with `time`, GNU time's
# %e (centiseconds) is shown beside it. The table gives per command and depth the median wall
# time, the spread, the median %e and the largest max RSS of the runs; then, per command, what
# each extra message costs between the smallest and the largest depth. A baseline of
# `qspool --version` shows what any qspool process costs before it touches a spool.
#
# Environment:
#   BENCH_DEPTHS     depths, separated by spaces                [10000 100000 1000000]
#   BENCH_RUNS       timed runs per command and depth           [3]
#   BENCH_WARMUP     untimed rounds before them                 [1]
#   BENCH_RSS        time | proc                                [time if /usr/bin/time runs]
#   BENCH_DIR        where the temporary spools go              [$TMPDIR or /tmp]
#   BENCH_KEEP=1     keep the spools instead of deleting them
#
# Timings are with a warm page and dentry cache (the spool was just written). A million
# messages take about a million inodes and, on a 4 KiB-block filesystem, about 4 GiB; filling
# them dominates the run (one mkdir per millisecond bucket, one file per message). Needs
# bash >= 5 (EPOCHREALTIME). Linux only, like qspool. Nothing here asserts a number: it
# measures and prints.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-1}
if [ "$#" -gt 0 ]; then
    DEPTHS=("$@")
else
    read -r -a DEPTHS <<<"${BENCH_DEPTHS:-10000 100000 1000000}"
fi
[ "${#DEPTHS[@]}" -ge 1 ] || { echo "stats-depth: no depths" >&2; exit 2; }
for n in "$RUNS" "$WARMUP" "${DEPTHS[@]}"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "stats-depth: not a non-negative integer: $n" >&2; exit 2; }
done
[ "$RUNS" -ge 1 ] || { echo "stats-depth: BENCH_RUNS must be at least 1" >&2; exit 2; }
mapfile -t DEPTHS < <(printf '%s\n' "${DEPTHS[@]}" | sort -n -u)
[ -n "${EPOCHREALTIME:-}" ] || { echo "stats-depth: needs bash >= 5 (EPOCHREALTIME)" >&2; exit 2; }

RSS_FROM=${BENCH_RSS:-}
if [ -z "$RSS_FROM" ]; then
    # Debian's `time` package; the shell keyword and busybox's applet do not take -f/-o alike.
    if /usr/bin/time -f '%e %M' -o /dev/null true 2>/dev/null; then RSS_FROM='time'; else RSS_FROM='proc'; fi
fi
case $RSS_FROM in
    time) /usr/bin/time -f '%e %M' -o /dev/null true 2>/dev/null ||
        { echo "stats-depth: no GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; } ;;
    proc) ;;
    *) echo "stats-depth: BENCH_RSS is time or proc, not $RSS_FROM" >&2; exit 2 ;;
esac

# Wall-clock now in microseconds, without forking.
now_us() {
    local t=${EPOCHREALTIME/[.,]/}
    echo "$((10#$t))"
}

# ---- build -------------------------------------------------------------------------------------
echo "== building release binary"
# Cargo says where the binary is: the target directory and the build target may be set anywhere.
QSPOOL=$(cd "$ROOT" && cargo build --release --quiet --message-format=json |
    sed -n 's/.*"executable":"\([^"]*\/qspool\)".*/\1/p' | tail -n 1)
[ -x "$QSPOOL" ] || { echo "$0: cargo built no qspool binary" >&2; exit 1; }
[ -x "$QSPOOL" ] || { echo "stats-depth: no binary at $QSPOOL" >&2; exit 1; }

# ---- scratch space -----------------------------------------------------------------------------
BASE=${BENCH_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/qspool-stats-depth.XXXXXX")
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
unset QSPOOL_DIR

# ---- one measured run --------------------------------------------------------------------------
# run_one SINK CMD...: runs CMD once, its stdout going to `wc -l` (SINK=wc) or to a file
# (SINK=file, left in $WORK/stdout), and prints "wall_us elapsed_s maxrss_kib lines": wall time
# by our clock, GNU time's %e ("-" without it), qspool's peak RSS, and the lines it wrote.
# A failing CMD stops the bench with its standard error.
run_one() {
    local sink=$1 t0 t1 rc=0 e=- rss lines
    shift
    rm -f "$WORK/stdout" "$WORK/lines"
    case $RSS_FROM in
        time)
            t0=$(now_us)
            if [ "$sink" = wc ]; then
                /usr/bin/time -f '%e %M' -o "$WORK/time.out" "$@" 2>"$WORK/stderr" |
                    wc -l >"$WORK/lines" || rc=$?
            else
                /usr/bin/time -f '%e %M' -o "$WORK/time.out" "$@" >"$WORK/stdout" \
                    2>"$WORK/stderr" || rc=$?
            fi
            t1=$(now_us)
            # On failure GNU time writes "Command exited with ..." first: the numbers are last.
            read -r e rss < <(tail -n 1 "$WORK/time.out")
            ;;
        proc)
            local pid wpid='' k rest v name hwm=0
            [ -p "$WORK/fifo" ] || mkfifo "$WORK/fifo"
            t0=$(now_us)
            if [ "$sink" = wc ]; then
                wc -l <"$WORK/fifo" >"$WORK/lines" &
                wpid=$!
                "$@" >"$WORK/fifo" 2>"$WORK/stderr" &
            else
                "$@" >"$WORK/stdout" 2>"$WORK/stderr" &
            fi
            pid=$!
            # Until the process is gone or a zombie (whose status has no VmHWM). Only samples
            # taken after the exec count, or the forked shell's own peak would.
            while :; do
                name='' v=''
                { while read -r k rest; do
                    case $k in
                        Name:) name=$rest ;;
                        VmHWM:) v=${rest%% *} ;;
                    esac
                done <"/proc/$pid/status"; } 2>/dev/null || true
                [ -n "$v" ] || break
                if [ "$name" = qspool ] && [ "$v" -gt "$hwm" ]; then hwm=$v; fi
                sleep 0.01
            done
            wait "$pid" || rc=$?
            [ -z "$wpid" ] || wait "$wpid" || true
            t1=$(now_us)
            rss=$hwm
            ;;
    esac
    if [ "$rc" -ne 0 ]; then
        echo "stats-depth: exit status $rc from: $*" >&2
        cat "$WORK/stderr" >&2
        exit 1
    fi
    if [ "$sink" = wc ]; then read -r lines <"$WORK/lines"; else lines=$(wc -l <"$WORK/stdout"); fi
    echo "$((t1 - t0)) $e $rss $lines"
}

# summarize FILE: "median_us min_us max_us median_e max_rss min_rss lines" of run_one's lines.
summarize() {
    awk '{ w[NR] = $1; e[NR] = $2; r = $3 + 0; l = $4
           if (NR == 1 || r > rmax) rmax = r
           if (NR == 1 || r < rmin) rmin = r }
        function median(a, n,    i, j, t) {
            for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        END {
            for (i = 1; i <= NR; i++) ws[i] = w[i] + 0
            med = median(ws, NR); lo = ws[1]; hi = ws[NR]
            if (e[1] == "-") me = "-"; else { for (i = 1; i <= NR; i++) es[i] = e[i] + 0; me = sprintf("%.2f", median(es, NR)) }
            printf "%.0f %d %d %s %d %d %d\n", med, lo, hi, me, rmax, rmin, l
        }' "$1"
}

secs() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1e6 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---- the commands ------------------------------------------------------------------------------
LABELS=("stats --json" "stats --prometheus" "list --json | wc -l" "list --json --limit 10")
SINKS=(file file wc file)
cmd_args() { # cmd_args I: the arguments after `qspool -s SPOOL` of command I
    case $1 in
        0) echo "stats --json" ;;
        1) echo "stats --prometheus" ;;
        2) echo "list --json" ;;
        3) echo "list --json --limit 10" ;;
    esac
}

echo "== $("$QSPOOL" --version), $(nproc 2>/dev/null || echo '?') CPUs, kernel $(uname -r)"
echo "== scratch: $WORK ($(df -PT "$WORK" | awk 'NR == 2 { print $2 }'))"
echo "== depths: ${DEPTHS[*]}; $RUNS timed runs per command after $WARMUP warm-up round(s)"
if [ "$RSS_FROM" = time ]; then
    echo "== max RSS from /usr/bin/time -f '%e %M' (GNU time)"
else
    echo "== max RSS from /proc/PID/status VmHWM sampled every 10 ms (a lower bound)"
fi
echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

: >"$WORK/baseline.runs"
for ((r = 0; r < RUNS; r++)); do run_one file "$QSPOOL" --version >>"$WORK/baseline.runs"; done
read -r B_MED _ _ _ B_RSS _ _ < <(summarize "$WORK/baseline.runs")
echo "== baseline \`qspool --version\`: median $(secs "$B_MED") s, max RSS $B_RSS KiB"

ROWS=()
declare -A RSS_AT MED_AT
for depth in "${DEPTHS[@]}"; do
    spool=$WORK/spool-$depth
    echo
    echo "== depth $depth: filling $spool"
    t0=$(now_us)
    seq "$depth" | "$QSPOOL" -s "$spool" push --lines --no-sync >/dev/null
    t1=$(now_us)
    fill_us=$((t1 - t0))
    echo "   fill: $(secs "$fill_us") s, $(awk -v n="$depth" -v u="$fill_us" 'BEGIN { printf "%.0f", n / (u / 1e6) }') msg/s"

    # The bucket tree: new/KKKKKKK/SSS/MMM/message, one leaf per millisecond of visible-at.
    new=$spool/new
    leaves=$(find "$new" -mindepth 3 -maxdepth 3 -type d | wc -l)
    # find lists each directory's entries together, so `uniq -c` needs no sort.
    widest=$(find "$new" -mindepth 4 -maxdepth 4 -printf '%h\n' | uniq -c |
        awk '$1 > m { m = $1 } END { print m + 0 }')
    echo "   tree: $leaves leaf (millisecond) buckets, $(awk -v n="$depth" -v l="$leaves" \
        'BEGIN { printf "%.1f", l ? n / l : 0 }') messages per leaf on average, at most $widest"

    "$QSPOOL" -s "$spool" stats --json >"$WORK/stats.json"
    # The first "ready" key is the count (a later one may be bytes or a histogram's).
    ready=$(grep -o '"ready": *[0-9]*' "$WORK/stats.json" | awk -F: 'NR == 1 { print $2 + 0 }' || true)
    echo "   stats --json: ready ${ready:-?}"
    [ "${ready:-}" = "$depth" ] || echo "   WARNING: ready is ${ready:-?}, not $depth" >&2

    for ((i = 0; i < ${#LABELS[@]}; i++)); do : >"$WORK/runs-$depth-$i"; done
    for ((r = 0; r < WARMUP + RUNS; r++)); do
        for ((i = 0; i < ${#LABELS[@]}; i++)); do
            read -r -a a <<<"$(cmd_args "$i")"
            res=$(run_one "${SINKS[$i]}" "$QSPOOL" -s "$spool" "${a[@]}")
            [ "$r" -lt "$WARMUP" ] || echo "$res" >>"$WORK/runs-$depth-$i"
        done
    done

    for ((i = 0; i < ${#LABELS[@]}; i++)); do
        read -r med lo hi me rss rmin lines < <(summarize "$WORK/runs-$depth-$i")
        RSS_AT[$depth,$i]=$rss
        MED_AT[$depth,$i]=$med
        echo "   $(printf '%-24s' "${LABELS[$i]}") median $(secs "$med") s (min $(secs "$lo"), max $(secs "$hi")), max RSS $rss KiB (min $rmin), $lines lines"
        ROWS+=("$(printf '%9s  %-24s %10s %9s %9s %7s %10s %8s %9s' \
            "$depth" "${LABELS[$i]}" "$(secs "$med")" "$(secs "$lo")" "$(secs "$hi")" "$me" \
            "$rss" "$(mib "$rss")" "$lines")")
    done
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$spool"; fi
done

echo
echo "== results: median wall time and largest max RSS of $RUNS runs per command and depth"
echo "   (wall: our clock around the command; e_med: GNU time's %e; RSS of qspool alone;"
echo "    baseline \`qspool --version\`: $(secs "$B_MED") s, $B_RSS KiB; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%9s  %-24s %10s %9s %9s %7s %10s %8s %9s\n' \
    depth command wall_med_s min_s max_s e_med_s maxrss_KiB MiB lines
for r in "${ROWS[@]}"; do echo "$r"; done

lo=${DEPTHS[0]}
hi=${DEPTHS[${#DEPTHS[@]} - 1]}
if [ "$hi" -gt "$lo" ]; then
    echo
    echo "== per extra message, from depth $lo to $hi: (value at $hi - value at $lo) / $((hi - lo))"
    printf '   %-24s %14s %14s\n' command "RSS_B/msg" "wall_us/msg"
    for ((i = 0; i < ${#LABELS[@]}; i++)); do
        printf '   %-24s %14s %14s\n' "${LABELS[$i]}" \
            "$(awk -v a="${RSS_AT[$hi,$i]}" -v b="${RSS_AT[$lo,$i]}" -v n=$((hi - lo)) \
                'BEGIN { printf "%.1f", (a - b) * 1024 / n }')" \
            "$(awk -v a="${MED_AT[$hi,$i]}" -v b="${MED_AT[$lo,$i]}" -v n=$((hi - lo)) \
                'BEGIN { printf "%.3f", (a - b) / n }')"
    done
fi
