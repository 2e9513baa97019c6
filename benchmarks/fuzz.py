"""Fuzz facelite's image loading and detection with mutated real image files (a command, not a test).

    python -m benchmarks.fuzz --files 10000            # the run in docs/RESULTS.md
    python -m benchmarks.fuzz --files 100 --json out.json

Seeds are the package's sample image at a few sizes, encoded by OpenCV as JPEG (baseline and
progressive), PNG, WebP (lossy and lossless), BMP, TIFF, JPEG 2000, PPM, GIF and AVIF, plus the
decompression bombs of :mod:`benchmarks.bombs`. Each fuzzed file is one seed with one to three
mutations: bit flips, random bytes, truncation, inserted or deleted runs (including a stray
byte before a marker), and header field edits (the width / height fields of each format set to
0, 1, huge or random values, and random 2- or 4-byte fields of the first 256 bytes). Four
mutated PNG files in five get their chunk CRCs recomputed, so that the mutation reaches libpng's
parsers and zlib rather than stopping at the first CRC check.

The files run through ``facelite.load_image`` + ``FaceDetector.detect`` (input 160 px, one
thread) in worker processes of ``--chunk`` files each. A worker records each file before it
starts it, so a crash (a signal) or a hang (``--timeout`` s) is pinned on its file, and the run
goes on with a new worker from the next file. Every outcome is one of: detected (the image
decoded and the detector ran), documented error (``facelite.imageio.ImageLoadError``, the
error facelite promises for a bad file), other exception (by type: a defect), crash, hang.
Printed: the outcome counts, the other exception types, the peak memory (max RSS of any
worker), the slowest file, and the lines the worker processes wrote to standard error
(library noise: facelite's own messages are not written by the workers). Workers run under an
address-space limit (``--memory-limit-gb``) so that a bomb that gets through fails instead of
taking the machine down (it then shows as an other exception or a crash).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INTERESTING_16 = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 30000, 16383, 16384)
INTERESTING_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 30000, 65535, 65536, 100000, 1 << 24)


# --------------------------------------------------------------------------- seeds


def make_seeds() -> dict[str, bytes]:
    """``name -> encoded bytes`` of the seed files (deterministic)."""
    import cv2

    from benchmarks.bombs import BOMBS
    from facelite.imageio import load_image
    from facelite.paths import data_path

    image = load_image(data_path("astronaut.jpg"))
    seeds: dict[str, bytes] = {}
    for side in (64, 160, 256):
        img = cv2.resize(image, (side, side * 3 // 4), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        encodings = {
            "jpeg": (".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85]),
            "jpeg-progressive": (".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
            "jpeg-grey": (".jpg", grey, []),
            "png": (".png", img, []),
            "png-grey": (".png", grey, []),
            "webp-lossy": (".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 80]),
            "webp-lossless": (".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101]),
            "bmp": (".bmp", img, []),
            "tiff": (".tiff", img, []),
            "jp2": (".jp2", img, []),
            "ppm": (".ppm", img, []),
            "gif": (".gif", img, []),
            "avif": (".avif", img, []),
        }
        for name, (ext, pixels, params) in encodings.items():
            try:
                ok, buf = cv2.imencode(ext, pixels, params)
            except cv2.error:
                ok = False
            if ok:
                seeds[f"{name}-{side}"] = buf.tobytes()
    for name, make in BOMBS.items():
        seeds[f"bomb-{name}"] = make()
    return seeds


# --------------------------------------------------------------------------- mutations


def _size_fields(data: bytes) -> list[tuple[int, str]]:
    """``(offset, struct format)`` of the width / height fields of a file's header."""
    out: list[tuple[int, str]] = []
    if data[:3] == b"\xff\xd8\xff":
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            at = data.find(marker)
            if at > 0:
                out += [(at + 5, ">H"), (at + 7, ">H")]
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        out += [(16, ">I"), (20, ">I")]
    elif data[:4] == b"RIFF":
        out += [(26, "<H"), (28, "<H"), (21, "<I"), (24, "<I"), (27, "<I")]
    elif data[:2] == b"BM":
        out += [(18, "<i"), (22, "<i")]
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        end = "<" if data[:2] == b"II" else ">"
        try:
            (ifd,) = struct.unpack_from(end + "I", data, 4)
            (count,) = struct.unpack_from(end + "H", data, ifd)
            for i in range(min(count, 64)):
                tag, typ = struct.unpack_from(end + "HH", data, ifd + 2 + 12 * i)
                if tag in (256, 257, 258, 277, 278):
                    out.append((ifd + 2 + 12 * i + 8, end + ("H" if typ == 3 else "I")))
        except struct.error:
            pass
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        out += [(6, "<H"), (8, "<H")]
    if b"ihdr" in data[:128]:
        at = data.find(b"ihdr")
        out += [(at + 4, ">I"), (at + 8, ">I")]
    siz = data.find(b"\xff\x4f\xff\x51")
    if siz >= 0:
        out += [(siz + 8 + 4 * k, ">I") for k in range(8)] + [(siz + 40, ">H")]
    return [(o, f) for o, f in out if 0 <= o and o + struct.calcsize(f) <= len(data)]


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One to three mutations of ``data``; returns the bytes and a description."""
    buf = bytearray(data)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(("bitflip", "bitflip", "bytes", "truncate", "insert", "delete", "header", "header", "size"))
        n = len(buf)
        if n < 4:
            break
        if kind == "bitflip":
            k = rng.choice((1, 2, 4, 8, 32))
            for _ in range(k):
                at = rng.randrange(n)
                buf[at] ^= 1 << rng.randrange(8)
            done.append(f"bitflip x{k}")
        elif kind == "bytes":
            k = rng.choice((1, 4, 16))
            for _ in range(k):
                buf[rng.randrange(n)] = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))
            done.append(f"bytes x{k}")
        elif kind == "truncate":
            at = rng.randrange(1, n)
            del buf[at:]
            done.append(f"truncate at {at}")
        elif kind == "insert":
            at = rng.randrange(n)
            run = bytes(rng.randrange(256) for _ in range(rng.choice((1, 1, 3, 64))))
            buf[at:at] = run
            done.append(f"insert {len(run)} at {at}")
        elif kind == "delete":
            at = rng.randrange(n)
            k = rng.choice((1, 4, 64, 1024))
            del buf[at : at + k]
            done.append(f"delete {k} at {at}")
        elif kind == "header":
            at = rng.randrange(min(n, 256))
            if rng.random() < 0.5 and at + 2 <= n:
                struct.pack_into(rng.choice(("<H", ">H")), buf, at, rng.choice(INTERESTING_16))
            elif at + 4 <= n:
                struct.pack_into(rng.choice(("<I", ">I")), buf, at, rng.choice(INTERESTING_32))
            done.append(f"header field at {at}")
        else:
            fields = _size_fields(bytes(buf))
            if not fields:
                continue
            at, fmt = rng.choice(fields)
            bits = struct.calcsize(fmt) * 8
            value = rng.choice((0, 1, 3, 30000, 65535, (1 << (bits - 1)) - 1, rng.randrange(1 << min(bits - 1, 20))))
            struct.pack_into(fmt, buf, at, value)
            done.append(f"size field at {at} = {value}")
    return bytes(buf), ", ".join(done) or "none"


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute the CRC of every PNG chunk whose length field still fits the file, so that a mutation
    reaches libpng's parsers and zlib instead of stopping at the first CRC check."""
    import zlib

    buf = bytearray(data)
    pos = 8
    while pos + 12 <= len(buf):
        (length,) = struct.unpack_from(">I", buf, pos)
        end = pos + 8 + length
        if end + 4 > len(buf):
            break
        struct.pack_into(">I", buf, end, zlib.crc32(bytes(buf[pos + 4 : end])) & 0xFFFFFFFF)
        pos = end + 4
    return bytes(buf)


