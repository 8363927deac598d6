/* iotsim reference firmware: run an exported int8 model on N input vectors.
 *
 * The model (export_dir/model.c, model.h) provides
 *     #define IOTSIM_INPUT_BYTES  n
 *     #define IOTSIM_OUTPUT_BYTES m
 *     int iotsim_model_invoke(const void *input, void *output);   -- 0 on success
 *
 * Every inference runs between iotsim_mark_begin() and iotsim_mark_end(). The QEMU plugin
 * (qemu_plugin/icount.c) counts the guest instructions executed between the two markers:
 * the call of iotsim_model_invoke, its body and the few instructions of call glue around it.
 *
 * Three builds of this one file:
 *
 * 1. Semihosting (the default for ARM; QEMU): input and output are host files, read and
 *    written through newlib stdio over ARM semihosting (--specs=rdimon.specs).
 *        argv[1]  input file  (default "iotsim_in.bin"):  N * IOTSIM_INPUT_BYTES bytes
 *        argv[2]  output file (default "iotsim_out.bin"): N * IOTSIM_OUTPUT_BYTES bytes
 *    QEMU passes argv with -semihosting-config enable=on,target=native,arg=fw,arg=in,arg=out
 *    and resolves relative names against its working directory. At the end one line goes to
 *    stdout: "iotsim: vectors=N invoke_stack_peak_bytes=S heap_peak_bytes=H".
 *    Exit status: 0 ok, 2 cannot open a file, 3 short read (a partial vector), 4 the model
 *    returned non-zero, 5 cannot write the output, 6 stack overflow (the model used the whole
 *    stack reserve), 99 CPU fault (from boards/startup.c).
 *
 * 2. Host (plain gcc, no __arm__): same command line and files; the markers do nothing.
 *
 * 3. RAM I/O (-DIOTSIM_IO_RAM, for Renode: no semihosting): the emulator script writes
 *    iotsim_io_count and iotsim_io_inputs[] before starting the CPU (they sit in .noinit, which
 *    the reset handler leaves alone), the program runs the vectors, fills iotsim_io_outputs[],
 *    sets iotsim_io_status (IOTSIM_STATUS_DONE, or an error code) and parks in iotsim_done().
 *    Capacity: IOTSIM_MAX_VECTORS (compile-time, default 16).
 */
#include <stddef.h>
#include <stdint.h>

#include "model.h"

#if defined(__arm__) && !defined(IOTSIM_IO_RAM) && !defined(IOTSIM_IO_SEMIHOSTING)
#define IOTSIM_IO_SEMIHOSTING 1
#endif

#if !defined(IOTSIM_IO_RAM)
#include <stdio.h>
#endif

#define IOTSIM_EXIT_OK 0
#define IOTSIM_EXIT_OPEN 2
#define IOTSIM_EXIT_SHORT_READ 3
#define IOTSIM_EXIT_INVOKE 4
#define IOTSIM_EXIT_WRITE 5
#define IOTSIM_EXIT_STACK 6

/* ------------------------------------------------------------------------------------------ */
/* Markers                                                                                      */
/* ------------------------------------------------------------------------------------------ */
/* noipa: GCC may neither inline them, nor clone them, nor fold the two identical bodies into
 * one (identical code folding), nor use what it knows of their (empty) bodies at the call
 * sites: every call is a real call the work cannot be moved across. Each compiles to a single
 * `bx lr`, so the translation block that starts at a marker is the marker's whole body. */
#if defined(__clang__)
#define IOTSIM_MARKER __attribute__((noinline, used, optnone))
#else
#define IOTSIM_MARKER __attribute__((noipa, noinline, used))
#endif
#define IOTSIM_BARRIER() __asm__ volatile("" ::: "memory")

IOTSIM_MARKER void iotsim_mark_begin(void);
IOTSIM_MARKER void iotsim_mark_end(void);

void iotsim_mark_begin(void) { IOTSIM_BARRIER(); }
void iotsim_mark_end(void) { IOTSIM_BARRIER(); }

