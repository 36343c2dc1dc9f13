"""Learning-rate schedules: constant against step, exponential, plateau and cosine decay."""

from __future__ import annotations

from .base import CIFAR_SMALL, Arm, Outcome, Setup, curves, experiment, standard_table
from .verdicts import Finding, Part, both, compare, finals, loss, not_evidence, test_error

DECAYING = ("step", "exponential", "plateau", "cosine")


def loss_of(row: dict) -> float:
    return row["train_loss"]


@experiment(
    "lr-schedules",
    "\u201cIn practice, it is necessary to gradually decrease the learning rate over time\u201d (SGD's gradient "
    "noise does not vanish at a minimum): each decaying schedule ends at a lower training loss and a lower test "
    "error than the same run at a constant rate",
    "Goodfellow, Bengio & Courville 2016, Deep Learning, Section 8.3.1",
    [
        Part(
            f"{name} decay ends lower than constant",
            "held if its final training loss is below constant's by more than 0.02 and its test error by more "
            "than 1 point, each by more than twice the standard error over seeds; did not hold if either is not "
            "below at all; inconclusive otherwise"
            + ("; a plateau schedule that never cut the rate is not evidence" if name == "plateau" else ""),
        )
        for name in DECAYING
    ],
    seeds=3,
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
        # cuts when the training loss stops falling; patience 1 so that it can act within 10 epochs
        "plateau": dict(schedule="plateau", gamma=0.1, plateau_patience=1 if small else 3),
        "cosine": dict(schedule="cosine"),
    }
    arms = [Arm(name, "cnn4", settings={**settings, **s}) for name, s in choices.items()]
    runs = x.train(arms)

    def judge(runs: dict) -> list[Finding]:
        found = []
        for name in DECAYING:
            by_loss = compare(runs, name, "constant", loss_of, "final training loss", 0.02, loss)
            by_error = compare(runs, name, "constant", test_error, "test error")
            finding = Finding(both(by_loss.verdict, by_error.verdict), f"{by_loss.numbers}, {by_error.numbers}")
            lrs = {r["lr"] for k, h in runs.items() if k.rsplit("-seed", 1)[0] == name for r in h}
            if len(lrs) == 1:
                finding = not_evidence(finding, f"the {name} arm never cut the rate (lr {lrs.pop():g} throughout)")
            found.append(finding)
        return found

    table = standard_table(arms, runs, lambda a: {"final training loss": loss(finals(runs, a.label, loss_of))})
    return x.outcome(
        arms,
        runs,
        table,
        judge,
        [
            curves(runs, "learning rate", lambda r: r["lr"], logy=True),
            curves(runs, "training loss", lambda r: r["train_loss"], logy=True),
        ],
    )
