"""What a run directory says of itself: ``config.json`` and ``summary.json``.

``config.json`` records how the run was made: ``method``, ``settings`` (a factorization
run's :class:`~gcsampler.runs.config.RunConfig`, or the loop settings of another task),
``task`` (what the task describes of itself: its kind, eps, sampler, probes), the
number of ``processes``, the ``resolved`` schedule, the gcsampler and JAX versions,
backend and device kind. ``summary.json`` holds the results once G&C has finished.
Foreign or damaged files are one-line :class:`~gcsampler.runs.files.RunDirError`.
"""

import pathlib

import jax
import numpy as np

from gcsampler._version import __version__
from gcsampler.runs import files, summary as schema

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
# Probes agree when they are the same numbers up to float32 rounding on another backend.
PROBE_RTOL = 1e-4


def versions(devices):
    """The versions and hardware a record notes, for ``devices`` (the first one's kind)."""
    return {"gcsampler_version": __version__, "jax_version": jax.__version__,
            "backend": jax.default_backend(), "device_kind": devices[0].device_kind}


def read_config(run_dir):
    """``config.json`` of a run directory, checked to be a gcsampler record."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise files.RunDirError(f"{run_dir} is not a gcsampler run directory (no {CONFIG_FILE})")
    record = files.read_json(run_dir / CONFIG_FILE)
    if not (isinstance(record, dict) and isinstance(record.get("settings"), dict)
            and isinstance(record.get("method"), str) and isinstance(record.get("task"), dict)):
        raise files.RunDirError(f"{run_dir}/{CONFIG_FILE} is not a gcsampler config (no "
                                f"settings, method or task)")
    processes(record)
    return record


def read_summary(run_dir, checked=False):
    """``summary.json`` of a run directory, or None if it has none yet; ``checked``: a
    threshold task's, checked against the summary schema (RunDirError naming the first
    damaged field and how to repair it)."""
    path = pathlib.Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return None
    summary = files.read_json(path)
    if not (isinstance(summary, dict) and isinstance(summary.get("draws"), int)):
        raise files.RunDirError(f"{path} is not a gcsampler summary (no draws)")
    if checked:
        try:
            schema.check(summary)
        except ValueError as err:
            raise files.RunDirError(f"{path} is damaged ({err}); move it away and "
                                    f"`gcsampler run --resume {run_dir}` makes it again") from None
    return summary


def processes(record):
    """How many processes made the run of a ``config.json`` record."""
    count = record.get("processes", 1)
    if not (isinstance(count, int) and count >= 1):
        raise files.RunDirError(f"config.json records {count!r} processes, not a positive "
                                f"integer")
    return count


def probes_differ(recorded, now):
    """The names of the probes (numbers that identify a run's pieces) that differ."""
    differ = []
    for name, values in now.items():
        before = recorded.get(name)
        if before is None or np.shape(before) != np.shape(values) or not np.allclose(
                np.asarray(before, float), np.asarray(values, float), rtol=PROBE_RTOL,
                atol=1e-7, equal_nan=True):
            differ.append(name)
    return differ
