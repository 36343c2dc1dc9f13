"""A hostile but realistic user, as one table: bad and odd input to every command and to the
Python API. Each row says what must happen: success, or one line that names the input, says what
was wrong and what to do, with a non-zero exit code; never a traceback, never a silent wrong
result. Every row also checks that the files a user had are byte for byte what they were."""

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import DATA, tiny_mnist_run
from PIL import Image

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError


@dataclass
class Row:
    """What a command or a call must do: `ok`, or fail with an error containing `says`."""

    run: list[str] | object  # a command line (the words after `cnnlab`), or a function of the world
    says: str | None = None  # a part of the one-line error; None: it must succeed
    code: int = 2


class World:
    """The files of a user: a trained run, images, tables, config files, odd files and folders."""

    def __init__(self, root: Path):
        self.root = root
        self.run = root / "run"  # an MLP trained on MNIST, 5 images per class
        self.seg = root / "segrun"  # what a run folder of another kind looks like: made on demand
        self.digit = root / "digit.png"
        self.text = root / "notes.png"  # text in an image's name
        self.fifo = root / "pipe.png"
        self.empty = root / "empty"
        self.table = root / "table.csv"
        self.target_only = root / "target_only.csv"
        self.latin1 = root / "latin1.json"
        self.nested = root / "nested.json"
        self.nan = root / "nan.json"
        self.listed = root / "list.json"
        self.existing = root / "existing.out"
        self.broken = root / "broken_run"  # config.json without its input size
        self.zero_std = root / "zero_std_run"
        self.fifo_folder = root / "fifo_folder"
        self.bomb = root / "bomb.png"
        self.bad_folder = root / "bad_folder"  # train/ and val/ photos, one of them not an image


def build(root: Path) -> World:
    w = World(root)
    assert main(tiny_mnist_run(w.run)) == 0
    raw = gzip.open(DATA / "mnist" / "t10k-images-idx3-ubyte.gz").read()[16 : 16 + 784]
    Image.frombytes("L", (28, 28), raw).save(w.digit)
    w.text.write_text("not an image")
    os.mkfifo(w.fifo)
    w.empty.mkdir()
    w.table.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{2 * i}\n" for i in range(20)))
    w.target_only.write_text("y\n" + "".join(f"{i}\n" for i in range(20)))
    w.latin1.write_bytes('{"lr": 0.1, "target": "température"}'.encode("latin-1"))
    w.nested.write_text("[" * 100_000 + "]" * 100_000)
    w.nan.write_text('{"lr": NaN}')
    w.listed.write_text("[1, 2]")
    w.existing.write_text("a file the user keeps")
    for folder, edit in ((w.broken, lambda c: c.pop("input_size")), (w.zero_std, lambda c: c.update(std=[0.0]))):
        folder.mkdir()
        for f in w.run.iterdir():
            if f.is_file():
                (folder / f.name).write_bytes(f.read_bytes())
        config = json.loads((folder / "config.json").read_text())
        edit(config)
        (folder / "config.json").write_text(json.dumps(config))
    (w.fifo_folder / "cat").mkdir(parents=True)
    (w.fifo_folder / "dog").mkdir(parents=True)
    for cls in ("cat", "dog"):
        for i in range(12):
            (w.fifo_folder / cls / f"{i}.png").write_bytes(w.digit.read_bytes())
    os.mkfifo(w.fifo_folder / "dog" / "stuck.png")
    Image.new("1", (12_000, 12_000)).save(w.bomb)  # 144 megapixels in a few kB: over PIL's bomb limit
    for split, n in (("train", 6), ("val", 2)):
        for cls in ("cat", "dog"):
            (w.bad_folder / split / cls).mkdir(parents=True)
            for i in range(n):
                (w.bad_folder / split / cls / f"{i}.png").write_bytes(w.digit.read_bytes())
    (w.bad_folder / "train" / "dog" / "3.png").write_text("not an image")
    return w


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_fifo()
    }


# --- the table -----------------------------------------------------------------------------------

