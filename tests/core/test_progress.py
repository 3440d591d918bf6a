"""The progress line: shown when asked (by default on a terminal), and a run that will take
more than an hour says so after its first update."""

import io

from gcsampler.core import progress
from gcsampler.factorization import task

from conftest import EPS, LOG2_BLOCK, SAMPLES


def test_a_long_run_says_how_long_after_its_first_update():
    stream = io.StringIO()
    shown = progress.Progress(10**10, stream)
    shown.show(10**5, 3, 1.0)          # 1e5 draws/s: about 28 hours to go
    shown.show(2 * 10**5, 5, 2.0)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("G&C  100k/10G draws")
    assert lines[1] == "G&C: about 27h46m to go at the measured 100k samples/s"
    assert len([line for line in lines if "to go" in line]) == 1


def test_a_short_run_does_not_warn():
    stream = io.StringIO()
    progress.Progress(10**6, stream).show(10**5, 3, 1.0)
    assert "to go" not in stream.getvalue()


def test_progress_defaults_to_whether_the_stream_is_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert progress.shows_progress(None, Terminal()) and not progress.shows_progress(
        None, io.StringIO())
    assert progress.shows_progress(True, io.StringIO()) and not progress.shows_progress(
        False, Terminal())


def test_guess_and_check_shows_progress_when_asked(sensing_problem, linear_model,
                                                   gaussian_prior, capsys):
    kwargs = dict(eps=EPS, samples=SAMPLES, log2_block=LOG2_BLOCK, seed=3)
    result = task.guess_and_check(sensing_problem, linear_model, gaussian_prior,
                                  progress=True, **kwargs)
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("G&C  3k/3k draws (100.0%)") and "samples/s" in line
    assert f"accepted {result.totals.rows}" in line and "ETA 0s" in line
    task.guess_and_check(sensing_problem, linear_model, gaussian_prior, progress=False,
                         **kwargs)
    assert capsys.readouterr().err == ""
