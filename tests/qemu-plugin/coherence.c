/*
 * coherence: a QEMU 10 TCG plugin (plugin API v4, user mode) that fails when a program runs
 * instructions it wrote without making them coherent with instruction fetch, per thread.
 *
 * TCG keeps no caches and retranslates written code by itself, so a JIT that skips a flush
 * runs correctly under QEMU. This plugin models what the architecture allows instead: it
 * records every guest store, follows each thread's cache maintenance, barriers and system
 * calls, and for every instruction executed from bytes the program stored it checks that the
 * architecture's sequence completed after the last store to those bytes, for the thread that
 * executes them.
 *
 * AArch64 (Arm ARM B2.4.4 "Concurrent modification and execution of instructions", D7.5.9
 * "Ordering and completion of data and instruction cache instructions"), with the line sizes,
 * IDC and DIC of the model's CTR_EL0:
 *   (a) unless IDC, a `dc cvau` (or cvac, civac, cvap, cvadp) covering the D-line, issued after
 *       the store and completed by a `dsb` on the thread that issued it; with IDC, the store
 *       completed by a `dsb` on the storing thread;
 *   (b) unless DIC, an `ic ivau` covering the I-line, issued after (a) completed, completed by
 *       a `dsb` on its thread;
 *   (c) a context-synchronisation event on the executing thread after (b): its own `isb`, an
 *       exception return (the return of any system call), or a successful membarrier
 *       PRIVATE_EXPEDITED_SYNC_CORE or PRIVATE_EXPEDITED by any thread.
 * RISC-V (Linux arch/riscv/mm/cacheflush.c): after the last store, on the executing thread,
 *   its own `fence.i`, or `riscv_flush_icache` with flags 1 from that thread, or with flags 0
 *   from any thread, or a successful membarrier PRIVATE_EXPEDITED_SYNC_CORE (Linux 6.9+ runs
 *   `fence.i` on every hart for it). A user `fence.i` in a process that has not enabled
 *   prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX) (for the process or the calling thread; a successful
 *   call only, and OFF undoes it) is a warning: Linux does not then keep it valid across
 *   migration.
 *
 * Limits: user mode only; one virtual mapping per page (a store through an RW alias of an RX
 * mapping is not related to the RX address); sequentially consistent order of events (no
 * weak-memory reordering); bytes written by the kernel (read(2) into a buffer) are not stores.
 * `ic iallu`/`ic ialluis` are EL1-only and cannot appear in user mode.
 *
 * Arguments (-plugin coherence.so,ARG=VALUE,...):
 *   out=DIR     write DIR/coherence-<pid>.jsonl: one JSON object per finding or warning and a
 *               final {"kind":"summary",...} line (one file per process, forks included)
 *   ctr=0xHEX   the CTR_EL0 the model reports; checked against the register when QEMU exposes
 *               it (the run stops if they differ); required when it does not
 *   show=N      print the first N findings to stderr (default 10)
 * At exit one line goes to stderr:
 *   coherence: pid P: N findings (class=n ...), W warnings (...)
 */
#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

/* ---- finding classes ---------------------------------------------------------------- */

enum cls {
    /* AArch64 */
    C_NO_CLEAN,            /* (a) no D-cache clean of the line after the last store */
    C_CLEAN_INCOMPLETE,    /* (a) a clean was issued, no dsb on its thread completed it */
    C_STORE_INCOMPLETE,    /* (a) with IDC: the store was not completed by a dsb */
    C_NO_INVAL,            /* (b) no ic ivau of the line after (a) */
    C_INVAL_BEFORE_CLEAN,  /* (b) ic ivau issued before (a) completed */
    C_INVAL_INCOMPLETE,    /* (b) ic ivau issued, no dsb on its thread completed it */
    C_NO_SYNC_WRITER,      /* (c) the thread that stored runs it with no isb since (b) */
    C_NO_SYNC_OTHER,       /* (c) another thread runs it with no context synchronisation */
    /* RISC-V */
    C_NO_FENCE_I,          /* no fence.i or flush on any hart after the last store */
    C_FENCE_I_OTHER_HART,  /* fence.i or a local flush ran, but not on the executing hart */
    C_FINDINGS,
    /* warnings: counted, reported, not findings */
    W_FENCE_I_NO_PRCTL = C_FINDINGS, /* user fence.i without PR_RISCV_SET_ICACHE_FLUSH_CTX */
    C_ALL,
};

static const char *const cls_name[C_ALL] = {
    "no-clean", "clean-not-completed", "store-not-completed", "no-invalidate",
    "invalidate-before-clean", "invalidate-not-completed", "no-context-sync-writer",
    "no-context-sync-other", "no-fence-i", "fence-i-other-hart", "fence-i-without-prctl",
};

static const char *const cls_missing[C_ALL] = {
    "dc cvau of the D-line after the store",
    "a dsb completing the dc cvau on the thread that issued it",
    "a dsb on the storing thread completing the store (CTR_EL0.IDC=1)",
    "ic ivau of the I-line after the clean completed",
    "a dsb between the clean and the ic ivau (ic ivau issued before the clean completed)",
    "a dsb completing the ic ivau on the thread that issued it",
    "an isb on the writing thread after the invalidate completed",
    "a context synchronisation of this thread (isb, system call return, membarrier SYNC_CORE)",
    "fence.i (or riscv_flush_icache) after the store",
    "fence.i on this hart: the flush ran on another hart only (flags 1 or a user fence.i)",
    "prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX) before a user fence.i (not migration-safe)",
};

/* ---- global state ------------------------------------------------------------------- */

