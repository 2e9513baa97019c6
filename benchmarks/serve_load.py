"""Load test of ``facelite serve`` (a benchmark, not a test): throughput, latency, memory, and
how the server copes with slow clients. Loopback only; bounded in requests, connections and time.

    python -m benchmarks.serve_load --clients 8 --requests 200
    python -m benchmarks.serve_load --server-cmd "env PYTHONPATH=/tmp/old/src python -m facelite serve --port {port} -q"

It starts the server (``--server-cmd``, ``{port}`` replaced by a free port on 127.0.0.1), waits
for ``GET /health``, then:

1. **load**: ``--clients`` threads, each on one keep-alive connection, send ``--requests`` POST
   /detect of the image in total; requests/s, errors (anything but 200), p50/p90/p99 latency.
2. **slow clients**: ``--idle`` connections that send nothing and ``--stalled`` uploads that
   announce ``--stall-mb`` + 1 MB and stop after ``--stall-mb`` MB; while they are held, GET
   /health and POST /detect are timed (the slowest of each); then how many of the slow
   connections the server has closed within ``--hold`` seconds, and when.

3. **bombs** (``--bombs``; only against a server you expect to refuse them: the JPEG 2000 one
   took the old ``http.server`` service to several GB): a few hundred bytes each announcing
   30000 x 30000 pixels or more, as PNG, JPEG, WebP, BMP, TIFF and JPEG 2000; status, time and
   the server's resident memory after.

Peak server memory is the process's VmHWM (peak resident set, Linux), and the resident set
before and during the slow-client check is sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

MAX_CLIENTS = 64
MAX_REQUESTS = 5000
MAX_IDLE = 1000
MAX_STALLED = 64
MAX_HOLD_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_kb(pid: int, field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of a process in kB (0 when unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer GET /health within {timeout:g} s")


def post(conn: http.client.HTTPConnection, body: bytes) -> int:
    conn.request("POST", "/detect", body=body, headers={"Content-Type": "image/jpeg"})
    r = conn.getresponse()
    r.read()
    return r.status


def load(port: int, image: bytes, clients: int, requests: int) -> dict:
    """``requests`` POST /detect from ``clients`` threads with keep-alive connections."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    counts = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                status = str(post(conn, image))
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in counts]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = [v * 1000 for v in latencies]
    return {
        "clients": clients, "requests": requests, "seconds": round(wall, 2),
        "requests_per_s": round(requests / wall, 1),
        "errors": sum(v for k, v in statuses.items() if k != "200"), "statuses": statuses,
        "p50_ms": round(percentile(ms, 50), 1), "p90_ms": round(percentile(ms, 90), 1),
        "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms), 1),
    }


def slow_clients(port: int, pid: int, image: bytes, idle: int, stalled: int, stall_mb: int, hold: float,
                 probes: int) -> dict:
    """Hold ``idle`` silent connections and ``stalled`` half-sent uploads; time normal requests meanwhile."""
    rss_before = memory_kb(pid, "VmRSS")
    peak = [rss_before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], memory_kb(pid, "VmRSS"))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    socks: list[tuple[str, socket.socket, float]] = []
    refused = 0
    t_open = time.monotonic()
    for _ in range(idle):
        try:
            socks.append(("idle", socket.create_connection(("127.0.0.1", port), timeout=5), time.monotonic()))
        except OSError:
            refused += 1
    chunk = b"\0" * (1 << 20)
    for _ in range(stalled):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Length: {(stall_mb + 1) << 20}\r\n\r\n".encode())
            for _ in range(stall_mb):
                s.sendall(chunk)
            socks.append(("stalled", s, time.monotonic()))
        except OSError:
            refused += 1
    opened_s = time.monotonic() - t_open
    time.sleep(0.5)

    worst = {"health_ms": 0.0, "detect_ms": 0.0}
    errors = 0
    for i in range(probes):
        for path, name in (("/health", "health_ms"), ("/detect", "detect_ms")):
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                if path == "/health":
                    conn.request("GET", path)
                    r = conn.getresponse()
                    r.read()
                    status = r.status
                else:
                    status = post(conn, image)
                conn.close()
            except (OSError, http.client.HTTPException):
                status = 0
            worst[name] = max(worst[name], (time.perf_counter() - t0) * 1000)
            errors += status != 200
        if i == 0:
            time.sleep(0.2)

    closed: dict[str, list[float]] = {"idle": [], "stalled": []}
    pending = {s.fileno(): (kind, s, t) for kind, s, t in socks}
    deadline = time.monotonic() + hold
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(list(pending), [], [], 0.2)
        for fd in ready:
            kind, s, t = pending[fd]
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:  # the server closed it (an answer, if any, came first)
                closed[kind].append(time.monotonic() - t)
                del pending[fd]
    stop.set()
    sampler.join()
    for _, s, _ in socks:
        s.close()

    def summary(kind: str, total: int) -> dict:
        times = closed[kind]
        return {"held": total, "closed_by_server": len(times),
                "median_close_s": round(statistics.median(times), 1) if times else None}

    return {
        "idle": summary("idle", sum(k == "idle" for k, _, _ in socks)),
        "stalled": summary("stalled", sum(k == "stalled" for k, _, _ in socks)),
        "refused_at_connect": refused, "open_seconds": round(opened_s, 1), "hold_s": hold,
        "probe_errors": errors, "worst_health_ms": round(worst["health_ms"], 1),
        "worst_detect_ms": round(worst["detect_ms"], 1),
        "rss_before_mb": round(rss_before / 1024), "rss_peak_mb": round(peak[0] / 1024),
    }


