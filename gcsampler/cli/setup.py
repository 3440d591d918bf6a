"""What every command that computes does first, once its flags are checked: keep compiled
programs on disk, join a multi-process run, check the devices and the output directory."""

import math
import pathlib
import sys

import jax

from gcsampler.cli.flags import UsageError
from gcsampler.core import compilation_cache
from gcsampler.runs import distributed, files


def join(values, command="run"):
    """Join a multi-process run if the flags ask for one (before anything uses a device)."""
    try:
        distributed.check_timeout(values.distributed_timeout)
        if (values.num_processes, values.process_id, values.coordinator_address) == (1, 0, None):
            return
        if values.num_processes > 1 and values.out is None and values.resume is None:
            raise UsageError(f"gcsampler {command}: --out is required with --num_processes > 1: "
                             f"every process must write the same directory")
        distributed.initialize(values.coordinator_address, values.num_processes,
                               values.process_id, values.distributed_timeout,
                               command=f"gcsampler {command}",
                               run_dir=values.out or values.resume)
    except ValueError as err:
        raise UsageError(f"gcsampler {command}: {err}") from None
    except RuntimeError as err:  # e.g. process 0 cannot listen at the address
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise files.RunDirError(f"cannot join the run at --coordinator_address "
                                f"{values.coordinator_address}: {reason}") from None


def check_devices(requested, command="run"):
    available = jax.local_devices()
    if requested != "all" and int(requested) > len(available):
        raise UsageError(f"gcsampler {command}: --devices must be 'all' or an integer in "
                         f"[1, {len(available)}] "
                         f"(this machine has {len(available)} {available[0].platform} "
                         f"device(s)), got {requested}")


def checkpoint_every(values, command):
    every = values.checkpoint_every
    if not (math.isfinite(every) and every >= 0):
        raise UsageError(f"gcsampler {command}: --checkpoint_every must be a non-negative "
                         f"number of seconds, got {every}")
    return every


def start_process(values, command="run"):
    """The compilation cache, then joining a multi-process run: before anything compiles
    or uses a device, and after the flags have been checked."""
    use_compilation_cache(values, command)
    join(values, command)


def use_compilation_cache(values, command):
    """Turn on JAX's persistent compilation cache (before anything compiles)."""
    location = values.compilation_cache or compilation_cache.default_location()
    try:
        compilation_cache.use(location)
    except OSError as err:
        if values.compilation_cache:
            raise UsageError(f"gcsampler {command}: --compilation_cache must be a directory "
                             f"that can be written or 'none': {err.strerror or err}") from None
        print(f"gcsampler: no compilation cache ({err.strerror or err}); "
              f"--compilation_cache DIR names another place", file=sys.stderr)


def out_dir(values, tag):
    """``--out``, or when it is not given a new ``runs/<time>-<tag>`` (made now, so that
    runs started in the same second get directories of their own)."""
    if values.out is not None:
        return pathlib.Path(values.out)
    return files.new_default_run_dir(tag)


def leader(out):
    """Whether this process reports the results of ``out``; other processes of a
    multi-process run say that they are done and that process 0 reports."""
    team = distributed.team()
    if not team.leader:
        print(f"process {team.process} of {team.processes}: done; process 0 reports the "
              f"results of {out}")
    return team.leader