enum arch { A_AARCH64, A_RISCV64 };
static enum arch arch;
static unsigned gran_shift;        /* log2 of the store granule: 2 (A64), 1 (RISC-V C) */
static uint64_t ctr;               /* CTR_EL0 */
static bool ctr_arg;
static unsigned dline, iline;      /* bytes */
static bool idc, dic;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t clock_now = 1; /* event sequence: 0 means "never" */

static char *out_dir;
static FILE *out;
static pid_t out_pid;
static unsigned show = 10;
static uint64_t counts[C_ALL];
static uint64_t checked_insns, cmodx_allowed;

static uint64_t tick(void) { return atomic_fetch_add_explicit(&clock_now, 1, memory_order_relaxed); }

/* ---- per-page store and maintenance records ------------------------------------------ */

#define PAGE_SHIFT 12
#define PAGE_SIZE (1u << PAGE_SHIFT)
#define NBUCKETS (1u << 18)

/* Maintenance state of one granule: every field is an event time, 0 = never. */
struct maint {
    uint64_t clean_issued;   /* a clean covering it was issued after its then-last store */
    uint64_t cleaned;        /* first completion of such a clean */
    uint64_t inval_early;    /* an ic ivau issued after the store but before (a) completed */
    uint64_t inval_issued;   /* an ic ivau issued after (a) completed */
    uint64_t invalidated;    /* first completion of such an ic ivau */
    uint64_t reported;       /* the store time already reported (one finding per store) */
};

struct page {
    uint64_t pageno;
    struct page *_Atomic next;
    /* per granule: (store time << 16) | storing vCPU; 0 = never stored */
    _Atomic uint64_t *store;
    _Atomic uint64_t *store_pc;
    struct maint *_Atomic maint; /* allocated on first maintenance or check, under the lock */
    struct word *words;      /* per aligned 4-byte word: the concurrent-modification record */
};

/* What the concurrent-modification rule needs of one aligned 4-byte word. */
struct word {
    uint32_t cur, prev;      /* its value, and the value before the last store */
    bool cur_whole;          /* the last store wrote the whole word at once (single-copy atomic) */
    bool prev_whole;         /* so did the one before */
    uint64_t prev_done;      /* when the previous value had been made coherent (0: never) */
};

static struct page *_Atomic buckets[NBUCKETS];
static __thread struct page *last_page; /* each vCPU is a host thread in user mode */

static unsigned granules(void) { return PAGE_SIZE >> gran_shift; }

static struct page *page_find(uint64_t pageno)
{
    struct page *p = atomic_load_explicit(&buckets[pageno % NBUCKETS], memory_order_acquire);
    for (; p; p = atomic_load_explicit(&p->next, memory_order_acquire)) {
        if (p->pageno == pageno) {
            return p;
        }
    }
    return NULL;
}

/* Pages are never freed, so readers walk the chains without the lock. */
static struct page *page_get(uint64_t pageno)
{
    struct page *p = page_find(pageno);
    if (p) {
        return p;
    }
    pthread_mutex_lock(&lock);
    p = page_find(pageno);
    if (!p) {
        p = g_new0(struct page, 1);
        p->pageno = pageno;
        p->store = g_new0(_Atomic uint64_t, granules());
        p->store_pc = g_new0(_Atomic uint64_t, granules());
        p->words = g_new0(struct word, PAGE_SIZE / 4);
        p->next = atomic_load_explicit(&buckets[pageno % NBUCKETS], memory_order_relaxed);
        atomic_store_explicit(&buckets[pageno % NBUCKETS], p, memory_order_release);
    }
    pthread_mutex_unlock(&lock);
    return p;
}

/* Under the lock. */
static struct maint *maint_of(struct page *p, unsigned g)
{
    struct maint *m = atomic_load_explicit(&p->maint, memory_order_relaxed);
    if (!m) {
        m = g_new0(struct maint, granules());
        atomic_store_explicit(&p->maint, m, memory_order_release);
    }
    return &m[g];
}

/* ---- per-vCPU state --------------------------------------------------------------------- */

#define MAX_VCPUS 4096

struct pending {
    uint64_t line;     /* line address */
    uint64_t issued;   /* event time */
    bool inval;        /* ic ivau (else dc clean) */
};

struct vcpu {
    long tid;                 /* host thread id = guest thread id in user mode */
    uint64_t csync;           /* AArch64: last context synchronisation; RISC-V: last fence.i */
    GArray *pending;          /* struct pending: issued, not yet completed by a dsb */
    GArray *dsbs;             /* uint64_t: times of completing dsbs, ascending */
    uint64_t sc_args[3];      /* the first arguments of the system call in progress */
    bool cmodx;               /* RISC-V: prctl enabled for this thread (PER_THREAD) */
};

static struct vcpu vcpus[MAX_VCPUS];
static uint64_t global_sync;  /* membarrier SYNC_CORE (both), PRIVATE_EXPEDITED (A64), flags 0 */
static uint64_t any_local_fence; /* RISC-V: last fence.i / flags-1 flush on any hart */
static bool cmodx_process;    /* RISC-V: prctl enabled PER_PROCESS */
static GHashTable *warned_pcs;

static struct vcpu *vcpu_of(unsigned idx)
{
    return &vcpus[idx < MAX_VCPUS ? idx : MAX_VCPUS - 1];
}

static long vcpu_tid(unsigned idx) { return vcpu_of(idx)->tid; }

