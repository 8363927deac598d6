/* The 802.15.4 mesh's event loop (iotsim/mesh/network.py, `_event_loop`) compiled.
 *
 * It does what the Python loop does, step for step: the same events in the same order (time, then the order
 * they were scheduled in), the same floating-point operations in the same order (build with
 * -ffp-contract=off; exp, log1p and pow are the C library's, as Python's math module and float ** call them),
 * and the same random draws: numpy's PCG64 `random()`, continued from the state the caller hands over and
 * handed back at the end. tests/test_mesh_native.py checks that both loops give the same bytes.
 *
 * Frames enter in the order of their ready times (the Python loop pushes them all first: their sequence
 * numbers are their ranks, so they are merged with the heap rather than pushed). A copy on air is shared by
 * the events that carry it, the on-air list, the receivers locked onto it and the sender waiting for its
 * acknowledgement; it is recycled when the last of them lets go.
 *
 * Shortcuts that change no result: copies that ended 20 ms ago (they overlap nothing any more) leave the on-air
 * list at 32 entries rather than 64; a copy is tried for wake-ups only at the sleeping nodes whose phase may put
 * a channel check on it (schedule_detection); (1 - BER)^bits is 1 without a pow where the BER is 0.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../network/_pcg64.h" /* numpy's PCG64 */

/* ------------------------------------------------------------------ inputs and outputs */
typedef struct {
    int64_t m, n_frames, n_deaths, queue_frames, min_be, max_be, max_csma_backoffs, max_frame_retries;
    int64_t rdc, phase_lock, fading, cca_count, n_ber, ack_psdu, reroute, ifs, max_sifs_octets;
    double duration, cycle, cca_check, listen_after_detect, inter_packet, strobe_s, guard_s;
    double noise_mw, senses_mw, ack_air, header_s, bit_s, unit_backoff_s, cca_s, turnaround_s, ack_wait_s;
    double sifs_s, lifs_s; /* interframe spacing (ifs: applied, always-on radios only) */
    const double *offsets, *ber_c, *ber_e, *mw, *phase, *f_air, *f_ready, *death_t;
    const uint8_t *always_on, *lockable; /* lockable: (m, ceil(m / 8)) bits (little-endian), j can lock onto i's */
    const int64_t *parent, *lock_off, *lock_idx, *wake_off, *wake_idx, *f_origin, *f_octets, *ready_order,
        *death_node, *reroute_parent;
    uint64_t rng[4];
} mesh_in;

typedef struct {
    int8_t *fate;
    double *delivered_s, *own_tx, *own_rx, *tx, *rx;
    int64_t *hops, *lost_at, *transmissions, *forwarded, *overheard, *acks, *collisions, *cca, *cca_busy;
    double *hop_log; /* allocated here: n_hops rows of (frame, sender, receiver, start, end, copies) */
    int64_t n_hops;
    uint64_t rng[4];
} mesh_out;

/* iotsim.mesh.network's Hop codes and roles, iotsim.mesh.routing's ROOT and ORPHAN (the parity tests would see
   any difference) */
enum { H_DELIVERED = 0, H_CHANNEL_ACCESS = 1, H_NO_ACK = 2, H_QUEUE_FULL = 3, H_NO_ROUTE = 4, H_NODE_DEAD = 6 };
enum { OWN = 0, RELAY = 1, IDLE = 2 };
enum { ROOT = -1, ORPHAN = -2 };
enum {
    EV_READY, EV_DEATH, EV_CCA, EV_CCA_END, EV_DETECT, EV_LISTEN_END, EV_COPY_END, EV_ACK_END, EV_ACK_START,
    EV_HOP, EV_GAP_END, EV_ACK_TIMEOUT
};

/* ------------------------------------------------------------------ copies on air */
typedef struct copy {
    double start, end;
    int64_t frame;
    int32_t sender, dest, ack, psdu, refs;
    int32_t n_locked, cap_locked, n_fades, cap_fades;
    int32_t *locked;   /* receivers locked onto it, in the order they locked */
    int32_t *fade_r;   /* receivers whose Rayleigh gain is drawn, and the gains */
    double *fade_g;
    struct copy *next_free;
} copy_t;

#define COPY_BLOCK 4096

typedef struct {
    double a, b, w;
} piece;

typedef struct {
    int64_t node, next;
} seen_entry;

typedef struct {
    double t, x;
    uint64_t seq;
    copy_t *c;
    int64_t a;
    int32_t kind, node, b;
} event;

typedef struct {
    const mesh_in *in;
    mesh_out *out;
    int64_t m;
    pcg64 rng;
    int oom;
    /* events */
    event *heap;
    int64_t hn, hcap;
    uint64_t seq;
    /* copies */
    copy_t **blocks;
    int64_t n_blocks;
    copy_t *free_copies;
    copy_t **on_air;
    int64_t n_air, cap_air;
    /* per node */
    int64_t *parent, *queue, *qhead, *qlen, qcap;
    int64_t *nb, *be, *retries, *hop_copies, *listen_token;
    uint8_t *dead, *sending, *strobing, *awake, *waiting_ack, *knows_phase;
    int32_t *listening, *candidates; /* the duty-cycled nodes whose radio is on, in no order */
    int64_t n_listening, *listen_pos;
    /* schedule_detection's shortcut: each sender's wake list sorted by the nodes' phases in the cycle */
    double *wake_sorted_phase, quiet_lo;
    int64_t *wake_sorted_pos, *tried;
    int32_t *awake_role;
    int64_t *awake_frame;
    double *tx_until, *awake_until, *awake_since, *detect_at, *hop_start, *strobe_start, *quiet_until;
    copy_t **locked, **ack_incoming;
    int64_t deaths_done;
    /* per frame */
    int64_t *holder, *seen_head;
    seen_entry *seen; /* per frame a list of the nodes that received it as its addressee */
    int64_t n_seen, cap_seen;
    int64_t cap_log;
    /* scratch of `success`: the stretches of interference and their cuts */
    piece *pieces_buf;
    double *cuts_buf;
    int64_t pieces_cap, cuts_cap;
} loop_t;

