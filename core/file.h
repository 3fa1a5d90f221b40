/*
 * file.h - whole-file reads and writes with size caps, for the CLI and tools
 * (images, raw tensors).  Large model files are mapped by weights/st.c
 * instead.
 */
#ifndef FL_FILE_H
#define FL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Reads path into a new buffer (*out, free with free()).  A file larger
 * than max_bytes is an FL_ELIMIT error naming the file; so is a
 * non-regular file.  "-" reads standard input. */
int fl_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, struct fl_err *err);

/* Writes len bytes to path ("-" = standard output), replacing it. */
int fl_write_file(const char *path, const void *data, size_t len, struct fl_err *err);

#endif
