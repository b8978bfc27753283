/*
 * PID 1 of the initramfs that `.ci/kernels.sh` boots under qemu-system.
 *
 * It mounts the pseudo file systems, reports what the guest kernel offers (release,
 * CPUs, membarrier commands, riscv_flush_icache flag checking), runs /report and then
 * every executable in /t in name order, and powers the machine off. Each program's
 * output is framed by "@@icache-kernel" marker lines that the script parses; the
 * script judges only from those markers and the test harness's own summary lines.
 *
 * Built statically with the cross gcc: the initramfs has no libc.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MARK "@@icache-kernel "

/* Per-program limit: a hung test must not eat the whole boot's time budget. */
#define PROGRAM_TIMEOUT_SECONDS 300

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void mount_or_warn(const char *src, const char *dir, const char *type) {
    mkdir(dir, 0755);
    if (mount(src, dir, type, 0, NULL) != 0 && errno != EBUSY)
        say(MARK "warning mount %s on %s: %s\n", type, dir, strerror(errno));
}

/* The kernel opens /dev/console for PID 1 only if the archive has that node; building
 * the archive must not need mknod (root), so attach to the console after devtmpfs. */
static void attach_console(void) {
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return;
    for (int i = 0; i < 3; i++)
        if (fd != i)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report_kernel(void) {
    struct utsname u;
    if (uname(&u) == 0)
        say(MARK "uname-r %s\n" MARK "machine %s\n", u.release, u.machine);
    say(MARK "nproc %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    say(MARK "uptime-at-init %.2f\n", now());
#ifdef SYS_membarrier
    long mask = syscall(SYS_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0, 0);
    if (mask < 0)
        say(MARK "membarrier-query error %s\n", strerror(errno));
    else
        say(MARK "membarrier-query 0x%lx\n", mask);
#endif
#if defined(__riscv) && defined(SYS_riscv_flush_icache)
    /* Show that this kernel, unlike qemu-user's stub, checks the flags: 0 (all harts)
     * and 1 (local) are valid, anything else is EINVAL. */
    for (long flags = 0; flags <= 2; flags++) {
        long r = syscall(SYS_riscv_flush_icache, 0L, 0L, flags);
        say(MARK "riscv_flush_icache flags=%ld -> %s\n", flags,
            r == 0 ? "ok" : strerror(errno));
    }
#endif
}

static volatile pid_t running_child;
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig) {
    (void)sig;
    if (running_child > 0) {
        timed_out = 1;
        kill(running_child, SIGKILL);
    }
}

/* Runs one program with its output on the console (the markers say how it ended); returns
 * whether the time limit killed it. */
static int run(const char *name, char *const argv[]) {
    say(MARK "begin %s\n", name);
    double start = now();
    pid_t pid = fork();
    if (pid < 0) {
        say(MARK "end %s fork-failed %s\n", name, strerror(errno));
        return 0;
    }
    if (pid == 0) {
        /* A fixed environment, plus the ICACHE_* settings the script put on the kernel
         * command line (the kernel hands unknown NAME=value words to init). */
        char *envp[64] = {"PATH=/t", "HOME=/tmp", "TMPDIR=/tmp", "RUST_BACKTRACE=1",
                          "ICACHE_KERNEL_GUEST=1"};
        size_t k = 5;
        for (char **e = environ; *e && k + 1 < sizeof envp / sizeof envp[0]; e++)
            if (strncmp(*e, "ICACHE_", 7) == 0)
                envp[k++] = *e;
        envp[k] = NULL;
        execve(argv[0], argv, envp);
        say(MARK "exec %s failed: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    timed_out = 0;
    running_child = pid;
    alarm(PROGRAM_TIMEOUT_SECONDS);
    int status = 0;
    pid_t got;
    do {
        got = waitpid(pid, &status, 0);
    } while (got < 0 && errno == EINTR);
    alarm(0);
    running_child = 0;
    double secs = now() - start;
    if (got < 0)
        say(MARK "end %s wait-failed %s\n", name, strerror(errno));
    else if (WIFEXITED(status))
        say(MARK "end %s exit=%d seconds=%.1f\n", name, WEXITSTATUS(status), secs);
    else if (WIFSIGNALED(status))
        say(MARK "end %s signal=%d seconds=%.1f\n", name, WTERMSIG(status), secs);
    else
        say(MARK "end %s status=0x%x seconds=%.1f\n", name, status, secs);
    return timed_out;
}

/* Splits the comma-separated value of `key` in the command line `line` (which it
 * modifies) into at most 32 words; returns their number. */
static int split_option(char *line, const char *key, char *words[32]) {
    char *p = strstr(line, key);
    if (!p)
        return 0;
    p += strlen(key);
    char *end = p + strcspn(p, " ");
    int n = 0;
    while (p < end && n < 32) {
        char *comma = memchr(p, ',', (size_t)(end - p));
        char *stop = comma ? comma : end;
        words[n++] = p;
        p = stop + 1;
        *stop = '\0';
    }
    return n;
}

static int only_files(const struct dirent *d) { return d->d_name[0] != '.'; }

int main(void) {
    mount_or_warn("devtmpfs", "/dev", "devtmpfs");
    attach_console();
    mount_or_warn("proc", "/proc", "proc");
    mount_or_warn("sysfs", "/sys", "sysfs");
    mount_or_warn("tmpfs", "/tmp", "tmpfs");
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    say(MARK "init-start\n");
    report_kernel();
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "ICACHE_", 7) == 0)
            say(MARK "env %s\n", *e);

    /* Harness options come from the kernel command line: icache.threads=N,
     * icache.skip=NAME[,NAME...] (each becomes `--skip NAME`) and
     * icache.only=NAME[,NAME...] (name filters: only matching tests run). */
    char threads_arg[64] = "--test-threads=2";
    static char line[4096];
    char *skips[32], *onlys[32];
    int nskips = 0, nonlys = 0;
    FILE *cmdline = fopen("/proc/cmdline", "r");
    if (cmdline) {
        if (fgets(line, sizeof line, cmdline)) {
            line[strcspn(line, "\n")] = '\0';
            char *p = strstr(line, "icache.threads=");
            if (p) {
                int n = atoi(p + strlen("icache.threads="));
                if (n > 0)
                    snprintf(threads_arg, sizeof threads_arg, "--test-threads=%d", n);
            }
            /* Each split writes NULs into its own copy of the line. */
            static char skip_line[sizeof line], only_line[sizeof line];
            memcpy(skip_line, line, sizeof line);
            memcpy(only_line, line, sizeof line);
            nskips = split_option(skip_line, "icache.skip=", skips);
            nonlys = split_option(only_line, "icache.only=", onlys);
        }
        fclose(cmdline);
    }
    for (int i = 0; i < nskips; i++)
        say(MARK "skip %s\n", skips[i]);
    for (int i = 0; i < nonlys; i++)
        say(MARK "only %s\n", onlys[i]);

    char *report_argv[] = {"/report", NULL};
    if (access("/report", X_OK) == 0)
        run("report", report_argv);

    struct dirent **names;
    int n = scandir("/t", &names, only_files, alphasort);
    if (n < 0) {
        say(MARK "no-tests %s\n", strerror(errno));
        n = 0;
    }
    say(MARK "programs %d\n", n);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "/t/%s", names[i]->d_name);
        char *argv[3 + 3 * 32] = {path, threads_arg};
        int k = 2;
        for (int j = 0; j < nskips; j++) {
            argv[k++] = "--skip";
            argv[k++] = skips[j];
        }
        for (int j = 0; j < nonlys; j++)
            argv[k++] = onlys[j];
        argv[k] = NULL;
        /* The emulated multi-CPU guest has been seen to stall a pure-logic test that takes 12 s
         * for the full limit, once, and pass on the next boot: one more run tells a stall of
         * the emulator from a hang of the program, which stalls again. The harness reports
         * the retry. */
        if (run(names[i]->d_name, argv)) {
            say(MARK "retry %s after the time limit\n", names[i]->d_name);
            run(names[i]->d_name, argv);
        }
        free(names[i]);
    }
    free(names);

    say(MARK "all-done uptime=%.1f\n", now());
    sync();
    reboot(RB_POWER_OFF);
    /* Only reached if power-off failed; PID 1 must not exit (that panics the kernel,
     * which the script would also report, but less clearly). */
    say(MARK "poweroff-failed %s\n", strerror(errno));
    for (;;)
        pause();
}