static void *grow(loop_t *L, void *p, int64_t *cap, int64_t need, size_t size)
{
    if (need <= *cap)
        return p;
    int64_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(p, (size_t)c * size);
    if (!q) {
        L->oom = 1;
        return p;
    }
    *cap = c;
    return q;
}

static copy_t *new_copy(loop_t *L, double start, double end, int32_t sender, int32_t dest, int64_t frame, int32_t ack,
                        int32_t psdu)
{
    if (!L->free_copies) {
        copy_t **b = realloc(L->blocks, (size_t)(L->n_blocks + 1) * sizeof *b);
        copy_t *block = calloc(COPY_BLOCK, sizeof *block);
        if (!b || !block) {
            free(block);
            if (b)
                L->blocks = b;
            L->oom = 1;
            return NULL;
        }
        L->blocks = b;
        L->blocks[L->n_blocks++] = block;
        for (int i = COPY_BLOCK - 1; i >= 0; i--) {
            block[i].next_free = L->free_copies;
            L->free_copies = &block[i];
        }
    }
    copy_t *c = L->free_copies;
    L->free_copies = c->next_free;
    c->start = start, c->end = end, c->frame = frame, c->sender = sender, c->dest = dest, c->ack = ack;
    c->psdu = psdu, c->refs = 0, c->n_locked = 0, c->n_fades = 0;
    return c;
}

static inline void hold(copy_t *c)
{
    if (c)
        c->refs++;
}

static inline void let_go(loop_t *L, copy_t *c)
{
    if (c && --c->refs == 0) {
        c->next_free = L->free_copies;
        L->free_copies = c;
    }
}

static void add_i32(loop_t *L, int32_t **a, int32_t *n, int32_t *cap, int32_t v)
{
    if (*n == *cap) {
        int32_t c = *cap ? 2 * *cap : 4;
        int32_t *q = realloc(*a, (size_t)c * sizeof *q);
        if (!q) {
            L->oom = 1;
            return;
        }
        *a = q, *cap = c;
    }
    (*a)[(*n)++] = v;
}

/* ------------------------------------------------------------------ the event heap: (t, seq) order */
static inline int before(const event *a, const event *b) { return a->t < b->t || (a->t == b->t && a->seq < b->seq); }

static void push(loop_t *L, double t, int32_t kind, int32_t node, copy_t *c, int64_t a, int32_t b, double x)
{
    if (L->hn == L->hcap) {
        event *h = grow(L, L->heap, &L->hcap, L->hn + 1, sizeof *h);
        if (L->oom)
            return;
        L->heap = h;
    }
    event e = {t, x, L->seq++, c, a, kind, node, b};
    hold(c);
    int64_t i = L->hn++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!before(&e, &L->heap[p]))
            break;
        L->heap[i] = L->heap[p];
        i = p;
    }
    L->heap[i] = e;
}

static event pop(loop_t *L)
{
    event top = L->heap[0];
    event last = L->heap[--L->hn];
    int64_t i = 0, n = L->hn;
    for (;;) {
        int64_t l = 2 * i + 1;
        if (l >= n)
            break;
        int64_t r = l + 1, s = (r < n && before(&L->heap[r], &L->heap[l])) ? r : l;
        if (!before(&L->heap[s], &last))
            break;
        L->heap[i] = L->heap[s];
        i = s;
    }
    if (n)
        L->heap[i] = last;
    return top;
}

/* ------------------------------------------------------------------ helpers */
static inline double pymod(double x, double y) /* Python's float % for y > 0 */
{
    if (x >= 0.0 && x / y < 4503599627370496.0) {
        /* fmod(x, y) is x - q y exactly, q the integer part of x / y: one fused multiply-add gives it
           without rounding once q is known (x / y rounded is at most one off) */
        double q = floor(x / y), r = fma(-q, y, x);
        if (r < 0.0)
            r = fma(-(q - 1.0), y, x);
        else if (r >= y)
            r = fma(-(q + 1.0), y, x);
        return r; /* in [0, y): Python's result (+0.0 when it divides) */
    }
    double r = fmod(x, y); /* CPython's float_rem */
    if (r) {
        if ((y < 0) != (r < 0))
            r += y;
    } else
        r = copysign(0.0, y);
    return r;
}

static inline int role_of(loop_t *L, int32_t k, int64_t f) { return L->in->f_origin[f] == k ? OWN : RELAY; }
static inline int64_t qfront(loop_t *L, int32_t k) { return L->queue[k * L->qcap + L->qhead[k]]; }

static int64_t qpop(loop_t *L, int32_t k)
{
    int64_t f = qfront(L, k);
    L->qhead[k] = (L->qhead[k] + 1) % L->qcap;
    L->qlen[k]--;
    return f;
}

static void set_ack_incoming(loop_t *L, int32_t k, copy_t *a)
{
    hold(a);
    let_go(L, L->ack_incoming[k]);
    L->ack_incoming[k] = a;
}

