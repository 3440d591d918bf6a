"""Threshold tasks: accept a draw when its train loss is strictly below eps.

- ``kernel``: the device step (losses of a block of draws, bins, histogram, rows);
- ``statistics``: the host totals, the summary and re-thresholding;
- ``task``: ``threshold_task`` (a Task from a block evaluator) and ``model_task``
  (a Task from any JAX model: a parameter prior and a loss).
"""
