/*
 * icount: a QEMU TCG plugin (plugin API version 1, QEMU 7.2 user mode) that counts the
 * instructions a guest executes, by class: the AArch64 cache-maintenance instructions,
 * barriers and system calls this crate issues, the RISC-V `fence.i` and `ecall`, and the total.
 * `.ci/icount.sh` uses it to check that each call of the crate executes exactly the
 * instructions the architecture requires and no more.
 *
 * Usage: qemu-aarch64 -plugin target/icount.so[,outfile=PATH] ...
 * Prints "name count" lines at exit, to PATH or to stderr: the whole run, or the window between
 * the first and the last marker instruction (see below) where the guest executed two or more,
 * then "markers N".
 *
 * Counting is done with inline adds, which are not atomic: the counts are exact for a
 * single-threaded guest, which is what the probe is.
 *
 * There is no development header for QEMU's plugin API on Debian, so the few declarations
 * needed are written here from the API's documented signatures. Built with
 * -DICOUNT_QEMU_HEADER and -I<prefix>/include, it uses the header of the QEMU 10 that
 * .ci/qemu10.sh builds instead (API v4: per-vCPU scoreboards, and instruction bytes copied
 * out), for the RISC-V model whose kernel accepts the fence.i prctl.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ICOUNT_QEMU_HEADER
/* ---- built against a QEMU's own header (the QEMU 10 of .ci/qemu10.sh, API v4) ---- */
#include <qemu-plugin.h>

typedef qemu_plugin_id_t plugin_id;
QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;
#define EXPORT QEMU_PLUGIN_EXPORT
#define PLUGIN_INFO qemu_info_t
#else
/* ---- the plugin API, version 1 (as documented for QEMU 7.2) ---- */

typedef uint64_t plugin_id;
struct qemu_plugin_tb;
struct qemu_plugin_insn;

/* Only the first member of the info block QEMU passes to the install hook is used. */
struct plugin_info_prefix {
    const char *target_name;
};
#define PLUGIN_INFO struct plugin_info_prefix

enum plugin_inline_op { PLUGIN_INLINE_ADD_U64 = 0 }; /* QEMU_PLUGIN_INLINE_ADD_U64 */

typedef void (*tb_trans_fn)(plugin_id id, struct qemu_plugin_tb *tb);
typedef void (*udata_fn)(plugin_id id, void *userdata);

extern void qemu_plugin_register_vcpu_tb_trans_cb(plugin_id id, tb_trans_fn cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb,
                                                        size_t idx);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                       enum plugin_inline_op op, void *ptr,
                                                       uint64_t imm);
extern void qemu_plugin_register_atexit_cb(plugin_id id, udata_fn cb, void *userdata);
typedef void (*vcpu_udata_fn)(unsigned int vcpu_index, void *userdata);
enum plugin_cb_flags { PLUGIN_CB_NO_REGS = 0 }; /* QEMU_PLUGIN_CB_NO_REGS */
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                                   vcpu_udata_fn cb, enum plugin_cb_flags flags,
                                                   void *userdata);

#define EXPORT __attribute__((visibility("default")))

/* QEMU refuses a plugin that does not export the API version it was written for. */
EXPORT int qemu_plugin_version = 1;
#endif

/* ---- instruction classes ---- */

struct class {
    const char *name;
    uint32_t mask;
    uint32_t value;
};

/*
 * AArch64 (A64, always 4 bytes). Encodings checked against GNU as/objdump 2.40; Rt/imm/option
 * fields are masked out where the class is "any register" or "any option".
 */
static const struct class aarch64_classes[] = {
    {"dc_cvau", 0xffffffe0, 0xd50b7b20},   /* dc cvau, Xt   (sys #3, c7, c11, #1) */
    {"dc_civac", 0xffffffe0, 0xd50b7e20},  /* dc civac, Xt  (sys #3, c7, c14, #1) */
    {"ic_ivau", 0xffffffe0, 0xd50b7520},   /* ic ivau, Xt   (sys #3, c7, c5, #1) */
    {"dsb_any", 0xfffff0ff, 0xd503309f},   /* dsb <option>: CRm holds the option (see below) */
    {"dsb_ish", 0xffffffff, 0xd5033b9f},   /* dsb ish */
    {"isb", 0xffffffff, 0xd5033fdf},       /* isb (sy) */
    {"mrs_ctr_el0", 0xffffffe0, 0xd53b0020}, /* mrs Xt, ctr_el0 */
    {"svc", 0xffe0001f, 0xd4000001},       /* svc #imm16 */
};

/* RISC-V: only 4-byte encodings are classified; compressed ones count in the total only. */
static const struct class riscv_classes[] = {
    {"fence_i", 0xffffffff, 0x0000100f}, /* fence.i */
    {"ecall", 0xffffffff, 0x00000073},   /* ecall */
};

#define MAX_CLASSES 16
static const struct class *classes;
static size_t n_classes;
static char *outfile;

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* `ssbb` and `pssbb` share the DSB encoding with CRm 0 and 4: they are not DSBs. */
static bool is_speculation_barrier(uint32_t word)
{
    return word == 0xd503309f || word == 0xd503349f;
}

/* What a vCPU counted: the total, then one count per class. */
struct tally {
    uint64_t total;
    uint64_t counts[MAX_CLASSES];
};

