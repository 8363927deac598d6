/* The LoRaWAN closed loop (iotsim/link/lorawan_loop.py) as one compiled event loop.
 *
 * It computes what the SimPy engine of ClosedLoop computes, step for step: the same class A node MAC
 * (duty cycle per sub-band, confirmed uplinks with RETRANSMIT_TIMEOUT, NbTrans, the device's ADR
 * backoff, LinkADRReq/Ans), the same network server (at every RX1 opening it decodes every uplink that
 * ended by then: demodulator paths, SINR capture, inter-SF rejection, half-duplex gateways; then it
 * answers, in order of their answer times, the delivered uplinks whose answer time has come: Semtech
 * ADR, and the downlink in RX1 else RX2 through the strongest gateway that is free (its duty cycle per
 * sub-band) and that the answer reaches in time over its backhaul) and the same downlink interference
 * at the nodes.
 * Floating-point operations are the Python code's, in the same order (build with -ffp-contract=off);
 * the random draws are numpy's PCG64 streams, continued from the states the caller hands over.
 * tests/test_lorawan_loop_native.py checks that both engines give the same bytes.
 *
 * Events are processed in time order: a node's resumption at its RX1 opening (the network server
 * first decides every uplink that ended by then; the RX1 openings of decided uplinks wait in a queue,
 * already in order), at its RX2 opening when the answer comes after RX1 opened (a heap; the server
 * resolves first too) or at the end of a downlink it listens to (a heap). Events at or after `duration`
 * are not processed in the loop: as SimPy's run(until=duration), the server then decides what the run
 * reached by its end (answers due before it book their downlinks before a later reception is decided),
 * then everything still open at once, and each node (in node order) finishes its messages without waiting
 * (what it plans then is never on air).
 *
 * Messages come in batches (`iotsim_lorawan_loop_feed`): a run in time chunks feeds each chunk's and
 * advances to its end (`iotsim_lorawan_loop_advance`), then takes the rows of the batches every node has
 * finished (`iotsim_lorawan_loop_drain`); a whole run feeds one batch and advances to the end. A node that
 * has sent every message fed so far waits (P_WAIT) and resumes when a batch brings it more, deciding then
 * what it would have decided when its last message ended: its choices depend on its own state only, and a
 * batch's messages are ready at or after the end of the chunk before, so nothing the loop did before that
 * end could have depended on them. An advance short of the end processes the events before it and
 * arrives only the attempts that start before it (later ones may still be preceded by the next batch's).
 *
 * Memory: an attempt's record is reused once the network has decided it, its node has read the
 * answer and it ends too long before anything still undecided to interfere with it; arrived attempts
 * are kept per (channel, SF), so the interferers of a frame are found from its channel's lists only,
 * walked from the frame's place in each (sum_list): nothing is copied per decision, and the sums come in
 * an order that does not depend on which frames are decided together. The rows of drained batches are freed
 * (their chunks reused), and so are the batches' messages.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Fate codes (iotsim.network.fate.Fate); checked against the enum by the Python side */
enum { F_DELIVERED = 0 };

#define MAX_GW 64
#define HIST 20

#include "../network/_pcg64.h" /* numpy's PCG64 */

/* a frame's first-attempt draw keyed by its identity: splitmix64's output function chained over the keys,
   as iotsim.link.draws.keyed_uniforms computes it */
static inline uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double keyed_uniform(uint64_t salt, int64_t node, int64_t kind, int64_t window, double ready, int64_t fragment)
{
    uint64_t bits;
    memcpy(&bits, &ready, sizeof bits);
    uint64_t h = mix64(salt);
    h = mix64(h ^ (uint64_t)node);
    h = mix64(h ^ (uint64_t)kind);
    h = mix64(h ^ (uint64_t)window);
    h = mix64(h ^ bits);
    h = mix64(h ^ (uint64_t)fragment);
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* ------------------------------------------------------------------ inputs and outputs */
typedef struct {
    /* sizes */
    int64_t n_nodes, n_gw, n_ch, n_bands, n_gw_bands; /* node sub-bands; gateway (downlink) sub-band indices */
    /* scalars */
    double duration, rx1_delay, rx2_delay, max_power_dbm, gw_tx_power_dbm, noise_dbm, adr_margin_db;
    double k_co, ticks_per_s, timeout_low, timeout_range;
    int64_t confirmed, nb_trans, adr, drop, dl_interference, paths, capture_rule, inter;
    int64_t frag_header, overhead, ans_bytes, adr_max_dr, max_tx_index, lowest_index, default_dr;
    int64_t ack_limit, ack_delay, fate_dc, fate_bs, fate_gt, fate_db, fate_col;
    uint64_t rng_retx[4], rng_timeouts[4]; /* state hi, state lo, inc hi, inc lo */
    uint64_t salt; /* keyed draws of first attempts (iotsim.link.draws) */
    /* per node */
    const int64_t *sf0, *initial_dr;
    const double *horizon, *startup, *power_dbm, *lin;
    /* per SF (index 0..12) */
    const int64_t *max_payload, *sf_dr;
    const double *air_tab, *rx_done_tab; /* [13][phy_cap] */
    int64_t phy_cap;
    const double *rx1_win, *sens;
    double rx2_win;
    /* per DR (0..15) */
    const int64_t *dr_sf;
    const double *snr_req;
    /* channels and bands */
    const int64_t *band_of;
    const double *band_dc;
    /* TX power index -> 10^(offset/10) */
    const double *off_factor;
    const double *k_inter; /* [6][6], diagonal 0 */
    /* downlinks: variant v = cmd | app << 1; RX1 per [dr][ch][v], RX2 per [v] */
    const double *dl1_air, *dl1_dc, *dl1_sens, *dl1_freq;
    const int64_t *dl1_band, *dl1_sf;
    const double *dl2_air, *dl2_dc, *dl2_sens;
    const int64_t *dl2_band;
    double dl2_freq;
    int64_t dl2_sf;
    /* application downlink queue: times per node (CSR) */
    const int64_t *app_off;
    const double *app_t;
    /* backhaul: per gateway one-way latency to the network server; the server's deduplication delay; a
       downlink reaches its gateway more than tx_lead before it starts, or the gateway rejects it */
    const double *gw_latency;
    double dedup, tx_lead;
    /* the gateways' own transmissions (sorted; sched_gw: the gateway sending each, -1 every gateway; each
       gateway's own disjoint) and the windows in which they spend a sub-band's duty cycle */
    int64_t n_sched, n_holds;
    const double *sched_start, *sched_end, *hold_lo, *hold_hi;
    const int64_t *hold_band, *sched_gw;
    /* each gateway's own holds (its unicast fragments' off-times): per (gateway, sub-band) a sorted run of
       disjoint windows, ghold_lo/ghold_hi[ghold_off[g * n_hold_bands + band] ..
       ghold_off[g * n_hold_bands + band + 1]) */
    int64_t n_hold_bands, n_gholds;
    const double *ghold_lo, *ghold_hi;
    const int64_t *ghold_off;
} loop_in;

/* one frame's row; rows are kept per node in chunks (a node writes its rows in message order, and
   messages are ordered by node, so the nodes' rows one after the other are in message order) */
typedef struct { /* 64 bytes; its airtime, ready time and standby follow from the inputs (iotsim_lorawan_loop_drain) */
    double start, tx_s, rx_s, busy;
    int64_t msg;
    int32_t frag, phy;
    int16_t attempts, gw;
    int8_t sf, tx_index, dropped, ch, fate;
} row_t;

#define CHUNK_ROWS 32
typedef struct {
    row_t r[CHUNK_ROWS];
    int64_t next;  /* next chunk of the node, -1 */
    int64_t n;     /* rows written */
    int64_t first; /* rows before it were drained */
} chunk_t;

#define SLAB_CHUNKS 4096 /* chunks are allocated in slabs (never moved) */
typedef struct {
    int64_t n;        /* rows held (written, not drained) */
    chunk_t **slabs;  /* chunk c is slabs[c / SLAB_CHUNKS][c % SLAB_CHUNKS] */
    int64_t n_chunks, cap_slabs;
    int64_t free_head; /* drained chunks, for reuse (linked by next), -1 */
    int64_t *head, *tail; /* per node: first and last chunk, -1 */
} rows_t;

static inline chunk_t *chunk_at(const rows_t *R, int64_t c) { return &R->slabs[c / SLAB_CHUNKS][c % SLAB_CHUNKS]; }

typedef struct {
    rows_t rows;
    int64_t busy_ticks[MAX_GW], locked[MAX_GW];
    double gw_tx_s[MAX_GW];
    double *band_tx_s;      /* [n_gw][n_gw_bands] */
    int64_t *band_tx_count; /* [n_gw][n_gw_bands] */
    /* per node: downlinks_sent, downlinks_received, acks_received, adr_commands, app_downlinks_sent,
       app_downlinks_received, downlinks_interfered (int64), downlink_airtime_s (double) */
    int64_t *stats;   /* [7][n_nodes] */
    double *dl_air_s; /* [n_nodes] */
    int64_t error, error_sf, announced;
} loop_out;

/* ------------------------------------------------------------------ attempts (records) */
typedef struct {
    double start, air, off;
    double dl_air, dl_t0, dl_freq, answer_t;
    uint64_t bits, dec_bits; /* dec_bits: the gateways the network server may answer through */
    int64_t aid, cseq, lpos; /* cseq: arrival number on its channel; lpos: its entry's number in its list */
    int32_t node;
    int16_t ch, gw, dl_g;
    int8_t sf, txi, status, afate, confirmed, ackreq, ans;
    int8_t resolved, consumed, untracked, answered;
    int8_t dl_window, dl_received, dl_app, dl_has_cmd, dl_cmd_dr, dl_cmd_idx, dl_sf;
} rec_t;

typedef struct {
    double t;
    int64_t id;  /* tie-break: announcement number (heaps of attempts) or event sequence */
    int64_t ref; /* record slot (attempt heaps) or node (events) */
    int64_t kind;
} hitem;

/* a 4-ary min-heap (fewer levels, and the children of a node share cache lines) */
typedef struct {
    hitem *h;
    int64_t n, cap;
} heap_t;

static int hless(const hitem *a, const hitem *b) { return a->t < b->t || (a->t == b->t && a->id < b->id); }

static int heap_push(heap_t *q, hitem x)
{
    if (q->n == q->cap) {
        int64_t c = q->cap ? 2 * q->cap : 1024;
        hitem *p = realloc(q->h, (size_t)c * sizeof(hitem));
        if (!p)
            return -1;
        q->h = p;
        q->cap = c;
    }
    int64_t k = q->n++;
    while (k > 0) {
        int64_t p = (k - 1) / 4;
        if (!hless(&x, &q->h[p]))
            break;
        q->h[k] = q->h[p];
        k = p;
    }
    q->h[k] = x;
    return 0;
}

static hitem heap_pop(heap_t *q)
{
    hitem top = q->h[0];
    hitem x = q->h[--q->n];
    int64_t k = 0;
    for (;;) {
        int64_t c = 4 * k + 1;
        if (c >= q->n)
            break;
        int64_t last = c + 4 < q->n ? c + 4 : q->n;
        for (int64_t i = c + 1; i < last; i++)
            if (hless(&q->h[i], &q->h[c]))
                c = i;
        if (!hless(&q->h[c], &x))
            break;
        q->h[k] = q->h[c];
        k = c;
    }
    if (q->n)
        q->h[k] = x;
    return top;
}

/* sorted interval lists (a gateway's transmissions; all downlinks for interference at the nodes) */
typedef struct {
    double *s, *e, *f;
    int64_t *sf, *g;
    int64_t n, cap;
} ivl_t;

static int ivl_reserve(ivl_t *v, int full)
{
    if (v->n < v->cap)
        return 0;
    int64_t c = v->cap ? 2 * v->cap : 256;
    double *s = realloc(v->s, (size_t)c * sizeof(double));
    if (!s)
        return -1;
    v->s = s;
    double *e = realloc(v->e, (size_t)c * sizeof(double));
    if (!e)
        return -1;
    v->e = e;
    if (full) {
        double *f = realloc(v->f, (size_t)c * sizeof(double));
        if (!f)
            return -1;
        v->f = f;
        int64_t *sf = realloc(v->sf, (size_t)c * sizeof(int64_t));
        if (!sf)
            return -1;
        v->sf = sf;
        int64_t *g = realloc(v->g, (size_t)c * sizeof(int64_t));
        if (!g)
            return -1;
        v->g = g;
    }
    v->cap = c;
    return 0;
}

/* first index with s[i] > x (bisect_right) / s[i] >= x (bisect_left) */
static int64_t bisect_right(const double *s, int64_t n, double x)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t m = (lo + hi) / 2;
        if (x < s[m])
            hi = m;
        else
            lo = m + 1;
    }
    return lo;
}

