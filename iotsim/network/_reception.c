/* Sequential kernels of iotsim/network/reception.py, loaded with ctypes by iotsim/network/native.py.
 *
 * Both compute exactly what the numpy/Python code they replace computes (same comparisons, same
 * floating-point operations in the same order; build with -ffp-contract=off so that no a*b+c is
 * fused): reception.py checks this against its pure-Python path in tests/test_reception.py.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- demodulator paths */

static inline void sift_down(double *h, int64_t len, int64_t k)
{
    double x = h[k];
    for (;;) {
        int64_t c = 2 * k + 1;
        if (c >= len)
            break;
        if (c + 1 < len && h[c + 1] < h[c])
            c++;
        if (!(h[c] < x))
            break;
        h[k] = h[c];
        k = c;
    }
    h[k] = x;
}

static inline void sift_up(double *h, int64_t k)
{
    double x = h[k];
    while (k > 0) {
        int64_t p = (k - 1) / 2;
        if (!(x < h[p]))
            break;
        h[k] = h[p];
        k = p;
    }
    h[k] = x;
}

/* Gateway g's held paths (a min-heap of end times, `*len` long) at a frame starting at s and ending at e: release
 * those held until <= s, then lock one when fewer than `paths` are held. Returns 1 if the frame locked a path. */
static inline __attribute__((always_inline)) int lock_path(double *h, int64_t *len_p, int64_t paths, double s, double e)
{
    int64_t len = *len_p;
    while (len > 0 && h[0] <= s) {
        len--;
        if (len > 0) {
            h[0] = h[len];
            sift_down(h, len, 0);
        }
    }
    int locked = len < paths;
    if (locked) {
        h[len] = e;
        sift_up(h, len);
        len++;
    }
    *len_p = len;
    return locked;
}

/* Frames in start order ask gateways for a demodulator path.
 *
 * start, end: (n,) the frames' start and end times, start non-decreasing; ticks: (n,) airtime in ticks.
 * candidate: (n, n_gw) row-major, non-zero where the frame asks gateway g for a path.
 * heap: (n_gw, cap) per gateway a binary min-heap of the end times of its held paths (a sorted
 *   array is one), heap_len[g] entries long; updated in place.
 * locked: (n, n_gw) row-major output, 1 where the frame locked a path at g; busy_ticks[g] and
 *   frames_locked[g] grow by the ticks and the number of the frames that locked a path at g.
 *
 * A frame locks a path at g when, after releasing every path held until <= its start, fewer than
 * `paths` are held; it then holds one until its end. */
void iotsim_allocate(int64_t n, int64_t n_gw, const double *start, const double *end, const int64_t *ticks,
                     const uint8_t *candidate, int64_t paths, double *heap, int64_t *heap_len, int64_t cap,
                     uint8_t *locked, int64_t *busy_ticks, int64_t *frames_locked)
{
    for (int64_t q = 0; q < n; q++) {
        double s = start[q];
        const uint8_t *cand = candidate + q * n_gw;
        uint8_t *lk = locked + q * n_gw;
        for (int64_t g = 0; g < n_gw; g++) {
            if (!cand[g]) {
                lk[g] = 0;
                continue;
            }
            lk[g] = (uint8_t)lock_path(heap + g * cap, heap_len + g, paths, s, end[q]);
            if (lk[g]) {
                busy_ticks[g] += ticks[q];
                frames_locked[g]++;
            }
        }
    }
}

/* `arrive` for frames that no gateway transmission meets (the open loop), fused with the allocation above:
 * per frame and gateway, the received power dbm[node] (+ offset[q] where given) against the frame's
 * sensitivity, then a path as iotsim_allocate gives it, without the (n, n_gw) matrices. Out: locked bits
 * (nbytes per row, bit g little-endian) and rank[q] = max over gateways of -1 (locked), 2 (audible, every
 * path held: demodulators busy), 0 (below sensitivity), as reception.arrive ranks them. */
