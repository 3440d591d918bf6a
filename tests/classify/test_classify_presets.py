"""The classifier study's published presets, pinned against the published settings of
Chiang et al. (ICLR 2023): every value below is written out as it appears in the public
repository Ping-C/optimizer (the config file or source file each comes from is named beside
it), and checked against what the preset resolves to (``StudyConfig(...).validate()``) and
the network and data of one of its cells (``make_cells``). What a preset deliberately scales
down to run on a CPU must be said in its description."""

import math
import re

import jax
import numpy as np
import pytest

from gcsampler import cli
from gcsampler.classify import baselines, data, networks
from gcsampler.runs import classify_presets
from gcsampler.runs import classify_study as study

# configs/table2/mnist_guess.yaml and mnist_sgd.yaml: loss_thres
# "0.3,0.35,0.4,0.45,0.5,0.55,0.6,0.65", consecutive thresholds as the bins (lo, hi].
MNIST_BINS = ((0.3, 0.35), (0.35, 0.4), (0.4, 0.45), (0.45, 0.5), (0.5, 0.55), (0.55, 0.6),
              (0.6, 0.65))
# configs/figure2/*_u10.yaml and configs/figure3/slab_guess.yaml: loss_thres "-999,999",
# any perfect fit.
ANY_FIT = ((-999.0, 999.0),)

PUBLISHED = {
    "mnist-lenet": dict(
        task="mnist",              # table2/mnist_*.yaml dataset.name mnist, num_classes 2
        model="lenet",             # model.arch lenet
        lenet_width=0.5,           # model.lenet.width 0.5
        padding="VALID",           # utils.py LeNetModels: nn.Conv2d(..., 5), no padding
        prior="uniform",           # optimizer guess; model.init default "uniform": U(-1, 1)
        logits="normalized",       # utils.py LeNetModels.forward_normalize
        bins=MNIST_BINS,           # distributed.loss_thres
        baseline="sgd",            # table2/mnist_sgd.yaml optimizer.name SGD (momentum 0)
        baseline_protocol="published",
        baseline_lr=0.001,         # optimizer.lr 0.001
        baseline_epochs=30,        # optimizer.epochs 30
        baseline_batch_size=2,     # optimizer.batch_size 2
        baseline_init="uniform",   # model.init default "uniform" (train_distributed.py)
    ),
    "kink-published": dict(
        task="published_kink",     # figure2/*_u10.yaml dataset.name kink, margin 0.25, noise 0
        first_seed=0,              # distributed.data_seed 0
        model="mlp", depth=1,      # model.arch mlp, mlp.layers 1
        width=10,                  # mlp.hidden_units 10
        hidden_biases=False,       # utils.py MLPModels: no hidden biases, an output bias
        activation="relu",         # MLPModels.forward: torch.clamp(x, 0)
        prior="uniform",           # guess_u10.yaml: MLPModels' own U(-1, 1) draws
        logits="normalized",       # MLPModels.forward_normalize: f / prod ||W||_F
        bins=ANY_FIT,              # loss_thres "-999,999"
        baseline="sgd",            # sgd_u10.yaml optimizer.name SGD
        baseline_protocol="published",
        baseline_lr=0.1,           # optimizer.lr 0.1
        baseline_epochs=200,       # optimizer.epochs 200
        baseline_batch_size=3,     # optimizer.batch_size 3
        baseline_init="fan_out",   # model.init "regular": MLPModels.reset_parameters
    ),
    "slab-published": dict(
        task="published_slab",     # figure3/slab_guess.yaml dataset.name slab
        first_seed=100,            # dataset.seed 100, + 1 per run (sql.py get_next_config)
        model="mlp", depth=1,      # model.arch mlp, mlp.layers 1
        width=40,                  # mlp.hidden_units 40
        hidden_biases=False,       # utils.py MLPModels
        activation="relu",
        prior="uniform",           # optimizer guess (the default): MLPModels' U(-1, 1)
        logits="normalized",       # MLPModels.forward_normalize
        bins=ANY_FIT,              # loss_thres -999,999
        baseline="none",           # a guess-only config
    ),
}

