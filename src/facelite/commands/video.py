"""``facelite video``: faces in a video file, image sequence or camera, in real time."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import add_model_options, os_errors_as_messages, positive_int

HELP = "detect and track faces in a video, an image sequence or a camera"

DESCRIPTION = """\
Detect faces and 5 landmarks in every frame of SOURCE: a video file, a folder
of images or a pattern (frames/*.jpg, frames/%05d.png) read in name order, a
camera index (0) or device (/dev/video0), or a stream URL.

Frames are captured in a background thread, so reading overlaps with detection;
from cameras and streams the oldest waiting frames are dropped when detection
falls behind. By default faces are tracked (a stable id per face, IoU matching)
and their boxes and landmarks smoothed (One-Euro filter); --no-smooth keeps the
ids but reports raw detections, --no-track reports raw detections only. With
--every N the detector runs on every Nth frame and the frames between repeat
the last result.

--out writes the annotated video (.mp4 .m4v .mov .avi .mkv) with the frame rate
drawn on it, --jsonl one JSON line per frame (frame, time, detected, faces with
track_id). The frame rate is logged as it goes (standard error) and summarised at
the end. No window opens unless --show is given.
"""

EPILOG = """\
examples:
  facelite video clip.mp4 --out annotated.mp4 --jsonl frames.jsonl
  facelite video 0 --show --input-size 320          # webcam, needs a GUI build of OpenCV
  facelite video frames/ --every 3 --jsonl faces.jsonl --fps 25
  facelite video clip.mp4 --out anonymous.mp4 --anonymize blur
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "video", help=HELP, description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("source", metavar="SOURCE", help="video file, image folder or pattern, camera index, device or URL")
    p.add_argument("--out", type=Path, metavar="FILE", help="write the annotated video to FILE")
    p.add_argument("--jsonl", metavar="FILE", help="write one JSON line per frame to FILE (- for stdout)")
    p.add_argument("--every", type=positive_int, default=1, metavar="N", help="detect on every Nth frame (default: 1)")
    p.add_argument("--no-track", action="store_true", help="no tracking: raw detections, no ids")
    p.add_argument("--no-smooth", action="store_true", help="track ids but do not smooth boxes and landmarks")
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window (q or Esc quits)")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    p.add_argument(
        "--fps", type=float, metavar="F",
        help="frame rate of the source (default: the file's; 30 for image sequences) and of --out",
    )
    p.add_argument(
        "--anonymize", choices=("blur", "pixelate", "fill"),
        help="blur/pixelate/fill the faces in --out and --show instead of drawing them",
    )
    p.add_argument("--no-overlay", action="store_true", help="do not draw the frame rate on the frames")
    p.add_argument("--queue", type=positive_int, default=8, metavar="N", help="capture queue length (default: 8)")
    add_model_options(p)
    from ._common import add_max_pixels_option

    add_max_pixels_option(p)
    p.set_defaults(func=run)


def _check_gui() -> None:
    import os

    import cv2

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ValueError("--show needs a display (DISPLAY is not set); write the result with --out instead")
    try:
        cv2.namedWindow("facelite", cv2.WINDOW_NORMAL)
    except cv2.error:
        raise ValueError(
            "--show needs OpenCV with GUI support, and this one has none (opencv-python-headless); "
            "write the result with --out instead, or install opencv-python"
        ) from None


@os_errors_as_messages
def run(args: argparse.Namespace) -> int:
    import json
    import time

    import cv2

    from ..draw import draw_faces, draw_text
    from ..progress import Progress
    from ..tracking import IoUTracker
    from ..video import DEFAULT_FPS, FpsMeter, VideoProcessor, VideoWriter
    from ._common import build_detector, model_label

    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")
    if args.out is not None:
        VideoWriter(args.out, 1.0)  # checks the extension before anything is opened
    if args.show:
        _check_gui()
    detector = build_detector(args)
    tracker = None if args.no_track else IoUTracker(smooth=not args.no_smooth)
    bad_frames = 0

    def on_error(index: int, exc: Exception) -> None:
        nonlocal bad_frames
        bad_frames += 1
        print(f"facelite video: skipped frame {index}: {exc}", file=sys.stderr, flush=True)

    proc = VideoProcessor(
        detector, args.source, every=args.every, tracker=tracker, fps=args.fps, max_frames=args.max_frames,
        queue_size=args.queue, on_error=on_error,
    )
    info = proc.info
    out_fps = args.fps or info.fps or DEFAULT_FPS
    size = f"{info.width}x{info.height}, " if info.width else ""
    count = f", {info.frame_count} frames" if info.frame_count else ""
    stated = f"{info.fps:g} fps" if info.fps else "frame rate unknown"
    print(f"facelite video: {info.description} ({info.kind}, {size}{stated}{count})", file=sys.stderr, flush=True)

    writer = jsonl = None
    frames = 0
    interrupted = False
    meter = FpsMeter(window=1.0)
    total = info.frame_count
    if total is not None and args.max_frames:
        total = min(total, args.max_frames)
    bar = Progress(total=total, desc="video", unit="frame", min_interval=0.5, log_interval=5.0)
    t_start = time.perf_counter()
    try:
        if args.out is not None:
            writer = VideoWriter(args.out, out_fps)
        if args.jsonl:
            if args.jsonl == "-":
                jsonl = sys.stdout
            else:
                Path(args.jsonl).parent.mkdir(parents=True, exist_ok=True)
                jsonl = open(args.jsonl, "w", encoding="utf-8")
        for vf in proc:
            frames += 1
            live = meter.tick()
            if jsonl is not None:
                record = {
                    "frame": vf.index,
                    "time": round(vf.time, 4),
                    "detected": vf.detected,
                    "faces": [f.to_dict() for f in vf.faces],
                }
                if vf.timings is not None:
                    record["timings_ms"] = {k: round(v, 3) for k, v in vf.timings.items()}
                jsonl.write(json.dumps(record) + "\n")
                jsonl.flush()
            if writer is not None or args.show:
                if args.anonymize:
                    from ..anonymize import anonymize

                    picture = anonymize(vf.image, vf.faces, args.anonymize)
                else:
                    picture = draw_faces(vf.image, vf.faces)
                if not args.no_overlay:
                    draw_text(picture, f"{live:.1f} FPS" if frames > 2 else "-- FPS")
                if writer is not None:
                    writer.write(picture)
                if args.show:
                    cv2.imshow("facelite", picture)
                    if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                        break
            bar.update(1, fps=f"{live:.1f}", faces=len(vf.faces))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        proc.close()
        bar.close()
        if jsonl is not None and jsonl is not sys.stdout:
            jsonl.close()
        if args.show:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass
        if writer is not None:
            writer.close()  # finish the file even after Ctrl-C, so what was written plays
    wall = time.perf_counter() - t_start
    if frames == 0 and not interrupted:
        if bad_frames:
            raise ValueError(f"none of the frames of {info.description} could be read")
        raise ValueError(f"no frames could be read from {info.description}")
    parts = [f"{frames} frame{'s' if frames != 1 else ''}"]
    if proc.detections != frames:
        parts[0] += f" ({proc.detections} detected, every {args.every})"
    fps = frames / wall if wall > 0 else 0.0
    line = f"facelite video: {', '.join(parts)} in {wall:.1f} s = {fps:.1f} FPS"
    if proc.detections:
        ms = proc.detector_ms / proc.detections
        line += f"; detector {ms:.1f} ms/frame"
    line += f"; waited {proc.reader.wait_s:.1f} s for frames"
    if proc.reader.dropped:
        line += f"; dropped {proc.reader.dropped} late frames"
    if tracker is not None:
        line += f"; {tracker.ids_issued} track{'s' if tracker.ids_issued != 1 else ''}"
    if bad_frames:
        line += f"; {bad_frames} unreadable frame{'s' if bad_frames != 1 else ''} skipped"
    line += f" ({model_label(detector)})"
    if writer is not None:
        line += f"; wrote {writer.frames_written} frames to {args.out}"
    print(line, file=sys.stderr, flush=True)
    if interrupted:
        print("interrupted", file=sys.stderr)
        return 130
    return 1 if bad_frames else 0
