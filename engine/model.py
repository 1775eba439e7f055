"""The co-part network (after Gao, Wang, Liu, Chen, ICML 2021), sized for real time on a CPU.

Structure (S = input side, h = w = S / ``latent_stride``):

* **Encoder E** — a small U-Net of strided 3×3 convolutions (S → S/16 and back up to h)
  followed by a 1×1 head giving K+1 latent maps ``V_k`` of ``latent_channels`` channels each
  (slot 0 = background). Cost is dominated by the up path at resolution h.
* **Segment decoder D** — shared by all slots and *pointwise* (a per-pixel MLP, i.e. 1×1
  convolutions): each latent vector ``V_k(u)`` → depth ``D_k(u)`` and part colour ``P_k(u)``.
  Being pointwise, decoding commutes with warping, ``D(V∘T⁻¹) = D(V)∘T⁻¹``, so training
  decodes each frame once at h×h and retargets the decoded depth and part images.
  Masks ``M_k = softmax_k(D_k)``; reconstruction ``Ĩ = Σ_k M_k P_k``.
* **Transforms T_k** — ``t_k`` is the centroid of mask k (so the part centre always lies on its
  mask); ``A_k = R(θ_k)·diag(s_k)`` comes from a per-part regression head over the
  mask-weighted average of decoder-level features. ``(sin θ, cos θ)`` is normalised to unit
  length (paper Eq. 1–2).

:meth:`PartNet.forward` *is* the exported inference graph: uint8 ``(N, S, S, 3)`` RGB →
``masks`` ``(N, K+1, h, w)`` float32 softmax, ``transforms`` ``(N, K, 6)`` float32
(:class:`engine.types.PartOutput`). :meth:`PartNet.encode` and :meth:`PartNet.decode` are the
training-time pieces (latent maps, part images).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from parttrack.engine.errors import BundleError


@dataclass(frozen=True)
class NetConfig:
    """Network hyper-parameters (the ``network`` section of a bundle's config.json).

    Attributes:
        num_parts: K foreground parts (slot 0 of the masks is the background).
        input_size: S, side of the square input; must be divisible by 16.
        latent_stride: S / h, the mask and latent-map resolution factor (2 or 4).
        widths: channels of the encoder at strides 2, 4, 8, 16.
        latent_channels: channels of each slot's latent map V_k.
        decoder_hidden: hidden width of the pointwise decoder.
        head_hidden: hidden width of the per-part transform head.
        init_scale: initial s_x = s_y of every part (normalised units, ~ a part's std).
        init_background_logit: initial depth offset of the background slot. Negative, so
            that at the start the parts cover the image and learn appearance; the background
            loss then hands the static regions to the background slot.
    """

    num_parts: int = 10
    input_size: int = 128
    latent_stride: int = 4
    widths: tuple[int, int, int, int] = (16, 32, 48, 64)
    latent_channels: int = 8
    decoder_hidden: int = 16
    head_hidden: int = 32
    init_scale: float = 0.12
    init_background_logit: float = -3.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.num_parts < 1:
            raise ValueError(f"num_parts must be >= 1, got {self.num_parts}")
        if self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {self.input_size}")
        if self.latent_stride not in (2, 4):
            raise ValueError(f"latent_stride must be 2 or 4, got {self.latent_stride}")
        if len(self.widths) != 4:
            raise ValueError(f"widths must have 4 entries, got {self.widths}")

    @property
    def mask_size(self) -> tuple[int, int]:
        """(h, w) of the masks and latent maps."""
        side = self.input_size // self.latent_stride
        return side, side

    @classmethod
    def from_dict(cls, data: dict) -> "NetConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise BundleError(f"network config has unknown keys {sorted(unknown)}",
                              "the bundle was made by a different parttrack version; retrain or re-export")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    def weights_fit(self, other: "NetConfig") -> bool:
        """Whether the weights of a network of ``other`` load into one of these settings: every
        setting equal except the input size (the network is convolutional, with no parameter
        whose shape depends on the input size)."""
        return replace(self, input_size=other.input_size) == other


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1))


def _normalised_coords(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1] (align_corners=False): xs (w,), ys (h,)."""
    xs = (torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1
    ys = (torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1
    return xs, ys


class PartNet(nn.Module):
    """Encoder + pointwise segment decoder + transform head (see the module docstring)."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2, c3, c4 = config.widths
        k1 = config.num_parts + 1
        self.down1 = _conv(3, c1, 2)                                     # S/2
        self.down2 = nn.Sequential(_conv(c1, c2, 2), _conv(c2, c2))      # S/4
        self.down3 = nn.Sequential(_conv(c2, c3, 2), _conv(c3, c3))      # S/8
        self.down4 = nn.Sequential(_conv(c3, c4, 2), _conv(c4, c4))      # S/16
        self.up3 = _conv(c4 + c3, c3)                                    # S/8
        self.up2 = _conv(c3 + c2, c2)                                    # S/4
        self.up1 = _conv(c2 + c1, c1) if config.latent_stride == 2 else None  # S/2
        cf = c1 if config.latent_stride == 2 else c2
        self.feature_channels = cf
        self.latent_head = nn.Conv2d(cf, k1 * config.latent_channels, 1)
        # Pointwise segment decoder D, shared by all slots.
        self.dec_hidden = nn.Conv2d(config.latent_channels, config.decoder_hidden, 1)
        self.dec_depth = nn.Conv2d(config.decoder_hidden, 1, 1)
        self.dec_rgb = nn.Conv2d(config.decoder_hidden, 3, 1)            # training only
        self.slot_bias = nn.Parameter(torch.tensor([config.init_background_logit] + [0.0] * config.num_parts))
        # Per-part transform head over mask-pooled features: (s_x, s_y, sin, cos) raw values.
        k, hh = config.num_parts, config.head_hidden
        self.head_w1 = nn.Parameter(torch.randn(k, cf, hh) * (1.0 / cf) ** 0.5)
        self.head_b1 = nn.Parameter(torch.zeros(k, hh))
        self.head_w2 = nn.Parameter(torch.randn(k, hh, 4) * 0.01)
        # bias: softplus(b) = init_scale for the scales, rotation starts at θ = 0 (cos = 1).
        sp_inv = float(np.log(np.expm1(config.init_scale)))
        self.head_b2 = nn.Parameter(torch.tensor([[sp_inv, sp_inv, 0.0, 1.0]] * k))
        xs, ys = _normalised_coords(*config.mask_size)
        self.register_buffer("grid_x", xs.view(1, 1, 1, -1), persistent=False)
        self.register_buffer("grid_y", ys.view(1, 1, -1, 1), persistent=False)

    # -- pieces --------------------------------------------------------------------------
    @staticmethod
    def normalise(image: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, S, S, 3)`` RGB → float ``(N, 3, S, S)`` in [-1, 1]."""
        return image.permute(0, 3, 1, 2).to(torch.float32) * (2.0 / 255.0) - 1.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(N, 3, S, S)`` → decoder-level features ``(N, C_f, h, w)``."""
        d1 = self.down1(x)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        d4 = self.down4(d3)
        u3 = self.up3(torch.cat([F.interpolate(d4, scale_factor=2.0, mode="nearest"), d3], 1))
        u2 = self.up2(torch.cat([F.interpolate(u3, scale_factor=2.0, mode="nearest"), d2], 1))
        if self.up1 is not None:
            return self.up1(torch.cat([F.interpolate(u2, scale_factor=2.0, mode="nearest"), d1], 1))
        return u2

    def latents(self, feats: torch.Tensor) -> torch.Tensor:
        """Features ``(N, C_f, h, w)`` → latent vectors ``V`` laid out ``(N, h, w, K+1, C_v)``
        (channels last, so the pointwise decoder is a plain matrix product)."""
        n, _, h, w = feats.shape
        v = self.latent_head(feats).permute(0, 2, 3, 1)
        return v.reshape(n, h, w, self.config.num_parts + 1, self.config.latent_channels)

    def _hidden(self, v: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(F.linear(v, self.dec_hidden.weight[:, :, 0, 0], self.dec_hidden.bias), 0.1)

    def decode_depth(self, v: torch.Tensor) -> torch.Tensor:
        """Latents ``(N, h, w, K+1, C_v)`` → depth logits ``(N, K+1, h, w)``."""
        d = F.linear(self._hidden(v), self.dec_depth.weight[:, :, 0, 0], self.dec_depth.bias)[..., 0]
        return (d + self.slot_bias).permute(0, 3, 1, 2)

    def decode(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents ``(N, h, w, K+1, C_v)`` → (depth logits ``(N, K+1, h, w)``, part images
        ``(N, K+1, 3, h, w)`` in [-1, 1]). Training only (part images are not in the
        inference graph)."""
        hid = self._hidden(v)
        depth = (F.linear(hid, self.dec_depth.weight[:, :, 0, 0], self.dec_depth.bias)[..., 0]
                 + self.slot_bias).permute(0, 3, 1, 2)
        rgb = torch.tanh(F.linear(hid, self.dec_rgb.weight[:, :, 0, 0], self.dec_rgb.bias)).permute(0, 3, 4, 1, 2)
        return depth, rgb

    def moments(self, masks: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mask centroids and covariances of the K foreground slots.

        Args:
            masks: ``(N, K+1, h, w)`` softmax masks.

        Returns:
            (centroid ``(N, K, 2)`` (x, y) normalised coords, covariance ``(N, K, 2, 2)``,
            area ``(N, K)`` = mask sum / (h·w)).
        """
        m = masks[:, 1:]
        total = m.sum((2, 3)) + eps
        mx = (m * self.grid_x).sum((2, 3)) / total
        my = (m * self.grid_y).sum((2, 3)) / total
        dx = self.grid_x - mx[..., None, None]
        dy = self.grid_y - my[..., None, None]
        cxx = (m * dx * dx).sum((2, 3)) / total
        cxy = (m * dx * dy).sum((2, 3)) / total
        cyy = (m * dy * dy).sum((2, 3)) / total
        cov = torch.stack([torch.stack([cxx, cxy], -1), torch.stack([cxy, cyy], -1)], -2)
        h, w = masks.shape[2:]
        return torch.stack([mx, my], -1), cov, total / (h * w)

    def transforms(self, feats: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``(N, K, 6)`` transforms: t = mask centroid, (s, θ) from the per-part head."""
        centroid, _, _ = self.moments(masks)
        m = masks[:, 1:]
        pooled = torch.einsum("nkhw,nchw->nkc", m, feats) / (m.sum((2, 3))[..., None] + 1e-6)
        hid = F.leaky_relu(torch.einsum("nkc,kcd->nkd", pooled, self.head_w1) + self.head_b1, 0.1)
        raw = torch.einsum("nkd,kde->nke", hid, self.head_w2) + self.head_b2
        scale = F.softplus(raw[..., 0:2]) + 1e-3
        rot = raw[..., 2:4]
        rot = rot / torch.sqrt((rot * rot).sum(-1, keepdim=True) + 1e-8)
        return torch.cat([scale, rot, centroid], -1)

    # -- training-time encoder output -----------------------------------------------------
    @staticmethod
    def hold_background(depth: torch.Tensor, offset: float | None) -> torch.Tensor:
        """Depth logits ``(N, K+1, h, w)`` with the background slot held back (a training
        schedule): ``offset`` None returns ``depth`` unchanged; otherwise slot 0 is cut from
        the gradient and shifted by ``offset``. Cutting the gradient, not only lowering the
        logit, is what holds it: Adam rescales even a tiny but consistent gradient on the
        background slot's own weights to full-size steps."""
        if offset is None:
            return depth
        return torch.cat([depth[:, :1].detach() + offset, depth[:, 1:]], 1)

    def encode(self, image: torch.Tensor, background_offset: float | None = None,
               compute_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """Everything training needs for a batch of frames.

        Args:
            image: uint8 ``(N, S, S, 3)`` RGB, or float ``(N, 3, S, S)`` already normalised.
            background_offset: hold the background slot back by this logit offset, without
                gradient (:meth:`hold_background`; None = the inference graph's behaviour).
            compute_dtype: run the convolutions and the decoder in this dtype
                (:func:`mixed_precision`); the masks and transforms are computed in float32
                from their float32 outputs either way. None: float32 throughout.

        Returns:
            dict with ``latents`` (N, h, w, K+1, C_v), ``depth`` (N, K+1, h, w),
            ``parts`` (N, K+1, 3, h, w) in [-1, 1], ``masks`` (N, K+1, h, w),
            ``transforms`` (N, K, 6), ``features`` (N, C_f, h, w).
        """
        x = self.normalise(image) if image.dtype == torch.uint8 else image
        with mixed_precision(x.device, compute_dtype):
            feats = self.features(x)
            v = self.latents(feats)
            depth, parts = self.decode(v)
        feats, v, depth, parts = (t.float() for t in (feats, v, depth, parts))
        depth = self.hold_background(depth, background_offset)
        masks = torch.softmax(depth, 1)
        return {"latents": v, "depth": depth, "parts": parts, "masks": masks,
                "transforms": self.transforms(feats, masks), "features": feats}

    # -- the inference graph ---------------------------------------------------------------
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference graph (exported to ONNX).

        Args:
            image: ``(N, S, S, 3)`` uint8 RGB (letterboxed, :class:`engine.preprocess.Letterbox`).

        Returns:
            masks ``(N, K+1, h, w)`` float32 softmax over slots (slot 0 = background) and
            transforms ``(N, K, 6)`` float32 ``(s_x, s_y, sin θ, cos θ, t_x, t_y)``
            (:class:`engine.types.PartOutput`).
        """
        feats = self.features(self.normalise(image))
        masks = torch.softmax(self.decode_depth(self.latents(feats)), 1)
        return masks, self.transforms(feats, masks)


def mixed_precision(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """A context in which the network's matrix products and convolutions run in ``dtype``
    (``torch.autocast``: weights stay float32, gradients flow back in float32; PyTorch's
    "Automatic Mixed Precision" documentation lists which ops are cast). ``dtype`` None, or
    float32: a context that changes nothing. Training only — the exported inference graph is
    float32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def count_macs(config: NetConfig) -> int:
    """Multiply-accumulates of the inference graph for one frame (convolutions, decoder and
    transform head; element-wise ops not counted)."""
    s, k1 = config.input_size, config.num_parts + 1
    c1, c2, c3, c4 = config.widths
    h = s // config.latent_stride
    macs = (s // 2) ** 2 * c1 * 3 * 9
    macs += (s // 4) ** 2 * (c2 * c1 * 9 + c2 * c2 * 9)
    macs += (s // 8) ** 2 * (c3 * c2 * 9 + c3 * c3 * 9)
    macs += (s // 16) ** 2 * (c4 * c3 * 9 + c4 * c4 * 9)
    macs += (s // 8) ** 2 * c3 * (c4 + c3) * 9
    macs += (s // 4) ** 2 * c2 * (c3 + c2) * 9
    cf = c2
    if config.latent_stride == 2:
        macs += (s // 2) ** 2 * c1 * (c2 + c1) * 9
        cf = c1
    macs += h * h * cf * k1 * config.latent_channels
    macs += h * h * k1 * (config.latent_channels * config.decoder_hidden + config.decoder_hidden)
    macs += h * h * (k1 - 1) * cf + (k1 - 1) * (cf * config.head_hidden + config.head_hidden * 4)
    return int(macs)


def build_network(config: NetConfig | dict) -> PartNet:
    """A freshly initialised :class:`PartNet` (train mode)."""
    cfg = config if isinstance(config, NetConfig) else NetConfig.from_dict(config)
    return PartNet(cfg)


def state_dict_numpy(net: nn.Module) -> dict[str, np.ndarray]:
    """The network's state dict as float32 numpy arrays (for ``weights.npz``)."""
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}


def load_state_npz(net: nn.Module, weights_path: str | Path) -> None:
    """Load ``weights.npz`` (no pickle) into ``net``.

    Raises:
        BundleError: unreadable file, missing or mismatched tensors.
    """
    path = Path(weights_path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise BundleError(f"{path}: cannot read the weights ({exc.__class__.__name__}: {exc})",
                          "re-export or re-download the bundle") from None
    own = net.state_dict()
    missing = sorted(set(own) - set(arrays))
    unexpected = sorted(set(arrays) - set(own))
    if missing or unexpected:
        raise BundleError(f"{path}: weights do not match the network (missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]})", "the weights belong to a different config.json")
    for k, v in arrays.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise BundleError(f"{path}: tensor {k} has shape {v.shape}, the network expects {tuple(own[k].shape)}",
                              "the weights belong to a different config.json")
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})


def read_config(config_path: str | Path) -> dict:
    """Read a bundle/run ``config.json`` (dict with a ``network`` section).

    Raises:
        BundleError: missing or malformed file.
    """
    path = Path(config_path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: cannot read the model config ({exc})", "re-export the bundle") from None
    if not isinstance(data, dict) or "network" not in data:
        raise BundleError(f"{path}: the config has no 'network' section", "re-export the bundle")
    return data


def load_network(config_path: str | Path, weights_path: str | Path) -> PartNet:
    """The torch network of a bundle, in eval mode; its ``forward`` is the inference graph.

    Args:
        config_path: the bundle's ``config.json``.
        weights_path: the bundle's ``weights.npz``.

    Raises:
        BundleError: unreadable or mismatched config/weights.
    """
    net = build_network(NetConfig.from_dict(read_config(config_path)["network"]))
    load_state_npz(net, weights_path)
    return net.eval()
