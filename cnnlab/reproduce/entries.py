"""The papers' training results that `cnnlab reproduce` runs: each with the paper's number, the
recipe as the paper states it (in cnnlab's settings) and every deviation written down."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# He et al. 2016 train on 45k images (5k held out) for 64k iterations of 128: 352 steps an epoch
HE_EPOCHS = math.ceil(64_000 / math.ceil(45_000 / 128))  # 182 epochs, 64,064 iterations
# and their optimiser: batch 128, SGD momentum 0.9 (not Nesterov's), lr 0.1, weight decay 1e-4
HE_SGD = dict(batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4)

CIFAR_JPEG = (
    "Our CIFAR-10 is a lossy JPEG copy (IJG quality 75, 4:2:0 chroma subsampling; 30.5 dB median "
    "PSNR against the originals), for training and test alike: expect it to cost some accuracy, "
    "perhaps up to a point of test error; how much is not measured here."
)


@dataclass(frozen=True)
class Entry:
    """One of the papers' results: where it is stated, what it measures, and how to train for it."""

    name: str
    cite: str  # "LeCun et al. 1998"
    title: str
    where: str  # where in the paper the number stands
    model: str
    dataset: str
    metric: str  # what the number measures
    value: float | None  # the paper's number (None: a figure, not a number)
    recipe: dict  # TrainConfig settings over the model's default recipe
    deviations: tuple[str, ...]
    unit: str = "% test error"
    notes: tuple[str, ...] = field(default_factory=tuple)
    device: str = "GPU"  # where it runs in reasonable time

    @property
    def paper(self) -> str:
        return f"{self.cite}, {self.title}, {self.where}"


LENET5 = Entry(
    name="lenet5-mnist",
    cite="LeCun et al. 1998",
    title="Gradient-Based Learning Applied to Document Recognition",
    where="Section III.C and Appendix C",
    model="lenet5",
    dataset="mnist",
    metric="test error on MNIST's 10,000 test digits after 20 passes, without distortions",
    value=0.95,
    recipe=dict(
        epochs=20,
        optimizer="sdlm",
        sdlm_mu=0.02,
        schedule="table",
        lr_table="5e-4x2,2e-4x3,1e-4x3,5e-5x4,1e-5",
        batch_size=32,
        normalize="lecun98",
        weight_decay=0.0,
        init="paper",
    ),
    deviations=(
        "Mini-batches of 32 with the paper's per-pattern rates as the rates of the mean gradient (32 times "
        "smaller per pattern): the paper updates after every pattern (60,000 steps a pass, an hour a pass "
        "on two CPU cores), and its rates diverge here, with stochastic updates too (bench/RESULTS.md).",
        "The loss is the cross-entropy of the negated RBF distances: the paper's MAP criterion (Eq. 9) "
        "without its constant 'rubbish class' term j.",
        "SDLM's curvature is that of the squared distance to the right code (Eq. 8), back-propagated as "
        "Appendix C does; the paper does not say which part of its criterion it used.",
        "The RBF codes are drawn after Fig. 3, not copied pixel for pixel.",
        "The test error is that of the final weights; the paper does not say which weights it reports.",
    ),
    device="CPU",
)


def _resnet(kind: str, depth: int, value: float | None) -> Entry:
    deviations = [
        "Per-channel mean and std normalisation instead of the per-pixel mean subtracted (BN after the "
        "first convolution makes the scale immaterial but for weight decay).",
        "The 5k validation images are the last 500 of each class, not a random 5k.",
        f"{HE_EPOCHS} epochs of 352 steps (64,064 iterations); the lr drops at 50 % and 75 % of them "
        "(iterations 32,032 and 48,048, not 32k and 48k).",
        "The test error is that of the final weights; the paper's table gives the best of 5 runs for "
        "ResNet-110 (mean 6.61 +- 0.16) and does not say for the others.",
    ]
    recipe = dict(
        epochs=HE_EPOCHS,
        **HE_SGD,
        schedule="multistep",
        gamma=0.1,
        augment=("crop", "flip"),
        val_split=0.1,
    )
    if depth == 110:  # "0.01 to warm up the training until the training error is below 80 % (about 400 iterations)"
        recipe["warmup_epochs"] = round(400 / 352, 2)
        deviations.append(
            "ResNet-110's warm-up rises linearly from lr/1000 over 400 iterations (1.14 epochs) instead of "
            "holding 0.01 until the training error is below 80 % (about 400 iterations, the paper says)."
        )
    name = f"{kind}{depth}"
    return Entry(
        name=f"{name}-cifar10",
        cite="He et al. 2016",
        title="Deep Residual Learning for Image Recognition",
        where="Section 4.2, " + ("Table 6" if value is not None else "Fig. 6 (left)"),
        model=name,
        dataset="cifar10",
        metric="test error on CIFAR-10's 10,000 test images"
        + ("" if value is not None else "; the paper draws it in Fig. 6, rising with depth, without a table"),
        value=value,
        recipe=recipe,
        deviations=tuple(deviations),
        notes=(CIFAR_JPEG,),
    )


NIN = Entry(
    name="nin-cifar10",
    cite="Lin et al. 2013",
    title="Network In Network",
    where="Section 4.2 and Table 1",
    model="nin_cifar",
    dataset="cifar10",
    metric="test error on CIFAR-10 without data augmentation (8.81 % with translations and flips)",
    value=10.41,
    recipe=dict(
        epochs=120,
        **HE_SGD,
        schedule="plateau",
        gamma=0.1,
        plateau_patience=5,
        whiten=True,
        val_split=0.1,
    ),
    deviations=(
        "The paper sets the learning rate and weight decay 'manually' and lowers the rate by 10 when "
        "training stops improving, once; ours are He et al.'s CIFAR settings (batch 128, SGD momentum 0.9, "
        "lr 0.1, weight decay 1e-4), 120 epochs and a patience of 5 epochs.",
        "ZCA whitening as the paper has it, without the global contrast normalisation before it.",
        "Batch norm: none, as in the paper; dropout 0.5 after every mlpconv block but the last, as in the paper.",
        "The test error is that of the final weights.",
    ),
    notes=(CIFAR_JPEG,),
)

ENTRIES = {
    e.name: e
    for e in (
        LENET5,
        *(_resnet("resnet", d, v) for d, v in ((20, 8.75), (32, 7.51), (44, 7.17), (56, 6.97), (110, 6.43))),
        *(_resnet("plain", d, None) for d in (20, 32, 44, 56)),
        NIN,
    )
}
