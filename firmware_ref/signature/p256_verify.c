/* ECDSA P-256 signature verification (SEC 1 v2 section 4.1.4) as a "model" for the reference firmware
 * (main.c): the check a node makes of the vendor's signature over an update's SHA-256 digest before it
 * activates the update (MCUboot's image check; the LoRa Alliance FUOTA practice). iotsim.ota.signature
 * builds it, counts the instructions of one verification on the emulated Cortex-M and checks every
 * verdict against Python's `cryptography`.
 *
 * Input (160 bytes, all big-endian): the 32-byte digest e, the public key Q = (x, y) (64 bytes),
 * the signature (r, s) (64 bytes). Output: one byte, 1 if the signature is valid and 0 if not.
 * Rejected: r or s outside [1, n-1]; x or y outside [0, p-1] or Q off the curve (SEC 1 3.2.2.1; the
 * subgroup check nQ = O is implied for P-256, whose cofactor is 1); u1 G + u2 Q the point at infinity;
 * x(u1 G + u2 Q) mod n != r.
 *
 * Clean-room, written from the standards: SEC 1 v2 (2009) 4.1.4 for the algorithm, FIPS 186-4 D.1.2.3
 * and SEC 2 v2 2.4.2 for the curve (p = 2^256 - 2^224 + 2^192 + 2^96 - 1, a = -3, b, G, n), FIPS 186-4
 * D.2.3 for the reduction mod p, Hankerson-Menezes-Vanstone "Guide to Elliptic Curve Cryptography"
 * (2004) algorithm 2.22 for the inverse, 3.2.2 for the Jacobian formulas (a = -3 doubling, 3M + 5S;
 * mixed Jacobian-affine addition, 8M + 3S) and 3.48 (Shamir's trick) for u1 G + u2 Q.
 *
 * Choices, as a plain portable implementation makes them (C99, 32-bit limbs, 64-bit products):
 * - numbers: 8 x uint32_t, least significant limb first, fully reduced after every field operation;
 * - field product mod p: schoolbook 8 x 8 limb product (operand scanning), then the FIPS 186-4 D.2.3
 *   fast reduction (a signed sum of nine 256-bit words, then a few additions or subtractions of p);
 *   squares go through the same product (no dedicated squaring);
 * - inverses mod p and mod n: the binary extended Euclid algorithm (HMV 2.22), not Fermat (a^(p-2)
 *   would take about 380 field products, several times the work);
 * - products mod n (u1 = e w, u2 = r w: four in all): Montgomery multiplication (CIOS) with
 *   R = 2^256 and R^2 mod n as constants;
 * - u1 G + u2 Q: one joint left-to-right double-and-add over the 256 bit pairs with the table
 *   {G, Q, G + Q}, G + Q made affine once (one inverse) so that every addition is a mixed one;
 * - x(R) made affine with one more inverse (the comparison r Z^2 == X mod p would avoid it).
 * An optimized library does better: dedicated squaring, the limb products in assembly (UMAAL on the
 * Cortex-M4) with the reduction fused in, a window over several bits (or a precomputed comb for the
 * fixed G), and no branches on secret data (irrelevant here: a verification's data are public).
 * Nothing here is constant-time; the instruction count depends on the bits of u1, u2 and on the
 * inverses' inputs. No malloc, no library calls beyond memcpy/memset. */
#include <stdint.h>
#include <string.h>

#include "model.h"

#if IOTSIM_INPUT_BYTES != 160 || IOTSIM_OUTPUT_BYTES != 1
#error "p256_verify.c takes 160 input bytes (digest, Qx, Qy, r, s) and gives 1 output byte"
#endif

#define W 8 /* 32-bit limbs of a 256-bit number, least significant first */

/* the curve, FIPS 186-4 D.1.2.3 (also SEC 2 v2 2.4.2) */
static const uint32_t P[W] = {0xffffffff, 0xffffffff, 0xffffffff, 0x00000000,
                              0x00000000, 0x00000000, 0x00000001, 0xffffffff};
static const uint32_t B[W] = {0x27d2604b, 0x3bce3c3e, 0xcc53b0f6, 0x651d06b0,
                              0x769886bc, 0xb3ebbd55, 0xaa3a93e7, 0x5ac635d8};
static const uint32_t GX[W] = {0xd898c296, 0xf4a13945, 0x2deb33a0, 0x77037d81,
                               0x63a440f2, 0xf8bce6e5, 0xe12c4247, 0x6b17d1f2};
