/*
 * tokenizer.h - HuggingFace tokenizer.json byte-level BPE (GPT-2, GPT-NeoX-20B).
 *
 * encode: added tokens (<image>, <|endofchunk|>, ...) are split out of the
 * raw text first (leftmost, longest); every other segment is normalised
 * (NFC when the file asks), split by the GPT-2 pre-tokenizer pattern
 * (contractions, letters, numbers, other, whitespace runs) over Unicode
 * categories, mapped byte by byte to GPT-2's printable characters and
 * merged by BPE in merge-rank order.  Unicode tables come from utf8proc.
 *
 * decode streams: tok_decode_next returns only whole UTF-8 characters and
 * keeps a token's trailing partial character until a later token completes
 * it (invalid bytes become U+FFFD, as HF's lossy decoding does).
 *
 * A loaded tokenizer is immutable and thread-safe; a tok_stream belongs to
 * one generation.
 */
#ifndef FL_TOKENIZER_H
#define FL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"

struct tok;

/* Parses tokenizer.json text (not kept).  Errors name the problem: not a
 * BPE model, a merge of unknown tokens, an unsupported normalizer... */
int tok_load(const char *json, size_t len, struct tok **out, struct fl_err *err);
void tok_free(struct tok *t);

/* One more than the largest id (vocabulary and added tokens). */
int tok_vocab_size(const struct tok *t);

/* The id of an exact token string (vocabulary or added token), or -1. */
int tok_id(const struct tok *t, const char *token);

/* The token's string as stored in tokenizer.json (byte-level characters). */
const char *tok_piece(const struct tok *t, int id);

/* Encodes text[len] (UTF-8; invalid UTF-8 is an error naming the byte
 * offset).  Writes at most cap ids; *n_ids gets the full count, so a call
 * with cap too small reports how much is needed (and FL_ELIMIT). */
int tok_encode(const struct tok *t, const char *text, size_t len, int *ids, int cap, int *n_ids,
               struct fl_err *err);

/* Streaming decode of one generation. */
struct tok_stream {
    uint8_t pending[4];
    int n_pending;
};

/* Appends the text of token id to out (at most cap bytes; 64 are always
 * enough for one token plus the pending bytes... use tok_decode_cap) and
 * returns the number of bytes written: only complete characters.  Ids outside
 * the vocabulary decode to nothing. */
size_t tok_decode_next(const struct tok *t, struct tok_stream *st, int id, char *out, size_t cap);
/* The raw bytes of token id (at most cap; possibly not whole UTF-8
 * characters): what OpenAI's logprobs call "bytes".  Returns the count. */
size_t tok_token_bytes(const struct tok *t, int id, uint8_t *out, size_t cap);
/* Bytes tok_decode_next may write for token id. */
size_t tok_decode_cap(const struct tok *t, int id);
/* Flushes what is pending at the end (as U+FFFD).  Returns bytes written
 * (at most 12). */
size_t tok_decode_end(struct tok_stream *st, char *out);

#endif
