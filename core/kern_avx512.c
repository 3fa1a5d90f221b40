/*
 * kern_avx512.c - the kernels of kern_generic.c compiled by the Makefile with
 * AVX-512 (F, BW, VL, DQ, VNNI), FMA and FMA contraction; used only when
 * CPUID says so (kern_best).  Besides wider auto-vectorised loops it takes
 * kern_impl.h's VNNI q8_0 kernel (vpdpwssd, 4 W rows and 8 rows of x per
 * pass), which is as fast as the widened panel up to KERN_I16_MAX_M rows
 * (docs/ARCHITECTURE.md).  On other architectures this is the generic code
 * again.
 */
#define KERN_TABLE     kern_avx512
#define KERN_NAME      "avx512"
#define KERN_I16_MAX_M 64
#include "kern_impl.h"