T = ["train", "mlp", "--dataset", "mnist", "--train-per-class", "5", "--test-per-class", "2", "--epochs", "1"]
NUMBERS = {  # a numeric flag of `cnnlab train` and values it must refuse
    "--epochs": ["0", "-1", "two", "1.5"],
    "--batch-size": ["0", "-4", "1e3"],
    "--lr": ["0", "-0.1", "nan", "inf"],
    "--momentum": ["1", "-0.5", "nan"],
    "--weight-decay": ["-1", "inf"],
    "--l1": ["-1", "nan"],
    "--l2": ["-1e-3"],
    "--step-size": ["0"],
    "--gamma": ["0", "-1", "inf"],
    "--warmup-epochs": ["-1", "inf", "nan"],
    "--label-smoothing": ["1", "-0.1"],
    "--mixup": ["-1", "inf"],
    "--dropout": ["1", "1.5"],
    "--clip-grad-norm": ["0", "-1", "nan"],
    "--seed": ["x", "1.5", "-1", "99999999999999999999999"],
    "--max-steps": ["0"],
    "--checkpoint-steps": ["0", "-2"],
    "--checkpoint-minutes": ["0", "inf"],
    "--head-lr-mult": ["0", "nan"],
    "--train-per-class": ["0"],
    "--test-per-class": ["-1"],
    "--val-split": ["1", "-0.1", "nan"],
    "--early-stop": ["0"],
    "--plateau-patience": ["0", "x"],
}
ROWS: dict[str, Row] = {f"train {flag} {v}": Row([*T, flag, v], flag) for flag, vs in NUMBERS.items() for v in vs}


def rows(**named: Row) -> None:
    ROWS.update({name.replace("_", " "): row for name, row in named.items()})


rows(  # the zoo and the analyser
    models_no_match=Row(["models", "zzz*"], "no model matches 'zzz*'"),
    models_all=Row(["models", "lenet*"]),
    summary_unknown=Row(["summary", "lenet6"], "unknown model 'lenet6'; closest: lenet5"),
    summary_bad_input=Row(["summary", "lenet5", "--input", "3xfoo"], "input size must look like 3x224x224"),
    summary_zero_input=Row(["summary", "lenet5", "--input", "0x32x32"], "input size must be positive"),
    summary_short_input=Row(["summary", "lenet5", "--input", "1x32"], "lenet5 takes inputs of 3 dimensions"),
    summary_wrong_channels=Row(["summary", "lenet5", "--input", "3x32x32"], "lenet5 expects input (N, 1, 32, 32)"),
    summary_tiny_input=Row(
        ["summary", "vgg16", "--input", "3x16x16"], "vgg16 expects input (N, 3, 224, 224), got (N, 3, 16, 16)"
    ),
    summary_batch_zero=Row(["summary", "lenet5", "--batch", "0"], "argument --batch: must be at least 1"),
    summary_dtype=Row(["summary", "lenet5", "--dtype", "int8"], "argument --dtype: invalid choice"),
    summary_mode=Row(["summary", "lenet5", "--mode", "test"], "argument --mode: invalid choice"),
    summary_empty_folder=Row(lambda w: ["summary", str(w.empty)], "not a run directory (no config.json)"),
    summary_broken_run=Row(lambda w: ["summary", str(w.broken)], "config.json: no input_size"),
    summary_run=Row(lambda w: ["summary", str(w.run)]),
    summary_huge_input=Row(["summary", "lenet5_modern", "--input", "1x28x28", "--batch", "100000000"]),
    summary_kwargs_unknown=Row(["summary", "mlp", "--model-kwargs", "nonsense=1"], "mlp cannot be built with"),
    summary_kwargs_nan=Row(["summary", "resnet20", "--model-kwargs", "width=NaN"], "resnet20 cannot be built with"),
    summary_kwargs_negative=Row(["summary", "resnet20", "--model-kwargs", "width=-1"], "resnet20 cannot be built"),
    train_beyond_memory=Row([*T, "--model-kwargs", "hidden=[100000000000]"], "does not fit in memory"),
    summary_kwargs_huge=Row(["summary", "resnet20", "--model-kwargs", "width=1000"]),  # meta device: no memory
    summary_kwargs_form=Row(["summary", "mlp", "--model-kwargs", "width"], "expected KEY=VALUE"),
    summary_csv_optimizer=Row(
        ["summary", "lenet5", "--format", "csv", "--optimizer", "adam"],
        "--optimizer adds a line the csv format has no place for",
    ),
    compare_unknown=Row(["compare", "lenet5", "vgg61"], "unknown model 'vgg61'"),
    compare_none=Row(["compare"], "the following arguments are required: NAME"),
    conv_zero=Row(["conv-size", "0", "3"], "must be at least 1, got 0"),
    conv_padding=Row(["conv-size", "7", "3", "--padding", "-1"], "argument --padding: must be at least 0"),
    conv_kernel_too_big=Row(["conv-size", "7", "9"], "kernel 9 (dilation 1) spans 9 pixels but the input is"),
    conv_not_integer=Row(["conv-size", "224", "11", "--stride", "4"], "is not an integer"),
    conv_both=Row(["conv-size", "7", "3", "--pool", "--transposed"], "not allowed with argument --pool"),
    conv_ceil_alone=Row(["conv-size", "7", "3", "--ceil"], "--ceil rounds pooling"),
    conv_output_padding_alone=Row(
        ["conv-size", "7", "3", "--output-padding", "1"], "--output-padding is for a transposed convolution"
    ),
    conv_output_padding_big=Row(
        ["conv-size", "7", "3", "--transposed", "--output-padding", "5"], "output_padding 5 must be smaller"
    ),
    conv_dilation_zero=Row(["conv-size", "7", "3", "--dilation", "0"], "argument --dilation: must be at least 1"),
    conv_huge=Row(["conv-size", str(10**30), "3"]),
    conv_floor=Row(["conv-size", "224", "7", "--stride", "2", "--padding", "3", "--floor"]),
)

