"""The training step as one CUDA graph (`--cuda-graph`): the batch's augmentation, forward pass,
loss, backward pass and optimiser step captured once and replayed for every full batch, so a step
is one launch from the host instead of hundreds (a small network such as the CIFAR ResNets is
bound by launches, not arithmetic, at batch 128).

A replay runs the captured kernels on the memory they were captured with: the batch's example
indices are copied into a fixed tensor, the learning rates (which the schedule changes) live in
tensors on the device, and the step's output, loss and labels are fixed tensors that the next
replay overwrites. The random draws of the augmentation come from the run's generator, which
the graph advances as the eager step would, so a checkpoint's generator state stays exact.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import Tensor

from ..errors import CnnlabError

# eager steps before the capture: they make the optimiser's state (momentum buffers), let cuDNN
# pick its algorithms and the allocator settle, outside the graph; they are real training steps
WARMUP = 3


def capture_on_cuda(step: Callable[[], None], stream, generator: torch.Generator) -> Callable[[], None]:
    """Record `step` into a CUDA graph on `stream` (nothing runs now); returns its replay."""
    graph = torch.cuda.CUDAGraph()
    if hasattr(graph, "register_generator_state"):  # newer PyTorch registers generators as they are used
        graph.register_generator_state(generator)  # the augmentation's draws advance the run's generator
    with torch.cuda.graph(graph, stream=stream):
        step()
    return graph.replay


# how a step is captured, by device type
CAPTURE: dict[str, Callable] = {"cuda": capture_on_cuda}


def check_device(device: torch.device, processes: int = 1) -> None:
    """Refuse --cuda-graph where no step can be captured, before any work."""
    if device.type not in CAPTURE:
        raise CnnlabError(f"--cuda-graph captures the training step on a CUDA GPU; this run is on {device}")
    if processes > 1:
        raise CnnlabError("--cuda-graph captures the step of one process; run it without torchrun")


class GraphedStep:
    """`step(indices)` -> (output, loss, labels): the full-batch training step `body` run eagerly
    WARMUP times, then captured and replayed. `body(indices)` builds the batch and takes one
    optimisation step of `opt`; it must not wait for the device nor branch on a value on it."""

    def __init__(self, body: Callable, opt: torch.optim.Optimizer, generator: torch.Generator, batch: int, device):
        check_device(device)
        self.body, self.opt, self.generator = body, opt, generator
        self.indices = torch.zeros(batch, dtype=torch.long, device=device)
        # the fused kernels read a tensor learning rate from the device, as float32
        self.lrs = [torch.zeros((), dtype=torch.float32, device=device) for _ in opt.param_groups]
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.capture = CAPTURE[device.type]
        self.warm = 0
        self.replay: Callable[[], None] | None = None
        self.result: tuple = ()

    def __call__(self, indices: Tensor) -> tuple:
        self.indices.copy_(indices)
        for lr, group in zip(self.lrs, self.opt.param_groups):
            lr.fill_(group["lr"])  # the schedule's rate for this step
        if self.replay is None:
            with self.side_stream():
                if self.warm < WARMUP:
                    self.warm += 1
                    self.run()
                    return self.result
                self.opt.zero_grad(set_to_none=True)  # the graph's backward writes gradients of its own
                with self.tensor_lrs(capturing=True):
                    self.replay = self.capture(self.run, self.stream, self.generator)
        self.replay()
        return self.result

    def run(self) -> None:
        with self.tensor_lrs():
            out, loss, y = self.body(self.indices)
        out = tuple(o.detach() for o in out) if isinstance(out, tuple) else out.detach()
        self.result = (out, loss.detach(), y)

    @contextmanager
    def tensor_lrs(self, capturing: bool = False):
        """The optimiser reads its learning rates from `self.lrs` (Adam and AdamW are told they are
        being captured); its groups hold plain numbers again afterwards, for the schedule and the
        checkpoints."""
        saved = [(g["lr"], g.get("capturable")) for g in self.opt.param_groups]
        for group, lr in zip(self.opt.param_groups, self.lrs):
            group["lr"] = lr
            if capturing and "capturable" in group:
                group["capturable"] = True
        try:
            yield
        finally:
            for group, (lr, capturable) in zip(self.opt.param_groups, saved):
                group["lr"] = lr
                if capturable is not None:
                    group["capturable"] = capturable

    @contextmanager
    def side_stream(self):
        """The warm-up and the capture on a stream of their own, as CUDA graphs need; the loop's
        stream waits for them."""
        if self.stream is None:
            yield
            return
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            yield
        torch.cuda.current_stream().wait_stream(self.stream)
        torch.cuda.synchronize()  # the warm-up's tensors are freed on the other stream: no reuse in flight
