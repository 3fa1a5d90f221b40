/*
 * test_blas_core.c - OpenBLAS runs kernels this CPU has (core/blas_core.c):
 * the rule for replacing its choice, and the re-execution itself, which
 * this test binary goes through as the flamingo binary does.
 */
#include <stdlib.h>

#include "../core/blas_core.h"
#include "test.h"

int main(int argc, char **argv) {
    (void)argc;
    int had_env = getenv("OPENBLAS_CORETYPE") != NULL;
    blas_core_fix(argv); /* may start this test again, with OPENBLAS_CORETYPE set */

    const struct blas_cpu none = {0}, avx2 = {1, 0, 0, 0}, zen = {1, 0, 0, 1}, skx = {1, 1, 0, 0},
                          cpl = {1, 1, 1, 0};
    /* OpenBLAS's fallback on a CPU it does not know: the widest core the CPU runs */
    CHECK_STR(blas_core_for("Prescott", cpl), "Cooperlake");
    CHECK_STR(blas_core_for("Prescott", skx), "SkylakeX");
    CHECK_STR(blas_core_for("Prescott", avx2), "Haswell");
    CHECK_STR(blas_core_for("Prescott", zen), "Zen");
    CHECK_STR(blas_core_for("Sandybridge", avx2), "Haswell");
    CHECK_STR(blas_core_for(NULL, skx), "SkylakeX");
    /* a core with AVX2 stands, in any case, even if a wider one exists */
    CHECK(blas_core_for("Haswell", cpl) == NULL);
    CHECK(blas_core_for("haswell", skx) == NULL);
    CHECK(blas_core_for("Zen", zen) == NULL);
    CHECK(blas_core_for("SkylakeX", cpl) == NULL);
    CHECK(blas_core_for("Cooperlake", cpl) == NULL);
    CHECK(blas_core_for("SapphireRapids", cpl) == NULL);
    /* a CPU without AVX2: OpenBLAS's choice stands */
    CHECK(blas_core_for("Prescott", none) == NULL);
    CHECK(blas_core_for("Nehalem", none) == NULL);

    /* after blas_core_fix, this process runs a core the rule accepts
     * (unless the user chose one: then it is theirs) */
    struct blas_cpu cpu = blas_cpu_now();
    fprintf(stderr, "OpenBLAS core %s (avx2+fma %d, avx512 %d, bf16 %d)\n", blas_core_name(), cpu.avx2_fma,
            cpu.avx512, cpu.bf16);
    if (!had_env) CHECK(blas_core_for(blas_core_name(), cpu) == NULL);
    return TEST_END();
}
