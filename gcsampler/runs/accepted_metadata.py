"""What the ``accepted/`` zarr group says of itself, so that zarr-python and xarray open it
as it is: ``.zgroup``, ``.zattrs`` with the run's attributes (eps, seed, sampler, method,
...), the gcsampler version, the index convention and every column's dtype, per-row shape
and meaning, and per array a ``.zattrs`` with xarray's ``_ARRAY_DIMENSIONS``.

tensorstore writes only ``.zarray`` and the chunks, so these files stay as written;
gcsampler's own readers need none of them (runs made before them have none).
"""

import pathlib

import numpy as np

from gcsampler._version import __version__
from gcsampler.runs.files import write_json

DRAW_INDEX = "the global draw index: draw i of a run is a pure function of (seed, i)"
# What the columns of a factorization run's rows mean. Other tasks' columns get no
# meaning but the index's, which holds for every rejection run.
MEANINGS = {
    "index": DRAW_INDEX,
    "train_loss": "mean squared error on the train measurements (accepted: below eps)",
    "gen_loss": "mean squared error on the test measurements (the generalization loss)",
    "matrix": "the end-to-end matrix: the product of the network's layers (Frobenius-"
              "normalized when the prior normalizes)",
}
# A splitting run's rows are its final particles below eps, not draws.
SPLITTING_MEANINGS = {
    **MEANINGS,
    "index": "replicate * particles + slot: the particle's place among the final particles "
             "of all replicates (not a draw index)",
    "replicate": "the replicate (independent particle system) the particle belongs to",
}
# Names of the per-row axes of columns that have them (others: <name>_0, <name>_1, ...).
ROW_DIMENSIONS = {"matrix": ("row", "col"), "bins": ("bin",)}


def describe(group_dir, layout, attrs, meanings):
    """Write the metadata of the group ``group_dir`` whose arrays are ``layout`` (name ->
    (dtype, row shape)): ``.zgroup``, its ``.zattrs`` (``attrs``, the version, the index
    convention, the columns, and their order as ``fields``, since JSON objects have none)
    and each array's ``.zattrs``; ``meanings`` has a meaning per column (``index``'s is
    required)."""
    root = pathlib.Path(group_dir)
    columns = {}
    for name, (dtype, tail) in layout.items():
        meaning = {"meaning": meanings[name]} if name in meanings else {}
        columns[name] = {"dtype": np.dtype(dtype).name, "shape": list(tail), **meaning}
        axes = ROW_DIMENSIONS.get(name, ())
        if len(axes) != len(tail):  # a task's own column
            axes = [f"{name}_{k}" for k in range(len(tail))]
        write_json(root / name / ".zattrs", {"_ARRAY_DIMENSIONS": ["draw", *axes], **meaning})
    write_json(root / ".zgroup", {"zarr_format": 2})
    write_json(root / ".zattrs", {
        **attrs, "gcsampler_version": __version__, "columns": columns, "fields": list(layout),
        "index_convention": f"{meanings['index']}; rows are in increasing index order"})
