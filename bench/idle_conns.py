#!/usr/bin/env python3
"""Open many idle HTTP/1.1 keep-alive connections to a server and hold them.

Each connection sends one complete request and reads the complete response,
so the server has fully set the connection up (accepted it, parsed a request,
answered it) and is now keeping it idle, waiting for the next request. Then
the script holds every connection open for a few seconds so that the caller
can sample the server's memory, and closes them.

Python 3 standard library only (selectors/epoll, non-blocking sockets).

Protocol with the caller (one `key=value ...` line each, on stdout):

    READY requested=N open=K failed=F elapsed_s=T
        printed once every connection has its response (or has failed);
        the caller samples the server's RSS now. `open` counts connections
        the server still holds open at this moment.
    DONE requested=N open_at_ready=K open_after_hold=M failed=F
        printed after --hold seconds, just before closing everything.

With --pid (repeatable) the script also samples the VmRSS of those
processes itself at READY and prints `rss_kib=` on the READY line.

The server needs a file descriptor limit above N as well (`ulimit -n`);
bench/run.sh raises it before starting the servers. This script raises its
own RLIMIT_NOFILE up to the hard limit.
"""

import argparse
import errno
import resource
import selectors
import socket
import sys
import time


def raise_nofile(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and wanted > hard:
        wanted = hard
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def response_complete(buf):
    """True once buf holds one complete HTTP/1.1 response."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = buf[:end].decode("latin-1").lower().split("\r\n")
    body = buf[end + 4:]
    length = None
    chunked = False
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip()
        value = value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
    if chunked:
        # Good enough for a benchmark: a last chunk with no trailers.
        return body.endswith(b"0\r\n\r\n")
    if length is not None:
        return len(body) >= length
    status = head[0].split()
    # 1xx/204/304 have no body; anything else without a length is
    # delimited by close, which defeats the purpose of this script.
    return len(status) > 1 and status[1] in ("204", "304")


def still_open(sock):
    """True if the peer has not closed the connection."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return True  # nothing to read: open and idle
    except OSError:
        return False  # reset
    # b"" is EOF: closed by the server. Unexpected bytes: still open.
    return data != b""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", "--conns", type=int, default=10000)
    ap.add_argument("--path", default="/bench/item")
    ap.add_argument("--hold", type=float, default=5.0,
                    help="seconds to keep the connections idle after READY")
    ap.add_argument("--in-flight", type=int, default=256,
                    help="maximum connections being set up at once")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="give up setting connections up after this long")
    ap.add_argument("--pid", type=int, action="append", default=[],
                    help="also sample this process's VmRSS at READY")
    args = ap.parse_args()

    limit = raise_nofile(args.conns + 64)
    n = args.conns
    if n + 32 > limit:
        n = max(limit - 32, 0)
        print(f"warning: RLIMIT_NOFILE is {limit}; opening only {n} "
              f"connections", file=sys.stderr)

    request = (f"GET {args.path} HTTP/1.1\r\nHost: x\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    done = []          # sockets holding an idle keep-alive connection
    failed = 0
    errors = {}
    started = 0
    in_flight = 0
    t0 = time.monotonic()
    deadline = t0 + args.timeout

    def fail(sock, why):
        nonlocal failed, in_flight
        failed += 1
        in_flight -= 1
        errors[why] = errors.get(why, 0) + 1
        try:
            sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    while (started < n or in_flight > 0) and time.monotonic() < deadline:
        while started < n and in_flight < args.in_flight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rc = s.connect_ex((args.host, args.port))
            started += 1
            in_flight += 1
            if rc not in (0, errno.EINPROGRESS):
                fail(s, errno.errorcode.get(rc, str(rc)))
                continue
            sel.register(s, selectors.EVENT_WRITE, ["connect", b""])
        for key, _ in sel.select(timeout=0.5):
            s, state = key.fileobj, key.data
            if state[0] == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(s, errno.errorcode.get(err, str(err)))
                    continue
                try:
                    s.send(request)  # tiny: one send suffices
                except OSError as e:
                    fail(s, type(e).__name__)
                    continue
                state[0] = "read"
                sel.modify(s, selectors.EVENT_READ, state)
            else:
                try:
                    chunk = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    fail(s, type(e).__name__)
                    continue
                if not chunk:
                    fail(s, "closed-before-response")
                    continue
                state[1] += chunk
                if response_complete(state[1]):
                    if not state[1].startswith(b"HTTP/1.1 2"):
                        line = state[1].split(b"\r\n", 1)[0]
                        print(f"warning: non-2xx response: {line!r}",
                              file=sys.stderr)
                    sel.unregister(s)
                    in_flight -= 1
                    done.append(s)
    # Whatever did not finish in time counts as failed.
    for key in list(sel.get_map().values()):
        fail(key.fileobj, "timeout")
    failed += n - started
    elapsed = time.monotonic() - t0

    open_at_ready = sum(1 for s in done if still_open(s))
    ready = (f"READY requested={args.conns} open={open_at_ready} "
             f"failed={failed} elapsed_s={elapsed:.2f}")
    if args.pid:
        ready += f" rss_kib={rss_kib(args.pid)}"
    print(ready, flush=True)
    if errors:
        print("errors: " + ", ".join(f"{k}={v}" for k, v in
                                     sorted(errors.items())), file=sys.stderr)

    time.sleep(args.hold)
    open_after = sum(1 for s in done if still_open(s))
    print(f"DONE requested={args.conns} open_at_ready={open_at_ready} "
          f"open_after_hold={open_after} failed={failed}", flush=True)
    for s in done:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