static void vcpu_init(qemu_plugin_id_t id, unsigned int idx)
{
    pthread_mutex_lock(&lock);
    struct vcpu *v = vcpu_of(idx);
    if (!v->pending) {
        v->pending = g_array_new(false, false, sizeof(struct pending));
        v->dsbs = g_array_new(false, false, sizeof(uint64_t));
    }
    g_array_set_size(v->pending, 0);
    v->tid = 0;
    v->cmodx = false;
    /* A new AArch64 thread starts with an exception return; a RISC-V thread gets no fence.i
     * from Linux when it lands on a hart that ran a sibling thread. */
    v->csync = arch == A_AARCH64 ? tick() : 0;
    pthread_mutex_unlock(&lock);
}

static void note_tid(unsigned idx)
{
    struct vcpu *v = vcpu_of(idx);
    if (!v->tid) {
        v->tid = syscall(SYS_gettid);
    }
}

/* ---- stores ----------------------------------------------------------------------------- */

static uint64_t store_time(uint64_t s) { return s >> 16; }
static unsigned store_vcpu(uint64_t s) { return s & 0xffff; }
static uint64_t completed(struct maint *m, uint64_t s);

static struct page *page_of(uint64_t addr)
{
    struct page *p = last_page;
    if (!p || p->pageno != addr >> PAGE_SHIFT) {
        p = last_page = page_get(addr >> PAGE_SHIFT);
    }
    return p;
}

/* One aligned word of a store: value bytes [lo, hi) of the word change to `bytes`. */
static void store_word(struct page *p, uint64_t addr, unsigned lo, unsigned hi,
                       const uint8_t *bytes, bool whole)
{
    struct word *w = &p->words[(addr & (PAGE_SIZE - 1)) >> 2];
    unsigned g = (addr & (PAGE_SIZE - 1)) >> gran_shift;
    uint64_t s = atomic_load_explicit(&p->store[g], memory_order_relaxed);
    /* Pages that saw maintenance are code pages: there the previous value's state matters
     * and is read under the lock. Other pages (most stores) take no lock. */
    struct maint *m = atomic_load_explicit(&p->maint, memory_order_acquire);
    if (arch == A_RISCV64) {
        uint64_t sync = global_sync; /* racy read: an event order, not a value, is needed */
        w->prev_done = s && sync > store_time(s) ? sync : 0;
    } else if (m) {
        pthread_mutex_lock(&lock);
        w->prev_done = s ? completed(&m[g], s) : 0;
        pthread_mutex_unlock(&lock);
    } else {
        w->prev_done = 0;
    }
    uint32_t v = w->cur;
    for (unsigned i = lo; i < hi; i++) {
        v = (v & ~(0xffu << (8 * i))) | ((uint32_t)bytes[i - lo] << (8 * i));
    }
    w->prev = w->cur;
    w->prev_whole = w->cur_whole;
    w->cur = v;
    w->cur_whole = whole;
}

static void record_store(unsigned idx, uint64_t vaddr, unsigned size, const uint8_t *bytes,
                         uint64_t pc)
{
    uint64_t t = tick();
    uint64_t val = (t << 16) | (idx & 0xffff);
    /* An aligned store of 4 or more bytes writes each of its words single-copy atomically. */
    bool whole = size >= 4 && vaddr % (size < 8 ? size : 8) == 0;
    for (uint64_t a = vaddr & ~3ull; a < vaddr + size; a += 4) {
        struct page *p = page_of(a);
        unsigned lo = a < vaddr ? vaddr - a : 0;
        unsigned hi = a + 4 > vaddr + size ? vaddr + size - a : 4;
        store_word(p, a, lo, hi, bytes + (a + lo - vaddr), whole);
        for (uint64_t b = a + lo; b < a + hi; b += 1u << gran_shift) {
            unsigned g = (b & (PAGE_SIZE - 1)) >> gran_shift;
            atomic_store_explicit(&p->store[g], val, memory_order_relaxed);
            atomic_store_explicit(&p->store_pc[g], pc, memory_order_relaxed);
        }
    }
}

static void mem_cb(unsigned int idx, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    if (!qemu_plugin_mem_is_store(info)) {
        return;
    }
    note_tid(idx);
    qemu_plugin_mem_value v = qemu_plugin_mem_get_value(info);
    uint8_t bytes[16];
    unsigned size = 1u << qemu_plugin_mem_size_shift(info);
    switch (v.type) { /* little-endian guests: memory order is the value's byte order */
    case QEMU_PLUGIN_MEM_VALUE_U8: bytes[0] = v.data.u8; break;
    case QEMU_PLUGIN_MEM_VALUE_U16: memcpy(bytes, &v.data.u16, 2); break;
    case QEMU_PLUGIN_MEM_VALUE_U32: memcpy(bytes, &v.data.u32, 4); break;
    case QEMU_PLUGIN_MEM_VALUE_U64: memcpy(bytes, &v.data.u64, 8); break;
    case QEMU_PLUGIN_MEM_VALUE_U128:
        memcpy(bytes, &v.data.u128.low, 8);
        memcpy(bytes + 8, &v.data.u128.high, 8);
        break;
    }
    if (size > 16) {
        size = 16;
    }
    record_store(idx, vaddr, size, bytes, (uint64_t)udata);
}

/* ---- reports ---------------------------------------------------------------------------- */

/* A forked child inherits this state: it counts from zero from the fork on (checked code
 * included, which no finding would otherwise reset in time), in the child's fork handler. */
static void reset_counts_in_child(void)
{
    memset(counts, 0, sizeof counts);
    checked_insns = cmodx_allowed = 0;
}

/* ... and writes its own file, opened at its first finding or at its exit. Under the lock. */
static void own_process(void)
{
    if (out_pid == getpid()) {
        return;
    }
    out_pid = getpid();
    if (out_dir) {
        g_autofree char *path = g_strdup_printf("%s/coherence-%d.jsonl", out_dir, out_pid);
        if (out) {
            fclose(out);
        }
        out = fopen(path, "w");
        if (!out) {
            fprintf(stderr, "coherence: cannot write %s: %s\n", path, strerror(errno));
            exit(70);
        }
    }
}

