"""``accepted/`` is a zarr v2 group that describes its run: zarr-python and xarray open it
as it is, and gcsampler still reads run directories made before it had the metadata.

The runs have the settings of test_resume.py and test_splitting_resume.py, so they share
their compiled kernels.
"""

import io
import json
import shutil

import numpy as np
import pytest

import gcsampler
from gcsampler.classify import task as classify_task
from gcsampler.runs import accepted, accepted_metadata, config, files, runner, splitting_files

zarr = pytest.importorskip("zarr")
xr = pytest.importorskip("xarray")

BLOCK = 256
REJECTION = config.RunConfig(eps=0.1, samples=20 * BLOCK + 100, seed=7, log2_block=8,
                             batch=BLOCK, devices="1", gd=False)
SPLITTING = config.RunConfig(method="splitting", eps=1e-3, particles=64, replicates=2,
                             moves="3", seed=3, gd=False, devices="1")
FIELDS = {"rejection": accepted.ACCEPTED_FIELDS,
          "splitting": tuple(splitting_files.accepted_layout(5, 5))}


def execute(cfg, run_dir):
    return runner.execute(cfg, run_dir, stream=io.StringIO(), checkpoint_every=0)


@pytest.fixture(scope="module", params=["rejection", "splitting"])
def run(request, tmp_path_factory):
    """A finished run of each method: (run_dir, its config, its summary)."""
    cfg = {"rejection": REJECTION, "splitting": SPLITTING}[request.param]
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    summary = execute(cfg, run_dir)
    assert summary["accepted"] > 0
    return run_dir, cfg, summary


def test_zarr_opens_the_group_with_the_runs_attributes(run):
    run_dir, cfg, summary = run
    group = zarr.open_group(str(run_dir / "accepted"), mode="r")
    attrs = dict(group.attrs)
    assert (attrs["method"], attrs["eps"], attrs["seed"]) == (cfg.method, cfg.eps, cfg.seed)
    assert attrs["sampler"] == summary["sampler_used"]
    assert attrs["gcsampler_version"] == gcsampler.__version__
    assert attrs["task"] == "factorization"
    assert "increasing index order" in attrs["index_convention"]
    fields = FIELDS[cfg.method]
    assert attrs["fields"] == list(fields) and set(attrs["columns"]) == set(fields)
    assert attrs["columns"]["matrix"] == {"dtype": "float32", "shape": [5, 5],
                                          "meaning": accepted_metadata.MEANINGS["matrix"]}
    assert attrs["columns"]["index"]["dtype"] == "uint64"
    assert all(column["meaning"] for column in attrs["columns"].values())
    rows = accepted.read_accepted(run_dir, fields=fields)
    assert sorted(group.array_keys()) == sorted(fields)
    for name in fields:
        assert group[name].shape == rows[name].shape == (summary["accepted"],
                                                         *attrs["columns"][name]["shape"])
        np.testing.assert_array_equal(group[name][:], rows[name], err_msg=name)


def test_xarray_opens_the_group_on_one_draw_dimension(run):
    run_dir, cfg, summary = run
    fields = FIELDS[cfg.method]
    rows = accepted.read_accepted(run_dir, fields=fields)
    with xr.open_zarr(run_dir / "accepted", consolidated=False) as ds:
        assert set(ds.data_vars) == set(fields)
        assert dict(ds.sizes) == {"draw": summary["accepted"], "row": 5, "col": 5}
        assert ds["matrix"].dims == ("draw", "row", "col")
        assert ds["train_loss"].attrs["meaning"] == accepted_metadata.MEANINGS["train_loss"]
        assert ds.attrs["seed"] == cfg.seed
        for name in fields:
            assert ds[name].dtype == rows[name].dtype, name
            np.testing.assert_array_equal(ds[name].values, rows[name], err_msg=name)


def test_the_index_convention_fits_the_method(run):
    run_dir, cfg, _ = run
    attrs = files.read_json(run_dir / "accepted" / ".zattrs")
    index = {"rejection": accepted_metadata.DRAW_INDEX,
             "splitting": accepted_metadata.SPLITTING_MEANINGS["index"]}[cfg.method]
    assert attrs["columns"]["index"]["meaning"] == index
    assert attrs["index_convention"].startswith(index)
    if cfg.method == "splitting":
        assert (attrs["particles"], attrs["replicates"]) == (cfg.particles, cfg.replicates)
        rows = accepted.read_accepted(run_dir, fields=("index", "replicate"))
        assert np.all(rows["index"] // cfg.particles == rows["replicate"])


def test_runs_without_the_metadata_stay_readable_and_gain_it_on_resume(run, tmp_path):
    run_dir, cfg, _ = run
    fields = FIELDS[cfg.method]
    want = accepted.read_accepted(run_dir, fields=fields)
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    metadata = [*(old / "accepted").glob(".z[ga]*"), *(old / "accepted").glob("*/.zattrs")]
    assert len(metadata) == 2 + len(fields)
    for path in metadata:
        path.unlink()
    got = accepted.read_accepted(old, fields=fields)
    assert all(got[name].tobytes() == want[name].tobytes() for name in fields)
    layout = {name: (array.dtype.str, array.shape[1:]) for name, array in want.items()}
    accepted.AcceptedWriter(old, layout, keep=len(want["index"]), attrs={"seed": 1}).close()
    assert json.loads((old / "accepted" / ".zgroup").read_text()) == {"zarr_format": 2}
    assert zarr.open_group(str(old / "accepted"), mode="r").attrs["seed"] == 1
    got = accepted.read_accepted(old, fields=fields)
    assert all(got[name].tobytes() == want[name].tobytes() for name in fields)


def test_other_layouts_name_their_axes_and_give_dtypes_and_shapes(tmp_path):
    """A classifier's rows: no meanings but the index's, the bins along a ``bin`` axis."""
    run_dir = files.create_run_dir(tmp_path / "run")
    layout = classify_task.row_layout(3)
    with accepted.AcceptedWriter(run_dir, {**layout, "extra": ("<f4", (2, 4))},
                                 chunk_rows=8) as writer:
        writer.append(np.arange(5, dtype=np.uint64) * 3, np.ones(5), np.zeros(5),
                      np.ones((5, 3), np.uint8), np.zeros((5, 2, 4)))
    with xr.open_zarr(run_dir / "accepted", consolidated=False) as ds:
        assert ds["bins"].dims == ("draw", "bin") and ds["bins"].dtype == np.uint8
        assert ds["extra"].dims == ("draw", "extra_0", "extra_1")
        np.testing.assert_array_equal(ds["index"].values, np.arange(5) * 3)
        columns = ds.attrs["columns"]
    assert columns["bins"] == {"dtype": "uint8", "shape": [3]}
    assert columns["index"]["meaning"] == accepted_metadata.DRAW_INDEX
    assert "meaning" not in columns["test_accuracy"]
