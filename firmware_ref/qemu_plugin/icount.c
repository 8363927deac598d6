/* iotsim icount: exact guest instruction counts between two marker functions, per inference,
 * split by instruction class for a cycle model (iotsim/firmware/cycles.py).
 *
 * A QEMU TCG plugin (plugin API version 1, as in QEMU 4.2 .. 8.x; Debian 12's QEMU 7.2 exports
 * it). Build with the host compiler:
 *     gcc -O2 -shared -fPIC -o libicount.so icount.c
 * Use:
 *     qemu-system-arm ... -plugin ./libicount.so,begin=0x118,end=0x11c,out=counts.txt
 *
 *   begin, end  addresses of iotsim_mark_begin and iotsim_mark_end (the Thumb bit is ignored)
 *   out         file that receives one line per inference: the number of guest instructions
 *               executed after the begin marker returned and before the end marker was
 *               entered. Without out=, each count goes to QEMU's log (qemu_plugin_outs).
 *   classes     (optional) file that receives one line per inference: "name=count" pairs for
 *               every instruction class below (their instruction counts add up to the total).
 *   flash       (optional) LO:HI, the flash address range [LO, HI): data loads from it are
 *               counted (flash_loads) and, with dcache=, run through a cache model.
 *   dcache, icache  (optional) LINES:BYTES: a fully associative LRU cache of LINES lines of
 *               BYTES bytes in front of flash for data loads (dcache) and instruction fetch
 *               (icache); their misses are reported as dcache_misses / icache_misses.
 *   profile     (optional) file that receives, at exit, one line per translated block
 *               executed inside the regions: "vaddr n_insns executions" (hex, dec, dec).
 *
 * Instruction classes (decided once per instruction at translation, from the disassembly
 * string qemu_plugin_insn_disas() returns, which names the Thumb-2 mnemonic; see classify()):
 *   alu            data processing, moves, compares, shifts, bit fields, saturate, IT, NOP ...
 *   mul            32-bit-result multiplies and DSP multiply(-accumulate)s: MUL MLA MLS SMUL<xy>
 *                  SMLA<xy> SMULW SMLAW SMMUL SMMLA SMUAD SMLAD SMUSD SMLSD USAD8 USADA8 ...
 *   mul_long       64-bit-result multiplies: SMULL UMULL SMLAL UMLAL SMLAL<xy> SMLALD SMLSLD UMAAL
 *   div            SDIV UDIV
 *   load, store    single loads/stores (LDR/LDRB/LDRH/LDRSB/LDRSH/LDREX/..., STR...) that cannot
 *                  pipeline with the instruction before them
 *   ldst_pipelined a single load or store immediately after a single load (same translation
 *                  block, so also adjacent in execution) whose address does not use that load's
 *                  destination register: the Cortex-M4 overlaps its address phase with the
 *                  previous load's data phase (Cortex-M4 TRM section 3.3.2)
 *   ldst_double    LDRD STRD
 *   ldst_multiple  LDM STM PUSH POP (ldst_multiple_regs: registers they transfer in total)
 *   branch         B BL BX BLX CBZ CBNZ and every other instruction that ends a block by
 *                  writing the PC (POP {..pc}, LDR pc, MOV pc ...): counted in their own class
 *                  too, this counter only says how many there were
 *   branch_taken   of those, executions after which the next block did not start at the next
 *                  instruction (dynamic: compares the next executed block's address)
 *   table_branch   TBB TBH
 *   fp             VFP single-cycle: VADD VSUB VMUL VABS VNEG VCMP VCVT VMOV ...
 *   fp_mac         VMLA VMLS VNMLA VNMLS VFMA VFMS VFNMA VFNMS
 *   fp_div         VDIV VSQRT
 *   fp_ldst        VLDR VSTR (single); VLDM VSTM VPUSH VPOP go to ldst_multiple
 *
 * How it counts: every translation block (TB) gets an exec callback (a helper call) that adds
 * the TB's per-class counts to the totals while inside a region, and checks whether the
 * previous TB's final branch was taken. The two marker TBs instead snapshot the totals. A
 * marker is a function whose body is one `bx lr`, so its TB is exactly its body and no counted
 * TB ever contains marker instructions.
 *
 * Exactness rests on TBs running to completion. Between the markers the firmware does no
 * semihosting and enables no interrupt, so no TB is left half-way; counts are therefore
 * independent of how QEMU splits code into TBs (checked against `-singlestep` and QEMU's own
 * `-d exec,nochain` trace in tests/test_firmware_qemu.py) and identical from run to run.
 *
 * The declarations below are our own, written from the API's documented C signatures
 * (QEMU's qemu-plugin.h); the plugin resolves these symbols in the QEMU binary at load time.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU plugin API, version 1: the subset this plugin uses -------------------------------- */
typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_plugin_tb;   /* opaque */
struct qemu_plugin_insn; /* opaque */

typedef struct {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    union {
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    };
} qemu_info_t;

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                                          void *userdata);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                             enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
                                             void *userdata);
extern bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
extern char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern void qemu_plugin_outs(const char *string);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;
EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv);

/* ---- instruction classes -------------------------------------------------------------------- */
enum {
    C_ALU,
    C_MUL,
    C_MUL_LONG,
    C_DIV,
    C_LOAD,
    C_STORE,
    C_LDST_PIPELINED,
    C_LDST_DOUBLE,
    C_LDST_MULTIPLE,
    C_TABLE_BRANCH,
    C_BRANCH_ONLY, /* B/BL/BX/BLX/CBZ/CBNZ: no other class (PC-writing loads etc. keep theirs) */
    C_FP,
    C_FP_MAC,
    C_FP_DIV,
    C_FP_LDST,
    N_INSN_CLASSES, /* classes above partition the instructions */
    X_LDST_MULTIPLE_REGS = N_INSN_CLASSES,
    X_BRANCH,       /* instructions that may write the PC (all of C_BRANCH_ONLY, C_TABLE_BRANCH, pop {pc} ...) */
    X_BRANCH_TAKEN, /* dynamic */
    X_FLASH_LOADS,  /* dynamic: data reads from the flash range (each access of an LDM/LDRD counts) */
    X_DCACHE_MISSES,
    X_ICACHE_MISSES,
    N_COUNTERS
};
static const char *const counter_names[N_COUNTERS] = {
    "alu", "mul", "mul_long", "div", "load", "store", "ldst_pipelined", "ldst_double", "ldst_multiple",
    "table_branch", "branch_only", "fp", "fp_mac", "fp_div", "fp_ldst", "ldst_multiple_regs", "branch",
    "branch_taken", "flash_loads", "dcache_misses", "icache_misses",
};

typedef struct {
    uint64_t vaddr, end; /* [vaddr, end): the TB's bytes */
    uint64_t last_pc_next; /* address after the last instruction, if it may write the PC; else 0 */
    uint32_t n_insns;
    uint32_t counts[X_BRANCH + 1]; /* static per-class counts of this TB */
    uint64_t executions;           /* inside regions */
    bool ends_with_branch;
    int first_ldst;           /* class (C_LOAD/C_STORE) of the first instruction if a single load/store, else -1 */
    uint32_t first_addr_regs; /* its address registers */
    int last_load_dest;       /* destination register of the last instruction if a single load, -1 if none, else -2 */
} tb_info;

/* ---- state (a Cortex-M board has one vCPU) -------------------------------------------------- */
static uint64_t totals[N_COUNTERS];
static uint64_t insns;               /* instructions of all non-marker TBs executed inside regions */
static uint64_t region_start;
static uint64_t region_start_totals[N_COUNTERS];
static bool in_region;
static uint64_t begin_addr, end_addr;
static FILE *out, *classes_out, *profile_out;
static uint64_t n_regions, n_unmatched;
static const tb_info *prev_tb;       /* last TB executed (NULL after a marker) */
static uint64_t flash_lo, flash_hi;  /* [lo, hi); empty when lo == hi */

