"""An independent PyTorch implementation of open_clip's VisionTransformer
(open_clip <= 2.22, as OpenFlamingo v2 was trained with), with open_clip's
own module names, so that state dicts load by name.  Used to make the golden
fixtures and the full-size check; written from the architecture, not copied.

forward(x) returns what flamingo.c's `vision.output` config selects:
  "patch_tokens": the last block's output without CLS, without ln_post (256 x W)
  "all_tokens":   all tokens including CLS (257 x W), as IDEFICS uses them
and applies ln_post to them only when `ln_post` is set (open_clip >= 2.23).
"""
import numpy as np
import torch
import torch.nn as nn


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads, mlp_dim, act):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, mlp_dim))
        self.mlp.add_module("gelu", QuickGELU() if act == "quick_gelu" else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(mlp_dim, width))

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    def __init__(self, image_size=224, patch_size=14, width=1024, layers=24, heads=16, mlp_dim=4096,
                 act="quick_gelu", output="patch_tokens", ln_post=False, conv_bias=False, **_):
        super().__init__()
        self.output, self.use_ln_post = output, ln_post
        grid = image_size // patch_size
        self.conv1 = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=conv_bias)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_dim, act) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width)

    def forward(self, x):
        x = self.conv1(x)                                  # [N, W, g, g]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)   # [N, g*g, W]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x)
        for blk in self.transformer.resblocks:
            x = blk(x)
        if self.output == "patch_tokens":
            x = x[:, 1:]
        if self.use_ln_post:
            x = self.ln_post(x)
        return x


def random_state(cfg, rng):
    """Random weights with non-trivial LayerNorms and biases, scaled so that
    activations stay O(1), as numpy float32 arrays under open_clip's names."""
    W, M, P = cfg["width"], cfg["mlp_dim"], cfg["patch_size"]
    T = (cfg["image_size"] // P) ** 2 + 1

    def lin(o, i):
        return rng.uniform(-1, 1, (o, i)).astype(np.float32) * np.float32(np.sqrt(3.0 / i))

    def vec(n, center=0.0, spread=0.1):
        return (center + spread * rng.standard_normal(n)).astype(np.float32)

    sd = {
        "conv1.weight": rng.uniform(-1, 1, (W, 3, P, P)).astype(np.float32) * np.float32(np.sqrt(3.0 / (3 * P * P))),
        "class_embedding": vec(W, 0, 0.5),
        "positional_embedding": (0.5 * rng.standard_normal((T, W))).astype(np.float32),
        "ln_pre.weight": vec(W, 1.0, 0.2), "ln_pre.bias": vec(W),
        "ln_post.weight": vec(W, 1.0, 0.2), "ln_post.bias": vec(W),
    }
    if cfg.get("conv_bias"):
        sd["conv1.bias"] = vec(W)
    for i in range(cfg["layers"]):
        p = f"transformer.resblocks.{i}."
        sd.update({
            p + "ln_1.weight": vec(W, 1.0, 0.2), p + "ln_1.bias": vec(W),
            p + "attn.in_proj_weight": lin(3 * W, W), p + "attn.in_proj_bias": vec(3 * W),
            p + "attn.out_proj.weight": lin(W, W), p + "attn.out_proj.bias": vec(W),
            p + "ln_2.weight": vec(W, 1.0, 0.2), p + "ln_2.bias": vec(W),
            p + "mlp.c_fc.weight": lin(M, W), p + "mlp.c_fc.bias": vec(M),
            p + "mlp.c_proj.weight": lin(W, M), p + "mlp.c_proj.bias": vec(W),
        })
    return sd


def build(cfg, state):
    """A VisionTransformer of cfg with state (name -> array) loaded strictly."""
    m = VisionTransformer(**cfg)
    m.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()},
                      strict=True)
    return m.eval()


def encode(model, pixels):
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))).numpy()
