/*
 * amx_emulated.c - the AMX table's code (core/kern_impl.h with KERN_AMX)
 * compiled a second time, whole, with the six tile instructions done in C as
 * the manual describes them (AMX_EMULATE), for tests/test_amx.c.
 *
 * A file of its own because the Makefile compiles it with -mavx512bf16 and
 * the rest of the AVX-512 flags: the compiler may then use those
 * instructions anywhere in the file, so the test's own code (main, the
 * checks, the CPUID test that decides whether to call this table) must be
 * built without them, or it dies on an illegal instruction on a CPU that
 * has no AVX-512 before it has asked.  Elsewhere than x86-64, or with a
 * compiler that lacks the flags, amx_emulated is NULL.
 */
#include <stddef.h>

#include "../core/kern.h"

#if defined(__AVX512BF16__)
#define AMX_EMULATE    1
#define KERN_AMX       1
#define KERN_TABLE     kern_amx_emulated
#define KERN_NAME      "amx-emulated"
#define KERN_I16_MAX_M 32
#include "../core/kern_impl.h"
const struct kern *const amx_emulated = &kern_amx_emulated;
#else
const struct kern *const amx_emulated = NULL;
#endif