/* ic_seen: 1 if an ic ivau covered these bytes after the store (AArch64), 0 if none, -1 n/a */
static void emit(enum cls c, unsigned idx, uint64_t pc, uint64_t addr, uint64_t s,
                 uint64_t store_pc, int ic_seen)
{
    own_process();
    counts[c]++;
    uint64_t now = tick();
    bool warning = c >= C_FINDINGS;
    if (out) {
        fprintf(out,
                "{\"kind\":\"%s\",\"class\":\"%s\",\"pc\":\"0x%" PRIx64 "\",\"thread\":%ld,"
                "\"vcpu\":%u,\"time\":%" PRIu64 ",\"addr\":\"0x%" PRIx64 "\",",
                warning ? "warning" : "finding", cls_name[c], pc, vcpu_tid(idx), idx, now, addr);
        if (s) {
            fprintf(out,
                    "\"store_pc\":\"0x%" PRIx64 "\",\"store_thread\":%ld,\"store_vcpu\":%u,"
                    "\"store_time\":%" PRIu64 ",",
                    store_pc, vcpu_tid(store_vcpu(s)), store_vcpu(s), store_time(s));
        }
        if (ic_seen >= 0) {
            fprintf(out, "\"ic_ivau_seen\":%s,", ic_seen ? "true" : "false");
        }
        fprintf(out, "\"missing\":\"%s\"}\n", cls_missing[c]);
        fflush(out);
    }
    uint64_t total = 0;
    for (int i = 0; i < C_FINDINGS; i++) {
        total += counts[i];
    }
    if (!warning && total <= show) {
        g_autoptr(GString) msg = g_string_new(NULL);
        g_string_printf(msg,
                        "coherence: %s: thread %ld (vcpu %u) executes 0x%" PRIx64
                        " (bytes at 0x%" PRIx64 ") stored by thread %ld (vcpu %u) at pc 0x%" PRIx64
                        ", time %" PRIu64 "; now %" PRIu64 "; missing: %s\n",
                        cls_name[c], vcpu_tid(idx), idx, pc, addr, vcpu_tid(store_vcpu(s)),
                        store_vcpu(s), store_pc, store_time(s), now, cls_missing[c]);
        fputs(msg->str, stderr);
    }
}

/* ---- AArch64: CTR_EL0 ------------------------------------------------------------------- */

static void set_ctr(uint64_t value)
{
    ctr = value;
    dline = 4u << ((value >> 16) & 0xf);
    iline = 4u << (value & 0xf);
    idc = (value >> 28) & 1;
    dic = (value >> 29) & 1;
}

static struct qemu_plugin_register *find_reg(const char *name)
{
    g_autoptr(GArray) regs = qemu_plugin_get_registers();
    for (guint i = 0; i < regs->len; i++) {
        qemu_plugin_reg_descriptor *d = &g_array_index(regs, qemu_plugin_reg_descriptor, i);
        if (g_ascii_strcasecmp(d->name, name) == 0) {
            return d->handle;
        }
    }
    return NULL;
}

static bool read_reg(struct qemu_plugin_register *h, uint64_t *value)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();
    int n = qemu_plugin_read_register(h, buf);
    if (n <= 0 || n > 8) {
        return false;
    }
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | buf->data[i]; /* target byte order: little-endian on both */
    }
    *value = v;
    return true;
}

static _Atomic bool ctr_checked;

/* Runs once, on the first translated block, with register access. */
static void ctr_cb(unsigned int idx, void *udata)
{
    if (atomic_exchange(&ctr_checked, true)) {
        return;
    }
    struct qemu_plugin_register *h = find_reg("CTR_EL0");
    uint64_t v;
    if (h && read_reg(h, &v)) {
        if (ctr_arg && v != ctr) {
            fprintf(stderr, "coherence: ctr=0x%" PRIx64 " given, the model reports CTR_EL0=0x%" PRIx64 "\n",
                    ctr, v);
            exit(70);
        }
        pthread_mutex_lock(&lock);
        set_ctr(v);
        pthread_mutex_unlock(&lock);
    } else if (!ctr_arg) {
        fprintf(stderr, "coherence: QEMU does not expose CTR_EL0 to plugins: pass ctr=0x...\n");
        exit(70);
    }
}

/* ---- AArch64: maintenance, barriers ----------------------------------------------------- */

static GArray *xregs; /* handles of x0..x30, found on first use */

static uint64_t read_x(unsigned r)
{
    if (r == 31) {
        return 0; /* xzr */
    }
    if (!xregs) {
        GArray *a = g_array_new(false, true, sizeof(void *));
        for (unsigned i = 0; i < 31; i++) {
            char name[8];
            snprintf(name, sizeof name, "x%u", i);
            struct qemu_plugin_register *h = find_reg(name);
            if (!h) {
                fprintf(stderr, "coherence: no register %s\n", name);
                exit(70);
            }
            g_array_append_val(a, h);
        }
        xregs = a;
    }
    uint64_t v = 0;
    if (!read_reg(g_array_index(xregs, struct qemu_plugin_register *, r), &v)) {
        fprintf(stderr, "coherence: cannot read x%u\n", r);
        exit(70);
    }
    return v;
}

static uint64_t clean_done(struct maint *m, uint64_t s, unsigned by);

