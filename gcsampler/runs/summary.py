"""The summary schema: every field a run's ``summary.json`` may hold, its unit and meaning.

``summary.json``, the ``report`` tables, a sweep's ``results.csv`` rows and its figures
all read these names and nothing else: :func:`complete` checks a summary against the
schema (an unknown field is a bug, a missing one is written as ``null``),
:func:`check` checks one read back (each field's :class:`Kind`), and :func:`csv_row`
flattens one for a table. Undefined values (no draw accepted, GD not run, a splitting
replicate that died out) are ``null`` in the files and NaN in Python. Probabilities are
given as log10, the base in the name.
"""

import json
import math
from typing import Callable, NamedTuple

BOTH = ("rejection", "splitting")
# What is added to a finished G&C's summary, in this order (its ``completed`` field).
PARTS = ("references", "gd")


class Kind(NamedTuple):
    """What a field's value may be: in words, and the test of a value read back."""

    text: str
    test: Callable


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _or_null(test):
    return lambda value: value is None or test(value)


def _list_of(test, length=None):
    return lambda value: (isinstance(value, list) and length in (None, len(value))
                          and all(test(item) for item in value))


def _is_text(value):
    return isinstance(value, str)


NUMBER = Kind("a number or null", _or_null(_is_number))
NONNEGATIVE = Kind("a number >= 0", lambda value: _is_number(value) and value >= 0)
LOG10_P = Kind("a number <= 0 or null", _or_null(lambda value: _is_number(value) and value <= 0))
COUNT = Kind("an integer >= 0", _is_count)
COUNTS = Kind("a list of integers >= 0", _list_of(_is_count))
PAIR = Kind("[lo, hi] (numbers or nulls)", _list_of(_or_null(_is_number), 2))
NUMBERS = Kind("a list of numbers or nulls", _list_of(_or_null(_is_number)))
RUNS = Kind("null or a list of numbers or nulls", _or_null(NUMBERS.test))
TEXT = Kind("a string", _is_text)
TEXT_OR_NULL = Kind("a string or null", _or_null(_is_text))
TEXTS = Kind("a list of strings", _list_of(_is_text))
FLAG = Kind("true, false or null", _or_null(lambda value: isinstance(value, bool)))
METHOD = Kind(" or ".join(BOTH), lambda value: isinstance(value, str) and value in BOTH)
POSITIVE = Kind("a positive number", lambda value: _is_number(value) and 0 < value < math.inf)
COMPLETED = Kind(f"null or a list of {', '.join(PARTS)}",
                 _or_null(_list_of(lambda value: isinstance(value, str) and value in PARTS)))


class Field(NamedTuple):
    """A summary field: its name, unit, meaning and the methods whose runs have it
    (``column``: whether a sweep's results.csv has it; pairs give ``_lo``/``_hi``), the
    :class:`Kind` of its value, and whether every summary of its methods must hold it
    (``required``: readers take it without a default)."""

    name: str
    unit: str
    meaning: str
    methods: tuple = BOTH
    column: bool = True
    kind: Kind = NUMBER
    required: bool = False


