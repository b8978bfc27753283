/*
 * Self-tests of the coherence checker (coherence.c): one mode per way of getting instruction
 * cache maintenance wrong, and the complete sequences, for aarch64 and riscv64 Linux.
 * `.ci/coherence.sh` runs every mode under the checker and compares the classes it reports
 * with the table in .ci/coherence.py. Built static with the cross gcc.
 *
 * Each mode writes a 256-byte function (returns 63) at offset 12 of an RWX page, so it spans
 * several cache lines on every model and starts mid-line, makes it "coherent" in its own way
 * and calls it. No system call runs between the writes and the call unless the mode says so,
 * because on AArch64 the return of any system call is a context synchronisation.
 *
 * Usage: selftest MODE   (selftest list prints the modes)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NINSN 64
#define OFFSET 12

static uint8_t *page;
static uint32_t *code;
static _Atomic int ready, go, done;
static long result;

typedef long (*fn_t)(void);

static void write_code(void)
{
#if defined(__aarch64__)
    code[0] = 0xd2800020; /* movz x0, #1 */
    for (int i = 1; i < NINSN - 1; i++) {
        code[i] = 0x91000400; /* add x0, x0, #1 */
    }
    code[NINSN - 1] = 0xd65f03c0; /* ret */
#elif defined(__riscv)
    code[0] = 0x00100513; /* addi a0, zero, 1 */
    for (int i = 1; i < NINSN - 1; i++) {
        code[i] = 0x00150513; /* addi a0, a0, 1 */
    }
    code[NINSN - 1] = 0x00008067; /* ret */
#endif
}

static void run(void) { result = ((fn_t)(void *)code)(); }

static void *reader(void *arg)
{
    (void)arg;
    /* From here on the reader makes no system call: its start-up ones are behind it. */
    atomic_store_explicit(&ready, 1, memory_order_release);
    while (!atomic_load_explicit(&go, memory_order_acquire)) {
    }
    run(); /* no system call between seeing `go` and running the code */
    atomic_store_explicit(&done, 1, memory_order_release);
    return NULL;
}

static pthread_t start_reader(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, reader, NULL)) {
        perror("pthread_create");
        exit(2);
    }
    while (!atomic_load_explicit(&ready, memory_order_acquire)) {
    }
    return t;
}

static void publish_and_wait(pthread_t t)
{
    atomic_store_explicit(&go, 1, memory_order_release);
    while (!atomic_load_explicit(&done, memory_order_acquire)) {
    }
    pthread_join(t, NULL);
}

/* Concurrent modification: a reader calls the entry in a loop while the writer replaces one
 * instruction and, before making it coherent, waits until the reader has run it many times,
 * so the reader certainly executes the new bytes before they are synchronised. */
static _Atomic long calls;
static _Atomic int stop;
static long expect = NINSN - 1;

static void *looper(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_acquire)) {
        run();
        atomic_fetch_add_explicit(&calls, 1, memory_order_release);
    }
    return NULL;
}

static void wait_calls(long n)
{
    long target = atomic_load_explicit(&calls, memory_order_acquire) + n;
    while (atomic_load_explicit(&calls, memory_order_acquire) < target) {
    }
}

static long sys_membarrier_sync_core(void);

/* Runs the looper, stores `word` at code[at] with one 32-bit store (or two 16-bit ones), lets
 * the looper run it 100 times, then calls `sync` and stops the looper. */
static void concurrent_patch(int at, uint32_t word, bool torn, void (*sync)(void))
{
    pthread_t t;
    if (pthread_create(&t, NULL, looper, NULL)) {
        perror("pthread_create");
        exit(2);
    }
    wait_calls(100);
    if (torn) {
        volatile uint16_t *half = (volatile uint16_t *)&code[at];
        half[0] = (uint16_t)word;
        half[1] = (uint16_t)(word >> 16);
    } else {
        *(volatile uint32_t *)&code[at] = word;
    }
    wait_calls(100);
    sync();
    wait_calls(10);
    atomic_store_explicit(&stop, 1, memory_order_release);
    pthread_join(t, NULL);
}

static long sys_membarrier_sync_core(void)
{
    /* REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, then PRIVATE_EXPEDITED_SYNC_CORE */
    if (syscall(SYS_membarrier, 64, 0, 0)) {
        return -1;
    }
    return syscall(SYS_membarrier, 32, 0, 0);
}

#if defined(__aarch64__)
static uintptr_t dline, iline;

static void read_ctr(void)
{
    uint64_t ctr;
    __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
    dline = 4u << ((ctr >> 16) & 15);
    iline = 4u << (ctr & 15);
}