/* userdata of a maintenance instruction: (pc << 8) | (inval << 5) | Rt */
static void maint_cb(unsigned int idx, void *udata)
{
    uint64_t u = (uint64_t)udata;
    bool inval = (u >> 5) & 1;
    uint64_t addr = read_x(u & 31);
    note_tid(idx);
    pthread_mutex_lock(&lock);
    uint64_t t = tick();
    unsigned size = inval ? iline : dline;
    uint64_t line = addr & ~(uint64_t)(size - 1);
    struct pending op = { .line = line, .issued = t, .inval = inval };
    g_array_append_val(vcpu_of(idx)->pending, op);
    /* Mark issue times, for the classification of findings. */
    for (uint64_t a = line; a < line + size; a += 1u << gran_shift) {
        struct page *p = page_find(a >> PAGE_SHIFT);
        unsigned g = (a & (PAGE_SIZE - 1)) >> gran_shift;
        uint64_t s = p ? atomic_load_explicit(&p->store[g], memory_order_relaxed) : 0;
        if (!s) {
            continue;
        }
        struct maint *m = maint_of(p, g);
        if (!inval) {
            m->clean_issued = t;
        } else if (clean_done(m, s, idx)) {
            m->inval_issued = t;
        } else {
            m->inval_early = t;
        }
    }
    pthread_mutex_unlock(&lock);
}