static void radio_on(loop_t *L, int32_t j, double t, int32_t role, int64_t frame)
{
    if (!L->in->always_on[j] && !L->awake[j]) {
        L->awake[j] = 1;
        L->listen_pos[j] = L->n_listening;
        L->listening[L->n_listening++] = j;
        L->awake_since[j] = t;
        L->awake_role[j] = role;
        L->awake_frame[j] = frame;
    }
}

static void radio_off(loop_t *L, int32_t j, double t)
{
    if (!L->in->always_on[j] && L->awake[j]) {
        L->out->rx[j * 3 + L->awake_role[j]] += t - L->awake_since[j];
        if (L->awake_role[j] == OWN)
            L->out->own_rx[L->awake_frame[j]] += t - L->awake_since[j];
        L->awake[j] = 0;
        int32_t last = L->listening[--L->n_listening];
        L->listening[L->listen_pos[j]] = last;
        L->listen_pos[last] = L->listen_pos[j];
    }
    L->awake_until[j] = 0.0;
}

static double next_wake(loop_t *L, int32_t j, double t)
{
    double k = ceil((t - L->in->phase[j]) / L->in->cycle - 1e-12);
    return L->in->phase[j] + k * L->in->cycle;
}

/* Does the copy wake j = wake_idx[w] (a check of j overlaps it)? Then j detects it at that check's end. */
static void detect_one(loop_t *L, copy_t *c, int64_t w)
{
    const mesh_in *in = L->in;
    int32_t j = (int32_t)in->wake_idx[w];
    if (L->dead[j] || L->awake[j] || L->strobing[j])
        return;
    double c_start = c->start, length = c->end - c_start, cycle = in->cycle, cca_check = in->cca_check;
    /* j's checks start at cycle offsets `offsets` from its phase; the copy starts `rel` into j's cycle. A check
       at offset o overlaps the copy when rel - cca_check < o < rel + length: the first offset above
       rel - cca_check is the only candidate in this cycle, else the next cycle's first check */
    double rel = pymod(c_start - in->phase[j], cycle), found = INFINITY;
    for (int64_t i = 0; i < in->cca_count; i++) {
        double o = in->offsets[i];
        if (o > rel - cca_check) {
            if (o < rel + length)
                found = c_start - rel + o + cca_check;
            break;
        }
    }
    if (found == INFINITY && cycle < rel + length)
        found = c_start - rel + cycle + cca_check;
    if (found < L->detect_at[j]) {
        L->detect_at[j] = found;
        push(L, found, EV_DETECT, j, NULL, 0, 0, 0.0);
    }
}

#define QUIET_MARGIN 1e-6 /* s */
#define ARC_SLACK 1e-7    /* s */

/* Sleeping nodes whose channel check overlaps copy c and that sense it wake at that check's end.
   A shortcut that changes nothing: no check of j overlaps the copy when it starts past j's last check of the
   cycle (rel >= last offset + cca_check) and ends before the next cycle (rel + length <= cycle). Only the nodes
   whose phase lies in the arc where that fails, widened by QUIET_MARGIN and ARC_SLACK (rel from c_start's and
   the phase's positions in the cycle is a few ulps of c_start off), are tried, found by bisection among the
   sender's wake list sorted by phase and tried in node order; for large or negative times all are. */
static void schedule_detection(loop_t *L, copy_t *c)
{
    const mesh_in *in = L->in;
    int64_t w0 = in->wake_off[c->sender], w1 = in->wake_off[c->sender + 1];
    double c_start = c->start, cycle = in->cycle;
    if (!(c_start >= 0.0 && c_start < 1e8)) {
        for (int64_t w = w0; w < w1; w++)
            detect_one(L, c, w);
        return;
    }
    double base = c_start - floor(c_start / cycle) * cycle, quiet_hi = cycle - (c->end - c_start) - QUIET_MARGIN;
    double a = base - L->quiet_lo - ARC_SLACK, width = L->quiet_lo + cycle - quiet_hi + 2 * ARC_SLACK;
    while (a < 0.0)
        a += cycle;
    const double *ph = L->wake_sorted_phase;
    int64_t lo = w0, hi = w1; /* the first phase >= a */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ph[mid] < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t n = 0, *tried = L->tried;
    for (int64_t i = lo; i < w1 && ph[i] < a + width; i++)
        tried[n++] = L->wake_sorted_pos[i];
    if (a + width > cycle) /* the arc wraps */
        for (int64_t i = w0; i < lo && ph[i] < a + width - cycle; i++)
            tried[n++] = L->wake_sorted_pos[i];
    for (int64_t i = 1; i < n; i++) { /* node order, as the Python loop walks the wake list */
        int64_t v = tried[i], q = i;
        while (q > 0 && tried[q - 1] > v) {
            tried[q] = tried[q - 1];
            q--;
        }
        tried[q] = v;
    }
    for (int64_t i = 0; i < n; i++)
        detect_one(L, c, tried[i]);
}

/* ------------------------------------------------------------------ physics */
static double ber(const mesh_in *in, double sinr)
{
    if (sinr >= 4.0)
        return 0.0;
    double b = 0.0;
    for (int64_t i = 0; i < in->n_ber; i++)
        b += in->ber_c[i] * exp(in->ber_e[i] * sinr);
    if (0.0 > b)
        b = 0.0;
    if (1.0 < b)
        b = 1.0;
    return b;
}