static tb_info **all_tbs;
static size_t n_tbs, cap_tbs;

/* a fully associative LRU cache: tags[0] most recent */
typedef struct {
    uint32_t lines, line_bytes;
    uint64_t *tags;
    uint32_t used;
} lru_cache;
static lru_cache dcache, icache;

static bool cache_access(lru_cache *c, uint64_t addr) {
    uint64_t tag = addr / c->line_bytes;
    for (uint32_t i = 0; i < c->used; ++i) {
        if (c->tags[i] == tag) {
            memmove(c->tags + 1, c->tags, i * sizeof *c->tags);
            c->tags[0] = tag;
            return true;
        }
    }
    uint32_t n = c->used < c->lines ? c->used : c->lines - 1;
    memmove(c->tags + 1, c->tags, n * sizeof *c->tags);
    c->tags[0] = tag;
    if (c->used < c->lines) ++c->used;
    return false;
}

/* ---- classification from the disassembly string --------------------------------------------- */
static bool starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* condition-code suffixes a mnemonic may carry (in or outside an IT block) */
static const char *const conds[] = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs",
                                    "vc", "hi", "ls", "ge", "lt", "gt", "le", "al", NULL};

/* mnemonic without width qualifier (.w/.n/.32 ...) and without an 's' flag/condition suffix
 * is compared against `base`; the remainder after base may be "", "s", a condition, "s"+cond */
static bool mnem_is(const char *m, const char *base) {
    size_t n = strlen(base);
    if (strncmp(m, base, n) != 0) return false;
    const char *r = m + n;
    if (*r == 0) return true;
    if (*r == 's' && r[1] == 0) return true;
    if (*r == 's') ++r;
    for (int i = 0; conds[i]; ++i)
        if (strcmp(r, conds[i]) == 0) return true;
    return false;
}

static bool mnem_in(const char *m, const char *const *list) {
    for (int i = 0; list[i]; ++i)
        if (mnem_is(m, list[i])) return true;
    return false;
}

static int reg_number(const char *s) {
    while (*s == ' ' || *s == '{' || *s == '[' || *s == ',') ++s;
    if (starts(s, "sb")) return 9;
    if (starts(s, "sl")) return 10;
    if (starts(s, "fp")) return 11;
    if (starts(s, "ip")) return 12;
    if (starts(s, "sp")) return 13;
    if (starts(s, "lr")) return 14;
    if (starts(s, "pc")) return 15;
    if (s[0] == 'r' && isdigit((unsigned char)s[1])) return atoi(s + 1);
    return -1;
}

/* registers named inside "[...]" (address operands), as a bit mask */
static uint32_t address_regs(const char *ops) {
    uint32_t mask = 0;
    const char *p = strchr(ops, '[');
    if (!p) return 0;
    const char *q = strchr(p, ']');
    for (++p; *p && (!q || p < q); ++p) {
        if (p[-1] == '[' || p[-1] == ' ' || p[-1] == ',') {
            int r = reg_number(p);
            if (r >= 0) mask |= 1u << r;
        }
    }
    return mask;
}

