"""The check shared by the resume and multi-process tests: two run directories hold the
same results, bit for bit."""

import pathlib

from gcsampler.runs import accepted, files, record

# Summary fields that are times, places or how a run was split rather than results.
NOT_RESULTS = ("seconds", "compile_seconds", "samples_per_second", "run_dir", "processes")


def assert_same_results(run_dir, reference_dir):
    """Identical statistics, summary numbers and accepted rows, to the last bit."""
    run_dir, reference_dir = pathlib.Path(run_dir), pathlib.Path(reference_dir)
    got, want = (files.load_arrays(d / "statistics.npz") for d in (run_dir, reference_dir))
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].tobytes() == want[name].tobytes(), name
    got, want = ({k: v for k, v in files.read_json(d / "summary.json").items()
                  if k not in NOT_RESULTS} for d in (run_dir, reference_dir))
    assert got == want
    got, want = (accepted.read_accepted(d, record.processes(files.read_json(d / "config.json")))
                 for d in (run_dir, reference_dir))
    for name in accepted.ACCEPTED_FIELDS:
        assert got[name].dtype == want[name].dtype and got[name].tobytes() == want[name].tobytes()
