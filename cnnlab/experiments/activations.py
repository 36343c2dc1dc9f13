"""Saturating against non-saturating non-linearities: sigmoid, tanh, ReLU, leaky ReLU and maxout in
the same deep MLP, with the flat and the dead units of each."""

from __future__ import annotations

import statistics

import torch

from ..factory import load_model
from .base import MNIST_DEEP_MLP, MNIST_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table, test_batch
from .verdicts import HELD, LOWER, NOT_HELD, Finding, Part, compare, finals, mean_std, train_error


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
    "\u201cIn terms of training time with gradient descent, these saturating nonlinearities [tanh, sigmoid] are "
    "much slower than the non-saturating nonlinearity f(x) = max(0, x)\u201d; leaky ReLU and maxout keep a "
    "gradient everywhere, so none of their units can die as ReLU units can (deep MLP on MNIST)",
    "Krizhevsky et al. 2012, Section 3.1; Maas et al. 2013; Goodfellow et al. 2013",
    [
        Part(
            "every non-saturating non-linearity trains faster than the saturating ones",
            LOWER.format(
                a="the final training error of the worst of ReLU, leaky ReLU and maxout",
                b="that of the better of sigmoid and tanh",
                margin="1 point",
            ),
        ),
        Part(
            "leaky ReLU and maxout leave no unit dead",
            "held if no unit of either is zero for all of 1,000 test images, in every seed; did not hold otherwise",
        ),
    ],
    seeds=3,
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
    health = {key: unit_health(x, arms[names.index(key.rsplit("-seed", 1)[0])], x.out / key) for key in runs}

    def judge(runs: dict) -> list[Finding]:
        err = {a: finals(runs, a, train_error) for a in names}
        saturating = min(("sigmoid", "tanh"), key=lambda a: statistics.mean(err[a]))
        worst_fast = max(("relu", "leaky_relu", "maxout"), key=lambda a: statistics.mean(err[a]))
        faster = compare(runs, worst_fast, saturating, train_error, "final training error", must_train=(worst_fast,))
        dead = {a: [health[k]["dead"] for k in runs if k.rsplit("-seed", 1)[0] == a] for a in names}
        alive = HELD if not any(dead["leaky_relu"] + dead["maxout"]) else NOT_HELD
        numbers = "dead units " + ", ".join(
            f"{a} {mean_std(dead[a], ' %', 2)}" for a in ("relu", "leaky_relu", "maxout")
        )
        return [faster, Finding(alive, numbers)]

    def health_of(arm: Arm, what: str) -> str:
        return mean_std([h[what] for k, h in health.items() if k.rsplit("-seed", 1)[0] == arm.label], " %", 2)

    table = standard_table(
        arms,
        runs,
        lambda a: {
            "flat activations (slope < 10 % of max)": health_of(a, "saturated"),
            "dead units": health_of(a, "dead"),
        },
    )
    return x.outcome(arms, runs, table, judge, [curves(runs, "training error", lambda r: 1 - r["train_top1"])], health)
