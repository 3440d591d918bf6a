"""A one-line progress display for long runs: draws, accepted, samples/s, ETA (for
splitting runs: level, log p, moves, evaluations/s, ETA).

On a terminal the line is redrawn in place; otherwise (logs, CI) a line is
printed every ``log_interval`` seconds so files stay readable.
"""

import math
import sys
import time

import numpy as np


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
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


LONG_RUN = 3600.0  # seconds: a run expected to take longer says so after its first call


def pace(drawn, total, seconds, done_before=0):
    """``(rate, eta)``: draws per second after ``done_before`` (those a resumed run had
    before this process), made in ``seconds``, and the seconds left at that rate."""
    rate = (drawn - done_before) / seconds if seconds > 0 else 0.0
    return rate, (total - drawn) / rate if rate > 0 else math.inf


def progress_line(drawn, total, accepted, seconds, prefix="G&C", done_before=0):
    """The text of one progress update."""
    rate, eta = pace(drawn, total, seconds, done_before)
    percent = 100.0 * drawn / total if total else 100.0
    return (f"{prefix}  {format_count(drawn)}/{format_count(total)} draws ({percent:5.1f}%)  "
            f"accepted {accepted}  {format_count(rate)} samples/s  ETA {format_duration(eta)}")


def shows_progress(progress, stream=None):
    """Whether to show progress: ``progress`` if given, else whether ``stream`` (default
    stderr) is a terminal."""
    if progress is not None:
        return bool(progress)
    return getattr(stream if stream is not None else sys.stderr, "isatty", lambda: False)()


class Progress:
    """Callable progress sink (``on_progress``) of :func:`gcsampler.core.loop.guess_and_check`.

    After the first update, a run whose measured pace leaves more than an hour says so
    on a line of its own, with its ETA."""

    def __init__(self, total, stream=None, log_interval=5.0, done_before=0, prefix="G&C"):
        self.total = total
        self.prefix = prefix
        self.done_before = done_before
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = getattr(self.stream, "isatty", lambda: False)()
        self.log_interval = log_interval
        self._last = -math.inf
        self._paced = False

    def __call__(self, totals, seconds):
        self.show(totals.drawn, totals.rows, seconds)

    def show(self, drawn, accepted, seconds, prefix=None):
        """Write a line if one is due (always at the end, at most every interval in logs)."""
        prefix = prefix or self.prefix
        self.write(progress_line(drawn, self.total, accepted, seconds, prefix,
                                 self.done_before), drawn >= self.total)
        if not self._paced:
            self._paced = True
            rate, eta = pace(drawn, self.total, seconds, self.done_before)
            if LONG_RUN < eta < math.inf:
                self.note(f"{prefix}: about {format_duration(eta)} to go at the measured "
                          f"{format_count(rate)} samples/s")

    def note(self, text):
        """A line of its own between progress updates."""
        self.stream.write(("\n" if self.interactive else "") + text + "\n")
        self.stream.flush()

    def write(self, line, done):
        """Show ``line`` if one is due: always when ``done``, else at most every interval
        in logs."""
        now = time.monotonic()
        if not (self.interactive or done or now - self._last >= self.log_interval):
            return
        self._last = now
        if self.interactive:
            self.stream.write("\r" + line + ("\n" if done else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class SweepProgress(Progress):
    """One progress display for all cells of a sweep.

    Counts draws over the whole sweep; samples/s and the ETA use the wall time
    since the sweep started, so compilation and GD are part of the estimate.
    """

    def __init__(self, total, cells, stream=None, log_interval=5.0):
        super().__init__(total, stream, log_interval)
        self.cells = cells
        self.finished_draws = 0
        self.finished_cells = 0
        self.start = time.monotonic()

    def cell_prefix(self, name):
        """What the next cell's progress lines start with (its method's name follows)."""
        return f"sweep cell {self.finished_cells + 1}/{self.cells} ({name})"

    def for_cell(self, name):
        """``on_progress`` of the next cell's G&C, called ``name``: its draws count
        towards the sweep's."""
        prefix = f"{self.cell_prefix(name)}  G&C"

        def report(totals, seconds):
            del seconds
            self.show(self.finished_draws + totals.drawn, totals.rows,
                      time.monotonic() - self.start, prefix)

        return report

    def finish_cell(self, draws):
        """Count a finished cell of ``draws`` draws."""
        self.finished_draws += draws
        self.finished_cells += 1

    def skip_cell(self, draws):
        """Count a cell of ``draws`` draws found finished (by a resumed sweep): not drawn
        now, so not in the pace."""
        self.done_before += draws
        self.finish_cell(draws)


def level_line(count, info, eps, first_level, evaluations, seconds, prefix="splitting"):
    """The text of one splitting progress update from a level's LevelInfo (one value
    per replicate): where the level is, log p so far, moves, evaluations and an ETA
    from the pace at which the level has fallen towards eps (in log scale)."""
    active = info.active
    level = float(np.exp(np.mean(np.log(np.maximum(info.level[active], 1e-300)))))
    log_p = float(np.mean(info.log_p[active]))
    fallen = math.log(first_level / level) if first_level > level else 0.0
    left = math.log(level / eps) if level > eps else 0.0
    eta = seconds * left / fallen if fallen > 0 else math.inf
    rate = evaluations / seconds if seconds > 0 else 0.0
    return (f"{prefix}  level {count}  threshold {level:.3g} (eps {eps:g})  log p {log_p:.2f} "
            f"(log10 {log_p / math.log(10):.2f})  moves {int(np.max(info.moves[active]))}  "
            f"evaluations {format_count(evaluations)} ({format_count(rate)}/s)  "
            f"ETA {format_duration(eta)}")


class LevelProgress(Progress):
    """Callable progress sink (``on_level``) of
    :func:`gcsampler.factorization.splitting.multilevel_splitting`; a resumed run
    gives the levels and evaluations it had (``levels_before``, ``evaluations``)."""

    def __init__(self, eps, particles, replicates, stream=None, log_interval=5.0,
                 prefix="splitting", levels_before=0, evaluations=None):
        super().__init__(1, stream, log_interval, prefix=prefix)
        self.eps = eps
        self.count = levels_before
        self.evaluations = particles * replicates if evaluations is None else evaluations
        self.first_level = None

    def __call__(self, info, seconds):
        self.count += 1
        active = info.active
        if not active.any():
            return
        self.evaluations += int(np.sum(info.proposals[active], dtype=np.int64))
        if self.first_level is None:
            self.first_level = float(np.exp(np.mean(np.log(info.level[active]))))
        self.write(level_line(self.count, info, self.eps, self.first_level, self.evaluations,
                              seconds, self.prefix), bool(np.all(info.final[active])))
