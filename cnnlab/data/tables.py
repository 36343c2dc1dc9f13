"""Numeric tables (csv:PATH): a CSV file with a header row, one column the value to predict (the
lectures' temperature predictor); the first 80 % of the rows train, the last 20 % test."""

from __future__ import annotations

import csv as csv_module
import io
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DatasetError
from .datasets import held_out

FLOAT32_MAX = float(np.finfo(np.float32).max)


def load_csv(path: str | os.PathLike, target: str) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """A numeric CSV table with a header: the other columns as features (float32, N x F) and
    `target` as the value to predict (float32, N). Rows keep their order (time series stay so)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a spreadsheet's byte-order mark is no name
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot be read as CSV ({e})") from None
    try:  # commas, or the semicolons and tabs of spreadsheets in many languages
        delimiter = csv_module.Sniffer().sniff("\n".join(text.splitlines()[:20]), delimiters=",;\t").delimiter
    except csv_module.Error:
        delimiter = ","
    try:  # blank lines (one at the end, say) are no rows
        lines = [
            (i, row)
            for i, row in enumerate(csv_module.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1)
            if row
        ]
    except csv_module.Error as e:
        raise DatasetError(f"{path}: not a readable CSV table ({e})") from None
    if len(lines) < 3:
        raise DatasetError(f"{path}: needs a header row and at least two data rows")
    header = [h.strip() for h in lines[0][1]]
    if target not in header:
        raise DatasetError(f"{path}: no column {target!r}; columns: {', '.join(header)}")
    values = np.empty((len(lines) - 1, len(header)), dtype=np.float32)
    for r, (i, row) in enumerate(lines[1:]):
        if len(row) != len(header):
            raise DatasetError(f"{path}, line {i}: {len(row)} values for {len(header)} columns")
        for j, cell in enumerate(row):
            try:
                value = float(cell)
            except ValueError:
                comma = "," in cell and cell.replace(",", ".", 1).replace(".", "", 1).strip().lstrip("+-").isdigit()
                raise DatasetError(
                    f"{path}, line {i}, column {header[j]!r}: {cell!r} is not a number"
                    + (" (a decimal comma? write a point)" if comma else "")
                ) from None
            if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
                raise DatasetError(
                    f"{path}, line {i}, column {header[j]!r}: {cell!r} is not a finite number"
                    + (" (beyond float32)" if math.isfinite(value) else "")
                )
            values[r, j] = value
    if len(header) < 2:
        raise DatasetError(
            f"{path}: has no column besides the target {target} to predict it from; add the columns "
            "the prediction is made from"
        )
    t = header.index(target)
    features = np.delete(values, t, axis=1)
    names = tuple(h for k, h in enumerate(header) if k != t)
    return torch.from_numpy(features), torch.from_numpy(values[:, t].copy()), names


class TableData:
    """A numeric table on the device (csv:PATH): features standardised with the training rows'
    mean and std, targets as they are."""

    def __init__(self, features: Tensor, targets: Tensor, mean: Tensor, std: Tensor, device: torch.device):
        self.x = ((features - mean) / std).to(device)
        self.labels = targets.to(device)
        self.classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: Tensor, augment: tuple[str, ...] = (), generator=None):
        return self.x[idx], self.labels[idx]


def table_data(
    path: str, target: str, device: torch.device, val_split: float = 0.0
) -> tuple[TableData, TableData, Tensor, Tensor, TableData | None]:
    """(training rows, test rows, mean, std, validation rows or None): the first 80 % of the rows
    train and the rest test; a validation split takes the last of the training rows."""
    features, targets, _ = load_csv(path, target)
    cut = max(1, int(0.8 * len(targets)))
    train_x, train_y = features[:cut], targets[:cut]
    val = held_out(train_y, val_split) if val_split else torch.zeros(cut, dtype=torch.bool)
    # scikit-learn's StandardScaler: the population std, and 1 for a column constant in training
    # (1e-8 would blow a test row's other value up to ~1e8; the sample std of one row is NaN)
    mean, std = train_x[~val].mean(0), train_x[~val].std(0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (
        TableData(train_x[~val], train_y[~val], mean, std, device),
        TableData(features[cut:], targets[cut:], mean, std, device),
        mean,
        std,
        TableData(train_x[val], train_y[val], mean, std, device) if val.any() else None,
    )
