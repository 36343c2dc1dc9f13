"""How an experiment's numbers become a verdict on its claim, and how they are written: mean and
spread over seeds, a table row per arm, and curves."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

HELD, NOT_HELD, INCONCLUSIVE = "held", "did not hold", "inconclusive"


def first_epoch_below(history: list[dict], error: float) -> int | None:
    """The first epoch whose training error (1 - train top-1) is at most `error`."""
    return next((r["epoch"] for r in history if 1 - r["train_top1"] <= error), None)


def speedup_verdict(
    fast: list[int | None], slow: list[int | None], budget: int, held_at: float = 2.0
) -> tuple[str, str]:
    """Verdict for "arm A reaches the target `held_at` times sooner than arm B", per seed: an
    arm that never reached it within `budget` epochs counts as budget + 1 (a lower bound)."""
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
    if ratio <= 1.0 and not bound:
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


def combine(verdicts: list[str]) -> str:
    """All parts held: held; any part reversed: did not hold; otherwise inconclusive."""
    if all(v == HELD for v in verdicts):
        return HELD
    return NOT_HELD if NOT_HELD in verdicts else INCONCLUSIVE


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