static double fade(loop_t *L, copy_t *c, int32_t r)
{
    if (!L->in->fading)
        return 1.0;
    for (int32_t i = 0; i < c->n_fades; i++)
        if (c->fade_r[i] == r)
            return c->fade_g[i];
    if (c->n_fades == c->cap_fades) {
        int32_t cap = c->cap_fades ? 2 * c->cap_fades : 8;
        int32_t *rr = realloc(c->fade_r, (size_t)cap * sizeof *rr);
        if (rr)
            c->fade_r = rr;
        double *gg = realloc(c->fade_g, (size_t)cap * sizeof *gg);
        if (gg)
            c->fade_g = gg;
        if (!rr || !gg) {
            L->oom = 1;
            return 1.0;
        }
        c->cap_fades = cap;
    }
    double g = -log1p(-pcg_double(&L->rng));
    c->fade_r[c->n_fades] = r;
    c->fade_g[c->n_fades++] = g;
    return g;
}


/* (received, anything overlapped it) for copy c at node r */
static void success(loop_t *L, copy_t *c, int32_t r, int *got, int *interfered)
{
    const mesh_in *in = L->in;
    int64_t m = L->m;
    double s0 = c->start + in->header_s, s1 = c->end;
    double sig = in->mw[c->sender * m + r] * fade(L, c, r);
    int64_t np_ = 0;
    for (int64_t i = 0; i < L->n_air; i++) {
        copy_t *o = L->on_air[i];
        if (o != c && o->sender != r && o->start < s1 && o->end > s0) {
            L->pieces_buf = grow(L, L->pieces_buf, &L->pieces_cap, np_ + 1, sizeof *L->pieces_buf);
            if (L->oom)
                return;
            double a = o->start, b = o->end;
            if (s0 > a)
                a = s0;
            if (s1 < b)
                b = s1;
            L->pieces_buf[np_].a = a, L->pieces_buf[np_].b = b;
            L->pieces_buf[np_].w = in->mw[o->sender * m + r] * fade(L, o, r);
            np_++;
        }
    }
    double p;
    /* where the BER is 0, (1 - BER)^bits is exactly 1: pow is skipped there (the same doubles) */
    if (np_ == 0) {
        double b = ber(in, sig / in->noise_mw);
        p = b == 0.0 ? 1.0 : pow(1.0 - b, (double)(8 * (int64_t)c->psdu));
    } else {
        L->cuts_buf = grow(L, L->cuts_buf, &L->cuts_cap, 2 * np_ + 2, sizeof *L->cuts_buf);
        if (L->oom)
            return;
        int64_t nc = 0;
        L->cuts_buf[nc++] = s0, L->cuts_buf[nc++] = s1;
        for (int64_t i = 0; i < np_; i++)
            L->cuts_buf[nc++] = L->pieces_buf[i].a;
        for (int64_t i = 0; i < np_; i++)
            L->cuts_buf[nc++] = L->pieces_buf[i].b;
        for (int64_t i = 1; i < nc; i++) { /* insertion sort: a few cuts */
            double v = L->cuts_buf[i];
            int64_t q = i;
            while (q > 0 && L->cuts_buf[q - 1] > v) {
                L->cuts_buf[q] = L->cuts_buf[q - 1];
                q--;
            }
            L->cuts_buf[q] = v;
        }
        int64_t u = 0;
        for (int64_t i = 0; i < nc; i++)
            if (u == 0 || L->cuts_buf[i] != L->cuts_buf[u - 1])
                L->cuts_buf[u++] = L->cuts_buf[i];
        p = 1.0;
        for (int64_t i = 0; i + 1 < u; i++) {
            double a = L->cuts_buf[i], b = L->cuts_buf[i + 1];
            if (b <= a)
                continue;
            double inter = 0.0;
            for (int64_t q = 0; q < np_; q++)
                if (L->pieces_buf[q].a < b && L->pieces_buf[q].b > a)
                    inter += L->pieces_buf[q].w;
            double e = ber(in, sig / (in->noise_mw + inter));
            if (e != 0.0)
                p *= pow(1.0 - e, (b - a) / in->bit_s);
        }
    }
    *got = pcg_double(&L->rng) < p;
    *interfered = np_ > 0;
}

static double channel_energy_mw(loop_t *L, int32_t k, double t0, double t1)
{
    double e = 0.0;
    for (int64_t i = 0; i < L->n_air; i++) {
        copy_t *o = L->on_air[i];
        if (o->sender != k && o->start < t1 && o->end > t0)
            e += L->in->mw[(int64_t)o->sender * L->m + k];
    }
    return e;
}

static void unlock(loop_t *L, int32_t j)
{
    copy_t *c = L->locked[j];
    if (c) {
        int32_t i = 0;
        while (i < c->n_locked && c->locked[i] != j)
            i++;
        if (i < c->n_locked) {
            memmove(c->locked + i, c->locked + i + 1, (size_t)(c->n_locked - i - 1) * sizeof *c->locked);
            c->n_locked--;
        }
        L->locked[j] = NULL;
        let_go(L, c);
    }
}

