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

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Linux's arch_prctl codes for the AMX tile data (asm/prctl.h, 5.16+) */
#define FL_ARCH_REQ_XCOMP_PERM 0x1023
#define FL_XFEATURE_XTILEDATA  18

static int amx_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(d & (1u << 24)) || !(d & (1u << 22))) return 0;               /* AMX-TILE, AMX-BF16 */
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return 0; /* XTILECFG, XTILEDATA enabled by the OS */
    /* Linux hands out the tile state only to processes that ask (first
     * use faults otherwise); the permission is the process's, all threads */
    return syscall(SYS_arch_prctl, FL_ARCH_REQ_XCOMP_PERM, FL_XFEATURE_XTILEDATA) == 0;
}
#endif

int kern_amx_usable(void) {
#if defined(__x86_64__)
    static int known = -1; /* asked once, before any pool thread exists (mat_init) */
    if (known < 0) known = amx_probe();
    return known;
#else
    return 0;
#endif
}

/* Every table this CPU (and OS) runs, in order of preference reversed. */
int kern_tables(const struct kern *out[KERN_MAX_TABLES]) {
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
            if (__builtin_cpu_supports("avx512bf16")) {
                out[n++] = &kern_avx512bf16;
                if (kern_amx.gemm_bf16_amx && kern_amx_usable()) out[n++] = &kern_amx;
            }
        }
    }
#endif
    return n;
}

const struct kern *kern_best(void) {
    /* FLAMINGO_KERNELS=generic|avx2|avx512|avx512bf16 picks a lesser table
     * (for tests and for comparing); otherwise the widest the CPU and OS
     * support. */
    const struct kern *t[KERN_MAX_TABLES];
    int n = kern_tables(t);
    const char *force = getenv("FLAMINGO_KERNELS");
    for (int i = 0; force && i < n; i++)
        if (strcmp(force, t[i]->name) == 0) return t[i];
    return t[n - 1];
}