static int64_t bisect_left(const double *s, int64_t n, double x)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t m = (lo + hi) / 2;
        if (s[m] < x)
            lo = m + 1;
        else
            hi = m;
    }
    return lo;
}

static int ivl_insert(ivl_t *v, double s, double e, double f, int64_t sf, int64_t g, int full)
{
    if (ivl_reserve(v, full))
        return -1;
    int64_t i = bisect_right(v->s, v->n, s);
    int64_t m = v->n - i;
    memmove(v->s + i + 1, v->s + i, (size_t)m * sizeof(double));
    memmove(v->e + i + 1, v->e + i, (size_t)m * sizeof(double));
    v->s[i] = s;
    v->e[i] = e;
    if (full) {
        memmove(v->f + i + 1, v->f + i, (size_t)m * sizeof(double));
        memmove(v->sf + i + 1, v->sf + i, (size_t)m * sizeof(int64_t));
        memmove(v->g + i + 1, v->g + i, (size_t)m * sizeof(int64_t));
        v->f[i] = f;
        v->sf[i] = sf;
        v->g[i] = g;
    }
    v->n++;
    return 0;
}

/* drop the first `cut` entries */
static void ivl_cut(ivl_t *v, int64_t cut, int full)
{
    if (cut <= 0)
        return;
    int64_t m = v->n - cut;
    memmove(v->s, v->s + cut, (size_t)m * sizeof(double));
    memmove(v->e, v->e + cut, (size_t)m * sizeof(double));
    if (full) {
        memmove(v->f, v->f + cut, (size_t)m * sizeof(double));
        memmove(v->sf, v->sf + cut, (size_t)m * sizeof(int64_t));
        memmove(v->g, v->g + cut, (size_t)m * sizeof(int64_t));
    }
    v->n = m;
}

#define TX_KEEP_S 60.0
#define TX_TRIM 4096

/* arrived attempts of one (channel, SF) */
typedef struct {
    double start, end;
    double gm;          /* the running maximum of the ends of the list up to here */
    int64_t cseq, slot; /* cseq: arrival number on its channel (arrivals come in (start, announcement) order) */
    int32_t node;
    int8_t txi; /* its SF is its list's */
} aentry_t;

typedef struct {
    aentry_t *e;
    int64_t head, n, cap;
    int64_t base; /* entries dropped by compaction: entry i (since the run began) is e[i - base] */
} alist_t;

/* ------------------------------------------------------------------ node state */
enum { P_MSG, P_FRAME, P_ATTEMPT, P_RX1, P_RX2, P_DL, P_WAIT };

typedef struct {
    /* MAC */
    int64_t sf, tx_index, nb_trans;
    double node_free;
    int ans_pending;
    int64_t bo_dr, bo_txi, bo_nb, bo_cnt;
    /* where the process is */
    int phase;
    int64_t batch, msg, hi; /* its batch (P_WAIT: the last it looked in), its message and the end of its own in
                               that batch (numbers across batches) */
    /* the message */
    double ready, off;
    int64_t app, kind, window; /* kind and window: a first attempt's keyed draw */
    int ack_req, split;
    int64_t nfrag, per, j;
    /* the frame */
    int64_t phy;
    double air, rx_done;
    int ans;
    double attempt_ready;
    int64_t attempts;
    double first_start;
    int64_t first_ch;
    double tx_s, rx_s, delivered_end, last_end;
    int64_t best_rank, gw_of;
    /* the attempt */
    int64_t slot;
    double end;
    int got;
} node_t;

/* a batch of messages: node k's are base + lo[k] .. base + lo[k + 1] (messages ordered by node) */
typedef struct {
    int64_t base, n;
    int64_t *lo;
    double *ready;
    int64_t *app_bytes, *kind, *window;
} batch_t;

typedef struct {
    const loop_in *in;
    loop_out *out;
    node_t *nodes;
    batch_t *batches; /* fed so far; those before n_drained are freed */
    int64_t n_batches, cap_batches, n_drained, next_base;
    double *band_free; /* [n_nodes][n_bands] */
    /* records */
    rec_t *rec;
    int64_t n_rec, cap_rec, *free_slots, n_free, cap_free, next_aid, *ch_arrivals;
    /* network */
    heap_t arrivals, ends, events;
    /* delivered attempts not answered yet, by (answer time, decode order); nodes waiting for RX2 because
       their answer comes after RX1 opened, by (RX2 opening, announcement) */
    heap_t answers, rx2_waits;
    int64_t n_decoded;
    /* RX1 openings of decided uplinks, in order of the uplinks' ends (so of their RX1 times): a queue,
       not a heap. The earliest RX1 of an uplink still undecided is that of the top of `ends`. */
    double *rx1_t;
    int64_t *rx1_node, *rx1_slot, rx1_head, rx1_n, rx1_cap;
    int64_t next_seq;
    double max_air, max_dl_air, now;
    int offline;
    /* arrived attempts per (channel, SF), each list in arrival (= start) order; entries before head are
       forgotten (they end long before anything still to be decided starts) */
    alist_t *arr;
    int64_t resolutions;
    /* gateways */
    ivl_t gw_tx[MAX_GW];
    double gw_busy_until[MAX_GW];
    double *gw_band_free; /* [n_gw][n_gw_bands] */
    double *held;         /* [n_gw][paths] sorted ends of held paths */
    int64_t n_held[MAX_GW];
    ivl_t dls;
    /* network server per node */
    double *hist;
    int64_t *hist_n, *hist_head;
    int8_t *pend_has;
    int64_t *pend_dr, *pend_idx, *app_head;
    /* PRNG */
    pcg64 retx, timeouts;
    /* scratch */
    int64_t *targets_buf, targets_cap;
} loop_t;

static const int RANK_OF_FATE_DEFAULT = 0;

static int fate_rank(const loop_in *in, int64_t fate)
{
    if (fate == in->fate_bs)
        return 0;
    if (fate == in->fate_gt)
        return 1;
    if (fate == in->fate_db)
        return 2;
    if (fate == in->fate_col)
        return 3;
    return RANK_OF_FATE_DEFAULT;
}

static int64_t rank_fate(const loop_in *in, int64_t rank)
{
    switch (rank) {
    case 1:
        return in->fate_gt;
    case 2:
        return in->fate_db;
    case 3:
        return in->fate_col;
    default:
        return in->fate_bs;
    }
}

