"""Neural style transfer (Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016): an image optimised so that its VGG feature maps match a content image's
at one layer and the Gram matrices of its feature maps match a style image's at several.

Losses, as in the paper: content L = 1/2 sum (F - P)^2 at the content layer (Eq. 1); style
E_l = 1/(4 N_l^2 M_l^2) sum (G - A)^2 with G = F F^T (Eqs. 3-4), summed over the style layers
with equal weights 1/|layers|; total = alpha * content + beta * style (+ total variation).

Weights: torchvision's ImageNet VGG (RGB on 0-1, standardised with ImageNet's mean and std),
Caffe-style VGG files (BGR on 0-255 minus the mean pixel, as the paper's network), a cnnlab
run of a VGG, or random weights (He, Wang & Hopcroft 2016: an untrained VGG still captures
texture), which need nothing downloaded.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data.folders import read_image_file
from .data.normalization import IMAGENET_NORMALIZATION
from .errors import CnnlabError, WeightsError
from .factory import create_model
from .files import atomic_file
from .models.adapt import initialize

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")  # Gatys et al., Fig. 2
CONTENT_LAYER = "relu4_2"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # the VGG authors' mean pixel, on 0-255
IMAGENET_MEAN, IMAGENET_STD = IMAGENET_NORMALIZATION


def layer_names(features: nn.Sequential) -> list[str]:
    """VGG's names for the layers of a `features` stack: conv1_1, relu1_1, ..., pool1, conv2_1, ..."""
    names, block, index = [], 1, 0
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            index += 1
            names.append(f"conv{block}_{index}")
        elif isinstance(layer, nn.ReLU):
            names.append(f"relu{block}_{index}")
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            names.append(f"pool{block}")
            block, index = block + 1, 0
        else:
            names.append(f"{type(layer).__name__.lower()}{block}_{index}")
    return names


