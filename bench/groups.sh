#!/usr/bin/env bash
# What do ordered groups cost, and does a grouped pop stay flat with depth?
#
#   bench/groups.sh
#   BENCH_POPS=1000 bench/groups.sh
#
# Pop: spools of D ready messages (D = 100 and 100,000) spread over G groups (G = 10 and
# 1000), a tenth of whose heads are leased for an hour, against plain spools of the same depth. Each row
# is the median µs of K one-shot `pop --ack` (which for a grouped message also promotes the
# next of its group), over R rounds alternated between the spools.
#
# Push: K one-shot `push --group` into a group with 100 messages waiting, against K plain
# pushes, durable and --no-sync.
#
# Environment:
#   BENCH_POPS     one-shot commands per row per round   [300]
#   BENCH_ROUNDS   rounds                                [3]
#   BENCH_DIR      where the temporary spools go         [$TMPDIR or /tmp]
#   BENCH_QSPOOL   a qspool binary to measure instead of building this tree
#
# Timings print; nothing is asserted but the counts.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K=${BENCH_POPS:-300}
ROUNDS=${BENCH_ROUNDS:-3}

if [ -n "${BENCH_QSPOOL:-}" ]; then
    Q=$BENCH_QSPOOL
else
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    Q=$ROOT/target/release/qspool
fi
WORK_DIR=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/qspool-groups.XXXXXX")
trap 'rm -rf "$WORK_DIR"' EXIT

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ready_count() { "$Q" -s "$1" stats --json | sed 's/^{"ready":\([0-9]*\).*/\1/'; }

# fill SPOOL DEPTH grouped|plain: DEPTH messages (over DEPTH/10 groups, at most 1000), then
# a tenth of the groups' heads (as many messages, when plain) leased for an hour.
fill() {
    local spool=$1 depth=$2 kind=$3 groups per g
    "$Q" -s "$spool" init >/dev/null
    groups=$((depth / 10 < 1000 ? depth / 10 : 1000))
    per=$((depth / groups))
    if [ "$kind" = plain ]; then
        seq "$depth" | "$Q" -s "$spool" push --lines --no-sync >/dev/null
    else
        for g in $(seq "$groups"); do
            seq "$per" | "$Q" -s "$spool" push --group "group $g" --lines --no-sync >/dev/null
        done
    fi
    "$Q" -s "$spool" pop --json -n $((groups / 10)) --lease 1h >/dev/null
}

# pops SPOOL: K one-shot pop --ack; prints µs per pop.
pops() {
    local t0 t1
    t0=$(now_ns)
    for _ in $(seq "$K"); do "$Q" -s "$1" pop --ack >/dev/null; done
    t1=$(now_ns)
    echo $(((t1 - t0) / 1000 / K))
}

declare -A times
for depth in 100 100000; do
    for kind in plain grouped; do
        fill "$WORK_DIR/$kind$depth" "$depth" "$kind"
    done
done
for _ in $(seq "$ROUNDS"); do
    for depth in 100 100000; do
        for kind in plain grouped; do
            spool=$WORK_DIR/$kind$depth
            # Topped up so that every round pops from the same depth.
            if [ "$(ready_count "$spool")" -lt "$K" ]; then
                if [ "$kind" = plain ]; then
                    seq "$K" | "$Q" -s "$spool" push --lines --no-sync >/dev/null
                else
                    groups=$((depth / 10 < 1000 ? depth / 10 : 1000))
                    for g in $(seq "$groups"); do
                        seq $((K / groups + 1)) |
                            "$Q" -s "$spool" push --group "group $g" --lines --no-sync >/dev/null
                    done
                fi
            fi
            times[$kind$depth]+="$(pops "$spool") "
        done
    done
done
printf '%-34s %10s %10s\n' "one-shot pop --ack, µs" plain grouped
for depth in 100 100000; do
    a=$(tr ' ' '\n' <<<"${times[plain$depth]}" | grep . | median)
    b=$(tr ' ' '\n' <<<"${times[grouped$depth]}" | grep . | median)
    printf '%-34s %10s %10s\n' "$depth ready, $((depth / 10 < 1000 ? depth / 100 : 100)) heads leased" "$a" "$b"
done

# --- push ----------------------------------------------------------------------------------
push_row() {
    local kind=$1 sync=$2 spool t0 t1
    spool=$WORK_DIR/push$kind$sync.$RANDOM
    "$Q" -s "$spool" init >/dev/null
    if [ "$kind" = grouped ]; then
        seq 101 | "$Q" -s "$spool" push --group g --lines --no-sync >/dev/null
    fi
    t0=$(now_ns)
    for i in $(seq "$K"); do
        if [ "$kind" = grouped ]; then
            "$Q" -s "$spool" push $sync --group g "m $i"
        else
            "$Q" -s "$spool" push $sync "m $i"
        fi
    done >/dev/null
    t1=$(now_ns)
    echo $(((t1 - t0) / 1000 / K))
    rm -rf "$spool"
}
declare -A pt
for _ in $(seq "$ROUNDS"); do
    for sync in "" "--no-sync"; do
        for kind in plain grouped; do
            pt[$kind$sync]+="$(push_row "$kind" "$sync") "
        done
    done
done
printf '%-34s %10s %10s\n' "one-shot push, µs" durable --no-sync
for kind in plain grouped; do
    a=$(tr ' ' '\n' <<<"${pt[$kind]}" | grep . | median)
    b=$(tr ' ' '\n' <<<"${pt[$kind--no-sync]}" | grep . | median)
    printf '%-34s %10s %10s\n' "$kind" "$a" "$b"
done