/* number of registers in a "{...}" list, ranges "r4-r7" included */
static int reg_list_count(const char *ops, bool *has_pc) {
    const char *p = strchr(ops, '{');
    const char *q = p ? strchr(p, '}') : NULL;
    *has_pc = false;
    if (!p || !q) return 1;
    int n = 0;
    const char *s = p + 1;
    while (s < q) {
        while (s < q && (*s == ' ' || *s == ',')) ++s;
        if (s >= q) break;
        const char *e = s;
        while (e < q && *e != ',') ++e;
        /* token [s, e): "r4" or "r4-r7" or "d8-d9" or "s16" */
        char tok[32];
        size_t len = (size_t)(e - s) < sizeof tok - 1 ? (size_t)(e - s) : sizeof tok - 1;
        memcpy(tok, s, len);
        tok[len] = 0;
        char *dash = strchr(tok, '-');
        if (dash) {
            int a = atoi(tok + 1), b = atoi(dash + 2);
            n += b >= a ? b - a + 1 : 1;
            if (tok[0] == 'd') n += b >= a ? b - a + 1 : 1; /* a double register moves two words */
        } else {
            if (reg_number(tok) == 15) *has_pc = true;
            n += tok[0] == 'd' ? 2 : 1;
        }
        s = e;
    }
    return n;
}

typedef struct {
    int cls;
    int regs;          /* ldst_multiple: registers transferred */
    bool writes_pc;    /* may end the block by writing the PC */
    bool single_load;  /* LDR* single (for the next instruction's pipelining) */
    bool single_ldst;  /* a single load or store (LDR..., STR...) */
    int dest;          /* destination register of a single load, else -1 */
    uint32_t addr_regs;
} insn_class;

static insn_class classify(const char *disas) {
    insn_class c = {C_ALU, 0, false, false, false, -1, 0};
    char m[32];
    size_t i = 0;
    while (disas[i] && !isspace((unsigned char)disas[i]) && i < sizeof m - 1) {
        m[i] = (char)tolower((unsigned char)disas[i]);
        ++i;
    }
    m[i] = 0;
    const char *ops = disas + i;
    char *dot = strchr(m, '.'); /* width / data-type qualifier */
    if (dot) *dot = 0;

    static const char *const mul_list[] = {
        "mul", "mla", "mls", "smulbb", "smulbt", "smultb", "smultt", "smulwb", "smulwt", "smlabb", "smlabt",
        "smlatb", "smlatt", "smlawb", "smlawt", "smmul", "smmulr", "smmla", "smmlar", "smmls", "smmlsr", "smuad",
        "smuadx", "smusd", "smusdx", "smlad", "smladx", "smlsd", "smlsdx", "usad8", "usada8", NULL};
    static const char *const mul_long_list[] = {
        "smull", "umull", "smlal", "umlal", "smlalbb", "smlalbt", "smlaltb", "smlaltt", "smlald", "smlaldx",
        "smlsld", "smlsldx", "umaal", NULL};
    static const char *const branch_list[] = {"b", "bl", "bx", "blx", "cbz", "cbnz", NULL};
    static const char *const ldm_list[] = {"ldm", "ldmia", "ldmfd", "ldmdb", "ldmea", "stm", "stmia", "stmea",
                                           "stmdb", "stmfd", "push", "pop", "vldm", "vldmia", "vldmdb", "vstm",
                                           "vstmia", "vstmdb", "vpush", "vpop", NULL};

    if (mnem_in(m, branch_list)) {
        c.cls = C_BRANCH_ONLY;
        c.writes_pc = true;
        return c;
    }
    if (mnem_is(m, "tbb") || mnem_is(m, "tbh")) {
        c.cls = C_TABLE_BRANCH;
        c.writes_pc = true;
        return c;
    }
    if (mnem_in(m, ldm_list)) {
        bool has_pc;
        c.cls = C_LDST_MULTIPLE;
        c.regs = reg_list_count(ops, &has_pc);
        c.writes_pc = has_pc;
        return c;
    }
    if (mnem_is(m, "sdiv") || mnem_is(m, "udiv")) {
        c.cls = C_DIV;
        return c;
    }
    if (mnem_in(m, mul_long_list)) {
        c.cls = C_MUL_LONG;
        return c;
    }
    if (mnem_in(m, mul_list)) {
        c.cls = C_MUL;
        return c;
    }
    if (m[0] == 'v') {
        if (starts(m, "vldr") || starts(m, "vstr")) c.cls = C_FP_LDST;
        else if (starts(m, "vdiv") || starts(m, "vsqrt")) c.cls = C_FP_DIV;
        else if (starts(m, "vmla") || starts(m, "vmls") || starts(m, "vnmla") || starts(m, "vnmls") ||
                 starts(m, "vfma") || starts(m, "vfms") || starts(m, "vfnma") || starts(m, "vfnms"))
            c.cls = C_FP_MAC;
        else c.cls = C_FP;
        return c;
    }
    if (starts(m, "ldrd") || starts(m, "strd")) {
        c.cls = C_LDST_DOUBLE;
        c.writes_pc = false;
        return c;
    }
    if (starts(m, "ldr") || starts(m, "str")) {
        bool load = m[0] == 'l';
        c.cls = load ? C_LOAD : C_STORE;
        c.single_ldst = true;
        c.single_load = load;
        c.addr_regs = address_regs(ops);
        int rd = reg_number(ops);
        if (load) {
            c.dest = rd;
            if (rd == 15) c.writes_pc = true;
        }
        return c;
    }
    if (starts(m, "pld") || starts(m, "pli")) {
        c.cls = C_LOAD; /* a preload occupies the load/store unit like a load */
        return c;
    }
    /* data processing: a PC destination (mov pc, add pc, ...) ends the block */
    if (reg_number(ops) == 15 && !starts(m, "cmp") && !starts(m, "cmn") && !starts(m, "tst") && !starts(m, "teq"))
        c.writes_pc = true;
    return c;
}