/* First completing dsb of vCPU v after time t, or 0. Under the lock. */
static uint64_t dsb_after(unsigned v, uint64_t t)
{
    GArray *d = vcpu_of(v)->dsbs;
    guint lo = 0, hi = d ? d->len : 0;
    while (lo < hi) {
        guint mid = (lo + hi) / 2;
        if (g_array_index(d, uint64_t, mid) > t) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return d && lo < d->len ? g_array_index(d, uint64_t, lo) : 0;
}

/* When (a) completed for a granule with store s, as seen by vCPU `by` (the one that issues
 * the ic ivau, or executes the bytes), or 0. Under the lock.
 * With IDC the store itself must complete: a dsb on the storing thread, or a dsb on `by`
 * after the store. The second counts because events are taken in one global order (no
 * weak-memory model): `by` has observed the store, and its dsb waits for every access it
 * observed (Arm ARM B2.3, DSB; multi-copy atomicity), e.g. code written by one thread and
 * published by another that the writer started or handed it to. */
static uint64_t clean_done(struct maint *m, uint64_t s, unsigned by)
{
    if (idc) {
        uint64_t own = dsb_after(store_vcpu(s), store_time(s));
        uint64_t seen = dsb_after(by, store_time(s));
        return own && (!seen || own < seen) ? own : seen;
    }
    return m && m->cleaned > store_time(s) ? m->cleaned : 0;
}

static void dsb_cb(unsigned int idx, void *udata)
{
    pthread_mutex_lock(&lock);
    uint64_t t = tick();
    struct vcpu *v = vcpu_of(idx);
    g_array_append_val(v->dsbs, t);
    for (guint i = 0; i < v->pending->len; i++) {
        struct pending *op = &g_array_index(v->pending, struct pending, i);
        unsigned size = op->inval ? iline : dline;
        for (uint64_t a = op->line; a < op->line + size; a += 1u << gran_shift) {
            struct page *p = page_find(a >> PAGE_SHIFT);
            if (!p) {
                continue;
            }
            unsigned g = (a & (PAGE_SIZE - 1)) >> gran_shift;
            uint64_t s = atomic_load_explicit(&p->store[g], memory_order_relaxed);
            if (!s || store_time(s) > op->issued) {
                continue; /* stored after the maintenance was issued: it does not count */
            }
            struct maint *m = maint_of(p, g);
            if (!op->inval) {
                if (m->cleaned <= store_time(s)) {
                    m->cleaned = t;
                }
            } else {
                uint64_t a_done = clean_done(m, s, idx);
                if (a_done && a_done < op->issued && m->invalidated <= store_time(s)) {
                    m->invalidated = t;
                }
            }
        }
    }
    g_array_set_size(v->pending, 0);
    pthread_mutex_unlock(&lock);
}

static void isb_cb(unsigned int idx, void *udata)
{
    pthread_mutex_lock(&lock);
    vcpu_of(idx)->csync = tick();
    pthread_mutex_unlock(&lock);
}

/* ---- RISC-V: fence.i ------------------------------------------------------------------- */

static void fencei_cb(unsigned int idx, void *udata)
{
    note_tid(idx);
    pthread_mutex_lock(&lock);
    uint64_t t = tick();
    struct vcpu *v = vcpu_of(idx);
    v->csync = t;
    any_local_fence = t;
    uint64_t pc = (uint64_t)udata;
    if (!cmodx_process && !v->cmodx && !g_hash_table_contains(warned_pcs, (gpointer)pc)) {
        g_hash_table_add(warned_pcs, (gpointer)pc);
        emit(W_FENCE_I_NO_PRCTL, idx, pc, pc, 0, 0, -1);
    }
    pthread_mutex_unlock(&lock);
}

/* ---- execution of stored bytes ---------------------------------------------------------- */

/* Which step is missing for granule g of page p, executed by vCPU idx, or C_ALL if none.
 * Under the lock. */
static enum cls missing_step(struct page *p, unsigned g, uint64_t s, unsigned idx)
{
    uint64_t st = store_time(s);
    struct maint *pm = atomic_load_explicit(&p->maint, memory_order_relaxed);
    struct maint *m = pm ? &pm[g] : NULL;
    uint64_t sync = vcpu_of(idx)->csync > global_sync ? vcpu_of(idx)->csync : global_sync;
    if (arch == A_RISCV64) {
        if (sync > st) {
            return C_ALL;
        }
        return any_local_fence > st ? C_FENCE_I_OTHER_HART : C_NO_FENCE_I;
    }
    uint64_t a_done = clean_done(m, s, idx);
    if (!a_done) {
        if (idc) {
            return C_STORE_INCOMPLETE;
        }
        return m && m->clean_issued > st ? C_CLEAN_INCOMPLETE : C_NO_CLEAN;
    }
    uint64_t b_done = a_done;
    if (!dic) {
        if (!m || m->invalidated <= st) {
            if (m && m->inval_issued > st) {
                return C_INVAL_INCOMPLETE;
            }
            return m && m->inval_early > st ? C_INVAL_BEFORE_CLEAN : C_NO_INVAL;
        }
        b_done = m->invalidated;
    }
    if (sync > b_done) {
        return C_ALL;
    }
    return store_vcpu(s) == idx ? C_NO_SYNC_WRITER : C_NO_SYNC_OTHER;
}

/* When the version of a granule stored at s had been made coherent for every thread that
 * synchronises after it: AArch64 (b) completed (or (a) with DIC); RISC-V a flush of every
 * hart. 0 if not yet. Under the lock. */
static uint64_t completed(struct maint *m, uint64_t s)
{
    uint64_t st = store_time(s);
    if (arch == A_RISCV64) {
        return global_sync > st ? global_sync : 0;
    }
    uint64_t a_done = clean_done(m, s, store_vcpu(s));
    if (!a_done || dic) {
        return a_done;
    }
    return m->invalidated > st ? m->invalidated : 0;
}

/* The instructions the Arm ARM (B2.2.5, "Concurrent modification and execution of
 * instructions") lets one thread replace while another executes them: the other executes the
 * old or the new one. RISC-V has no such list; with Ziccif (RVA23) an aligned 32-bit
 * instruction is fetched atomically, and Linux's own live patching (ftrace, cmodx.rst) swaps
 * only jumps and nops that way, so the same short list is used there. */
static bool cmodx_insn(uint32_t w)
{
    if (arch == A_RISCV64) {
        return (w & 0x7f) == 0x6f     /* jal */
               || w == 0x00000013     /* nop */
               || w == 0x00100073;    /* ebreak */
    }
    return (w & 0x7c000000) == 0x14000000     /* b, bl */
           || w == 0xd503201f                 /* nop */
           || w == 0xd5033fdf                 /* isb */
           || (w & 0xffe0001f) == 0xd4200000  /* brk */
           || (w & 0xffe0001c) == 0xd4000000; /* svc, hvc, smc */
}


/* Executing a word stored concurrently is no finding when the rule above covers it: both
 * values are such instructions, each written by one single-copy-atomic store, and the old one
 * had been made coherent for this thread. Under the lock. */
static bool concurrent_modification(struct page *p, uint64_t addr, unsigned idx)
{
    if (addr & 3) {
        return false;
    }
    struct word *w = &p->words[(addr & (PAGE_SIZE - 1)) >> 2];
    if (!w->cur_whole || !w->prev_whole || !w->prev_done || !cmodx_insn(w->cur) ||
        !cmodx_insn(w->prev)) {
        return false;
    }
    uint64_t sync = vcpu_of(idx)->csync > global_sync ? vcpu_of(idx)->csync : global_sync;
    return arch == A_RISCV64 || sync > w->prev_done;
}

/* userdata: (size << 56) | pc */
static void exec_cb(unsigned int idx, void *udata)
{
    uint64_t u = (uint64_t)udata;
    uint64_t pc = u & ((1ull << 56) - 1);
    unsigned size = u >> 56;
    note_tid(idx);
    pthread_mutex_lock(&lock);
    checked_insns++;
    for (uint64_t a = pc; a < pc + size; a += 1u << gran_shift) {
        struct page *p = page_find(a >> PAGE_SHIFT);
        if (!p) {
            continue;
        }
        unsigned g = (a & (PAGE_SIZE - 1)) >> gran_shift;
        uint64_t s = atomic_load_explicit(&p->store[g], memory_order_relaxed);
        if (!s) {
            continue;
        }
        enum cls c = missing_step(p, g, s, idx);
        if (c == C_ALL) {
            continue;
        }
        if (concurrent_modification(p, pc, idx)) {
            cmodx_allowed++;
            break;
        }
        struct maint *m = maint_of(p, g);
        if (m->reported == store_time(s)) {
            break; /* this version of these bytes was already reported */
        }
        m->reported = store_time(s);
        uint64_t st = store_time(s);
        int ic_seen = arch == A_RISCV64 ? -1
                      : m->invalidated > st || m->inval_issued > st || m->inval_early > st;
        emit(c, idx, pc, a, s, atomic_load_explicit(&p->store_pc[g], memory_order_relaxed),
             ic_seen);
        break;
    }
    pthread_mutex_unlock(&lock);
}

static bool ever_stored(uint64_t vaddr, size_t size)
{
    for (uint64_t a = vaddr; a < vaddr + size; a += 1u << gran_shift) {
        struct page *p = page_find(a >> PAGE_SHIFT);
        if (p && atomic_load_explicit(&p->store[(a & (PAGE_SIZE - 1)) >> gran_shift],
                                      memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

/* ---- system calls ----------------------------------------------------------------------- */

#define NR_MEMBARRIER 283        /* asm-generic: arm64, riscv64 */
#define NR_RISCV_FLUSH_ICACHE 259
#define NR_PRCTL 167
#define MEMBARRIER_PRIVATE_EXPEDITED 8
#define MEMBARRIER_PRIVATE_EXPEDITED_SYNC_CORE 32
#define PR_RISCV_SET_ICACHE_FLUSH_CTX 71
#define PR_RISCV_CTX_SW_FENCEI_ON 0
#define PR_RISCV_SCOPE_PER_PROCESS 0

static void syscall_cb(qemu_plugin_id_t id, unsigned int idx, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    struct vcpu *v = vcpu_of(idx);
    v->sc_args[0] = a1;
    v->sc_args[1] = a2;
    v->sc_args[2] = a3;
}

static void syscall_ret_cb(qemu_plugin_id_t id, unsigned int idx, int64_t num, int64_t ret)
{
    struct vcpu *v = vcpu_of(idx);
    pthread_mutex_lock(&lock);
    uint64_t t = tick();
    if (arch == A_AARCH64) {
        v->csync = t; /* the return to EL0 is an exception return */
        if (num == NR_MEMBARRIER && ret == 0 &&
            (v->sc_args[0] == MEMBARRIER_PRIVATE_EXPEDITED_SYNC_CORE ||
             v->sc_args[0] == MEMBARRIER_PRIVATE_EXPEDITED)) {
            global_sync = t;
        }
    } else {
        if (num == NR_MEMBARRIER && ret == 0 &&
            v->sc_args[0] == MEMBARRIER_PRIVATE_EXPEDITED_SYNC_CORE) {
            global_sync = t;
        } else if (num == NR_PRCTL && ret == 0 && v->sc_args[0] == PR_RISCV_SET_ICACHE_FLUSH_CTX) {
            /* Only a call that succeeded counts (the kernel validated ctx and scope). OFF
             * clears the one scope it names; the other stays as it was, as in Linux. */
            bool on = v->sc_args[1] == PR_RISCV_CTX_SW_FENCEI_ON;
            if (v->sc_args[2] == PR_RISCV_SCOPE_PER_PROCESS) {
                cmodx_process = on;
            } else {
                v->cmodx = on;
            }
        }
    }
    pthread_mutex_unlock(&lock);
}

/* riscv_flush_icache never reaches QEMU's system-call layer (linux-user/riscv/cpu_loop.c
 * answers 0 to it in place, since TCG needs no flush), so the plugin sees no syscall
 * callback for it: the `ecall` itself is instrumented and its registers read. A real kernel
 * rejects flags other than 0 and 1 with EINVAL; so does this model (no effect). */
static struct qemu_plugin_register *reg_a7, *reg_a2;

static void riscv_flush(unsigned idx, uint64_t flags)
{
    note_tid(idx);
    pthread_mutex_lock(&lock);
    uint64_t t = tick();
    if (flags == 0) {
        global_sync = t;
    } else if (flags == 1) {
        vcpu_of(idx)->csync = t;
        any_local_fence = t;
    }
    pthread_mutex_unlock(&lock);
}

static void find_riscv_regs(void)
{
    if (!reg_a7) {
        reg_a7 = find_reg("a7");
        reg_a2 = find_reg("a2");
        if (!reg_a7 || !reg_a2) {
            fprintf(stderr, "coherence: no register a7/a2\n");
            exit(70);
        }
    }
}

static void ecall_cb(unsigned int idx, void *udata)
{
    find_riscv_regs();
    uint64_t nr, flags;
    if (read_reg(reg_a7, &nr) && nr == NR_RISCV_FLUSH_ICACHE && read_reg(reg_a2, &flags)) {
        riscv_flush(idx, flags);
    }
}

/* glibc's __riscv_flush_icache calls the vDSO's __vdso_flush_icache, which on an SMP Linux
 * kernel is the same system call (arch/riscv/kernel/vdso/flush_icache.S); QEMU's vDSO answers
 * 0 without one. Its entry is recognised by symbol (QEMU loads the vDSO's symbols when
 * logging is on: .ci/coherence-run passes -d plugin) and read as that call. */
static void vdso_flush_cb(unsigned int idx, void *udata)
{
    find_riscv_regs();
    uint64_t flags;
    if (read_reg(reg_a2, &flags)) {
        riscv_flush(idx, flags);
    }
}

/* ---- translation ------------------------------------------------------------------------ */

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (arch == A_AARCH64 && !atomic_load(&ctr_checked) && n) {
        qemu_plugin_register_vcpu_insn_exec_cb(qemu_plugin_tb_get_insn(tb, 0), ctr_cb,
                                               QEMU_PLUGIN_CB_R_REGS, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        size_t size = qemu_plugin_insn_size(insn);
        uint32_t w = 0;
        qemu_plugin_insn_data(insn, &w, size < 4 ? size : 4);

        qemu_plugin_register_vcpu_mem_cb(insn, mem_cb, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_W,
                                         (void *)pc);
        if (ever_stored(pc, size)) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, exec_cb, QEMU_PLUGIN_CB_NO_REGS,
                                                   (void *)((uint64_t)size << 56 | pc));
        }
        if (arch == A_AARCH64) {
            uint32_t op = w & ~31u;
            bool clean = op == 0xd50b7b20    /* dc cvau */
                         || op == 0xd50b7a20 /* dc cvac */
                         || op == 0xd50b7e20 /* dc civac */
                         || op == 0xd50b7c20 /* dc cvap */
                         || op == 0xd50b7d20; /* dc cvadp */
            bool inval = op == 0xd50b7520;   /* ic ivau */
            if (clean || inval) {
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn, maint_cb, QEMU_PLUGIN_CB_R_REGS,
                    (void *)(pc << 8 | (uint64_t)inval << 5 | (w & 31)));
            }
            /* DSB: CRm[3:2] domain (NSH=01 only orders this core), CRm[1:0] type (00 is
             * SSBB/PSSBB, not a barrier; LD-only does not wait for maintenance). */
            if ((w & 0xfffff0ff) == 0xd503309f) {
                unsigned crm = (w >> 8) & 15;
                if ((crm & 3) >= 2 && (crm >> 2) != 1) {
                    qemu_plugin_register_vcpu_insn_exec_cb(insn, dsb_cb, QEMU_PLUGIN_CB_NO_REGS,
                                                           NULL);
                }
            }
            if ((w & 0xfffff0ff) == 0xd50330df) { /* isb */
                qemu_plugin_register_vcpu_insn_exec_cb(insn, isb_cb, QEMU_PLUGIN_CB_NO_REGS,
                                                       NULL);
            }
        } else if (i == 0 && qemu_plugin_insn_symbol(insn) &&
                   strcmp(qemu_plugin_insn_symbol(insn), "__vdso_flush_icache") == 0) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, vdso_flush_cb, QEMU_PLUGIN_CB_R_REGS,
                                                   NULL);
        } else if (size == 4 && w == 0x00000073) { /* ecall */
            qemu_plugin_register_vcpu_insn_exec_cb(insn, ecall_cb, QEMU_PLUGIN_CB_R_REGS, NULL);
        } else if (size == 4 && (w & 0x707f) == 0x100f) { /* fence.i */
            qemu_plugin_register_vcpu_insn_exec_cb(insn, fencei_cb, QEMU_PLUGIN_CB_NO_REGS,
                                                   (void *)pc);
        }
    }
}

