import subprocess
import sys

import pytest

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
