/*
 * cmd_models.c - `flamingo models`: the public OpenFlamingo v2 models that
 * weights/fetch.sh knows, with what they cost in download, disk and memory.
 *
 * The figures are arithmetic on published facts, not guesses:
 *   - parameters: the tensors of the converted file (weights/convert.py's
 *     expected_tensors at each model's shape, CLIP's proj and ln_post included);
 *     OpenFlamingo's own count (checkpoint.pt) is SPEC-openflamingo.md 2.3's;
 *   - download: checkpoint.pt + the LM's weights as the HF hub lists them
 *     (3B 4.19 + 5.25 GB f32; 4B 5.01 or 4.87 + 5.69 GB f16; 9B 5.54 GB +
 *     MPT-7B's three f32 shards, 6.65 G parameters x 4 B = 26.6 GB) + OpenAI's
 *     ViT-L-14.pt (about 0.9 GB: CLIP's 428 M parameters, mostly f16);
 *   - converted: f32 = 4 B per parameter; f16 / bf16 = 2 B, except the 1-D
 *     tensors (norms, biases, gates) that stay f32 (a few MB);
 *   - memory to run: the weights as f32 (f16 and bf16 files are widened to f32
 *     at load until the bf16 kernels of issue 7 exist) + the KV cache of one
 *     full 2048-token context (layers x 2 x 2048 x d_model x 4 B) + about
 *     0.3 GB of activations and buffers.  Measured on the 3B shape:
 *     10.04 GB peak RSS for one image and a short answer, either dtype.
 *   - converting needs about 1.3 GB (measured at the 3B shape, f32 and bf16:
 *     bench/convert_peak.py) and up to 2 GB at the 9B shape (its largest tensor
 *     is a 0.8 GB embedding).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct known_model {
    const char *name, *lm;
    double params_b;        /* converted file, billions */
    double download_gb;     /* everything fetch.sh downloads */
    double f32_gb, half_gb; /* converted file, f32 / f16 or bf16 */
    double ram_gb;          /* to run, one full context */
    int xattn_every;
    double coco_cider, vqav2; /* open_flamingo README, 4-shot */
};

static const struct known_model MODELS[] = {
    {"openflamingo-3b-vitl-mpt1b", "MPT-1B (mosaic_gpt)", 2.559, 10.3, 10.24, 5.12, 11.4, 1, 77.3, 45.8},
    {"openflamingo-3b-vitl-mpt1b-langinstruct", "MPT-1B Dolly (mosaic_gpt)", 2.559, 10.3, 10.24, 5.12, 11.4,
     1, 82.7, 45.7},
    {"openflamingo-4b-vitl-rpj3b", "RedPajama-3B (gpt_neox)", 4.040, 11.6, 16.16, 8.08, 17.8, 2, 81.8, 49.0},
    {"openflamingo-4b-vitl-rpj3b-langinstruct", "RedPajama-3B Instruct (gpt_neox)", 4.040, 11.5, 16.16, 8.08,
     17.8, 2, 85.8, 49.0},
    {"openflamingo-9b-vitl-mpt7b", "MPT-7B (mpt)", 8.131, 33.1, 32.53, 16.26, 35.0, 4, 89.0, 54.8},
};

int cmd_models(int argc, char **argv) {
    static const struct option longs[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "jh", longs, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h') {
            printf("usage: flamingo models [--json]\n"
                   "The public OpenFlamingo v2 models: what weights/fetch.sh NAME downloads and converts,\n"
                   "the sizes of the converted file, and the memory needed to run it.\n");
            return 0;
        } else
            return 2; /* getopt said why */
    }
    if (optind < argc) return cli_usage("unexpected argument '%s'", argv[optind]);
    size_t n = sizeof MODELS / sizeof MODELS[0];
    if (json) {
        printf("[");
        for (size_t i = 0; i < n; i++) {
            const struct known_model *m = &MODELS[i];
            printf("%s\n {\"name\": \"%s\", \"lm\": \"%s\", \"params_b\": %.3f, \"download_gb\": %.1f, "
                   "\"f32_gb\": %.2f, \"bf16_gb\": %.2f, \"f16_gb\": %.2f, \"ram_gb\": %.1f, "
                   "\"xattn_every\": %d, "
                   "\"coco_cider_4shot\": %.1f, \"vqav2_4shot\": %.1f}",
                   i ? "," : "", m->name, m->lm, m->params_b, m->download_gb, m->f32_gb, m->half_gb,
                   m->half_gb, m->ram_gb, m->xattn_every, m->coco_cider, m->vqav2);
        }
        printf("\n]\n");
        return 0;
    }
    printf("%-40s %-33s %7s %9s %8s %9s %7s %12s\n", "name (weights/fetch.sh NAME)", "language model",
           "params", "download", "f32 file", "bf16/f16", "RAM", "COCO / VQAv2");
    for (size_t i = 0; i < n; i++) {
        const struct known_model *m = &MODELS[i];
        printf("%-40s %-33s %6.2fB %6.1f GB %5.1f GB %6.1f GB %4.1f GB %5.1f / %4.1f\n", m->name, m->lm,
               m->params_b, m->download_gb, m->f32_gb, m->half_gb, m->ram_gb, m->coco_cider, m->vqav2);
    }
    printf(
        "\nRAM: to run one conversation at the full 2048-token context; f16/bf16 files are widened to f32\n"
        "at load for now, so they save disk, not memory.  Converting needs about 2 GB of RAM and the\n"
        "download plus the converted file on disk.  COCO CIDEr / VQAv2 accuracy: open_flamingo's README,\n"
        "4-shot.  Prompts: captions \"<image>Output:\", questions \"<image>Question:... Short answer:\".\n");
    return 0;
}