static const uint32_t GY[W] = {0x37bf51f5, 0xcbb64068, 0x6b315ece, 0x2bce3357,
                               0x7c0f9e16, 0x8ee7eb4a, 0xfe1a7f9b, 0x4fe342e2};
static const uint32_t N[W] = {0xfc632551, 0xf3b9cac2, 0xa7179e84, 0xbce6faad,
                              0xffffffff, 0xffffffff, 0x00000000, 0xffffffff};
/* Montgomery constants for n: R^2 mod n = 2^512 mod n, and -n^-1 mod 2^32 (both computed from n) */
static const uint32_t RR_N[W] = {0xbe79eea2, 0x83244c95, 0x49bd6fa6, 0x4699799c,
                                 0x2b6bec59, 0x2845b239, 0xf3d95620, 0x66e12d94};
#define N0INV 0xee00bc4fu

typedef struct { uint32_t x[W], y[W], z[W]; } jpoint; /* Jacobian: (X/Z^2, Y/Z^3); Z = 0 is infinity */
typedef struct { uint32_t x[W], y[W]; } apoint;       /* affine */

/* ---- 256-bit integers ------------------------------------------------------------------------ */
static int is_zero(const uint32_t a[W])
{
    uint32_t acc = 0;
    for (int i = 0; i < W; i++)
        acc |= a[i];
    return acc == 0;
}

static int is_one(const uint32_t a[W])
{
    uint32_t acc = a[0] ^ 1u;
    for (int i = 1; i < W; i++)
        acc |= a[i];
    return acc == 0;
}

static int cmp(const uint32_t a[W], const uint32_t b[W]) /* -1, 0, 1 as a <, =, > b */
{
    for (int i = W - 1; i >= 0; i--)
        if (a[i] != b[i])
            return a[i] > b[i] ? 1 : -1;
    return 0;
}

static uint32_t add(uint32_t r[W], const uint32_t a[W], const uint32_t b[W]) /* r = a + b; the carry out */
{
    uint64_t c = 0;
    for (int i = 0; i < W; i++) {
        c += (uint64_t)a[i] + b[i];
        r[i] = (uint32_t)c;
        c >>= 32;
    }
    return (uint32_t)c;
}

static uint32_t sub(uint32_t r[W], const uint32_t a[W], const uint32_t b[W]) /* r = a - b; the borrow out */
{
    uint32_t borrow = 0;
    for (int i = 0; i < W; i++) {
        uint64_t d = (uint64_t)a[i] - b[i] - borrow;
        r[i] = (uint32_t)d;
        borrow = (uint32_t)(d >> 63);
    }
    return borrow;
}

static void shr1(uint32_t a[W], uint32_t top) /* a = (a + top 2^256) / 2 */
{
    for (int i = 0; i < W - 1; i++)
        a[i] = (a[i] >> 1) | (a[i + 1] << 31);
    a[W - 1] = (a[W - 1] >> 1) | (top << 31);
}

static void from_be(uint32_t r[W], const uint8_t *b) /* 32 big-endian bytes */
{
    for (int i = 0; i < W; i++) {
        const uint8_t *q = b + 4 * (W - 1 - i);
        r[i] = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
    }
}

static int bit(const uint32_t a[W], int i) { return (int)((a[i >> 5] >> (i & 31)) & 1u); }

/* ---- arithmetic mod m for an odd m: inverse (binary extended Euclid) ---------------------------- */
static void sub_mod(uint32_t r[W], const uint32_t a[W], const uint32_t b[W], const uint32_t m[W])
{
    if (sub(r, a, b))
        add(r, r, m);
}

static void halve_mod(uint32_t a[W], const uint32_t m[W]) /* a / 2 mod m, a in [0, m) */
{
    uint32_t top = 0;
    if (a[0] & 1u)
        top = add(a, a, m);
    shr1(a, top);
}

/* r = a^-1 mod m for an odd m and 0 < a < m coprime to m (HMV algorithm 2.22). Invariants:
 * x1 a = u and x2 a = v (mod m); u and v shrink until one is 1. */
