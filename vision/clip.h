/*
 * clip.h - the CLIP vision transformer (open_clip VisionTransformer),
 * frozen, batched.
 *
 * pixels [n, 3, S, S] -> patch embedding (conv S/P x S/P, as one GEMM over
 * im2col rows) -> [CLS; patches] + positional embedding -> ln_pre ->
 * L x { x += attn(ln_1(x)); x += mlp(ln_2(x)) } -> tokens.
 *
 * Output (config "vision.output"): OpenFlamingo feeds its Perceiver the 256
 * patch tokens of the last block, without CLS and without ln_post (open_clip
 * <= 2.22, which the v2 checkpoints were trained with); IDEFICS uses all 257.
 *
 * Batching: the n images of a call go through every Linear as one GEMM over
 * n x T rows; attention runs per image and head.  Model (weights, shared,
 * immutable) and state (scratch for up to max_batch images, one owner
 * thread) are separate, and clip_encode allocates nothing.
 */
#ifndef FL_CLIP_H
#define FL_CLIP_H

#include "../core/err.h"
#include "../weights/config.h"
#include "../weights/st.h"

struct clip_model;
struct clip_state;

/* Binds the tensors "<prefix>conv1.weight", ... (docs/FORMAT.md) of f to a
 * model of config cfg.  f must outlive the model (weights are mapped, not
 * copied, when they are F32).  Errors name the missing or misshapen tensor. */
int clip_load(const struct st_file *f, const struct cfg_vision *cfg, const char *prefix,
              struct clip_model **out, struct fl_err *err);
void clip_free(struct clip_model *m);

/* Scratch for batches of up to max_batch images (sized for the thread count
 * of the last mat_init: create states after it). */
int clip_state_init(const struct clip_model *m, int max_batch, struct clip_state **out,
                    struct fl_err *err);
void clip_state_free(struct clip_state *s);

const struct cfg_vision *clip_config(const struct clip_model *m);
/* Tokens per image in the output (256 or 257 for ViT-L/14 at 224). */
int clip_out_tokens(const struct clip_model *m);
/* Bytes of weights the model converted to f32 copies (0 when all mapped). */
size_t clip_owned_bytes(const struct clip_model *m);

/* pixels [n][3][S][S] (preprocessed) -> out [n][clip_out_tokens][width].
 * n may exceed the state's max_batch: images then go in chunks. */
void clip_encode(const struct clip_model *m, struct clip_state *s, const float *pixels, int n,
                 float *out);

/* Multiply-adds x 2 of one image through the tower (for benchmarks). */
double clip_flops_per_image(const struct cfg_vision *cfg);

#endif