FIELDS = (
    Field("method", "", "how G&C ran: rejection (plain draws) or splitting (multilevel)",
          column=False, kind=METHOD, required=True),
    Field("eps", "train loss", "the acceptance threshold: train loss strictly below it "
                               "(compared in float32, eps rounded up)", column=False,
          kind=POSITIVE, required=True),
    Field("draws", "loss evaluations", "draws made (rejection) or particle loss evaluations "
                                       "(splitting)", kind=COUNT, required=True),
    Field("accepted", "draws", "accepted draws (rejection) or final particles below eps "
                               "(splitting): the G&C sample", kind=COUNT, required=True),
    Field("nonfinite", "draws", "draws whose train or gen loss was NaN or inf (never "
                                "accepted, in no mean); splitting: initial particles (the "
                                "prior draws; moves never keep a non-finite one)", kind=COUNT,
          required=True),
    Field("acceptance_rate", "probability", "estimate of p = P(train loss < eps) under the "
                                            "prior: accepted / draws (rejection), the "
                                            "splitting estimate (splitting)", required=True),
    Field("acceptance_ci95", "[lo, hi] probability", "95% interval of p: Wilson (rejection), "
                                                     "10 ** log10_p_ci95 (splitting)",
          kind=PAIR, required=True),
    Field("log10_p", "log10 probability", "log10 of the estimate of p (splitting: the mean of "
                                          "the replicates' log10 estimates)", kind=LOG10_P,
          required=True),
    Field("log10_p_ci95", "[lo, hi] log10 probability", "95% interval of log10 p: of the "
                                                         "Wilson interval (rejection), t "
                                                         "interval over replicates (splitting)",
          kind=PAIR, required=True),
    Field("gnc_gen_loss_mean", "gen loss", "G&C gen loss: mean over the accepted draws "
                                           "(splitting: of the replicates' means)", required=True),
    Field("gnc_gen_loss_std", "gen loss", "standard deviation over the accepted draws",
          ("rejection",)),
    Field("gnc_gen_loss_stderr", "gen loss", "standard error of gnc_gen_loss_mean (splitting: "
                                             "from the spread of the replicates)", required=True),
    Field("gnc_message", "", "why the G&C gen loss is missing (nothing accepted)",
          ("rejection",), column=False, kind=TEXT_OR_NULL),
    Field("prior_gen_loss_mean", "gen loss", "mean gen loss of prior draws: the chance level",
          required=True),
    Field("prior_gen_loss_std", "gen loss", "its standard deviation", ("rejection",)),
    Field("prior_gen_loss_stderr", "gen loss", "its standard error", ("rejection",), required=True),
    Field("sampler_used", "", "how draws were generated: the sampler ('auto' resolved; "
                              "splitting: splitting/<coordinates>)", kind=TEXT_OR_NULL),
    Field("seconds", "s", "G&C wall time (the longest process's; resumed runs: all parts), "
                          "compilation excluded",
          kind=NONNEGATIVE, required=True),
    Field("compile_seconds", "s", "time spent compiling the device programs before and "
                                  "during sampling (rejection: process 0; splitting: the "
                                  "longest process's; a resumed run: its last part); near 0 "
                                  "when JAX's compilation cache has it",
          ("rejection", "splitting")),
    Field("samples_per_second", "loss evaluations/s", "draws / seconds"),
    Field("processes", "", "processes that drew the run", column=False, kind=COUNT),
    Field("run_dir", "", "the run directory", column=False, kind=TEXT_OR_NULL),
    Field("min_nuclear_gen_loss", "gen loss", "gen loss of the minimum nuclear-norm "
                                              "interpolant (what GD from small init approaches)"),
    Field("min_nuclear_train_loss", "train loss", "its train loss (0 up to the solver's "
                                                  "tolerance)", column=False),
    Field("min_frobenius_gen_loss", "gen loss", "gen loss of the minimum Frobenius-norm "
                                                "interpolant A^+ y"),
    Field("min_frobenius_train_loss", "train loss", "its train loss", column=False),
    Field("gd_gen_loss", "gen loss", "GD's final gen loss, mean over its runs (null if any "
                                     "diverged or GD did not run)"),
    Field("gd_gen_loss_runs", "gen loss", "every GD run's final gen loss", column=False, kind=RUNS),
    Field("gd_train_loss", "train loss", "GD's final train loss, mean over its runs"),
    Field("gd_train_loss_runs", "train loss", "every GD run's final train loss",
          column=False, kind=RUNS),
    Field("gd_fitted", "", "every GD run fit the train data: final train loss below eps "
                           "(null if GD did not run); if not, GD's gen loss is no baseline",
          kind=FLAG),
    Field("gd_fitted_fraction", "", "the fraction of GD runs that fit"),
    Field("gd_seconds", "s", "GD wall time (a sweep: its vmapped program's time per seed)"),
    Field("completed", "", "what was added after G&C: 'references' (the min_* fields), 'gd' "
                           "(the gd_* fields and gd.npz); null: nothing yet", column=False,
          kind=COMPLETED),
    # splitting only
    Field("log10_p_stderr", "log10 probability", "standard error of log10_p over replicates",
          ("splitting",), required=True),
    Field("log10_p_formula_stderr", "log10 probability", "the standard error the level "
                                                         "formula (1 - q) / (q N) gives",
          ("splitting",), required=True),
    Field("log10_p_replicates", "log10 probability", "every replicate's log10 p estimate",
          ("splitting",), column=False, kind=NUMBERS, required=True),
    Field("spread_ratio", "", "replicates' spread of log p over the formula's",
          ("splitting",), required=True),
    Field("spread_flag", "", "spread_ratio above 1.5: moves may not decorrelate",
          ("splitting",), kind=FLAG),
    Field("accepted_per_replicate", "particles", "final particles below eps, per replicate",
          ("splitting",), column=False, kind=COUNTS),
    Field("gnc_gen_loss_replicates", "gen loss", "every replicate's mean gen loss below eps",
          ("splitting",), column=False, kind=NUMBERS),
    Field("particles", "", "particles per replicate (N)", ("splitting",), column=False,
          kind=COUNT, required=True),
    Field("replicates", "", "independent particle systems (R)", ("splitting",), column=False,
          kind=COUNT, required=True),
    Field("levels", "", "levels of the longest replicate", ("splitting",),
          kind=COUNT, required=True),
    Field("moves_per_level_mean", "sweeps", "moves per particle per level, mean over levels",
          ("splitting",), kind=NONNEGATIVE, required=True),
    Field("moves_per_level_max", "sweeps", "the most at one level", ("splitting",),
          kind=COUNT, required=True),
    Field("proposals_per_move", "loss evaluations", "loss evaluations per move, mean",
          ("splitting",), kind=NONNEGATIVE, required=True),
    Field("proposals_per_move_max", "loss evaluations", "the most one move made",
          ("splitting",), kind=COUNT),
    Field("capped_moves", "moves", "moves that stayed put at the proposal cap", ("splitting",),
          kind=COUNT, required=True),
    Field("final_correlation_max", "", "worst level's decorrelation statistic after its "
                                       "moves (0: decorrelated, 1: not moved)", ("splitting",),
          required=True),
    Field("ancestors_min", "particles", "fewest distinct initial particles left at eps in a "
                                        "replicate", ("splitting",), kind=COUNT, required=True),
    Field("latent", "", "the Gaussian coordinates particles move in", ("splitting",),
          column=False, kind=TEXT, required=True),
    Field("move", "", "the move kernel", ("splitting",), column=False, kind=TEXT, required=True),
    Field("fiber_moves", "", "the moves along the level set made after it",
          ("splitting",), column=False, kind=TEXTS, required=True),
    Field("rotation_moves", "moves", "layer rotations made after those in each sweep",
          ("splitting",), column=False, kind=COUNT),
    Field("converged", "", "every replicate reached eps within the level cap",
          ("splitting",), kind=FLAG),
    Field("splitting_message", "", "what looks wrong, if anything ('' if nothing)",
          ("splitting",), column=False, kind=TEXT_OR_NULL),
)
BY_NAME = {field.name: field for field in FIELDS}
LN10 = math.log(10)


