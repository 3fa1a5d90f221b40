/*
 * kern_avx512bf16.c - kern_avx512.c's kernels plus AVX512-BF16 (Cooper
 * Lake, Sapphire Rapids, Zen 4 and later), compiled by the Makefile with
 * -mavx512bf16 on top: the table that has gemm_bf16_dot, BF16 weights times
 * bf16-rounded rows with vdpbf16ps (core/mat.c sends prompts and images
 * there).  A table of its own so that AVX-512 CPUs without BF16 keep the
 * VNNI table.
 */
#define KERN_TABLE     kern_avx512bf16
#define KERN_NAME      "avx512bf16"
#define KERN_I16_MAX_M 32 /* beyond, the bf16 dot product is as fast (docs/ARCHITECTURE.md) */
#include "kern_impl.h"