/* ------------------------------------------------------------------ growable outputs */
static int add_row(loop_t *L, int64_t k, int64_t msg, int64_t j, int64_t phy, int64_t sf, double start, int dropped,
                   int64_t attempts, int64_t ch, double tx_s, double rx_s, double busy, int64_t fate, int64_t gw,
                   int64_t tx_index)
{
    rows_t *R = &L->out->rows;
    int64_t c = R->tail[k];
    if (c < 0 || chunk_at(R, c)->n == CHUNK_ROWS) {
        int64_t fresh;
        if (R->free_head >= 0) { /* a drained chunk */
            fresh = R->free_head;
            R->free_head = chunk_at(R, fresh)->next;
        } else {
            if (R->n_chunks % SLAB_CHUNKS == 0) { /* a new slab */
                int64_t slab = R->n_chunks / SLAB_CHUNKS;
                if (slab == R->cap_slabs) {
                    int64_t cap = R->cap_slabs ? 2 * R->cap_slabs : 64;
                    chunk_t **p = realloc(R->slabs, (size_t)cap * sizeof(chunk_t *));
                    if (!p)
                        return -1;
                    R->slabs = p;
                    R->cap_slabs = cap;
                }
                R->slabs[slab] = malloc((size_t)SLAB_CHUNKS * sizeof(chunk_t));
                if (!R->slabs[slab])
                    return -1;
            }
            fresh = R->n_chunks++;
        }
        chunk_at(R, fresh)->n = 0;
        chunk_at(R, fresh)->first = 0;
        chunk_at(R, fresh)->next = -1;
        if (c < 0)
            R->head[k] = fresh;
        else
            chunk_at(R, c)->next = fresh;
        R->tail[k] = c = fresh;
    }
    chunk_t *ck = chunk_at(R, c);
    row_t *r = &ck->r[ck->n++];
    R->n++;
    r->msg = msg;
    r->frag = (int32_t)j;
    r->phy = (int32_t)phy;
    r->sf = (int8_t)sf;
    r->start = start;
    r->dropped = (int8_t)dropped;
    r->attempts = (int16_t)attempts;
    r->ch = (int8_t)ch;
    r->tx_s = tx_s;
    r->rx_s = rx_s;
    r->busy = busy;
    r->fate = (int8_t)fate;
    r->gw = (int16_t)gw;
    r->tx_index = (int8_t)tx_index;
    return 0;
}

/* ------------------------------------------------------------------ records */
static int64_t rec_alloc(loop_t *L)
{
    if (L->n_free)
        return L->free_slots[--L->n_free];
    if (L->n_rec == L->cap_rec) {
        int64_t c = L->cap_rec ? 2 * L->cap_rec : 4096;
        rec_t *p = realloc(L->rec, (size_t)c * sizeof(rec_t));
        if (!p)
            return -1;
        L->rec = p;
        L->cap_rec = c;
    }
    return L->n_rec++;
}

static int rec_release_if_done(loop_t *L, int64_t slot)
{
    rec_t *r = &L->rec[slot];
    if (!(r->consumed && r->untracked && r->resolved && (r->status != F_DELIVERED || r->answered)))
        return 0;
    if (L->n_free == L->cap_free) {
        int64_t c = L->cap_free ? 2 * L->cap_free : 4096;
        int64_t *p = realloc(L->free_slots, (size_t)c * sizeof(int64_t));
        if (!p)
            return -1;
        L->free_slots = p;
        L->cap_free = c;
    }
    L->free_slots[L->n_free++] = slot;
    return 0;
}

/* ------------------------------------------------------------------ gateways */
static int band_held(const loop_in *in, int64_t g, int64_t band, double t0, double t1)
{
    for (int64_t i = 0; i < in->n_holds; i++)
        if (in->hold_band[i] == band && t0 < in->hold_hi[i] && t1 > in->hold_lo[i])
            return 1;
    if (in->n_gholds && band < in->n_hold_bands) {
        int64_t a = in->ghold_off[g * in->n_hold_bands + band], b = in->ghold_off[g * in->n_hold_bands + band + 1];
        /* disjoint windows: only the last one starting before t1 can overlap [t0, t1) */
        int64_t i = bisect_left(in->ghold_lo + a, b - a, t1) - 1;
        if (i >= 0 && in->ghold_hi[a + i] > t0)
            return 1;
    }
    return 0;
}

static int overlaps_tx(loop_t *L, int64_t g, double t0, double t1)
{
    if (L->gw_busy_until[g] <= t0)
        return 0;
    ivl_t *v = &L->gw_tx[g];
    int64_t i = bisect_left(v->s, v->n, t1) - 1;
    return i >= 0 && v->e[i] > t0;
}

static int transmitting(loop_t *L, int64_t g, double t)
{
    if (L->gw_busy_until[g] <= t)
        return 0;
    ivl_t *v = &L->gw_tx[g];
    int64_t i = bisect_right(v->s, v->n, t) - 1;
    return i >= 0 && v->e[i] > t;
}

/* reception.decode's rule for one receiver */
static int destroyed(const loop_t *L, double e_co, const double *slot_energy, int64_t own, double signal)
{
    const loop_in *in = L->in;
    int dead;
    if (in->capture_rule == 0)
        dead = e_co > 0;
    else if (in->capture_rule == 1)
        dead = e_co * in->k_co > signal;
    else
        dead = e_co >= signal && e_co > 0;
    if (!dead && in->inter) {
        for (int s = 0; s < 6; s++)
            if (slot_energy[s] * in->k_inter[own * 6 + s] > signal) {
                dead = 1;
                break;
            }
    }
    return dead;
}

/* ------------------------------------------------------------------ arrivals */
static int arrive_one(loop_t *L, int64_t slot)
{
    const loop_in *in = L->in;
    rec_t *r = &L->rec[slot];
    double s = r->start, air = r->air, off = r->off;
    const double *p = in->power_dbm + (int64_t)r->node * in->n_gw;
    double sens = in->sens[r->sf];
    int64_t n_aud = 0;
    for (int64_t g = 0; g < in->n_gw; g++)
        n_aud += (p[g] + off >= sens);
    int best = n_aud < in->n_gw ? 0 : -1;
    uint64_t bits = 0;
    if (n_aud) {
        double e = s + air;
        int64_t ticks = (int64_t)nearbyint(air * in->ticks_per_s);
        for (int64_t g = 0; g < in->n_gw; g++) {
            if (!(p[g] + off >= sens))
                continue;
            if (L->gw_busy_until[g] > s && transmitting(L, g, s)) {
                if (best < 1)
                    best = 1;
                continue;
            }
            if (in->paths >= 0) {
                double *h = L->held + g * in->paths;
                int64_t nh = L->n_held[g];
                if (nh && h[0] <= s) {
                    int64_t cut = bisect_right(h, nh, s);
                    memmove(h, h + cut, (size_t)(nh - cut) * sizeof(double));
                    nh -= cut;
                }
                if (nh >= in->paths) {
                    L->n_held[g] = nh;
                    if (best < 2)
                        best = 2;
                    continue;
                }
                int64_t i = bisect_right(h, nh, e); /* insort = insort_right */
                memmove(h + i + 1, h + i, (size_t)(nh - i) * sizeof(double));
                h[i] = e;
                L->n_held[g] = nh + 1;
            }
            L->out->busy_ticks[g] += ticks;
            L->out->locked[g] += 1;
            bits |= (uint64_t)1 << g;
        }
    }
    r->afate = (int8_t)rank_fate(in, best < 0 ? 0 : best);
    r->bits = bits;
    alist_t *l = &L->arr[(int64_t)r->ch * 6 + (r->sf - 7)];
    if (l->n == l->cap) {
        if (l->head > l->n / 2) { /* compact */
            memmove(l->e, l->e + l->head, (size_t)(l->n - l->head) * sizeof(aentry_t));
            l->n -= l->head;
            l->base += l->head;
            l->head = 0;
        } else {
            int64_t c = l->cap ? 2 * l->cap : 256;
            aentry_t *a = realloc(l->e, (size_t)c * sizeof(aentry_t));
            if (!a)
                return -1;
            l->e = a;
            l->cap = c;
        }
    }
    aentry_t *en = &l->e[l->n];
    en->start = s;
    en->end = s + air;
    en->gm = l->n && l->e[l->n - 1].gm > en->end ? l->e[l->n - 1].gm : en->end;
    r->lpos = l->base + l->n;
    r->cseq = L->ch_arrivals[r->ch]++;
    en->cseq = r->cseq;
    en->slot = slot;
    en->node = r->node;
    en->txi = r->txi;
    l->n++;
    return 0;
}

/* ------------------------------------------------------------------ verdicts */
static void delivered(loop_t *L, rec_t *r, uint64_t dec)
{
    const loop_in *in = L->in;
    const double *p = in->power_dbm + (int64_t)r->node * in->n_gw;
    r->status = F_DELIVERED;
    /* the strongest decoder; on a tie the lower index (a stable sort by -power) */
    int64_t best = -1;
    double first = INFINITY;
    for (int64_t g = 0; g < in->n_gw; g++)
        if (dec >> g & 1) {
            if (best < 0 || -p[g] < -p[best])
                best = g;
            if (in->gw_latency[g] < first)
                first = in->gw_latency[g];
        }
    r->gw = (int16_t)best;
    /* the first copy reaches the network server after the fastest backhaul; it answers dedup later,
       through the gateways whose copies came by then */
    r->answer_t = (r->start + r->air) + first + in->dedup;
    uint64_t cand = 0;
    for (int64_t g = 0; g < in->n_gw; g++)
        if (dec >> g & 1 && in->gw_latency[g] <= first + in->dedup)
            cand |= (uint64_t)1 << g;
    r->dec_bits = cand;
}