/* ---- callbacks ------------------------------------------------------------------------------ */
static void on_tb_exec(unsigned int vcpu, void *udata) {
    (void)vcpu;
    tb_info *t = (tb_info *)udata;
    if (prev_tb && prev_tb->ends_with_branch && in_region) {
        if (t->vaddr != prev_tb->last_pc_next) ++totals[X_BRANCH_TAKEN];
    }
    const tb_info *p = prev_tb;
    prev_tb = t;
    if (!in_region) return;
    ++t->executions;
    insns += t->n_insns;
    for (int k = 0; k <= X_BRANCH; ++k) totals[k] += t->counts[k];
    /* a load ending the previous block, then a load/store starting this one, executed back to back
     * (fall-through): they pipeline as within a block, whatever QEMU's block boundaries */
    if (p && p->last_load_dest != -2 && t->first_ldst >= 0 && t->vaddr == p->end &&
        !(p->last_load_dest >= 0 && (t->first_addr_regs >> p->last_load_dest) & 1u)) {
        --totals[t->first_ldst];
        ++totals[C_LDST_PIPELINED];
    }
    if (icache.lines && t->vaddr >= flash_lo && t->vaddr < flash_hi) {
        for (uint64_t a = t->vaddr / icache.line_bytes; a <= (t->end - 1) / icache.line_bytes; ++a)
            if (!cache_access(&icache, a * icache.line_bytes)) ++totals[X_ICACHE_MISSES];
    }
}

static void on_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata) {
    (void)vcpu;
    (void)udata;
    if (!in_region || qemu_plugin_mem_is_store(info) || vaddr < flash_lo || vaddr >= flash_hi) return;
    ++totals[X_FLASH_LOADS];
    if (dcache.lines && !cache_access(&dcache, vaddr)) ++totals[X_DCACHE_MISSES];
}

static void on_begin(unsigned int vcpu, void *udata) {
    (void)vcpu;
    (void)udata;
    if (in_region) ++n_unmatched; /* begin, begin: the first region is dropped */
    region_start = insns;
    memcpy(region_start_totals, totals, sizeof totals);
    in_region = true;
    prev_tb = NULL;
}

