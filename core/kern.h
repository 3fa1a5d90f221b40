/*
 * kern.h - the element-wise, row-wise and attention kernels, compiled once
 * per instruction set and chosen at run time.
 *
 * The kernel bodies live in kern_impl.h as plain C written for the
 * auto-vectoriser (fixed-size inner loops, accumulators that fit in
 * registers).  kern_generic.c compiles them for the baseline x86-64 / any
 * CPU; kern_avx2.c compiles the same text with -mavx2 -mfma and FMA
 * contraction.  kern_best() picks by CPUID once.  Results of the two differ
 * only by rounding (FMA), well inside every test tolerance.
 *
 * These kernels are single-threaded; core/mat.c splits work over the pool.
 */
#ifndef FL_KERN_H
#define FL_KERN_H

#include <stddef.h>

struct kern {
    const char *name;
    /* rows of width dim; b may be NULL (weight-only LayerNorm); y may be x */
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, int rows, int dim,
                      float eps);
    void (*softmax_rows)(float *x, int rows, int cols, int ld);
    void (*quick_gelu)(float *x, size_t n);
    void (*gelu)(float *x, size_t n);
    /*
     * One attention head, unmasked: out[i] = softmax_j(scale q_i . k_j) v_j.
     * q, k, v: [T][D] rows with leading dimension ld (views into a fused qkv
     * buffer); out: [T][D] with leading dimension ld_out; scratch:
     * kern_attn_scratch(T, D) floats.
     */
    void (*attn_head)(const float *q, const float *k, const float *v, int ld, int T, int D,
                      float scale, float *out, int ld_out, float *scratch);
};

/* Floats of scratch attn_head needs. */
size_t kern_attn_scratch(int T, int D);

extern const struct kern kern_generic;
extern const struct kern kern_avx2;

/* The best kernels this CPU runs (AVX2+FMA when present). */
const struct kern *kern_best(void);

#endif
