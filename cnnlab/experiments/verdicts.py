"""How an experiment's numbers become a verdict on its claim, and how they are written: each part
of the claim judged by the criterion fixed before the runs, the seeds' agreement, the overall
verdict, mean and spread over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

HELD, NOT_HELD, INCONCLUSIVE, PARTLY = "held", "did not hold", "inconclusive", "partly held"

# the usual criterion of "A is lower than B", in the words of lower_verdict
LOWER = (
    "held if the mean of {a} is below {b} by more than {margin} and by more than twice the standard error of "
    "the difference over seeds; did not hold if it is not below at all; inconclusive in between"
)


@dataclass(frozen=True)
class Part:
    """One thing the source asserts, and the criterion, fixed before any run, that decides it."""

    claim: str
    criterion: str


@dataclass
class Finding:
    """What the numbers said about one part: its verdict, the numbers, and (filled in once all
    seeds are judged alone) how many seeds say the same."""

    verdict: str
    numbers: str
    seeds: str = ""


def band(value: float, held: tuple[float, float], fails: tuple[float, float]) -> str:
    """HELD inside `held` (low, high), NOT_HELD outside `fails`, INCONCLUSIVE in between."""
    if held[0] <= value <= held[1]:
        return HELD
    return NOT_HELD if not fails[0] <= value <= fails[1] else INCONCLUSIVE


def at_most(value: float, held: float, fails: float) -> str:
    """HELD up to `held`, NOT_HELD above `fails`, INCONCLUSIVE in between."""
    return band(value, (-math.inf, held), (-math.inf, fails))


def both(a: str, b: str) -> str:
    """Two conditions of one part: held when both hold, did not hold when either fails."""
    return HELD if a == b == HELD else NOT_HELD if NOT_HELD in (a, b) else INCONCLUSIVE


def overall(findings: list[Finding]) -> str:
    """Held when every part held; partly held when some did; did not hold when none held and one
    was reversed; inconclusive when every part was."""
    verdicts = [f.verdict for f in findings]
    if all(v == HELD for v in verdicts):
        return HELD
    if HELD in verdicts:
        return PARTLY
    return NOT_HELD if NOT_HELD in verdicts else INCONCLUSIVE


def seed_runs(runs: dict, seed: int) -> dict:
    """The runs of one seed (keys LABEL-seedS)."""
    return {k: h for k, h in runs.items() if k.rsplit("-seed", 1)[1] == str(seed)}


def agreement(judge: Callable[[dict], list[Finding]], runs: dict, findings: list[Finding]) -> None:
    """With several seeds, each seed's runs judged alone: how many of them reach each part's verdict."""
    seeds = sorted({int(k.rsplit("-seed", 1)[1]) for k in runs})
    if len(seeds) < 2:
        return
    alone = [judge(seed_runs(runs, s)) for s in seeds]
    for i, f in enumerate(findings):
        differ = [f"seed {s}: {one[i].verdict}" for s, one in zip(seeds, alone) if one[i].verdict != f.verdict]
        agree = len(seeds) - len(differ)
        f.seeds = (
            f"all {len(seeds)} seeds agree"
            if not differ
            else f"{agree} of {len(seeds)} seeds agree; {', '.join(differ)}"
        )


def not_evidence(finding: Finding, why: str) -> Finding:
    """A part whose arm did not do what it was meant to: reported, and not counted either way."""
    return Finding(INCONCLUSIVE, f"{finding.numbers}; not evidence: {why}")


def never_trained(runs: dict, label: str, chance_error: float = 90.0) -> str | None:
    """Why arm `label` cannot count as evidence for a comparison of trained networks: it diverged,
    or its training error stayed within 5 points of chance in any seed; None when it trained."""
    for key, history in runs.items():
        if key.rsplit("-seed", 1)[0] != label:
            continue
        if any(r.get("diverged") for r in history):
            return f"{label} diverged ({key})"
        if train_error(history[-1]) > chance_error - 5:
            return f"{label} never trained ({key}: training error {train_error(history[-1]):.1f} %)"
    return None


def first_epoch_below(history: list[dict], error: float) -> int | None:
    """The first epoch whose training error (1 - train top-1) is at most `error`."""
    return next((r["epoch"] for r in history if 1 - r["train_top1"] <= error), None)


def speedup_verdict(
    fast: list[int | None], slow: list[int | None], budget: int, held_at: float = 2.0, fails_at: float = 1.0
) -> tuple[str, str]:
    """Verdict for "arm A reaches the target `held_at` times sooner than arm B", per seed: an
    arm that never reached it within `budget` epochs counts as budget + 1 (a lower bound). Did
    not hold when the median ratio is at most `fails_at` (and not a bound)."""
    if any(f is None for f in fast):
        if all(f is None for f in fast) and all(s is not None for s in slow):
            return NOT_HELD, (
                f"the supposedly slower arm reached the target (in {', '.join(map(str, slow))} epochs), "
                f"the faster one not within {budget}"
            )
        return INCONCLUSIVE, f"the fast arm did not reach the target within {budget} epochs in every run"
    ratios = [((s if s is not None else budget + 1) / f) for f, s in zip(fast, slow)]
    bound = any(s is None for s in slow)
    ratio = statistics.median(ratios)
    text = f"median ratio {'>= ' if bound else ''}{ratio:.1f}x (per seed: {', '.join(f'{r:.1f}' for r in ratios)})"
    if ratio >= held_at:
        return HELD, text
    if ratio <= fails_at and not bound:
        return NOT_HELD, text
    return INCONCLUSIVE, text


def lower_verdict(low: list[float], high: list[float], margin: float = 1.0) -> str:
    """Is `low` below `high`? Held when the means differ by more than `margin` (default one
    point, for errors in %) and, with several seeds, by more than twice the standard error of
    the difference; did not hold when the mean of `low` is not below the mean of `high` at all;
    inconclusive in between."""
    diff = statistics.mean(high) - statistics.mean(low)
    noise = 0.0
    if len(low) > 1 and len(high) > 1:
        noise = 2 * math.sqrt(statistics.variance(low) / len(low) + statistics.variance(high) / len(high))
    if diff > max(margin, noise):
        return HELD
    return NOT_HELD if diff <= 0 else INCONCLUSIVE


def finals(runs: dict, label: str, value: Callable[[dict], float]) -> list[float]:
    """`value` of the last epoch of each seed's run of arm `label`."""
    return [value(h[-1]) for k, h in runs.items() if k.rsplit("-seed", 1)[0] == label]