static void put_on_air(loop_t *L, copy_t *c, double t)
{
    const mesh_in *in = L->in;
    L->on_air = grow(L, L->on_air, &L->cap_air, L->n_air + 1, sizeof *L->on_air);
    if (L->oom)
        return;
    L->on_air[L->n_air++] = c;
    hold(c);
    L->tx_until[c->sender] = c->end;
    unlock(L, c->sender);
    /* the receivers that may lock onto it, in node order: the always-on ones that hear it and the listening
       ones that hear it and are still in their listening window */
    int64_t n = 0;
    const uint8_t *hears = in->lockable + (int64_t)c->sender * ((L->m + 7) / 8);
    for (int64_t i = 0; i < L->n_listening; i++) {
        int32_t j = L->listening[i];
        if ((hears[j >> 3] >> (j & 7) & 1) && t < L->awake_until[j])
            L->candidates[n++] = j;
    }
    for (int64_t w = in->lock_off[c->sender]; w < in->lock_off[c->sender + 1]; w++)
        L->candidates[n++] = (int32_t)in->lock_idx[w];
    for (int64_t i = 1; i < n; i++) { /* insertion sort: a handful of nodes */
        int32_t v = L->candidates[i];
        int64_t q = i;
        while (q > 0 && L->candidates[q - 1] > v) {
            L->candidates[q] = L->candidates[q - 1];
            q--;
        }
        L->candidates[q] = v;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t j = L->candidates[i];
        if (L->dead[j] || L->locked[j] || L->tx_until[j] > t || L->strobing[j])
            continue;
        if (in->always_on[j] || t < L->awake_until[j]) {
            L->locked[j] = c;
            hold(c);
            add_i32(L, &c->locked, &c->n_locked, &c->cap_locked, j);
        }
    }
    if (in->rdc && !c->ack)
        schedule_detection(L, c);
    push(L, c->end, c->ack ? EV_ACK_END : EV_COPY_END, c->sender, c, 0, 0, 0.0);
}

/* ------------------------------------------------------------------ the sender's procedure */
static void start_next(loop_t *L, int32_t k, double t);

static void backoff(loop_t *L, int32_t k, double t)
{
    double u = pcg_double(&L->rng);
    int64_t slots = (int64_t)(u * (double)((int64_t)1 << L->be[k]));
    push(L, t + (double)slots * L->in->unit_backoff_s, EV_CCA, k, NULL, 0, 0, 0.0);
}

static void stop_sending(loop_t *L, int32_t k, double t)
{
    L->sending[k] = L->strobing[k] = L->waiting_ack[k] = 0;
    set_ack_incoming(L, k, NULL);
    radio_off(L, k, t);
}

static void lose(loop_t *L, int64_t f, int32_t k, int8_t outcome)
{
    if (L->holder[f] == k) {
        L->out->fate[f] = outcome;
        L->out->lost_at[f] = k;
    }
}

static void frame_lost(loop_t *L, int32_t k, double t, int8_t outcome)
{
    lose(L, qpop(L, k), k, outcome);
    stop_sending(L, k, t);
    start_next(L, k, t);
}

static void new_attempt(loop_t *L, int32_t k, double t)
{
    const mesh_in *in = L->in;
    L->nb[k] = 0, L->be[k] = in->min_be;
    if (t < L->quiet_until[k])
        t = L->quiet_until[k];
    int64_t d = L->parent[k];
    if (d == ORPHAN) {
        frame_lost(L, k, t, H_NO_ROUTE);
        return;
    }
    int64_t dd = d < 0 ? d + L->m : d; /* Python's indexing (a border router never sends) */
    if (L->knows_phase && L->knows_phase[k * L->m + dd] && !in->always_on[dd]) {
        double w = next_wake(L, (int32_t)dd, t + in->guard_s) - in->guard_s;
        if (w > t)
            t = w;
    }
    backoff(L, k, t);
}

static void attempt_failed(loop_t *L, int32_t k, double t)
{
    L->strobing[k] = L->waiting_ack[k] = 0;
    set_ack_incoming(L, k, NULL);
    radio_off(L, k, t);
    L->retries[k]++;
    if (L->retries[k] > L->in->max_frame_retries)
        frame_lost(L, k, t, H_NO_ACK);
    else
        new_attempt(L, k, t);
}

static void send_copy(loop_t *L, int32_t k, double t)
{
    const mesh_in *in = L->in;
    int64_t f = qfront(L, k);
    radio_off(L, k, t);
    copy_t *c = new_copy(L, t, t + in->f_air[f], k, (int32_t)L->parent[k], f, 0, (int32_t)in->f_octets[f]);
    if (!c)
        return;
    int role = role_of(L, k, f);
    L->out->tx[k * 3 + role] += c->end - c->start;
    L->out->transmissions[k * 2 + role] += 1;
    if (role == OWN)
        L->out->own_tx[f] += c->end - c->start;
    L->hop_copies[k]++;
    L->strobing[k] = 1;
    L->waiting_ack[k] = 0;
    put_on_air(L, c, t);
}

static void continue_strobe(loop_t *L, int32_t k, double t)
{
    if (t < L->strobe_start[k] + L->in->strobe_s)
        send_copy(L, k, t);
    else
        attempt_failed(L, k, t);
}

static void hop_done(loop_t *L, int32_t k, double t, int32_t receiver)
{
    if (L->in->ifs)
        L->quiet_until[k] = t + (L->in->f_octets[qfront(L, k)] <= L->in->max_sifs_octets ? L->in->sifs_s : L->in->lifs_s);
    qpop(L, k);
    if (L->knows_phase)
        L->knows_phase[k * L->m + receiver] = 1;
    stop_sending(L, k, t);
    start_next(L, k, t);
}

static void start_next(loop_t *L, int32_t k, double t)
{
    while (L->qlen[k]) {
        int64_t f = qfront(L, k);
        if (L->parent[k] == ORPHAN) {
            qpop(L, k);
            lose(L, f, k, H_NO_ROUTE);
            continue;
        }
        L->sending[k] = 1;
        L->retries[k] = 0;
        L->hop_start[k] = t;
        L->hop_copies[k] = 0;
        new_attempt(L, k, t);
        return;
    }
    L->sending[k] = 0;
}

