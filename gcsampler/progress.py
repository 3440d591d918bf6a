"""A one-line progress display for long runs: draws, accepted, samples/s, ETA.

On a terminal the line is redrawn in place; otherwise (logs, CI) a line is
printed every ``log_interval`` seconds so files stay readable.
"""

import math
import sys
import time


def format_count(n):
    """Compact counts: 950, 12.3k, 4.56M, 1.20G."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def format_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(drawn, total, accepted, seconds):
    """The text of one progress update."""
    rate = drawn / seconds if seconds > 0 else 0.0
    eta = (total - drawn) / rate if rate > 0 else math.inf
    percent = 100.0 * drawn / total if total else 100.0
    return (f"G&C  {format_count(drawn)}/{format_count(total)} draws ({percent:5.1f}%)  "
            f"accepted {accepted}  {format_count(rate)} samples/s  ETA {format_duration(eta)}")


class Progress:
    """Callable progress sink for :func:`gcsampler.engine.guess_and_check`."""

    def __init__(self, total, stream=None, log_interval=5.0):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = getattr(self.stream, "isatty", lambda: False)()
        self.log_interval = log_interval
        self._last = -math.inf

    def __call__(self, totals, seconds):
        now = time.monotonic()
        done = totals.drawn >= self.total
        if not (self.interactive or done or now - self._last >= self.log_interval):
            return
        self._last = now
        line = progress_line(totals.drawn, self.total, totals.accepted, seconds)
        if self.interactive:
            self.stream.write("\r" + line + ("\n" if done else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