static void mod_inv(uint32_t r[W], const uint32_t a[W], const uint32_t m[W])
{
    uint32_t u[W], v[W], x1[W], x2[W];
    if (is_zero(a)) { /* no inverse; callers never ask, but never loop forever */
        memset(r, 0, sizeof(x1));
        return;
    }
    memcpy(u, a, sizeof(u));
    memcpy(v, m, sizeof(v));
    memset(x1, 0, sizeof(x1));
    memset(x2, 0, sizeof(x2));
    x1[0] = 1;
    while (!is_one(u) && !is_one(v)) {
        while (!(u[0] & 1u)) {
            shr1(u, 0);
            halve_mod(x1, m);
        }
        while (!(v[0] & 1u)) {
            shr1(v, 0);
            halve_mod(x2, m);
        }
        if (cmp(u, v) >= 0) {
            sub(u, u, v);
            sub_mod(x1, x1, x2, m);
        } else {
            sub(v, v, u);
            sub_mod(x2, x2, x1, m);
        }
    }
    memcpy(r, is_one(u) ? x1 : x2, sizeof(x1));
}

/* ---- arithmetic mod n: Montgomery product (CIOS) ---------------------------------------------- */
static void mont_mul_n(uint32_t r[W], const uint32_t a[W], const uint32_t b[W]) /* a b R^-1 mod n, a b < n R */
{
    uint32_t t[W + 2];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < W; i++) {
        uint64_t c = 0;
        for (int j = 0; j < W; j++) {
            c = (uint64_t)a[j] * b[i] + t[j] + (c >> 32);
            t[j] = (uint32_t)c;
        }
        c = (uint64_t)t[W] + (c >> 32);
        t[W] = (uint32_t)c;
        t[W + 1] = (uint32_t)(c >> 32);
        uint32_t q = t[0] * N0INV; /* makes t + q n divisible by 2^32 */
        c = (uint64_t)q * N[0] + t[0];
        for (int j = 1; j < W; j++) {
            c = (uint64_t)q * N[j] + t[j] + (c >> 32);
            t[j - 1] = (uint32_t)c;
        }
        c = (uint64_t)t[W] + (c >> 32);
        t[W - 1] = (uint32_t)c;
        t[W] = t[W + 1] + (uint32_t)(c >> 32);
    }
    if (t[W] || cmp(t, N) >= 0) /* t < 2n */
        sub(t, t, N);
    memcpy(r, t, W * sizeof(uint32_t));
}

static void mul_mod_n(uint32_t r[W], const uint32_t a[W], const uint32_t b[W]) /* a b mod n, b < n */
{
    uint32_t t[W];
    mont_mul_n(t, a, b);     /* a b R^-1 */
    mont_mul_n(r, t, RR_N);  /* a b */
}

/* ---- the field mod p ------------------------------------------------------------------------- */
static void fp_add(uint32_t r[W], const uint32_t a[W], const uint32_t b[W]) /* a, b < p */
{
    if (add(r, a, b) || cmp(r, P) >= 0)
        sub(r, r, P);
}

static void fp_sub(uint32_t r[W], const uint32_t a[W], const uint32_t b[W]) /* a, b < p */
{
    if (sub(r, a, b))
        add(r, r, P);
}

/* r = c mod p for a 512-bit c (16 limbs), FIPS 186-4 D.2.3: with c = (c15, ..., c0) in 32-bit words,
 * c = s1 + 2 s2 + 2 s3 + s4 + s5 - s6 - s7 - s8 - s9 (mod p); the sum is formed word by word in signed
 * 64-bit accumulators, its carries propagated, and the result brought into [0, p) by adding or
 * subtracting p a few times. (>> on a negative int64_t: arithmetic in gcc and clang, implementation-
 * defined in C99.) */
static void fp_reduce(uint32_t r[W], const uint32_t c[2 * W])
{
    const int64_t c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], c4 = c[4], c5 = c[5], c6 = c[6], c7 = c[7];
    const int64_t c8 = c[8], c9 = c[9], c10 = c[10], c11 = c[11], c12 = c[12], c13 = c[13], c14 = c[14],
                  c15 = c[15];
    int64_t w[W];
    w[0] = c0 + c8 + c9 - c11 - c12 - c13 - c14;
    w[1] = c1 + c9 + c10 - c12 - c13 - c14 - c15;
    w[2] = c2 + c10 + c11 - c13 - c14 - c15;
    w[3] = c3 + 2 * (c11 + c12) + c13 - c15 - c8 - c9;
    w[4] = c4 + 2 * (c12 + c13) + c14 - c9 - c10;
    w[5] = c5 + 2 * (c13 + c14) + c15 - c10 - c11;
    w[6] = c6 + 3 * c14 + 2 * c15 + c13 - c8 - c9;
    w[7] = c7 + 3 * c15 + c8 - c10 - c11 - c12 - c13;
    int64_t carry = 0;
    for (int i = 0; i < W; i++) {
        carry += w[i];
        r[i] = (uint32_t)carry;
        carry >>= 32;
    }
    /* the value is r + carry 2^256 with -4 <= carry <= 6 */
    while (carry < 0)
        carry += add(r, r, P);
    while (carry > 0 || cmp(r, P) >= 0)
        carry -= sub(r, r, P);
}