/* ---- exit -------------------------------------------------------------------------------- */

static void at_exit(qemu_plugin_id_t id, void *udata)
{
    pthread_mutex_lock(&lock);
    own_process();
    g_autoptr(GString) line = g_string_new(NULL);
    g_autoptr(GString) json = g_string_new(NULL);
    uint64_t findings = 0, warnings = 0;
    for (int c = 0; c < C_ALL; c++) {
        *(c < C_FINDINGS ? &findings : &warnings) += counts[c];
    }
    g_string_printf(line, "coherence: pid %d (%s", getpid(),
                    arch == A_AARCH64 ? "aarch64" : "riscv64");
    if (arch == A_AARCH64) {
        g_string_append_printf(line, ", CTR_EL0=0x%" PRIx64 ": D %u B, I %u B, IDC %d, DIC %d", ctr,
                               dline, iline, idc, dic);
    }
    g_string_append_printf(line, "): %" PRIu64 " findings", findings);
    g_string_printf(json, "{\"kind\":\"summary\",\"pid\":%d,\"arch\":\"%s\",\"ctr\":\"0x%" PRIx64
                    "\",\"cmodx\":%" PRIu64 ",\"checked_insns\":%" PRIu64 ",\"findings\":%" PRIu64 ",\"warnings\":%" PRIu64
                    ",\"classes\":{",
                    getpid(), arch == A_AARCH64 ? "aarch64" : "riscv64", ctr, cmodx_allowed,
                    checked_insns,
                    findings, warnings);
    bool first = true;
    for (int c = 0; c < C_ALL; c++) {
        if (!counts[c]) {
            continue;
        }
        g_string_append_printf(line, "%s%s=%" PRIu64, c == C_FINDINGS ? "; warnings " : " ",
                               cls_name[c], counts[c]);
        g_string_append_printf(json, "%s\"%s\":%" PRIu64, first ? "" : ",", cls_name[c], counts[c]);
        first = false;
    }
    if (warnings && !counts[C_FINDINGS]) {
        g_string_append_printf(line, "; %" PRIu64 " warnings", warnings);
    }
    g_string_append_printf(line,
                           "; %" PRIu64 " executions of stored bytes checked, %" PRIu64
                           " of them of an instruction under concurrent modification\n",
                           checked_insns, cmodx_allowed);
    g_string_append(json, "}}\n");
    fputs(line->str, stderr);
    if (out) {
        fputs(json->str, out);
        fflush(out);
    }
    pthread_mutex_unlock(&lock);
}

