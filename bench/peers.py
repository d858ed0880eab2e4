#!/usr/bin/env python3
"""In-process and one-shot drivers for the peer queues, called by bench/run.

  peers.py batch KIND SETTING DIR N        push N, then drain N, in one process each phase;
                                           prints "push_seconds drain_seconds drained"
  peers.py fill KIND SETTING DIR N         push N (untimed filler)
  peers.py push1 KIND SETTING DIR BODY     one message, one process (the W1 shape)
  peers.py pop1 KIND SETTING DIR           take one message and delete it; exit 3 when empty
  peers.py drain KIND SETTING DIR          take and delete every message (untimed reset)
  peers.py w4 KIND SETTING DIR N           2 producers + 2 consumers (processes), N messages;
                                           prints "seconds delivered distinct duplicates lost"

KIND: dirq | pq (persist-queue, SQLite) | beanstalk | redis. SETTING: durable | nosync;
for beanstalk and redis it names the server's port instead (the server decides durability).
"""
import os
import socket
import sys
import time


# ---- a minimal RESP client: redis-py is not needed for LPUSH / LMOVE / LREM ---------------------
class Redis:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", int(port)))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b":"):
            return rest
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t == b"*":
            return [self._read() for _ in range(int(rest))]
        raise RuntimeError("bad reply %r" % line)


class Q:
    """One interface over the peers: put(body), take() -> body or None (taken and deleted)."""

    def __init__(self, kind, setting, d):
        self.kind = kind
        self.it = None
        if kind == "dirq":
            from dirq.QueueSimple import QueueSimple
            self.q = QueueSimple(d)
        elif kind == "pq":
            import persistqueue
            self.q = persistqueue.SQLiteQueue(d, auto_commit=True, multithreading=True)
            if setting == "nosync":
                for c in {id(self.q._conn): self.q._conn, id(self.q._putter): self.q._putter}.values():
                    c.execute("PRAGMA synchronous=OFF")
        elif kind == "beanstalk":
            import greenstalk
            self.g = greenstalk
            self.q = greenstalk.Client(("127.0.0.1", int(setting)), encoding=None)
        elif kind == "redis":
            self.q = Redis(setting)
        else:
            sys.exit("peers.py: unknown kind " + kind)

    def put(self, body):
        if self.kind == "dirq":
            self.q.add(body)
        elif self.kind == "pq":
            self.q.put(body)
        elif self.kind == "beanstalk":
            self.q.put(body)
        else:
            self.q.cmd("LPUSH", "q", body)

    def take(self):
        k = self.kind
        if k == "dirq":
            # dirq's own loop: one pass over the queue, lock (mkdir), get, remove; a lost lock
            # race just moves on. The pass is kept between calls (a fresh one per message would
            # list the whole directory each time); a new pass starts only when one runs out.
            for fresh in (False, True):
                if fresh or self.it is None:
                    self.it = iter(self.q)
                for name in self.it:
                    if self.q.lock(name):
                        body = self.q.get(name)
                        self.q.remove(name)
                        return body
            return None
        if k == "pq":
            import persistqueue
            try:
                return self.q.get(block=False)
            except persistqueue.exceptions.Empty:
                return None
        if k == "beanstalk":
            try:
                job = self.q.reserve(timeout=0)
            except self.g.TimedOutError:
                return None
            self.q.delete(job)
            return job.body
        # redis: the reliable-queue pattern, LMOVE to a processing list, then LREM as the ack
        body = self.q.cmd("LMOVE", "q", "work", "RIGHT", "LEFT")
        if body is None:
            return None
        self.q.cmd("LREM", "work", "1", body)
        return body


def main():
    op, kind, setting, d = sys.argv[1:5]
    if op == "batch":
        n = int(sys.argv[5])
        q = Q(kind, setting, d)
        t0 = time.perf_counter()
        for i in range(n):
            q.put(b"message %d" % i)
        t1 = time.perf_counter()
        got = 0
        while q.take() is not None:
            got += 1
        t2 = time.perf_counter()
        print("%.6f %.6f %d" % (t1 - t0, t2 - t1, got))
    elif op == "fill":
        q = Q(kind, setting, d)
        for i in range(int(sys.argv[5])):
            q.put(b"message %d" % i)
    elif op == "push1":
        Q(kind, setting, d).put(sys.argv[5].encode())
    elif op == "drain":
        q = Q(kind, setting, d)
        while q.take() is not None:
            pass
    elif op == "pop1":
        body = Q(kind, setting, d).take()
        if body is None:
            sys.exit(3)
        sys.stdout.buffer.write(body if isinstance(body, bytes) else str(body).encode())
    elif op == "w4":
        w4(kind, setting, d, int(sys.argv[5]))
    else:
        sys.exit("peers.py: unknown op " + op)


def w4(kind, setting, d, n):
    import multiprocessing as mp
    Q(kind, setting, d)  # create before the race
    done = mp.Event()
    out = mp.Queue()

    def producer(k):
        q = Q(kind, setting, d)
        for i in range(n // 2):
            q.put(b"p%d-%d" % (k, i))

    def consumer():
        q = Q(kind, setting, d)
        got = []
        while True:
            b = q.take()
            if b is None:
                if done.is_set():
                    b = q.take()
                    if b is None:
                        break
                else:
                    time.sleep(0.001)
                    continue
            got.append(b if isinstance(b, bytes) else str(b).encode())
        out.put(got)

    t0 = time.perf_counter()
    ps = [mp.Process(target=producer, args=(k,)) for k in (1, 2)]
    cs = [mp.Process(target=consumer) for _ in range(2)]
    for p in ps + cs:
        p.start()
    for p in ps:
        p.join()
    done.set()
    got = out.get() + out.get()
    for c in cs:
        c.join()
    t = time.perf_counter() - t0
    distinct = set(got)
    want = {b"p%d-%d" % (k, i) for k in (1, 2) for i in range(n // 2)}
    print("%.6f %d %d %d %d" % (t, len(got), len(distinct), len(got) - len(distinct), len(want - distinct)))


if __name__ == "__main__":
    main()
