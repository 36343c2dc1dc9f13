"""Saturating against non-saturating non-linearities: sigmoid, tanh, ReLU, leaky ReLU and maxout in
the same deep MLP, with the flat and the dead units of each."""

from __future__ import annotations

import statistics

import torch

from ..factory import load_model
from .base import MNIST_DEEP_MLP, MNIST_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table, test_batch
from .verdicts import NOT_HELD, finals, lower_verdict, pct, train_error


def unit_health(x: Setup, arm: Arm, run) -> dict:
    """For the trained model in `run`, over 1,000 test images: the fraction of activations whose
    local gradient is under 10 % of the non-linearity's largest (saturated, for sigmoid/tanh; the
    flat side for ReLU and leaky ReLU) and the fraction of units that are zero for every image (dead)."""
    cfg = x.config(arm)
    model = load_model(run).eval()
    x, _ = test_batch(cfg, 1000)
    outs = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o: outs.append((type(mod).__name__, o.detach())))
        for m in model.modules()
        if type(m).__name__ in ("Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Maxout")
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    small, dead, total_units, total = 0.0, 0, 0, 0
    for kind, o in outs:
        slope = {
            "Sigmoid": lambda y: y * (1 - y) / 0.25,
            "Tanh": lambda y: 1 - y**2,
            "ReLU": lambda y: (y > 0).float(),
            "LeakyReLU": lambda y: torch.where(y > 0, 1.0, 0.01),
            "Maxout": lambda y: torch.ones_like(y),
        }[kind](o)
        small += (slope < 0.1).float().sum().item()
        total += o.numel()
        dead += ((o == 0).all(0)).sum().item() if kind == "ReLU" else 0
        total_units += o[0].numel()
    return {"saturated": 100 * small / total, "dead": 100 * dead / total_units}


@experiment(
    "activations",
    "Saturating non-linearities (sigmoid, tanh) train slower than non-saturating ones "
    "(ReLU, leaky ReLU, maxout) in a deep network; ReLU can leave units dead, leaky ReLU "
    "and maxout cannot",
)
def activations(x: Setup) -> Outcome:
    small = x.small
    settings = dict(MNIST_DEEP_MLP, **(MNIST_SMALL if small else {}))
    names = ("sigmoid", "tanh", "relu", "leaky_relu", "maxout")
    # each with the initialisation that keeps its signal's scale: He for ReLU and leaky ReLU (half
    # the inputs cut), Xavier for the others (maxout's output has its input's second moment)
    arms = [
        Arm(
            a,
            "mlp",
            "mnist",
            {
                **settings,
                "init": "he" if a in ("relu", "leaky_relu") else "xavier",
                "model_kwargs": {"hidden": [256] * 5, "activation": a},
            },
        )
        for a in names
    ]
    runs = x.train(arms)
    health = {a.label: unit_health(x, a, x.out / f"{a.label}-seed0") for a in arms}
    err = {a: finals(runs, a, train_error) for a in names}
    saturating = max(("sigmoid", "tanh"), key=lambda a: -statistics.mean(err[a]))  # the better of the two
    worst_fast = max(("relu", "leaky_relu", "maxout"), key=lambda a: statistics.mean(err[a]))
    verdict = lower_verdict(err[worst_fast], err[saturating])
    if health["leaky_relu"]["dead"] or health["maxout"]["dead"]:
        verdict = NOT_HELD
    numbers = (
        f"final training error {', '.join(f'{a} {pct(err[a])}' for a in names)}; "
        f"dead units: relu {health['relu']['dead']:.1f} %, leaky_relu {health['leaky_relu']['dead']:.1f} %, "
        f"maxout {health['maxout']['dead']:.1f} %"
    )
    table = standard_table(
        arms,
        runs,
        lambda a: {
            "flat activations (slope < 10 % of max)": f"{health[a.label]['saturated']:.1f} %",
            "dead units": f"{health[a.label]['dead']:.1f} %",
        },
    )
    return x.outcome(
        arms, runs, table, verdict, numbers, [curves(runs, "training error", lambda r: 1 - r["train_top1"])], health
    )
