#!/usr/bin/env bash
# W1 and the `work` row of bench/run, for an earlier build and this one, in one run: the rows
# of the two builds alternate, so a machine whose speed drifts during the run moves both alike.
#
#   bench/compare.sh REV         builds REV (any git revision) and the working tree
#   bench/compare.sh OLD NEW     two qspool binaries already built
#
# Both builds are the README's (static and non-PIE on x86_64, .cargo/static.toml). Rows:
# `push` (durable), `push --no-sync` and `pop --ack`, one process per message, and
# `work -q -- true` over a filled spool. Prints per row and build the median rate of
# COMPARE_ROUNDS rounds, the spread, and new/old. Rates, never assertions.
#
# Environment: COMPARE_N messages per row [300], COMPARE_WORK messages for work [1000],
# COMPARE_ROUNDS [5], BENCH_DIR scratch directory [$TMPDIR or /tmp].

set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${COMPARE_N:-300}
WORK_N=${COMPARE_WORK:-1000}
ROUNDS=${COMPARE_ROUNDS:-5}
for v in "$N" "$WORK_N" "$ROUNDS"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: counts must be positive integers" >&2; exit 2; }
done
die() { echo "compare.sh: $*" >&2; exit 1; }
unset QSPOOL_DIR

SCRATCH=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/qspool-compare.XXXXXX")
cleanup() {
    if [ -n "${TREE:-}" ]; then git -C "$ROOT" worktree remove --force "$TREE" 2>/dev/null || true; fi
    rm -rf "$SCRATCH"
}
trap cleanup EXIT

build() { # build DIR -> path of the binary cargo made there
    local cfg=() b
    [ "$(uname -m)" = x86_64 ] && cfg=(--config "$1/.cargo/static.toml")
    b=$(cd "$1" && cargo build --release --quiet --message-format=json "${cfg[@]}" |
        sed -n 's/.*"executable":"\([^"]*\/qspool\)".*/\1/p' | tail -n 1)
    [ -x "$b" ] || die "cargo built no qspool binary in $1"
    echo "$b"
}

case $# in
    1)
        TREE=$SCRATCH/tree
        git -C "$ROOT" worktree add --quiet --detach "$TREE" "$1" || die "no revision $1"
        # A target directory of its own: the two builds must not overwrite each other.
        OLD=$(CARGO_TARGET_DIR=$SCRATCH/target build "$TREE")
        cp "$OLD" "$SCRATCH/qspool-old" && OLD=$SCRATCH/qspool-old
        NEW=$(build "$ROOT")
        cp "$NEW" "$SCRATCH/qspool-new" && NEW=$SCRATCH/qspool-new
        ;;
    2) OLD=$1 NEW=$2 ;;
    *) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
[ -x "$OLD" ] && [ -x "$NEW" ] || die "both builds must be executable files"
sync

now() { date +%s%N | cut -c1-16; }
rate() { awk -v n="$1" -v u="$2" 'BEGIN { printf "%.1f", n / (u / 1e6) }'; }
S=$SCRATCH/spool
fresh() { rm -rf "$S"; sync; }
ready() { "$1" -s "$S" stats --json | grep -o '"ready":[0-9]*' | head -n 1 | cut -d: -f2; }
expect() { [ "$2" = "$3" ] || die "$1: got $2, want $3"; }

row() { # row BIN KIND -> msg/s; checks its count
    local q=$1 kind=$2 i t0 t1
    fresh
    case $kind in pop | work) seq "$N" | "$q" -s "$S" push --lines --no-sync >/dev/null ;; esac
    [ "$kind" = work ] && { seq $((WORK_N - N)) | "$q" -s "$S" push --lines --no-sync >/dev/null; }
    t0=$(now)
    case $kind in
        push) for ((i = 0; i < N; i++)); do "$q" -s "$S" push "message $i" >/dev/null; done ;;
        nosync) for ((i = 0; i < N; i++)); do "$q" -s "$S" push --no-sync "message $i" >/dev/null; done ;;
        pop) for ((i = 0; i < N; i++)); do "$q" -s "$S" pop --ack >/dev/null || die "pop failed"; done ;;
        work) "$q" -s "$S" work -q -- true ;;
    esac
    t1=$(now)
    case $kind in
        push | nosync) expect "$kind: ready" "$(ready "$q")" "$N"; rate "$N" $((t1 - t0)) ;;
        pop) expect "pop: ready" "$(ready "$q")" 0; rate "$N" $((t1 - t0)) ;;
        work) expect "work: ready" "$(ready "$q")" 0; rate "$WORK_N" $((t1 - t0)) ;;
    esac
}

declare -A VALS
for ((r = 0; r < ROUNDS; r++)); do
    for kind in push nosync pop work; do
        # Alternate which build goes first, so neither always runs on a warmer cache.
        if ((r % 2)); then order=(new old); else order=(old new); fi
        for b in "${order[@]}"; do
            if [ "$b" = old ]; then bin=$OLD; else bin=$NEW; fi
            VALS[$kind.$b]+="$(row "$bin" "$kind") "
        done
    done
done

med() { tr ' ' '\n' <<<"$*" | grep . | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' <<<"$*" | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }
printf '| row | old msg/s | spread | new msg/s | spread | new/old |\n|---|---|---|---|---|---|\n'
for kind in push nosync pop work; do
    case $kind in
        push) label="push (durable), $N processes" ;;
        nosync) label="push --no-sync, $N processes" ;;
        pop) label="pop --ack, $N processes" ;;
        work) label="work -q -- true, $WORK_N messages" ;;
    esac
    o=$(med ${VALS[$kind.old]}) n=$(med ${VALS[$kind.new]})
    printf '| %s | %s | %s | %s | %s | %.2f |\n' "$label" "$o" "$(spread ${VALS[$kind.old]})" \
        "$n" "$(spread ${VALS[$kind.new]})" "$(awk -v a="$n" -v b="$o" 'BEGIN { print a / b }')"
done
echo
echo "rounds $ROUNDS; kernel $(uname -r); $(nproc) cores; scratch on $(df -T "$SCRATCH" | awk 'NR == 2 { print $2 }')"