def bombs() -> dict[str, bytes]:
    """Small files whose headers announce 30000 x 30000 pixels or more (decompression bombs)."""
    import struct

    import cv2
    import numpy as np

    def patched(ext: str, find: bytes, offset: int, fmt: str, *values: int) -> bytes:
        data = bytearray(cv2.imencode(ext, np.zeros((64, 64, 3), np.uint8))[1].tobytes())
        struct.pack_into(fmt, data, data.find(find) + offset, *values)
        return bytes(data)

    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II5B", 30000, 30000, 8, 2, 0, 0, 0)
           + b"\0" * 4 + b"\0\0\0\0IEND\xaeB`\x82")
    tiff = (b"II*\x00" + struct.pack("<IH", 8, 2) + struct.pack("<HHII", 256, 4, 1, 30000)
            + struct.pack("<HHII", 257, 4, 1, 30000) + b"\0" * 4)
    webp = b"RIFF" + struct.pack("<I", 22) + b"WEBPVP8X" + struct.pack("<I", 10) + b"\0" * 4 + (16383).to_bytes(3, "little") * 2
    return {
        "png": png,
        "jpeg": patched(".jpg", b"\xff\xc0", 5, ">HH", 30000, 30000),
        "webp": webp,
        "bmp": patched(".bmp", b"BM", 18, "<ii", 30000, 30000),
        "tiff": tiff,
        "jpeg2000": patched(".jp2", b"\xff\x51", 6, ">II", 30000, 30000),  # SIZ: Xsiz, Ysiz
    }


