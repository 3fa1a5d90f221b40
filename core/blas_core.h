/*
 * blas_core.h - make OpenBLAS run the kernels this CPU has (see
 * blas_core.c for why a program has to start twice for that).
 */
#ifndef FL_BLAS_CORE_H
#define FL_BLAS_CORE_H

/* What the CPU (and OS) can run, as far as OpenBLAS's kernels care. */
struct blas_cpu {
    int avx2_fma; /* AVX2 and FMA */
    int avx512;   /* AVX-512 F, CD, BW, DQ and VL (OpenBLAS's SkylakeX) */
    int bf16;     /* AVX512-BF16 as well (Cooperlake) */
    int amd;
};

struct blas_cpu blas_cpu_now(void);

/* The OPENBLAS_CORETYPE this CPU should run when OpenBLAS chose `current`,
 * or NULL when its choice stands: only a choice without AVX2 on a CPU with
 * AVX2 and FMA (OpenBLAS's fallback for a model it does not know) is
 * replaced, by the widest core the features allow. */
const char *blas_core_for(const char *current, struct blas_cpu cpu);

/* The kernel set OpenBLAS runs in this process ("Cooperlake", "Haswell"...). */
const char *blas_core_name(void);

/* Call first in main, before any thread exists.  When blas_core_for()
 * replaces OpenBLAS's choice and OPENBLAS_CORETYPE is not set, sets it and
 * executes this program again with the same arguments (no return).  Returns
 * 0 when nothing had to change, -1 when it could not re-execute (the
 * program then goes on with OpenBLAS's own choice). */
int blas_core_fix(char **argv);

#endif
