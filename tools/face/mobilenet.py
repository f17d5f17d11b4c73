"""MobileNet-V1 at width 0.5 with the two heads of the 3DDFA_V2 checkpoint. Needs torch.

Written for gst-dawn from the MobileNet-V1 paper (Howard et al. 2017: a 3x3 stem, then
depthwise-separable blocks, global average pooling); the attribute names are the ones the
checkpoint's state dict uses, so ``load_state_dict(strict=True)`` proves the layout matches.
"""

import torch
from torch import nn

# (name, input channels, output channels, stride) of the depthwise-separable blocks at width 0.5.
BLOCKS = (
    ("dw2_1", 16, 32, 1), ("dw2_2", 32, 64, 2),
    ("dw3_1", 64, 64, 1), ("dw3_2", 64, 128, 2),
    ("dw4_1", 128, 128, 1), ("dw4_2", 128, 256, 2),
    ("dw5_1", 256, 256, 1), ("dw5_2", 256, 256, 1), ("dw5_3", 256, 256, 1),
    ("dw5_4", 256, 256, 1), ("dw5_5", 256, 256, 1), ("dw5_6", 256, 512, 2),
    ("dw6", 512, 512, 1),
)
STEM_CHANNELS = 16
PARAMS = 62  # 12 camera + 40 shape + 10 expression (normalised)
LANDMARKS = 68  # lm_aux: x0..x67, y0..y67


class SeparableBlock(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.bn_dw = nn.BatchNorm2d(cin)
        self.conv_sep = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = torch.relu(self.bn_dw(self.conv_dw(x)))
        return torch.relu(self.bn_sep(self.conv_sep(x)))


class FaceRegressor(nn.Module):
    """[N, 3, 120, 120] normalised BGR -> (param [N, 62], lm_aux [N, 136])."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        for name, cin, cout, stride in BLOCKS:
            self.add_module(name, SeparableBlock(cin, cout, stride))
        width = BLOCKS[-1][2]
        self.fc_param = nn.Linear(width, PARAMS)
        self.fc_lm = nn.Linear(width, 2 * LANDMARKS)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        for name, *_ in BLOCKS:
            x = getattr(self, name)(x)
        feat = x.mean(dim=(2, 3))
        return self.fc_param(feat), self.fc_lm(feat)


def load(checkpoint_path):
    """The regressor with the checkpoint's weights, in eval mode. The checkpoint is a dict with
    'state_dict' whose keys carry DataParallel's 'module.' prefix."""
    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint_path}: not a 3DDFA_V2 checkpoint (no state_dict)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = FaceRegressor()
    model.load_state_dict(state, strict=True)
    return model.eval()
