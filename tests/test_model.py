"""Network shapes/dtypes and transform algebra (engine.model, engine.warp)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from parttrack.engine.model import NetConfig, build_network, count_macs
from parttrack.engine.types import PartOutput
from parttrack.engine.warp import compose, identity, invert, random_warps, tuple_to_matrix, warp

TINY = dict(widths=(8, 8, 16, 16), latent_channels=4, decoder_hidden=8, head_hidden=8)


@pytest.mark.parametrize("k,size,stride", [(3, 32, 4), (5, 48, 2), (1, 16, 4)])
def test_inference_outputs(k, size, stride):
    torch.manual_seed(0)
    net = build_network(NetConfig(num_parts=k, input_size=size, latent_stride=stride, **TINY)).eval()
    img = torch.randint(0, 256, (3, size, size, 3), dtype=torch.uint8)
    with torch.no_grad():
        masks, tfs = net(img)
    h = size // stride
    assert masks.shape == (3, k + 1, h, h) and tfs.shape == (3, k, 6)
    assert masks.dtype == torch.float32 and tfs.dtype == torch.float32
    out = PartOutput(masks.numpy(), tfs.numpy())  # validates the shared contract
    np.testing.assert_allclose(out.masks.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(np.hypot(out.transforms[..., 2], out.transforms[..., 3]), 1, atol=1e-5)
    assert (out.transforms[..., :2] > 0).all()
    assert (np.abs(out.transforms[..., 4:]) <= 1).all()


def test_translation_is_mask_centroid():
    torch.manual_seed(1)
    net = build_network(NetConfig(num_parts=2, input_size=32, **TINY)).eval()
    masks = torch.zeros(1, 3, 8, 8)
    masks[0, 0] = 1
    masks[0, 0, 1, 6], masks[0, 1, 1, 6] = 0, 1      # part 1: one pixel at column 6, row 1
    masks[0, 0, 5:7, 2], masks[0, 2, 5:7, 2] = 0, 1  # part 2: column 2, rows 5-6
    tf = net.transforms(torch.randn(1, net.feature_channels, 8, 8), masks)
    np.testing.assert_allclose(tf[0, 0, 4:].detach().numpy(), [13 / 8 - 1, 3 / 8 - 1], atol=1e-5)
    np.testing.assert_allclose(tf[0, 1, 4:].detach().numpy(), [5 / 8 - 1, 12 / 8 - 1], atol=1e-5)


def test_training_encode_shapes():
    net = build_network(NetConfig(num_parts=3, input_size=32, **TINY))
    enc = net.encode(torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8))
    assert enc["latents"].shape == (2, 8, 8, 4, 4)
    assert enc["depth"].shape == (2, 4, 8, 8) and enc["parts"].shape == (2, 4, 3, 8, 8)
    assert enc["parts"].abs().max() <= 1


def test_config_validation():
    with pytest.raises(ValueError):
        NetConfig(input_size=100)
    with pytest.raises(ValueError):
        NetConfig(latent_stride=8)
    assert count_macs(NetConfig()) > count_macs(NetConfig(input_size=64))


# -- transform algebra ---------------------------------------------------------------------
def _tf(sx, sy, deg, tx, ty):
    th = math.radians(deg)
    return torch.tensor([sx, sy, math.sin(th), math.cos(th), tx, ty])


def test_tuple_to_matrix():
    m = tuple_to_matrix(_tf(2.0, 0.5, 90.0, 0.1, -0.2))
    # A = R(90°)·diag(2, 0.5): x axis → (0, 2), y axis → (-0.5, 0)
    np.testing.assert_allclose(m.numpy(), [[0, -0.5, 0.1], [2, 0, -0.2]], atol=1e-6)


def test_inverse_and_composition():
    torch.manual_seed(0)
    a = tuple_to_matrix(torch.stack([_tf(1.3, 0.7, 33, 0.2, -0.1), _tf(0.4, 0.9, -120, -0.5, 0.3)]))
    b = tuple_to_matrix(torch.stack([_tf(0.8, 1.1, 10, 0.0, 0.4), _tf(2.0, 2.0, 200, 0.1, 0.1)]))
    eye = identity(2)
    np.testing.assert_allclose(compose(a, invert(a)).numpy(), eye.numpy(), atol=1e-5)
    np.testing.assert_allclose(compose(invert(a), a).numpy(), eye.numpy(), atol=1e-5)
    # composition = product of the homogeneous 3×3 matrices
    h = lambda m: torch.cat([m, torch.tensor([[0.0, 0.0, 1.0]]).expand(m.shape[0], 1, 3)], 1)  # noqa: E731
    np.testing.assert_allclose(h(compose(a, b)).numpy(), (h(a) @ h(b)).numpy(), atol=1e-5)
    # applying the composition to points = applying b then a
    p = torch.tensor([0.3, -0.6])
    apply = lambda m, x: (m[..., :2] @ x[..., None])[..., 0] + m[..., 2]  # noqa: E731
    np.testing.assert_allclose(apply(compose(a, b), p).numpy(), apply(a, apply(b, p)).numpy(), atol=1e-5)


def test_warp_moves_content():
    img = torch.zeros(1, 1, 16, 16)
    img[0, 0, 8, 4] = 1.0   # a dot at x = (2·4+1)/16−1 = −0.4375, y = 0.0625
    shift = identity(1)
    shift[0, 0, 2] = 0.5    # move right by 0.5 normalised = 4 pixels
    out = warp(img, shift)
    assert out[0, 0].argmax().item() == 8 * 16 + 8
    assert abs(out.sum().item() - 1.0) < 1e-5


def test_random_warps_near_identity():
    w = random_warps(64, 15, 0.1, 0.1, generator=torch.Generator().manual_seed(0))
    assert w.shape == (64, 2, 3)
    assert (w[:, :, 2].abs() <= 0.1 + 1e-6).all()
    det = w[:, 0, 0] * w[:, 1, 1] - w[:, 0, 1] * w[:, 1, 0]
    assert ((det >= 0.9 ** 2 - 1e-5) & (det <= 1.1 ** 2 + 1e-5)).all()
