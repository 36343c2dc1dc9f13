"""Estimated training memory (cnnlab.analysis.training_memory) against the CUDA allocator's
peak (`torch.cuda.max_memory_allocated`) for one SGD-with-momentum step of zoo models.

Usage: python bench/training_memory.py   (needs CUDA)
"""

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.analysis import training_memory

CASES = [
    ("resnet18", 64),
    ("resnet50", 32),
    ("resnet50", 64),
    ("vgg16", 32),
    ("alexnet_owt", 128),
    ("googlenet_bn", 64),
    ("resnet56", 128),
    ("lenet5_modern", 256),
]


def measured_peak(name: str, batch: int) -> int:
    """Peak bytes allocated during the second training step (momentum buffers exist by then)."""
    torch.manual_seed(0)
    model = cnnlab.create_model(name).cuda().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    info = cnnlab.get_model_info(name)
    x = torch.randn(batch, *info.input_size, device="cuda")
    y = torch.randint(0, info.num_classes, (batch,), device="cuda")

    def step():
        out = model(x)
        outs = list(out) if isinstance(out, tuple) else [out]
        loss = sum(F.cross_entropy(o, y) for o in outs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # the first step creates the momentum buffers
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()  # includes the batch, which the estimate counts too


def main() -> None:
    torch.backends.cudnn.benchmark = False
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(
        "| model | batch | estimate MiB (weights + grads + momentum + saved activations) | "
        "measured peak MiB | estimate / measured |"
    )
    print("|---|---:|---|---:|---:|")
    for name, batch in CASES:
        est = training_memory(name, batch_size=batch, optimizer="momentum")
        peak = measured_peak(name, batch)
        torch.cuda.empty_cache()
        mib = lambda b: b / 2**20
        parts = " + ".join(f"{mib(est[k]):.0f}" for k in ("weights", "gradients", "optimizer_state", "activations"))
        print(f"| {name} | {batch} | {mib(est['total']):.0f} ({parts}) | {mib(peak):.0f} | {est['total'] / peak:.2f} |")


if __name__ == "__main__":
    main()
