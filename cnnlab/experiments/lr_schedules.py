"""Learning-rate schedules: constant against step, exponential, plateau and cosine decay."""

from __future__ import annotations

from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table
from .verdicts import combine, finals, lower_verdict, mean_std, pct, test_error


@experiment(
    "lr-schedules",
    "Decaying the learning rate (step, exponential, cosine) ends at a lower training "
    "loss and a lower test error than keeping it constant",
)
def lr_schedules(x: Setup) -> Outcome:
    small = x.small
    epochs = 10 if small else 60
    settings = dict(
        CIFAR_SMALL, epochs=epochs, optimizer="sgd", lr=0.05, momentum=0.9, model_kwargs={"width": 0.5} if small else {}
    )
    if not small:
        settings.pop("train_per_class")
    choices = {
        "constant": dict(schedule="none"),
        "step": dict(schedule="step", step_size=epochs * 2 // 5, gamma=0.1),
        "exponential": dict(schedule="exponential", gamma=round(0.1 ** (1 / epochs), 4)),  # to lr / 10
        "plateau": dict(schedule="plateau", gamma=0.1),
        "cosine": dict(schedule="cosine"),
    }
    arms = [Arm(name, "cnn4", settings={**settings, **s}) for name, s in choices.items()]
    runs = x.train(arms)
    loss = {a.label: finals(runs, a.label, lambda r: r["train_loss"]) for a in arms}
    err = {a.label: finals(runs, a.label, test_error) for a in arms}
    decaying = ("step", "exponential", "cosine")
    parts = [lower_verdict(loss[n], loss["constant"], margin=0.02) for n in decaying] + [
        lower_verdict(err[n], err["constant"]) for n in decaying
    ]
    numbers = "final training loss / test error: " + ", ".join(
        f"{n} {mean_std(loss[n], digits=3)} / {pct(err[n])}" for n in choices
    )
    table = standard_table(arms, runs, lambda a: {"final training loss": mean_std(loss[a.label], digits=3)})
    return x.outcome(
        arms,
        runs,
        table,
        combine(parts),
        numbers,
        [
            curves(runs, "learning rate", lambda r: r["lr"], logy=True),
            curves(runs, "training loss", lambda r: r["train_loss"], logy=True),
        ],
    )