void iotsim_arrive(int64_t n, int64_t n_gw, const double *start, const double *end, const int64_t *ticks,
                   const int64_t *node, const double *sens, const double *offset, const double *dbm, int64_t paths,
                   double *heap, int64_t *heap_len, int64_t cap, int64_t nbytes, uint8_t *locked, int8_t *rank,
                   int64_t *busy_ticks, int64_t *frames_locked, int64_t g0, int64_t g1)
{
    /* gateways [g0, g1) only (g0 a multiple of 8: callers split the gateways between threads, each with its
     * own bytes of `locked` and its own `rank`) */
    for (int64_t q = 0; q < n; q++) {
        double s = start[q], sq = sens[q];
        const double *row = dbm + node[q] * n_gw;
        uint8_t *lk = locked + q * nbytes;
        memset(lk + (g0 >> 3), 0, (size_t)(((g1 + 7) >> 3) - (g0 >> 3)));
        int r = -2;
        for (int64_t g = g0; g < g1; g++) {
            double p = offset ? row[g] + offset[q] : row[g];
            if (!(p >= sq)) {
                if (r < 0)
                    r = 0;
                continue;
            }
            if (lock_path(heap + g * cap, heap_len + g, paths, s, end[q])) {
                lk[g >> 3] |= (uint8_t)(1u << (g & 7));
                busy_ticks[g] += ticks[q];
                frames_locked[g]++;
                if (r < -1)
                    r = -1;
            } else {
                r = 2;
            }
        }
        rank[q] = (int8_t)r;
    }
}

/* ---------------------------------------------------------------- interference */

static inline void add_energy(double *cell, const double *pw, const double *off, int64_t k, double ov, int64_t n_gw)
{
    if (off) {
        double f = off[k];
        for (int64_t g = 0; g < n_gw; g++)
            cell[g] += (pw[g] * f) * ov;
    } else {
        for (int64_t g = 0; g < n_gw; g++)
            cell[g] += pw[g] * ov;
    }
}

/* Interference energy of one target frame p, as reception.decode's numpy sweep sums it.
 *
 * Frames are sorted by (group, start): s, e (start, end), grp, slot (SF slot of the frame's
 * energy), node (row of lin), off (NULL or a linear power factor per frame), maxend (running max of
 * e within each group). lin: (n_nodes, n_gw) received power in mW. row: (slots, n_gw) output.
 *
 * At d = 1, 2, ...: first the frame p + d (if it overlaps p), then the frame p - d (if it overlaps
 * p) add P * overlap to the cell of their slot, overlap = min(e_i, e_j) - s_j for the pair i < j:
 * the order in which the numpy sweep (one step per d, the later side first) adds them, so the sums
 * are the same floats. */
static void energy_of(int64_t p, int64_t n, int64_t n_gw, int64_t slots, const double *s, const double *e,
                      const int64_t *grp, const int64_t *slot, const int64_t *node, const double *lin,
                      const double *off, const double *maxend, double *row)
{
    double sp = s[p], ep = e[p];
    int64_t gp = grp[p];
    memset(row, 0, (size_t)slots * (size_t)n_gw * sizeof(double));
    int after = 1, before = 1;
    for (int64_t d = 1; after || before; d++) {
        if (after) {
            int64_t j = p + d;
            if (j < n && grp[j] == gp && s[j] < ep)
                add_energy(row + slot[j] * n_gw, lin + node[j] * n_gw, off, j, (ep < e[j] ? ep : e[j]) - s[j], n_gw);
            else
                after = 0;
        }
        if (before) {
            int64_t i = p - d;
            if (i < 0 || grp[i] != gp || !(maxend[i] > sp))
                before = 0; /* no frame at or before i overlaps p */
            else if (sp < e[i])
                add_energy(row + slot[i] * n_gw, lin + node[i] * n_gw, off, i, (e[i] < ep ? e[i] : ep) - sp, n_gw);
        }
    }
}

/* energy: (rows, slots, n_gw) output, the interference energy of the targets at positions tp. */
void iotsim_energy(int64_t n, int64_t n_gw, int64_t slots, const double *s, const double *e, const int64_t *grp,
                   const int64_t *slot, const int64_t *node, const double *lin, const double *off,
                   const double *maxend, int64_t rows, const int64_t *tp, double *energy)
{
    for (int64_t r = 0; r < rows; r++)
        energy_of(tp[r], n, n_gw, slots, s, e, grp, slot, node, lin, off, maxend, energy + r * slots * n_gw);
}