rows(  # training: datasets, names and files
    train_unknown_model=Row(["train", "lenet6"], "unknown model 'lenet6'"),
    train_unknown_dataset=Row(["train", "mlp", "--dataset", "minst"], "unknown dataset 'minst'; closest: mnist"),
    train_empty_dataset=Row(["train", "mlp", "--dataset", ""], "unknown dataset ''"),
    train_no_folder=Row(["train", "mlp", "--dataset", "folder:/no/such"], "no such folder or zip file"),
    train_folder_is_a_file=Row(
        lambda w: ["train", "lenet5_modern", "--dataset", f"folder:{w.table}"], "neither a folder nor a zip file"
    ),
    train_folder_with_a_fifo=Row(
        lambda w: ["train", "lenet5_modern", "--dataset", f"folder:{w.fifo_folder}", "--epochs", "1"],
        "stuck.png: not a regular file",
    ),
    train_empty_folder=Row(
        lambda w: ["train", "lenet5_modern", "--dataset", f"folder:{w.empty}"], "no images in class sub-folders"
    ),
    train_no_csv=Row(["train", "mlp", "--dataset", "csv:/no/such.csv"], "no such CSV file"),
    train_csv_no_target=Row(
        lambda w: ["train", "mlp", "--dataset", f"csv:{w.table}"],
        "a csv: dataset is a regression: give --target COLUMN",
    ),
    train_csv_unknown_target=Row(
        lambda w: ["train", "mlp", "--dataset", f"csv:{w.table}", "--target", "z"], "no column 'z'; columns: a, b, y"
    ),
    train_csv_only_target=Row(
        lambda w: ["train", "mlp", "--dataset", f"csv:{w.target_only}", "--target", "y"],
        "has no column besides the target y to predict it from",
    ),
    train_csv_classes=Row(
        lambda w: ["train", "mlp", "--dataset", f"csv:{w.table}", "--target", "y", "--classes", "a,b"],
        "--classes picks images of a class; a csv: dataset has no classes",
    ),
    train_csv_per_class=Row(
        lambda w: ["train", "mlp", "--dataset", f"csv:{w.table}", "--target", "y", "--train-per-class", "3"],
        "--train-per-class picks images of a class",
    ),
    train_csv_model=Row(
        lambda w: ["train", "lenet5", "--dataset", f"csv:{w.table}", "--target", "y"],
        "a csv: dataset trains the mlp model",
    ),
    train_csv_ok=Row(lambda w: ["train", "mlp", "--dataset", f"csv:{w.table}", "--target", "y", "--epochs", "1"]),
    train_mse_on_images=Row([*T, "--loss", "mse"], "--loss mse is for a regression on a csv: dataset"),
    train_target_on_images=Row([*T, "--target", "y"], "--target names the column of a csv: dataset"),
    train_duplicate_classes=Row([*T, "--classes", "3,3,5"], "class '3' is named twice in --classes"),
    train_one_class=Row([*T, "--classes", "3"], "one class is nothing to tell apart: give two or more"),
    train_unknown_class=Row([*T, "--classes", "3,x"], "no class 'x' in this dataset"),
    train_dense_on_mnist=Row(
        ["train", "fcn32s", "--dataset", "mnist", "--train-per-class", "2"], "fcn32s scores every pixel"
    ),
    train_classifier_on_scenes=Row(["train", "lenet5", "--dataset", "mnist-scenes"], "mnist-scenes labels every pixel"),
    train_augment_unknown=Row([*T, "--augment", "crop,twist"], "unknown augmentation 'twist'"),
    train_compile_mode=Row([*T, "--compile", "turbo"], "argument --compile: invalid choice: 'turbo'"),
    train_device_mps=Row([*T, "--device", "mps"], "device 'mps' is not supported"),
    train_device_negative=Row([*T, "--device", "cuda:-1"], "device 'cuda:-1'"),
    train_device_empty=Row([*T, "--device", ""], "unknown device ''"),
    train_kwargs_classes=Row(
        [*T, "--model-kwargs", "num_classes=3"],
        "num_classes comes from the dataset; leave it out of --model-kwargs",
    ),
    train_kwargs_unknown=Row([*T, "--model-kwargs", "depth=3"], "mlp cannot be built with depth=3"),
    train_kwargs_name=Row([*T, "--model-kwargs", "3x=1"], "expected KEY=VALUE"),
    train_huge_batch=Row([*T, "--batch-size", str(10**12)]),
    train_huge_epochs_schedule=Row([*T, "--epochs", "1", "--warmup-epochs", "1e30", "--max-steps", "1"]),
    train_step_size_unused=Row([*T, "--step-size", "3"], "--step-size is for the step schedule"),
    train_gamma_unused=Row([*T, "--gamma", "0.5"], "--gamma is for the step, multistep, exponential and plateau"),
    train_patience_unused=Row([*T, "--plateau-patience", "4"], "--plateau-patience is for the plateau schedule"),
    train_sdlm_not_lenet5=Row([*T, "--optimizer", "sdlm"], "sdlm is LeNet-5's own optimiser"),
    train_sdlm_mu_unused=Row([*T, "--sdlm-mu", "0.1"], "--sdlm-mu is for the sdlm optimiser"),
    train_lr_table_unused=Row([*T, "--lr-table", "0.1x2,0.01"], "--lr-table is for the table schedule"),
    train_table_without_rates=Row([*T, "--schedule", "table"], "takes its learning rates from --lr-table"),
    train_table_and_lr=Row([*T, "--schedule", "table", "--lr-table", "0.1", "--lr", "0.5"], "leave --lr out"),
    train_lr_table_malformed=Row([*T, "--schedule", "table", "--lr-table", "0.1x"], "must look like 5e-4x2"),
    train_momentum_unused=Row([*T, "--optimizer", "adam", "--momentum", "0.5"], "adam has no --momentum"),
    train_nesterov_unused=Row([*T, "--optimizer", "adamw", "--no-nesterov"], "--nesterov is for SGD"),
    train_checkpoint_no_out=Row([*T, "--checkpoint-steps", "5"], "checkpoints are written into a run directory"),
    train_bad_image_unused=Row([*T, "--on-bad-image", "skip"], "--on-bad-image is for image folders"),
    train_data_dir_folder=Row(
        lambda w: ["train", "lenet5_modern", "--dataset", f"folder:{w.fifo_folder}", "--data-dir", str(DATA)],
        "--data-dir is where the named datasets are",
    ),
    train_overfit_ok=Row([*T, "--overfit-batch", "--max-steps", "2"]),
    train_diverges=Row([*T, "--lr", "1e30", "--max-steps", "3"], "loss became nan after epoch 1; nothing was saved"),
)

