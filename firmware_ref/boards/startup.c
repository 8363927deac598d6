/* iotsim reference firmware: start-up code shared by all Cortex-M boards (mps2-an385/an386/an505).
 *
 * - vector table (initial SP, reset, faults, 48 external IRQs), placed at the start of the
 *   board's code region by the linker script (which is where QEMU's initial VTOR points);
 * - Reset_Handler: enable the FPU (CPACR) when the build uses one, set MSP (and MSPLIM on
 *   ARMv8-M), copy .data, zero .bss, then run main();
 * - every fault and unexpected interrupt ends the program with exit status 99 and a message
 *   (semihosting build) or with iotsim_io_status = IOTSIM_STATUS_FAULT (RAM-I/O build);
 * - semihosting helpers: command line (SYS_GET_CMDLINE), exit with status (SYS_EXIT_EXTENDED),
 *   console message (SYS_WRITE0); a bounded _sbrk for newlib's malloc.
 *
 * Two I/O variants, chosen at compile time:
 *   IOTSIM_IO_SEMIHOSTING (default on ARM): newlib + librdimon (--specs=rdimon.specs), files on
 *                         the host through ARM semihosting; QEMU with -semihosting-config.
 *   IOTSIM_IO_RAM:        no semihosting at all (Renode); inputs/outputs in RAM buffers that the
 *                         emulator script fills and reads back (see main.c).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#if !defined(IOTSIM_IO_RAM) && !defined(IOTSIM_IO_SEMIHOSTING)
#define IOTSIM_IO_SEMIHOSTING 1
#endif

#define IOTSIM_EXIT_FAULT 99

/* Linker-script symbols (boards/common.ld). */
extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[];
extern char __stack_limit[], __stack_top[], __heap_start[], __heap_end[];

extern int main(int argc, char **argv);
void iotsim_reset_c(void) __attribute__((noreturn, used));
void iotsim_exit(int code) __attribute__((noreturn));
void iotsim_fault_c(const uint32_t *frame, uint32_t ipsr, uint32_t exc_return) __attribute__((noreturn, used));
void Reset_Handler(void) __attribute__((naked, noreturn));
void iotsim_fault_entry(void) __attribute__((naked, noreturn));

/* ------------------------------------------------------------------------------------------ */
/* Semihosting (ARM semihosting v2 as QEMU implements it: BKPT 0xAB on M-profile)               */
/* ------------------------------------------------------------------------------------------ */
#define SYS_WRITE0 0x04
#define SYS_GET_CMDLINE 0x15
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_Stopped_ApplicationExit 0x20026
#define ADP_Stopped_RunTimeErrorUnknown 0x20023

#if defined(IOTSIM_IO_SEMIHOSTING)
static inline int iotsim_semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void iotsim_console(const char *s) { iotsim_semihost(SYS_WRITE0, s); }

void iotsim_exit(int code) {
    uint32_t block[2] = {ADP_Stopped_ApplicationExit, (uint32_t)code};
    iotsim_semihost(SYS_EXIT_EXTENDED, block);
    /* A debugger without SYS_EXIT_EXTENDED: plain SYS_EXIT, reason says success or not. */
    iotsim_semihost(SYS_EXIT, (const void *)(uintptr_t)(code == 0 ? ADP_Stopped_ApplicationExit
                                                                  : ADP_Stopped_RunTimeErrorUnknown));
    for (;;) {
    }
}

/* argv from the semihosting command line (QEMU: -semihosting-config ...,arg=a,arg=b). */
#define IOTSIM_MAX_ARGS 8
static char iotsim_cmdline[512];
static char *iotsim_argv[IOTSIM_MAX_ARGS + 1];

static int iotsim_get_args(void) {
    struct {
        char *buf;
        int len;
    } block = {iotsim_cmdline, (int)sizeof iotsim_cmdline - 1};
    if (iotsim_semihost(SYS_GET_CMDLINE, &block) != 0) return 0;
    if (block.len < 0 || block.len >= (int)sizeof iotsim_cmdline) block.len = 0;
    iotsim_cmdline[block.len] = '\0';
    int argc = 0;
    char *p = iotsim_cmdline;
    while (*p && argc < IOTSIM_MAX_ARGS) {
        while (*p == ' ') *p++ = '\0';
        if (!*p) break;
        iotsim_argv[argc++] = p;
        while (*p && *p != ' ') ++p;
    }
    iotsim_argv[argc] = NULL;
    return argc;
}

extern void initialise_monitor_handles(void); /* librdimon: opens :tt as stdin/stdout/stderr */

#else /* IOTSIM_IO_RAM */

/* Set when the program has ended; the emulator script polls these (see main.c). */
volatile uint32_t iotsim_exit_code __attribute__((used));
volatile uint32_t iotsim_fault_pc __attribute__((used));
volatile uint32_t iotsim_fault_ipsr __attribute__((used));
extern void iotsim_ram_io_finish(int code); /* main.c: records the status */

/* The program parks here at the end; a Renode hook on this symbol stops the run. */
void iotsim_done(void) __attribute__((noipa, noinline, noreturn, used));
void iotsim_done(void) {
    for (;;) __asm__ volatile("wfi" ::: "memory");
}

static void iotsim_console(const char *s) { (void)s; }