def make_files(count: int, seed: int, folder: Path) -> list[dict]:
    """Write ``count`` fuzzed files into ``folder``; returns their descriptions (path, seed, mutation)."""
    seeds = make_seeds()
    images = sorted(n for n in seeds if not n.startswith("bomb-"))
    bombs = sorted(n for n in seeds if n.startswith("bomb-"))
    rng = random.Random(seed)
    out = []
    for i in range(count):
        name = rng.choice(bombs if rng.random() < 0.1 else images)  # one file in ten starts from a bomb
        data, how = mutate(seeds[name], rng)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and rng.random() < 0.8:
            data, how = fix_png_crcs(data), how + ", CRCs fixed"
        path = folder / f"{i:05d}-{name}.bin"
        path.write_bytes(data)
        out.append({"path": str(path), "seed": name, "mutation": how, "bytes": len(data)})
    return out


# --------------------------------------------------------------------------- worker


def worker(list_file: Path, out_file: Path, input_size: int, memory_gb: float) -> None:
    """Run load_image + detect on the files listed in ``list_file`` (one path a line), appending to
    ``out_file`` a ``start`` line before each file and a result line after it."""
    import resource

    limit = int(memory_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        from facelite.quiet import separate_python_stderr
    except ImportError:  # an older facelite (for before/after comparisons)
        from contextlib import nullcontext as separate_python_stderr
    from facelite.detector import FaceDetector
    from facelite.imageio import ImageLoadError, load_image

    detector = FaceDetector(input_size=input_size, threads=1)
    paths = list_file.read_text().splitlines()
    with separate_python_stderr(), open(out_file, "a", encoding="utf-8") as out:
        for path in paths:
            out.write(json.dumps({"start": path}) + "\n")
            out.flush()
            t = time.perf_counter()
            try:
                faces = detector.detect(load_image(path))
                result = {"outcome": "detected", "faces": len(faces)}
            except ImageLoadError as exc:
                result = {"outcome": "documented", "error": str(exc)[len(path) + 2 :][:200]}
            except Exception as exc:  # the defect this run looks for
                result = {"outcome": "other", "type": type(exc).__name__, "error": str(exc)[:300]}
            result.update(path=path, seconds=round(time.perf_counter() - t, 4),
                          rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
            out.write(json.dumps(result) + "\n")
            out.flush()


# --------------------------------------------------------------------------- driver


def run(files: list[dict], chunk: int, timeout: float, input_size: int, memory_gb: float, workdir: Path,
        progress: bool = True, src: Path | None = None) -> tuple[list[dict], int]:
    """Results per file (in order) and the number of standard-error lines the workers wrote."""
    results: dict[str, dict] = {}
    stderr_lines = 0
    todo = [f["path"] for f in files]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src or ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    k = 0
    t0 = time.perf_counter()
    while todo:
        part, todo = todo[:chunk], todo[chunk:]
        k += 1
        list_file, out_file = workdir / f"chunk{k}.txt", workdir / f"chunk{k}.jsonl"
        list_file.write_text("\n".join(part) + "\n")
        cmd = [sys.executable, "-m", "benchmarks.fuzz", "--worker", str(list_file), str(out_file),
               "--input-size", str(input_size), "--memory-limit-gb", str(memory_gb)]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=timeout * len(part) + 30)
            code, err = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as exc:
            code, err = None, exc.stderr or b""
        stderr_lines += len(err.decode(errors="replace").splitlines())
        started = None
        if out_file.is_file():
            for line in out_file.read_text().splitlines():
                record = json.loads(line)
                if "start" in record:
                    started = record["start"]
                else:
                    results[record["path"]] = record
                    started = None
        if started is not None:  # the file it was on when it died or hung
            if code is None:
                results[started] = {"path": started, "outcome": "hang", "seconds": None}
            else:
                sig = -code if code < 0 else None
                name = signal.Signals(sig).name if sig else f"exit {code}"
                results[started] = {"path": started, "outcome": "crash", "signal": name, "seconds": None}
            rest = part[part.index(started) + 1 :]
            todo = rest + todo  # go on from the next file, in a new worker
        elif code not in (0, None) and len(results) < len(files) - len(todo):
            raise RuntimeError(f"worker failed before its first file (exit {code}): {err.decode()[-2000:]}")
        if progress:
            done = len(results)
            rate = done / max(time.perf_counter() - t0, 1e-9)
            print(f"fuzz: {done}/{len(files)} files, {rate:.0f}/s", file=sys.stderr, flush=True)
    return [results[f["path"]] | {"seed": f["seed"], "mutation": f["mutation"]} for f in files], stderr_lines


def summarise(results: list[dict], stderr_lines: int, wall: float) -> dict:
    counts = Counter(r["outcome"] for r in results)
    others = Counter(r["type"] for r in results if r["outcome"] == "other")
    timed = [r for r in results if r.get("seconds") is not None]
    slowest = max(timed, key=lambda r: r["seconds"]) if timed else None
    by_seed = Counter((r["seed"].split("-")[0] if not r["seed"].startswith("bomb") else "bomb", r["outcome"]) for r in results)
    return {
        "files": len(results),
        "outcomes": {k: counts.get(k, 0) for k in ("detected", "documented", "other", "crash", "hang")},
        "other_exception_types": dict(others),
        "other_examples": [{k: r[k] for k in ("path", "type", "error", "seed", "mutation")}
                           for r in results if r["outcome"] == "other"][:10],
        "crashes": [{k: r.get(k) for k in ("path", "signal", "seed", "mutation")} for r in results if r["outcome"] == "crash"],
        "hangs": [{k: r.get(k) for k in ("path", "seed", "mutation")} for r in results if r["outcome"] == "hang"],
        "peak_rss_mb": max((r.get("rss_mb", 0) for r in results), default=0),
        "slowest": {k: slowest.get(k) for k in ("path", "seconds", "seed", "mutation", "outcome")} if slowest else None,
        "median_ms": round(1000 * sorted(r["seconds"] for r in timed)[len(timed) // 2], 2) if timed else None,
        "by_format": {f"{s}/{o}": n for (s, o), n in sorted(by_seed.items())},
        "stderr_lines": stderr_lines,
        "wall_s": round(wall, 1),
    }


def print_summary(s: dict) -> None:
    o = s["outcomes"]
    print(f"fuzzed files: {s['files']} in {s['wall_s']} s")
    print("| outcome | files |\n|---|---:|")
    for key, label in (("detected", "detected (decoded, detector ran)"), ("documented", "documented error (ImageLoadError)"),
                       ("other", "other exception"), ("crash", "crash (signal)"), ("hang", "hang (timeout)")):
        print(f"| {label} | {o[key]} |")
    print(f"other exception types: {s['other_exception_types'] or 'none'}")
    print(f"peak memory (max RSS of a worker): {s['peak_rss_mb']:.0f} MB")
    if s["slowest"]:
        sl = s["slowest"]
        print(f"slowest file: {sl['seconds'] * 1000:.0f} ms ({sl['seed']}, {sl['mutation']}, {sl['outcome']}); "
              f"median {s['median_ms']} ms")
    print(f"lines on standard error from the image libraries: {s['stderr_lines']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=1000, help="fuzzed files to run (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--chunk", type=int, default=500, help="files per worker process (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per file before it counts as a hang")
    p.add_argument("--input-size", type=int, default=160, help="detector input size (default: %(default)s)")
    p.add_argument("--memory-limit-gb", type=float, default=4.0, help="address-space limit of a worker")
    p.add_argument("--keep", type=Path, help="write the fuzzed files here (default: a temporary folder, removed)")
    p.add_argument("--json", type=Path, help="write the summary (and every crash / hang / other exception) here")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--src", type=Path, help="the facelite source folder the workers test (default: this checkout's src/)")
    p.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], args.input_size, args.memory_limit_gb)
        return 0
    with tempfile.TemporaryDirectory(prefix="facelite-fuzz-") as tmp:
        folder = args.keep or Path(tmp) / "files"
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        files = make_files(args.files, args.seed, folder)
        results, stderr_lines = run(files, args.chunk, args.timeout, args.input_size, args.memory_limit_gb, Path(tmp),
                                    progress=not args.quiet, src=args.src)
        summary = summarise(results, stderr_lines, time.perf_counter() - t0)
    print_summary(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    o = summary["outcomes"]
    return 1 if o["other"] or o["crash"] or o["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