rows(  # training: run folders, config files, resuming, weights
    train_out_empty=Row([*T, "--out", ""], "the run directory (--out) '' is empty"),
    train_out_blank=Row([*T, "--out", " "], "the run directory (--out) ' ' is empty"),
    train_out_unwritable=Row([*T, "--out", "/dev/null/run"], "output directory /dev/null/run is not writable"),
    train_out_is_a_file=Row(lambda w: [*T, "--out", str(w.existing)], "a file is in the way of the run directory"),
    train_out_holds_a_run=Row(lambda w: [*T, "--out", str(w.run)], "already holds a run (mlp on mnist)"),
    train_overwrite_fails=Row(
        lambda w: [
            "train",
            "lenet5_modern",
            "--dataset",
            f"folder:{w.bad_folder}",
            "--out",
            str(w.run),
            "--overwrite",
            "--epochs",
            "1",
            "--batch-size",
            "4",
        ],
        "3.png: not a readable image",
    ),  # and the run it was to replace is whole
    train_out_long_name=Row(lambda w: [*T, "--out", str(w.root / ("x" * 300))], "name too long"),
    train_resume_no_out=Row([*T, "--resume"], "resume needs the run directory (--out)"),
    train_resume_and_overwrite=Row(
        lambda w: [*T, "--out", str(w.run), "--resume", "--overwrite"],
        "--resume continues the run in --out and --overwrite replaces it",
    ),
    train_resume_other_model=Row(
        lambda w: ["train", "lenet5", "--out", str(w.run), "--resume"], "is a run of mlp, not of lenet5"
    ),
    train_resume_empty=Row(lambda w: ["train", "mlp", "--out", str(w.empty), "--resume"], "checkpoint.safetensors"),
    train_resume_changed_lr=Row(
        lambda w: ["train", "mlp", "--out", str(w.run), "--resume", "--lr", "0.3", "--data-dir", str(DATA)],
        "was trained with lr",
    ),
    train_config_missing=Row([*T, "--config", "/no/such.toml"], "config file /no/such.toml: No such file"),
    train_config_folder=Row(lambda w: [*T, "--config", str(w.empty)], "empty: Is a directory"),
    train_config_latin1=Row(lambda w: [*T, "--config", str(w.latin1)], "not UTF-8 text"),
    train_config_nested=Row(lambda w: [*T, "--config", str(w.nested)], "nested too deeply"),
    train_config_nan=Row(lambda w: [*T, "--config", str(w.nan)], "learning rate must be a finite number, got nan"),
    train_config_list=Row(lambda w: [*T, "--config", str(w.listed)], "expected a table of settings"),
    train_weights_missing=Row([*T, "--weights", "/no/such.pth"], "no such file or directory"),
    train_weights_empty_folder=Row(
        lambda w: [*T, "--weights", str(w.empty)], "holds neither a cnnlab run (config.json) nor"
    ),
    train_weights_other_model=Row(
        lambda w: ["train", "lenet5_modern", "--weights", str(w.run), "--train-per-class", "5"],
        "holds a mlp, not a lenet5_modern",
    ),
    train_weights_text=Row(lambda w: [*T, "--weights", str(w.text)], "not a PyTorch weights file (neither a zip"),
    train_init_with_weights=Row(
        lambda w: [*T, "--weights", str(w.run), "--init", "he"],
        "--init re-initialises the weights that --weights loads",
    ),
    train_freeze_unknown=Row(
        lambda w: [*T, "--weights", str(w.run), "--freeze-until", "nosuch"], "has no such layer; its top-level layers"
    ),
    finetune_no_weights=Row(["finetune", "mlp"], "finetune starts from trained weights: give --weights"),
)

