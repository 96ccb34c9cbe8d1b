"""The age/gender network: a narrow ResNet-18 with two heads.

Input: float32 N x 3 x 112 x 112, RGB, raw 0..255 (normalisation happens inside the model, so the
runtime feeds the aligned crop as it is). Training uses the logits; the exported model ends in
probabilities: `gender` N x 2 (P male, P female) and `age` N x 101 (P of each age 0..100).

Two age heads (`age_head`): "dex", 101 logits whose softmax is the age distribution (DEX), and
"coral", an ordinal head (CORAL: one shared weight vector and 100 ordered biases, logit k says
"older than k"). The CORAL head exports the same `age` distribution, P(age = k) = P(> k-1) -
P(> k), so the runtime reads either model the same way (its expectation is the sum of P(> k)).
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SIZE = 112
AGE_CLASSES = 101


def widths_of(base: int) -> tuple[int, int, int, int]:
    """Stage widths for a base (first-stage) width: 32 is WIDTHS; 48 is 0.56 GFLOPs at 112x112."""
    return (base, 2 * base, 4 * base, 8 * base)


# Widths of the four stages: half of ResNet-18's 64/128/256/512 (2.8 M parameters).
WIDTHS = widths_of(32)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + idt)


class CoralHead(nn.Module):
    """CORAL (Cao et al., 2020): logits w.x + b_k, k = 0..K-1, for P(age > k)."""

    def __init__(self, cin: int, k: int):
        super().__init__()
        self.w = nn.Linear(cin, 1, bias=False)
        # ordered start: the k-th threshold's bias falls with k
        self.b = nn.Parameter(torch.linspace(2.0, -2.0, k))

    def forward(self, x):
        return self.w(x) + self.b


def age_distribution(a_logits: torch.Tensor, age_head: str) -> torch.Tensor:
    """N x 101 probabilities of each age from the age head's logits."""
    if age_head == "dex":
        return torch.softmax(a_logits, dim=1)
    older = torch.sigmoid(a_logits)  # N x 100: P(age > k)
    one = torch.ones_like(older[:, :1])
    p = torch.cat([one, older], 1) - torch.cat([older, 0 * one], 1)
    p = p.clamp(min=0)
    return p / p.sum(1, keepdim=True)


def expected_age(a_logits: torch.Tensor, age_head: str) -> torch.Tensor:
    """Expected age in years (N) from the age head's logits."""
    if age_head == "dex":
        ages = torch.arange(AGE_CLASSES, dtype=a_logits.dtype, device=a_logits.device)
        return (torch.softmax(a_logits, dim=1) * ages).sum(1)
    return torch.sigmoid(a_logits).sum(1)


class AgeGenderNet(nn.Module):
    """ResNet-18 layout (2-2-2-2 basic blocks), stem conv 7x7/2 + max-pool, widths WIDTHS."""

    def __init__(self, widths=WIDTHS, dropout: float = 0.2, age_head: str = "dex"):
        super().__init__()
        if age_head not in ("dex", "coral"):
            raise ValueError(f"age_head must be dex or coral, not {age_head!r}")
        self.age_head = age_head
        w0 = widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(3, w0, 7, 2, 3, bias=False),
            nn.BatchNorm2d(w0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers, cin = [], w0
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(cin, w, stride), BasicBlock(w, w, 1)]
            cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.gender = nn.Linear(cin, 2)
        if age_head == "dex":
            self.age = nn.Linear(cin, AGE_CLASSES)
        else:
            self.age = CoralHead(cin, AGE_CLASSES - 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        x = (x - 127.5) * (1.0 / 64.0)
        x = self.pool(self.layers(self.stem(x))).flatten(1)
        x = self.drop(x)
        return self.gender(x), self.age(x)


class Exported(nn.Module):
    """What goes into the ONNX file: probabilities, not logits."""

    def __init__(self, net: AgeGenderNet):
        super().__init__()
        self.net = net

    def forward(self, x):
        g, a = self.net(x)
        return torch.softmax(g, dim=1), age_distribution(a, self.net.age_head)


def count_macs(net: nn.Module, size: int = INPUT_SIZE) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (convolutions and linear layers)."""
    macs = 0

    def conv_hook(m, inp, out):
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs += out.numel() * k

    def lin_hook(m, inp, out):
        nonlocal macs
        macs += m.in_features * m.out_features

    hooks = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    was = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    net.train(was)
    for h in hooks:
        h.remove()
    return macs


if __name__ == "__main__":
    n = AgeGenderNet()
    print(
        f"params {sum(p.numel() for p in n.parameters()) / 1e6:.2f} M, "
        f"{count_macs(n) / 1e9:.3f} GMACs = {2 * count_macs(n) / 1e9:.3f} GFLOPs at {INPUT_SIZE}x{INPUT_SIZE}"
    )
