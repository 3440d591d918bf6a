"""What every task's host totals can do: become arrays, come back, and combine.

A task's totals are a dataclass of Python ints and NumPy arrays with at least
``drawn`` (draws counted) and ``rows`` (accepted rows stored). Two class attributes
say how its fields behave:

- ``FIXED``: the fields that identify the run (a threshold's bin edges, a classifier's
  bins), each mapped to what a difference in it means ("another eps"); totals with
  different values of them are not of the same run.
- ``EXACT``: exact sums (:mod:`gcsampler.core.exact`); every other field is a count.

Counts and exact sums are independent of the order and grouping of the draws, so
totals of disjoint draws combine (:func:`combine`) into exactly those of all of them:
what makes checkpoints and several processes give the same bits as one run.
"""

import dataclasses

import numpy as np

from gcsampler.core import exact


def as_arrays(totals):
    """``totals`` as a dict of NumPy arrays, by field name (exact; for npz files and
    messages between processes)."""
    return {field.name: np.asarray(getattr(totals, field.name))
            for field in dataclasses.fields(totals)}


def restore(template, arrays):
    """The totals held by ``arrays`` (a dict or an npz file, as :func:`as_arrays` made
    them), checked against ``template`` (fresh totals of the run): every field present,
    of the template's shape, and the ``FIXED`` ones equal.

    Raises KeyError for a missing field and ValueError for one that does not fit.
    """
    values = {}
    for field in dataclasses.fields(template):
        array = np.asarray(arrays[field.name])
        want = np.asarray(getattr(template, field.name))
        if array.shape != want.shape:
            raise ValueError(f"{field.name} has shape {array.shape}, expected {want.shape}")
        values[field.name] = array.item() if array.ndim == 0 else array  # counts as ints
    totals = type(template)(**values)
    check_fixed(totals, template)
    return totals


def check_fixed(totals, template):
    """Raise ValueError if ``totals`` were made with other ``FIXED`` settings than
    ``template`` (its message says which: "made with another eps ...")."""
    for name, meaning in template.FIXED.items():
        if not np.array_equal(getattr(totals, name), getattr(template, name)):
            raise ValueError(f"made with {meaning}")


def combine(parts):
    """The totals of disjoint sets of draws together (e.g. of several processes)."""
    parts = list(parts)
    first = parts[0]
    values = {}
    for field in dataclasses.fields(first):
        column = [getattr(p, field.name) for p in parts]
        if field.name in first.FIXED:
            if any(not np.array_equal(c, column[0]) for c in column):
                raise ValueError(f"totals made with {first.FIXED[field.name]} cannot be "
                                 f"combined")
            values[field.name] = column[0]
        elif field.name in first.EXACT:
            values[field.name] = exact.combine(*column)
        else:
            values[field.name] = sum(column[1:], column[0])
    return type(first)(**values)
