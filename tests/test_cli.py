import json
import subprocess
import sys

import pytest
import torch

from cnnlab.cli import main


def test_models_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["name", "params", "input", "classes", "year"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["lenet5"][1:5] == ["60,000", "1x32x32", "10", "1998"]
    assert rows["alexnet"][1:3] == ["60,965,224", "3x227x227"]
    assert rows["resnet50"][1] == "25,557,032"


def test_models_pattern(capsys):
    assert main(["models", "vgg16*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names == ["vgg16", "vgg16_bn", "vgg16_c", "vgg16_c_bn"]


def test_no_match_is_a_one_line_error_with_exit_code_2(capsys):
    assert main(["models", "resnet9*"]) == 2
    err = capsys.readouterr().err
    assert err == "cnnlab: error: no model matches 'resnet9*'; `cnnlab models` lists them all\n"


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "cnnlab", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("cnnlab 0.")
    bad = subprocess.run([sys.executable, "-m", "cnnlab", "nonsense"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("argv", [["models", "--help"], ["--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0 and "models" in capsys.readouterr().out


def test_summary_table_json_and_training_memory(capsys):
    assert main(["summary", "lenet5", "--optimizer", "adam", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "c3      PartialConv2d" in out and "params 60,000 (trainable 60,000)" in out
    assert "training memory (adam, batch 4):" in out
    assert main(["summary", "resnet50", "--format", "json", "--input", "3x64x64", "--mode", "train"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_size"] == [3, 64, 64] and data["mode"] == "train" and data["totals"]["params"] == 25_557_032
    assert main(["summary", "alexnet", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("conv1,Conv2d,conv,1x96x55x55,34944,")


def test_summary_of_builder_arguments_and_of_a_run(tmp_path, capsys):
    import cnnlab

    quarter = sum(p.numel() for p in cnnlab.create_model("resnet20", width=0.25).parameters())
    assert main(["summary", "resnet20", "--model-kwargs", "width=0.25", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["params"] == quarter == 17_326
    run = tmp_path / "run"  # a run's model: its name, classes, builder arguments and input size
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"model": "resnet20", "num_classes": 2, "input_size": [3, 32, 32], "model_kwargs": {"width": 0.5}})
    )
    model = cnnlab.create_model("resnet20", num_classes=2, width=0.5)
    two = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())  # batch-norm statistics
    assert main(["summary", str(run), "--format", "json", "--optimizer", "adam"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["params"] == two and data["layers"][-1]["output_shape"] == [1, 2]
    assert data["training_memory"]["weights"] == 4 * two + buffers
    assert main(["compare", "resnet20", str(run)]) == 0
    assert f"{two:,}" in capsys.readouterr().out


def test_compare(capsys):
    assert main(["compare", "vgg16", "googlenet", "resnet50"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:4]}
    assert rows["vgg16"][2] == "138,357,544" and rows["vgg16"][3:5] == ["15.47", "GMAC"]
    assert rows["googlenet"][-1] == "22" and rows["resnet50"][-1] == "50"


def test_conv_size(capsys):
    assert main(["conv-size", "227", "11", "--stride", "4"]) == 0
    assert capsys.readouterr().out == "(227 + 2*0 - 1*(11 - 1) - 1) / 4 + 1 = 55\n"
    assert main(["conv-size", "112", "3", "--stride", "2", "--pool", "--ceil"]) == 0
    assert capsys.readouterr().out.endswith("-> 56 (ceil)\n")
    assert main(["conv-size", "7", "64", "--stride", "32", "--transposed"]) == 0
    assert capsys.readouterr().out.endswith("= 256\n")
    assert main(["conv-size", "224", "11", "--stride", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: (224 + 2*0") and "223, 227" in err and err.count("\n") == 1
    assert "PyTorch rounds down to 54" in err
    # ResNet's first convolution on 224: PyTorch's 112 with --floor, and the pixel it leaves out
    assert main(["conv-size", "224", "7", "--stride", "2", "--padding", "3", "--floor"]) == 0
    out = capsys.readouterr().out
    assert out == "(224 + 2*3 - 1*(7 - 1) - 1) / 2 + 1 = 112.5 -> 112 (floor, as PyTorch: the last 1 pixel(s) unused)\n"
    assert torch.nn.Conv2d(1, 1, 7, 2, 3)(torch.zeros(1, 1, 224, 224)).shape[-1] == 112


def test_a_refused_run_leaves_no_directory_behind(tmp_path, capsys):
    out = tmp_path / "runs" / "fcn"
    assert main(["train", "fcn32s", "--dataset", "mnist", "--out", str(out)]) == 2
    assert "fcn32s scores every pixel" in capsys.readouterr().err
    assert not out.exists() and (tmp_path / "runs").is_dir()  # an empty run directory was left


@pytest.mark.parametrize(
    "argv, message",
    [
        (["summary", "lenet5", "--input", "3xfoo"], "input size must look like 3x224x224"),
        (["summary", "lenet5", "--batch", "0"], "must be at least 1"),
        (["summary", "lenet6"], "unknown model 'lenet6'; closest: lenet5"),
        (["summary", "lenet5", "--input", "3x32x32"], "lenet5 expects input (N, 1, 32, 32), got (N, 3, 32, 32)"),
        (["compare", "vgg16", "vgg61"], "unknown model 'vgg61'"),
        (["train", "lenet6"], "unknown model 'lenet6'; closest: lenet5"),
        (["train", "lenet5", "--dataset", "minst"], "unknown dataset 'minst'; closest: mnist"),
        (["train", "lenet5", "--lr", "0"], "argument --lr: must be positive, got 0"),
        (["train", "lenet5", "--lr", "-0.1"], "argument --lr: must be positive"),
        (["train", "lenet5", "--lr", "nan"], "argument --lr"),
        (["train", "lenet5", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
        (["train", "lenet5", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["train", "lenet5", "--epochs", "two"], "argument --epochs: expected a whole number, got 'two'"),
        (["train", "lenet5", "--weight-decay", "-1"], "argument --weight-decay: must not be negative"),
        (["train", "lenet5", "--optimizer", "adamm"], "argument --optimizer: invalid choice: 'adamm'"),
        (["train", "lenet5", "--dataset", "folder:/no/such/folder"], "no such folder or zip file"),
        (["train", "lenet5", "--out", "/dev/null/run"], "output directory /dev/null/run is not writable"),
        (["train", "lenet5", "--resume"], "resume needs the run directory (--out)"),
        (["train", "lenet5", "--config", "/no/such.toml"], "config file /no/such.toml: No such file"),
        (["train", "lenet5", "--checkpoint-steps", "0"], "argument --checkpoint-steps: must be at least 1"),
        (["train", "lenet5", "--on-bad-image", "ignore"], "argument --on-bad-image: invalid choice: 'ignore'"),
        (["train", "lenet5", "--val-split", "1"], "argument --val-split: must be a fraction in [0, 1), got 1"),
        (["train", "lenet5", "--early-stop", "0"], "argument --early-stop: must be at least 1 epoch, got 0"),
        (["train", "lenet5", "--device", "mps"], "device 'mps' is not supported (cnnlab runs on CPUs and CUDA GPUs)"),
        (["train", "lenet5", "--device", "gpu"], "unknown device 'gpu'; use cpu, cuda, cuda:N or auto"),
        (["eval", "/no/such/run"], "/no/such/run: no such file"),
        (["predict", "/no/such/run", "x.png"], "/no/such/run"),
        (["visualize", "/no/such/run", "--filters"], "/no/such/run"),
        (["conv-size", "0", "3"], "must be at least 1, got 0"),
        (["conv-size", "7", "3", "--padding", "-1"], "argument --padding: must be at least 0, got -1"),
        (["trian"], "invalid choice: 'trian'"),
        (["finetune", "lenet5_modern", "--dataset", "mnist"], "finetune starts from trained weights: give --weights"),
        (
            ["summary", "resnet18", "--input-size", "3x64x64"],
            "cnnlab summary: error: unrecognized arguments: --input-size 3x64x64 (see `cnnlab summary --help`)",
        ),
    ],
)
def test_bad_cli_input_is_one_line_with_exit_code_2(argv, message, capsys):
    try:  # in the process: any exception other than a clean exit fails the test with its traceback
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert err.count("\n") == 1  # one line: what was wrong, and what to do


def test_compile_flag_takes_an_optional_mode(capsys):
    from cnnlab.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["train", "mlp"]).compile is None  # not given: the recipe's (off)
    assert parse(["train", "mlp", "--compile"]).compile == "default"
    assert parse(["train", "mlp", "--compile", "reduce-overhead"]).compile == "reduce-overhead"
    with pytest.raises(SystemExit):
        parse(["train", "mlp", "--compile", "fast"])
    assert "argument --compile: invalid choice: 'fast'" in capsys.readouterr().err


def test_train_into_a_run_directory_is_refused_before_anything_is_printed(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"model": "lenet5", "dataset": "mnist"}')
    (run / "model.safetensors").write_bytes(b"weights")
    assert main(["train", "mlp", "--out", str(run)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"cnnlab: error: {run} already holds a run (lenet5 on mnist): config.json, "
        "model.safetensors; continue it with --resume, replace it with --overwrite, "
        "or choose another --out\n"
    )
    assert (run / "model.safetensors").read_bytes() == b"weights"


def test_a_gpu_number_beyond_the_machine_is_named(monkeypatch):
    from cnnlab.device import pick_device
    from cnnlab.errors import CnnlabError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(
        CnnlabError, match=r"device cuda:2 was asked for but this machine has 2 GPUs \(cuda:0 to cuda:1\)"
    ):
        pick_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(CnnlabError, match=r"has 1 GPU \(cuda:0\)$"):
        pick_device("cuda:1")


def test_a_reader_that_stops_early_is_no_traceback():
    """`cnnlab models | head -1`: the pipe closes before cnnlab has written everything."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == "", err  # 128 + SIGPIPE, as other Unix tools end


def test_paths_in_the_way_are_one_line(tmp_path, capsys):
    """A file where a folder should go, a folder where a file should go: FileExistsError and
    IsADirectoryError tracebacks (the latter naming a temporary file)."""
    from pathlib import Path

    from conftest import DATA, tiny_mnist_run

    from cnnlab.errors import WriteError
    from cnnlab.files import atomic_file

    run, blocker = tmp_path / "run", tmp_path / "afile"
    blocker.write_text("")
    assert main(tiny_mnist_run(run)) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--data-dir", str(DATA), "--test-per-class", "2", "--out", str(blocker)]) == 2
    assert capsys.readouterr().err == (
        f"cnnlab: error: {blocker}: file exists; a file is in the way of a folder: choose another path\n"
    )
    folder = tmp_path / "taken.csv"
    folder.mkdir()
    with pytest.raises(
        WriteError, match=f"^{folder}: not written, a folder of that name is in the way; write elsewhere"
    ):
        with atomic_file(folder) as tmp:
            Path(tmp).write_text("a,b\n")
    assert not list(tmp_path.glob("tmp*"))  # the temporary file is gone
    assert main(["train", "mlp", "--out", " "]) == 2  # it made a folder named by two spaces
    assert "the run directory (--out) ' ' is empty" in capsys.readouterr().err
