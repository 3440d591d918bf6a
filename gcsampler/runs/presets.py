"""The experiments of Alexander et al. (NeurIPS 2025) as ready-made sweeps.

A preset exists for every figure of the paper and each of its three activations
(``fig1-linear``, ``fig2-tanh``, ``fig9-leaky_relu`` and so on), with the settings of
the published configs (YoniSlutzky98/nn-gd-gen-mf at 056dcb8, ``configs/width`` and
``configs/depth``; the repository's README maps them to figures). Every preset uses a
5x5 ground truth of unit norm, 8 seeds (each a fresh problem), one GD run per seed with
GroupRMSprop, and leaky ReLU slope 0.2.

- Odd figures sweep width (depth 2, widths 5 to 160): eps 0.02, 1e8 draws per seed,
  unnormalized prior, GD lr 1e-4 for 1e5 steps from init scale 1e-3.
- Even figures and fig11 sweep depth (width 5, depths 2 to 10): eps 0.0035, 1e9 draws
  per seed, normalized prior, GD lr 1e-2. GD steps and init scales depend on the
  activation: linear and tanh train 2e4 steps from init scale 1e-3 at depths 2-4, 0.1
  at 5-8 and 0.2 at 9-10; leaky ReLU trains 5e4 steps from 1e-3 at depths 2-4 and 0.1
  at 5-10.
- What each figure changes (``_FIGURES``): fig3/fig4 GD momentum 0.9; fig5/fig6 a
  rank-2 ground truth with 22 measurements instead of 15, and at depth (fig6) also eps
  0.01 and 5e4 GD steps for every activation; fig7/fig8 the uniform prior; fig9/fig10
  matrix completion; fig11 no normalization, with eps 0.01.

The published code never applies its momentum, so its fig3/fig4 ran without it;
``fig3-linear-as-run`` and the other ``-as-run`` presets run what was run (momentum 0).
What no preset can reproduce is in docs/conventions.md.
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


_COMMON = {"task": "sensing", "rows": 5, "cols": 5, "rank": 1, "gt_norm": 1.0,
           "measurements": 15, "prior": "gaussian", "leaky_slope": 0.2,
           "gd": True, "gd_optimizer": "grouprmsprop", "gd_momentum": 0.0, "gd_runs": 1,
           "gd_log_every": 1000}

_WIDTH_SWEEP = {
    "axis": "width",
    "values": (5, 10, 20, 40, 80, 160),
    "settings": {**_COMMON, "depth": 2, "eps": 0.02, "samples": 100_000_000, "normalize": False,
                 "gd_lr": 1e-4, "gd_steps": 100_000, "gd_init_scale": 1e-3},
}

_DEPTH_SWEEP = {
    "axis": "depth",
    "values": tuple(range(2, 11)),
    "settings": {**_COMMON, "width": 5, "eps": 0.0035, "samples": 1_000_000_000,
                 "normalize": True, "gd_lr": 1e-2},
}

# The depth sweeps' GD by activation: steps, and init scale at depths 2, 3, ..., 10.
_DEPTH_GD = {
    "linear": (20_000, (1e-3,) * 3 + (0.1,) * 4 + (0.2,) * 2),
    "tanh": (20_000, (1e-3,) * 3 + (0.1,) * 4 + (0.2,) * 2),
    "leaky_relu": (50_000, (1e-3,) * 3 + (0.1,) * 6),
}

_RANK_2 = {"rank": 2, "measurements": 22}

# figure -> (sweep, what the figure changes, description). A change wins over the sweep's
# settings and the activation's depth GD steps: fig6 trains 5e4 steps for every activation.
_FIGURES = {
    1: (_WIDTH_SWEEP, {}, "width sweep"),
    2: (_DEPTH_SWEEP, {}, "depth sweep, normalized prior"),
    3: (_WIDTH_SWEEP, {"gd_momentum": 0.9}, "width sweep, GD with momentum 0.9"),
    4: (_DEPTH_SWEEP, {"gd_momentum": 0.9}, "depth sweep, GD with momentum 0.9"),
    5: (_WIDTH_SWEEP, _RANK_2, "width sweep, rank-2 ground truth"),
    6: (_DEPTH_SWEEP, {**_RANK_2, "eps": 0.01, "gd_steps": 50_000},
        "depth sweep, rank-2 ground truth"),
    7: (_WIDTH_SWEEP, {"prior": "uniform"}, "width sweep, uniform prior"),
    8: (_DEPTH_SWEEP, {"prior": "uniform"}, "depth sweep, uniform prior"),
    9: (_WIDTH_SWEEP, {"task": "completion"}, "width sweep, matrix completion"),
    10: (_DEPTH_SWEEP, {"task": "completion"}, "depth sweep, matrix completion"),
    11: (_DEPTH_SWEEP, {"normalize": False, "eps": 0.01}, "depth sweep without normalization"),
}

# The published GroupRMSprop fills a velocity buffer but steps with the plain gradient, so
# its momentum figures ran without momentum: the "-as-run" presets of fig3 and fig4.
_AS_RUN_FIGURES = (3, 4)
_AS_RUN = {"gd_momentum": 0.0}
_AS_RUN_NOTE = "GD momentum 0.9 as run: none (the published optimizer never applies it)"


def _preset(name, figure, sweep, change, description, activation):
    settings = {**sweep["settings"], "activation": activation}
    per_value = {}
    if sweep["axis"] == "depth":
        steps, init_scales = _DEPTH_GD[activation]
        settings["gd_steps"] = steps
        per_value = {depth: {"gd_init_scale": scale}
                     for depth, scale in zip(sweep["values"], init_scales, strict=True)}
    return Preset(name=name, figure=f"Fig. {figure}", description=f"{description}, {activation}",
                  axis=sweep["axis"], values=sweep["values"],
                  settings=types.MappingProxyType({**settings, **change}),
                  per_value=types.MappingProxyType(per_value))


def _build():
    presets = {}
    for figure, (sweep, change, description) in _FIGURES.items():
        for activation in ACTIVATIONS:
            name = f"fig{figure}-{activation}"
            presets[name] = _preset(name, figure, sweep, change, description, activation)
        if figure in _AS_RUN_FIGURES:
            as_run = f"{sweep['axis']} sweep, {_AS_RUN_NOTE}"
            for activation in ACTIVATIONS:
                name = f"fig{figure}-{activation}-as-run"
                presets[name] = _preset(name, figure, sweep, {**change, **_AS_RUN}, as_run,
                                        activation)
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
    width = max(len(name) for name in PRESETS)
    lines = []
    for preset in PRESETS.values():
        values = ",".join(str(v) for v in preset.values)
        lines.append(f"{preset.name:<{width}} {preset.figure:<8} {preset.description}; "
                     f"{preset.axis} = {values}; {preset.settings['samples']:.0e} draws x "
                     f"{preset.seeds} seeds")
    return "\n".join(lines)
