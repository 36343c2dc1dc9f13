"""The `cnnlab` command: argparse subcommands that call the library."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

import torch

from . import __version__
from .errors import CnnlabError
from .registry import create_model, get_model_info, list_models

# errors of the place a file goes, not of the program: each with what to do
PLACE_ERRORS = {errno.ENOSPC: "free some space or write elsewhere", errno.EDQUOT: "free some space or write elsewhere",
                errno.EROFS: "choose another path", errno.EACCES: "check its permissions or choose another path",
                errno.EPERM: "check its permissions or choose another path",
                errno.EEXIST: "a file is in the way of a folder: choose another path",
                errno.ENOTDIR: "a file is in the way of a folder: choose another path",
                errno.EISDIR: "a folder is in the way of a file: choose another path"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def count_params(name: str) -> int:
    """Parameters of a registered model, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        model = create_model(name)
    return sum(p.numel() for p in model.parameters())


def cmd_models(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if not names:
        raise CnnlabError(f"no model matches {args.pattern!r}; `cnnlab models` lists them all")
    rows = [("name", "params", "input", "classes", "year", "description")]
    for name in names:
        info = get_model_info(name)
        rows.append((name, f"{count_params(name):,}", "x".join(map(str, info.input_size)),
                     str(info.num_classes), str(info.year), info.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        cells = [c.rjust(w) if i in (1, 3) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("  ".join(cells + [r[-1]]).rstrip())
    return 0


def parse_size(text: str) -> tuple[int, ...]:
    """'3x224x224' -> (3, 224, 224); argparse turns the ValueError into a one-line usage error."""
    try:
        size = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must look like 3x224x224, got {text!r}") from None
    if not size or any(v < 1 for v in size):
        raise argparse.ArgumentTypeError(f"input size must be positive, got {text!r}")
    return size


def _int(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int(text, 1)


def non_negative_int(text: str) -> int:
    return _int(text, 0)


def analysed(name: str, model_kwargs, input_size) -> tuple:
    """What `analyze` takes for NAME: the registered name itself; with builder arguments, the model
    they build; for a run directory, the run's model (its name, classes and builder arguments) and
    its input size. Models are built on the meta device: nothing is allocated or computed."""
    from .registry import create_model

    kwargs, num_classes = dict(model_kwargs or ()), None
    if Path(name).is_dir():
        from .evaluate import run_config
        cfg = run_config(name)
        kwargs, num_classes = {**cfg.get("model_kwargs", {}), **kwargs}, cfg.get("num_classes")
        input_size = input_size or tuple(cfg["input_size"])
        model_name = cfg["model"]
    elif not kwargs:
        return name, input_size
    else:
        model_name = name
    with torch.device("meta"):
        model = create_model(model_name, num_classes=num_classes, **kwargs)
    model.model_name = model_name
    return model, input_size


def cmd_summary(args: argparse.Namespace) -> int:
    from .analysis import analyze, training_memory

    model, size = analysed(args.name, args.model_kwargs, args.input)
    a = analyze(model, size, args.batch, DTYPES[args.dtype], args.mode)
    if args.format == "json":
        data = a.to_dict()
        if args.optimizer:
            data["training_memory"] = training_memory(model, size, args.batch, args.optimizer, DTYPES[args.dtype])
        print(json.dumps(data, indent=2))
        return 0
    print(a.table("text" if args.format == "table" else args.format), end="")
    if args.optimizer and args.format != "csv":
        mem = training_memory(model, size, args.batch, args.optimizer, DTYPES[args.dtype])
        parts = ", ".join(f"{k.replace('_', ' ')} {v / 2**20:,.1f} MiB" for k, v in mem.items() if k != "total")
        print(f"training memory ({args.optimizer}, batch {args.batch}): {mem['total'] / 2**20:,.1f} MiB = {parts}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .analysis import _si, analyze

    rows = [("model", "input", "params", "MACs", "FLOPs", "activations", "act. memory", "depth")]
    for name in args.names:
        a = analyze(*analysed(name, args.model_kwargs, args.input), args.batch, DTYPES[args.dtype], args.mode)
        t = a.totals
        rows.append((name, "x".join(map(str, a.input_size)), f"{t['params']:,}", f"{_si(t['macs'])}MAC", f"{_si(t['flops'])}FLOP", f"{t['activations']:,}",
                     f"{_si(t['activation_bytes'], 1024)}B", str(t["depth"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    print("depth: layers with weights on the longest input-to-output path; MAC: multiply-add, FLOPs = 2 x MACs")
    return 0


def cmd_conv_size(args: argparse.Namespace) -> int:
    from .analysis import conv_output_size, conv_transpose_output_size, pool_output_size

    n, f, p, d = args.size, args.kernel, args.padding, args.dilation
    s = args.stride or (f if args.pool else 1)
    if args.transposed:
        out = conv_transpose_output_size(n, f, s, p, args.output_padding, d)
        print(f"({n} - 1)*{s} - 2*{p} + {d}*({f} - 1) + {args.output_padding} + 1 = {out}")
        return 0
    exact = (n + 2 * p - d * (f - 1) - 1) / s + 1
    formula = f"({n} + 2*{p} - {d}*({f} - 1) - 1) / {s} + 1"
    if args.pool:
        out = pool_output_size(n, f, s, p, d, ceil_mode=args.ceil, strict=not args.floor)
    else:
        out = conv_output_size(n, f, s, p, d, strict=not args.floor)
    if out != exact:  # rounded: say which way, and what it leaves out
        unused = "" if args.ceil else f": the last {n + 2 * p - d * (f - 1) - 1 - (out - 1) * s} pixel(s) unused"
        print(f"{formula} = {exact:g} -> {out} ({'ceil' if args.ceil else 'floor, as PyTorch'}{unused})")
    else:
        print(f"{formula} = {out}")
    return 0


def _float(text: str, ok, rule: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{rule}, got {text}")
    return value


def positive_float(text: str) -> float:
    return _float(text, lambda v: v > 0, "must be positive")


def non_negative_float(text: str) -> float:
    return _float(text, lambda v: v >= 0, "must not be negative")


def fraction(text: str) -> float:
    return _float(text, lambda v: 0 <= v < 1, "must be a fraction in [0, 1)")


TRAIN_FLAGS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "nesterov", "weight_decay", "l1", "l2", "schedule",
               "step_size", "gamma", "warmup_epochs", "label_smoothing", "mixup", "dropout", "init", "clip_grad_norm",
               "normalize", "whiten", "layer_stats", "loss", "target", "compile", "seed", "device", "out", "data_dir",
               "checkpoint_steps", "checkpoint_minutes", "on_bad_image", "weights", "strategy", "freeze_until",
               "head_lr_mult", "train_per_class", "test_per_class", "val_split", "early_stop")


def key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as JSON (numbers, true/false, lists) or else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def dataset_name(text: str) -> str:
    from .data import DATASETS

    if text in DATASETS or text == "mnist-scenes":
        return text
    for prefix, what in (("folder:", "folder or zip file"), ("csv:", "CSV file"), ("voc:", "VOC2012 folder")):
        if text.startswith(prefix):
            if not Path(text[len(prefix):]).exists():
                raise argparse.ArgumentTypeError(f"no such {what}: {text[len(prefix):]}")
            return text
    import difflib
    close = difflib.get_close_matches(text, DATASETS, n=2)
    raise argparse.ArgumentTypeError(f"unknown dataset {text!r}" + (f"; closest: {', '.join(close)}" if close else "")
                                     + f"; use {', '.join(DATASETS)}, mnist-scenes, voc:PATH or folder:PATH")


def read_config(path: str | None) -> dict:
    """Settings from a JSON or TOML file (the keys of TrainConfig); explicit flags win."""
    if not path:
        return {}
    from .train import TrainConfig

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise CnnlabError(f"config file {path}: {e.strerror}") from None
    try:
        if p.suffix == ".toml":
            import tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, ImportError) as e:
        raise CnnlabError(f"config file {path}: not valid {'TOML' if p.suffix == '.toml' else 'JSON'} ({e})") from None
    if not isinstance(data, dict):
        raise CnnlabError(f"config file {path}: expected a table of settings")
    known = {f for f in TrainConfig.__dataclass_fields__} - {"model", "out", "resume", "overwrite"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CnnlabError(f"config file {path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for key, value in data.items():
        if not TrainConfig.fits_type(key, value):
            raise CnnlabError(f"config file {path}: {key} = {value!r} should be like {TrainConfig.example(key)!r}")
    return data


def resumed_settings(args: argparse.Namespace) -> dict:
    """With --resume, the settings the run was started with (its config.json); flags win."""
    from .train import TrainConfig

    config = Path(args.out) / "config.json" if args.resume and args.out else None
    if config is None or not config.is_file():
        return {}
    try:
        saved = json.loads(config.read_text())
    except (OSError, ValueError) as e:
        raise CnnlabError(f"{config}: not readable ({e}); cannot resume this run") from None
    if not isinstance(saved, dict) or saved.get("model") != args.model:
        raise CnnlabError(f"{args.out} is a run of {saved.get('model') if isinstance(saved, dict) else '?'}, "
                          f"not of {args.model}")
    keep = set(TrainConfig.__dataclass_fields__) - {"model", "out", "resume", "overwrite", "max_steps"}
    return {k: v for k, v in saved.items() if k in keep}


def cmd_train(args: argparse.Namespace) -> int:
    from .registry import get_model_info
    from .train import recipe, refuse_existing_run, train

    get_model_info(args.model)  # unknown names fail before any data is read
    settings = {**resumed_settings(args), **read_config(args.config),
                **{k: v for k in TRAIN_FLAGS if (v := getattr(args, k)) is not None}}
    if args.augment is not None:  # "crop,flip", or "" for none: TrainConfig splits names at commas
        settings["augment"] = args.augment
    if args.classes:
        settings["classes"] = args.classes
    if args.model_kwargs:
        settings["model_kwargs"] = {**settings.get("model_kwargs", {}), **dict(args.model_kwargs)}
    dataset = settings.pop("dataset", None)
    dataset = args.dataset or dataset or "mnist"
    settings.update({k: v for k, v in (("resume", args.resume or None), ("overwrite", args.overwrite or None),
                                       ("max_steps", args.max_steps),
                                       ("overfit_batch", args.overfit_batch or None)) if v is not None})
    cfg = recipe(args.model, dataset, **settings)
    if args.command == "finetune" and not cfg.weights:
        raise CnnlabError("finetune starts from trained weights: give --weights imagenet, a weights file or a "
                          "cnnlab run (`cnnlab train` trains from scratch)")
    refuse_existing_run(cfg)  # before anything is printed
    created = bool(cfg.out) and not Path(cfg.out).exists()
    if cfg.out:
        try:
            Path(cfg.out).mkdir(parents=True, exist_ok=True)
            probe = Path(cfg.out) / f".write-test-{os.getpid()}"  # one per torchrun process
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise CnnlabError(f"output directory {cfg.out} is not writable ({e.strerror}); choose another --out")
    lead = os.environ.get("RANK", "0") == "0"  # in a torchrun job the first process speaks for all
    if lead:
        print(f"training {cfg.model} on {cfg.dataset}: {cfg.epochs} epochs, batch {cfg.batch_size}, "
              f"{cfg.optimizer} lr {cfg.lr}, {cfg.schedule} schedule" + (f", run directory {cfg.out}" if cfg.out else ""))
    try:
        result = train(cfg)
    except BaseException:
        if created:  # refused before writing anything: leave no empty run directory behind
            try:
                Path(cfg.out).rmdir()  # only if empty
            except OSError:
                pass
        raise
    t = result["test"]
    if lead:
        print(f"test pixel accuracy {100 * t['top1']:.2f}%, mean IoU {100 * t['miou']:.2f}%" if "miou" in t
              else f"test top-1 {100 * t['top1']:.2f}%" + (f", top-5 {100 * t['top5']:.2f}%"
                                                             if result["num_classes"] > 5 else "") if "top1" in t
              else f"test RMSE {t['rmse']:.4f}, MAE {t['mae']:.4f} (in the target's units)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_runs, evaluate_segmentation_run, run_config, write_confusion, write_gallery
    from .segmentation import is_segmentation

    if is_segmentation(args.dataset or run_config(args.runs[0])["dataset"]):
        if args.test_per_class:
            raise CnnlabError("--test-per-class picks images of a class; a segmentation dataset has every class "
                              "in every image")
        return eval_segmentation(args, evaluate_segmentation_run)
    if args.tta != "none":  # every test-time augmentation includes mirror images
        unmirrored = [r for r in args.runs if not run_config(r)["dataset"].startswith("folder:")
                      and "flip" not in run_config(r).get("augment", ())]
        if unmirrored:
            print(f"cnnlab: note: {', '.join(map(str, unmirrored))} trained without flipped images; --tta {args.tta} "
                  "averages in mirror images, which can hurt where mirroring changes the class (digits, letters)",
                  file=sys.stderr)
    result = evaluate_runs(args.runs, args.dataset, args.tta, args.data_dir, args.device, args.test_per_class)
    out = Path(args.out) if args.out else (Path(args.runs[0]) if Path(args.runs[0]).is_dir() else None)
    files = write_confusion(result, out) if out else []
    if out and (gallery := write_gallery(result, out / "misclassified.png")):
        files.append(gallery)
    result.pop("_gallery", None)
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    what = "ensemble of " + ", ".join(args.runs) if len(args.runs) > 1 else args.runs[0]
    print(f"{what} on {result['dataset']} test ({result['images']:,} images, tta {result['tta']})")
    print(f"loss {result['loss']:.4f}  top-1 {100 * result['top1']:.2f}% (error {100 * result['top1_error']:.2f}%)"
          + (f"  top-5 {100 * result['top5']:.2f}% (error {100 * result['top5_error']:.2f}%)"
             if len(result["per_class"]) > 5 else ""))  # of 5 classes or fewer, top-5 is 100 % by definition
    width = max(len(c) for c in result["per_class"])
    for name, acc in result["per_class"].items():
        print(f"  {name.ljust(width)}  {100 * acc:6.2f}%")
    for f in files:
        print(f"wrote {f}")
    return 0


def eval_segmentation(args: argparse.Namespace, evaluate) -> int:
    if len(args.runs) > 1 or args.tta != "none":
        raise CnnlabError("segmentation runs are evaluated one at a time, without --tta")
    out = Path(args.out) if args.out else (Path(args.runs[0]) if Path(args.runs[0]).is_dir() else None)
    result = evaluate(args.runs[0], args.dataset, args.data_dir, args.device, out)
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.runs[0]} on {result['dataset']} test ({result['images']:,} images)")
    print(f"pixel accuracy {100 * result['pixel_accuracy']:.2f}%  mean accuracy {100 * result['mean_accuracy']:.2f}%  "
          f"mean IoU {100 * result['miou']:.2f}%")
    width = max(len(c) for c in result["iou"])
    for name, iou in result["iou"].items():
        print(f"  {name.ljust(width)}  IoU " + (f"{100 * iou:6.2f}%" if iou is not None else "     -"))
    if "picture" in result:
        print(f"wrote {result['picture']}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .data import IMAGE_EXTENSIONS
    from .evaluate import predict_images

    images = []
    for given in map(Path, args.images):  # a folder stands for the images in it, by name
        if given.is_dir():
            found = sorted(p for p in given.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not found:
                raise CnnlabError(f"{given}: a folder without image files ({', '.join(IMAGE_EXTENSIONS)})")
            images += found
        else:
            images.append(given)
    for path, top in zip(images, predict_images(args.run, images, args.top)):
        print(f"{path}: " + ", ".join(f"{name} {100 * p:.1f}%" for name, p in top))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from .transfer import features, linear_classifier

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else ()
    feats = features(args.model, args.weights, args.dataset, args.output, classes, args.train_per_class,
                     args.data_dir, args.test_per_class, args.device, dict(args.model_kwargs or ()))
    print(f"features: {feats['train_x'].shape[1]} per image, {len(feats['train_y'])} training and "
          f"{len(feats['test_y'])} test images, {feats['seconds']:.1f}s" + (f"; wrote {args.output}" if args.output else ""))
    if args.classifier:
        r = linear_classifier(feats, args.classifier, args.c)
        print(f"{args.classifier}: train accuracy {100 * r['train_accuracy']:.2f}%, "
              f"test accuracy {100 * r['test_accuracy']:.2f}% ({r['seconds']:.1f}s)")
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    from .transfer import advise

    r = advise(args.samples, args.similarity)
    print(f"{r['data']} data ({r['samples_per_class']} labelled images per class), {r['similarity']} similarity: "
          f"{r['strategy']}\n  why: {r['why']}\n  run: {r['command']}")
    return 0


def cmd_stylize(args: argparse.Namespace) -> int:
    import torch

    from .style import (CONTENT_LAYER, STYLE_LAYERS, default_preprocess, default_style_weight, read_image,
                        save_image, stylize, vgg_features)
    from .train import pick_device

    device = pick_device(args.device)
    size = args.size or (512 if device.type == "cuda" else 256)
    out = Path(args.output)
    if not out.parent.is_dir():
        raise CnnlabError(f"{out.parent}: no such directory for the picture")
    content, style = read_image(args.content, size).to(device), read_image(args.style, size).to(device)
    features, used = vgg_features(args.features, args.weights, args.seed, log=print)
    preprocess = default_preprocess(used) if args.preprocess == "auto" else args.preprocess
    style_weight = args.style_weight if args.style_weight is not None else default_style_weight(used)
    print(f"stylize: {args.features} ({used} weights, {preprocess} input), {tuple(content.shape[2:])} px, "
          f"{args.optimizer} {args.steps} steps, alpha {args.content_weight}, beta {style_weight}")
    torch.manual_seed(args.seed)
    snapshot = (lambda step, x: save_image(x, out.with_name(f"{out.stem}-{step:04d}{out.suffix}"))) \
        if args.snapshot_every else None
    image, history = stylize(
        content, style, features, preprocess, args.content_weight, style_weight, args.tv_weight,
        args.style_layers.split(",") if args.style_layers else STYLE_LAYERS, args.content_layer or CONTENT_LAYER,
        args.optimizer, args.steps, args.lr, args.init, args.pool, args.seed, snapshot, args.snapshot_every)
    save_image(image, out)
    first, last = history[0], history[-1]
    print(f"wrote {out}: loss {first['loss']:.4g} -> {last['loss']:.4g} (style {first['style']:.3g} -> "
          f"{last['style']:.3g}, content {last['content']:.3g}) in {last['time']:.0f}s")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from .experiments import EXPERIMENTS, run_experiment, write_gallery

    if args.list or not args.name:
        for exp in EXPERIMENTS.values():
            print(f"{exp.name:16s} {exp.claim}")
        return 0
    if args.name == "all":
        root = Path(args.out or Path("runs") / "experiments")
        for name in EXPERIMENTS:
            run_experiment(name, args.scale, args.seeds, root / name)
        if args.gallery:
            print(f"wrote {write_gallery(root, Path(args.gallery))}")
        return 0
    run_experiment(args.name, args.scale, args.seeds, args.out)
    if args.gallery:
        print(f"wrote {write_gallery(Path(args.out or Path('runs') / 'experiments' / args.name).parent, Path(args.gallery))}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    r = export(args.source, args.format, args.output, weights=args.weights)
    check = f"; outputs match PyTorch within {r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
    print(f"wrote {r['file']} ({r['format']}, {r['bytes']:,} bytes, {r['model']}, input (N, "
          f"{', '.join(map(str, r['input_size']))})){check}")
    return 0


def cmd_visualize(args: argparse.Namespace) -> int:
    from .evaluate import visualize_feature_maps, visualize_filters

    out = Path(args.out) if args.out else (Path(args.run) if Path(args.run).is_dir() else Path("."))
    if not args.filters and not args.feature_maps:
        raise CnnlabError("say what to draw: --filters and/or --feature-maps IMAGE")
    if args.filters:
        print(f"wrote {visualize_filters(args.run, out / 'filters.png')}")
    if args.feature_maps:
        print(f"wrote {visualize_feature_maps(args.run, args.feature_maps, args.layer, out / 'feature_maps.png')}")
    return 0


def add_train_options(p: argparse.ArgumentParser) -> None:
    from .data import DATASETS
    from .train import COMPILE_MODES, INITS, NORMALIZE, OPTIMIZERS, SCHEDULES, STRATEGIES

    p.add_argument("model", help="a model name from `cnnlab models`")
    p.add_argument("--dataset", type=dataset_name, default=None,
                   help=f"{', '.join(DATASETS)}, folder:PATH (class sub-folders, or a zip of them), csv:PATH, "
                        "or for segmentation mnist-scenes and voc:PATH (a VOC2012 folder)")
    p.add_argument("--target", help="the column to predict, for csv:PATH")
    p.add_argument("--loss", choices=("ce", "mse"), help="ce: cross-entropy (default); mse: regression")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--lr", type=positive_float, help="(peak) learning rate")
    p.add_argument("--momentum", type=non_negative_float)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum (SGD)")
    p.add_argument("--weight-decay", type=non_negative_float)
    p.add_argument("--l1", type=non_negative_float, help="L1 penalty on weights")
    p.add_argument("--l2", type=non_negative_float, help="L2 penalty on weights (with --l1: elastic net)")
    p.add_argument("--schedule", choices=SCHEDULES)
    p.add_argument("--step-size", type=positive_int, help="epochs between drops of the step schedule")
    p.add_argument("--gamma", type=positive_float, help="factor of step, multistep, exponential, plateau")
    p.add_argument("--warmup-epochs", type=non_negative_float, help="linear learning-rate warm-up")
    p.add_argument("--label-smoothing", type=non_negative_float)
    p.add_argument("--mixup", type=non_negative_float, metavar="ALPHA",
                   help="blend image pairs and their labels, lam ~ Beta(ALPHA, ALPHA) (Zhang et al.: 0.2-1)")
    p.add_argument("--dropout", type=non_negative_float, help="rate of every dropout layer")
    p.add_argument("--init", choices=INITS, help="weight initialisation (paper: the builder's own)")
    p.add_argument("--clip-grad-norm", type=positive_float)
    p.add_argument("--augment", help="comma-separated: crop, translate, flip, rotate, jitter, noise, scale, pca, "
                                      "cutout ('' for none)")
    p.add_argument("--normalize", choices=NORMALIZE,
                   help="standard: per-channel mean and std (default); center: AlexNet's raw 0-255 values less the mean")
    p.add_argument("--whiten", action="store_true", default=None, help="ZCA-whiten the inputs (fitted on the training set)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--out", help="run directory (config.json, metrics.jsonl, *.safetensors)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with its settings (flags given win)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (without it, a new run refuses to overwrite one)")
    p.add_argument("--checkpoint-steps", type=positive_int,
                   help="also write the resumable checkpoint every N steps (default: after every epoch only)")
    p.add_argument("--checkpoint-minutes", type=positive_float, help="also write it every M minutes")
    p.add_argument("--on-bad-image", choices=("fail", "skip"),
                   help="an unreadable file in an image folder: stop naming it (default), or skip it")
    p.add_argument("--data-dir", help="dataset root (default: $CNNLAB_DATA, else ~/.cache/cnnlab/data)")
    p.add_argument("--config", help="JSON or TOML file of settings (explicit flags win)")
    p.add_argument("--max-steps", type=positive_int, help="stop after N optimisation steps (quick check)")
    p.add_argument("--overfit-batch", action="store_true", help="train on one batch only; the loss must go to ~0")
    p.add_argument("--compile", nargs="?", const="default", choices=COMPILE_MODES, metavar="MODE",
                   help="torch.compile the model for training; MODE: " + ", ".join(COMPILE_MODES)
                   + " (default: default; reduce-overhead replays CUDA graphs)")
    p.add_argument("--layer-stats", action="store_true", default=None,
                   help="per-layer activation and gradient statistics after every epoch (layer_stats.jsonl)")
    p.add_argument("--weights", help="start from these weights: imagenet, a .pth/.safetensors file or a run")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="what trains: a new classifier only (feature-extractor), also the top layers, "
                        "everything (fine-tune-all, the default), or from-scratch ignoring --weights")
    p.add_argument("--freeze-until", help="keep every layer up to and including this one fixed (e.g. layer3)")
    p.add_argument("--head-lr-mult", type=positive_float, help="the classifier's lr is the lr times this")
    p.add_argument("--classes", help="comma-separated class names: train and test on these only")
    p.add_argument("--train-per-class", type=positive_int, help="the first N training images of each class")
    p.add_argument("--test-per-class", type=positive_int, help="evaluate on the first N test images of each class")
    p.add_argument("--val-split", type=fraction,
                   help="hold out this fraction of the training images (the last of each class) for validation: "
                        "the best model and early stopping go by it instead of the test set")
    p.add_argument("--early-stop", type=positive_int, metavar="PATIENCE",
                   help="stop after this many epochs without a better model (validation, else test)")
    p.add_argument("--model-kwargs", nargs="+", type=key_value, metavar="KEY=VALUE",
                   help="arguments of the model's builder, e.g. activation=tanh width=0.5 (values are JSON or text)")


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (what was wrong and where to look), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="cnnlab", description="The landmark CNNs, exact and fast.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("models", help="list the model zoo with parameter counts")
    p.add_argument("pattern", nargs="?", help="shell-style filter such as 'resnet*'")
    p.set_defaults(func=cmd_models)

    def analysis_options(p):
        p.add_argument("--input", type=parse_size, metavar="CxHxW", help="input size (default: the model's)")
        p.add_argument("--batch", type=positive_int, default=1, metavar="N", help="batch size (default 1)")
        p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
        p.add_argument("--mode", choices=("eval", "train"), default="eval")
        p.add_argument("--model-kwargs", nargs="+", type=key_value, metavar="KEY=VALUE",
                       help="arguments of the model's builder, e.g. width=0.25 (values are JSON or text)")

    p = sub.add_parser("summary", help="per-layer shapes, parameters, memory, MACs and receptive field")
    p.add_argument("name", help="a model name from `cnnlab models`, or a run directory (its model)")
    analysis_options(p)
    p.add_argument("--format", choices=("table", "markdown", "json", "csv"), default="table")
    p.add_argument("--optimizer", choices=("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"),
                   help="also estimate the memory of a training step with this optimiser")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("compare", help="side-by-side totals of several models")
    p.add_argument("names", nargs="+", metavar="NAME", help="model names or run directories")
    analysis_options(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("conv-size", help="output size of a convolution, pooling or transposed convolution")
    p.add_argument("size", type=positive_int, help="input size along one axis")
    p.add_argument("kernel", type=positive_int)
    p.add_argument("--stride", type=positive_int, default=None, help="default 1 (pooling: the kernel size)")
    p.add_argument("--padding", type=non_negative_int, default=0)
    p.add_argument("--dilation", type=positive_int, default=1)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--pool", action="store_true", help="pooling (stride defaults to the kernel size)")
    kind.add_argument("--transposed", action="store_true", help="transposed convolution")
    rounding = p.add_mutually_exclusive_group()
    rounding.add_argument("--ceil", action="store_true", help="pooling with ceil rounding (Caffe, ceil_mode=True)")
    rounding.add_argument("--floor", action="store_true",
                          help="round a size that does not fit down, as PyTorch does (default: an error)")
    p.add_argument("--output-padding", type=non_negative_int, default=0)
    p.set_defaults(func=cmd_conv_size)

    p = sub.add_parser("train", help="train a zoo model on a dataset (default recipe per model and dataset)")
    add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="transfer learning: train from pretrained weights with a strategy")
    add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate runs on a test split: accuracy, per-class accuracy, confusion")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or .safetensors files; several: ensemble")
    p.add_argument("--dataset", type=dataset_name, help="default: the run's")
    p.add_argument("--tta", choices=("none", "flip", "10crop", "multicrop"), default="none",
                   help="test-time augmentation: mirror images; 4 corner + centre crops and their mirrors "
                        "(AlexNet); or GoogLeNet's crops at 4 scales (48 views)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--out", help="where confusion.csv/png go (default: the run directory)")
    p.add_argument("--test-per-class", type=positive_int,
                   help="the first N test images of each class only (a quick check; default: all)")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-5 classes of image files")
    p.add_argument("run", help="a run directory or .safetensors file")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders of them")
    p.add_argument("--top", type=positive_int, default=5)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("visualize", help="PNG grids of the first layer's filters and of a layer's feature maps")
    p.add_argument("run", help="a run directory or .safetensors file")
    p.add_argument("--filters", action="store_true", help="the first convolution's filters")
    p.add_argument("--feature-maps", metavar="IMAGE", help="feature maps for this image file")
    p.add_argument("--layer", help="layer name for --feature-maps (default: the first convolution)")
    p.add_argument("--out", help="folder for filters.png / feature_maps.png (default: the run directory)")
    p.set_defaults(func=cmd_visualize)

    p = sub.add_parser("features", help="penultimate-layer features of a dataset; optionally a linear SVM on them")
    p.add_argument("model", help="a model name from `cnnlab models`")
    p.add_argument("--weights", help="imagenet, a weights file or a cnnlab run (default: untrained)")
    p.add_argument("--dataset", type=dataset_name, required=True)
    p.add_argument("-o", "--output", help="write train_x, train_y, test_x, test_y, classes to this .npz")
    p.add_argument("--classifier", choices=("svm", "logreg"), help="fit it on the training features, test it")
    p.add_argument("--c", type=positive_float, default=1.0, help="the classifier's inverse regularisation")
    p.add_argument("--classes", help="comma-separated class names: these only")
    p.add_argument("--train-per-class", type=positive_int, help="the first N training images of each class")
    p.add_argument("--test-per-class", type=positive_int, help="evaluate on the first N test images of each class")
    p.add_argument("--model-kwargs", nargs="+", type=key_value, metavar="KEY=VALUE",
                   help="arguments of the model's builder, e.g. activation=tanh width=0.5 (values are JSON or text)")
    p.add_argument("--data-dir")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("advise", help="the transfer-learning decision matrix: what to do with your data")
    p.add_argument("--samples", type=positive_int, required=True, help="labelled images per class")
    p.add_argument("--similarity", choices=("high", "low"), required=True,
                   help="how much the data looks like what the weights were trained on")
    p.set_defaults(func=cmd_advise)

    p = sub.add_parser("stylize", help="neural style transfer (Gatys et al.): CONTENT painted in the style of STYLE")
    p.add_argument("content", help="the content image")
    p.add_argument("style", help="the style image")
    p.add_argument("-o", "--output", required=True, help="the picture to write (.png or .jpg)")
    p.add_argument("--size", type=positive_int, help="longer side in pixels (default 512 on CUDA, 256 on the CPU)")
    p.add_argument("--content-weight", type=non_negative_float, default=1.0, help="alpha")
    p.add_argument("--style-weight", type=non_negative_float,
                   help="beta (default 1e3 for trained weights, the paper's alpha/beta = 1e-3; 1e10 for random)")
    p.add_argument("--tv-weight", type=non_negative_float, default=0.0, help="total-variation smoothing")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--steps", type=positive_int, default=150, help="L-BFGS iterations or Adam steps")
    p.add_argument("--lr", type=positive_float, default=0.02, help="Adam's step on pixel values (0-1)")
    p.add_argument("--init", choices=("content", "noise", "style"), default="content")
    p.add_argument("--style-layers", help="comma-separated (default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)")
    p.add_argument("--content-layer", help="default relu4_2")
    p.add_argument("--features", default="vgg19", help="the VGG whose feature maps are used")
    p.add_argument("--weights", default="auto",
                   help="auto (ImageNet if obtainable, else random), imagenet, random, a weights file or a run")
    p.add_argument("--preprocess", choices=("auto", "torchvision", "caffe"), default="auto",
                   help="the input the weights expect: torchvision (RGB, standardised) or caffe (BGR 0-255 "
                        "minus the mean pixel); auto: caffe for files with caffe in their name")
    p.add_argument("--pool", choices=("max", "avg"), default="avg",
                   help="the paper's average pooling (default) or the network's max pooling")
    p.add_argument("--snapshot-every", type=positive_int, default=0, help="also write OUT-<step> every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser("experiment", help="run one of the lectures' claims as a controlled experiment")
    p.add_argument("name", nargs="?", help="the experiment (see --list), or all")
    p.add_argument("--list", action="store_true", help="list the experiments and their claims")
    p.add_argument("--scale", choices=("small", "full"), default="small",
                   help="small: minutes on a CPU, on data subsets; full: the paper's setting (a GPU)")
    p.add_argument("--seeds", type=positive_int, default=1, help="runs per arm (mean +- std in the report)")
    p.add_argument("--out", help="report folder (default runs/experiments/NAME; for all: the parent folder)")
    p.add_argument("--gallery", metavar="PAGE.md", help="also write a Markdown page of every report found beside it")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("export", help="write a run or a zoo model as ONNX or TorchScript (checked after writing)")
    p.add_argument("source", metavar="RUN_OR_NAME", help="a run directory or .safetensors file, or a model name")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.add_argument("--weights", help="for a model name: imagenet, a weights file or a run (default: untrained)")
    p.set_defaults(func=cmd_export)
    parser.commands = sub.choices
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command's own parser, which points to its own --help
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except CnnlabError as e:
        if args.debug:
            raise
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cnnlab models | head`: the reader has gone, as with any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush says nothing
        return 128 + 13  # SIGPIPE
    except OSError as e:  # the place, not the program: a full disk, a forbidden or read-only folder
        if args.debug or e.errno not in PLACE_ERRORS:
            raise
        print(f"cnnlab: error: {str(e.filename) + ': ' if e.filename else ''}{e.strerror.lower()}; "
              f"{PLACE_ERRORS[e.errno]}", file=sys.stderr)
        return 2