# Published settings a preset may scale down for a CPU, saying so in its description
# ("CPU-sized" and the value it uses instead). Each is the set of published values.
SCALABLE = {
    "mnist-lenet": dict(
        n_train={(2, 4, 8, 16, 32)},   # table2/mnist_*.yaml distributed.num_samples
        # one data seed per run: target_model_count 200 over target_model_count_subrun 10
        # (mnist_guess.yaml: 20 G&C runs) or 20 (mnist_sgd.yaml: 10 SGD runs)
        seeds={20, 10},
        baseline_models={20},          # mnist_sgd.yaml target_model_count_subrun 20
    ),
    "kink-published": dict(
        n_train={(11,)},               # figure2 num_samples "16": int(16 * 0.7) = 11 points
        seeds={1},                     # data_seed 0 only
        baseline_models={50_000},      # sgd_u10.yaml target_model_count 50000
    ),
    "slab-published": dict(
        n_train={(140,)},              # figure3 num_samples '200': int(200 * 0.7) = 140
        seeds={10_000},                # target_model_count 10000 over _subrun 1
    ),
}
# Settings with no published counterpart, always CPU-sized: G&C draws per cell (the
# published runs draw until their target count of models lands) and the most SGD runs tried
# per bin (the published runs have no cap).
ALWAYS_SCALED = ("samples", "baseline_max_runs")

def resolved(name):
    return study.StudyConfig(**classify_presets.PRESETS[name][1]).validate()


def first_cell(cfg):
    cells = study.make_cells(cfg)
    assert len(cells) == len(cfg.n_train) * cfg.seeds
    return cells[0]