static void on_end(unsigned int vcpu, void *udata) {
    (void)vcpu;
    (void)udata;
    /* the call into the end marker is a taken branch of the region */
    if (prev_tb && prev_tb->ends_with_branch && in_region) ++totals[X_BRANCH_TAKEN];
    prev_tb = NULL;
    if (!in_region) {
        ++n_unmatched;
        return;
    }
    in_region = false;
    ++n_regions;
    if (out) {
        fprintf(out, "%" PRIu64 "\n", insns - region_start);
        fflush(out); /* complete even if QEMU is killed or exits without atexit callbacks */
    } else {
        char line[64];
        snprintf(line, sizeof line, "icount: %" PRIu64 "\n", insns - region_start);
        qemu_plugin_outs(line);
    }
    if (classes_out) {
        fprintf(classes_out, "instructions=%" PRIu64, insns - region_start);
        for (int k = 0; k < N_COUNTERS; ++k)
            fprintf(classes_out, " %s=%" PRIu64, counter_names[k], totals[k] - region_start_totals[k]);
        fputc('\n', classes_out);
        fflush(classes_out);
    }
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    uint64_t pc = qemu_plugin_tb_vaddr(tb);
    if (pc == begin_addr) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        return;
    }
    if (pc == end_addr) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        return;
    }
    tb_info *t = calloc(1, sizeof *t);
    if (!t) abort();
    size_t n = qemu_plugin_tb_n_insns(tb);
    t->vaddr = pc;
    t->n_insns = (uint32_t)n;
    t->first_ldst = -1;
    t->last_load_dest = -2;
    insn_class prev = {C_ALU, 0, false, false, false, -1, 0};
    for (size_t i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        char *d = qemu_plugin_insn_disas(insn);
        insn_class c = classify(d ? d : "");
        free(d);
        uint64_t next = qemu_plugin_insn_vaddr(insn) + qemu_plugin_insn_size(insn);
        int cls = c.cls;
        if (c.single_ldst && prev.single_load && !(prev.dest >= 0 && (c.addr_regs >> prev.dest) & 1u))
            cls = C_LDST_PIPELINED;
        ++t->counts[cls];
        t->counts[X_LDST_MULTIPLE_REGS] += (uint32_t)c.regs;
        if (c.writes_pc) ++t->counts[X_BRANCH];
        if (i == 0 && c.single_ldst) {
            t->first_ldst = c.cls;
            t->first_addr_regs = c.addr_regs;
        }
        if (i == n - 1) {
            t->last_load_dest = c.single_load ? c.dest : -2;
            t->end = next;
            t->ends_with_branch = c.writes_pc;
            t->last_pc_next = next;
        }
        if (flash_hi > flash_lo && (c.cls == C_LOAD || c.cls == C_LDST_DOUBLE || c.cls == C_LDST_MULTIPLE ||
                                    c.cls == C_FP_LDST))
            /* registered for reads and writes, stores filtered in on_mem: QEMU 7.2 delivers no
             * callbacks for single loads registered with QEMU_PLUGIN_MEM_R alone (measured) */
            qemu_plugin_register_vcpu_mem_cb(insn, on_mem, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
        prev = c;
    }
    if (n_tbs == cap_tbs) {
        cap_tbs = cap_tbs ? 2 * cap_tbs : 1024;
        all_tbs = realloc(all_tbs, cap_tbs * sizeof *all_tbs);
        if (!all_tbs) abort();
    }
    all_tbs[n_tbs++] = t;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, t);
}

static void at_exit(qemu_plugin_id_t id, void *udata) {
    (void)id;
    (void)udata;
    char line[160];
    snprintf(line, sizeof line, "icount: %" PRIu64 " regions, %" PRIu64 " unmatched markers%s\n",
             n_regions, n_unmatched, in_region ? ", last region not ended" : "");
    if (profile_out) {
        for (size_t i = 0; i < n_tbs; ++i)
            if (all_tbs[i]->executions)
                fprintf(profile_out, "%" PRIx64 " %u %" PRIu64 "\n", all_tbs[i]->vaddr, all_tbs[i]->n_insns,
                        all_tbs[i]->executions);
        fclose(profile_out);
        profile_out = NULL;
    }
    if (classes_out) {
        fclose(classes_out);
        classes_out = NULL;
    }
    if (out) {
        fclose(out);
        out = NULL;
        if (n_unmatched || in_region) qemu_plugin_outs(line);
    } else {
        qemu_plugin_outs(line);
    }
}