rows(  # evaluating, predicting, drawing
    eval_missing=Row(["eval", "/no/such/run"], "/no/such/run: no such file"),
    eval_empty_folder=Row(lambda w: ["eval", str(w.empty)], "not a run directory (no config.json)"),
    eval_broken_run=Row(lambda w: ["eval", str(w.broken)], "config.json: no input_size"),
    eval_zero_std=Row(lambda w: ["eval", str(w.zero_std)], "config.json: std must be positive"),
    eval_text_weights=Row(lambda w: ["eval", str(w.text)], "not a readable safetensors file"),
    eval_tta=Row(lambda w: ["eval", str(w.run), "--tta", "twist"], "argument --tta: invalid choice"),
    eval_format=Row(lambda w: ["eval", str(w.run), "--format", "xml"], "argument --format: invalid choice"),
    eval_other_classes=Row(
        lambda w: ["eval", str(w.run), "--dataset", "cifar10", "--test-per-class", "1"],
        "was trained on the classes 0, 1, 2, 3, ... (10) of mnist",
    ),
    eval_per_class_zero=Row(lambda w: ["eval", str(w.run), "--test-per-class", "0"], "must be at least 1"),
    eval_out_is_a_file=Row(
        lambda w: ["eval", str(w.run), "--test-per-class", "2", "--out", str(w.existing)],
        "a file is in the way of a folder",
    ),
    eval_out_empty=Row(lambda w: ["eval", str(w.run), "--test-per-class", "2", "--out", ""], "--out '' is empty"),
    visualize_out_empty=Row(lambda w: ["visualize", str(w.run), "--filters", "--out", " "], "--out ' ' is empty"),
    eval_ok=Row(
        lambda w: ["eval", str(w.run), "--test-per-class", "2", "--out", str(w.root / "ev"), "--data-dir", str(DATA)]
    ),
    eval_csv_dataset=Row(lambda w: ["eval", str(w.run), "--dataset", f"csv:{w.table}"], "eval is for classifiers"),
    predict_missing_run=Row(["predict", "/no/such/run", "x.png"], "/no/such/run"),
    predict_missing_image=Row(lambda w: ["predict", str(w.run), "/no/such.png"], "/no/such.png: no such file"),
    predict_text_image=Row(lambda w: ["predict", str(w.run), str(w.text)], "not a readable image"),
    predict_fifo=Row(lambda w: ["predict", str(w.run), str(w.fifo)], "pipe.png: not a regular file"),
    predict_device=Row(lambda w: ["predict", str(w.run), "/dev/zero"], "/dev/zero: not a regular file"),
    predict_empty_folder=Row(lambda w: ["predict", str(w.run), str(w.empty)], "a folder without image files"),
    predict_bomb=Row(lambda w: ["predict", str(w.run), str(w.bomb)], "too large to read safely"),
    predict_top_zero=Row(lambda w: ["predict", str(w.run), str(w.digit), "--top", "0"], "must be at least 1"),
    predict_top_many=Row(lambda w: ["predict", str(w.run), str(w.digit), "--top", "100"]),
    predict_ok=Row(lambda w: ["predict", str(w.run), str(w.digit)]),
    predict_broken_run=Row(lambda w: ["predict", str(w.broken), str(w.digit)], "config.json: no input_size"),
    visualize_nothing=Row(lambda w: ["visualize", str(w.run)], "say what to draw"),
    visualize_layer_alone=Row(
        lambda w: ["visualize", str(w.run), "--filters", "--layer", "fc"], "--layer picks the layer of --feature-maps"
    ),
    visualize_no_conv=Row(lambda w: ["visualize", str(w.run), "--filters"], "has no convolution"),
    visualize_missing_image=Row(
        lambda w: ["visualize", str(w.run), "--feature-maps", "/no/such.png", "--layer", "hidden.0"],
        "/no/such.png: no such file",
    ),
    visualize_unknown_layer=Row(
        lambda w: ["visualize", str(w.run), "--feature-maps", str(w.digit), "--layer", "conv9"],
        "no layer 'conv9' in mlp",
    ),
)