#ifdef ICOUNT_QEMU_HEADER
/* API v2 and later: inline adds go to a per-vCPU scoreboard, summed at exit. */
static struct qemu_plugin_scoreboard *board;
#else
/* API v1: one global tally (the probe is single-threaded, see above). */
static struct tally tally;
#endif

/* Adds one to the tally's field at `offset` each time `insn` executes. */
static void count(struct qemu_plugin_insn *insn, size_t offset)
{
#ifdef ICOUNT_QEMU_HEADER
    qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
        insn, QEMU_PLUGIN_INLINE_ADD_U64, (qemu_plugin_u64){.score = board, .offset = offset},
        1);
#else
    qemu_plugin_register_vcpu_insn_exec_inline(insn, PLUGIN_INLINE_ADD_U64,
                                               (char *)&tally + offset, 1);
#endif
}

/* The tally's field at `offset`, over every vCPU. */
static uint64_t counted(size_t offset)
{
#ifdef ICOUNT_QEMU_HEADER
    return qemu_plugin_u64_sum((qemu_plugin_u64){.score = board, .offset = offset});
#else
    uint64_t v;
    memcpy(&v, (char *)&tally + offset, sizeof v);
    return v;
#endif
}

#define TOTAL offsetof(struct tally, total)
#define CLASS(c) (offsetof(struct tally, counts) + (c) * sizeof(uint64_t))

/*
 * Markers: a probe may execute a marker instruction (a no-op) before and after what it measures.
 * Then the counts printed are those between the first marker and the last, not the whole run:
 * the dynamic loader and libc start-up, whose instruction counts vary from run to run on
 * QEMU 10 (with guest address-space randomisation), are left out. AArch64 `hint #0x7f`
 * (unallocated: executes as a NOP); RISC-V `slti x0, x0, 0x5a5` (a HINT: writes x0).
 */
#define AARCH64_MARKER 0xd5032fffu
#define RISCV_MARKER 0x5a502013u
static uint32_t marker;
static struct tally at_first_marker, at_last_marker;
static uint64_t markers;

static void snapshot(struct tally *t)
{
    t->total = counted(TOTAL);
    for (size_t c = 0; c < n_classes; c++) {
        t->counts[c] = counted(CLASS(c));
    }
}

static void on_marker(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    snapshot(markers == 0 ? &at_first_marker : &at_last_marker);
    markers++;
}

/* The instruction's first four bytes, little-endian. */
static uint32_t insn_word(struct qemu_plugin_insn *insn)
{
    uint8_t bytes[4] = {0};
#ifdef ICOUNT_QEMU_HEADER
    qemu_plugin_insn_data(insn, bytes, sizeof bytes);
#else
    memcpy(bytes, qemu_plugin_insn_data(insn), sizeof bytes);
#endif
    return le32(bytes);
}

/* Called once per translated block: attach an inline counter to each instruction. */
static void on_tb_trans(plugin_id id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        /* Per instruction rather than per block, so a block left early is still exact. */
        count(insn, TOTAL);
        if (qemu_plugin_insn_size(insn) != 4) {
            continue;
        }
        uint32_t word = insn_word(insn);
        if (marker && word == marker) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_marker, 0, NULL);
        }
        for (size_t c = 0; c < n_classes; c++) {
            if ((word & classes[c].mask) == classes[c].value && !is_speculation_barrier(word)) {
                count(insn, CLASS(c));
            }
        }
    }
}

static void on_guest_exit(plugin_id id, void *userdata)
{
    char buf[64 * (MAX_CLASSES + 2)];
    struct tally end, start = {0};
    (void)id;
    (void)userdata;
    snapshot(&end);
    if (markers >= 2) {
        start = at_first_marker;
        end = at_last_marker;
    }
    size_t used = (size_t)snprintf(buf, sizeof buf, "total %llu\n",
                                   (unsigned long long)(end.total - start.total));
    for (size_t c = 0; c < n_classes && used < sizeof buf; c++) {
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s %llu\n", classes[c].name,
                                 (unsigned long long)(end.counts[c] - start.counts[c]));
    }
    if (used < sizeof buf) {
        used += (size_t)snprintf(buf + used, sizeof buf - used, "markers %llu\n",
                                 (unsigned long long)markers);
    }
    if (outfile) {
        FILE *f = fopen(outfile, "w");
        if (f) {
            fputs(buf, f);
            fclose(f);
            return;
        }
        fprintf(stderr, "icount: cannot open %s, printing here\n", outfile);
    }
    /* Not qemu_plugin_outs: that writes to QEMU's log, which is off unless `-d plugin`. */
    fputs(buf, stderr);
}

EXPORT int qemu_plugin_install(plugin_id id, const PLUGIN_INFO *info, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "outfile=", 8) == 0) {
            outfile = strdup(argv[i] + 8);
        } else {
            fprintf(stderr, "icount: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    if (strcmp(info->target_name, "aarch64") == 0) {
        classes = aarch64_classes;
        n_classes = sizeof aarch64_classes / sizeof aarch64_classes[0];
        marker = AARCH64_MARKER;
    } else if (strcmp(info->target_name, "riscv64") == 0) {
        classes = riscv_classes;
        n_classes = sizeof riscv_classes / sizeof riscv_classes[0];
        marker = RISCV_MARKER;
    } else {
        /* Still useful: counts the total. */
        n_classes = 0;
    }
#ifdef ICOUNT_QEMU_HEADER
    board = qemu_plugin_scoreboard_new(sizeof(struct tally));
#endif
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}
