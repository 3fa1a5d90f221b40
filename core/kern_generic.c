/*
 * kern_generic.c - the kernels for any CPU (baseline instruction set), and
 * the run-time choice between kernel tables.  See kern.h.
 */
#include <stdlib.h>
#include <string.h>

#define KERN_TABLE kern_generic
#define KERN_NAME "generic"
#include "kern_impl.h"

size_t kern_attn_scratch(int T, int D) {
    size_t Tp = (size_t)pad16(T);
    return (size_t)D * Tp + ATT_RB * Tp;
}

const struct kern *kern_best(void) {
    /* FLAMINGO_KERNELS=generic forces the portable kernels (for tests and
     * for comparing); otherwise the widest the CPU and OS support. */
    const char *force = getenv("FLAMINGO_KERNELS");
    if (force && strcmp(force, "generic") == 0) return &kern_generic;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &kern_avx2;
#endif
    return &kern_generic;
}
