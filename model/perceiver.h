/*
 * perceiver.h - OpenFlamingo's Perceiver Resampler: an image's patch tokens
 * (256 x 1024 for ViT-L/14) in, a fixed set of latents (64 x 1024) out.
 *
 *   latents = learned [L, D], the same start for every image
 *   depth x { latents += Attn(q = LN_l(latents), kv = [LN_m(media); LN_l(latents)])
 *             latents += FF(latents) }                 (FF: LN, Linear, GELU, Linear)
 *   out = LN(latents)
 *
 * Images are independent and go through each Linear together (one GEMM over
 * all images' rows).  Model (weights) and state (scratch for up to
 * max_images) are separate; perc_forward allocates nothing.
 */
#ifndef FL_PERCEIVER_H
#define FL_PERCEIVER_H

#include "../core/err.h"
#include "../weights/config.h"
#include "../weights/st.h"

struct perc_model;
struct perc_state;

/* Binds "perceiver.*" (docs/FORMAT.md) for width dim and n_media input
 * tokens per image.  f must outlive the model. */
int perc_load(const struct st_file *f, const struct cfg_perceiver *cfg, int dim, int n_media,
              struct perc_model **out, struct fl_err *err);
void perc_free(struct perc_model *m);

/* Scratch for up to max_images images per call (create after mat_init). */
int perc_state_init(const struct perc_model *m, int max_images, struct perc_state **out,
                    struct fl_err *err);
void perc_state_free(struct perc_state *s);

/* media [n][n_media][dim] -> latents [n][num_latents][dim]; n <= max_images. */
void perc_forward(const struct perc_model *m, struct perc_state *s, const float *media, int n,
                  float *latents);

#endif