def train_error(row: dict) -> float:
    return 100 * (1 - row["train_top1"])


def test_error(row: dict) -> float:
    return 100 * (1 - row["test_top1"])


def gap(row: dict) -> float:
    """Training accuracy minus test accuracy, in points: how much the model overfits."""
    return 100 * (row["train_top1"] - row["test_top1"])


def mean_std(values: list[float], unit: str = "", digits: int = 4) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}g}{unit}"
    return f"{statistics.mean(values):.{digits}g} +- {statistics.stdev(values):.2g}{unit}"


def pct(values: list[float]) -> str:
    return mean_std([round(v, 2) for v in values], " %", 3)


def points(values: list[float]) -> str:
    return mean_std([round(v, 2) for v in values], " points", 3)


def compare(
    runs: dict,
    low: str,
    high: str,
    value: Callable[[dict], float],
    what: str,
    margin: float = 1.0,
    fmt: Callable[[list[float]], str] | None = None,
    must_train: tuple[str, ...] | None = None,
) -> Finding:
    """ "Arm `low` ends with a lower `value` than arm `high`", judged by lower_verdict; not evidence
    when an arm in `must_train` (default: both) diverged or never trained."""
    fmt = fmt or pct
    a, b = finals(runs, low, value), finals(runs, high, value)
    finding = Finding(lower_verdict(a, b, margin), f"{what} {low} {fmt(a)} vs {high} {fmt(b)}")
    for label in (low, high) if must_train is None else must_train:
        if why := never_trained(runs, label):
            return not_evidence(finding, why)
    return finding


def loss(values: list[float]) -> str:
    """Losses: three significant digits."""
    return mean_std(values, digits=3)