/* The verdict below, at one gateway g where the target locked a path: with signal S = P_p * (e_p - s_p) and E_t
 * the interference energy of slot t, it is destroyed when
 *   co_mode 0 (no capture): E_own > 0;
 *   co_mode 1 (capture threshold > 0): E_own * k_co > S;
 *   co_mode 2 (threshold <= 0): E_own >= S and E_own > 0;
 * or, when k_inter is not NULL ((slots, slots), zero diagonal), E_t * k_inter[own][t] > S for some t. */

/* Interference energy of target p at the gateways gl[0..ng) only (row: (slots, ng)): energy_of's sums at
 * those gateways (the same additions in the same order: each gateway's sum is its own). Only the slots some
 * overlapping frame adds to are written (zeroed when first touched); returns them as a bit mask (slots <= 32),
 * 0 when no frame overlaps p. An untouched slot holds 0 in energy_of, and a zero energy destroys nothing in
 * iotsim_verdict's rules (0 * k > S, 0 > 0 and 0 >= S with 0 > 0 are false for the signal S >= 0, or NaN). */
static inline void add_at(double *row, unsigned *mask, int64_t t, int64_t ng, const double *pw, const int64_t *gl,
                          const double *off, int64_t k, double ov)
{
    double *cell = row + t * ng;
    if (!((*mask >> t) & 1u)) {
        memset(cell, 0, (size_t)ng * sizeof(double));
        *mask |= 1u << t;
    }
    if (off) {
        double f = off[k];
        for (int64_t i = 0; i < ng; i++)
            cell[i] += (pw[gl[i]] * f) * ov;
    } else {
        for (int64_t i = 0; i < ng; i++)
            cell[i] += pw[gl[i]] * ov;
    }
}

static unsigned energy_at(int64_t p, int64_t n, int64_t n_gw, const double *s, const double *e, const int64_t *grp,
                          const int64_t *slot, const int64_t *node, const double *lin, const double *off,
                          const double *maxend, const int64_t *gl, int64_t ng, double *row)
{
    double sp = s[p], ep = e[p];
    int64_t gp = grp[p];
    unsigned mask = 0;
    int after = 1, before = 1;
    for (int64_t d = 1; after || before; d++) {
        if (after) {
            int64_t j = p + d;
            if (j < n && grp[j] == gp && s[j] < ep)
                add_at(row, &mask, slot[j], ng, lin + node[j] * n_gw, gl, off, j, (ep < e[j] ? ep : e[j]) - s[j]);
            else
                after = 0;
        }
        if (before) {
            int64_t i0 = p - d;
            if (i0 < 0 || grp[i0] != gp || !(maxend[i0] > sp))
                before = 0;
            else if (sp < e[i0])
                add_at(row, &mask, slot[i0], ng, lin + node[i0] * n_gw, gl, off, i0,
                       (e[i0] < ep ? e[i0] : ep) - sp);
        }
    }
    return mask;
}

/* The verdict on the targets at positions tp, as reception.decode takes it: at gateway g the target
 * is decoded when it locked a path there (bit g of locked[r], nbytes per row, little-endian), no
 * gateway transmission cuts it (cut: NULL or (rows, n_gw)) and interference does not destroy it.
 * status[r]: `delivered` if decoded somewhere, else rank_to_fate[max(fate_rank[r], ranks at the
 * gateways where it locked a path: 1 cut, 3 collision)]; best[r]: the first gateway with the
 * highest dbm[node[p]] among those decoding it (-1 if none); count[r]: how many decode it.
 * Interference is summed and judged at the gateways where the target locked a path only (the others
 * cannot decode it), with destroyed_of's arithmetic. work: slots * n_gw doubles, dead: n_gw bytes. */
