/*
 * synth.h - models with random weights at real shapes, built in memory, so
 * that performance can be measured without downloading anything.
 */
#ifndef FL_SYNTH_H
#define FL_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"
#include "../core/wmat.h"
#include "../weights/config.h"

/* A vision tower of config v with weights drawn from seed, as a complete
 * in-memory model file (*buf, free with free()) whose tensors use the
 * "vision_encoder." names of docs/FORMAT.md and whose metadata holds a
 * matching config.  type: how tensors of two or more dimensions are stored,
 * by weights/convert.py --dtype's rules (q8_0: *weight tensors whose rows
 * are a multiple of 32; the rest f32). */
int synth_vision(const struct cfg_vision *v, uint64_t seed, enum wmat_type type, uint8_t **buf, size_t *len,
                 struct fl_err *err);

/* The vision tower and Perceiver Resampler of config c ("vision_encoder." and
 * "perceiver." names), random, with a config describing both. */
int synth_vision_perceiver(const struct fl_config *c, uint64_t seed, enum wmat_type type, uint8_t **buf,
                           size_t *len, struct fl_err *err);

/* The language model and cross-attention blocks of config c (MosaicGPT
 * names), random, with a config that also describes c's vision tower and
 * Perceiver (whose weights are not included: benchmarks feed random
 * latents).  For c = the defaults: OpenFlamingo-3B, 2.2 B parameters. */
int synth_lm(const struct fl_config *c, uint64_t seed, enum wmat_type type, uint8_t **buf, size_t *len,
             struct fl_err *err);

/* synth_lm's model with the same seed stored as type f32 but holding the
 * values round_as would store (bf16: rounded to nearest even; q8_0: int8
 * times the f16 scale, where convert.py would make it q8_0): what the
 * storage alone costs, apart from the kernels that read it (bench
 * --quality).  Any other type: synth_lm's. */
int synth_lm_rounded(const struct fl_config *c, uint64_t seed, enum wmat_type type, enum wmat_type round_as,
                     uint8_t **buf, size_t *len, struct fl_err *err);

#endif
