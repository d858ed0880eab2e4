#!/usr/bin/env bash
# How fast does `qspool pop --wait` wake up, and what does a waiter cost while nothing happens?
#
#   bench/wait.sh                       # N=50 wake-ups of each kind, 30 s idle per waiter
#   N=200 IDLE_SECS=60 bench/wait.sh
#
# 1. Wake-up on a push. N times: start `pop --wait=30s --ack` on an empty spool, wait until
#    it holds its inotify descriptor (so it is past start-up and really waiting), sleep a
#    random 50-150 ms, then run `push BODY` as another process. The latency is from the push
#    writing its id to the waiter writing the payload. push writes an id only after the
#    commit: the message is durable and the doorbell (a utimensat on new/) was rung just
#    before, so this is "a committed message is in the queue" to "a consumer has it".
#    Timing: each process's standard output is one end of an AF_UNIX datagram socket pair
#    with SO_TIMESTAMPNS on the other end, so the kernel stamps each write (CLOCK_REALTIME, ns)
#    as it is made. Neither process is slowed, and when the bench itself gets to read the
#    data does not matter: no observer wake-up is in the numbers. A negative value would be
#    real: the waiter had the message before the push wrote its id, because something woke
#    it before the ring (see the warm-up below). For scale, the push's own run (spawn to its
#    id, fsyncs included) is shown too; it is not part of the latency.
# 2. Wake-up on a delayed message. The same, with `push --delay 500ms`: the push rings the
#    doorbell at once, and the waiter must sleep until the message's bucket comes due. The
#    latency is from the visible-at millisecond (the id's push time, truncated to the ms, plus
#    500 ms: exactly how qspool computes it) to the payload's write, both on the wall clock.
# 3. Idle cost. `pop --wait` on an empty spool, then `work --wait -- true`, each left alone
#    for IDLE_SECS after it started watching. CPU time is read from /proc/PID/task/*/schedstat
#    (nanoseconds on the CPU) and from utime+stime in /proc/PID/stat (clock ticks, `getconf
#    CLK_TCK`); wake-ups are the voluntary context switches of /proc/PID/task/*/status (one
#    per sleep). With strace installed, a second window of STRACE_SECS counts the
#    system calls too (strace slows the tracee, so it is not the window CPU is measured in).
#
# Environment:
#   N              wake-ups measured per kind                    [50]
#   IDLE_SECS      idle window per waiter, seconds               [30]
#   STRACE_SECS    strace window per waiter, 0 to skip           [10]
#   BENCH_DIR      where the temporary spool goes                [$TMPDIR or /tmp]
#
# Needs python3 for the wake-up latencies (recvmsg with ancillary data); without it they are
# skipped. Linux only, like qspool. Nothing here asserts a number: it measures and prints.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-50}
IDLE_SECS=${IDLE_SECS:-30}
STRACE_SECS=${STRACE_SECS:-10}
for v in "$N" "$IDLE_SECS" "$STRACE_SECS"; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "wait.sh: not a non-negative integer: $v" >&2; exit 2; }
done
[ "$N" -ge 1 ] || { echo "wait.sh: N must be at least 1" >&2; exit 2; }
[ "$IDLE_SECS" -ge 1 ] || { echo "wait.sh: IDLE_SECS must be at least 1" >&2; exit 2; }

# ---- build -------------------------------------------------------------------------------------
echo "== building release binary"
# Cargo says where the binary is: the target directory and the build target may be set anywhere.
QSPOOL=$(cd "$ROOT" && cargo build --release --quiet --message-format=json |
    sed -n 's/.*"executable":"\([^"]*\/qspool\)".*/\1/p' | tail -n 1)
[ -x "$QSPOOL" ] || { echo "$0: cargo built no qspool binary" >&2; exit 1; }
[ -x "$QSPOOL" ] || { echo "wait.sh: no binary at $QSPOOL" >&2; exit 1; }

