import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError, UnknownModelError

FAMILIES = [
    "mlp",
    "lenet5",
    "lenet5_modern",
    "alexnet",
    "alexnet_owt",
    "nin",
    "nin_cifar",
    "vgg11",
    "vgg11_lrn",
    "vgg13",
    "vgg16_c",
    "vgg16",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "googlenet",
    "googlenet_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet1202",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
    "fcn32s",
    "fcn16s",
    "fcn8s",
    "dilated_context",
]


def test_every_issued_model_is_registered():
    assert set(FAMILIES) <= set(cnnlab.list_models())


def test_list_models_pattern_and_order():
    assert cnnlab.list_models("resnet1*") == ["resnet101", "resnet110", "resnet1202", "resnet152", "resnet18"]
    assert cnnlab.list_models("nothing*") == []
    names = cnnlab.list_models()
    assert names == sorted(names)


def test_model_info():
    info = cnnlab.get_model_info("lenet5")
    assert (info.year, info.input_size, info.num_classes) == (1998, (1, 32, 32), 10)
    assert "LeCun" in info.paper and info.description
    assert cnnlab.get_model_info("alexnet").input_size == (3, 227, 227)
    assert cnnlab.get_model_info("resnet56").input_size == (3, 32, 32)
    assert cnnlab.get_model_info("fcn8s").num_classes == 21
    for name in cnnlab.list_models():
        info = cnnlab.get_model_info(name)
        assert info.paper and 1980 < info.year < 2030 and info.description, name


def test_unknown_name_lists_closest():
    with pytest.raises(UnknownModelError, match=r"unknown model 'resnet5'; closest: .*resnet50"):
        cnnlab.create_model("resnet5")
    with pytest.raises(UnknownModelError, match="vgg16"):
        cnnlab.get_model_info("vgg61")
    with pytest.raises(ValueError):  # typed, and still a ValueError for plain Python users
        cnnlab.create_model("lenet")
    assert issubclass(UnknownModelError, CnnlabError)


def test_builder_arguments_a_model_does_not_take_are_one_clear_error(capsys):
    from cnnlab.cli import main
    from cnnlab.errors import ModelArgumentError

    with pytest.raises(
        ModelArgumentError,
        match=r"mlp cannot be built with nonsense=1: .*unexpected keyword "
        r"argument 'nonsense'",
    ):
        cnnlab.create_model("mlp", nonsense=1)
    with pytest.raises(TypeError):  # still what a Python user would catch for a wrong argument
        cnnlab.create_model("mlp", nonsense=1)
    with pytest.raises(
        ValueError, match="lenet5_modern cannot be built with input_size=30: input_size must be 28 or 32, got 30"
    ):
        cnnlab.create_model("lenet5_modern", input_size=30)
    for bad in (0, -1, 2.5):  # -1 was PyTorch's "negative dimension", 0 an empty classifier
        with pytest.raises(
            ModelArgumentError, match=f"resnet18: num_classes must be a whole number of at least 1, got {bad}"
        ):
            cnnlab.create_model("resnet18", num_classes=bad)
    assert main(["train", "mlp", "--model-kwargs", "nonsense=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: mlp cannot be built with nonsense=1") and err.count("\n") == 1


def test_create_model_num_classes_and_name():
    m = cnnlab.create_model("resnet18", num_classes=7)
    assert m.fc.out_features == 7 and m.model_name == "resnet18"
    assert cnnlab.create_model("resnet18").fc.out_features == 1000


def test_mlp_default_count():
    assert sum(p.numel() for p in cnnlab.create_model("mlp").parameters()) == 784 * 256 + 256 + 256 * 128 + 128 + 1290


def test_mlp_regressor_from_the_lectures():
    m = cnnlab.create_model("mlp", in_features=3, hidden=(8,), out_features=1)
    y = m(torch.tensor([[20.0, 21.5, 19.0]]))
    assert y.shape == (1, 1)
    assert sum(p.numel() for p in m.parameters()) == 3 * 8 + 8 + 8 + 1
    with pytest.raises(ValueError, match="disagree"):
        cnnlab.create_model("mlp", num_classes=10, out_features=1)
