"""The ``gcsampler`` command: run, report, sweep, classify, plot, regenerate, verify, table.

Flags are absl flags (so ``--flagfile`` works), parsed per subcommand through
``absl.flags.argparse_flags`` (:mod:`.flags`); each command is a thin function of its
parsed flags (:mod:`.commands`). Every bad input ends in one line on stderr and exit
code 2; nothing on disk is touched before the input has been checked.
"""

import sys

from absl import flags as absl_flags
from absl.flags import argparse_flags

from gcsampler.cli import classify_commands, commands, flags
from gcsampler.cli.flags import UsageError
from gcsampler.runs import checkpoint, distributed, files


class ArgumentParser(argparse_flags.ArgumentParser):
    """argparse_flags parser whose errors are one line and exit with code 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def build_parser():
    parser = ArgumentParser(prog="gcsampler", inherited_absl_flags=None, allow_abbrev=False,
                            description="Guess & Check sampling of deep matrix factorizations.")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                        parser_class=ArgumentParser)
    subcommands.required = True
    _add_command(subcommands, "run", flags.RUN_FLAGS + flags.RUN_CONTROL_FLAGS,
                 commands.run_command, "run G&C and the GD baseline, write a run directory",
                 description="Draw weight settings from the prior, keep those that fit the "
                             "training measurements (train loss < eps), and compare with "
                             "gradient descent.")
    _add_command(subcommands, "report", flags.REPORT_FLAGS, commands.report_command,
                 "print a run's results, optionally re-thresholded",
                 positional=("run_dir", "RUN"))
    _add_command(subcommands, "sweep", flags.sweep_flag_rows(), commands.sweep_command,
                 "vary one setting over values and seeds: G&C, GD and references per cell",
                 description="Run G&C, GD and the reference solutions for every (value, seed) "
                             "cell of a sweep; write one run directory per cell, results.csv "
                             "and the figures.")
    _add_command(subcommands, "classify", flags.classify_flag_rows(), classify_commands.classify_command,
                 "G&C vs gradient training of small classifiers across training-set sizes",
                 description="Guess & Check on small classifiers (Chiang et al. 2023): per "
                             "training-set size and seed, the test accuracy of networks drawn "
                             "from the prior that fit the training set with a cross-entropy in "
                             "each bin, against SGD or Adam on the same network.")
    _add_command(subcommands, "plot", flags.PLOT_FLAGS, commands.plot_command,
                 "redraw a sweep's figures (another eps or y-axis)",
                 positional=("sweep_dir", "SWEEP"))
    _add_command(subcommands, "regenerate", flags.REGENERATE_FLAGS, commands.regenerate_command,
                 "write the full weights of one draw to .npz", positional=("run_dir", "RUN"))
    _add_command(subcommands, "verify", flags.VERIFY_FLAGS, commands.verify_command,
                 "check a run against its checksums; --repair redraws what was lost",
                 positional=("run_dir", "RUN"),
                 description="Check every part of a run: each array's rows against the "
                             "checksums recorded when they were written, the checkpoints, "
                             "statistics and summary. Exit 0 when intact, 1 when damaged. "
                             "--repair redraws damaged rows exactly (draws are a pure "
                             "function of seed and index).")
    _add_command(subcommands, "table", flags.TABLE_FLAGS, commands.table_command,
                 "one table of many runs: every setting and result, printed or as CSV",
                 positional=("paths", "RUN_OR_SWEEP", "+"),
                 description="One line per run for each run directory, sweep directory (its "
                             "cells) or directory holding runs given: the settings that differ "
                             "and the main results; --csv writes every column.")
    return parser


def _add_command(subcommands, name, flag_rows, handler, help_text, *, positional=None,
                 description=None):
    """A subcommand with its own absl flags; ``positional``: its argument's (dest, metavar[,
    nargs])."""
    values = flags.flag_values(flag_rows)
    command = subcommands.add_parser(name, help=help_text, description=description,
                                     inherited_absl_flags=values, allow_abbrev=False)
    if positional is not None:
        dest, metavar, *nargs = positional
        command.add_argument(dest, metavar=metavar, nargs=nargs[0] if nargs else None)
    command.set_defaults(handler=handler, flag_values=values)


def main(argv=None):
    """Entry point; returns the exit code."""
    argv = [_underscored(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    command = f"gcsampler {argv[0]}" if argv and not argv[0].startswith("-") else "gcsampler"
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args, args.flag_values)
    except UsageError as err:
        message = str(err)
        if message.startswith("gcsampler: "):  # errors found by the top-level parser
            message = f"{command}: {message[len('gcsampler: '):]}"
        _fail(message, 2)
    except (files.RunDirError, absl_flags.Error) as err:
        _fail(f"{command}: {err}", 2)
    except checkpoint.Interrupted as err:
        _fail(f"{command}: {err}", 128 + err.signal)
    except KeyboardInterrupt:
        _fail(f"{command}: interrupted", 130)


def _underscored(arg):
    """``--list-presets`` -> ``--list_presets``: flags may be written with - or _."""
    if not arg.startswith("--"):
        return arg
    name, equals, value = arg[2:].partition("=")
    return "--" + name.replace("-", "_") + equals + value


def _fail(message, code):
    sys.stderr.write(message.splitlines()[0] if message else "error")
    sys.stderr.write("\n")
    distributed.fail(code)  # a multi-process run ends here, telling the other processes
    sys.exit(code)