# ---- scratch space -----------------------------------------------------------------------------
BASE=${BENCH_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/qspool-wait.XXXXXX")
SPOOL=$WORK/spool
BG_PID=
cleanup() {
    if [ -n "$BG_PID" ]; then
        kill "$BG_PID" 2>/dev/null || true
        wait "$BG_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

unset QSPOOL_DIR
"$QSPOOL" -s "$SPOOL" init >/dev/null

echo "== $("$QSPOOL" --version), $(nproc 2>/dev/null || echo '?') CPUs, kernel $(uname -r)"
echo "== scratch: $WORK ($(df -PT "$WORK" | awk 'NR == 2 { print $2 }'))"

# ---- wake-up latency ---------------------------------------------------------------------------
latency() {
    python3 - "$QSPOOL" "$SPOOL" "$1" "$N" <<'PY'
import os, random, socket, struct, subprocess, sys, time

qspool, spool, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
DELAY_MS = 500
SO_TIMESTAMPNS = 35  # Linux's value on every common architecture; Python does not export it
base = [qspool, "--spool", spool]
NULL = subprocess.DEVNULL


def stamped_pipe():
    """A datagram socket pair: each write of the child's is one datagram, stamped by the kernel
    (CLOCK_REALTIME, ns) when it is sent, however late it is read."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    ours.setblocking(False)
    return ours, theirs


def first_write(sock):
    """(send time in ns, all bytes) of what is queued on `sock`; (None, b"") if nothing."""
    when, data = None, b""
    while True:
        try:
            chunk, anc, _, _ = sock.recvmsg(1 << 20, 256)
        except BlockingIOError:
            return when, data
        for level, kind, raw in anc:
            if when is None and level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", raw[:16])
                when = sec * 1_000_000_000 + nsec
        data += chunk


def wait_watching(proc):
    """Until the waiter holds an inotify descriptor: it is past start-up and waiting."""
    deadline = time.monotonic() + 10
    fd_dir = f"/proc/{proc.pid}/fd"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"waiter exited early with {proc.returncode}")
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(f"{fd_dir}/{fd}") == "anon_inode:inotify":
                        return
                except OSError:
                    pass
        except OSError:
            pass
        time.sleep(0.001)
    sys.exit("waiter never started watching")


lat_ms, push_ms, bad = [], [], 0
for i in range(n):
    body = f"bench-{mode}-{i}".encode()
    w_ours, w_theirs = stamped_pipe()
    p_ours, p_theirs = stamped_pipe()
    waiter = subprocess.Popen(base + ["pop", "--wait=30s", "--ack"], stdin=NULL, stdout=w_theirs)
    wait_watching(waiter)
    time.sleep(random.uniform(0.050, 0.150))
    args = ["push", body] if mode == "push" else ["push", "--delay", f"{DELAY_MS}ms", body]
    t0 = time.time_ns()
    pusher = subprocess.Popen(base + args, stdin=NULL, stdout=p_theirs)
    pusher.wait()
    waiter.wait(timeout=60)
    p_at, p_out = first_write(p_ours)
    w_at, w_out = first_write(w_ours)
    for s in (w_ours, w_theirs, p_ours, p_theirs):
        s.close()
    if pusher.returncode != 0 or waiter.returncode != 0 or w_out != body or None in (p_at, w_at):
        bad += 1
        continue
    if mode == "push":
        lat_ms.append((w_at - p_at) / 1e6)
        push_ms.append((p_at - t0) / 1e6)
    else:
        visible_ms = int(p_out.split(b".")[0]) // 1000 + DELAY_MS
        lat_ms.append((w_at - visible_ms * 1_000_000) / 1e6)


def stats(v):
    v = sorted(v)
    def rank(p):  # nearest rank
        return v[max(1, -(-len(v) * p // 100)) - 1]
    med = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
    return [v[0], med, rank(90), rank(99), v[-1]]


def row(label, v):
    print(f"   {label:<36}" + "".join(f"{x:9.3f}" for x in stats(v)))


print(f"   {'':<36}{'min':>9}{'median':>9}{'p90':>9}{'p99':>9}{'max':>9}   (ms, {len(lat_ms)} runs)")
if not lat_ms:
    sys.exit("no run succeeded")
if mode == "push":
    row("push wrote its id -> pop its payload", lat_ms)
    row("(push's own run: spawn -> its id)", push_ms)
else:
    row("visible-at -> pop wrote its payload", lat_ms)
if bad:
    print(f"   WARNING: {bad} runs failed or delivered the wrong payload")
PY
}

# A push that makes a top-level bucket of new/ (one per 1000 s window) also wakes waiters
# before its commit: inotify reports the fchmod of the new directory as an attribute change on
# new/. One message pushed and taken first makes the current one, so that the runs measure the
# doorbell; a run that happens to cross into the next window can still show that early wake
# as a negative latency.
"$QSPOOL" -s "$SPOOL" push warm-up >/dev/null
"$QSPOOL" -s "$SPOOL" pop --ack >/dev/null

echo
if command -v python3 >/dev/null 2>&1; then
    echo "== wake-up on a push: $N waiters, each sent one message by a separate \`push\`"
    latency push
    echo
    echo "== wake-up on a delayed message: $N waiters, each sent one \`push --delay 500ms\`"
    latency delay
else
    echo "== no python3: wake-up latencies skipped"
fi

# ---- idle cost ---------------------------------------------------------------------------------
TCK=$(getconf CLK_TCK)

# Sums of every thread's counters: nanoseconds on the CPU, and voluntary and involuntary
# context switches. "- -" when the process is gone.
sample() {
    local pid=$1 ns=0 vol=0 invol=0 t
    for t in /proc/"$pid"/task/*; do
        [ -r "$t/schedstat" ] || return 1
        read -r run _ <"$t/schedstat"
        ns=$((ns + run))
        vol=$((vol + $(awk '/^voluntary_ctxt_switches/ { print $2 }' "$t/status")))
        invol=$((invol + $(awk '/^nonvoluntary_ctxt_switches/ { print $2 }' "$t/status")))
    done
    echo "$ns $vol $invol"
}

# utime + stime of the whole process, in clock ticks (fields 14 and 15; comm is cut off first,
# since it may hold spaces).
ticks() {
    sed 's/^.*) //' /proc/"$1"/stat | awk '{ print $12 + $13 }'
}

watching() {
    local fd
    for fd in /proc/"$1"/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" = "anon_inode:inotify" ] && return 0
    done
    return 1
}

IDLE_ROWS=()
# idle LABEL CMD...: starts CMD, waits until it watches new/, then measures IDLE_SECS of it.
idle() {
    local label=$1 i
    shift
    "$@" </dev/null >/dev/null 2>"$WORK/idle.err" &
    BG_PID=$!
    for ((i = 0; i < 1000; i++)); do
        watching "$BG_PID" && break
        kill -0 "$BG_PID" 2>/dev/null || { cat "$WORK/idle.err" >&2; echo "wait.sh: $label exited" >&2; exit 1; }
        sleep 0.01
    done
    watching "$BG_PID" || { echo "wait.sh: $label never watched new/" >&2; exit 1; }

    local s0 s1 k0 k1
    s0=$(sample "$BG_PID")
    k0=$(ticks "$BG_PID")
    sleep "$IDLE_SECS"
    s1=$(sample "$BG_PID") || { echo "wait.sh: $label exited while idle" >&2; exit 1; }
    k1=$(ticks "$BG_PID")

    local calls=-
    if [ "$STRACE_SECS" -gt 0 ] && command -v strace >/dev/null 2>&1; then
        # strace -c prints its table when interrupted; a refused attach (ptrace_scope,
        # containers) leaves no table and the column says so.
        timeout -s INT "$STRACE_SECS" strace -c -f -p "$BG_PID" -o "$WORK/strace.out" \
            2>/dev/null || true
        calls=$(awk '$NF == "total" { print $4 }' "$WORK/strace.out" 2>/dev/null || true)
        if [ -n "$calls" ]; then
            calls=$(awk -v c="$calls" -v s="$STRACE_SECS" 'BEGIN { printf "%.2f", c / s }')
        else
            calls="n/a"
        fi
    fi

    kill "$BG_PID" 2>/dev/null || true
    wait "$BG_PID" 2>/dev/null || true
    BG_PID=

    read -r ns0 v0 n0 <<<"$s0"
    read -r ns1 v1 n1 <<<"$s1"
    IDLE_ROWS+=("$(awk -v l="$label" -v ns=$((ns1 - ns0)) -v t=$((k1 - k0)) -v hz="$TCK" \
        -v w=$((v1 - v0)) -v iw=$((n1 - n0)) -v s="$IDLE_SECS" -v c="$calls" 'BEGIN {
            printf "   %-26s %10.3f %8.4f%% %7d %9d %9.2f %10d %11s\n",
                l, ns / 1e6, ns / 1e9 / s * 100, t, w, w / s, iw, c }')")
}

echo
echo "== idle cost: each waiter left alone ${IDLE_SECS}s on an empty spool, after it began watching"
idle "pop --wait" "$QSPOOL" -s "$SPOOL" pop --wait
idle "work --wait -- true" "$QSPOOL" -s "$SPOOL" work --wait -- true
printf '   %-26s %10s %9s %7s %9s %9s %10s %11s\n' \
    "" cpu_ms "cpu" ticks wakeups wakeups/s involunt. "syscalls/s"
for r in "${IDLE_ROWS[@]}"; do echo "$r"; done
echo "   cpu: schedstat over ${IDLE_SECS}s, as a share of one CPU; ticks: utime+stime at ${TCK}/s"
echo "   wakeups: voluntary context switches; involunt.: involuntary ones"
if [ "$STRACE_SECS" -gt 0 ] && command -v strace >/dev/null 2>&1; then
    echo "   syscalls/s: strace -c over a further ${STRACE_SECS}s (n/a: attach refused)"
else
    echo "   syscalls/s: skipped (no strace, or STRACE_SECS=0)"
fi
