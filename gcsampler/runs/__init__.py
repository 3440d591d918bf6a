"""Everything that owns a directory on disk: runs, sweeps, their files and their methods.

- ``config``: ``RunConfig``, the settings of a factorization run (the ``run`` flags);
- ``pieces``: the problem, model and prior a config names (or Python gives);
- ``method``, ``methods``: the Method protocol and its registry (``rejection_run``,
  ``splitting_run``, with ``splitting_files``);
- ``runner``: one run, started, resumed or read; ``finish``: references and GD after G&C;
- ``api``: runs from Python (``run``, ``resume``, ``run_task``, ``report``);
- ``files``, ``accepted``, ``accepted_metadata``, ``record``, ``checkpoint``: the disk
  format and checkpoints; ``manifest``, ``integrity``: checksums of the accepted rows,
  ``gcsampler verify`` and its repair;
- ``distributed``, ``watch``, ``coordination``: several processes, which end together
  with one line when they lose each other;
- ``summary``, ``tables``: the summary schema and the tables printed from it;
- ``sweep``, ``sweep_results``, ``presets``, ``aggregate``: sweeps over settings;
- ``progress``: progress lines.
"""