static void fp_mul(uint32_t r[W], const uint32_t a[W], const uint32_t b[W]) /* r may alias a or b */
{
    uint32_t c[2 * W];
    memset(c, 0, sizeof(c));
    for (int i = 0; i < W; i++) {
        uint64_t t = 0;
        for (int j = 0; j < W; j++) {
            t = (uint64_t)a[i] * b[j] + c[i + j] + (t >> 32);
            c[i + j] = (uint32_t)t;
        }
        c[i + W] = (uint32_t)(t >> 32);
    }
    fp_reduce(r, c);
}

static void fp_sqr(uint32_t r[W], const uint32_t a[W]) { fp_mul(r, a, a); }

/* ---- points ------------------------------------------------------------------------------------ */
/* r = 2 q (HMV 3.2.2, a = -3: 3M + 5S); r may be q */
static void point_double(jpoint *r, const jpoint *q)
{
    uint32_t delta[W], gamma[W], beta[W], alpha[W], t[W], u[W];
    if (is_zero(q->z)) { /* 2 O = O */
        if (r != q)
            *r = *q;
        return;
    }
    fp_sqr(delta, q->z);
    fp_sqr(gamma, q->y);
    fp_mul(beta, q->x, gamma);
    fp_sub(t, q->x, delta);
    fp_add(u, q->x, delta);
    fp_mul(alpha, t, u);
    fp_add(t, alpha, alpha);
    fp_add(alpha, t, alpha); /* alpha = 3 (X - Z^2)(X + Z^2) */
    fp_add(t, q->y, q->z);
    fp_sqr(t, t);
    fp_sub(t, t, gamma);
    fp_sub(r->z, t, delta); /* Z3 = (Y + Z)^2 - Y^2 - Z^2 = 2 Y Z; q is not read after this */
    fp_add(beta, beta, beta);
    fp_add(beta, beta, beta); /* 4 beta = 4 X Y^2 */
    fp_sqr(t, alpha);
    fp_sub(t, t, beta);
    fp_sub(r->x, t, beta); /* X3 = alpha^2 - 8 beta */
    fp_sub(t, beta, r->x);
    fp_mul(t, alpha, t);
    fp_sqr(gamma, gamma);
    fp_add(gamma, gamma, gamma);
    fp_add(gamma, gamma, gamma);
    fp_add(gamma, gamma, gamma); /* 8 Y^4 */
    fp_sub(r->y, t, gamma);      /* Y3 = alpha (4 beta - X3) - 8 Y^4 */
}

/* r = p + q for a Jacobian p and an affine q (HMV 3.2.2 mixed addition: 8M + 3S); r may be p */
static void point_add_affine(jpoint *r, const jpoint *p, const apoint *q)
{
    uint32_t zz[W], u2[W], s2[W], h[W], rr[W], hh[W], hhh[W], v[W], t[W];
    if (is_zero(p->z)) { /* O + q = q */
        memcpy(r->x, q->x, sizeof(r->x));
        memcpy(r->y, q->y, sizeof(r->y));
        memset(r->z, 0, sizeof(r->z));
        r->z[0] = 1;
        return;
    }
    fp_sqr(zz, p->z);
    fp_mul(u2, q->x, zz);
    fp_mul(s2, q->y, zz);
    fp_mul(s2, s2, p->z);
    fp_sub(h, u2, p->x);  /* H = X2 Z1^2 - X1 */
    fp_sub(rr, s2, p->y); /* R = Y2 Z1^3 - Y1 */
    if (is_zero(h)) {
        if (is_zero(rr))
            point_double(r, p); /* p = q */
        else
            memset(r->z, 0, sizeof(r->z)); /* p = -q: O */
        return;
    }
    fp_sqr(hh, h);
    fp_mul(hhh, h, hh);
    fp_mul(v, p->x, hh);
    fp_mul(s2, p->y, hhh); /* Y1 H^3 */
    fp_mul(r->z, p->z, h); /* Z3 = Z1 H */
    fp_sqr(t, rr);
    fp_sub(t, t, hhh);
    fp_sub(t, t, v);
    fp_sub(r->x, t, v); /* X3 = R^2 - H^3 - 2 X1 H^2 */
    fp_sub(t, v, r->x);
    fp_mul(t, rr, t);
    fp_sub(r->y, t, s2); /* Y3 = R (X1 H^2 - X3) - Y1 H^3 */
}

