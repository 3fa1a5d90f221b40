"""Reference preprocessing: open_clip's validation transform built from
torchvision (Debian's python3-torchvision) on PIL images, exactly as
open_clip.transform.image_transform(224, is_train=False) composes it, and the
IDEFICS image processor's steps (transformers' convert_to_rgb, PIL resize,
rescale, normalize) written out with numpy.  Independent of flamingo.c."""
import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _to_rgb(im):
    return im.convert("RGB")


def open_clip_u8(im, size=224):
    tf = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size), _to_rgb])
    return np.asarray(tf(im))


def open_clip_float(im, size=224):
    tf = T.Compose([
        T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size), _to_rgb,
        T.ToTensor(), T.Normalize(OPENAI_MEAN, OPENAI_STD),
    ])
    with torch.no_grad():
        return tf(im).numpy()


def idefics_convert_to_rgb(im):
    """transformers.models.idefics.image_processing_idefics.convert_to_rgb"""
    if im.mode == "RGB":
        return im
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def idefics_u8(im, size=224):
    return np.asarray(idefics_convert_to_rgb(im).resize((size, size), resample=Image.BICUBIC))


def idefics_float(im, size=224):
    a = idefics_u8(im, size)
    x = (a * (1 / 255)).astype(np.float32)            # transformers rescale: float64 product, then float32
    mean = np.array(OPENAI_MEAN, dtype=np.float32)
    std = np.array(OPENAI_STD, dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))
