"""LeCun et al.'s stochastic diagonal Levenberg-Marquardt (1998, Appendix C): the second
derivatives back-propagated as the paper does, checked by hand layer by layer, and the optimiser
training LeNet-5."""

import pytest
import torch
from conftest import DATA

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.models.lenet import TANH_A, TANH_S
from cnnlab.train import recipe, train
from cnnlab.train.folder import RunFolder
from cnnlab.train.sdlm import SDLM, lenet5_curvature


def slope(a):
    return TANH_A * TANH_S / torch.cosh(TANH_S * a) ** 2


def test_second_derivatives_follow_the_papers_rules_by_hand():
    torch.manual_seed(0)
    model = cnnlab.create_model("lenet5").double()
    x = torch.randn(6, 1, 32, 32, dtype=torch.float64)
    h = lenet5_curvature(model, x)
    with torch.no_grad():  # the activations, layer by layer
        c1 = model.c1(x)
        s2 = model.s2(model.act(c1))
        c3 = model.c3(model.act(s2))
        s4 = model.s4(model.act(c3))
        c5 = model.c5(model.act(s4)).flatten(1)
        f6 = model.f6(model.act(c5))
    # F6: d2E/da^2 = f'(a)^2 * 2 (the squared distance to the code); h(w_ij) = x_j^2 d2E/da_i^2
    d_f6 = 2 * slope(f6) ** 2
    x_f6 = model.act(c5)
    assert torch.allclose(h[model.f6.weight], torch.einsum("ni,nj->ij", d_f6, x_f6**2) / 6, rtol=1e-12)
    assert torch.allclose(h[model.f6.bias], d_f6.mean(0), rtol=1e-12)
    # C5 (one connection per weight on a 5x5 input): d2E/dx_j^2 = sum_i w_ij^2 d2E/da_i^2
    d_c5 = slope(c5) ** 2 * (d_f6 @ model.f6.weight**2)
    x_c5 = model.act(s4)
    assert torch.allclose(h[model.c5.weight], torch.einsum("no,nchw->ochw", d_c5, x_c5**2) / 6, rtol=1e-12)
    # C1 (each weight shared by 28x28 connections): the sum over its connections of x^2 d2E/da^2
    d_s4 = (torch.einsum("no,ochw->nchw", d_c5, model.c5.weight**2)) * slope(s4) ** 2
    # S4: each coefficient multiplies the four inputs of a unit, each its own connection
    x_s4 = model.act(c3)
    by_connection = (d_s4 * 4 * torch.nn.functional.avg_pool2d(x_s4**2, 2)).sum((0, 2, 3)) / 6
    assert torch.allclose(h[model.s4.weight], by_connection, rtol=1e-12)
    assert not torch.allclose(
        by_connection, (d_s4 * (4 * torch.nn.functional.avg_pool2d(x_s4, 2)) ** 2).sum((0, 2, 3)) / 6
    )
    # and a shared weight sums its connections' second derivatives (not the square of the sum)
    patches = torch.nn.functional.unfold(x, 5)  # (n, 25, 784)
    d_c1 = torch.randn(6, 6, 784, dtype=torch.float64).abs()  # any d2E/da^2 of C1's sums
    by_hand = torch.einsum("nkp,nqp->kq", d_c1, patches**2).view(6, 1, 5, 5)
    probe = model.c1.weight.detach().clone().requires_grad_()
    out = torch.nn.functional.conv2d(x**2, probe)
    (auto,) = torch.autograd.grad(out, probe, d_c1.view(6, 6, 28, 28))
    assert torch.allclose(auto, by_hand, rtol=1e-12)


def test_each_weight_steps_by_lr_over_mu_plus_its_curvature():
    w = torch.nn.Parameter(torch.tensor([1.0, 1.0, 1.0]))
    opt = SDLM([w], lr=0.1, mu=0.02)
    w.grad = torch.tensor([1.0, 2.0, -1.0])
    opt.step()  # no curvature yet: plain SGD at lr / mu
    assert torch.allclose(w.detach(), torch.tensor([-4.0, -9.0, 6.0]))
    opt.state[w]["curvature"] = torch.tensor([0.0, 0.18, 1.98])
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([-9.0, -10.0, 6.05]))


def test_sdlm_trains_lenet5_and_resumes_with_its_curvature(tmp_path, monkeypatch):
    settings = dict(
        data_dir=str(DATA),
        optimizer="sdlm",
        schedule="table",
        lr_table="2e-4",
        batch_size=32,
        normalize="lecun98",
        weight_decay=0.0,
        epochs=3,
        train_per_class=200,
        test_per_class=50,
    )
    result = train(recipe("lenet5", "mnist", **settings), log=lambda line: None)
    assert result["test"]["top1"] >= 0.75  # 0.808 (seed 0; 0.768 and 0.744 with seeds 1 and 2)
    # the curvature is optimiser state: a run stopped inside an epoch resumes to the same weights
    out, real = tmp_path / "run", RunFolder.save_checkpoint

    def save_then_die(self, *args):
        real(self, *args)
        if len(args) >= 7:  # a checkpoint inside an epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(RunFolder, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(recipe("lenet5", "mnist", out=str(out), checkpoint_steps=100, **settings), log=lambda line: None)
    monkeypatch.undo()
    resumed = train(recipe("lenet5", "mnist", out=str(out), resume=True, **settings), log=lambda line: None)
    for a, b in zip(result["model"].state_dict().values(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "settings, says",
    [
        (dict(model="mlp"), "sdlm is LeNet-5's own optimiser"),
        (dict(model="lenet5", model_kwargs={"head": "linear"}), "sdlm is LeNet-5's own optimiser"),
        (dict(model="lenet5", dataset="folder:photos"), "on examples held in memory"),
    ],
)
def test_sdlm_is_refused_where_it_cannot_work(settings, says):
    with pytest.raises(CnnlabError, match=says):
        model, dataset = settings.pop("model"), settings.pop("dataset", "mnist")
        recipe(model, dataset, optimizer="sdlm", **settings).check()
    with pytest.raises(CnnlabError, match="--sdlm-mu is for the sdlm optimiser"):
        recipe("lenet5", "mnist", sdlm_mu=0.1).check()
