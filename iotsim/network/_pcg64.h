/* numpy's PCG64 (PCG XSL RR 128/64, the generator of np.random.default_rng) and its `random()` double, for the
 * compiled loops that continue a numpy Generator's stream from its state words (iotsim/link/_lorawan_loop.c,
 * iotsim/mesh/_mesh_loop.c); tests/test_lorawan_loop_native.py checks the draws against numpy's.
 * Included by relative path; iotsim.network.native.build keys its cache on the headers a source includes. */
#ifndef IOTSIM_PCG64_H
#define IOTSIM_PCG64_H
#include <stdint.h>

typedef struct {
    unsigned __int128 state, inc;
} pcg64;

static inline uint64_t pcg_next(pcg64 *r)
{
    const unsigned __int128 mult = ((unsigned __int128)2549297995355413924ULL << 64) | 4865540595714422341ULL;
    r->state = r->state * mult + r->inc;
    uint64_t x = (uint64_t)(r->state >> 64) ^ (uint64_t)r->state;
    unsigned rot = (unsigned)(r->state >> 122);
    return (x >> rot) | (x << ((-rot) & 63));
}

static inline double pcg_double(pcg64 *r) { return (double)(pcg_next(r) >> 11) * (1.0 / 9007199254740992.0); }

#endif
