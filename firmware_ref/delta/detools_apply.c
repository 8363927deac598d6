/* Apply a detools sequential patch: old image + patch -> new image (iotsim's measurement of the CPU cost).
 *
 * Built into the reference firmware as if it were a model (iotsim/ota/patch_cost.py writes model.h):
 *     FROM_BYTES, PATCH_BYTES, TO_BYTES    sizes of the old image, the patch and the new image
 *     IOTSIM_INPUT_BYTES  = FROM_BYTES + PATCH_BYTES   input: the old image, then the patch
 *     IOTSIM_OUTPUT_BYTES = TO_BYTES                   output: the new image
 *     HS_MAX_WINDOW_SZ2   (optional, default 8)        the largest heatshrink window accepted
 * iotsim_model_invoke returns 0 when the patch applied, nonzero when it is malformed.
 *
 * Written for iotsim from the patch format as the detools Python package (0.53) writes and reads it
 * (detools/create.py, apply.py, common.py, compression/heatshrink.py); not derived from detools' or
 * heatshrink's C sources.
 *
 * Patch layout:
 *   byte 0         header: bit 7 unused, bits 6..4 patch type (0: sequential), bits 3..0 compression
 *                  (0: none, 4: heatshrink; detools' others are refused here)
 *   size           to-size, the new image's length (not compressed)
 *   the rest       the compressed stream: size dfpatch (data-format patch length; only 0 accepted),
 *                  then until to-size bytes are written, repeated:
 *                    size n, n diff bytes:   new[i] = old[from_pos + i] + diff[i] (mod 256)
 *                    size m, m extra bytes:  new[i] = extra[i]
 *                    size a:                 from_pos += n + a (a may be negative)
 *                  and nothing after the last chunk.
 * A size is 1 to 5 bytes: the first holds bit 7 "more follows", bit 6 "negative" and the magnitude's
 * low 6 bits; each following byte bit 7 "more follows" and the next 7 bits.
 *
 * heatshrink (LZSS): the stream starts with one byte (window_sz2 - 4) << 4 | (lookahead_sz2 - 3)
 * (detools writes 8 and 7), then bits read most significant first: tag 1, 8 bits = a literal byte;
 * tag 0, window_sz2 bits i, lookahead_sz2 bits c = copy c + 1 bytes from i + 1 bytes back in the
 * output (a window that starts as zeros). A token cut short by the end of the input ends the stream
 * (the encoder pads its last byte with zero bits).
 *
 * Stricter than detools' Python apply_patch: negative diff or extra sizes (which it skips; its
 * creator never writes them), diff reads outside the old image, and a to-size other than TO_BYTES
 * are refused. Plain C99: no malloc, no library calls but memcpy and memset.
 */
#include <stdint.h>
#include <string.h>

#include "model.h"

#if !defined(FROM_BYTES) || !defined(PATCH_BYTES) || !defined(TO_BYTES)
#error "model.h must define FROM_BYTES, PATCH_BYTES and TO_BYTES"
#endif
#if IOTSIM_INPUT_BYTES != FROM_BYTES + PATCH_BYTES || IOTSIM_OUTPUT_BYTES != TO_BYTES
#error "the input is the old image and the patch, the output the new image"
#endif
#ifndef HS_MAX_WINDOW_SZ2
#define HS_MAX_WINDOW_SZ2 8
#endif
#if HS_MAX_WINDOW_SZ2 < 4 || HS_MAX_WINDOW_SZ2 > 15
#error "heatshrink windows are 2^4 to 2^15 bytes"
#endif

#define PATCH_TYPE_SEQUENTIAL 0
#define COMPRESSION_NONE 0
#define COMPRESSION_HEATSHRINK 4

/* The decompressed stream: where the compressed bytes are, and the heatshrink decoder's state. */
typedef struct {
    const uint8_t *in;   /* next compressed byte */
    const uint8_t *end;  /* one past the last */
    int heatshrink;      /* 0: the bytes are the stream (compression none) */
    uint32_t acc;        /* bit buffer: its low `nbits` bits are the next bits, most significant first */
    unsigned nbits;
    unsigned window_sz2, lookahead_sz2;
    uint32_t mask;       /* window bytes - 1 */
    uint32_t head;       /* bytes output so far (the window position, modulo its size) */
    uint32_t copy_left;  /* bytes still to copy of the current back-reference */
    uint32_t copy_dist;  /* how far back it copies from */
    int ended;           /* no more bytes: the input ran out */
} stream_t;

/* The heatshrink window: the last 2^window_sz2 bytes decompressed. */
static uint8_t window[1u << HS_MAX_WINDOW_SZ2];

/* The next k bits (k <= 24), or -1 when the input has fewer left. */
static int32_t get_bits(stream_t *s, unsigned k) {
    while (s->nbits < k) {
        if (s->in == s->end) return -1;
        s->acc = (s->acc << 8) | *s->in++;
        s->nbits += 8;
    }
    s->nbits -= k;
    return (int32_t)((s->acc >> s->nbits) & ((1u << k) - 1u));
}