static void arrive(loop_t *L, int32_t j, int64_t f, double t)
{
    L->holder[f] = j;
    if (L->dead[j]) {
        L->out->fate[f] = H_NODE_DEAD, L->out->lost_at[f] = j;
        return;
    }
    if (L->parent[j] == ROOT) {
        L->out->fate[f] = H_DELIVERED, L->out->delivered_s[f] = t;
        return;
    }
    if (L->qlen[j] >= L->in->queue_frames) {
        L->out->fate[f] = H_QUEUE_FULL, L->out->lost_at[f] = j;
        return;
    }
    L->queue[j * L->qcap + (L->qhead[j] + L->qlen[j]) % L->qcap] = f;
    L->qlen[j]++;
    if (!L->sending[j])
        start_next(L, j, t);
}

static void die(loop_t *L, int32_t k, double t)
{
    radio_off(L, k, t);
    L->dead[k] = 1;
    while (L->qlen[k])
        lose(L, qpop(L, k), k, H_NODE_DEAD);
    L->sending[k] = L->strobing[k] = L->waiting_ack[k] = 0;
    unlock(L, k);
    if (L->in->reroute) {
        memcpy(L->parent, L->in->reroute_parent + L->deaths_done * L->m, (size_t)L->m * sizeof *L->parent);
        L->deaths_done++;
    }
}

/* has node j received frame f before (as its addressee)? Records that it has. */
static int seen_before(loop_t *L, int32_t j, int64_t f)
{
    for (int64_t i = L->seen_head[f]; i >= 0; i = L->seen[i].next)
        if (L->seen[i].node == j)
            return 1;
    L->seen = grow(L, L->seen, &L->cap_seen, L->n_seen + 1, sizeof *L->seen);
    if (L->oom)
        return 0;
    L->seen[L->n_seen].node = j;
    L->seen[L->n_seen].next = L->seen_head[f];
    L->seen_head[f] = L->n_seen++;
    return 0;
}

static void log_hop(loop_t *L, int64_t f, int32_t sender, int32_t receiver, double t)
{
    mesh_out *o = L->out;
    o->hop_log = grow(L, o->hop_log, &L->cap_log, 6 * (o->n_hops + 1), sizeof *o->hop_log);
    if (L->oom)
        return;
    double *row = o->hop_log + 6 * o->n_hops++;
    row[0] = (double)f, row[1] = sender, row[2] = receiver, row[3] = L->hop_start[sender], row[4] = t;
    row[5] = (double)L->hop_copies[sender];
}

