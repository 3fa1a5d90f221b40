/*
 * main.c - the `flamingo` command line: one binary, one subcommand per job.
 *
 * Each subcommand (cmd_*.c) parses its flags, calls library code that
 * returns errors as values, and turns a failure into one line on stderr and
 * a non-zero exit status (1: the command failed, 2: bad usage).  Nothing
 * below the CLI prints or exits.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bench/bench.h"
#include "../core/blas_core.h"
#include "../core/kern.h"
#include "../core/mat.h"
#include "cli.h"

#define FLAMINGO_VERSION "0.2.0"

/* ---- dispatch ------------------------------------------------------------ */

static void print_help(void) {
    printf(
        "flamingo %s - Flamingo-style vision-language models on CPUs\n\n"
        "usage: flamingo COMMAND [options]   (flamingo COMMAND --help for details)\n\n"
        "  preprocess -i IMG -o OUT      the model's input pixels (float32 CHW)\n"
        "  encode -m MODEL -i IMG -o OUT the vision tower's tokens (float32)\n"
        "  info MODEL                    config, tensors, dtypes and parameters of a model file\n"
        "  run -m MODEL -i IMG -p PROMPT  answer: generated text, streamed to stdout\n"
        "  serve -m MODEL [--port P]     the HTTP API (OpenAI-compatible) and a web page\n"
        "  caption [-m MODEL] PATH...    captions of files and folders as JSON lines (resumable, --shard)\n"
        "  eval [-m MODEL] --data F      accuracy on an evaluation set (make eval: the bundled model's)\n"
        "  tokenize -m MODEL -p TEXT     token ids as a JSON array (--decode: the reverse)\n"
        "  logits -m MODEL -i IMG -p PROMPT -o OUT   float32 logits [tokens][vocabulary]\n"
        "  models                        the public OpenFlamingo models: sizes, memory (weights/fetch.sh)\n"
        "  bench --synthetic vit-l-14|openflamingo-3b|gemm   performance against this machine's limits\n"
        "  version                       print the version\n",
        FLAMINGO_VERSION);
}

int main(int argc, char **argv) {
    /* First: it may start this program again with OPENBLAS_CORETYPE set. */
    blas_core_fix(argv);
    if (mat_init(0) < 0) {
        fprintf(stderr, "flamingo: cannot start worker threads\n");
        return 1;
    }
    /* a table the CPU cannot run falls back to the best it can (kern_best);
     * a name that is no table at all is a typo, said as such */
    const char *kn = getenv("FLAMINGO_KERNELS");
    int known = !kn;
    for (int i = 0; !known && i < KERN_MAX_TABLES; i++)
        known = strcmp(kn, kern_all[i]->name) == 0;
    if (!known) {
        fprintf(stderr, "flamingo: FLAMINGO_KERNELS must be ");
        for (int i = 0; i < KERN_MAX_TABLES; i++)
            fprintf(stderr, "%s%s", kern_all[i]->name,
                    i == KERN_MAX_TABLES - 1   ? ""
                    : i == KERN_MAX_TABLES - 2 ? " or "
                                               : ", ");
        fprintf(stderr, ", not '%s'\n", kn);
        return 2;
    }
    const char *act = getenv("FLAMINGO_Q8_ACT");
    if (act && mat_set_q8_act(act) < 0) {
        fprintf(stderr, "flamingo: FLAMINGO_Q8_ACT must be int16 or int8, not '%s'\n", act);
        return 2;
    }
    if (argc < 2) {
        fprintf(stderr,
                "flamingo: missing command; usage: flamingo COMMAND [options] (see flamingo --help)\n");
        return 2;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        print_help();
        return 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("flamingo %s\nkernels %s, OpenBLAS core %s, q8_0 rows %s\n", FLAMINGO_VERSION, mat_kernels(),
               blas_core_name(), mat_q8_act());
        /* AMX that is there and not used says why */
        if (kern_amx_status() == KERN_AMX_DENIED)
            printf("AMX: this CPU has it, Linux refused the tile state\n");
        if (kern_amx_status() == KERN_AMX_WRONG)
            printf("AMX: this CPU has it, and its self-test failed: not used (please report)\n");
        return 0;
    }
    cli_cmd = argv[1];
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"preprocess", cmd_preprocess}, {"encode", cmd_encode}, {"info", cmd_info},
        {"bench", bench_main},          {"run", cmd_run},       {"tokenize", cmd_tokenize},
        {"logits", cmd_logits},         {"models", cmd_models}, {"serve", cmd_serve},
        {"caption", cmd_caption},       {"eval", cmd_eval},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) {
            optind = 1;
            int status = cmds[i].fn(argc - 1, argv + 1);
            mat_shutdown();
            return status;
        }
    fprintf(stderr, "flamingo: unknown command '%s' (see flamingo --help)\n", argv[1]);
    return 2;
}