def test_the_published_presets_are_listed(capsys):
    assert set(PUBLISHED) <= set(classify_presets.PRESETS)
    assert cli.main(["classify", "--list_presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, (text, _) in classify_presets.PRESETS.items():
        (line,) = [line for line in lines if line.split()[0] == name]
        assert line.endswith(text)


@pytest.mark.parametrize("name", PUBLISHED)
def test_a_published_preset_resolves_to_the_published_settings(name):
    cfg = resolved(name)
    for field, value in PUBLISHED[name].items():
        assert getattr(cfg, field) == value, field


def test_mnist_lenet_network_and_data():
    cfg = resolved("mnist-lenet")
    cell = first_cell(cfg)
    assert (cell.n_train, cell.seed) == (2, 0)
    # utils.py LeNetModels at width 0.5 on 28x28 MNIST: int(6 * 0.5) = 3 and int(16 * 0.5) = 8
    # channels of 5x5 convs without padding, each followed by a 2x2 max pool, dense layers of
    # int(120 * 0.5) = 60 and int(84 * 0.5) = 42 units, 2 outputs: 11,074 parameters.
    model = cell.model
    assert isinstance(model, networks.CNN)
    assert (model.in_shape, model.channels, model.dense, model.kernel, model.pool,
            model.n_classes, model.padding) == ((28, 28, 1), (3, 8), (60, 42), 5, "max", 2,
                                                "VALID")
    assert model.param_shapes == ((5, 5, 1, 3), (3,), (5, 5, 3, 8), (8,), (128, 60), (60,),
                                  (60, 42), (42,), (42, 2), (2,))
    assert model.n_params == 11_074
    # utils.py forward_normalize: logits / prod over the 5 weight tensors of ||W||_F / 3
    params = networks.sample_params(model, jax.random.key(0), cfg.prior)
    assert all(float(abs(p).max()) <= 1 for p in params)   # U(-1, 1)
    weights = [np.asarray(params[i], np.float64) for i in model.weight_indices]
    assert [w.ndim for w in weights] == [4, 4, 2, 2, 2]
    assert float(networks.logit_scale(model, params)) == pytest.approx(
        math.prod(np.linalg.norm(w) / 3 for w in weights), rel=1e-5)
    # two MNIST digits (num_classes 2), standardized as published: (x / 255 - 0.1307) / 0.3081
    dataset = cell.dataset
    assert dataset.name.startswith("mnist-")
    assert dataset.train_x.shape == (2, 28, 28, 1) and sorted(dataset.train_y) == [0, 1]
    assert dataset.test_x.shape[1:] == (28, 28, 1) and set(dataset.test_y) == {0, 1}
    assert float(dataset.train_x.min()) == pytest.approx((0 - 0.1307) / 0.3081, abs=1e-5)
    # train_distributed.py: SGD steps on min(num_samples // 2, batch_size) points
    published = {2: 1, 4: 2, 8: 2, 16: 2, 32: 2}
    assert {n: study.published_batch_size(cfg, n) for n in published} == published


def assert_published_mlp_cell(cell, expected, *, n_test, width):
    """The cell holds ``expected``'s points and the published 2 -> width -> 2 relu MLP
    without hidden biases."""
    for got, want in zip(cell.dataset[:4], expected[:4]):
        np.testing.assert_array_equal(got, want)
    assert cell.dataset.train_x.shape == (cell.n_train, 2)
    assert cell.dataset.test_x.shape == (n_test, 2)
    assert cell.model == networks.MLP(2, depth=1, width=width, activation="relu", n_classes=2,
                                      hidden_biases=False)
    assert cell.model.param_shapes == ((2, width), (width, 2), (2,))


def test_kink_published_network_and_data():
    cfg = resolved("kink-published")
    cell = first_cell(cfg)
    # datasets.py Kink with num_samples 16 on data seed 0: the first int(16 * 0.7) = 11
    # shuffled points train, the last int(16 * 0.3) = 4 test
    assert (cell.n_train, cell.seed) == (11, 0)
    # utils.py MLPModels(input_dim 2, output_dim 2, layers 1, hidden_units 10): weights
    # (2, 10) and (10, 2), relu, an output bias only, normalized by prod ||W||_F
    assert_published_mlp_cell(cell, data.published_kink(11, 0), n_test=4, width=10)
    assert cell.model.weight_indices == (0, 1) and cell.model.norm_divisor == 1.0
    # train_distributed.py: min(num_samples // 2, batch_size) = min(16 // 2, 3) = 3 points
    assert study.published_batch_size(cfg, 11) == 3
    # MLPModels.reset_parameters ("regular"): each weight (.., in, out) U(+-1/sqrt(out)),
    # the bias U(-1, 1)
    for seed in range(3):
        start = baselines.initial_params(cell.model, seed, cfg.baseline_init)
        prior = baselines.initial_params(cell.model, seed, "uniform")
        np.testing.assert_allclose(start[0], prior[0] / math.sqrt(10), rtol=1e-6)
        np.testing.assert_allclose(start[1], prior[1] / math.sqrt(2), rtol=1e-6)
        np.testing.assert_array_equal(start[2], prior[2])


def test_slab_published_network_and_data():
    cfg = resolved("slab-published")
    cells = study.make_cells(cfg)
    # a new data seed per run from 100 (sql.py get_next_config); num_samples '200': 140
    # training and int(200 * 0.3) = 60 test points
    assert [cell.seed for cell in cells] == list(range(100, 100 + cfg.seeds))
    cell = cells[0]
    assert_published_mlp_cell(cell, data.published_slab(140, 100), n_test=60, width=40)


def _renderings(value):
    """The ways a description may write ``value``: 120000, 120,000 or 1.2e5."""
    found = {str(value), f"{value:,}"}
    mantissa, exponent = f"{value:e}".split("e")
    found.add(f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}")
    return found


def _states(text, value):
    """Whether ``text`` writes the number ``value`` (a tuple: its first and last)."""
    if isinstance(value, tuple):
        return all(_states(text, v) for v in (value[0], value[-1]))
    return any(re.search(rf"(?<![\d.,]){re.escape(r)}(?![\d,e]|\.\d)", text)
               for r in _renderings(value))


def test_the_number_reader():
    text = "CPU-sized: 2 to 16 images, 3 data seeds, 4e3 to 1.2e5 draws, of at most 64 tried"
    assert _states(text, (2, 4, 8, 16)) and _states(text, 3) and _states(text, 64)
    assert _states(text, (4_000, 12_000, 120_000)) and _states("1,000 models", 1000)
    assert not _states(text, 32) and not _states(text, 4) and not _states(text, 1.2)
    assert not _states(text, (2, 4, 8, 16, 32))


@pytest.mark.parametrize("name", [
    "mnist-lenet",
    "kink-published",
    "slab-published",
])
def test_a_published_preset_says_what_it_scales_down(name):
    text, _ = classify_presets.PRESETS[name]
    cfg = resolved(name)
    scaled = [field for field, published in SCALABLE[name].items()
              if getattr(cfg, field) not in published]
    scaled += [field for field in ALWAYS_SCALED
               if not (field.startswith("baseline_") and cfg.baseline == "none")]
    assert "CPU-sized" in text, text
    for field in scaled:
        assert _states(text, getattr(cfg, field)), (field, getattr(cfg, field), text)
