/*
 * blas_core.c - make OpenBLAS run the kernels this CPU has.
 *
 * Debian's OpenBLAS is built with DYNAMIC_ARCH: when the library is loaded
 * it picks its kernels from the CPU's family and model numbers.  A CPU newer
 * than the library falls back to "Prescott", its SSE3 kernels.  Debian 12's
 * 0.3.21 does not know family 6 model 207 (the development Xeons, with
 * AVX-512, AVX512-BF16 and AMX): there sgemm of 2048x2048 ran at 61 GFLOP/s
 * on 2 cores, and at 312 GFLOP/s with OPENBLAS_CORETYPE=Cooperlake
 * (numpy, 2026-11-29).  Every f32 product of the engine goes through
 * OpenBLAS, so that is a factor of 5 on every compute-bound f32 stage.
 *
 * The choice is made in the library's constructor, before main, and only
 * the environment changes it.  So main() calls blas_core_fix() first: when
 * OpenBLAS chose a core without AVX2 on a CPU with AVX2 and FMA, it sets
 * OPENBLAS_CORETYPE and executes the program again (the environment then
 * holds the variable, so it happens once).  A CPU OpenBLAS knows, a CPU
 * without AVX2, or OPENBLAS_CORETYPE set by the user: nothing changes.
 */
#include "blas_core.h"

#include <cblas.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

struct blas_cpu blas_cpu_now(void) {
    struct blas_cpu c = {0};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    c.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    c.avx512 = c.avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
    c.bf16 = c.avx512 && __builtin_cpu_supports("avx512bf16");
    c.amd = __builtin_cpu_is("amd");
#endif
    return c;
}

const char *blas_core_for(const char *current, struct blas_cpu cpu) {
    /* OpenBLAS 0.3.21's x86-64 cores that use AVX2 (its other names are
     * older cores, or "Prescott", the fallback). */
    static const char *const wide[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"};
    if (!cpu.avx2_fma) return NULL;
    if (current)
        for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
            if (!strcasecmp(current, wide[i])) return NULL;
    if (cpu.bf16) return "Cooperlake";
    if (cpu.avx512) return "SkylakeX";
    return cpu.amd ? "Zen" : "Haswell";
}

const char *blas_core_name(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

int blas_core_fix(char **argv) {
    if (getenv("OPENBLAS_CORETYPE")) return 0;
    const char *want = blas_core_for(openblas_get_corename(), blas_cpu_now());
    if (!want) return 0;
    if (setenv("OPENBLAS_CORETYPE", want, 1) != 0) return -1;
    execv("/proc/self/exe", argv);
    return -1; /* no /proc, or not allowed: go on with OpenBLAS's choice */
}
