"""Pictures of networks: the lectures' feature-map figures and data-flow graphs, as SVG whose text
carries the analyser's numbers, and as PNG and PDF."""

import xml.etree.ElementTree as ET

import pytest
import torch
from test_tools import FAMILIES
from torch import nn

from cnnlab.cli import main
from cnnlab.draw import draw, save
from cnnlab.errors import CnnlabError

NS = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    return [t.text for t in ET.fromstring(svg).iter(f"{NS}text")]  # parses: well-formed SVG


def test_lenet5_as_the_paper_draws_it():
    words = texts(draw("lenet5"))
    assert [w for w in words if "@" in w or w.startswith(("f6", "output"))] == [
        "input: 1@32x32",
        "c1: 6@28x28",
        "s2: 6@14x14",
        "c3: 16@10x10",
        "s4: 16@5x5",
        "c5: 120@1x1",
        "f6: 84",
        "output: 10",
    ]
    # the paper's counts (Section II.B): C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164
    params = [w for w in words if w.endswith(" params")]
    assert params == ["156 params", "12 params", "1.52K params", "32 params", "48.1K params", "10.2K params"]
    assert "118K MACs" in words and "conv 5x5/1" in words and "subsampling 2x2/2" in words and "RBF" in words


def test_alexnet_two_towers_and_a_model_of_every_family_draws():
    svg = draw("alexnet")
    words = texts(svg)
    assert "conv2: 2 x 128@27x27" in words and "conv g2" not in words and "conv 5x5/1 g2" in words
    assert "fc6: 4096" in words and "fc8: 1000" in words
    for name in FAMILIES + ["vgg16_bn", "googlenet_bn", "fcn8s", "dilated_frontend", "resnet50", "nin"]:
        assert any("@" in w or ":" in w for w in texts(draw(name))), name


def test_a_deep_network_collapses_its_repeated_blocks():
    words = texts(draw("resnet152", style="graph"))
    assert "layer3.0 .. layer3.35: Bottleneck x 36" in words and "1024x14x14" in words
    assert len([w for w in words if ": " in w]) < 20
    maps = texts(draw("resnet152"))  # the maps style folds each block, then runs of like blocks
    assert "layer3.1 .. layer3.35: 1024@14x14" in maps and len(maps) < 60
    assert "block: conv 1x1/1, conv 3x3/1, conv 1x1/1 x 35" in maps


class Branchy(nn.Module):
    """A user's network with a concatenation and an add."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 1)
        self.c, self.fc = nn.Conv2d(16, 4, 3), nn.Linear(4 * 30 * 30, 10)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], 1)
        y = y + y.relu()
        return self.fc(torch.flatten(self.c(y), 1))


def test_the_graph_of_a_users_own_network():
    svg = draw(Branchy(), (3, 32, 32), style="graph")
    words = texts(svg)
    for label, shape in (("a: Conv2d", "8x32x32"), ("cat", "16x32x32"), ("add", "16x32x32"), ("fc: Linear", "10")):
        assert words[words.index(label) + 1] == shape
    root = ET.fromstring(svg)
    assert len([p for p in root.iter(f"{NS}path") if p.get("marker-end")]) == 11  # one arrow per edge
    with pytest.raises(CnnlabError, match="Branchy does not say what input it takes"):
        draw(Branchy())


def test_files_and_the_command_line(tmp_path, capsys):
    svg = draw("lenet5_modern")
    assert save(svg, tmp_path / "a.svg").read_text() == svg
    assert save(svg, tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert save(svg, tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(CnnlabError, match=r"a.jpg: the picture is written as .svg, .png, .pdf"):
        save(svg, tmp_path / "a.jpg")
    with pytest.raises(CnnlabError, match="style must be one of maps, blocks, graph"):
        draw("lenet5", style="tower")
    assert main(["draw", "resnet20", "--style", "graph", "-o", str(tmp_path / "r.svg")]) == 0
    assert "wrote" in capsys.readouterr().out and "layer1.0" in (tmp_path / "r.svg").read_text()
    assert main(["draw", "resnet20", "-o", str(tmp_path / "r.svg")]) == 2  # exists: --overwrite replaces
    assert "--overwrite" in capsys.readouterr().err
    assert main(["draw", "nin_cifar", "--input", "3x64x64", "-o", str(tmp_path / "c.svg")]) == 0
    assert "input: 3@64x64" in (tmp_path / "c.svg").read_text()


def test_blocks_as_the_papers_tabulate_them():
    vgg = texts(draw("vgg16", style="blocks"))  # configuration D, Table 1 of Simonyan & Zisserman
    convs = [w for w in vgg if "conv" in w or "fc" in w]
    assert convs == ["3x3 conv, 64", "3x3 conv, 128", "3x3 conv, 256", "3x3 conv, 512", "3x3 conv, 512"] + [
        "fc 4096",
        "fc 1000",
    ]
    assert [w for w in vgg if w.startswith("x ")] == ["x 2", "x 2", "x 3", "x 3", "x 3", "x 2"]
    google = texts(draw("googlenet", style="blocks"))  # inception (3a), Table 1 of Szegedy et al.
    i = google.index("1x1 conv, 64", google.index("3x3 conv, 192"))
    assert google[i : i + 8] == [
        "1x1 conv, 64",
        "1x1 conv, 96",
        "3x3 conv, 128",
        "1x1 conv, 16",
        "5x5 conv, 32",
        "3x3 max pool",
        "1x1 conv, 32",
        "concatenate",
    ]
    assert "256@28x28" in google and google.count("concatenate") == 9
    cifar = texts(draw("resnet20", style="blocks"))  # option A shortcuts: zero-padded identities
    assert "identity, zero-padded, /2" in cifar and cifar.count("+") == 5 and "x 3" in cifar
    assert "projection 1x1 conv, /2" in texts(draw("resnet18", style="blocks"))
    assert "+" not in texts(draw("plain20", style="blocks"))  # no shortcuts, no sums


def test_fcn_skip_links_as_long_et_al_draw_them():
    fcn8 = texts(draw("fcn8s", style="blocks"))  # Fig. 3: pool4's scores, then pool3's, added to the upsampled
    assert fcn8.count("+") == 2 and "skip from pool4" in fcn8 and "skip from pool3" in fcn8
    assert fcn8.index("skip from pool4") < fcn8.index("skip from pool3")
    assert "score_pool4: 1x1 conv, 21" in fcn8 and fcn8.count("4x4 transposed conv, 21, x2") == 2
    assert "16x16 transposed conv, 21, x8" in fcn8
    fcn32 = texts(draw("fcn32s", style="blocks"))  # no skip: one x32 upsampling
    assert "+" not in fcn32 and "64x64 transposed conv, 21, x32" in fcn32
