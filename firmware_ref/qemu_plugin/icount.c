/* iotsim icount: exact guest instruction counts between two marker functions, per inference.
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
 *
 * How it counts: every translation block (TB) that does not start at a marker gets one inline
 * "add n_insns to a counter" op, executed when the TB starts - no helper call, TB chaining is
 * kept, so the cost is one memory add per executed block. The two marker TBs instead get an
 * exec callback (a helper call, twice per inference) that snapshots the counter. A marker is a
 * function whose body is one `bx lr`, so its TB is exactly its body and no counted TB ever
 * contains marker instructions.
 *
 * Exactness rests on TBs running to completion. Between the markers the firmware does no
 * semihosting and enables no interrupt, so no TB is left half-way; counts are therefore
 * independent of how QEMU splits code into TBs (checked against `-singlestep` and QEMU's own
 * `-d exec,nochain` trace in tests/test_firmware_qemu.py) and identical from run to run.
 *
 * The declarations below are our own, written from the API's documented C signatures
 * (QEMU's qemu-plugin.h); the plugin resolves these symbols in the QEMU binary at load time.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU plugin API, version 1: the subset this plugin uses -------------------------------- */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb; /* opaque */

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
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                                     void *ptr, uint64_t imm);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern void qemu_plugin_outs(const char *string);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;
EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv);

/* ---- state (a Cortex-M board has one vCPU) -------------------------------------------------- */
static uint64_t insns;        /* instructions of all non-marker TBs executed so far */
static uint64_t region_start; /* value of insns when the last begin marker ran */
static bool in_region;
static uint64_t begin_addr, end_addr;
static FILE *out;
static uint64_t n_regions, n_unmatched;

static void on_begin(unsigned int vcpu, void *udata) {
    (void)vcpu;
    (void)udata;
    if (in_region) ++n_unmatched; /* begin, begin: the first region is dropped */
    region_start = insns;
    in_region = true;
}

static void on_end(unsigned int vcpu, void *udata) {
    (void)vcpu;
    (void)udata;
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
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    uint64_t pc = qemu_plugin_tb_vaddr(tb);
    if (pc == begin_addr) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
    } else if (pc == end_addr) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
    } else {
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns,
                                                 qemu_plugin_tb_n_insns(tb));
    }
}

static void at_exit(qemu_plugin_id_t id, void *udata) {
    (void)id;
    (void)udata;
    char line[160];
    snprintf(line, sizeof line, "icount: %" PRIu64 " regions, %" PRIu64 " unmatched markers%s\n",
             n_regions, n_unmatched, in_region ? ", last region not ended" : "");
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

int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    const char *out_path = NULL;
    bool have_begin = false, have_end = false;
    for (int i = 0; i < argc; ++i) {
        const char *a = argv[i];
        if (strncmp(a, "begin=", 6) == 0 && parse_u64(a + 6, &begin_addr)) {
            have_begin = true;
        } else if (strncmp(a, "end=", 4) == 0 && parse_u64(a + 4, &end_addr)) {
            have_end = true;
        } else if (strncmp(a, "out=", 4) == 0 && a[4]) {
            out_path = a + 4;
        } else {
            fprintf(stderr, "icount: bad argument '%s' (expected begin=ADDR end=ADDR [out=FILE])\n", a);
            return -1;
        }
    }
    if (!have_begin || !have_end) {
        fprintf(stderr, "icount: begin=ADDR and end=ADDR are required\n");
        return -1;
    }
    begin_addr &= ~(uint64_t)1; /* Thumb function symbols have bit 0 set */
    end_addr &= ~(uint64_t)1;
    if (begin_addr == end_addr) {
        fprintf(stderr, "icount: begin and end markers are at the same address\n");
        return -1;
    }
    if (out_path) {
        out = fopen(out_path, "w");
        if (!out) {
            fprintf(stderr, "icount: cannot open '%s' for writing\n", out_path);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
