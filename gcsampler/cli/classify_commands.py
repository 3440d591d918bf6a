"""``gcsampler classify``: the classifier study, new or resumed, from its parsed flags."""

import dataclasses
import pathlib

from gcsampler import plots
from gcsampler.cli import flags, setup
from gcsampler.cli.flags import UsageError
from gcsampler.runs import classify_presets, classify_study


def classify_command(args, values):
    if values.list_presets:
        print(classify_presets.preset_listing())
        return 0
    every = setup.checkpoint_every(values, "classify")
    if values.resume is not None:
        return _resume_study(values, every)
    cfg = classify_config(values)
    setup.start_process(values, "classify")
    setup.check_devices(cfg.devices, command="classify")
    cells = _cells(cfg)
    name = values.preset or cfg.task
    out = setup.out_dir(values, f"classify-{name}")
    _print_study(classify_study.run(cfg, out, cells=cells, checkpoint_every=every), out, cfg)
    return 0


def _cells(cfg):
    """The study's cells, each checked (before anything is written)."""
    try:
        return classify_study.make_cells(cfg)
    except (ValueError, ImportError) as err:  # ImportError: digits without scikit-learn
        raise UsageError(f"gcsampler classify: {err}") from None


def _resume_study(values, every):
    """`gcsampler classify --resume STUDY`: continue STUDY (--batch and --devices may
    change, other flags must agree with its study.json)."""
    if values.out is not None or values.preset is not None:
        raise UsageError("gcsampler classify: --out and --preset cannot be combined with "
                         "--resume (a resumed study keeps its directory and settings)")
    out = pathlib.Path(values.resume)
    recorded = classify_study.load_config(out)
    fields = [f.name for f in dataclasses.fields(classify_study.StudyConfig)]
    given = _study_settings(values, [name for name in fields if values[name].present])
    changed = [name for name, value in given.items()
               if name not in ("batch", "devices") and value != getattr(recorded, name)]
    if changed:
        raise UsageError(f"gcsampler classify: cannot resume {out} with "
                         f"{' '.join(f'--{n}={values[n].value}' for n in changed)}: it ran with "
                         f"{' '.join(f'--{n}={getattr(recorded, n)}' for n in changed)}; start "
                         f"a new study instead")
    cfg = dataclasses.replace(recorded, **{k: v for k, v in given.items()
                                           if k in ("batch", "devices")})
    setup.start_process(values, "classify")
    setup.check_devices(cfg.devices, command="classify")
    rows = classify_study.run(cfg, out, cells=_cells(cfg), resume=True, checkpoint_every=every)
    _print_study(rows, out, cfg)
    return 0


def _print_study(rows, out, cfg):
    if not setup.leader(out):
        return
    print(classify_study.table(rows))
    print(f"results: {out / classify_study.RESULTS_FILE}")
    if not plots.available():
        print(plots.INSTALL_HINT)
        return
    for path in plots.plot_study(rows, out, cfg):
        print(f"figure: {path}")


def classify_config(values):
    """The StudyConfig of parsed `classify` flags: preset, then the flags given."""
    settings = {}
    if values.preset is not None:
        if values.preset not in classify_presets.PRESETS:
            raise UsageError(f"gcsampler classify: --preset must be one of "
                             f"{', '.join(classify_presets.PRESETS)}, got {values.preset!r}")
        settings.update(classify_presets.PRESETS[values.preset][1])
    fields = [f.name for f in dataclasses.fields(classify_study.StudyConfig)]
    settings.update(_study_settings(values, [name for name in fields if values[name].present
                                             or name not in settings]))
    try:
        return classify_study.StudyConfig(**settings).validate()
    except ValueError as err:
        raise UsageError(f"gcsampler classify: {err}") from None


def _study_settings(values, names):
    """StudyConfig settings from the flags ``names``, parsed (counts, sizes, bins)."""
    given = {name: values[name].value for name in names}
    if isinstance(given.get("samples"), str) and "," in given["samples"]:
        given["samples"] = tuple(flags.parse_count("samples", text, command="classify")
                                 for text in given["samples"].split(","))
    settings = flags.parsed_counts(given, "classify")
    try:
        if isinstance(settings.get("n_train"), str):
            settings["n_train"] = tuple(int(v) for v in settings["n_train"].split(","))
    except ValueError:
        raise UsageError(f"gcsampler classify: --n_train must be comma-separated even integers, "
                         f"got {values.n_train!r}") from None
    try:
        if isinstance(settings.get("bins"), str):
            settings["bins"] = tuple(tuple(float(x) for x in pair.split(":"))
                                     for pair in settings["bins"].split(","))
    except ValueError:
        raise UsageError(f"gcsampler classify: --bins must be LO:HI pairs separated by commas, "
                         f"got {values.bins!r}") from None
    return settings
