"""The Method protocol: one way to run G&C of a factorization setting into a run directory.

A method is a :class:`Method` of plain functions, and :data:`gcsampler.runs.methods.METHODS`
maps names to methods; nothing else in gcsampler tells methods apart. A new method is a
module that builds one (like :mod:`.rejection_run`, :mod:`.splitting_run`) and one entry
in that registry.
"""

from typing import Callable, NamedTuple


class Method(NamedTuple):
    """How a method runs, continues and reads a run.

    Attributes:
      name: the ``--method`` name.
      figure: the run's figure in :mod:`gcsampler.plots` ('losses' or 'curve').
      validate: ``(cfg, processes=1) -> None``: ValueError naming a flag this method cannot
        take (run by ``processes`` processes).
      check: ``(cfg, pieces) -> None``: ValueError if the pieces do not suit it.
      start: ``(cfg, pieces, run_dir, *, stream, checkpoint_every, display) -> summary``:
        G&C of a new run (``display``: its progress sink, or None for the method's own).
      resume: ``(resumption, pieces, *, stream, checkpoint_every) -> summary``: G&C of a
        stopped run from its checkpoint (a :class:`~gcsampler.runs.runner.Resumption`).
      finished: ``(settings, summary) -> bool``: whether the summary is of the finished G&C
        of a run with these settings (a record's ``settings`` dict).
      display: ``(cfg, stream, prefix) -> callable``: its progress sink in a sweep.
      rethreshold: ``(run_dir, record, summary, eps) -> dict | None``: G&C at another eps.
      unfinished: ``(run_dir, record) -> str``: how far a stopped run got, and how to
        continue it (the record's ``resume`` command).
      table: ``summary -> str``: the end-of-run table.
      effort: ``(scale, rows) -> str``: the work per seed of a sweep's cells of this method
        (``rows``: their results rows; ``scale``: the sweep's ``--scale``), for its
        figures' small print.
      redraws: whether its rows, statistics and checkpoints are those of draws, each a pure
        function of (seed, index), so that damaged ones can be drawn again
        (:mod:`gcsampler.runs.integrity`).
    """

    name: str
    figure: str
    validate: Callable
    check: Callable
    start: Callable
    resume: Callable
    finished: Callable
    display: Callable
    rethreshold: Callable
    unfinished: Callable
    table: Callable
    effort: Callable
    redraws: bool = False