static int run_one(const void *input, void *output) {
    IOTSIM_BARRIER();
    iotsim_mark_begin();
    IOTSIM_BARRIER();
    int rc = iotsim_model_invoke(input, output);
    IOTSIM_BARRIER();
    iotsim_mark_end();
    IOTSIM_BARRIER();
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Stack high-water mark of the model's invoke (ARM builds): paint the stack below the current  */
/* frame before each inference, find the deepest overwritten word after it.                    */
/* ------------------------------------------------------------------------------------------ */
#if defined(__arm__)
extern char __stack_limit[];
extern size_t iotsim_heap_peak;
#define IOTSIM_PAINT 0xA5A5A5A5u
#define IOTSIM_PAINT_MARGIN 64 /* bytes left unpainted just below the painter's own frame */

static inline uintptr_t current_sp(void) {
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

/* Lowest stack address written since the last paint (top if none). */
static uintptr_t stack_low_water(uintptr_t top) {
    volatile uint32_t *p = (volatile uint32_t *)(void *)__stack_limit;
    while ((uintptr_t)p < top && *p == IOTSIM_PAINT) ++p;
    return (uintptr_t)p;
}

__attribute__((noinline)) static void stack_paint(uintptr_t from) {
    uintptr_t top = current_sp() - IOTSIM_PAINT_MARGIN;
    for (volatile uint32_t *p = (volatile uint32_t *)from; (uintptr_t)p < top; ++p) *p = IOTSIM_PAINT;
}

static size_t invoke_stack_peak;
static int stack_overflow;

static int run_one_measured(const void *input, void *output) {
    uintptr_t top = current_sp(); /* run_one's frame and everything it calls lie below this */
    stack_paint(stack_low_water(top - IOTSIM_PAINT_MARGIN) & ~(uintptr_t)3);
    int rc = run_one(input, output);
    uintptr_t low = stack_low_water(top);
    size_t used = top - low;
    if (used > invoke_stack_peak) invoke_stack_peak = used;
    /* The lowest stack word was overwritten: the stack ran out (below it there is no RAM, and
     * on some boards writes there are silently ignored, so results cannot be trusted). */
    if (low == (uintptr_t)__stack_limit) stack_overflow = 1;
    return rc;
}
#else
static const int stack_overflow = 0;
static const size_t invoke_stack_peak = 0;
static int run_one_measured(const void *input, void *output) { return run_one(input, output); }
#endif

static uint8_t in_buf[IOTSIM_INPUT_BYTES] __attribute__((aligned(16)));
static uint8_t out_buf[IOTSIM_OUTPUT_BYTES > 0 ? IOTSIM_OUTPUT_BYTES : 1] __attribute__((aligned(16)));

#if !defined(IOTSIM_IO_RAM)
/* ------------------------------------------------------------------------------------------ */
/* File I/O: host build and semihosting build                                                   */
/* ------------------------------------------------------------------------------------------ */
int main(int argc, char **argv) {
    const char *in_path = argc > 1 ? argv[1] : "iotsim_in.bin";
    const char *out_path = argc > 2 ? argv[2] : "iotsim_out.bin";
    FILE *fi = fopen(in_path, "rb");
    if (!fi) {
        fprintf(stderr, "iotsim: cannot open input file '%s'\n", in_path);
        return IOTSIM_EXIT_OPEN;
    }
    FILE *fo = fopen(out_path, "wb");
    if (!fo) {
        fprintf(stderr, "iotsim: cannot open output file '%s'\n", out_path);
        fclose(fi);
        return IOTSIM_EXIT_OPEN;
    }
    unsigned long n = 0;
    int status = IOTSIM_EXIT_OK;
    for (;;) {
        size_t got = fread(in_buf, 1, IOTSIM_INPUT_BYTES, fi);
        if (got == 0) {
            if (ferror(fi)) {
                fprintf(stderr, "iotsim: read error on '%s' at vector %lu\n", in_path, n);
                status = IOTSIM_EXIT_SHORT_READ;
            }
            break;
        }
        if (got != IOTSIM_INPUT_BYTES) {
            fprintf(stderr, "iotsim: short read: vector %lu of '%s' has %lu of %lu bytes\n", n,
                    in_path, (unsigned long)got, (unsigned long)IOTSIM_INPUT_BYTES);
            status = IOTSIM_EXIT_SHORT_READ;
            break;
        }
        int rc = run_one_measured(in_buf, out_buf);
        if (stack_overflow) {
            fprintf(stderr, "iotsim: stack overflow on vector %lu: the model needs more stack than "
                    "the %lu bytes reserved (link with a larger IOTSIM_STACK_SIZE)\n", n,
                    (unsigned long)invoke_stack_peak);
            status = IOTSIM_EXIT_STACK;
            break;
        }
        if (rc != 0) {
            fprintf(stderr, "iotsim: iotsim_model_invoke failed with %d on vector %lu\n", rc, n);
            status = IOTSIM_EXIT_INVOKE;
            break;
        }
        if (fwrite(out_buf, 1, IOTSIM_OUTPUT_BYTES, fo) != IOTSIM_OUTPUT_BYTES) {
            fprintf(stderr, "iotsim: cannot write output vector %lu to '%s'\n", n, out_path);
            status = IOTSIM_EXIT_WRITE;
            break;
        }
        ++n;
    }
    fclose(fi);
    if (fclose(fo) != 0 && status == IOTSIM_EXIT_OK) {
        fprintf(stderr, "iotsim: cannot write output file '%s'\n", out_path);
        status = IOTSIM_EXIT_WRITE;
    }
#if defined(__arm__)
    if (status == IOTSIM_EXIT_OK)
        printf("iotsim: vectors=%lu invoke_stack_peak_bytes=%lu heap_peak_bytes=%lu\n", n,
               (unsigned long)invoke_stack_peak, (unsigned long)iotsim_heap_peak);
    fflush(stdout);
#endif
    return status;
}

#else
/* ------------------------------------------------------------------------------------------ */
/* RAM I/O (Renode)                                                                             */
/* ------------------------------------------------------------------------------------------ */
#ifndef IOTSIM_MAX_VECTORS
#define IOTSIM_MAX_VECTORS 16
#endif
#define IOTSIM_STATUS_RUNNING 0u
#define IOTSIM_STATUS_DONE 0x600Du
#define IOTSIM_STATUS_ERROR 0xE000u /* | exit code */

/* Written by the emulator before the CPU starts (not zeroed at reset). */
volatile uint32_t iotsim_io_count __attribute__((section(".noinit"), used));
uint8_t iotsim_io_inputs[IOTSIM_MAX_VECTORS * IOTSIM_INPUT_BYTES]
    __attribute__((section(".noinit"), aligned(16), used));
/* Read back by the emulator after iotsim_done() is reached. */
uint8_t iotsim_io_outputs[IOTSIM_MAX_VECTORS * IOTSIM_OUTPUT_BYTES] __attribute__((aligned(16), used));
volatile uint32_t iotsim_io_status __attribute__((used));
volatile uint32_t iotsim_io_done_vectors __attribute__((used));
volatile uint32_t iotsim_io_stack_peak __attribute__((used));
const uint32_t iotsim_io_capacity __attribute__((used)) = IOTSIM_MAX_VECTORS;
const uint32_t iotsim_io_input_bytes __attribute__((used)) = IOTSIM_INPUT_BYTES;
const uint32_t iotsim_io_output_bytes __attribute__((used)) = IOTSIM_OUTPUT_BYTES;

void iotsim_ram_io_finish(int code) {
    iotsim_io_stack_peak = (uint32_t)invoke_stack_peak;
    iotsim_io_status = code == 0 ? IOTSIM_STATUS_DONE : (IOTSIM_STATUS_ERROR | (uint32_t)code);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    uint32_t n = iotsim_io_count;
    if (n > IOTSIM_MAX_VECTORS) return IOTSIM_EXIT_SHORT_READ;
    for (uint32_t i = 0; i < n; ++i) {
        const uint8_t *src = &iotsim_io_inputs[(size_t)i * IOTSIM_INPUT_BYTES];
        for (size_t k = 0; k < IOTSIM_INPUT_BYTES; ++k) in_buf[k] = src[k];
        int rc = run_one_measured(in_buf, out_buf);
        if (stack_overflow) return IOTSIM_EXIT_STACK;
        if (rc != 0) return IOTSIM_EXIT_INVOKE;
        uint8_t *dst = &iotsim_io_outputs[(size_t)i * IOTSIM_OUTPUT_BYTES];
        for (size_t k = 0; k < IOTSIM_OUTPUT_BYTES; ++k) dst[k] = out_buf[k];
        iotsim_io_done_vectors = i + 1;
    }
    return IOTSIM_EXIT_OK;
}
#endif