/* ---- install ------------------------------------------------------------------------------ */

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    if (strcmp(info->target_name, "aarch64") == 0) {
        arch = A_AARCH64;
        gran_shift = 2;
    } else if (strcmp(info->target_name, "riscv64") == 0) {
        arch = A_RISCV64;
        gran_shift = 1;
    } else {
        fprintf(stderr, "coherence: %s is not supported (aarch64, riscv64)\n", info->target_name);
        return -1;
    }
    if (info->system_emulation) {
        fprintf(stderr, "coherence: user mode only\n");
        return -1;
    }
    /* QEMU user mode forks the host process for a guest fork: this runs in the child. */
    pthread_atfork(NULL, NULL, reset_counts_in_child);
    for (int i = 0; i < argc; i++) {
        g_auto(GStrv) kv = g_strsplit(argv[i], "=", 2);
        if (!kv[0] || !kv[1]) {
            fprintf(stderr, "coherence: bad argument %s\n", argv[i]);
            return -1;
        }
        if (strcmp(kv[0], "out") == 0) {
            out_dir = g_strdup(kv[1]);
        } else if (strcmp(kv[0], "ctr") == 0) {
            set_ctr(g_ascii_strtoull(kv[1], NULL, 0));
            ctr_arg = true;
        } else if (strcmp(kv[0], "show") == 0) {
            show = (unsigned)g_ascii_strtoull(kv[1], NULL, 0);
        } else {
            fprintf(stderr, "coherence: unknown argument %s\n", kv[0]);
            return -1;
        }
    }
    own_process();
    warned_pcs = g_hash_table_new(g_direct_hash, g_direct_equal);
    qemu_plugin_register_vcpu_init_cb(id, vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, syscall_cb);
    qemu_plugin_register_vcpu_syscall_ret_cb(id, syscall_ret_cb);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
