/*
 * kern_generic.c - the kernels for any CPU (baseline instruction set), and
 * the run-time choice between kernel tables.  See kern.h.
 */
#include <stdlib.h>
#include <string.h>

#define KERN_TABLE kern_generic
#define KERN_NAME "generic"
#define KERN_I16_MAX_M 11
#include "kern_impl.h"

size_t kern_attn_scratch(int T, int D) {
    size_t Tp = (size_t)pad16(T);
    return (size_t)D * Tp + ATT_RB * Tp;
}

/* Every table this CPU (and OS) runs, in order of preference reversed. */
int kern_tables(const struct kern *out[4]) {
    int n = 0;
    out[n++] = &kern_generic;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        out[n++] = &kern_avx2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vnni")) {
            out[n++] = &kern_avx512;
            if (__builtin_cpu_supports("avx512bf16")) out[n++] = &kern_avx512bf16;
        }
    }
#endif
    return n;
}

const struct kern *kern_best(void) {
    /* FLAMINGO_KERNELS=generic|avx2|avx512 picks a lesser table (for tests
     * and for comparing); otherwise the widest the CPU and OS support. */
    const struct kern *t[4];
    int n = kern_tables(t);
    const char *force = getenv("FLAMINGO_KERNELS");
    for (int i = 0; force && i < n; i++)
        if (strcmp(force, t[i]->name) == 0) return t[i];
    return t[n - 1];
}