void iotsim_verdict(int64_t n, int64_t n_gw, int64_t slots, const double *s, const double *e, const int64_t *grp,
                    const int64_t *slot, const int64_t *node, const double *lin, const double *off,
                    const double *maxend, int64_t rows, const int64_t *tp, int64_t co_mode, double k_co,
                    const double *k_inter, int64_t nbytes, const uint8_t *locked, const uint8_t *cut,
                    const int8_t *fate_rank, const double *dbm, const int8_t *rank_to_fate, int64_t delivered,
                    double *work, uint8_t *dead, int8_t *status, int16_t *best, int16_t *count)
{
    int64_t *gl = (int64_t *)malloc((size_t)(n_gw > 0 ? n_gw : 1) * sizeof(int64_t));
    if (!gl)
        return;
    for (int64_t r = 0; r < rows; r++) {
        int64_t p = tp[r];
        const uint8_t *lk = locked + r * nbytes;
        const uint8_t *ct = cut ? cut + r * n_gw : NULL;
        int64_t ng = 0;
        for (int64_t b = 0; b < nbytes; b++) {
            unsigned v = lk[b];
            while (v) {
                int64_t g = b * 8 + __builtin_ctz(v);
                v &= v - 1;
                if (g < n_gw)
                    gl[ng++] = g;
            }
        }
        if (ng) {
            unsigned mask = energy_at(p, n, n_gw, s, e, grp, slot, node, lin, off, maxend, gl, ng, work);
            if (!mask) {
                memset(dead, 0, (size_t)ng); /* no frame overlaps p: nothing destroys it (see energy_at) */
            } else {
                int64_t own = slot[p];
                int own_hit = (mask >> own) & 1u;
                double dur = e[p] - s[p];
                const double *pw = lin + node[p] * n_gw;
                for (int64_t i = 0; i < ng; i++) {
                    int64_t g = gl[i];
                    double sig = (off ? pw[g] * off[p] : pw[g]) * dur;
                    double x = own_hit ? work[own * ng + i] : 0.0;
                    int d;
                    if (co_mode == 0)
                        d = x > 0;
                    else if (co_mode == 1)
                        d = x * k_co > sig;
                    else
                        d = (x >= sig) && (x > 0);
                    if (k_inter) {
                        const double *kk = k_inter + own * slots;
                        for (unsigned m = mask; m; m &= m - 1) {
                            int64_t t = __builtin_ctz(m);
                            d |= work[t * ng + i] * kk[t] > sig;
                        }
                    }
                    dead[i] = (uint8_t)d;
                }
            }
        }
        int rank = fate_rank[r];
        int16_t cnt = 0;
        int64_t bi = -1;
        double bv = 0.0;
        const double *pd = dbm + node[p] * n_gw;
        for (int64_t i = 0; i < ng; i++) {
            int64_t g = gl[i];
            int is_cut = ct ? ct[g] != 0 : 0;
            int gr = is_cut ? 1 : 3;
            if (gr > rank)
                rank = gr;
            if (is_cut || dead[i])
                continue;
            cnt++;
            /* np.argmax over where(decoded, dbm, -inf): the first maximum (a NaN wins) */
            double v = pd[g];
            if (bi < 0 || (!(bv != bv) && (v > bv || v != v))) {
                bi = g;
                bv = v;
            }
        }
        if (cnt > 0 && bi > 0) {
            /* a gateway not decoding the frame (value -inf) before the first decoding one wins when
             * that one's value is -inf too */
            if (bv == -INFINITY)
                bi = 0;
        }
        count[r] = cnt;
        best[r] = (int16_t)(cnt > 0 ? bi : -1);
        status[r] = cnt > 0 ? (int8_t)delivered : rank_to_fate[rank];
    }
    free(gl);
}

/* The cloud's FIFO queue on `servers` servers (iotsim.engine.chunked.CloudQueue): requests in arrival order
 * each go to the server free first (ties: the one that became free first, by seq), which serves it from
 * max(arrival, free) and is free again at free + ((max(arrival, free) - free) + service): the float operations
 * of iotsim.network.cloud.simulate_cloud, where SimPy's clock advances by the timeout. */
void iotsim_cloud_fifo(int64_t n, const double *arrival, double service, int64_t servers, double *free_t,
                       int64_t *seq, int64_t *next_seq, double *start, double *done)
{
    int64_t s_next = *next_seq;
    for (int64_t k = 0; k < n; k++) {
        int64_t best = 0;
        for (int64_t s = 1; s < servers; s++)
            if (free_t[s] < free_t[best] || (free_t[s] == free_t[best] && seq[s] < seq[best]))
                best = s;
        double now = free_t[best];
        double a = arrival[k];
        double begin = a > now ? a : now;
        double d = now + ((begin - now) + service);
        start[k] = begin;
        done[k] = d;
        free_t[best] = d;
        seq[best] = s_next++;
    }
    *next_seq = s_next;
}