def send_bombs(port: int, pid: int) -> dict:
    out: dict = {}
    for name, data in bombs().items():
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            status = post(conn, data)
            conn.close()
        except (OSError, http.client.HTTPException) as exc:
            status = type(exc).__name__
        out[name] = {"bytes": len(data), "status": status, "ms": round((time.perf_counter() - t0) * 1000, 1)}
    out["rss_after_mb"] = round(memory_kb(pid, "VmRSS") / 1024)
    out["peak_rss_mb"] = round(memory_kb(pid, "VmHWM") / 1024)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-cmd", default=f"{shlex.quote(sys.executable)} -m facelite serve --port {{port}} -q",
                   help="command that starts the server; {port} is replaced (default: %(default)s)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--image", default=None, help="image to send (default: the sample astronaut.jpg)")
    p.add_argument("--idle", type=int, default=300, help="silent connections in the slow-client check (0: skip it)")
    p.add_argument("--stalled", type=int, default=15, help="stalled uploads in the slow-client check")
    p.add_argument("--stall-mb", type=int, default=19, help="MB each stalled upload sends before stopping")
    p.add_argument("--hold", type=float, default=40, help="seconds to wait for the server to close slow connections")
    p.add_argument("--probes", type=int, default=10, help="/health + /detect pairs timed during the check")
    p.add_argument("--bombs", action="store_true", help="also send decompression bombs (see above)")
    p.add_argument("--label", default="", help="a name for this run in the output")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if not (1 <= args.clients <= MAX_CLIENTS and 1 <= args.requests <= MAX_REQUESTS and 0 <= args.idle <= MAX_IDLE
            and 0 <= args.stalled <= MAX_STALLED and 0 < args.hold <= MAX_HOLD_S and 0 <= args.stall_mb <= 64):
        p.error(f"bounds: clients 1..{MAX_CLIENTS}, requests 1..{MAX_REQUESTS}, idle 0..{MAX_IDLE}, "
                f"stalled 0..{MAX_STALLED}, hold <= {MAX_HOLD_S} s, stall-mb <= 64")
    if args.image:
        image = Path(args.image).read_bytes()
    else:
        from facelite.paths import data_path

        image = data_path("astronaut.jpg").read_bytes()

    port = free_port()
    cmd = shlex.split(args.server_cmd.replace("{port}", str(port)))
    if "127.0.0.1" not in args.server_cmd and "--host" in args.server_cmd:
        p.error("the server must listen on 127.0.0.1 (loopback only)")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    result: dict = {"label": args.label, "server_cmd": args.server_cmd, "cpus": os.cpu_count()}
    try:
        wait_ready(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(3):
            post(conn, image)  # warm-up
        conn.close()
        result["rss_idle_mb"] = round(memory_kb(proc.pid, "VmRSS") / 1024)
        cpu0 = cpu_seconds(proc.pid)
        result["load"] = load(port, image, args.clients, args.requests)
        result["load"]["server_cpu_ms_per_request"] = round((cpu_seconds(proc.pid) - cpu0) * 1000 / args.requests, 1)
        result["rss_after_load_mb"] = round(memory_kb(proc.pid, "VmRSS") / 1024)
        if args.idle or args.stalled:
            result["slow_clients"] = slow_clients(port, proc.pid, image, args.idle, args.stalled, args.stall_mb,
                                                  args.hold, args.probes)
        if args.bombs:
            result["bombs"] = send_bombs(port, proc.pid)
        result["peak_rss_mb"] = round(memory_kb(proc.pid, "VmHWM") / 1024)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    ld = result["load"]
    print(f"{args.label or 'server'}: {ld['requests']} requests from {ld['clients']} clients in {ld['seconds']} s: "
          f"{ld['requests_per_s']} requests/s, {ld['errors']} errors {ld['statuses']}, "
          f"p50 {ld['p50_ms']} ms, p90 {ld['p90_ms']} ms, p99 {ld['p99_ms']} ms, "
          f"server CPU {ld['server_cpu_ms_per_request']} ms/request; "
          f"memory idle {result['rss_idle_mb']} MB, after load {result['rss_after_load_mb']} MB, peak {result['peak_rss_mb']} MB")
    if "slow_clients" in result:
        sc = result["slow_clients"]
        print(f"  slow clients: {sc['idle']['held']} idle + {sc['stalled']['held']} stalled uploads held "
              f"({sc['refused_at_connect']} refused at connect); meanwhile slowest /health {sc['worst_health_ms']} ms, "
              f"/detect {sc['worst_detect_ms']} ms, {sc['probe_errors']} errors; within {sc['hold_s']:g} s the server closed "
              f"{sc['idle']['closed_by_server']} idle (median {sc['idle']['median_close_s']} s) and "
              f"{sc['stalled']['closed_by_server']} stalled (median {sc['stalled']['median_close_s']} s); "
              f"RSS {sc['rss_before_mb']} -> {sc['rss_peak_mb']} MB")
    if "bombs" in result:
        b = result["bombs"]
        print("  bombs: " + ", ".join(f"{k} {v['bytes']} B -> {v['status']} in {v['ms']} ms"
                                     for k, v in b.items() if isinstance(v, dict))
              + f"; server RSS after {b['rss_after_mb']} MB, peak {b['peak_rss_mb']} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