/* ------------------------------------------------------------------ the loop */
static void handle(loop_t *L, const event *e)
{
    const mesh_in *in = L->in;
    mesh_out *out = L->out;
    double t = e->t;
    int32_t k = e->node;
    switch (e->kind) {
    case EV_DEATH:
        die(L, k, t);
        break;
    case EV_READY:
        arrive(L, k, e->a, t);
        break;
    case EV_CCA:
        push(L, t + in->cca_s, EV_CCA_END, k, NULL, 0, 0, t);
        break;
    case EV_CCA_END: {
        out->cca[k]++;
        int64_t f = qfront(L, k);
        int role = role_of(L, k, f);
        if (!in->always_on[k] && !L->awake[k]) {
            out->rx[k * 3 + role] += in->cca_s;
            if (role == OWN)
                out->own_rx[f] += in->cca_s;
        }
        if (channel_energy_mw(L, k, e->x, t) >= in->senses_mw) {
            out->cca_busy[k]++;
            L->nb[k]++;
            L->be[k] = L->be[k] + 1 < in->max_be ? L->be[k] + 1 : in->max_be;
            if (L->nb[k] > in->max_csma_backoffs)
                frame_lost(L, k, t, H_CHANNEL_ACCESS);
            else
                backoff(L, k, t);
        } else {
            radio_off(L, k, t);
            if (!in->always_on[k]) {
                out->rx[k * 3 + role] += in->turnaround_s;
                if (role == OWN)
                    out->own_rx[f] += in->turnaround_s;
            }
            L->strobe_start[k] = t + in->turnaround_s;
            send_copy(L, k, t + in->turnaround_s);
        }
        break;
    }
    case EV_DETECT:
        if (L->detect_at[k] == t) {
            L->detect_at[k] = INFINITY;
            if (!L->awake[k] && !L->strobing[k]) {
                radio_on(L, k, t, IDLE, -1);
                L->awake_until[k] = t + in->listen_after_detect;
                L->listen_token[k]++;
                push(L, L->awake_until[k], EV_LISTEN_END, k, NULL, L->listen_token[k], 0, 0.0);
            }
        }
        break;
    case EV_LISTEN_END:
        if (e->a == L->listen_token[k] && !L->locked[k] && !L->strobing[k])
            radio_off(L, k, t);
        break;
    case EV_COPY_END: {
        copy_t *c = e->c;
        for (int32_t i = 0; i < c->n_locked; i++) {
            int32_t j = c->locked[i];
            L->locked[j] = NULL;
            let_go(L, c); /* the event still holds it */
            int got = 0, interfered = 0;
            success(L, c, j, &got, &interfered);
            if (j == c->dest && got) {
                if (!in->always_on[j])
                    L->awake_role[j] = RELAY;
                int first = !seen_before(L, j, c->frame);
                push(L, t + in->turnaround_s, EV_ACK_START, j, c, 0, first, 0.0);
                continue;
            }
            if (j == c->dest && interfered)
                out->collisions[c->sender]++;
            if (!in->always_on[j] && (got || t >= L->awake_until[j])) {
                out->overheard[j] += got;
                radio_off(L, j, t);
            }
        }
        c->n_locked = 0;
        if (L->dead[k])
            break;
        L->waiting_ack[k] = 1;
        if (!in->always_on[k])
            radio_on(L, k, t, role_of(L, k, c->frame), c->frame);
        if (!in->rdc)
            push(L, t + in->ack_wait_s, EV_ACK_TIMEOUT, k, c, 0, 0, 0.0);
        else
            push(L, t + in->inter_packet, EV_GAP_END, k, c, 0, 0, 0.0);
        break;
    }
    case EV_ACK_START: {
        copy_t *c = e->c;
        copy_t *a = new_copy(L, t, t + in->ack_air, k, c->sender, c->frame, 1, (int32_t)in->ack_psdu);
        if (!a)
            break;
        out->tx[k * 3 + RELAY] += in->ack_air;
        out->acks[k]++;
        radio_off(L, k, t);
        set_ack_incoming(L, c->sender, a);
        if (e->b)
            push(L, t + in->ack_air, EV_HOP, k, NULL, c->frame, c->sender, 0.0);
        put_on_air(L, a, t);
        break;
    }
    case EV_HOP: {
        int64_t f = e->a;
        int32_t sender = e->b;
        log_hop(L, f, sender, k, t);
        out->hops[f]++;
        if (in->f_origin[f] != sender)
            out->forwarded[sender]++;
        arrive(L, k, f, t);
        break;
    }
    case EV_ACK_END: {
        copy_t *a = e->c;
        for (int32_t i = 0; i < a->n_locked; i++) {
            int32_t j = a->locked[i];
            L->locked[j] = NULL;
            let_go(L, a);
            if (!in->always_on[j] && t >= L->awake_until[j])
                radio_off(L, j, t);
        }
        a->n_locked = 0;
        int32_t ks = a->dest;
        if (L->ack_incoming[ks] != a || L->dead[ks])
            break;
        set_ack_incoming(L, ks, NULL);
        if (L->waiting_ack[ks] && L->sending[ks] && L->qlen[ks] && qfront(L, ks) == a->frame) {
            int got = 0, interfered = 0;
            success(L, a, ks, &got, &interfered);
            if (got)
                hop_done(L, ks, t, k);
            else if (in->rdc)
                continue_strobe(L, ks, t);
        }
        break;
    }
    case EV_GAP_END: {
        copy_t *c = e->c;
        if (!(L->waiting_ack[k] && L->sending[k] && L->qlen[k] && qfront(L, k) == c->frame))
            break;
        copy_t *a = L->ack_incoming[k];
        if (a && a->frame == c->frame)
            break; /* its acknowledgement has started: the acknowledgement's end decides */
        continue_strobe(L, k, t);
        break;
    }
    case EV_ACK_TIMEOUT: {
        copy_t *c = e->c;
        if (L->waiting_ack[k] && L->sending[k] && L->qlen[k] && qfront(L, k) == c->frame && !L->ack_incoming[k])
            attempt_failed(L, k, t);
        break;
    }
    }
}

typedef struct {
    double phase;
    int64_t pos;
} phase_entry;

static int by_phase(const void *x, const void *y)
{
    const phase_entry *a = x, *b = y;
    return a->phase < b->phase ? -1 : a->phase > b->phase ? 1 : (a->pos > b->pos) - (a->pos < b->pos);
}

#define ALLOC(p, n) ((p) = calloc((n) > 0 ? (size_t)(n) : 1, sizeof *(p)), ok = ok && (p))

static void release(loop_t *L)
{
    for (int64_t b = 0; b < L->n_blocks; b++) {
        for (int i = 0; i < COPY_BLOCK; i++) {
            free(L->blocks[b][i].locked);
            free(L->blocks[b][i].fade_r);
            free(L->blocks[b][i].fade_g);
        }
        free(L->blocks[b]);
    }
    free(L->blocks);
    free(L->heap), free(L->on_air);
    free(L->parent), free(L->queue), free(L->qhead), free(L->qlen), free(L->nb), free(L->be), free(L->retries);
    free(L->hop_copies), free(L->listen_token), free(L->dead), free(L->sending), free(L->strobing), free(L->awake);
    free(L->waiting_ack), free(L->knows_phase), free(L->awake_role), free(L->awake_frame), free(L->tx_until);
    free(L->awake_until), free(L->awake_since), free(L->detect_at), free(L->hop_start), free(L->strobe_start), free(L->quiet_until);
    free(L->locked), free(L->ack_incoming), free(L->holder), free(L->seen_head), free(L->seen), free(L->listening);
    free(L->wake_sorted_phase), free(L->wake_sorted_pos), free(L->tried), free(L->candidates), free(L->listen_pos);
    free(L->pieces_buf), free(L->cuts_buf);
}

