/*
 * kern_generic.c - the kernels for any CPU (baseline instruction set), and
 * the run-time choice between kernel tables.  See kern.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KERN_TABLE kern_generic
#define KERN_NAME "generic"
#define KERN_I16_MAX_M 11
#include "kern_impl.h"

size_t kern_attn_scratch(int T, int D) {
    size_t Tp = (size_t)pad_att(T);
    return (size_t)D * Tp + ATT_RB_MAX * Tp; /* the widest table's block */
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Linux's arch_prctl codes for the AMX tile data (asm/prctl.h, 5.16+) */
#define FL_ARCH_REQ_XCOMP_PERM 0x1023
#define FL_XFEATURE_XTILEDATA  18

static int amx_probe_denied; /* the CPU has AMX, Linux said no */

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
    if (syscall(SYS_arch_prctl, FL_ARCH_REQ_XCOMP_PERM, FL_XFEATURE_XTILEDATA) == 0) return 1;
    amx_probe_denied = 1;
    return 0;
}
#endif

/* See kern.h.  The tests check the AMX kernel against an emulation of the
 * tile instructions; this checks the instructions against that
 * understanding, on the machine itself, before anything relies on them. */
int kern_amx_self_test(const struct kern *table) {
    enum { N = 48, K = 64, M = 33, MP = 64 };
    float *x = malloc(sizeof(float) * M * K), *y = malloc(sizeof(float) * M * N);
    uint16_t *wb = malloc(sizeof(uint16_t) * N * K), *xv = aligned_alloc(64, sizeof(uint16_t) * MP * K);
    int ok = -1;
    if (x && y && wb && xv) {
        for (int j = 0; j < N; j++)
            for (int t = 0; t < K; t++)
                wb[j * K + t] = wmat_f32_to_bf16((float)((j * 7 + t * 3) % 9 - 4));
        for (int r = 0; r < M; r++)
            for (int t = 0; t < K; t++)
                x[r * K + t] = (float)((r * 5 + t) % 7 - 3);
        const struct wmat w = {WMAT_BF16, N, K, wb, NULL};
        table->amx_pack_x(x, K, M, K, 0, MP / 16, xv);
        table->gemm_bf16_amx(xv, M, &w, 0, N, y, N, 1.0f, 0, NULL);
        ok = 1;
        for (int r = 0; r < M; r++)
            for (int j = 0; j < N; j++) {
                int want = 0;
                for (int t = 0; t < K; t++)
                    want += ((j * 7 + t * 3) % 9 - 4) * ((r * 5 + t) % 7 - 3);
                ok &= y[r * N + j] == (float)want;
            }
    }
    free(x), free(y), free(wb), free(xv);
    return ok;
}

int kern_amx_status(void) {
#if defined(__x86_64__)
    static int known = 2; /* asked once, before any pool thread exists (mat_init) */
    if (known == 2) {
        __builtin_cpu_init();
        if (!kern_amx.gemm_bf16_amx || !__builtin_cpu_supports("avx512bf16") || !amx_probe())
            known = amx_probe_denied ? KERN_AMX_DENIED : KERN_AMX_ABSENT;
        else
            known = kern_amx_self_test(&kern_amx) == 1 ? KERN_AMX_OK : KERN_AMX_WRONG;
    }
    return known;
#else
    return KERN_AMX_ABSENT;
#endif
}

int kern_amx_usable(void) { return kern_amx_status() == KERN_AMX_OK; }

const struct kern *const kern_all[KERN_MAX_TABLES] = {&kern_generic, &kern_avx2, &kern_avx512,
                                                      &kern_avx512bf16, &kern_amx};

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
                if (kern_amx_usable()) out[n++] = &kern_amx; /* its kernel, the tiles and the self-test */
            }
        }
    }
#endif
    return n;
}

const struct kern *kern_best(void) {
    /* FLAMINGO_KERNELS=NAME (one of kern_all's) picks a lesser table
     * (for tests and for comparing); otherwise the widest the CPU and OS
     * support. */
    const struct kern *t[KERN_MAX_TABLES];
    int n = kern_tables(t);
    const char *force = getenv("FLAMINGO_KERNELS");
    for (int i = 0; force && i < n; i++)
        if (strcmp(force, t[i]->name) == 0) return t[i];
    return t[n - 1];
}