void iotsim_exit(int code) {
    iotsim_exit_code = (uint32_t)code;
    iotsim_ram_io_finish(code);
    iotsim_done();
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* Heap for newlib's malloc (stdio buffers): [__heap_start, __heap_end), high-water tracked      */
/* ------------------------------------------------------------------------------------------ */
static char *iotsim_brk;
size_t iotsim_heap_peak;

void *_sbrk(ptrdiff_t incr) {
    if (!iotsim_brk) iotsim_brk = __heap_start;
    char *prev = iotsim_brk;
    if (incr > 0 ? (size_t)incr > (size_t)(__heap_end - iotsim_brk) : -incr > iotsim_brk - __heap_start) {
        errno = ENOMEM;
        return (void *)-1;
    }
    iotsim_brk += incr;
    if ((size_t)(iotsim_brk - __heap_start) > iotsim_heap_peak)
        iotsim_heap_peak = (size_t)(iotsim_brk - __heap_start);
    return prev;
}

/* ------------------------------------------------------------------------------------------ */
/* Reset                                                                                        */
/* ------------------------------------------------------------------------------------------ */
void Reset_Handler(void) {
    __asm__ volatile(
#if defined(__ARM_FP)
        /* CPACR |= CP10, CP11 full access, before any floating-point instruction */
        "ldr r0, =0xE000ED88\n"
        "ldr r1, [r0]\n"
        "orr r1, r1, #0x00F00000\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
#endif
        "ldr r0, =__stack_top\n"
        "msr msp, r0\n"
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8M_BASE__)
        "ldr r0, =__stack_limit\n"
        "msr msplim, r0\n"
#endif
        "b iotsim_reset_c\n"
        ".ltorg\n");
}

void iotsim_reset_c(void) {
    /* volatile pointers: keep GCC from turning these loops into memcpy/memset calls */
    volatile uint32_t *dst = _sdata;
    const volatile uint32_t *src = _sidata;
    while (dst < _edata) *dst++ = *src++;
    for (dst = _sbss; dst < _ebss; ++dst) *dst = 0;

#if defined(IOTSIM_IO_SEMIHOSTING)
    initialise_monitor_handles();
    int argc = iotsim_get_args();
    iotsim_exit(main(argc, iotsim_argv));
#else
    iotsim_exit(main(0, (char **)0));
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* Faults: report and exit non-zero                                                             */
/* ------------------------------------------------------------------------------------------ */
/* The handler runs on its own small stack: after a stack overflow MSP points below RAM. */
uint64_t iotsim_fault_stack[64] __attribute__((used));

void iotsim_fault_entry(void) {
    __asm__ volatile(
        "mov r2, lr\n"
        "tst r2, #4\n"
        "ite eq\n"
        "mrseq r0, msp\n"
        "mrsne r0, psp\n"
        "mrs r1, ipsr\n"
        "ldr r3, =iotsim_fault_stack + 512\n"
        "mov sp, r3\n"
        "b iotsim_fault_c\n"
        ".ltorg\n");
}

static char *put_str(char *p, const char *s) {
    while (*s) *p++ = *s++;
    return p;
}

static char *put_hex(char *p, uint32_t v) {
    static const char digits[] = "0123456789abcdef";
    p = put_str(p, "0x");
    for (int i = 7; i >= 0; --i) *p++ = digits[(v >> (4 * i)) & 0xF];
    return p;
}

void iotsim_fault_c(const uint32_t *frame, uint32_t ipsr, uint32_t exc_return) {
    static const char *const names[] = {"thread", "reset",    "NMI",      "HardFault",
                                        "MemManage", "BusFault", "UsageFault", "SecureFault"};
    uint32_t exc = ipsr & 0x1FF;
    char msg[200];
    char *p = msg;
    p = put_str(p, "iotsim: fault: ");
    p = put_str(p, exc < 8 ? names[exc] : "unexpected interrupt");
    p = put_str(p, " exception=");
    p = put_hex(p, exc);
    uint32_t pc = 0;
    /* The stacked frame is only trustworthy if it lies in RAM we own. */
    if ((const char *)frame >= __stack_limit && (const char *)frame + 32 <= __stack_top) {
        pc = frame[6];
        p = put_str(p, " pc=");
        p = put_hex(p, pc);
        p = put_str(p, " lr=");
        p = put_hex(p, frame[5]);
    } else {
        p = put_str(p, " sp=");
        p = put_hex(p, (uint32_t)(uintptr_t)frame);
        p = put_str(p, " (outside the stack: overflow?)");
    }
    p = put_str(p, " exc_return=");
    p = put_hex(p, exc_return);
    p = put_str(p, " CFSR=");
    p = put_hex(p, *(volatile uint32_t *)0xE000ED28);
    p = put_str(p, " HFSR=");
    p = put_hex(p, *(volatile uint32_t *)0xE000ED2C);
    p = put_str(p, " BFAR=");
    p = put_hex(p, *(volatile uint32_t *)0xE000ED38);
    p = put_str(p, "\n");
    *p = '\0';
    iotsim_console(msg);
#if defined(IOTSIM_IO_RAM)
    iotsim_fault_pc = pc;
    iotsim_fault_ipsr = ipsr;
#else
    (void)pc;
#endif
    iotsim_exit(IOTSIM_EXIT_FAULT);
}

/* ------------------------------------------------------------------------------------------ */
/* Vector table                                                                                 */
/* ------------------------------------------------------------------------------------------ */
typedef void (*iotsim_vector_t)(void);

__attribute__((section(".isr_vector"), used)) const iotsim_vector_t iotsim_vectors[16 + 48] = {
    [0] = (iotsim_vector_t)(void *)__stack_top,
    [1] = Reset_Handler,
    [2 ... 15] = iotsim_fault_entry, /* NMI, HardFault, MemManage, BusFault, UsageFault, SecureFault, SVC, ... */
    [16 ... 63] = iotsim_fault_entry, /* no interrupt is enabled: any IRQ is unexpected */
};
