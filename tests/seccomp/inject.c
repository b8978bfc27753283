/*
 * inject: run a program under a seccomp filter that makes membarrier fail.
 *
 *   inject MODE PROGRAM [ARGS...]
 *
 * MODE is one of
 *   none            no filter (the baseline, same launcher path)
 *   einval-synccore membarrier fails with EINVAL for cmd 32 (PRIVATE_EXPEDITED_SYNC_CORE) and
 *                   64 (REGISTER_PRIVATE_EXPEDITED_SYNC_CORE): a kernel without SYNC_CORE for
 *                   this architecture; every other command reaches the kernel
 *   enosys          membarrier always fails with ENOSYS: a kernel without membarrier
 *   eperm           membarrier always fails with EPERM: a sandbox that forbids it
 *
 * The filter only recognises the x86-64 system call ABI (this host's). qemu-user runs as an
 * x86-64 process and issues the guest's membarrier as the host's, so the same filter also
 * reaches emulated AArch64 and RISC-V programs. System calls of any other ABI pass untouched:
 * the point is to inject faults, not to confine.
 *
 * The filter is inherited across execve (with no_new_privs set, no privilege is needed).
 * Before exec, the launcher checks the filter does what its mode says, so a broken filter
 * cannot pass for a library that ignores faults.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR_MEMBARRIER_X86_64 324
#define CMD_QUERY 0
#define CMD_SYNC_CORE 32
#define CMD_REGISTER_SYNC_CORE 64

/* The low 32 bits of a 64-bit argument (x86-64 is little-endian); cmd is an int. */
#define ARG0_LO offsetof(struct seccomp_data, args[0])

static int install(const struct sock_filter *code, unsigned short len) {
    struct sock_fprog prog = {.len = len, .filter = (struct sock_filter *)code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("inject: prctl(PR_SET_NO_NEW_PRIVS)");
        return -1;
    }
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        perror("inject: seccomp(SECCOMP_SET_MODE_FILTER)");
        return -1;
    }
    return 0;
}

/* Filters a fixed errno for every membarrier call. */
static int install_always(int err) {
    const struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_MEMBARRIER_X86_64, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    return install(code, sizeof code / sizeof code[0]);
}

/* EINVAL for the two SYNC_CORE commands, the kernel for everything else. */
static int install_einval_synccore(void) {
    const struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 6),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_MEMBARRIER_X86_64, 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LO),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CMD_SYNC_CORE, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CMD_REGISTER_SYNC_CORE, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    return install(code, sizeof code / sizeof code[0]);
}

/* membarrier(cmd): the result, or -errno. */
static long membarrier(int cmd) {
    long r = syscall(NR_MEMBARRIER_X86_64, cmd, 0, 0);
    return r < 0 ? -errno : r;
}

/* Fails unless membarrier(cmd) gives `want` (a result, or -errno); `any_ok` accepts any result
 * that is not an error. */
static int expect(int cmd, long want, int any_ok) {
    long got = membarrier(cmd);
    if (got == want || (any_ok && got >= 0))
        return 0;
    fprintf(stderr, "inject: filter self-check: membarrier(%d) gave %ld, expected %ld%s\n", cmd,
            got, want, any_ok ? " or any result" : "");
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s none|einval-synccore|enosys|eperm PROGRAM [ARGS...]\n",
                argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    int bad = 0;
    if (strcmp(mode, "none") == 0) {
        /* The baseline: no filter. */
    } else if (strcmp(mode, "einval-synccore") == 0) {
        /* SYNC_CORE itself (not REGISTER) is harmless to issue unregistered: it fails. */
        bad = install_einval_synccore() || expect(CMD_REGISTER_SYNC_CORE, -EINVAL, 0) ||
              expect(CMD_SYNC_CORE, -EINVAL, 0) || expect(CMD_QUERY, 0, 1);
    } else if (strcmp(mode, "enosys") == 0) {
        bad = install_always(ENOSYS) || expect(CMD_QUERY, -ENOSYS, 0);
    } else if (strcmp(mode, "eperm") == 0) {
        bad = install_always(EPERM) || expect(CMD_QUERY, -EPERM, 0);
    } else {
        fprintf(stderr, "inject: unknown mode '%s'\n", mode);
        return 2;
    }
    if (bad)
        return 125;
    execvp(argv[2], argv + 2);
    fprintf(stderr, "inject: exec %s: %s\n", argv[2], strerror(errno));
    return 127;
}
