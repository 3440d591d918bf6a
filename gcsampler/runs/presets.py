"""The experiments of Alexander et al. (NeurIPS 2025) as ready-made sweeps.

Every figure of the paper is a width sweep (depth 2, widths 5 to 160, eps 0.02,
1e8 draws per seed, GD lr 1e-4 for 1e5 steps from init scale 1e-3) or a depth
sweep (width 5, depths 2 to 10, eps 0.0035, 1e9 draws per seed, normalized prior,
GD lr 1e-2 for 2e4 steps from an init scale that grows with depth), with 8 seeds
per setting, each seed a fresh problem, and one GD run per seed. The ablations
change one thing each. A preset exists for every figure and each of the paper's
three activations: ``fig1-linear``, ``fig2-tanh``, ``fig9-leaky_relu`` and so on.
Settings follow the paper's published code (see docs/conventions.md).
"""

import dataclasses
import types

ACTIVATIONS = ("linear", "tanh", "leaky_relu")
SEEDS = 8


@dataclasses.dataclass(frozen=True)
class Preset:
    """A sweep of the paper: ``axis`` over ``values``, each under ``settings``.

    ``settings`` are :class:`gcsampler.runs.config.RunConfig` fields; ``per_value``
    maps a swept value to the settings that depend on it (the depth sweep's GD
    init scale).
    """

    name: str
    figure: str
    description: str
    axis: str
    values: tuple
    settings: types.MappingProxyType
    per_value: types.MappingProxyType
    seeds: int = SEEDS


_GD_COMMON = {"gd": True, "gd_optimizer": "grouprmsprop", "gd_runs": 1, "gd_log_every": 1000}

_WIDTH_SWEEP = {
    "axis": "width",
    "values": (5, 10, 20, 40, 80, 160),
    "settings": {"depth": 2, "eps": 0.02, "samples": 100_000_000, "normalize": False,
                 "gd_lr": 1e-4, "gd_steps": 100_000, "gd_init_scale": 1e-3, **_GD_COMMON},
    "per_value": {},
}


def _depth_init_scale(depth):
    """GD init scale of the depth sweep: 1e-3 for depths 2-4, 0.1 for 5-8, 0.2 for 9-10."""
    return 1e-3 if depth <= 4 else 0.1 if depth <= 8 else 0.2


_DEPTH_VALUES = tuple(range(2, 11))
_DEPTH_SWEEP = {
    "axis": "depth",
    "values": _DEPTH_VALUES,
    "settings": {"width": 5, "eps": 0.0035, "samples": 1_000_000_000, "normalize": True,
                 "gd_lr": 1e-2, "gd_steps": 20_000, **_GD_COMMON},
    "per_value": {d: {"gd_init_scale": _depth_init_scale(d)} for d in _DEPTH_VALUES},
}

# figure -> (sweep, what changes, description)
_FIGURES = {
    1: (_WIDTH_SWEEP, {}, "width sweep"),
    2: (_DEPTH_SWEEP, {}, "depth sweep, normalized prior"),
    3: (_WIDTH_SWEEP, {"gd_momentum": 0.9}, "width sweep, GD with momentum 0.9"),
    4: (_DEPTH_SWEEP, {"gd_momentum": 0.9}, "depth sweep, GD with momentum 0.9"),
    5: (_WIDTH_SWEEP, {"rank": 2}, "width sweep, rank-2 ground truth"),
    6: (_DEPTH_SWEEP, {"rank": 2}, "depth sweep, rank-2 ground truth"),
    7: (_WIDTH_SWEEP, {"prior": "uniform"}, "width sweep, uniform prior"),
    8: (_DEPTH_SWEEP, {"prior": "uniform"}, "depth sweep, uniform prior"),
    9: (_WIDTH_SWEEP, {"task": "completion"}, "width sweep, matrix completion"),
    10: (_DEPTH_SWEEP, {"task": "completion"}, "depth sweep, matrix completion"),
    11: (_DEPTH_SWEEP, {"normalize": False}, "depth sweep without normalization"),
}


def _build():
    presets = {}
    for figure, (sweep, change, description) in _FIGURES.items():
        for activation in ACTIVATIONS:
            name = f"fig{figure}-{activation}"
            presets[name] = Preset(
                name=name, figure=f"Fig. {figure}", description=f"{description}, {activation}",
                axis=sweep["axis"], values=sweep["values"],
                settings=types.MappingProxyType(
                    {**sweep["settings"], **change, "activation": activation}),
                per_value=types.MappingProxyType(sweep["per_value"]))
    return types.MappingProxyType(presets)


PRESETS = _build()


def get(name):
    """The preset called ``name``; ValueError naming the allowed ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESETS)} (see --list_presets), "
                         f"got {name!r}")
    return PRESETS[name]


def listing():
    """One line per preset: name, figure, what it sweeps, draws per seed."""
    lines = []
    for preset in PRESETS.values():
        values = ",".join(str(v) for v in preset.values)
        lines.append(f"{preset.name:<18} {preset.figure:<8} {preset.description}; "
                     f"{preset.axis} = {values}; {preset.settings['samples']:.0e} draws x "
                     f"{preset.seeds} seeds")
    return "\n".join(lines)
