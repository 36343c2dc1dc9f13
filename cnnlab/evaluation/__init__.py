"""Evaluation: the metrics of every task, test-time augmentation, trained runs on their test
split, predictions for image files, and the pictures of all of it."""

from .metrics import classification, confusion, evaluate, scores, topk
from .runs import evaluate_runs, evaluate_segmentation_run, image_input, predict_images
from .tta import MULTICROP_SCALES, TTA, predict_proba, views

__all__ = [
    "MULTICROP_SCALES",
    "TTA",
    "classification",
    "confusion",
    "evaluate",
    "evaluate_runs",
    "evaluate_segmentation_run",
    "image_input",
    "predict_images",
    "predict_proba",
    "scores",
    "topk",
    "views",
]