/* Runs the mesh; returns 0, or 1 when memory ran out (out->hop_log is then freed too). */
int64_t iotsim_mesh_loop(const mesh_in *in, mesh_out *out)
{
    loop_t L;
    memset(&L, 0, sizeof L);
    L.in = in, L.out = out, L.m = in->m;
    L.rng.state = ((unsigned __int128)in->rng[0] << 64) | in->rng[1];
    L.rng.inc = ((unsigned __int128)in->rng[2] << 64) | in->rng[3];
    out->hop_log = NULL, out->n_hops = 0;
    int64_t m = in->m, n = in->n_frames;
    L.qcap = in->queue_frames > 0 ? in->queue_frames : 1;
    int ok = 1;
    ALLOC(L.parent, m), ALLOC(L.queue, m * L.qcap), ALLOC(L.qhead, m), ALLOC(L.qlen, m), ALLOC(L.nb, m);
    ALLOC(L.be, m), ALLOC(L.retries, m), ALLOC(L.hop_copies, m), ALLOC(L.listen_token, m), ALLOC(L.dead, m);
    ALLOC(L.sending, m), ALLOC(L.strobing, m), ALLOC(L.awake, m), ALLOC(L.waiting_ack, m);
    ALLOC(L.awake_role, m), ALLOC(L.awake_frame, m), ALLOC(L.tx_until, m), ALLOC(L.awake_until, m);
    ALLOC(L.awake_since, m), ALLOC(L.detect_at, m), ALLOC(L.hop_start, m), ALLOC(L.strobe_start, m), ALLOC(L.quiet_until, m);
    ALLOC(L.wake_sorted_phase, in->wake_off[m]), ALLOC(L.wake_sorted_pos, in->wake_off[m]);
    ALLOC(L.tried, in->wake_off[m]), ALLOC(L.listening, m), ALLOC(L.candidates, m), ALLOC(L.listen_pos, m);
    ALLOC(L.locked, m), ALLOC(L.ack_incoming, m), ALLOC(L.holder, n), ALLOC(L.seen_head, n);
    if (in->rdc && in->phase_lock)
        ALLOC(L.knows_phase, m * m);
    if (!ok) {
        release(&L);
        return 1;
    }
    memcpy(L.parent, in->parent, (size_t)m * sizeof *L.parent);
    if (in->rdc) {
        L.quiet_lo = in->offsets[in->cca_count - 1] + in->cca_check + QUIET_MARGIN;
        phase_entry *e = malloc((size_t)(in->wake_off[m] > 0 ? in->wake_off[m] : 1) * sizeof *e);
        if (!e) {
            release(&L);
            return 1;
        }
        for (int64_t w = 0; w < in->wake_off[m]; w++) {
            double ph = in->phase[in->wake_idx[w]];
            ph -= floor(ph / in->cycle) * in->cycle;
            e[w].phase = ph < 0.0 ? ph + in->cycle : ph >= in->cycle ? ph - in->cycle : ph;
            e[w].pos = w;
        }
        for (int64_t i = 0; i < m; i++)
            qsort(e + in->wake_off[i], (size_t)(in->wake_off[i + 1] - in->wake_off[i]), sizeof *e, by_phase);
        for (int64_t w = 0; w < in->wake_off[m]; w++)
            L.wake_sorted_phase[w] = e[w].phase, L.wake_sorted_pos[w] = e[w].pos;
        free(e);
    }
    for (int64_t j = 0; j < m; j++) {
        L.awake_role[j] = IDLE, L.awake_frame[j] = -1, L.detect_at[j] = INFINITY;
    }
    for (int64_t f = 0; f < n; f++)
        L.holder[f] = in->f_origin[f], L.seen_head[f] = -1;
    /* the frames' ready events take sequence numbers 0 .. n-1 (merged below), the deaths the next */
    L.seq = (uint64_t)n;
    for (int64_t i = 0; i < in->n_deaths; i++)
        push(&L, in->death_t[i], EV_DEATH, (int32_t)in->death_node[i], NULL, 0, 0, 0.0);
    int64_t next_ready = 0;
    while (!L.oom) {
        event e;
        int have_ready = next_ready < n;
        if (!have_ready && L.hn == 0)
            break;
        if (have_ready) {
            int64_t f = in->ready_order[next_ready];
            event r = {in->f_ready[f], 0.0, (uint64_t)next_ready, NULL, f, EV_READY, (int32_t)in->f_origin[f], 0};
            if (L.hn == 0 || before(&r, &L.heap[0])) {
                e = r;
                next_ready++;
            } else
                e = pop(&L);
        } else
            e = pop(&L);
        if (e.t >= in->duration) {
            let_go(&L, e.c);
            break;
        }
        if (L.n_air > 32) {
            /* what ended 20 ms ago overlaps nothing any more (the Python loop sweeps at 64: the same results) */
            int64_t kept = 0;
            for (int64_t i = 0; i < L.n_air; i++) {
                copy_t *o = L.on_air[i];
                if (o->end > e.t - 0.02)
                    L.on_air[kept++] = o;
                else
                    let_go(&L, o);
            }
            L.n_air = kept;
        }
        if (!(L.dead[e.node] && e.kind != EV_COPY_END && e.kind != EV_ACK_END))
            handle(&L, &e);
        let_go(&L, e.c);
    }
    if (!L.oom)
        for (int64_t j = 0; j < m; j++)
            if (L.awake[j])
                radio_off(&L, (int32_t)j, in->duration);
    int64_t err = L.oom;
    release(&L);
    if (err) {
        free(out->hop_log);
        out->hop_log = NULL;
        out->n_hops = 0;
        return 1;
    }
    out->rng[0] = (uint64_t)(L.rng.state >> 64), out->rng[1] = (uint64_t)L.rng.state;
    out->rng[2] = (uint64_t)(L.rng.inc >> 64), out->rng[3] = (uint64_t)L.rng.inc;
    return 0;
}

void iotsim_mesh_free(double *p) { free(p); }

/* Python's float % (the loop's pymod), for the test that it is CPython's */
double iotsim_mesh_py_mod(double x, double y) { return pymod(x, y); }
