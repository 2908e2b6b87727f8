"""An inference copy of a model: eval mode, BatchNorm folded into the convolutions before it.

What the fast embedding path and ``aekit export`` run: the same outputs as the model in eval mode (up
to float rounding), fewer operations.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d in an nn.Sequential into that conv, in place.

    Only for inference (eval mode; the running statistics become part of the conv's weights), so call
    it on a copy. The output is the same up to float rounding. Returns how many were folded.
    """
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
                    and bn.running_mean is not None and bn.num_features == conv.out_channels
                    and not conv.training and not bn.training):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
                folded += 1
    return folded


def inference_copy(model):
    """A deep copy of `model` in eval mode with its BatchNorms folded (the model itself is left as it was)."""
    was_training = model.training
    model.eval()
    try:
        fast = copy.deepcopy(model)
    finally:
        model.train(was_training)
    fold_batchnorm(fast)
    return fast
