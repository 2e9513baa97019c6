"""A tiny progress printer with throughput and ETA (no dependencies).

Usage::

    for item in progress(items, desc="eval"):
        ...

    with Progress(total=n, desc="train", unit="step") as bar:
        for ...:
            bar.update(1, loss=f"{loss:.3f}")

On a terminal it redraws one line (``\\r``); otherwise (logs, CI) it prints a full
line at most every ``log_interval`` seconds, so log files stay short. Output goes to
stderr by default so that it never mixes with a command's JSON on stdout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")


def format_duration(seconds: float) -> str:
    """``75.3`` -> ``"1:15"``; ``3700`` -> ``"1:01:40"``; unknown -> ``"?"``."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts work done and prints ``desc  n/total (pct)  rate unit/s  elapsed  ETA``.

    Args:
        total: number of items expected (``None``: unknown, no ETA).
        desc: short label printed first.
        unit: name of one item in the rate (``"img"``, ``"step"``).
        stream: where to print (default ``sys.stderr``); ``enabled=False`` prints nothing.
        min_interval: seconds between redraws on a terminal.
        log_interval: seconds between lines when the stream is not a terminal.
    """

    def __init__(
        self,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        stream: TextIO | None = None,
        enabled: bool = True,
        min_interval: float = 0.2,
        log_interval: float = 15.0,
        initial: int = 0,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.n = initial
        self._start_n = initial
        self._t0 = time.perf_counter()
        self._last_print = float("-inf")
        self._postfix = ""
        self._closed = False
        try:
            self._tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self._tty = False
        self._interval = min_interval if self._tty else log_interval

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    @property
    def rate(self) -> float:
        """Items per second since the start (items counted as ``initial`` excluded)."""
        el = self.elapsed
        return (self.n - self._start_n) / el if el > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds left at the current rate (``nan`` when unknown)."""
        if self.total is None or self.rate <= 0:
            return float("nan")
        return max(self.total - self.n, 0) / self.rate

    def line(self) -> str:
        parts = [self.desc] if self.desc else []
        if self.total:
            parts.append(f"{self.n}/{self.total} ({100.0 * self.n / self.total:3.0f}%)")
        else:
            parts.append(f"{self.n}")
        rate = self.rate
        parts.append(f"{rate:.2f} {self.unit}/s" if rate < 10 else f"{rate:.0f} {self.unit}/s")
        parts.append(f"elapsed {format_duration(self.elapsed)}")
        if self.total is not None and self.n < self.total:
            parts.append(f"ETA {format_duration(self.eta)}")
        if self._postfix:
            parts.append(self._postfix)
        return "  ".join(parts)

    def update(self, n: int = 1, **postfix: object) -> None:
        self.n += n
        if postfix:
            self._postfix = " ".join(f"{k}={v}" for k, v in postfix.items())
        now = time.perf_counter()
        done = self.total is not None and self.n >= self.total
        if self.enabled and not done and now - self._last_print >= self._interval:
            self._last_print = now
            self._print()

    def _print(self, final: bool = False) -> None:
        if self._tty:
            self.stream.write("\r\033[K" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._print(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    stream: TextIO | None = None,
) -> Iterator[T]:
    """Yield from ``iterable`` while printing a :class:`Progress` line."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(total=total, desc=desc, unit=unit, enabled=enabled, stream=stream) as bar:
        for item in iterable:
            yield item
            bar.update(1)