static bool parse_u64(const char *s, uint64_t *v) {
    char *endp;
    *v = strtoull(s, &endp, 0);
    return *s && !*endp;
}

static bool parse_pair(const char *s, uint64_t *a, uint64_t *b) {
    char buf[64];
    const char *colon = strchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof buf) return false;
    memcpy(buf, s, (size_t)(colon - s));
    buf[colon - s] = 0;
    return parse_u64(buf, a) && parse_u64(colon + 1, b);
}

static bool setup_cache(lru_cache *c, uint64_t lines, uint64_t bytes) {
    if (lines == 0 || lines > 4096 || bytes == 0 || (bytes & (bytes - 1))) return false;
    c->lines = (uint32_t)lines;
    c->line_bytes = (uint32_t)bytes;
    c->tags = calloc(lines, sizeof *c->tags);
    return c->tags != NULL;
}

static FILE *open_out(const char *path, const char *what) {
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "icount: cannot open %s file '%s' for writing\n", what, path);
    return f;
}

int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    const char *out_path = NULL, *classes_path = NULL, *profile_path = NULL;
    bool have_begin = false, have_end = false;
    uint64_t a, b;
    for (int i = 0; i < argc; ++i) {
        const char *s = argv[i];
        if (strncmp(s, "begin=", 6) == 0 && parse_u64(s + 6, &begin_addr)) {
            have_begin = true;
        } else if (strncmp(s, "end=", 4) == 0 && parse_u64(s + 4, &end_addr)) {
            have_end = true;
        } else if (strncmp(s, "out=", 4) == 0 && s[4]) {
            out_path = s + 4;
        } else if (strncmp(s, "classes=", 8) == 0 && s[8]) {
            classes_path = s + 8;
        } else if (strncmp(s, "profile=", 8) == 0 && s[8]) {
            profile_path = s + 8;
        } else if (strncmp(s, "flash=", 6) == 0 && parse_pair(s + 6, &flash_lo, &flash_hi) && flash_hi > flash_lo) {
        } else if (strncmp(s, "dcache=", 7) == 0 && parse_pair(s + 7, &a, &b) && setup_cache(&dcache, a, b)) {
        } else if (strncmp(s, "icache=", 7) == 0 && parse_pair(s + 7, &a, &b) && setup_cache(&icache, a, b)) {
        } else {
            fprintf(stderr,
                    "icount: bad argument '%s' (expected begin=ADDR end=ADDR [out=FILE] [classes=FILE] "
                    "[profile=FILE] [flash=LO:HI] [dcache=LINES:BYTES] [icache=LINES:BYTES], "
                    "cache line bytes a power of two)\n",
                    s);
            return -1;
        }
    }
    if (!have_begin || !have_end) {
        fprintf(stderr, "icount: begin=ADDR and end=ADDR are required\n");
        return -1;
    }
    if ((dcache.lines || icache.lines) && flash_hi <= flash_lo) {
        fprintf(stderr, "icount: dcache= and icache= need flash=LO:HI\n");
        return -1;
    }
    begin_addr &= ~(uint64_t)1; /* Thumb function symbols have bit 0 set */
    end_addr &= ~(uint64_t)1;
    if (begin_addr == end_addr) {
        fprintf(stderr, "icount: begin and end markers are at the same address\n");
        return -1;
    }
    if (out_path && !(out = open_out(out_path, "out"))) return -1;
    if (classes_path && !(classes_out = open_out(classes_path, "classes"))) return -1;
    if (profile_path && !(profile_out = open_out(profile_path, "profile"))) return -1;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
