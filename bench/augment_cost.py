"""The cost of each batched augmentation on the training device against torchvision's per-image
transforms (the DataLoader way), on real CIFAR-10 batches, side by side in one process (rounds
alternating), with a ResNet-20 training step of the same batch for scale.

Reports the median milliseconds per batch of the timed rounds and the ratio per augmentation.
Usage: CNNLAB_DATA=../shared/data python bench/augment_cost.py [--batch 128] [--rounds 9]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.data.loaders import DeviceData
from cnnlab.train.losses import mix_batch

# torchvision's nearest equivalents, applied image by image as a Dataset's transform would
TORCHVISION = {
    "crop": v2.RandomCrop(32, padding=4),
    "flip": v2.RandomHorizontalFlip(),
    "rotate": v2.RandomRotation(15, interpolation=v2.InterpolationMode.BILINEAR),
    "jitter": v2.ColorJitter(0.4, 0.4, 0.4),
    "scale": v2.RandomAffine(0, scale=(1.0, 1.3)),
    "cutout": v2.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch.manual_seed(0)
    split = load_dataset("cifar10", train=True)
    data = DeviceData(split, (3, 32, 32), [0.5] * 3, [0.25] * 3, torch.device("cpu"))
    idx = torch.arange(args.batch)
    gen = torch.Generator().manual_seed(0)
    images = split.images[idx]  # uint8, as a Dataset hands them to its transform

    model = cnnlab.create_model("resnet20").to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step():
        x, y = data.batch(idx, ("crop", "flip"), gen)
        loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    tasks = {"resnet20 step (crop, flip)": step, "no augmentation": lambda: data.batch(idx, (), gen)}
    for name, transform in TORCHVISION.items():
        tasks[f"cnnlab {name}"] = lambda name=name: data.batch(idx, (name,), gen)
        tasks[f"torchvision {name}"] = lambda t=transform: torch.stack([t(img) for img in images])
    tasks["cnnlab mixup"] = lambda: mix_batch(data.batch(idx, (), gen)[0], split.labels[idx], 1.0, 0, 0, gen)
    for task in tasks.values():  # warm up
        task()
    times = {name: [] for name in tasks}
    for _ in range(args.rounds):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            times[name].append(1000 * (time.perf_counter() - start))
    ms = {name: statistics.median(t) for name, t in times.items()}
    base = ms["no augmentation"]
    print(
        f"median ms per batch of {args.batch} CIFAR-10 images, {args.rounds} rounds, {torch.get_num_threads()} threads"
    )
    print(f"{'task':32} {'ms':>8}  {'ms over no augmentation':>24}")
    for name, value in ms.items():
        print(f"{name:32} {value:8.2f}  {value - base:24.2f}")
    print()
    for name in TORCHVISION:
        print(
            f"{name:8} torchvision per image / cnnlab batched: {ms[f'torchvision {name}'] / ms[f'cnnlab {name}']:.1f}x"
        )


if __name__ == "__main__":
    main()