rows(  # features, advice, style transfer, experiments, export
    features_no_dataset=Row(["features", "mlp"], "the following arguments are required: --dataset"),
    features_csv=Row(lambda w: ["features", "mlp", "--dataset", f"csv:{w.table}"], "features work on"),
    features_output_exists=Row(
        lambda w: ["features", "lenet5_modern", "--dataset", "mnist", "-o", str(w.existing)],
        "already exists; give --overwrite to replace it",
    ),
    features_output_empty=Row(["features", "lenet5_modern", "--dataset", "mnist", "-o", ""], "-o '' is empty"),
    features_output_no_folder=Row(
        ["features", "lenet5_modern", "--dataset", "mnist", "-o", "/no/such/f.npz"], "/no/such: no such directory"
    ),
    features_c_alone=Row(
        ["features", "lenet5_modern", "--dataset", "mnist", "--c", "2"], "--c is the classifier's; give --classifier"
    ),
    features_one_class=Row(
        [
            "features",
            "lenet5_modern",
            "--dataset",
            "mnist",
            "--classes",
            "3",
            "--train-per-class",
            "3",
            "--test-per-class",
            "2",
            "--classifier",
            "svm",
            "--data-dir",
            str(DATA),
        ],
        "one class is nothing to tell apart",
    ),
    features_ok=Row(
        [
            "features",
            "lenet5_modern",
            "--dataset",
            "mnist",
            "--classes",
            "3,5",
            "--train-per-class",
            "5",
            "--test-per-class",
            "2",
            "--classifier",
            "logreg",
            "--data-dir",
            str(DATA),
        ]
    ),
    advise_zero=Row(["advise", "--samples", "0", "--similarity", "high"], "must be at least 1"),
    advise_similarity=Row(["advise", "--samples", "5", "--similarity", "medium"], "invalid choice: 'medium'"),
    advise_ok=Row(["advise", "--samples", "5", "--similarity", "low"]),
    stylize_missing=Row(
        lambda w: ["stylize", "/no/such.jpg", str(w.digit), "-o", str(w.root / "s.png")], "/no/such.jpg: no such file"
    ),
    stylize_text=Row(
        lambda w: ["stylize", str(w.text), str(w.digit), "-o", str(w.root / "s.png")], "not a readable image"
    ),
    stylize_fifo=Row(
        lambda w: ["stylize", str(w.fifo), str(w.digit), "-o", str(w.root / "s.png")], "not a regular file"
    ),
    stylize_output_exists=Row(
        lambda w: ["stylize", str(w.digit), str(w.digit), "-o", str(w.existing)],
        "already exists; give --overwrite to replace it",
    ),
    stylize_output_empty=Row(lambda w: ["stylize", str(w.digit), str(w.digit), "-o", ""], "-o '' is empty"),
    stylize_output_no_folder=Row(
        lambda w: ["stylize", str(w.digit), str(w.digit), "-o", "/no/such/s.png"], "/no/such: no such directory"
    ),
    stylize_lr_unused=Row(
        lambda w: ["stylize", str(w.digit), str(w.digit), "-o", str(w.root / "s.png"), "--lr", "0.5"],
        "--lr is Adam's step",
    ),
    stylize_features=Row(
        lambda w: ["stylize", str(w.digit), str(w.digit), "-o", str(w.root / "s.png"), "--features", "resnet18"],
        "style transfer uses a VGG's feature maps",
    ),
    stylize_small=Row(
        lambda w: [
            "stylize",
            str(w.digit),
            str(w.digit),
            "-o",
            str(w.root / "s.png"),
            "--size",
            "8",
            "--weights",
            "random",
            "--steps",
            "1",
        ],
        "shorter side must be at least",
    ),
    stylize_steps=Row(
        lambda w: ["stylize", str(w.digit), str(w.digit), "-o", str(w.root / "s.png"), "--steps", "0"],
        "must be at least 1",
    ),
    reproduce_unknown=Row(["reproduce", "resnet-20"], "no paper result named 'resnet-20'"),
    reproduce_seeds=Row(["reproduce", "lenet5-mnist", "--seeds", "0"], "must be at least 1"),
    reproduce_max_steps=Row(["reproduce", "lenet5-mnist", "--max-steps", "-3"], "must be at least 1"),
    reproduce_list_and_name=Row(["reproduce", "lenet5-mnist", "--list"], "give a result to run or --list"),
    reproduce_list=Row(["reproduce", "--list"]),
    experiment_unknown=Row(["experiment", "relu-vs-sigmoid"], "unknown experiment 'relu-vs-sigmoid'"),
    experiment_gallery_alone=Row(["experiment", "--gallery", "g.md"], "--gallery writes the page of an experiment"),
    experiment_gallery_no_folder=Row(
        ["experiment", "dropout", "--gallery", "/no/such/g.md"], "/no/such: no such directory"
    ),
    experiment_seeds=Row(["experiment", "dropout", "--seeds", "0"], "must be at least 1"),
    experiment_scale=Row(["experiment", "dropout", "--scale", "huge"], "invalid choice: 'huge'"),
    experiment_list=Row(["experiment", "--list"]),
    export_unknown=Row(["export", "lenet6", "-o", "x.onnx"], "unknown model 'lenet6'"),
    draw_unknown=Row(["draw", "lenet6", "-o", "x.svg"], "unknown model 'lenet6'"),
    draw_suffix=Row(["draw", "lenet5", "-o", "x.jpg"], "the picture is written as .svg, .png, .pdf"),
    draw_style=Row(["draw", "lenet5", "--style", "towers", "-o", "x.svg"], "invalid choice: 'towers'"),
    draw_input=Row(["draw", "lenet5", "--input", "3x32x32", "-o", "x.svg"], "lenet5 expects input (N, 1, 32, 32)"),
    draw_no_folder=Row(["draw", "lenet5", "-o", "/no/such/x.svg"], "/no/such: no such directory"),
    report_no_run=Row(["report", "/no/such/run", "-o", "r.html"], "/no/such/run: not a run folder"),
    report_not_a_run=Row(lambda w: ["report", str(w.root), "-o", str(w.root / "r.html")], "not a run directory"),
    report_no_folder=Row(lambda w: ["report", str(w.run), "-o", "/no/such/r.html"], "/no/such: no such directory"),
    backprop_unknown=Row(["backprop", "lenet6"], "unknown model 'lenet6'"),
    backprop_unsupported=Row(["backprop", "lenet5"], "no NumPy layer for PartialConv2d"),
    backprop_input=Row(
        ["backprop", "lenet5_modern", "--input", "3x28x28"], "lenet5_modern expects input (N, 1, 28, 28)"
    ),
    engine_optimizer=Row(
        ["train", "lenet5_modern", "--engine", "numpy", "--optimizer", "rmsprop"], "has the optimisers sgd, adam"
    ),
    engine_device=Row(["train", "lenet5_modern", "--engine", "numpy", "--device", "cuda"], "runs on the CPU"),
    cuda_graph_on_cpu=Row(["train", "resnet20", "--cuda-graph", "--device", "cpu"], "it does nothing on the CPU"),
    cuda_graph_onecycle=Row(
        ["train", "lenet5_modern", "--cuda-graph"], "the onecycle schedule changes the momentum every step"
    ),
    cuda_graph_no_gpu=Row(
        lambda w: [
            "reproduce",
            "resnet20-cifar10",
            "--cuda-graph",
            "--data-dir",
            str(DATA),
            "--out",
            str(w.root / "g"),
        ],
        "captures the training step on a CUDA GPU; this run is on cpu",
    ),
    engine_unknown=Row(["train", "lenet5_modern", "--engine", "jax"], "invalid choice: 'jax'"),
    engine_model=Row(
        lambda w: ["train", "lenet5", "--engine", "numpy", "--data-dir", str(DATA), "--out", str(w.root / "e")],
        "no NumPy layer for PartialConv2d",
    ),
    export_run_weights=Row(
        lambda w: ["export", str(w.run), "--weights", "imagenet", "-o", str(w.root / "m.onnx")],
        "a run exports its own weights; --weights is for a model name",
    ),
    export_output_exists=Row(
        lambda w: ["export", "lenet5", "-o", str(w.existing)], "already exists; give --overwrite to replace it"
    ),
    export_output_empty=Row(["export", "lenet5", "-o", ""], "-o '' is empty"),
    export_output_no_folder=Row(["export", "lenet5", "-o", "/no/such/m.onnx"], "/no/such: no such directory"),
    export_format=Row(["export", "lenet5", "--format", "keras", "-o", "m.h5"], "invalid choice: 'keras'"),
    export_unsized=Row(
        lambda w: ["export", "dilated_context", "-o", str(w.root / "ctx.pt"), "--format", "torchscript"]
    ),
    export_broken_run=Row(
        lambda w: ["export", str(w.broken), "-o", str(w.root / "b.onnx")], "config.json: no input_size"
    ),
    cli_unknown_command=Row(["trian"], "invalid choice: 'trian'"),
    cli_unknown_flag=Row(["summary", "lenet5", "--inputs", "3x32x32"], "unrecognized arguments: --inputs"),
)