static void clean(uintptr_t stride)
{
    uintptr_t start = (uintptr_t)code & ~(dline - 1), end = (uintptr_t)(code + NINSN);
    for (uintptr_t a = start; a < end; a += stride) {
        __asm__ volatile("dc cvau, %0" ::"r"(a) : "memory");
    }
}

static void inval(uintptr_t stride)
{
    uintptr_t start = (uintptr_t)code & ~(iline - 1), end = (uintptr_t)(code + NINSN);
    for (uintptr_t a = start; a < end; a += stride) {
        __asm__ volatile("ic ivau, %0" ::"r"(a) : "memory");
    }
}

static void dsb(void) { __asm__ volatile("dsb ish" ::: "memory"); }
static void isb(void) { __asm__ volatile("isb" ::: "memory"); }

static void full(void)
{
    clean(dline);
    dsb();
    inval(iline);
    dsb();
    isb();
}

static void full_mt(void)
{
    full();
    if (sys_membarrier_sync_core()) {
        perror("membarrier");
        exit(2);
    }
}

static int mode(const char *m)
{
    read_ctr();
    if (!strcmp(m, "full")) {
        write_code();
        full();
        run();
    } else if (!strcmp(m, "full-mt")) {
        pthread_t t = start_reader();
        write_code();
        full();
        if (sys_membarrier_sync_core()) {
            perror("membarrier");
            return 2;
        }
        publish_and_wait(t);
    } else if (!strcmp(m, "no-clean")) {
        write_code();
        dsb();
        inval(iline);
        dsb();
        isb();
        run();
    } else if (!strcmp(m, "no-dsb")) { /* no barrier at all: with IDC the store never completes */
        write_code();
        inval(iline);
        isb();
        run();
    } else if (!strcmp(m, "no-dsb-between")) {
        write_code();
        clean(dline);
        inval(iline);
        dsb();
        isb();
        run();
    } else if (!strcmp(m, "no-invalidate")) {
        write_code();
        clean(dline);
        dsb();
        dsb();
        isb();
        run();
    } else if (!strcmp(m, "no-dsb-after-invalidate")) {
        write_code();
        clean(dline);
        dsb();
        inval(iline);
        isb();
        run();
    } else if (!strcmp(m, "double-stride")) {
        write_code();
        clean(2 * dline);
        dsb();
        inval(2 * iline);
        dsb();
        isb();
        run();
    } else if (!strcmp(m, "no-isb")) {
        write_code();
        clean(dline);
        dsb();
        inval(iline);
        dsb();
        run();
    } else if (!strcmp(m, "other-thread-no-sync")) {
        pthread_t t = start_reader();
        write_code();
        full();
        publish_and_wait(t);
    } else if (!strcmp(m, "store-after-flush")) {
        write_code();
        full();
        code[NINSN / 2] = 0x91000400; /* the same instruction, stored again */
        run();
    } else if (!strcmp(m, "cmodx-branch")) { /* b f1 -> b f2: allowed (Arm ARM B2.2.5) */
        code[0] = 0x14000010;                /* b +64 */
        code[16] = 0xd2800020;               /* f1: movz x0, #1 */
        code[17] = 0xd65f03c0;               /* ret */
        code[32] = 0xd2800040;               /* f2: movz x0, #2 */
        code[33] = 0xd65f03c0;               /* ret */
        full();
        concurrent_patch(0, 0x14000020, false, full_mt); /* b +128 */
        expect = 2;
        result = 2;
    } else if (!strcmp(m, "cmodx-data")) { /* movz #1 -> movz #2: not in the list */
        code[0] = 0xd2800020;
        code[1] = 0xd65f03c0;
        full();
        concurrent_patch(0, 0xd2800040, false, full_mt);
        expect = result = 2;
    } else {
        return -1;
    }
    return 0;
}
static const char *const modes = "full full-mt no-clean no-dsb no-dsb-between no-invalidate "
                                 "no-dsb-after-invalidate double-stride no-isb "
                                 "other-thread-no-sync store-after-flush cmodx-branch cmodx-data";

#elif defined(__riscv)
static void fence_i(void) { __asm__ volatile("fence.i" ::: "memory"); }

/* prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX, ctx, scope), Linux 6.10+ (and the QEMU .ci/qemu10.sh
 * builds): ctx ON 0 / OFF 1, scope PER_PROCESS 0 / PER_THREAD 1. */
static long icache_flush_ctx(long ctx, long scope)
{
    return syscall(SYS_prctl, 71, ctx, scope, 0, 0);
}

static void enable_fence_i(long scope)
{
    if (icache_flush_ctx(0, scope)) {
        perror("prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX, ON)");
        exit(2);
    }
}

static long flush_icache(long flags)
{
    /* riscv_flush_icache(start, end, flags) */
    return syscall(259, (long)code, (long)(code + NINSN), flags);
}