/* First entry of a list (from lo) that arrived on the channel after arrival number cseq. */
static int64_t bisect_cseq(const aentry_t *e, int64_t lo, int64_t hi, int64_t cseq)
{
    while (lo < hi) {
        int64_t m = (lo + hi) / 2;
        if (e[m].cseq <= cseq)
            lo = m + 1;
        else
            hi = m;
    }
    return lo;
}

/* One SF's interference energy at the target's gateways (cell[x] for gateway gws[x]), summed in the order
   of reception.decode's walk over the target's channel: at d = 1, 2, ... the frame d after the target and
   then the frame d before it, d counted in arrivals on the channel (cseq). Frames after the target count
   while they start before its end, frames before it while they end after its start; from one SF's list
   (in arrival order) those are a run after `a` and, among the entries before `b`, the ones ending after sp
   (the walk back stops where the list's running maximum of the ends no longer passes sp, as the channel's
   does, which is never lower). So no context of the whole channel is built. */
static void sum_list(const loop_t *L, const alist_t *l, int64_t a, int64_t b, int64_t cseq, double sp, double ep,
                     const int64_t *gws, int64_t ng, double *cell)
{
    const aentry_t *e = l->e;
    const int64_t G = L->in->n_gw;
    int after = a < l->n && e[a].start < ep, before = 1;
    for (;;) {
        while (before) { /* the next entry before that overlaps, or the end of the walk back */
            if (b < l->head || !(e[b].gm > sp))
                before = 0;
            else if (sp < e[b].end)
                break;
            else
                b--;
        }
        if (!after && !before)
            return;
        const aentry_t *o;
        double ov;
        if (after && (!before || e[a].cseq - cseq <= cseq - e[b].cseq)) {
            o = &e[a++];
            ov = (ep < o->end ? ep : o->end) - o->start;
            after = a < l->n && e[a].start < ep;
        } else {
            o = &e[b--];
            ov = (o->end < ep ? o->end : ep) - sp;
        }
        const double *pw = L->in->lin + (int64_t)o->node * G;
        double f = L->in->off_factor[o->txi];
        for (int64_t x = 0; x < ng; x++)
            cell[x] += (pw[gws[x]] * f) * ov;
    }
}

/* One target's verdict, as the SimPy engine's _decode_one (reception.decode for one frame): the energy of
   each SF on its channel (only its own SF when SFs are orthogonal) at the gateways where it locked a
   path, half duplex, capture and inter-SF rejection. */
static void decode_one(loop_t *L, int64_t slot)
{
    const loop_in *in = L->in;
    rec_t *r = &L->rec[slot];
    int64_t rank = fate_rank(in, r->afate);
    if (!r->bits) {
        r->status = (int8_t)rank_fate(in, rank);
        r->gw = -1;
        return;
    }
    int64_t gws[MAX_GW], ng = 0;
    for (int64_t g = 0; g < in->n_gw; g++)
        if (r->bits >> g & 1)
            gws[ng++] = g;
    double sp = r->start, ep = r->start + r->air;
    int nslots = in->inter ? 6 : 1;
    int64_t own = r->sf - 7;
    double energy[6][MAX_GW];
    for (int s = 0; s < nslots; s++) {
        for (int64_t x = 0; x < ng; x++)
            energy[s][x] = 0.0;
        int64_t sf = in->inter ? s : own;
        const alist_t *l = &L->arr[(int64_t)r->ch * 6 + sf];
        if (l->head == l->n)
            continue;
        int64_t a; /* the first entry after the target */
        if (sf == own)
            a = r->lpos - l->base + 1;
        else
            a = bisect_cseq(l->e, l->head, l->n, r->cseq);
        sum_list(L, l, a, sf == own ? a - 2 : a - 1, r->cseq, sp, ep, gws, ng, energy[s]);
    }
    int64_t own_cell = in->inter ? own : 0;
    const double *pw = in->lin + (int64_t)r->node * in->n_gw;
    double f = in->off_factor[r->txi], dur = ep - sp;
    uint64_t dec = 0;
    for (int64_t x = 0; x < ng; x++) {
        int64_t g = gws[x];
        int cut = overlaps_tx(L, g, sp, ep);
        int64_t gr = cut ? 1 : 3;
        if (gr > rank)
            rank = gr;
        if (cut)
            continue;
        double slots[6] = {0, 0, 0, 0, 0, 0};
        for (int s = 0; s < nslots; s++)
            slots[s] = energy[s][x];
        if (!destroyed(L, energy[own_cell][x], slots, own_cell, (pw[g] * f) * dur))
            dec |= (uint64_t)1 << g;
    }
    if (dec)
        delivered(L, r, dec);
    else {
        r->status = (int8_t)rank_fate(in, rank);
        r->gw = -1;
    }
}

/* ------------------------------------------------------------------ the network server */
static void semtech_adr(const loop_in *in, double snr_max, int64_t dr, int64_t txp, int64_t *new_dr, int64_t *new_txp)
{
    double margin = snr_max - in->snr_req[dr] - in->adr_margin_db;
    int64_t steps = (int64_t)floor(margin / 3.0);
    int64_t up = steps < in->adr_max_dr - dr ? steps : in->adr_max_dr - dr;
    if (up < 0)
        up = 0;
    *new_dr = dr + up;
    int64_t left = steps - up;
    if (left > 0)
        *new_txp = txp + left < in->max_tx_index ? txp + left : in->max_tx_index;
    else if (left < 0)
        *new_txp = txp + left > 0 ? txp + left : 0;
    else
        *new_txp = txp;
}

static int server(loop_t *L, int64_t slot)
{
    const loop_in *in = L->in;
    rec_t *r = &L->rec[slot];
    r->answered = 1;
    int64_t k = r->node, sf = r->sf;
    double end = r->start + r->air, answer_t = r->answer_t;
    /* the gateways it may answer through, strongest first (stable: ties keep the lower index first) */
    int64_t order[MAX_GW], nd = 0;
    const double *p = in->power_dbm + k * in->n_gw;
    for (int64_t g = 0; g < in->n_gw; g++)
        if (r->dec_bits >> g & 1) {
            int64_t i = nd++;
            while (i > 0 && -p[order[i - 1]] > -p[g]) {
                order[i] = order[i - 1];
                i--;
            }
            order[i] = g;
        }
    int64_t g0 = order[0];
    int64_t dr = in->sf_dr[sf];
    int64_t tx_index = (int64_t)llround(-r->off / 2.0);
    int has_cmd = 0;
    int64_t cmd_dr = 0, cmd_idx = 0;
    if (in->adr) {
        double *h = L->hist + k * HIST;
        if (r->ans) {
            L->pend_has[k] = 0;
            L->hist_n[k] = 0;
            L->hist_head[k] = 0;
        }
        double snr = in->power_dbm[k * in->n_gw + g0] + r->off - in->noise_dbm;
        h[(L->hist_head[k] + L->hist_n[k]) % HIST] = snr;
        if (L->hist_n[k] < HIST)
            L->hist_n[k]++;
        else
            L->hist_head[k] = (L->hist_head[k] + 1) % HIST;
        if (L->hist_n[k] >= HIST && !L->pend_has[k]) {
            double mx = h[0];
            for (int i = 1; i < HIST; i++)
                if (h[i] > mx)
                    mx = h[i];
            int64_t nd, ni;
            semtech_adr(in, mx, dr, tx_index, &nd, &ni);
            if (ni > in->lowest_index)
                ni = in->lowest_index;
            if (nd != dr || ni != tx_index) {
                L->pend_has[k] = 1;
                L->pend_dr[k] = nd;
                L->pend_idx[k] = ni;
            }
        }
        if (L->pend_has[k]) {
            has_cmd = 1;
            cmd_dr = L->pend_dr[k];
            cmd_idx = L->pend_idx[k];
        }
    }
    int app = 0;
    int64_t qi = L->app_head[k];
    if (qi < in->app_off[k + 1] && in->app_t[qi] <= answer_t)
        app = 1;
    if (!(r->confirmed || has_cmd || app || r->ackreq))
        return 0;
    int64_t v = has_cmd | app << 1;
    for (int window = 1; window <= 2; window++) {
        double t0, air, dc, sens, freq;
        int64_t band, dl_sf;
        if (window == 1) {
            t0 = end + in->rx1_delay;
            int64_t i = (dr * in->n_ch + r->ch) * 4 + v;
            air = in->dl1_air[i];
            band = in->dl1_band[i];
            dc = in->dl1_dc[i];
            sens = in->dl1_sens[i];
            freq = in->dl1_freq[i];
            dl_sf = in->dl1_sf[i];
        } else {
            t0 = end + in->rx2_delay;
            air = in->dl2_air[v];
            band = in->dl2_band[v];
            dc = in->dl2_dc[v];
            sens = in->dl2_sens[v];
            freq = in->dl2_freq;
            dl_sf = in->dl2_sf;
        }
        int64_t g = -1;
        for (int64_t q = 0; q < nd; q++) {
            int64_t c = order[q];
            if (answer_t + in->gw_latency[c] + in->tx_lead < t0 &&
                !(L->gw_band_free[c * in->n_gw_bands + band] > t0 || overlaps_tx(L, c, t0, t0 + air) ||
                  band_held(in, c, band, t0, t0 + air))) {
                g = c;
                break;
            }
        }
        if (g < 0)
            continue;
        double e = t0 + air;
        if (e > L->gw_busy_until[g])
            L->gw_busy_until[g] = e;
        L->gw_band_free[g * in->n_gw_bands + band] = t0 + air / dc;
        if (ivl_insert(&L->gw_tx[g], t0, e, 0, 0, 0, 0))
            return -1;
        L->out->gw_tx_s[g] += air;
        L->out->band_tx_s[g * in->n_gw_bands + band] += air;
        L->out->band_tx_count[g * in->n_gw_bands + band] += 1;
        double node_dbm = in->power_dbm[k * in->n_gw + g] - in->max_power_dbm + in->gw_tx_power_dbm;
        int received = node_dbm >= sens;
        int64_t N = in->n_nodes;
        L->out->stats[0 * N + k] += 1; /* downlinks_sent */
        L->out->dl_air_s[k] += air;
        if (has_cmd)
            L->out->stats[3 * N + k] += 1; /* adr_commands */
        if (app) {
            L->app_head[k]++;
            L->out->stats[4 * N + k] += 1; /* app_downlinks_sent */
        }
        if (ivl_insert(&L->dls, t0, e, freq, dl_sf, g, 1))
            return -1;
        if (air > L->max_dl_air)
            L->max_dl_air = air;
        r->dl_window = (int8_t)window;
        r->dl_received = (int8_t)received;
        r->dl_air = air;
        r->dl_has_cmd = (int8_t)(has_cmd && received);
        r->dl_cmd_dr = (int8_t)cmd_dr;
        r->dl_cmd_idx = (int8_t)cmd_idx;
        r->dl_t0 = t0;
        r->dl_freq = freq;
        r->dl_sf = (int8_t)dl_sf;
        r->dl_g = (int16_t)g;
        r->dl_app = (int8_t)app;
        return 0;
    }
    return 0;
}

