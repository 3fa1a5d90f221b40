/*
 * kern_amx.c - kern_avx512bf16.c's kernels plus AMX (Sapphire Rapids,
 * Emerald Rapids and later Xeons), compiled by the Makefile with
 * -mamx-tile -mamx-bf16 on top: the table that has gemm_bf16_amx, BF16
 * weights times bf16-rounded rows on AMX tiles (core/amx_impl.h; core/mat.c
 * sends many rows there: images, prompts, batched decode).  Chosen only
 * where CPUID says AMX-BF16 and Linux grants the process the tile state
 * (kern_amx_usable); a table of its own so that everything else keeps the
 * tables it had.  Elsewhere than x86-64 it is the generic code again, with
 * no AMX kernel, and never chosen.
 */
#define KERN_TABLE     kern_amx
#define KERN_NAME      "amx"
#define KERN_I16_MAX_M 32 /* as avx512bf16: the q8_0 kernels are the same */
#define KERN_AMX       1
#include "kern_impl.h"
