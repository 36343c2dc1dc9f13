"""Training images/s of zoo models: cnnlab's trainer against a plain DataLoader loop.

cnnlab: the trainer's own pieces — the dataset held on the device as uint8 and augmented there in
batches (`epoch_batches`), its memory format (channels_last), its optimiser (fused where PyTorch
has one) and, on CUDA, bf16 autocast. Plain: what a typical script does — a torchvision-style
Dataset returning PIL images, ToTensor/Normalize (plus the same crop and flip for CIFAR-10) in
DataLoader workers, the model in float32 and default memory format, torch.optim.SGD.
Image-folder models (224 px) read the ImageNet sample photos, one class per photo, through
cnnlab's folder pipeline (itself a DataLoader) against torchvision's ImageFolder.

Both sides run the same model, batch, loss and SGD with momentum; rounds alternate between them,
and the table gives the median images/s of the timed steps.

Usage: CNNLAB_DATA=../shared/data python bench/zoo_throughput.py [--models lenet5,resnet20] [--steps 20]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

import cnnlab
from cnnlab.data import data_root, load_dataset
from cnnlab.data.loaders import DeviceData, FolderData
from cnnlab.data.normalization import NORMALIZATION
from cnnlab.train import recipe
from cnnlab.train.batches import epoch_batches, epoch_order
from cnnlab.train.losses import loss_fn
from cnnlab.train.optim import make_optimizer

CPU_MODELS = ("mlp", "lenet5", "lenet5_modern", "resnet20", "plain20", "alexnet", "resnet18")


class PilDataset(torch.utils.data.Dataset):
    """A split as PIL images through torchvision transforms, like torchvision.datasets.MNIST/CIFAR10."""

    def __init__(self, split, transform):
        self.images, self.labels, self.transform = split.images, split.labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = self.images[i].permute(1, 2, 0).squeeze(2).numpy()
        return self.transform(Image.fromarray(img)), int(self.labels[i])


def imagenet_folder(tmp: Path) -> Path:
    """The 100 ImageNet sample photos as an image folder, one class per photo."""
    src = data_root() / "imagenet-sample"
    for photo in sorted(src.glob("*.JPEG")):
        (tmp / photo.stem).mkdir()
        (tmp / photo.stem / photo.name).symlink_to(photo.resolve())
    return tmp


def sources(name: str, batch: int, device: torch.device, folder: Path):
    """(cnnlab batches, plain batches, augment): endless iterators of (x, y) on the device."""
    from torchvision import datasets, transforms

    info = cnnlab.get_model_info(name)
    size = tuple(info.input_size)
    workers = min(8, os.cpu_count() or 1)
    if size[1] > 64:  # ImageNet-sized: the sample photos
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        ours = FolderData(str(folder), True, size, mean, std, batch, device)
        tf = transforms.Compose(
            [
                transforms.RandomResizedCrop(size[1:]),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(mean, std),
            ]
        )
        plain = torch.utils.data.DataLoader(
            datasets.ImageFolder(str(folder), tf),
            batch,
            shuffle=True,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
        )
        cfg = recipe(name, f"folder:{folder}", batch_size=batch)
        classes = 100
    else:
        dataset = "mnist" if size[0] == 1 else "cifar10"
        mean, std = NORMALIZATION[dataset]
        split = load_dataset(dataset, train=True)
        ours = DeviceData(split, size, mean, std, device)
        steps = [transforms.Pad((size[1] - split.images.shape[2]) // 2)] if size[1] != split.images.shape[2] else []
        if dataset == "cifar10":
            steps += [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
        tf = transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(mean, std)])
        plain = torch.utils.data.DataLoader(
            PilDataset(split, tf),
            batch,
            shuffle=True,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
        )
        cfg = recipe(name, dataset, batch_size=batch, augment=("crop", "flip") if dataset == "cifar10" else ())
        classes = 10

    def endless(make):
        epoch = 0
        while True:
            epoch += 1
            for x, y in make(epoch):
                yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    gen = torch.Generator(device=device).manual_seed(0)
    if isinstance(ours, FolderData):
        ours_it = endless(
            lambda e: (b for b in ours.batches(epoch_order(ours, cfg, gen, e), seed=e) if len(b[1]) == batch)
        )
    else:
        ours_it = endless(
            lambda e: (
                b for b in epoch_batches(ours, cfg, gen, e, epoch_order(ours, cfg, gen, e)) if len(b[1]) == batch
            )
        )
    return ours_it, endless(lambda e: plain), cfg, classes


def stepper(name, cfg, classes, device, ours: bool):
    torch.manual_seed(0)
    model = cnnlab.create_model(name, num_classes=classes).to(device)
    cuda = device.type == "cuda"
    if ours:
        model = model.to(memory_format=torch.channels_last)
        opt = make_optimizer(cfg, model)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=ours and cuda)
    model.train()

    def step(x, y):
        with autocast:
            loss = loss_fn(model(x), y, 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def measure(name: str, batch: int, steps: int, rounds: int, device: torch.device, folder: Path) -> dict:
    ours_it, plain_it, cfg, classes = sources(name, batch, device, folder)
    sides = {
        "cnnlab": (stepper(name, cfg, classes, device, True), ours_it),
        "plain": (stepper(name, cfg, classes, device, False), plain_it),
    }
    for step, it in sides.values():  # warm-up: workers start, kernels get chosen
        for _ in range(3):
            step(*next(it))
    rates = {k: [] for k in sides}
    for _ in range(rounds):
        for key, (step, it) in sides.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(steps):
                loss = step(*next(it))
            loss.item()
            rates[key].append(steps * batch / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", help="comma-separated (default: a CPU-sized set; all on CUDA)")
    parser.add_argument("--batch", type=int, default=128, help="for 28/32-pixel models")
    parser.add_argument("--large-batch", type=int, default=32, help="for 224-pixel models")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    names = (
        args.models.split(",")
        if args.models
        else (
            CPU_MODELS
            if device.type == "cpu"
            else [m for m in cnnlab.list_models() if not m.startswith("fcn") and m != "dilated_context"]
        )
    )
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")
    print("| model | input | batch | cnnlab img/s | plain img/s | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = imagenet_folder(Path(tmp))
        for name in names:
            size = cnnlab.get_model_info(name).input_size
            batch = args.large_batch if size[1] > 64 else args.batch
            steps = args.steps if size[1] <= 64 or device.type == "cuda" else max(2, args.steps // 10)
            r = measure(name, batch, steps, args.rounds, device, folder)
            print(
                f"| {name} | {'x'.join(map(str, size))} | {batch} | {r['cnnlab']:,.0f} | {r['plain']:,.0f} | "
                f"{r['cnnlab'] / r['plain']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