/* Forget arrived attempts that end long before anything still to be decided starts. */
static int trim_arrived(loop_t *L, double t_start)
{
    if (++L->resolutions % 4096 || !L->ends.n)
        return 0;
    double a = L->rec[L->ends.h[0].ref].start - 2 * L->max_air;
    double b = t_start - 2 * L->max_air;
    double bound = a < b ? a : b;
    for (int64_t i = 0; i < L->in->n_ch * 6; i++) {
        alist_t *l = &L->arr[i];
        while (l->head < l->n && l->e[l->head].start < bound) {
            int64_t s = l->e[l->head++].slot;
            L->rec[s].untracked = 1;
            if (rec_release_if_done(L, s))
                return -1;
        }
    }
    return 0;
}

static int rx1_push(loop_t *L, double t, int64_t node, int64_t slot)
{
    if (L->rx1_n == L->rx1_cap) {
        if (L->rx1_head > L->rx1_n / 2) {
            memmove(L->rx1_t, L->rx1_t + L->rx1_head, (size_t)(L->rx1_n - L->rx1_head) * sizeof(double));
            memmove(L->rx1_node, L->rx1_node + L->rx1_head, (size_t)(L->rx1_n - L->rx1_head) * sizeof(int64_t));
            memmove(L->rx1_slot, L->rx1_slot + L->rx1_head, (size_t)(L->rx1_n - L->rx1_head) * sizeof(int64_t));
            L->rx1_n -= L->rx1_head;
            L->rx1_head = 0;
        } else {
            int64_t c = L->rx1_cap ? 2 * L->rx1_cap : 4096;
            double *a = realloc(L->rx1_t, (size_t)c * sizeof(double));
            if (!a)
                return -1;
            L->rx1_t = a;
            int64_t *b = realloc(L->rx1_node, (size_t)c * sizeof(int64_t));
            if (!b)
                return -1;
            L->rx1_node = b;
            int64_t *d = realloc(L->rx1_slot, (size_t)c * sizeof(int64_t));
            if (!d)
                return -1;
            L->rx1_slot = d;
            L->rx1_cap = c;
        }
    }
    L->rx1_t[L->rx1_n] = t;
    L->rx1_slot[L->rx1_n] = slot;
    L->rx1_node[L->rx1_n++] = node;
    return 0;
}

static int answer_until(loop_t *L, double T)
{
    while (L->answers.n && L->answers.h[0].t <= T) {
        int64_t slot = heap_pop(&L->answers).ref;
        if (server(L, slot) || rec_release_if_done(L, slot))
            return -1;
    }
    return 0;
}

/* The next arrival in start order: its demodulator paths (arrive_one), then its end joins L->ends. L->ends
   holds only arrived attempts (a few hundred on air, not one per node announced ahead): every attempt
   that ends by a resolution's T started before it, so has arrived when the resolution pops L->ends. */
static int arrive_next(loop_t *L)
{
    hitem it = heap_pop(&L->arrivals);
    if (L->arrivals.n) { /* the next arrival's record and power row, while this one is handled */
        __builtin_prefetch(&L->rec[L->arrivals.h[0].ref]);
        __builtin_prefetch(L->in->power_dbm + L->arrivals.h[0].kind * L->in->n_gw);
    }
    if (arrive_one(L, it.ref))
        return -1;
    const rec_t *r = &L->rec[it.ref];
    hitem e = {r->start + r->air, r->aid, it.ref, 0};
    return heap_push(&L->ends, e);
}

/* Decode every uplink that ended by T; answer those delivered whose answer time has come by T, in order of
   their answer times (then of their ends). */
static int resolve_until(loop_t *L, double T)
{
    while (L->arrivals.n && L->arrivals.h[0].t < T)
        if (arrive_next(L))
            return -1;
    if (!L->ends.n || L->ends.h[0].t > T)
        return answer_until(L, T);
    int64_t nt = 0;
    while (L->ends.n && L->ends.h[0].t <= T) {
        if (nt == L->targets_cap) {
            int64_t c = L->targets_cap ? 2 * L->targets_cap : 1024;
            int64_t *p = realloc(L->targets_buf, (size_t)c * sizeof(int64_t));
            if (!p)
                return -1;
            L->targets_buf = p;
            L->targets_cap = c;
        }
        L->targets_buf[nt++] = heap_pop(&L->ends).ref;
    }
    int64_t *tg = L->targets_buf;
    double t_start = INFINITY;
    for (int64_t i = 0; i < nt; i++) {
        /* its verdict stands alone (a target that nothing overlaps or cuts is decoded wherever it locked a
           path, which the SimPy engine decides apart as "alone") */
        rec_t *r = &L->rec[tg[i]];
        decode_one(L, tg[i]);
        if (r->start < t_start)
            t_start = r->start;
        r->resolved = 1;
        if (r->status == F_DELIVERED) {
            hitem it = {r->answer_t, L->n_decoded++, tg[i], 0};
            if (heap_push(&L->answers, it))
                return -1;
        }
        if (!L->offline && rx1_push(L, L->rec[tg[i]].start + L->rec[tg[i]].air + L->in->rx1_delay, L->rec[tg[i]].node, tg[i]))
            return -1;
    }
    /* forget gateway transmissions and downlinks that ended long before T */
    for (int64_t g = 0; g < L->in->n_gw; g++) {
        ivl_t *v = &L->gw_tx[g];
        if (v->n > TX_TRIM)
            ivl_cut(v, bisect_right(v->e, v->n, T - TX_KEEP_S), 0);
    }
    if (L->dls.n > TX_TRIM)
        ivl_cut(&L->dls, bisect_right(L->dls.s, L->dls.n, T - TX_KEEP_S), 1);
    if (trim_arrived(L, t_start))
        return -1;
    for (int64_t i = 0; i < nt; i++)
        if (rec_release_if_done(L, tg[i]))
            return -1;
    return answer_until(L, T);
}

/* ------------------------------------------------------------------ downlink interference */
static int downlink_survives(loop_t *L, int64_t k, const rec_t *r)
{
    const loop_in *in = L->in;
    double t0 = r->dl_t0, air = r->dl_air, freq = r->dl_freq, end = t0 + air;
    int64_t g = r->dl_g, sf = r->dl_sf;
    double base = in->gw_tx_power_dbm - in->max_power_dbm;
    const double *power = in->power_dbm + k * in->n_gw;
    double energy[6] = {0, 0, 0, 0, 0, 0};
    const ivl_t *v = &L->dls;
    for (int64_t j = bisect_left(v->s, v->n, end) - 1; j >= 0 && v->s[j] > t0 - L->max_dl_air; j--) {
        double s2 = v->s[j], e2 = v->e[j];
        if (v->f[j] == freq && e2 > t0 && !(s2 == t0 && v->g[j] == g)) {
            double ov = (end < e2 ? end : e2) - (t0 > s2 ? t0 : s2);
            energy[v->sf[j] - 7] += pow(10.0, (power[v->g[j]] + base) / 10.0) * ov;
        }
    }
    int any = 0;
    for (int s = 0; s < 6; s++)
        any |= energy[s] != 0.0;
    if (!any)
        return 1;
    int64_t own = sf - 7;
    /* the capture test as _destroyed, with the inter-SF slots of this SF */
    return !destroyed(L, energy[own], energy, own, pow(10.0, (power[g] + base) / 10.0) * air);
}

/* ------------------------------------------------------------------ the node process */
static int schedule(loop_t *L, double t, int64_t k)
{
    hitem it = {t, L->next_seq++, k, 0};
    return heap_push(&L->events, it);
}

static double retransmit_timeout(loop_t *L)
{
    return L->in->timeout_low + L->in->timeout_range * pcg_double(&L->timeouts);
}

