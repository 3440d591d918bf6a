"""`gcsampler ARGV` called in the test's own process, for tests that read its exit code
and output."""

from gcsampler import cli


def cli_run(argv, capsys):
    """Exit code and captured output (``.out``, ``.err``) of ``gcsampler ARGV``."""
    try:
        code = cli.main([str(arg) for arg in argv])
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr()
