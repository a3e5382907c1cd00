from __future__ import annotations

import numpy as np
import pytest


def test_fast_argmax_equals_torch_argmax():
    import torch

    from pancakes_model.network.sampler import argmax_leading as argmax0

    x = torch.randn(7, 33, 21)
    x[:, 0, 0] = 1.0  # a tie: the lowest index wins, as in torch.argmax
    assert torch.equal(argmax0(x), x.argmax(dim=0))


@pytest.mark.parametrize("shape", [(256, 256), (100, 180), (300, 70), (64, 40)])
def test_fast_mapping_back_equals_full_interpolation(shape):
    import torch
    import torch.nn.functional as F

    from pancakes_data import SlicePlan
    from pancakes_model.inference import queries_to_labels

    g = torch.Generator().manual_seed(0)
    m, k, d = 3, 7, 8
    q = F.avg_pool2d(torch.randn(d, 128, 128, generator=g), 9, 1, 4)  # smooth, with boundaries
    q = q / q.norm(dim=0, keepdim=True)
    key = torch.randn(m, k, d, generator=g) * 10
    bias = torch.randn(m, k, generator=g)
    logits = torch.einsum("dhw,mkd->mkhw", q, key) + bias[..., None, None]
    h, w = shape
    n = max(h, w)
    plan = SlicePlan.for_slice((h, w), None, 128)
    assert plan.pad == ((n - h) // 2, (n - w) // 2)
    # three slices at once: the same slice, its mirror image, and the slice again
    batch = torch.stack([q, q.flip(-1), q]).contiguous(memory_format=torch.channels_last)
    fast = queries_to_labels(batch, key, bias, plan)
    # blocks of a few rows give the same labels as one block (memory is bounded, not the result)
    np.testing.assert_array_equal(queries_to_labels(batch, key, bias, plan, block_pixels=3 * w * m * 7), fast)
    assert fast.shape == (3, m, h, w) and fast.dtype == np.uint8
    full = F.interpolate(logits, size=(n, n), mode="bilinear", align_corners=False)
    full = full[:, :, plan.pad[0] : plan.pad[0] + h, plan.pad[1] : plan.pad[1] + w].argmax(dim=1).numpy()
    assert (fast[0] == full).mean() > 0.9995
    np.testing.assert_array_equal(fast[2], fast[0])
    mirrored = F.interpolate(logits.flip(-1), size=(n, n), mode="bilinear", align_corners=False)
    mirrored = mirrored[:, :, plan.pad[0] : plan.pad[0] + h, plan.pad[1] : plan.pad[1] + w].argmax(dim=1).numpy()
    assert (fast[1] == mirrored).mean() > 0.9995
    assert len(np.unique(full)) > 3  # the case has real boundaries
