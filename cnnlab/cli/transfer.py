"""`cnnlab features` and `cnnlab advise`: pretrained features with a linear classifier, and the
lectures' transfer-learning decision matrix."""

from __future__ import annotations

import argparse

from ..errors import CnnlabError
from ..train.config import dataset_name
from ..transfer import advise, features, linear_classifier
from .options import checked, key_value, positive_float, positive_int


def register(sub) -> None:
    p = sub.add_parser("features", help="penultimate-layer features of a dataset; optionally a linear SVM on them")
    p.add_argument("model", help="a model name from `cnnlab models`")
    p.add_argument("--weights", help="imagenet, a weights file or a cnnlab run (default: untrained)")
    p.add_argument("--dataset", type=checked(dataset_name), required=True)
    p.add_argument("-o", "--output", help="write train_x, train_y, test_x, test_y, classes to this .npz")
    p.add_argument("--overwrite", action="store_true", help="replace the -o file if it exists")
    p.add_argument("--classifier", choices=("svm", "logreg"), help="fit it on the training features, test it")
    p.add_argument("--c", type=positive_float, default=1.0, help="the classifier's inverse regularisation")
    p.add_argument("--classes", help="comma-separated class names: these only")
    p.add_argument("--train-per-class", type=positive_int, help="the first N training images of each class")
    p.add_argument("--test-per-class", type=positive_int, help="evaluate on the first N test images of each class")
    p.add_argument(
        "--model-kwargs",
        nargs="+",
        type=key_value,
        metavar="KEY=VALUE",
        help="arguments of the model's builder, e.g. activation=tanh width=0.5 (values are JSON or text)",
    )
    p.add_argument("--data-dir")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("advise", help="the transfer-learning decision matrix: what to do with your data")
    p.add_argument("--samples", type=positive_int, required=True, help="labelled images per class")
    p.add_argument(
        "--similarity",
        choices=("high", "low"),
        required=True,
        help="how much the data looks like what the weights were trained on",
    )
    p.set_defaults(func=cmd_advise)


def cmd_features(args: argparse.Namespace) -> int:
    if args.c != 1.0 and not args.classifier:
        raise CnnlabError("--c is the classifier's; give --classifier svm or logreg, or leave --c out")
    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else ()
    feats = features(
        args.model,
        args.weights,
        args.dataset,
        args.output,
        classes,
        args.train_per_class,
        args.data_dir,
        args.test_per_class,
        args.device,
        dict(args.model_kwargs or ()),
        args.overwrite,
    )
    print(
        f"features: {feats['train_x'].shape[1]} per image, {len(feats['train_y'])} training and "
        f"{len(feats['test_y'])} test images, {feats['seconds']:.1f}s"
        + (f"; wrote {args.output}" if args.output else "")
    )
    if args.classifier:
        r = linear_classifier(feats, args.classifier, args.c)
        print(
            f"{args.classifier}: train accuracy {100 * r['train_accuracy']:.2f}%, "
            f"test accuracy {100 * r['test_accuracy']:.2f}% ({r['seconds']:.1f}s)"
        )
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    r = advise(args.samples, args.similarity)
    print(
        f"{r['data']} data ({r['samples_per_class']} labelled images per class), {r['similarity']} similarity: "
        f"{r['strategy']}\n  why: {r['why']}\n  run: {r['command']}"
    )
    return 0
