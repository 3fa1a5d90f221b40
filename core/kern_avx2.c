/*
 * kern_avx2.c - the same kernels as kern_generic.c, compiled by the Makefile
 * with -mavx2 -mfma and FMA contraction; used only when CPUID says so
 * (kern_best).  On other architectures this is the generic code again.
 */
#define KERN_TABLE kern_avx2
#define KERN_NAME "avx2"
#define KERN_I16_MAX_M 11 /* measured on Zen 3: docs/ARCHITECTURE.md */
#include "kern_impl.h"
