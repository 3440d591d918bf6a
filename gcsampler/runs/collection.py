"""Tables across runs: one row per run directory, every setting and summary field a column.

:func:`run_rows` gathers run directories (given one by one, as sweep directories, or as
any directory holding runs) into flat dicts; :func:`load_runs` makes them a pandas
DataFrame and :func:`write_csv` a CSV file (``gcsampler table``). Intervals ``[lo, hi]``
become two columns ``NAME_lo`` and ``NAME_hi``; other lists (every GD run's loss, every
replicate's estimate) stay lists in the DataFrame and are JSON in the CSV.
"""

import csv
import io
import json
import pathlib

from gcsampler.runs import files, record, runner, summary as schema

# The columns every row starts with, in this order.
FIRST = ("run_dir", "status", "method", "task")
# What the printed table shows of each run (the CSV and the DataFrame have every column).
SHOWN = ("eps", "draws", "accepted", "log10_p", "gnc_gen_loss_mean", "gnc_gen_loss_stderr",
         "prior_gen_loss_mean", "gd_gen_loss", "gd_fitted")


def run_dirs(paths):
    """The run directories of ``paths``: each a run directory, a sweep directory (its
    cells) or any directory (every run below it), in order, without repeats."""
    found = []
    for path in map(pathlib.Path, paths):
        if (path / record.CONFIG_FILE).is_file():
            found.append(path)
        elif path.is_dir():
            below = sorted(p.parent for p in path.rglob(record.CONFIG_FILE))
            if not below:
                raise files.RunDirError(f"{path} holds no gcsampler run (no {record.CONFIG_FILE} "
                                        f"in it or below it)")
            found += below
        else:
            raise files.RunDirError(f"{path} is not a directory")
    return list(dict.fromkeys(found))


def run_row(run_dir):
    """One run's row: where it is, whether it finished, its settings, then its results."""
    rec, summary = runner.read_run(run_dir)
    row = {"run_dir": str(run_dir), "status": "finished" if summary else "unfinished",
           "method": rec["method"], "task": rec["task"].get("kind"), **rec["settings"]}
    for name, value in (summary or {}).items():
        field = schema.BY_NAME.get(name)
        if field is not None and field.unit.startswith("[") and value is not None:
            row[f"{name}_lo"], row[f"{name}_hi"] = value
        elif name != "run_dir":  # where the run was made from, not where it is now
            row[name] = value
    return row


def run_rows(paths):
    """The rows of every run in ``paths`` (see :func:`run_dirs`)."""
    return [run_row(run_dir) for run_dir in run_dirs(paths)]


def columns(rows):
    """Every column of ``rows``: :data:`FIRST`, then the others in order of appearance."""
    return list(dict.fromkeys([*FIRST, *(name for row in rows for name in row)]))


def load_runs(paths):
    """A pandas DataFrame of the runs in ``paths`` (run, sweep or other directories): one
    row per run, every setting and summary field a column (missing values NaN)."""
    try:
        import pandas
    except ImportError:
        raise ImportError("gcsampler.load_runs needs pandas: pip install 'gcsampler[pandas]'"
                          ) from None
    rows = run_rows(paths)
    return pandas.DataFrame(rows, columns=columns(rows))


def write_csv(rows, path):
    """Write ``rows`` as CSV (atomically), every column; lists as JSON."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: json.dumps(v) if isinstance(v, (list, dict)) else v
                      for k, v in row.items()} for row in rows)
    files.write_text(path, buffer.getvalue())


def text_table(rows):
    """A plain-text table of ``rows``: the run, the settings that differ between runs and
    the main results."""
    varying = [k for k in columns(rows) if k not in FIRST and k not in schema.BY_NAME
               and not k.endswith(("_lo", "_hi")) and _differ(row.get(k) for row in rows)]
    header = ["run", "status", *varying, *SHOWN]
    lines = [header] + [[row["run_dir"], row["status"],
                         *(_text(row.get(k)) for k in varying + list(SHOWN))] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in lines)


def _differ(values):
    """Whether scalar ``values`` are not all the same (lists and dicts never count)."""
    values = list(values)
    return (not any(isinstance(v, (list, dict)) for v in values)
            and len({json.dumps(v) for v in values}) > 1)


def _text(value):
    if value is None:
        return "-"
    return format(value, ".4g") if isinstance(value, float) else str(value)
