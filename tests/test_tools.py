"""Every zoo model with PyTorch's own tools: torch.fx and torchvision's feature extraction, its own
weights files in both formats, ONNX export, the timm classifier interface, bfloat16 on the CPU."""

import pytest
import torch
from safetensors.torch import save_file
from test_models import TEST_SIZE
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import cnnlab
from cnnlab.weights import num_classes_in

MODELS = cnnlab.list_models()
# with real values, one model of each family (the code they run is their family's; every model is
# traced, its classifier found and its interface checked on the meta device below)
FAMILIES = [
    "lenet5",
    "lenet5_modern",
    "mlp",
    "cnn4",
    "alexnet_cifar",
    "filter_stack",
    "inception_cifar",
    "nin_cifar",
    "resnet20",
    "plain20",
    "resnet18",
    "dilated_context",
]
CLASSIFIERS = [n for n in MODELS if n != "dilated_context"]  # the context module refines scores it is given
# resnet1202 is resnet110's class with 200 blocks a stage: traced like every model, its interface is resnet110's
SHALLOW = [n for n in MODELS if n != "resnet1202"]


def example(name: str, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch, *TEST_SIZE.get(name, cnnlab.get_model_info(name).input_size))


@pytest.mark.parametrize("name", MODELS)
def test_every_model_traces_with_fx(name):
    with torch.device("meta"):  # tracing needs no values: every model, heavy or not
        model = cnnlab.create_model(name).eval()
    graph = torch.fx.symbolic_trace(model).graph
    assert sum(n.op == "call_module" for n in graph.nodes) >= 3
    if name == "resnet1202":  # resnet110's code, 11 s a trace: once is enough
        return
    train_nodes, eval_nodes = get_graph_node_names(model)
    assert eval_nodes[0] == "x" and len(eval_nodes) >= 4 and set(eval_nodes) <= set(train_nodes)


@pytest.mark.parametrize("name", FAMILIES)
def test_feature_extraction_returns_the_eager_intermediates(name):
    model = cnnlab.create_model(name).eval()
    _, nodes = get_graph_node_names(model)
    layers = dict(model.named_modules())
    convs = [n for n in nodes if isinstance(layers.get(n), (torch.nn.Conv2d, torch.nn.Linear))]
    middle = convs[len(convs) // 2]
    seen = []
    hook = layers[middle].register_forward_hook(lambda m, i, o: seen.append(o))
    x = example(name)
    with torch.no_grad():
        want = model(x)
        hook.remove()
        got = create_feature_extractor(model, {middle: "middle", nodes[-1]: "out"})(x)
    assert len(seen) == 1 and torch.equal(got["middle"], seen[0])
    assert torch.equal(got["out"], want)


@pytest.mark.parametrize("name", SHALLOW)
def test_the_classifier_is_found_by_name_in_any_key_order(name):
    with torch.device("meta"):
        model = cnnlab.create_model(name, num_classes=7)
    state = model.state_dict()
    expected = 7 if name != "dilated_context" else None  # no classifier layer: its channels are its input's
    assert num_classes_in(name, dict(sorted(state.items()))) == expected  # safetensors' order
    assert num_classes_in(name, dict(reversed(state.items()))) == expected


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
@pytest.mark.parametrize("name", FAMILIES)
def test_a_file_of_the_models_own_state_dict_loads(name, fmt, tmp_path):
    classes = {} if name == "dilated_context" else {"num_classes": 7}
    model = cnnlab.create_model(name, **classes)
    state = model.state_dict()
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    loaded = cnnlab.create_model(name, weights=path)
    assert getattr(loaded, "num_classes", None) == classes.get("num_classes")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in state.items())


# one of each kind test_export.py leaves out (ONNX export takes 15-35 s for the deep ResNets on two
# cores; bench/export_all.py exports every model and is run for bench/RESULTS.md)
EXPORTED = ["dilated_context", "mlp", "nin_cifar"]


@pytest.mark.parametrize("name", EXPORTED)
def test_export_at_the_registry_input_size(name, tmp_path):
    from cnnlab.export import export

    result = export(name, "onnx", tmp_path / f"{name}.onnx")  # runs it in onnxruntime and compares
    assert result["input_size"] == list(cnnlab.get_model_info(name).input_size)
    assert result["max_abs_diff"] < 1e-4 * max(1.0, result["max_abs_output"])


@pytest.mark.parametrize("name", [n for n in CLASSIFIERS if n in SHALLOW])
def test_the_timm_classifier_interface(name):
    with torch.device("meta"):
        model = cnnlab.create_model(name).eval()
        features = model.num_features
        assert model.num_classes == cnnlab.get_model_info(name).num_classes
        assert model.get_classifier() is model.get_submodule(model.classifier_name)
        model.reset_classifier(5)
        assert (model.num_classes, model.num_features) == (5, features)
        if hasattr(model, "forward_head"):  # classifiers; the segmentation nets score every pixel
            x = torch.randn(2, *cnnlab.get_model_info(name).input_size)
            assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, features)
            assert model(x).shape == (2, 5)
        else:
            x = torch.randn(1, *TEST_SIZE.get(name, cnnlab.get_model_info(name).input_size))
            assert model(x).shape[1] == 5


def test_local_response_norm_in_bfloat16_on_the_cpu():
    model = cnnlab.create_model("alexnet").eval()  # LRN after conv1 and conv2
    x = example("alexnet")
    with torch.no_grad():
        want = model(x)
        got = model.to(torch.bfloat16)(x.bfloat16())
    assert got.dtype == torch.bfloat16
    assert (got.float() - want).abs().max() < 0.02 * want.abs().max()  # bfloat16's 8 bits of mantissa