class FeatureExtractor(nn.Module):
    """The feature maps of a VGG at named layers, up to the deepest one needed; max pooling can
    be replaced by average pooling (the paper: "slightly more appealing results")."""

    def __init__(self, features: nn.Sequential, layers: list[str], pool: str = "max"):
        super().__init__()
        names = layer_names(features)
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise CnnlabError(f"no layer {unknown[0]!r} in this network; its layers: {', '.join(names)}")
        last = max(names.index(n) for n in layers)
        stack = []
        for layer in list(features)[: last + 1]:
            if pool == "avg" and isinstance(layer, nn.MaxPool2d):
                layer = nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode)
            if isinstance(layer, nn.ReLU):
                layer = nn.ReLU(inplace=False)  # the maps are kept: nothing may overwrite them
            stack.append(layer)
        self.stack, self.names, self.wanted = nn.Sequential(*stack), names[: last + 1], set(layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = {}
        for name, layer in zip(self.names, self.stack):
            x = layer(x)
            if name in self.wanted:
                out[name] = x
        return out


def gram(f: Tensor) -> Tensor:
    """G_ij = sum_k F_ik F_jk over the M = H*W positions of the N maps of (1, N, H, W) features."""
    n = f.shape[1]
    f = f.reshape(n, -1)
    return f @ f.T


def content_loss(f: Tensor, p: Tensor) -> Tensor:
    """Gatys et al. Eq. 1: 1/2 sum (F - P)^2."""
    return 0.5 * (f - p).pow(2).sum()


def style_layer_loss(f: Tensor, a: Tensor) -> Tensor:
    """Gatys et al. Eq. 4: E_l = 1/(4 N^2 M^2) sum (G - A)^2, with A the style image's Gram matrix."""
    n, m = f.shape[1], f.shape[2] * f.shape[3]
    return (gram(f) - a).pow(2).sum() / (4 * n * n * m * m)


def tv_loss(x: Tensor) -> Tensor:
    """Total variation: the summed squared differences of neighbouring pixels (smoothness)."""
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum()


class Preprocess:
    """Between RGB images on 0-1 and the network's input: torchvision's (RGB standardised) or
    Caffe's (BGR on 0-255 minus the mean pixel)."""

    def __init__(self, kind: str):
        if kind not in ("torchvision", "caffe"):
            raise CnnlabError(f"preprocessing must be torchvision or caffe, got {kind!r}")
        self.kind = kind

    def __call__(self, rgb: Tensor) -> Tensor:
        if self.kind == "caffe":
            return rgb.flip(1) * 255 - rgb.new_tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
        return (rgb - rgb.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / rgb.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)


def read_image(path: str | os.PathLike, size: int) -> Tensor:
    """An image as (1, 3, H, W) RGB on 0-1, its longer side resized to `size`."""
    from PIL import Image

    img = read_image_file(path, "RGB")
    scale = size / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def save_image(x: Tensor, path: str | os.PathLike) -> None:
    """Write (1, 3, H, W) RGB on 0-1 as PNG or JPEG, atomically."""
    from PIL import Image

    path = Path(path)
    arr = (x[0].detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    with atomic_file(path, path.suffix or ".png") as tmp:
        Image.fromarray(arr).save(tmp, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")


def vgg_features(name: str = "vgg19", weights: str = "imagenet", seed: int = 0, log=None) -> tuple[nn.Sequential, str]:
    """The `features` stack of a VGG and the weights actually used: ImageNet weights, a weights
    file or run, or random; "auto" is ImageNet where the file is cached or can be downloaded,
    else random (said in `log`)."""
    if not name.startswith("vgg"):
        raise CnnlabError(f"style transfer uses a VGG's feature maps (vgg11 ... vgg19), got {name!r}")
    if weights == "auto":
        try:
            return vgg_features(name, "imagenet", seed)
        except WeightsError as e:
            if log:
                log(f"ImageNet weights for {name} are not available ({e}); using random weights instead")
            weights = "random"
    if weights == "random":  # He initialisation keeps the feature maps' scale through the layers
        torch.manual_seed(seed)
        model = create_model(name)
        initialize(model, "he")
        return model.features, "random"
    return create_model(name, weights=weights).features, weights


def default_style_weight(weights: str) -> float:
    """beta with alpha = 1: the paper's ratio alpha/beta = 1e-3 for trained weights; random
    features (with average pooling) have far smaller Gram matrices and need about 1e10 (found on
    the demo images: 1e6 and 1e8 left the content almost untouched at 256 px)."""
    return 1e10 if weights == "random" else 1e3


def default_preprocess(weights: str) -> str:
    """Caffe's preprocessing for Caffe-converted VGG files (named so), torchvision's otherwise."""
    return "caffe" if "caffe" in Path(str(weights)).name.lower() else "torchvision"


class GatysLoss(nn.Module):
    """alpha * content + beta * style (+ total variation) of an image (RGB on 0-1), against the
    content image's features at `content_layer` and the style image's Gram matrices."""

    def __init__(
        self,
        net: FeatureExtractor,
        prep: Preprocess,
        content: Tensor,
        style: Tensor,
        content_layer: str,
        style_layers,
        weights: tuple[float, float, float],
    ):
        super().__init__()
        self.net, self.prep, self.content_layer, self.style_layers = net, prep, content_layer, list(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = weights
        with torch.no_grad():
            self.target_content = net(prep(content))[content_layer]
            self.targets_style = {n: gram(f) for n, f in net(prep(style)).items() if n in self.style_layers}

    def forward(self, x: Tensor) -> tuple[Tensor, dict]:
        feats = self.net(self.prep(x))
        c = content_loss(feats[self.content_layer], self.target_content)
        s = sum(style_layer_loss(feats[n], self.targets_style[n]) for n in self.style_layers) / len(self.style_layers)
        t = tv_loss(x) if self.tv_weight else x.new_zeros(())
        loss = self.content_weight * c + self.style_weight * s + self.tv_weight * t
        return loss, {"content": c.item(), "style": s.item(), "tv": t.item()}


def check_image_sizes(net: FeatureExtractor, **images: Tensor) -> None:
    """Each pooling up to the deepest layer halves the image; a map must keep a pixel."""
    halvings = sum(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in net.stack)
    for what, image in images.items():
        if min(image.shape[2:]) < 2**halvings:
            raise CnnlabError(
                f"the {what} image is {image.shape[2]}x{image.shape[3]} pixels; the layers up to "
                f"{net.names[-1]} halve it {halvings} times, so its shorter side must be at least "
                f"{2**halvings} pixels: give a larger --size"
            )


def starting_image(content: Tensor, style: Tensor, init: str, seed: int) -> Tensor:
    """The image the optimisation starts from: the content image, noise, or the style image at the content's size."""
    if init == "content":
        start = content.clone()
    elif init == "noise":
        start = torch.rand(content.shape, generator=torch.Generator(device="cpu").manual_seed(seed)).to(content.device)
    else:
        start = F.interpolate(style, size=content.shape[2:], mode="bilinear", antialias=True, align_corners=False)
    return start.clamp(0, 1).contiguous().requires_grad_(True)


def stylize(
    content: Tensor,
    style: Tensor,
    features: nn.Sequential,
    preprocess: str = "torchvision",
    content_weight: float = 1.0,
    style_weight: float = 1e3,
    tv_weight: float = 0.0,
    style_layers=STYLE_LAYERS,
    content_layer: str = CONTENT_LAYER,
    optimizer: str = "lbfgs",
    steps: int = 300,
    lr: float = 0.02,
    init: str = "content",
    pool: str = "avg",
    seed: int = 0,
    snapshot=None,
    snapshot_every: int = 0,
    log=None,
) -> tuple[Tensor, list[dict]]:
    """Optimise an image (RGB on 0-1, the content image's size) for `steps` evaluations of the
    loss; returns it and the loss history. `snapshot(step, image)` is called every
    `snapshot_every` steps."""
    if init not in ("content", "noise", "style"):
        raise CnnlabError(f"init must be content, noise or style, got {init!r}")
    if optimizer not in ("lbfgs", "adam"):
        raise CnnlabError(f"optimizer must be lbfgs or adam, got {optimizer!r}")
    net = FeatureExtractor(features, list(style_layers) + [content_layer], pool).to(content.device)
    check_image_sizes(net, content=content, style=style)
    objective = GatysLoss(
        net,
        Preprocess(preprocess),
        content,
        style,
        content_layer,
        style_layers,
        (content_weight, style_weight, tv_weight),
    )
    x = starting_image(content, style, init, seed)
    opt = (
        torch.optim.LBFGS([x], lr=1.0, max_iter=steps, history_size=50, line_search_fn="strong_wolfe")
        if optimizer == "lbfgs"
        else torch.optim.Adam([x], lr=lr)
    )
    history: list[dict] = []
    begin, bar = time.perf_counter(), _progress_bar(steps)

    def closure():  # one evaluation of the loss and its gradient, recorded
        opt.zero_grad()
        loss, parts = objective(x)
        loss.backward()
        step = len(history) + 1
        history.append({"step": step, "loss": loss.item(), **parts, "time": time.perf_counter() - begin})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4g}")
        if snapshot is not None and snapshot_every and step % snapshot_every == 0:
            snapshot(step, x.detach().clamp(0, 1))
        return loss

    if optimizer == "lbfgs":
        opt.step(closure)  # at most `steps` evaluations (max_iter); stops early when it converges
    else:
        for _ in range(steps):
            closure()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
    if bar is not None:
        bar.close()
    if not history or not np.isfinite(history[-1]["loss"]):
        raise CnnlabError("the loss is not finite; try smaller --style-weight or --optimizer adam")
    return x.detach().clamp(0, 1), history


def _progress_bar(steps: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=steps, desc="stylize", leave=False, disable=None)
