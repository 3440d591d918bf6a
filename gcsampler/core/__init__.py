"""Task-agnostic plumbing: what makes G&C fast, exact and reproducible for any task.

- ``keys``: counter-based keys, draw i a pure function of (seed, i);
- ``devices``: blocks, steps and calls over devices and processes (``Schedule``);
- ``loop``: the ``Task`` protocol and the one host loop that runs any task;
- ``totals``: task totals as arrays, restored and combined exactly;
- ``exact``: exact host sums of floats (fixed point), in any order;
- ``exact_device``: exact sums of float32 on the device, in int32 digits the host adds;
- ``pairwise``: order-fixed float sums on the device;
- ``intervals``: Wilson, moment and t intervals;
- ``registry``: name -> spec tables (and ``MODULE:ATTR`` references) for every choice.
"""