static void flush_all(void)
{
    if (flush_icache(0)) {
        perror("riscv_flush_icache");
        exit(2);
    }
}

static int mode(const char *m)
{
    if (!strcmp(m, "full")) { /* fence.i on the only thread; warns: no prctl */
        write_code();
        fence_i();
        run();
    } else if (!strcmp(m, "prctl-full")) { /* the same after the prctl: no warning */
        enable_fence_i(0);
        write_code();
        fence_i();
        run();
    } else if (!strcmp(m, "prctl-thread-full")) { /* enabled for this thread only */
        enable_fence_i(1);
        write_code();
        fence_i();
        run();
    } else if (!strcmp(m, "prctl-refused")) { /* refused calls enable nothing: warns */
        long bad[][2] = {{2, 0}, {0, 2}, {-1, 0}};
        for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            if (icache_flush_ctx(bad[i][0], bad[i][1]) != -1 || errno != EINVAL) {
                fprintf(stderr, "prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX, %ld, %ld): not EINVAL\n",
                        bad[i][0], bad[i][1]);
                return 2;
            }
        }
        write_code();
        fence_i();
        run();
    } else if (!strcmp(m, "prctl-off")) { /* ON then OFF for the process: warns */
        enable_fence_i(0);
        if (icache_flush_ctx(1, 0)) {
            perror("prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX, OFF)");
            return 2;
        }
        write_code();
        fence_i();
        run();
    } else if (!strcmp(m, "flush-all-mt")) {
        pthread_t t = start_reader();
        write_code();
        if (flush_icache(0)) {
            perror("riscv_flush_icache");
            return 2;
        }
        publish_and_wait(t);
    } else if (!strcmp(m, "membarrier-mt")) {
        pthread_t t = start_reader();
        write_code();
        if (sys_membarrier_sync_core()) {
            perror("membarrier");
            return 2;
        }
        publish_and_wait(t);
    } else if (!strcmp(m, "flush-local-same-thread")) {
        write_code();
        if (flush_icache(1)) {
            perror("riscv_flush_icache");
            return 2;
        }
        run();
    } else if (!strcmp(m, "no-fence")) {
        write_code();
        run();
    } else if (!strcmp(m, "flush-local-other-thread")) {
        pthread_t t = start_reader();
        write_code();
        if (flush_icache(1)) {
            perror("riscv_flush_icache");
            return 2;
        }
        publish_and_wait(t);
    } else if (!strcmp(m, "fence-i-other-thread")) {
        pthread_t t = start_reader();
        write_code();
        fence_i();
        publish_and_wait(t);
    } else if (!strcmp(m, "store-after-flush")) {
        write_code();
        if (flush_icache(0)) {
            perror("riscv_flush_icache");
            return 2;
        }
        code[NINSN / 2] = 0x00150513; /* the same instruction, stored again */
        run();
    } else if (!strcmp(m, "cmodx-branch")) { /* j f1 -> j f2: one aligned 32-bit store */
        code[0] = 0x0400006f;                /* jal zero, +64 */
        code[16] = 0x00100513;               /* f1: addi a0, zero, 1 */
        code[17] = 0x00008067;               /* ret */
        code[32] = 0x00200513;               /* f2: addi a0, zero, 2 */
        code[33] = 0x00008067;               /* ret */
        flush_all();
        concurrent_patch(0, 0x0800006f, false, flush_all); /* jal zero, +128 */
        expect = result = 2;
    } else if (!strcmp(m, "cmodx-torn")) { /* the same patch as two 16-bit stores */
        code[0] = 0x00100513;
        code[1] = 0x00008067;
        flush_all();
        concurrent_patch(0, 0x00200513, true, flush_all);
        expect = result = 2;
    } else {
        return -1;
    }
    return 0;
}
static const char *const modes = "full prctl-full prctl-thread-full prctl-refused prctl-off "
                                 "flush-all-mt membarrier-mt flush-local-same-thread "
                                 "no-fence flush-local-other-thread fence-i-other-thread "
                                 "store-after-flush cmodx-branch cmodx-torn";
#else
#error "aarch64 or riscv64 only"
#endif

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: selftest MODE | list\n");
        return 2;
    }
    if (!strcmp(argv[1], "list")) {
        puts(modes);
        return 0;
    }
    page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    code = (uint32_t *)(page + OFFSET);
    int r = mode(argv[1]);
    if (r < 0) {
        fprintf(stderr, "unknown mode %s (selftest list)\n", argv[1]);
        return 2;
    }
    if (r) {
        return r;
    }
    if (result != expect) {
        fprintf(stderr, "%s: the code returned %ld, not %ld\n", argv[1], result, expect);
        return 1;
    }
    printf("%s: ok\n", argv[1]);
    return 0;
}