static void next_uplink(loop_t *L, node_t *st, int *ack_req)
{
    const loop_in *in = L->in;
    int64_t c = st->bo_cnt, over = c - in->ack_limit;
    if (over >= in->ack_delay && over % in->ack_delay == 0) {
        int64_t step = over / in->ack_delay;
        if (step == 1)
            st->bo_txi = 0;
        else if (st->bo_dr > in->default_dr)
            st->bo_dr -= 1;
        else
            st->bo_nb = 1;
    }
    st->sf = in->dr_sf[st->bo_dr];
    st->tx_index = st->bo_txi;
    st->nb_trans = st->bo_nb;
    *ack_req = c >= in->ack_limit;
    st->bo_cnt = c + 1;
}

static int64_t n_frames_at(const loop_in *in, int64_t app, int64_t sf, int64_t *per_frame, int *split)
{
    int64_t cap = in->max_payload[sf];
    if (app <= cap) {
        *split = 0;
        *per_frame = cap;
        return 1;
    }
    int64_t per = cap - in->frag_header;
    if (per <= 0)
        return -1;
    *split = 1;
    *per_frame = per;
    return (app + per - 1) / per;
}

static int64_t frame_phy(const loop_in *in, int64_t app, int64_t j, int64_t n, int64_t per, int split)
{
    if (!split)
        return app + in->overhead;
    int64_t data = j == n - 1 ? app - j * per : per;
    return data + in->frag_header + in->overhead;
}

static int64_t announce(loop_t *L, int64_t k, node_t *st, double t, int64_t c)
{
    int64_t slot = rec_alloc(L);
    if (slot < 0)
        return -1;
    rec_t *r = &L->rec[slot];
    memset(r, 0, sizeof(*r));
    r->start = t;
    r->air = st->air;
    r->off = st->off;
    r->aid = L->next_aid++;
    r->node = (int32_t)k;
    r->ch = (int16_t)c;
    r->sf = (int8_t)st->sf;
    r->txi = (int8_t)st->tx_index;
    r->status = -1;
    r->gw = -1;
    r->dl_g = -1;
    r->afate = (int8_t)L->in->fate_bs;
    r->confirmed = (int8_t)L->in->confirmed;
    r->ackreq = (int8_t)st->ack_req;
    r->ans = (int8_t)st->ans;
    hitem a = {t, r->aid, slot, k}; /* kind: the node (to fetch its row ahead) */
    if (heap_push(&L->arrivals, a)) /* its end goes into L->ends when it arrives (arrive_next) */
        return -1;
    if (st->air > L->max_air)
        L->max_air = st->air;
    L->out->announced++;
    return slot;
}

/* The next batch fed with messages of node k after its current one: 0 and the node on its first message, or 1
   (none yet: the node's batch is then the last fed). */
static int next_batch(loop_t *L, int64_t k, node_t *st)
{
    for (int64_t b = st->batch + 1; b < L->n_batches; b++) {
        const batch_t *B = &L->batches[b];
        st->batch = b;
        if (B->lo[k] < B->lo[k + 1]) {
            st->msg = B->base + B->lo[k];
            st->hi = B->base + B->lo[k + 1];
            return 0;
        }
    }
    return 1;
}

/* Runs node k until it waits (returns 0 with the node waiting for an event or for messages) or fails (-1). */
static int run_node(loop_t *L, int64_t k)
{
    const loop_in *in = L->in;
    node_t *st = &L->nodes[k];
    double *band_free = L->band_free + k * in->n_bands;
    int64_t N = in->n_nodes;
    for (;;) {
        switch (st->phase) {
        case P_MSG: {
            if (st->msg >= st->hi && next_batch(L, k, st)) {
                st->phase = P_WAIT;
                return 0;
            }
            int64_t msg = st->msg;
            {
                const batch_t *B = &L->batches[st->batch];
                int64_t i = msg - B->base;
                st->ready = B->ready[i];
                st->app = B->app_bytes[i];
                st->kind = B->kind[i];
                st->window = B->window[i];
            }
            st->ack_req = 0;
            if (in->adr)
                next_uplink(L, st, &st->ack_req);
            int64_t per = 0;
            int split = 0;
            st->nfrag = n_frames_at(in, st->app, st->sf, &per, &split);
            st->per = per;
            st->split = split;
            if (st->nfrag < 0) {
                L->out->error = 2;
                L->out->error_sf = st->sf;
                return -1;
            }
            double min_bf = band_free[0];
            for (int64_t b = 1; b < in->n_bands; b++)
                if (band_free[b] < min_bf)
                    min_bf = band_free[b];
            if (in->drop && !(st->ready >= st->node_free && st->ready >= min_bf)) {
                for (int64_t j = 0; j < st->nfrag; j++) {
                    int64_t phy = frame_phy(in, st->app, j, st->nfrag, per, split);
                    if (add_row(L, k, msg, j, phy, st->sf, NAN, 1, 0, -1, 0.0, 0.0, 0.0, in->fate_dc, -1, st->tx_index))
                        return -1;
                }
                st->msg++;
                continue;
            }
            double power_dbm = in->max_power_dbm - 2.0 * (double)st->tx_index;
            st->off = power_dbm - in->max_power_dbm;
            st->j = 0;
            st->phase = P_FRAME;
            continue;
        }
        case P_FRAME: {
            if (st->j >= st->nfrag) {
                st->msg++;
                st->phase = P_MSG;
                continue;
            }
            int64_t phy = frame_phy(in, st->app, st->j, st->nfrag, st->per, st->split);
            if (st->ans_pending) {
                phy += in->ans_bytes;
                st->ans = 1;
                st->ans_pending = 0;
            } else
                st->ans = 0;
            if (phy >= in->phy_cap) {
                L->out->error = 3;
                return -1;
            }
            st->phy = phy;
            st->air = in->air_tab[st->sf * in->phy_cap + phy];
            st->rx_done = in->rx_done_tab[st->sf * in->phy_cap + phy];
            st->attempt_ready = st->ready;
            st->attempts = 0;
            st->first_start = NAN;
            st->first_ch = -1;
            st->tx_s = st->rx_s = 0.0;
            st->delivered_end = NAN;
            st->last_end = NAN;
            st->best_rank = -1;
            st->gw_of = -1;
            st->phase = P_ATTEMPT;
            continue;
        }
        case P_ATTEMPT: {
            double t = st->attempt_ready;
            if (st->node_free > t)
                t = st->node_free;
            double mn = band_free[0], mx = band_free[0];
            for (int64_t b = 1; b < in->n_bands; b++) {
                if (band_free[b] < mn)
                    mn = band_free[b];
                if (band_free[b] > mx)
                    mx = band_free[b];
            }
            if (mn > t)
                t = mn;
            double u;
            if (st->attempts == 0)
                u = keyed_uniform(in->salt, k, st->kind, st->window, st->ready, st->j);
            else
                u = pcg_double(&L->retx);
            int64_t c, n_ch = in->n_ch;
            if (mx <= t) {
                c = (int64_t)(u * (double)n_ch);
                if (c > n_ch - 1)
                    c = n_ch - 1;
            } else {
                int64_t n_open = 0;
                for (int64_t q = 0; q < n_ch; q++)
                    n_open += band_free[in->band_of[q]] <= t;
                int64_t pick = (int64_t)(u * (double)n_open);
                if (pick > n_open - 1)
                    pick = n_open - 1;
                c = -1;
                for (int64_t q = 0; q < n_ch; q++)
                    if (band_free[in->band_of[q]] <= t && pick-- == 0) {
                        c = q;
                        break;
                    }
            }
            int64_t b = in->band_of[c];
            band_free[b] = t + st->air / in->band_dc[b];
            st->node_free = t + st->rx_done;
            if (st->attempts == 0) {
                st->first_start = t;
                st->first_ch = c;
            }
            if (t >= in->horizon[k]) {
                if (st->attempts == 0)
                    st->attempts = 1;
                goto frame_end;
            }
            st->attempts++;
            int64_t slot = announce(L, k, st, t, c);
            if (slot < 0)
                return -1;
            st->slot = slot;
            st->end = t + st->air;
            st->last_end = st->end;
            st->tx_s += st->air;
            st->phase = P_RX1;
            if (L->offline)
                continue;
            return 0; /* woken at RX1, once the network has decided (the queue of RX1 openings) */
        }
        case P_RX1:
        case P_RX2: {
            rec_t *r = &L->rec[st->slot];
            if (r->status == -1) { /* never decided: cannot happen after the final resolution */
                L->out->error = 4;
                return -1;
            }
            if (st->phase == P_RX1 && r->status == F_DELIVERED && !L->offline &&
                (r->answered ? r->dl_window == 2 : r->answer_t <= st->end + in->rx2_delay)) {
                /* nothing in RX1, and the network sent its answer for RX2 or answers before RX2 opens:
                   listen in RX2 */
                st->phase = P_RX2;
                hitem it = {st->end + in->rx2_delay, r->aid, k, st->slot};
                return heap_push(&L->rx2_waits, it);
            }
            if (r->status == F_DELIVERED) {
                if (isnan(st->delivered_end)) {
                    st->delivered_end = st->end;
                    st->gw_of = r->gw;
                }
            } else {
                int64_t rk = fate_rank(in, r->status);
                if (rk > st->best_rank)
                    st->best_rank = rk;
            }
            st->got = r->dl_window != 0 && r->dl_received;
            if (st->got && in->dl_interference) {
                st->phase = P_DL;
                if (L->offline)
                    continue;
                double t = r->dl_t0 + r->dl_air;
                return schedule(L, L->now + (t - L->now > 0.0 ? t - L->now : 0.0), k);
            }
            goto react;
        }
        case P_DL:
            goto react;
        default:
            return -1;
        }
    react: {
        rec_t *r = &L->rec[st->slot];
        int lost = 0;
        if (st->got && in->dl_interference)
            lost = !downlink_survives(L, k, r);
        double win_rx1 = in->rx1_win[st->sf], win_rx2 = in->rx2_win;
        int acked;
        if (st->got) {
            int window = r->dl_window;
            acked = r->confirmed;
            int has_cmd = r->dl_has_cmd;
            if (lost) {
                L->out->stats[6 * N + k] += 1; /* downlinks_interfered */
                acked = 0;
                has_cmd = 0;
            } else {
                L->out->stats[1 * N + k] += 1; /* downlinks_received */
                L->out->stats[5 * N + k] += r->dl_app;
            }
            if (window == 1) {
                st->rx_s += r->dl_air;
                st->node_free = st->end + in->rx1_delay + r->dl_air;
            } else {
                st->rx_s += win_rx1 + r->dl_air;
                st->node_free = st->end + in->rx2_delay + r->dl_air;
            }
            if (in->adr && !lost)
                st->bo_cnt = 0;
            if (has_cmd) {
                st->bo_dr = r->dl_cmd_dr;
                st->bo_txi = r->dl_cmd_idx;
                st->ans_pending = 1;
            }
            if (acked)
                L->out->stats[2 * N + k] += 1; /* acks_received */
        } else {
            st->rx_s += win_rx1 + win_rx2;
            acked = 0;
        }
        int got_ok = st->got && !lost;
        double end = st->end;
        r->consumed = 1;
        if (rec_release_if_done(L, st->slot))
            return -1;
        if (in->confirmed) {
            if (acked || st->attempts >= st->nb_trans)
                goto frame_end;
            st->attempt_ready = end + in->rx2_delay + retransmit_timeout(L);
        } else {
            if (got_ok || st->attempts >= st->nb_trans)
                goto frame_end;
            st->attempt_ready = st->ready;
        }
        st->phase = P_ATTEMPT;
        continue;
    }
    frame_end: {
        int64_t fate, attempts = st->attempts;
        double busy, tx_s = st->tx_s, rx_s = st->rx_s;
        if (attempts && !isnan(st->last_end) && st->first_start < in->horizon[k]) {
            if (!isnan(st->delivered_end)) {
                fate = F_DELIVERED;
                busy = st->delivered_end == st->first_start + st->air ? st->air : st->delivered_end - st->first_start;
            } else {
                fate = st->best_rank >= 0 ? rank_fate(in, st->best_rank) : in->fate_bs;
                busy = attempts == 1 ? st->air : st->last_end - st->first_start;
            }
        } else {
            fate = F_DELIVERED;
            busy = st->air;
            attempts = 1;
            tx_s = st->air;
            rx_s = in->rx1_win[st->sf] + in->rx2_win;
        }
        if (add_row(L, k, st->msg, st->j, st->phy, st->sf, st->first_start, 0, attempts, st->first_ch, tx_s, rx_s, busy,
                    fate, st->gw_of, st->tx_index))
            return -1;
        st->j++;
        st->phase = P_FRAME;
        continue;
    }
    }
}

