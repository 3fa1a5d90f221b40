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
#define KERN_I16_MAX_M 8 /* 12 rows and more: the bf16 dot product is faster */
#include "kern_impl.h"