static int on_curve(const apoint *q) /* x, y in [0, p) and y^2 = x^3 - 3 x + b */
{
    static const uint32_t THREE[W] = {3};
    uint32_t t[W], yy[W];
    if (cmp(q->x, P) >= 0 || cmp(q->y, P) >= 0)
        return 0;
    fp_sqr(t, q->x);
    fp_sub(t, t, THREE);
    fp_mul(t, t, q->x);
    fp_add(t, t, B);
    fp_sqr(yy, q->y);
    return cmp(t, yy) == 0;
}

/* ---- ECDSA verification, SEC 1 v2 4.1.4 ------------------------------------------------------- */
static int p256_verify(const uint8_t digest[32], const uint8_t key[64], const uint8_t sig[64])
{
    uint32_t e[W], r[W], s[W], w[W], u1[W], u2[W], zi[W], x[W];
    apoint q, g, gq;
    jpoint acc;

    from_be(r, sig);
    from_be(s, sig + 32);
    if (is_zero(r) || cmp(r, N) >= 0 || is_zero(s) || cmp(s, N) >= 0) /* step 1 */
        return 0;
    from_be(q.x, key);
    from_be(q.y, key + 32);
    if (!on_curve(&q)) /* the key itself (SEC 1 3.2.2.1) */
        return 0;
    from_be(e, digest); /* steps 2-3: e = the digest as an integer (256 bits: all of it) */
    if (cmp(e, N) >= 0)
        sub(e, e, N); /* e < 2^256 < 2 n */
    mod_inv(w, s, N); /* step 4 */
    mul_mod_n(u1, e, w);
    mul_mod_n(u2, r, w);

    /* step 5: u1 G + u2 Q, the bits of u1 and u2 together, table {G, Q, G + Q} */
    memcpy(g.x, GX, sizeof(g.x));
    memcpy(g.y, GY, sizeof(g.y));
    memcpy(acc.x, GX, sizeof(acc.x));
    memcpy(acc.y, GY, sizeof(acc.y));
    memset(acc.z, 0, sizeof(acc.z));
    acc.z[0] = 1;
    point_add_affine(&acc, &acc, &q);
    int gq_infinite = is_zero(acc.z); /* Q = -G */
    if (!gq_infinite) {
        mod_inv(zi, acc.z, P);
        fp_sqr(w, zi);
        fp_mul(gq.x, acc.x, w);
        fp_mul(w, w, zi);
        fp_mul(gq.y, acc.y, w);
    }
    memset(&acc, 0, sizeof(acc)); /* O */
    for (int i = 255; i >= 0; i--) {
        point_double(&acc, &acc);
        int sel = bit(u1, i) | bit(u2, i) << 1;
        if (sel == 1)
            point_add_affine(&acc, &acc, &g);
        else if (sel == 2)
            point_add_affine(&acc, &acc, &q);
        else if (sel == 3 && !gq_infinite)
            point_add_affine(&acc, &acc, &gq);
    }
    if (is_zero(acc.z)) /* R = O */
        return 0;

    /* steps 6-8: x_R = X / Z^2 mod p, v = x_R mod n, valid iff v = r */
    mod_inv(zi, acc.z, P);
    fp_sqr(w, zi);
    fp_mul(x, acc.x, w);
    if (cmp(x, N) >= 0)
        sub(x, x, N); /* x < p < 2 n */
    return cmp(x, r) == 0;
}

int iotsim_model_invoke(const void *input, void *output)
{
    const uint8_t *in = (const uint8_t *)input;
    *(uint8_t *)output = (uint8_t)p256_verify(in, in + 32, in + 96);
    return 0;
}