/* ------------------------------------------------------------------ the run */
static void free_batch(batch_t *B)
{
    free(B->lo);
    free(B->ready);
    free(B->app_bytes);
    free(B->kind);
    free(B->window);
    memset(B, 0, sizeof(*B));
}

static void free_loop(loop_t *L)
{
    free(L->nodes);
    free(L->band_free);
    free(L->rec);
    free(L->free_slots);
    free(L->arrivals.h);
    free(L->ends.h);
    free(L->events.h);
    free(L->answers.h);
    free(L->rx2_waits.h);
    free(L->rx1_t);
    free(L->rx1_node);
    free(L->rx1_slot);
    if (L->arr)
        for (int64_t i = 0; i < L->in->n_ch * 6; i++) {
            free(L->arr[i].e);
        }
    free(L->arr);
    for (int g = 0; g < MAX_GW; g++) {
        free(L->gw_tx[g].s);
        free(L->gw_tx[g].e);
    }
    free(L->gw_band_free);
    free(L->held);
    free(L->dls.s);
    free(L->dls.e);
    free(L->dls.f);
    free(L->dls.sf);
    free(L->dls.g);
    free(L->hist);
    free(L->hist_n);
    free(L->hist_head);
    free(L->pend_has);
    free(L->pend_dr);
    free(L->pend_idx);
    free(L->app_head);
    free(L->ch_arrivals);
    free(L->targets_buf);
    for (int64_t b = 0; b < L->n_batches; b++)
        free_batch(&L->batches[b]);
    free(L->batches);
    free(L);
}

/* A loop over `in` writing into `out` (which the caller keeps until iotsim_lorawan_loop_free), no messages
   yet; NULL with out->error set when it cannot start (1: out of memory, 5: too many gateways). */
loop_t *iotsim_lorawan_loop_open(const loop_in *in, loop_out *out)
{
    int64_t N = in->n_nodes, G = in->n_gw, B = in->n_bands;
    if (G > MAX_GW) {
        out->error = 5;
        return NULL;
    }
    loop_t *L = calloc(1, sizeof(loop_t));
    if (!L) {
        out->error = 1;
        return NULL;
    }
    L->in = in;
    L->out = out;
    out->rows.free_head = -1;
    L->nodes = calloc((size_t)(N ? N : 1), sizeof(node_t));
    L->band_free = malloc((size_t)(N * B + 1) * sizeof(double));
    L->gw_band_free = malloc((size_t)(G * in->n_gw_bands + 1) * sizeof(double));
    L->held = malloc((size_t)(G * (in->paths > 0 ? in->paths : 1) + 1) * sizeof(double));
    L->hist = calloc((size_t)(N * HIST + 1), sizeof(double));
    L->hist_n = calloc((size_t)(N + 1), sizeof(int64_t));
    L->hist_head = calloc((size_t)(N + 1), sizeof(int64_t));
    L->pend_has = calloc((size_t)(N + 1), sizeof(int8_t));
    L->pend_dr = calloc((size_t)(N + 1), sizeof(int64_t));
    L->pend_idx = calloc((size_t)(N + 1), sizeof(int64_t));
    L->app_head = malloc((size_t)(N + 1) * sizeof(int64_t));
    out->rows.head = malloc((size_t)(N + 1) * sizeof(int64_t));
    out->rows.tail = malloc((size_t)(N + 1) * sizeof(int64_t));
    L->arr = calloc((size_t)(in->n_ch * 6), sizeof(alist_t));
    L->ch_arrivals = calloc((size_t)in->n_ch, sizeof(int64_t));
    if (!out->rows.head || !out->rows.tail || !L->arr || !L->ch_arrivals || !L->nodes || !L->band_free ||
        !L->gw_band_free || !L->held || !L->hist || !L->hist_n || !L->hist_head || !L->pend_has || !L->pend_dr ||
        !L->pend_idx || !L->app_head)
        goto fail;
    for (int64_t k = 0; k < N; k++)
        out->rows.head[k] = out->rows.tail[k] = -1;
    for (int64_t i = 0; i < N * B; i++)
        L->band_free[i] = -INFINITY;
    for (int64_t i = 0; i < G * in->n_gw_bands; i++)
        L->gw_band_free[i] = -INFINITY;
    for (int64_t g = 0; g < G; g++) {
        L->gw_busy_until[g] = -INFINITY;
        for (int64_t i = 0; i < in->n_sched; i++) {
            if (in->sched_gw[i] >= 0 && in->sched_gw[i] != g)
                continue;
            if (ivl_insert(&L->gw_tx[g], in->sched_start[i], in->sched_end[i], 0, 0, 0, 0))
                goto fail;
            L->gw_busy_until[g] = in->sched_end[i]; /* its own are disjoint and in order: the last ends last */
        }
    }
    for (int64_t k = 0; k < N; k++)
        L->app_head[k] = in->app_off[k];
    L->max_air = 0.0;
    L->max_dl_air = 0.0;
    L->retx.state = ((unsigned __int128)in->rng_retx[0] << 64) | in->rng_retx[1];
    L->retx.inc = ((unsigned __int128)in->rng_retx[2] << 64) | in->rng_retx[3];
    L->timeouts.state = ((unsigned __int128)in->rng_timeouts[0] << 64) | in->rng_timeouts[1];
    L->timeouts.inc = ((unsigned __int128)in->rng_timeouts[2] << 64) | in->rng_timeouts[3];
    for (int64_t k = 0; k < N; k++) {
        node_t *st = &L->nodes[k];
        st->batch = -1;
        st->sf = in->sf0[k];
        st->tx_index = 0;
        st->nb_trans = in->nb_trans;
        st->node_free = -INFINITY;
        st->bo_dr = in->initial_dr[k];
        st->bo_txi = 0;
        st->bo_nb = in->nb_trans;
        st->bo_cnt = 0;
        st->phase = P_WAIT;
    }
    return L;
fail:
    out->error = 1;
    free_loop(L);
    return NULL;
}

static void *copy_of(const void *src, size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (p && bytes)
        memcpy(p, src, bytes);
    return p;
}

/* The next batch of `n` messages, ordered by node (lo: [n_nodes + 1] per node offsets; each message's ready
   time, application bytes, kind and window), copied. The nodes waiting for messages that have some in it
   resume now, in node order. Returns 0, or out->error (1: out of memory; 2, 3: as iotsim_lorawan_loop_advance). */
