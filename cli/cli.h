/*
 * cli.h - what the `flamingo` subcommands share: the error conventions
 * (one line on stderr; exit 1 for a failure, 2 for bad usage), model and
 * image loading for the command line, and the command table.
 */
#ifndef FL_CLI_H
#define FL_CLI_H

#include "../core/err.h"
#include "../vision/img.h"
#include "../weights/config.h"
#include "../weights/st.h"

#define CLI_MAX_IMAGES 256

/* The running subcommand's name, for messages. */
extern const char *cli_cmd;

/* Prints "flamingo: CMD: msg" and returns 1. */
int cli_fail(const char *msg);
/* Prints "flamingo: CMD: <fmt with arg> (see flamingo CMD --help)" and returns 2. */
int cli_usage(const char *fmt, const char *arg);
/* Parses -t/--threads and restarts the thread pool; 0, or an exit status. */
int cli_threads(const char *arg);
/* Parses a number in [lo, hi] for option `name`; 0, or an exit status. */
int cli_long(const char *name, const char *arg, long lo, long hi, long *out);
int cli_float(const char *name, const char *arg, double lo, double hi, float *out);

/* The generation flags `run`, `caption` and `eval` share: their getopt
 * entries (CLI_GEN_OPTIONS, values 'n' and 0x100 and up) and their parser:
 * 0 when taken, an exit status on a bad value, -1 when c is not one of them. */
struct gen_params;
#define CLI_GEN_OPTIONS                                                                                      \
    {"max-tokens", required_argument, 0, 'n'}, {"temperature", required_argument, 0, 0x100},                 \
        {"top-k", required_argument, 0, 0x101}, {"top-p", required_argument, 0, 0x102},                      \
        {"min-p", required_argument, 0, 0x103}, {"repetition-penalty", required_argument, 0, 0x104},         \
        {"presence-penalty", required_argument, 0, 0x105},                                                   \
        {"frequency-penalty", required_argument, 0, 0x106}, {"seed", required_argument, 0, 0x107},           \
        {"beams", required_argument, 0, 0x108}, {"length-penalty", required_argument, 0, 0x109}, {           \
        "stop", required_argument, 0, 0x10a                                                                  \
    }
int cli_gen_option(int c, const char *arg, struct gen_params *gp);
/* Their help lines. */
extern const char cli_gen_help[];

/* A prompt's token ids (malloc'd into *ids), checked: at most
 * CLI_MAX_PROMPT_BYTES, not empty, one <image> marker per image, and room
 * for extra_tokens more in the context (extra_tokens: -n, or 0). */
struct fm_model;
#define CLI_MAX_PROMPT_BYTES (1 << 20)
int cli_prompt_ids(const struct fm_model *m, const char *prompt, int n_images, int extra_tokens, int **ids,
                   int *n_ids, struct fl_err *err);

/* One image file into a job's image: its key is the SHA-256 of the file's
 * bytes; when the engine's cache holds it, the entry is pinned (*cached set)
 * and nothing is decoded, else the file is decoded and preprocessed into
 * im->pixels.  Errors name the file. */
struct eng;
struct eng_image;
int cli_job_image(const struct fm_model *m, struct eng *e, const char *path, struct eng_image *im,
                  int *cached, struct fl_err *err);

/* The model when -m is not given: $FLAMINGO_MODEL, else the bundled
 * weights/flamingo-tiny.safetensors beside the binary (its folder or the
 * folder above: ./flamingo and build-asan/flamingo both find it).  NULL
 * with a message in err when neither exists. */
const char *cli_default_model(struct fl_err *err);

/* Opens a model file and parses its config (errors name the file). */
int cli_open_model(const char *path, struct st_file **f, struct fl_config *cfg, struct fl_err *err);
/* Reads and decodes an image file (errors name the file). */
int cli_load_image(const char *path, struct img *img, struct fl_err *err);
/* Decodes and preprocesses n image files into pixels [n][3][S][S]. */
int cli_load_pixels(const char *const *paths, int n, const struct cfg_preprocess *pre, float **pixels,
                    struct fl_err *err);

int cmd_preprocess(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_caption(int argc, char **argv);
int cmd_eval(int argc, char **argv);

#endif