def api(fn, says: str | None = None) -> Row:
    return Row(fn, says, code=-1)


ROWS.update(
    {  # the Python API: every error a user can cause is a CnnlabError
        "api create unknown": api(lambda w: cnnlab.create_model("lenet6"), "unknown model 'lenet6'"),
        "api create classes": api(lambda w: cnnlab.create_model("lenet5", num_classes=0), "num_classes must be"),
        "api create weights": api(lambda w: cnnlab.create_model("lenet5", weights="/no/such"), "no such file"),
        "api load missing": api(lambda w: cnnlab.load_model("/no/such"), "no such file"),
        "api load text": api(lambda w: cnnlab.load_model(w.text), "not a readable safetensors file"),
        "api analyze dtype": api(lambda w: cnnlab.analyze("lenet5", dtype=torch.int32), "dtype must be a floating"),
        "api analyze batch": api(lambda w: cnnlab.analyze("lenet5", batch_size=-1), "batch_size must be at least 1"),
        "api memory batch": api(
            lambda w: cnnlab.analysis.training_memory("lenet5", batch_size=-1), "batch_size must be at least 1"
        ),
        "api memory dtype": api(
            lambda w: cnnlab.analysis.training_memory("lenet5", dtype=torch.int64), "dtype must be a floating"
        ),
        "api recipe unknown": api(lambda w: cnnlab.train.recipe("mlp", "mnist", lrr=0.1), "unknown setting(s) lrr"),
        "api train unwritable": api(
            lambda w: cnnlab.train.train(
                cnnlab.train.recipe(
                    "mlp", "mnist", out="/dev/null/x", data_dir=str(DATA), train_per_class=2, test_per_class=1, epochs=1
                )
            ),
            "/dev/null/x",
        ),
        "api train wrong type": api(
            lambda w: cnnlab.train.train(cnnlab.train.recipe("mlp", "mnist", epochs="5")),
            "epochs = '5' has the wrong type",
        ),
        "api eval no runs": api(lambda w: cnnlab.evaluation.evaluate_runs([]), "give at least one run"),
        "api features unknown": api(
            lambda w: cnnlab.transfer.features("lenet5_modern", None, "minst"), "features work"
        ),
        "api classifier one class": api(
            lambda w: cnnlab.transfer.linear_classifier(
                {
                    "train_x": torch.zeros(4, 2).numpy(),
                    "train_y": torch.zeros(4).numpy(),
                    "test_x": torch.zeros(2, 2).numpy(),
                    "test_y": torch.zeros(2).numpy(),
                }
            ),
            "one class is nothing to tell apart",
        ),
        "api export empty": api(lambda w: cnnlab.export.export("lenet5", "onnx", ""), "is empty"),
        "api experiment override": api(
            lambda w: cnnlab.experiments.run_experiment("dropout", lrr=1), "unknown setting"
        ),
    }
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build(tmp_path_factory.mktemp("hostile"))


def test_the_table_is_large_and_covers_every_command():
    nowhere = World(Path("/nowhere"))
    commands = {(row.run(nowhere) if callable(row.run) else row.run)[0] for row in ROWS.values() if row.code != -1}
    assert len(ROWS) >= 200 and commands >= {
        "models",
        "summary",
        "compare",
        "conv-size",
        "train",
        "finetune",
        "eval",
        "predict",
        "visualize",
        "features",
        "advise",
        "stylize",
        "experiment",
        "export",
    }


@pytest.mark.parametrize("name", ROWS)
def test_hostile_input(name, world, capsys, monkeypatch):
    row = ROWS[name]
    monkeypatch.chdir(world.root)
    before = snapshot(world.root)
    if row.code == -1:  # the Python API
        if row.says is None:
            row.run(world)
        else:
            with pytest.raises(CnnlabError) as e:
                row.run(world)
            assert row.says in str(e.value), str(e.value)
            assert "\n" not in str(e.value)
        kept = {k: v for k, v in snapshot(world.root).items() if k in before}
        assert kept == before
        return
    argv = row.run(world) if callable(row.run) else row.run
    if argv[0] in ("train", "finetune") and "--data-dir" not in argv and not any(":" in a for a in argv):
        argv = [*argv, "--data-dir", str(DATA)]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Warning" not in err, err
    if row.says is None:
        assert code == 0, err
    else:
        assert code != 0 and row.says in err, f"exit {code}: {err}"
        assert len(err.strip().splitlines()) == 1, err
    after = snapshot(world.root)
    assert {k: after.get(k) for k in before} == before, "a file the user had changed"
