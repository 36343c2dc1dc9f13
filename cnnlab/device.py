"""Where computation runs: the device a user asks for, and this process's place in a torchrun job."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from .errors import CnnlabError


def pick_device(name: str) -> torch.device:
    """ "auto" (a GPU if there is one), "cpu", "cuda" or "cuda:N"; anything else is one clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CnnlabError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type not in ("cpu", "cuda"):  # mps, xla, ...: PyTorch names them, cnnlab is not built for them
        raise CnnlabError(
            f"device {name!r} is not supported (cnnlab runs on CPUs and CUDA GPUs); use cpu, cuda, cuda:N or auto"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CnnlabError("device cuda was asked for but CUDA is not available; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise CnnlabError(
            f"device {name} was asked for but this machine has {count} GPU{'s' * (count != 1)} "
            f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})"
        )
    return device


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    started_here: bool = False


def setup_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK): NCCL on GPUs,
    gloo on CPUs. Each process takes its own GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(), pick_device(device_name)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        # torchrun's store outlives a restart of the job (--max-restarts): keys of the attempt
        # before, such as a dead process's address, must not be read as this attempt's
        store, rank, size = next(dist.rendezvous("env://"))
        attempt = dist.PrefixStore(f"cnnlab/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=attempt, rank=rank, world_size=size)
    return Dist(dist.get_rank(), dist.get_world_size(), started), device


def leave_distributed(d: Dist) -> None:
    """Leave the process group if this process started it."""
    if d.started_here:
        dist.destroy_process_group()


def all_reduce(t: Tensor, d: Dist, op=None) -> Tensor:
    """The sum (or `op`) of `t` over the processes of a torchrun job, in place; `t` alone without one."""
    if d.world > 1:
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
    return t