int64_t iotsim_lorawan_loop_feed(loop_t *L, int64_t n, const int64_t *lo, const double *ready, const int64_t *app_bytes,
                                 const int64_t *kind, const int64_t *window)
{
    int64_t N = L->in->n_nodes;
    if (L->n_batches == L->cap_batches) {
        int64_t c = L->cap_batches ? 2 * L->cap_batches : 64;
        batch_t *p = realloc(L->batches, (size_t)c * sizeof(batch_t));
        if (!p)
            goto fail;
        L->batches = p;
        L->cap_batches = c;
    }
    batch_t *B = &L->batches[L->n_batches];
    memset(B, 0, sizeof(*B));
    B->base = L->next_base;
    B->n = n;
    B->lo = copy_of(lo, (size_t)(N + 1) * sizeof(int64_t));
    B->ready = copy_of(ready, (size_t)n * sizeof(double));
    B->app_bytes = copy_of(app_bytes, (size_t)n * sizeof(int64_t));
    B->kind = copy_of(kind, (size_t)n * sizeof(int64_t));
    B->window = copy_of(window, (size_t)n * sizeof(int64_t));
    L->n_batches++;
    if (!B->lo || !B->ready || !B->app_bytes || !B->kind || !B->window)
        goto fail;
    L->next_base += n;
    for (int64_t k = 0; k < N; k++) {
        node_t *st = &L->nodes[k];
        if (st->phase == P_WAIT && !next_batch(L, k, st)) {
            st->phase = P_MSG;
            if (run_node(L, k))
                goto fail;
        }
    }
    return 0;
fail:
    if (!L->out->error)
        L->out->error = 1;
    return L->out->error;
}

/* Processes the events before min(t_end, duration) (t_end past the duration: the end of the run; see the
   file's text). Returns 0, or out->error (1: out of memory, 2: no room for data at out->error_sf, 3: a frame
   larger than the airtime table, 4: an attempt never decided). */
int64_t iotsim_lorawan_loop_advance(loop_t *L, double t_end)
{
    const loop_in *in = L->in;
    int64_t N = in->n_nodes;
    int final = !(t_end < in->duration);
    double until = final ? in->duration : t_end;
    for (;;) {
        /* the next RX1 opening: of a decided uplink (queue) or of the earliest-ending undecided one */
        double t_rx1 = L->rx1_head < L->rx1_n ? L->rx1_t[L->rx1_head] : INFINITY;
        double t_ev = L->events.n ? L->events.h[0].t : INFINITY;
        double t_rx2 = L->rx2_waits.n ? L->rx2_waits.h[0].t : INFINITY;
        double t_next = t_ev < t_rx2 ? t_ev : t_rx2;
        if (t_rx1 < t_next)
            t_next = t_rx1;
        /* attempts not arrived yet that could end (and open RX1) before the next event arrive now: they
           start before it, so every one of them was announced, and every downlink that could cut them
           at their start was decided at an RX opening already passed. Short of the end, only those that
           start before `until` (the next batch's may start at it) */
        for (;;) {
            double t_end1 = L->ends.n ? L->ends.h[0].t + in->rx1_delay : INFINITY;
            double bound = t_end1 < t_next ? t_end1 : t_next;
            if (!final && until + in->rx1_delay < bound)
                bound = until + in->rx1_delay;
            if (!(L->arrivals.n && L->arrivals.h[0].t + in->rx1_delay < bound))
                break;
            if (arrive_next(L))
                goto fail;
        }
        if (L->ends.n && L->ends.h[0].t + in->rx1_delay < t_rx1)
            t_rx1 = L->ends.h[0].t + in->rx1_delay;
        if (t_rx2 < t_rx1 && t_rx2 <= t_ev) { /* a node listening in RX2 for an answer still to come */
            if (!(t_rx2 < until))
                break;
            L->now = t_rx2;
            if (resolve_until(L, t_rx2))
                goto fail;
            if (run_node(L, heap_pop(&L->rx2_waits).ref))
                goto fail;
        } else if (t_rx1 <= t_ev) {
            if (!(t_rx1 < until))
                break;
            L->now = t_rx1;
            if (resolve_until(L, t_rx1))
                goto fail;
            int64_t k = L->rx1_node[L->rx1_head++];
            if (L->rx1_head + 3 < L->rx1_n) { /* nodes woken next: their state and their attempt's record */
                __builtin_prefetch(&L->nodes[L->rx1_node[L->rx1_head + 3]]);
                __builtin_prefetch(&L->rec[L->rx1_slot[L->rx1_head + 1]]);
            }
            if (run_node(L, k))
                goto fail;
        } else {
            if (!(t_ev < until))
                break;
            hitem ev = heap_pop(&L->events);
            L->now = ev.t;
            if (run_node(L, ev.ref))
                goto fail;
        }
    }
    if (!final)
        return 0;
    /* the end: decide everything, then each node finishes without waiting. First what the run decided by its
       end (the server's answers before the end book their downlinks before any later reception is decided, as
       the SimPy engine's clock runs to the end), then the rest */
    L->offline = 1;
    if (resolve_until(L, in->duration) || resolve_until(L, INFINITY))
        goto fail;
    for (int64_t k = 0; k < N; k++)
        if (L->nodes[k].phase != P_WAIT && run_node(L, k))
            goto fail;
    return 0;
fail:
    if (!L->out->error)
        L->out->error = 1;
    return L->out->error;
}

/* How many batches (from the first) every node has sent all of: their rows are complete. */
int64_t iotsim_lorawan_loop_finished(const loop_t *L)
{
    int64_t done = L->n_batches;
    for (int64_t k = 0; k < L->in->n_nodes; k++) {
        const node_t *st = &L->nodes[k];
        int64_t f = st->phase == P_WAIT ? st->batch + 1 : st->batch;
        if (f < done)
            done = f;
    }
    return done;
}

/* The rows of the messages of batches n_drained .. upto - 1 (finished): how many there are. */
int64_t iotsim_lorawan_loop_count(const loop_t *L, int64_t upto)
{
    const rows_t *R = &L->out->rows;
    int64_t limit = upto < L->n_batches ? L->batches[upto].base : L->next_base, n = 0;
    for (int64_t k = 0; k < L->in->n_nodes; k++)
        for (int64_t c = R->head[k]; c >= 0; c = chunk_at(R, c)->next) {
            const chunk_t *ck = chunk_at(R, c);
            int64_t q = ck->first;
            while (q < ck->n && ck->r[q].msg < limit)
                q++, n++;
            if (q < ck->n)
                break;
        }
    return n;
}

/* Those rows, by node then message (so in message order), into columns the caller allocated
   (iotsim_lorawan_loop_count entries); their chunks are reused and the batches freed. */
void iotsim_lorawan_loop_drain(loop_t *L, int64_t upto, int64_t *msg, int64_t *frag, int64_t *phy, int64_t *sf,
                               int64_t *attempts, int64_t *tx_index, double *air, double *ready, double *start,
                               double *tx_s, double *rx_s, double *standby, double *busy, int8_t *dropped, int8_t *ch,
                               int8_t *fate, int16_t *gw)
{
    const loop_in *in = L->in;
    rows_t *R = &L->out->rows;
    int64_t limit = upto < L->n_batches ? L->batches[upto].base : L->next_base, i = 0;
    for (int64_t k = 0; k < in->n_nodes; k++) {
        int64_t b = L->n_drained;
        while (R->head[k] >= 0) {
            int64_t c = R->head[k];
            chunk_t *ck = chunk_at(R, c);
            for (; ck->first < ck->n && ck->r[ck->first].msg < limit; ck->first++, i++) {
                const row_t *r = &ck->r[ck->first];
                while (r->msg >= L->batches[b].base + L->batches[b].n)
                    b++;
                msg[i] = r->msg;
                frag[i] = r->frag;
                phy[i] = r->phy;
                sf[i] = r->sf;
                attempts[i] = r->attempts;
                tx_index[i] = r->tx_index;
                air[i] = in->air_tab[r->sf * in->phy_cap + r->phy]; /* as the loop took it */
                ready[i] = L->batches[b].ready[r->msg - L->batches[b].base];
                start[i] = r->start;
                tx_s[i] = r->tx_s;
                rx_s[i] = r->rx_s;
                standby[i] = (double)r->attempts * in->startup[k];
                busy[i] = r->busy;
                dropped[i] = r->dropped;
                ch[i] = r->ch;
                fate[i] = r->fate;
                gw[i] = r->gw;
                R->n--;
            }
            if (ck->first < ck->n || R->tail[k] == c) /* rows of later batches follow; or the node's last chunk */
                break;
            R->head[k] = ck->next; /* drained: reused */
            ck->next = R->free_head;
            R->free_head = c;
        }
    }
    for (; L->n_drained < upto; L->n_drained++)
        free_batch(&L->batches[L->n_drained]);
}

/* Frees the loop and what `out` holds (its rows). */
void iotsim_lorawan_loop_free(loop_t *L, loop_out *out)
{
    if (L)
        free_loop(L);
    rows_t *r = &out->rows;
    for (int64_t i = 0; i < (r->n_chunks + SLAB_CHUNKS - 1) / SLAB_CHUNKS; i++)
        free(r->slabs[i]);
    free(r->slabs);
    free(r->head);
    free(r->tail);
    memset(r, 0, sizeof(*r));
}

/* numpy PCG64 draws, for the test that this file's generator is numpy's */
void iotsim_pcg64_doubles(const uint64_t *state4, int64_t n, double *out)
{
    pcg64 r;
    r.state = ((unsigned __int128)state4[0] << 64) | state4[1];
    r.inc = ((unsigned __int128)state4[2] << 64) | state4[3];
    for (int64_t i = 0; i < n; i++)
        out[i] = pcg_double(&r);
}