def complete(summary):
    """``summary`` checked against the schema: every field of its method present (None
    where undefined), in schema order; ValueError for a field the schema lacks."""
    unknown = set(summary) - set(BY_NAME)
    if unknown:
        raise ValueError(f"summary fields not in the schema: {', '.join(sorted(unknown))}")
    method = summary["method"]
    return {f.name: summary.get(f.name) for f in FIELDS if method in f.methods}


def check(summary):
    """ValueError naming the first field of ``summary`` (a dict read back from
    ``summary.json``) that is unknown, missing where readers need it, or not of its
    :class:`Kind`, e.g. 'field accepted: expected an integer >= 0, got "many"'."""
    unknown = sorted(set(summary) - set(BY_NAME))
    if unknown:
        raise ValueError(f"field {unknown[0]}: not a field of the summary schema")
    for field in FIELDS:  # method first: it says which fields the others are
        if field.name != "method" and summary["method"] not in field.methods:
            continue
        if field.name not in summary:
            if field.required:
                raise ValueError(f"field {field.name}: missing")
        elif not field.kind.test(summary[field.name]):
            raise ValueError(f"field {field.name}: expected {field.kind.text}, got "
                             f"{json.dumps(summary[field.name])[:60]}")
    if summary.get("gd_fitted") is False and None in (summary.get("gd_gen_loss_runs"),
                                                      summary.get("gd_fitted_fraction")):
        raise ValueError("field gd_fitted: false needs gd_gen_loss_runs and gd_fitted_fraction")


def columns():
    """The result columns of a sweep's results.csv, in order (pairs as ``_lo``, ``_hi``)."""
    names = []
    for field in FIELDS:
        if field.column:
            names += ([f"{field.name}_lo", f"{field.name}_hi"] if field.unit.startswith("[")
                      else [field.name])
    return names


def csv_row(summary):
    """The results.csv values of a summary: pairs split, missing values NaN."""
    row = {}
    for field in FIELDS:
        if not field.column:
            continue
        value = summary.get(field.name)
        if field.unit.startswith("["):
            lo, hi = value if value is not None else (None, None)
            row[f"{field.name}_lo"], row[f"{field.name}_hi"] = _number(lo), _number(hi)
        else:
            row[field.name] = _number(value)
    return row


def _number(value):
    return math.nan if value is None else value
