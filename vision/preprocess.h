/*
 * preprocess.h - decoded image -> the model's input pixels, exactly as the
 * reference pipeline computes them.
 *
 * open_clip (OpenFlamingo), the validation transform of ViT-L-14:
 *   Resize(S, BICUBIC) on the image in its own PIL mode (shorter side -> S,
 *   longer side int(S * long / short)), CenterCrop(S) (offsets rounded half
 *   to even), convert("RGB"), ToTensor (v / 255 in float32), Normalize.
 * IDEFICS: convert to RGBA and composite over white unless the image is RGB,
 *   resize straight to S x S, v * (1/255) in double then float32, Normalize.
 *
 * The resize is PIL 9.4's, bit for bit: the same bicubic kernel (a = -0.5),
 * support, coefficient normalisation and 22-bit fixed point, horizontal pass
 * then vertical pass with 8-bit rounding in between; NEAREST for palette and
 * bilevel images with PIL's accumulated source coordinate; RGBA/LA resized
 * premultiplied.  Only the output pixels inside the crop are computed, so a
 * 1x5000 image does not become a 224x1120000 intermediate.
 */
#ifndef FL_PREPROCESS_H
#define FL_PREPROCESS_H

#include <stdint.h>

#include "../core/err.h"
#include "../weights/config.h"
#include "img.h"

/* img -> rgb [S][S][3] u8: the pixels after resize, crop and conversion to
 * RGB (what ToTensor sees).  S = cfg->image_size. */
int pre_rgb8(const struct img *img, const struct cfg_preprocess *cfg, uint8_t *rgb,
             struct fl_err *err);

/* rgb [S][S][3] u8 -> out [3][S][S] float32, the normalisation of cfg->kind. */
void pre_normalize(const uint8_t *rgb, const struct cfg_preprocess *cfg, float *out);

/* pre_rgb8 then pre_normalize. */
int pre_image(const struct img *img, const struct cfg_preprocess *cfg, float *out,
              struct fl_err *err);

/* torchvision's Resize(S) output size for a w x h image (exposed for tests). */
void pre_resize_dims(int w, int h, int size, int *out_w, int *out_h);

/* torchvision's CenterCrop offset: round((len - size) / 2) half to even. */
int pre_crop_offset(int len, int size);

#endif
