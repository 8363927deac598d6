/* Sequential kernels of iotsim/network/reception.py, loaded with ctypes by iotsim/network/native.py.
 *
 * Both compute exactly what the numpy/Python code they replace computes (same comparisons, same
 * floating-point operations in the same order; build with -ffp-contract=off so that no a*b+c is
 * fused): reception.py checks this against its pure-Python path in tests/test_reception.py.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- demodulator paths */

static void sift_down(double *h, int64_t len, int64_t k)
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

static void sift_up(double *h, int64_t k)
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
            double *h = heap + g * cap;
            int64_t len = heap_len[g];
            while (len > 0 && h[0] <= s) {
                len--;
                if (len > 0) {
                    h[0] = h[len];
                    sift_down(h, len, 0);
                }
            }
            if (len < paths) {
                h[len] = end[q];
                sift_up(h, len);
                len++;
                lk[g] = 1;
                busy_ticks[g] += ticks[q];
                frames_locked[g]++;
            } else {
                lk[g] = 0;
            }
            heap_len[g] = len;
        }
    }
}

/* ---------------------------------------------------------------- interference */

static void add_energy(double *cell, const double *pw, const double *off, int64_t k, double ov, int64_t n_gw)
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

/* One target p at every gateway: out[g] = 1 where interference destroys it, as reception.decode
 * decides from the energy (`work`: slots * n_gw doubles). With signal S = P_p * (e_p - s_p) and E_t
 * the energy of slot t:
 *   co_mode 0 (no capture): E_own > 0;
 *   co_mode 1 (capture threshold > 0): E_own * k_co > S;
 *   co_mode 2 (threshold <= 0): E_own >= S and E_own > 0;
 * and, when k_inter is not NULL ((slots, slots), zero diagonal), E_t * k_inter[own][t] > S for some t. */
static void destroyed_of(int64_t p, int64_t n, int64_t n_gw, int64_t slots, const double *s, const double *e,
                         const int64_t *grp, const int64_t *slot, const int64_t *node, const double *lin,
                         const double *off, const double *maxend, int64_t co_mode, double k_co,
                         const double *k_inter, double *work, uint8_t *out)
{
    energy_of(p, n, n_gw, slots, s, e, grp, slot, node, lin, off, maxend, work);
    int64_t own = slot[p];
    double dur = e[p] - s[p];
    const double *pw = lin + node[p] * n_gw;
    const double *e_co = work + own * n_gw;
    for (int64_t g = 0; g < n_gw; g++) {
        double sig = (off ? pw[g] * off[p] : pw[g]) * dur;
        double x = e_co[g];
        int dead;
        if (co_mode == 0)
            dead = x > 0;
        else if (co_mode == 1)
            dead = x * k_co > sig;
        else
            dead = (x >= sig) && (x > 0);
        if (k_inter) {
            const double *k = k_inter + own * slots;
            for (int64_t t = 0; t < slots; t++)
                dead |= work[t * n_gw + g] * k[t] > sig;
        }
        out[g] = (uint8_t)dead;
    }
}

/* The verdict on the targets at positions tp, as reception.decode takes it: at gateway g the target
 * is decoded when it locked a path there (bit g of locked[r], nbytes per row, little-endian), no
 * gateway transmission cuts it (cut: NULL or (rows, n_gw)) and interference does not destroy it.
 * status[r]: `delivered` if decoded somewhere, else rank_to_fate[max(fate_rank[r], ranks at the
 * gateways where it locked a path: 1 cut, 3 collision)]; best[r]: the first gateway with the
 * highest dbm[node[p]] among those decoding it (-1 if none); count[r]: how many decode it.
 * work: slots * n_gw doubles, dead: n_gw bytes. */
void iotsim_verdict(int64_t n, int64_t n_gw, int64_t slots, const double *s, const double *e, const int64_t *grp,
                    const int64_t *slot, const int64_t *node, const double *lin, const double *off,
                    const double *maxend, int64_t rows, const int64_t *tp, int64_t co_mode, double k_co,
                    const double *k_inter, int64_t nbytes, const uint8_t *locked, const uint8_t *cut,
                    const int8_t *fate_rank, const double *dbm, const int8_t *rank_to_fate, int64_t delivered,
                    double *work, uint8_t *dead, int8_t *status, int16_t *best, int16_t *count)
{
    for (int64_t r = 0; r < rows; r++) {
        int64_t p = tp[r];
        const uint8_t *lk = locked + r * nbytes;
        const uint8_t *ct = cut ? cut + r * n_gw : NULL;
        int any_locked = 0;
        for (int64_t b = 0; b < nbytes; b++)
            any_locked |= lk[b];
        if (any_locked)
            destroyed_of(p, n, n_gw, slots, s, e, grp, slot, node, lin, off, maxend, co_mode, k_co, k_inter, work,
                         dead);
        int rank = fate_rank[r];
        int16_t cnt = 0;
        int64_t bi = -1;
        double bv = 0.0;
        const double *pd = dbm + node[p] * n_gw;
        for (int64_t g = 0; g < n_gw && any_locked; g++) {
            if (!((lk[g >> 3] >> (g & 7)) & 1))
                continue;
            int is_cut = ct ? ct[g] != 0 : 0;
            int gr = is_cut ? 1 : 3;
            if (gr > rank)
                rank = gr;
            if (is_cut || dead[g])
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
