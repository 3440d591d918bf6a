"""A user's own prior, activation and problem: from Python as objects, from the command line
as MODULE:ATTR, in sweeps; runs record them, resume only with the same ones, and give the
same bits as runs without a stop."""

import dataclasses
import io

import numpy as np
import pytest

import gcsampler as gcs
from gcsampler import cli
from gcsampler.runs import files

import custom_pieces
from same_results import assert_same_results

SMALL = ["--samples", "3000", "--log2_block", "8", "--devices", "1", "--nogd", "--eps", "0.2"]
MODEL = gcs.factorization(5, 5, 2, 5, custom_pieces.softsign)
SETTINGS = dict(eps=0.2, samples=3000, log2_block=8, devices="1", gd=False)


def quiet(**kwargs):
    return dict(stream=io.StringIO(), checkpoint_every=0, **kwargs)


def test_the_command_line_takes_pieces_by_module_and_attribute(tmp_path, capsys):
    run_dir, longer = tmp_path / "run", tmp_path / "longer"
    pieces = ["--prior", "custom_pieces:laplace", "--activation", "custom_pieces:softsign",
              "--task", "custom_pieces:problem"]
    assert cli.main(["run", *pieces, *SMALL, "--out", str(run_dir)]) == 0
    record = files.read_json(run_dir / "config.json")
    assert record["settings"]["prior"] == "custom_pieces:laplace"
    assert record["pieces"]["python"] == [] and record["task"]["sampler"] == "direct"
    assert len(record["pieces"]["probes"]["task"]) == 8 + 3    # 12 observed entries
    assert "acceptance" in capsys.readouterr().out
    # resumed by name (rebuilt by import) to more draws: the bits of the longer run
    assert cli.main(["run", "--resume", str(run_dir), "--samples", "6000"]) == 0
    assert cli.main(["run", *pieces, *SMALL[2:], "--samples", "6000", "--out",
                     str(longer)]) == 0
    assert_same_results(run_dir, longer)


@pytest.mark.parametrize("flag, value, message", [
    ("--prior", "custom_pieces:not_a_piece", "neither a Prior nor a layer sampler"),
    ("--prior", "custom_pieces:nothing", "custom_pieces has no attribute nothing"),
    ("--activation", "no_such_module_xyz:f", "cannot import no_such_module_xyz"),
    ("--task", "custom_pieces:softsign", "cannot make a problem from matrix_sensing's"),
    ("--task", "custom_pieces:not_a_problem", "returned int, not a Problem"),
    ("--activation", "custom_pieces:row_sum", "must be elementwise"),
    ("--activation", "custom_pieces", "--activation must be one of"),
])
def test_bad_references_are_one_line_errors(flag, value, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", flag, value, *SMALL, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_python_objects_are_given_again_to_resume(tmp_path):
    problem = gcs.from_arrays(*_arrays())
    run_dir, longer = tmp_path / "run", tmp_path / "longer"
    summary = gcs.run(problem, MODEL, custom_pieces.laplace, out=run_dir, **quiet(**SETTINGS))
    record = files.read_json(run_dir / "config.json")
    assert record["pieces"]["python"] == ["task", "activation", "prior"]
    assert record["settings"]["task"] == "python" and summary["sampler_used"] == "direct"
    with pytest.raises(ValueError, match="given as Python object"):
        gcs.resume(run_dir, samples=6000)
    other = gcs.custom(lambda key, shape, dtype: 2.0 * custom_pieces.laplace.sample_layer(
        key, shape, dtype), name="laplace")
    with pytest.raises(ValueError, match="prior given is not the one this run was made with"):
        gcs.resume(run_dir, problem=problem, model=MODEL, prior=other, samples=6000)
    gcs.resume(run_dir, problem=problem, model=MODEL, prior=custom_pieces.laplace,
               **quiet(samples=6000))
    gcs.run(problem, MODEL, custom_pieces.laplace, out=longer,
            **quiet(**{**SETTINGS, "samples": 6000}))
    assert_same_results(run_dir, longer)
    text = gcs.report(run_dir, eps=0.1)
    assert "acceptance" in text and "re-threshold at eps=0.1" in text


@pytest.mark.parametrize("seed, resumes", [(0, True), (2, False)])
def test_a_python_run_resumes_from_the_command_line_with_the_same_pieces(seed, resumes, tmp_path,
                                                                        capsys):
    """The problem of seed 2 is not what --task custom_pieces:problem makes (seed 0)."""
    run_dir = tmp_path / "run"
    gcs.run(custom_pieces.problem(seed=seed), MODEL, custom_pieces.laplace, out=run_dir,
            **quiet(**SETTINGS))
    with pytest.raises(SystemExit):
        cli.main(["run", "--resume", str(run_dir), "--samples", "6000"])
    assert "--task MODULE:ATTR" in capsys.readouterr().err
    named = ["run", "--resume", str(run_dir), "--samples", "6000", "--prior",
             "custom_pieces:laplace", "--activation", "custom_pieces:softsign", "--task",
             "custom_pieces:problem"]
    if resumes:
        assert cli.main(named) == 0
    else:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(named)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "task given is not the one" in err, err
    assert files.read_json(run_dir / "summary.json")["draws"] == (6000 if resumes else 3000)


def _arrays():
    rng = np.random.default_rng(5)
    ops = rng.standard_normal((25, 5, 5))
    truth = rng.standard_normal((5, 1)) @ rng.standard_normal((1, 5))
    labels = np.einsum("kij,ij->k", ops, truth / np.linalg.norm(truth))
    return ops[:15], labels[:15], ops[15:], labels[15:]


def test_sweeps_take_pieces_and_factories(tmp_path):
    spec = gcs.SweepSpec(axis="width", values=(5, 6), seeds=2,
                         settings={**SETTINGS, "samples": 2000})
    rows = gcs.run_sweep(spec, tmp_path / "sweep", stream=io.StringIO(),
                         prior=custom_pieces.laplace,
                         model=lambda cfg: gcs.factorization(5, 5, cfg.depth, cfg.width,
                                                             custom_pieces.softsign))
    assert [(row["width"], row["seed"]) for row in rows] == [(5, 0), (5, 1), (6, 0), (6, 1)]
    assert {row["prior"] for row in rows} == {"laplace"}
    assert {row["activation"] for row in rows} == {"softsign"}
    cell = files.read_json(tmp_path / "sweep" / rows[0]["run_dir"] / "config.json")
    assert cell["pieces"]["python"] == ["activation", "prior"]
    _, loaded = gcs.load_sweep(tmp_path / "sweep")
    assert [row["gnc_gen_loss_mean"] for row in loaded] == pytest.approx(
        [row["gnc_gen_loss_mean"] for row in rows], nan_ok=True)
    # A sweep of objects resumes with the same objects (checked by their probes): its
    # finished cells are kept; another definition is refused.
    def model(cfg):
        return gcs.factorization(5, 5, cfg.depth, cfg.width, custom_pieces.softsign)

    again = gcs.run_sweep(spec, tmp_path / "sweep", stream=io.StringIO(), resume=True,
                          prior=custom_pieces.laplace, model=model)
    assert again == loaded
    with pytest.raises(ValueError, match="is a sweep of other values: a resumed sweep keeps"):
        gcs.run_sweep(dataclasses.replace(spec, values=(5, 7)), tmp_path / "sweep",
                      stream=io.StringIO(), resume=True, prior=custom_pieces.laplace,
                      model=model)