/* Decompress up to n bytes into dst; returns how many (fewer: the stream ended). */
static uint32_t hs_read(stream_t *s, uint8_t *dst, uint32_t n) {
    uint32_t got = 0;
    const uint32_t mask = s->mask;
    while (got < n && !s->ended) {
        if (s->copy_left) {
            uint32_t k = n - got < s->copy_left ? n - got : s->copy_left;
            uint32_t head = s->head;
            const uint32_t dist = s->copy_dist;
            s->copy_left -= k;
            s->head = head + k;
            while (k--) {
                uint8_t c = window[(head - dist) & mask];
                window[head++ & mask] = c;
                dst[got++] = c;
            }
            continue;
        }
        int32_t tag = get_bits(s, 1);
        if (tag < 0) break;
        if (tag) {
            int32_t c = get_bits(s, 8);
            if (c < 0) break;
            window[s->head++ & mask] = (uint8_t)c;
            dst[got++] = (uint8_t)c;
        } else {
            int32_t index = get_bits(s, s->window_sz2);
            if (index < 0) break;
            int32_t count = get_bits(s, s->lookahead_sz2);
            if (count < 0) break;
            s->copy_dist = (uint32_t)index + 1u;
            s->copy_left = (uint32_t)count + 1u;
        }
    }
    if (got < n) s->ended = 1;
    return got;
}

/* Up to n bytes of the stream into dst; returns how many. */
static uint32_t stream_read(stream_t *s, uint8_t *dst, uint32_t n) {
    if (s->heatshrink) return hs_read(s, dst, n);
    uint32_t left = (uint32_t)(s->end - s->in);
    if (n > left) n = left;
    memcpy(dst, s->in, n);
    s->in += n;
    return n;
}

/* A detools size from the stream into *value; 0 on success, -1 if the stream ends or the value
 * does not fit in 31 bits. */
static int read_size(stream_t *s, int32_t *value) {
    uint8_t b;
    if (stream_read(s, &b, 1) != 1) return -1;
    int negative = b & 0x40;
    uint64_t v = b & 0x3f;
    unsigned shift = 6;
    while (b & 0x80) {
        if (shift > 27 || stream_read(s, &b, 1) != 1) return -1;  /* at most 6 + 4 x 7 bits */
        v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
    }
    if (v > 0x7fffffffu) return -1;
    *value = negative ? -(int32_t)v : (int32_t)v;
    return 0;
}

/* A size read straight from the patch (the to-size, before the compressed stream). */
static int read_raw_size(const uint8_t **p, const uint8_t *end, int32_t *value) {
    stream_t raw = {0};
    raw.in = *p;
    raw.end = end;
    int rc = read_size(&raw, value);
    *p = raw.in;
    return rc;
}

int iotsim_model_invoke(const void *input, void *output) {
    const uint8_t *from = (const uint8_t *)input;
    const uint8_t *patch = from + FROM_BYTES;
    const uint8_t *patch_end = patch + PATCH_BYTES;
    uint8_t *to = (uint8_t *)output;

    if (PATCH_BYTES < 1) return 1;
    const uint8_t header = patch[0];
    const unsigned type = (header >> 4) & 0x7u, compression = header & 0xfu;
    if (type != PATCH_TYPE_SEQUENTIAL) return 2;
    if (compression != COMPRESSION_NONE && compression != COMPRESSION_HEATSHRINK) return 3;
    const uint8_t *p = patch + 1;
    int32_t to_size;
    if (read_raw_size(&p, patch_end, &to_size) || to_size != TO_BYTES) return 4;
    if (to_size == 0) return 0;  /* detools reads nothing further */

    stream_t s = {0};
    s.in = p;
    s.end = patch_end;
    if (compression == COMPRESSION_HEATSHRINK) {
        if (s.in == s.end) return 5;
        const uint8_t hs = *s.in++;
        s.heatshrink = 1;
        s.window_sz2 = (hs >> 4) + 4u;
        s.lookahead_sz2 = (hs & 0xfu) + 3u;
        if (s.window_sz2 > HS_MAX_WINDOW_SZ2 || s.lookahead_sz2 >= s.window_sz2) return 6;
        s.mask = (1u << s.window_sz2) - 1u;
        memset(window, 0, (size_t)1 << s.window_sz2);
    }

    int32_t dfpatch_size;
    if (read_size(&s, &dfpatch_size) || dfpatch_size != 0) return 7;  /* data formats: not supported */

    int32_t to_pos = 0;
    int64_t from_pos = 0;
    while (to_pos < to_size) {
        int32_t n, m, adjust;
        /* diff: the stream's bytes go to the output, then the old image's are added */
        if (read_size(&s, &n) || n < 0 || n > to_size - to_pos) return 8;
        if (n > 0) {
            if (from_pos < 0 || from_pos > (int64_t)FROM_BYTES - n) return 9;
            uint8_t *dst = to + to_pos;
            if (stream_read(&s, dst, (uint32_t)n) != (uint32_t)n) return 10;
            const uint8_t *src = from + from_pos;
            for (int32_t i = 0; i < n; i++) dst[i] = (uint8_t)(dst[i] + src[i]);
            to_pos += n;
            from_pos += n;
        }
        /* extra: the stream's bytes are the output */
        if (read_size(&s, &m) || m < 0 || m > to_size - to_pos) return 11;
        if (stream_read(&s, to + to_pos, (uint32_t)m) != (uint32_t)m) return 12;
        to_pos += m;
        /* adjustment of the old image's position */
        if (read_size(&s, &adjust)) return 13;
        from_pos += adjust;
    }
    uint8_t extra;
    if (stream_read(&s, &extra, 1) != 0) return 14;  /* detools: "End of patch not found." */
    return 0;
}
