"""The age/gender network: a narrow ResNet-18 with two heads.

Input: float32 N x 3 x 112 x 112, RGB, raw 0..255 (normalisation happens inside the model, so the
runtime feeds the aligned crop as it is). Training uses the logits; the exported model ends in
softmax: `gender` N x 2 (P male, P female) and `age` N x 101 (P of each age 0..100).
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SIZE = 112
AGE_CLASSES = 101
# Widths of the four stages: half of ResNet-18's 64/128/256/512 (2.8 M parameters).
WIDTHS = (32, 64, 128, 256)


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


class AgeGenderNet(nn.Module):
    """ResNet-18 layout (2-2-2-2 basic blocks), stem conv 7x7/2 + max-pool, widths WIDTHS."""

    def __init__(self, widths=WIDTHS, dropout: float = 0.2):
        super().__init__()
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
        self.age = nn.Linear(cin, AGE_CLASSES)
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
        return torch.softmax(g, dim=1), torch.softmax(a, dim=1)


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
