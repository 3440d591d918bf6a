"""The classifier study's presets: the published settings of Chiang et al. (ICLR 2023),
CPU-sized where stated, and gcsampler's own offline studies.

Published values come from the public repository Ping-C/optimizer (``configs/``); the
settings each preset resolves to are pinned against them in
``tests/classify/test_classify_presets.py``.
"""

# The normalized cross-entropy bins of the published MNIST tables (configs/table2/*.yaml):
# 0.30-0.35 up to 0.60-0.65.
PAPER_BINS = tuple((round(0.30 + 0.05 * i, 2), round(0.35 + 0.05 * i, 2)) for i in range(7))
# The published "any perfect fit" bin of the kink and slab runs (loss_thres "-999,999").
ANY_FIT = ((-999.0, 999.0),)
# Raw cross-entropy bins for the digits presets: raw logits of U(-1, 1) draws are large, so
# their perfect fits mostly have a raw cross-entropy far below 0.3.
LOW_BINS = ((0.0, 0.01), (0.01, 0.1), (0.1, 0.3), (0.3, 0.65))


# Settings shared by the presets that follow the published MNIST table (table 2).
_MNIST = dict(task="mnist", model="lenet", lenet_width=0.5, padding="VALID", prior="uniform",
              logits="normalized", bins=PAPER_BINS, n_train=(2, 4, 8, 16, 32),
              baseline="sgd", baseline_protocol="published", baseline_lr=1e-3,
              baseline_epochs=30, baseline_batch_size=2, baseline_init="uniform",
              baseline_models=20)
# ... and the published kink and slab runs (figures 2 and 3): an MLP without hidden biases.
_PUBLISHED_MLP = dict(model="mlp", depth=1, hidden_biases=False, prior="uniform",
                      logits="normalized", bins=ANY_FIT)

# gcsampler's own earlier classifier study: bins of the raw logits' cross-entropy and 8
# full-batch SGD runs per bin from PyTorch's init, stopped below the bin's upper edge.
_RAW_FULL_BATCH = dict(logits="raw", baseline="sgd", baseline_protocol="full_batch",
                       baseline_lr=0.1, baseline_steps=10_000, baseline_runs=8,
                       baseline_init="pytorch")

PRESETS = {
    "mnist-lenet": ("MNIST pairs (the [mnist] extra), the published LeNet (28x28, VALID, "
                    "11,074 parameters), normalized-loss bins 0.30-0.65, published SGD; "
                    "CPU-sized: 2 to 16 images (published: to 32), 3 data seeds, 4e3 to 1.2e5 "
                    "draws per cell, 10 SGD runs kept per bin and seed of at most 64 tried "
                    "(published: 200 models per cell)",
                    dict(_MNIST, n_train=(2, 4, 8, 16), seeds=3,
                         samples=(4_000, 12_000, 40_000, 120_000), baseline_models=10,
                         baseline_runs=32, baseline_max_runs=64)),
    "kink-published": ("the published kink data (11 points, data seed 0), MLP 2-10-2 without "
                       "hidden biases, any perfect fit, published SGD (lr 0.1, batch 3, 200 "
                       "epochs, fan_out init); CPU-sized: 1e6 draws, 1,000 SGD runs kept of at "
                       "most 4,000 tried (published: 500,000 G&C and 50,000 SGD models)",
                       dict(_PUBLISHED_MLP, task="published_kink", n_train=(11,), seeds=1,
                            width=10, samples=10**6, baseline="sgd",
                            baseline_protocol="published", baseline_lr=0.1,
                            baseline_epochs=200, baseline_batch_size=3, baseline_init="fan_out",
                            baseline_models=1000, baseline_runs=1000, baseline_max_runs=4000)),
    "slab-published": ("the published slab data (140 points, a new data seed per run from 100), "
                       "MLP 2-40-2 without hidden biases, any perfect fit, G&C only; CPU-sized: "
                       "8 data seeds of 1e6 draws, every accepted draw kept (published: 10,000 "
                       "seeds of one accepted draw)",
                       dict(_PUBLISHED_MLP, task="published_slab", n_train=(140,), seeds=8,
                            first_seed=100, width=40, samples=10**6, baseline="none")),
    "kink-mlp": ("the balanced 2-D kink generator, MLP 2-10-2 with biases, 2 to 20 training "
                 "points; raw-logit bins and full-batch SGD (gcsampler's own study)",
                 dict(_RAW_FULL_BATCH, task="kink", model="mlp", depth=1, width=10,
                      n_train=tuple(range(2, 21, 2)))),
    "slabs-mlp": ("the balanced 2-D slabs generator, MLP 2-10-2 with biases, 2 to 20 points; "
                  "raw-logit bins and full-batch SGD (gcsampler's own study)",
                  dict(_RAW_FULL_BATCH, task="slabs", model="mlp", depth=1, width=10,
                       n_train=tuple(range(2, 21, 2)))),
    "digits-lenet": ("digits 0 vs 1 (scikit-learn's 8x8 images), LeNet at width 0.5, 2 to 32 "
                     "training images; raw-logit bins where its perfect fits lie and full-batch "
                     "SGD (gcsampler's own study)",
                     dict(_RAW_FULL_BATCH, task="digits", model="lenet", lenet_width=0.5,
                          samples=200_000, n_train=(2, 4, 8, 16, 32), bins=LOW_BINS)),
    "digits-mlp": ("digits 0 vs 1, MLP 2-10-2 with biases, 2 to 32 images; raw-logit bins "
                   "and full-batch SGD (gcsampler's own study)",
                   dict(_RAW_FULL_BATCH, task="digits", model="mlp", depth=1, width=10,
                        samples=500_000, n_train=(2, 4, 8, 16, 32), bins=LOW_BINS)),
}


def preset_listing():
    """One line per preset: its name and what it runs."""
    return "\n".join(f"{name:14s} {text}" for name, (text, _) in PRESETS.items())
