/*
 * isoinspect-workload: microbenchmark loops for `isoinspect bench overhead` (issue 15).
 *
 * The same static binary runs on the host and inside every target (containers, gVisor, a QEMU
 * guest); target/host ratios of its figures are what isolation costs per kernel subsystem.
 * In the spirit of gVisor's test/perf/linux loops, written here for this project.
 *
 *   isoinspect-workload [-d DIR] [-t MS] [-p MS] TEST...  (TEST "all" = every test in order)
 *   isoinspect-workload --list                       (one test name per line)
 *   isoinspect-workload --noop                       (exit at once: the exec test's child)
 *
 * Each test: set-up, a short untimed warm-up that also sizes a batch (so the clock is read once
 * per batch of many operations, not per operation), then timed batches until MS milliseconds of
 * CLOCK_MONOTONIC time have passed. One line per test on stdout, flushed:
 *
 *   @@W test=<name> status=ok ops=<int> ns_per_op=<float> value=<float> unit=<unit>
 *   @@W test=<name> status=unsupported reason=<no_spaces_reason>
 *   @@W test=<name> status=error reason=<no_spaces_reason>
 *
 * and `@@W-END tests=<n> ok=<k>` after the last one. A test that works on a file in DIR
 * (open_read_close, stat, file_*) ends its line, whatever its status, with
 * ` fs=<name> fs_magic=0x<hex>`: statfs(DIR)'s f_type, so a reader can tell a write that
 * reached a device from one held in memory (tmpfs: gVisor's own /tmp, a VM's tmpfs root).
 * `-p MS` (isoinspect exposure's windows) pauses MS milliseconds before and after each test,
 * in nanosleep, so an observer can read counters while the program makes no system call:
 * before a test's pause it prints `@@W-BEGIN test=<name>`, and its ok line gains
 * `all_ops=<int>` (warm-up ops included: every operation made between the two pauses).
 * ns_per_op is always time per unit of work (lower is better); value/unit is the figure shown
 * to readers. Exit code 0, or 2 for bad arguments. Files are created in DIR (default /tmp)
 * and removed, also on SIGINT/SIGTERM/SIGHUP.
 * Build: gcc -static -O2 -Wall -o isoinspect-workload workload.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024L * 1024L)
#define CHUNK (64L * 1024L)           /* file_write / file_read request size */
#define FILE_SIZE (8L * MIB)          /* file_write / file_read file size */
#define TCP_CHUNK (128L * 1024L)      /* tcp_stream send size */
#define SMALL_FILE 512                /* open_read_close / stat file size */
#define FAULT_REGION_PAGES 256        /* page_fault: pages per mmap */
#define CPU_ITERATIONS 1000000L       /* cpu: iterations per op */

enum status { ST_OK, ST_UNSUPPORTED, ST_ERROR };

/* Everything one test run carries between set-up, batches and teardown. */
struct run {
    enum status status;
    char reason[96];
    long ops_per_rep;          /* units of work one repetition does (set-up may change it) */
    char path[512];            /* the test's file in DIR, "" if none */
    int fd;                    /* its open file, or the test's socket/pipe end; -1 if none */
    int fd_in;                 /* second descriptor (the reply pipe), -1 if none */
    pid_t child;               /* helper process of two-process tests, 0 if none */
    char *buf;                 /* I/O buffer, page-aligned */
    long page;                 /* page size (page_fault) */
};

/* How a test turns ns_per_op into the displayed value. */
enum display { PER_OP, RATE };

struct test {
    const char *name;
    const char *unit;
    enum display display;
    double scale;              /* PER_OP: value = ns_per_op / scale; RATE: value = 1e9 / ns_per_op */
    int (*setup)(struct run *);
    int (*batch)(struct run *, long reps);
    void (*teardown)(struct run *);
    int in_dir;                /* works on a file in DIR: its line carries fs= and fs_magic= */
};

static const char *opt_dir = "/tmp";
static long opt_ms = 200;
static long opt_pause_ms = 0;   /* -p: exposure windows */
static char self_exe[4096];   /* what the exec test executes */

/* For the signal handler: what to remove or stop if we are interrupted mid-test. */
static volatile sig_atomic_t helper_child;   /* pid of the running test's helper, 0 if none */
static char cleanup_path[512];

/* ------------------------------------------------------------------ helpers */

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* status=error reason=<what>_<ERRNO NAME>, from errno; always returns -1. */
static int fail(struct run *r, const char *what)
{
    const char *name = strerrorname_np(errno);
    r->status = ST_ERROR;
    if (name)
        snprintf(r->reason, sizeof r->reason, "%s_%s", what, name);
    else
        snprintf(r->reason, sizeof r->reason, "%s_errno%d", what, errno);
    return -1;
}

/* status=error with a fixed reason (no errno involved); always returns -1. */
static int fail_plain(struct run *r, const char *reason)
{
    r->status = ST_ERROR;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    return -1;
}

static int unsupported(struct run *r, const char *reason)
{
    r->status = ST_UNSUPPORTED;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    return -1;
}

/* write() all of it: pipes and sockets may take less than asked. */
static int write_all(int fd, const char *data, long len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= n;
    }
    return 0;
}

/* read() exactly len bytes; 0 on success, -1 on error, 1 on end of file. */
static int read_exact(int fd, char *data, long len)
{
    while (len > 0) {
        ssize_t n = read(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            return 1;
        data += n;
        len -= n;
    }
    return 0;
}

/* A helper child dies with us, whatever happens to us, and leaves the clean-up to us. */
static void child_init(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
}

/* Reap the helper child (it has been told to stop by closing its input). */
static void reap_child(struct run *r)
{
    if (r->child > 0) {
        int status;
        while (waitpid(r->child, &status, 0) < 0 && errno == EINTR)
            ;
        r->child = 0;
        helper_child = 0;
    }
}

static void close_fds(struct run *r)
{
    if (r->fd >= 0)
        close(r->fd);
    if (r->fd_in >= 0)
        close(r->fd_in);
    r->fd = r->fd_in = -1;
}

static void test_path(struct run *r, const char *name)
{
    snprintf(r->path, sizeof r->path, "%s/isoinspect-workload.%d.%s", opt_dir, (int)getpid(), name);
    memcpy(cleanup_path, r->path, sizeof cleanup_path);
}

static void remove_file(struct run *r)
{
    if (r->path[0]) {
        unlink(r->path);
        r->path[0] = '\0';
        cleanup_path[0] = '\0';
    }
}

static int alloc_buffer(struct run *r, long len)
{
    void *p;
    /* page-aligned, so the same buffer serves O_DIRECT */
    if (posix_memalign(&p, 4096, len) != 0) {
        errno = ENOMEM;
        return fail(r, "malloc");
    }
    memset(p, 0x5a, len);
    r->buf = p;
    return 0;
}

/* ------------------------------------------------------------------ cpu (the control) */

static volatile uint64_t cpu_sink;
static uint32_t cpu_table[1024];   /* 4 KiB: stays in L1 */

/* An xorshift chain plus a read-modify-write and a read of a small table per iteration: no
 * system call, no cache miss, but the loads and stores real CPU-bound code does. Loads and
 * stores are what binary translation (QEMU's TCG) slows most, so a VM's control shows it (a
 * register-only loop ran at nearly native speed under TCG here); on every container target
 * this must be ~1.0x. */
static int cpu_batch(struct run *r, long reps)
{
    uint64_t x = cpu_sink | 1, acc = 0;
    (void)r;
    for (long i = 0; i < reps; i++) {
        for (long j = 0; j < CPU_ITERATIONS; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cpu_table[x & 1023] += (uint32_t)(x >> 32);
            acc += cpu_table[(x >> 10) & 1023];
        }
    }
    cpu_sink = x + acc;
    return 0;
}

/* ------------------------------------------------------------------ getppid */

/* The cheapest real system call: the round trip into the kernel (or gVisor's Sentry) and back.
 * Through syscall(2) so no libc can answer it from a cache. */
static int getppid_batch(struct run *r, long reps)
{
    (void)r;
    for (long i = 0; i < reps; i++)
        syscall(SYS_getppid);
    return 0;
}

/* ------------------------------------------------------------------ open_read_close, stat */

static int small_file_setup(struct run *r, const char *name)
{
    char data[SMALL_FILE];
    int fd;

    test_path(r, name);
    fd = open(r->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail(r, "create");
    memset(data, 'w', sizeof data);
    if (write_all(fd, data, sizeof data) < 0) {
        fail(r, "write");
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static int orc_setup(struct run *r) { return small_file_setup(r, "open_read_close"); }
static int stat_setup(struct run *r) { return small_file_setup(r, "stat"); }

/* Path lookup, file descriptor table, page-cache read: what a file server does per request. */
static int orc_batch(struct run *r, long reps)
{
    char data[SMALL_FILE];
    for (long i = 0; i < reps; i++) {
        int fd = open(r->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return fail(r, "open");
        ssize_t n = read(fd, data, sizeof data);
        if (n != SMALL_FILE) {
            close(fd);
            return n < 0 ? fail(r, "read") : fail_plain(r, "short_read");
        }
        close(fd);
    }
    return 0;
}

static int stat_batch(struct run *r, long reps)
{
    struct stat st;
    for (long i = 0; i < reps; i++)
        if (stat(r->path, &st) < 0)
            return fail(r, "stat");
    return 0;
}

static void file_teardown(struct run *r)
{
    close_fds(r);
    remove_file(r);
    free(r->buf);
    r->buf = NULL;
}

/* ------------------------------------------------------------------ fork, exec */

static int wait_ok(struct run *r, pid_t pid, const char *what)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return fail(r, "waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return fail_plain(r, what);
    return 0;
}

/* Process creation and teardown: address-space copy, the pid namespace, cgroup accounting. */
static int fork_batch(struct run *r, long reps)
{
    for (long i = 0; i < reps; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return fail(r, "fork");
        if (pid == 0)
            _exit(0);
        if (wait_ok(r, pid, "child_failed") < 0)
            return -1;
    }
    return 0;
}

/* fork + execve of this (static) binary with --noop: loading an ELF through the target's
 * file system and mm, the cost every command started in a container pays. */
static int exec_batch(struct run *r, long reps)
{
    char *argv[] = {"isoinspect-workload", "--noop", NULL};
    char *envp[] = {NULL};
    for (long i = 0; i < reps; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return fail(r, "fork");
        if (pid == 0) {
            execve(self_exe, argv, envp);
            _exit(127);
        }
        if (wait_ok(r, pid, "exec_failed") < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ pipe */

/* A 1-byte ping-pong between two processes: two context switches and two wake-ups per round
 * trip, the scheduler's and the pipe's cost together. */
static int pipe_setup(struct run *r)
{
    int to_child[2], to_parent[2];
    if (pipe2(to_child, O_CLOEXEC) < 0)
        return fail(r, "pipe");
    if (pipe2(to_parent, O_CLOEXEC) < 0) {
        close(to_child[0]);
        close(to_child[1]);
        return fail(r, "pipe");
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(to_child[0]); close(to_child[1]); close(to_parent[0]); close(to_parent[1]);
        return fail(r, "fork");
    }
    if (pid == 0) {
        char c;
        child_init();
        close(to_child[1]);
        close(to_parent[0]);
        while (read_exact(to_child[0], &c, 1) == 0)
            if (write_all(to_parent[1], &c, 1) < 0)
                break;
        _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    r->child = helper_child = pid;
    r->fd = to_child[1];
    r->fd_in = to_parent[0];
    return 0;
}

/* One round trip per rep over fd (out) and fd_in (back): pipes, and one socket for both. */
static int ping_pong_batch(struct run *r, long reps)
{
    char c = 'p';
    for (long i = 0; i < reps; i++) {
        if (write_all(r->fd, &c, 1) < 0)
            return fail(r, "send");
        int got = read_exact(r->fd_in, &c, 1);
        if (got < 0)
            return fail(r, "receive");
        if (got > 0)
            return fail_plain(r, "peer_gone");
    }
    return 0;
}

static void child_teardown(struct run *r)
{
    close_fds(r);          /* the child sees end of file and exits */
    reap_child(r);
    free(r->buf);
    r->buf = NULL;
}

/* ------------------------------------------------------------------ signal */

static volatile sig_atomic_t signals_seen;

static void on_usr1(int sig)
{
    (void)sig;
    signals_seen++;
}

/* kill(2) to ourselves with a handler: signal generation, delivery on the way out of the
 * system call, the handler's frame and rt_sigreturn (gVisor emulates all of these). */
static int signal_setup(struct run *r)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) < 0)
        return fail(r, "sigaction");
    return 0;
}

static int signal_batch(struct run *r, long reps)
{
    pid_t self = getpid();
    signals_seen = 0;
    for (long i = 0; i < reps; i++)
        if (kill(self, SIGUSR1) < 0)
            return fail(r, "kill");
    if ((long)signals_seen != reps)
        return fail_plain(r, "signal_not_delivered");
    return 0;
}

static void signal_teardown(struct run *r)
{
    (void)r;
    signal(SIGUSR1, SIG_DFL);
}

/* ------------------------------------------------------------------ page_fault */

static int fault_setup(struct run *r)
{
    r->page = sysconf(_SC_PAGESIZE);
    if (r->page <= 0)
        r->page = 4096;
    r->ops_per_rep = FAULT_REGION_PAGES;   /* op = one page faulted in */
    return 0;
}

/* mmap anonymous memory, write one byte per page (one fault each: transparent huge pages are
 * refused for the region), munmap. The fault path is where gVisor and VMs differ most. */
static int fault_batch(struct run *r, long reps)
{
    long len = r->page * FAULT_REGION_PAGES;
    for (long i = 0; i < reps; i++) {
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return fail(r, "mmap");
        madvise(p, len, MADV_NOHUGEPAGE);   /* advisory: fine if a kernel ignores it */
        for (long off = 0; off < len; off += r->page)
            ((volatile char *)p)[off] = 1;
        if (munmap(p, len) < 0)
            return fail(r, "munmap");
    }
    return 0;
}

/* ------------------------------------------------------------------ tcp_rtt, tcp_stream */

/* lo is down in a fresh network namespace (a container with no network, a VM's initramfs):
 * bring it up the way `ip link set lo up` does. The kernel adds 127.0.0.1 itself. */
static int ensure_loopback(struct run *r)
{
    struct ifreq ifr;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        if (errno == EAFNOSUPPORT)
            return unsupported(r, "no_inet");
        return fail(r, "socket");
    }
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        close(s);
        return unsupported(r, "no_loopback");
    }
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
            close(s);
            return unsupported(r, "no_loopback");
        }
    }
    close(s);
    return 0;
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* A connected loopback pair: the child gets the accepted end and runs serve(); we keep the
 * connecting end in r->fd (and r->fd_in: one socket both ways). */
static int tcp_pair(struct run *r, void (*serve)(int fd))
{
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof addr;
    int listener, fd;

    if (ensure_loopback(r) < 0)
        return -1;
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0)
        return errno == EAFNOSUPPORT ? unsupported(r, "no_inet") : fail(r, "socket");
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fail(r, "bind");
        close(listener);
        return -1;
    }
    if (listen(listener, 1) < 0 || getsockname(listener, (struct sockaddr *)&addr, &addr_len) < 0) {
        fail(r, "listen");
        close(listener);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(listener);
        return fail(r, "fork");
    }
    if (pid == 0) {
        child_init();
        int conn = accept(listener, NULL, NULL);
        close(listener);
        if (conn < 0)
            _exit(1);
        set_nodelay(conn);
        serve(conn);
        _exit(0);
    }
    r->child = helper_child = pid;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fail(r, "connect");
        if (fd >= 0)
            close(fd);
        close(listener);
        kill(pid, SIGKILL);
        reap_child(r);
        return -1;
    }
    close(listener);
    set_nodelay(fd);
    r->fd = fd;
    r->fd_in = dup(fd);    /* ping_pong_batch reads fd_in; teardown closes both */
    if (r->fd_in < 0)
        return fail(r, "dup");
    return 0;
}

static void serve_echo(int fd)
{
    char c;
    while (read_exact(fd, &c, 1) == 0)
        if (write_all(fd, &c, 1) < 0)
            break;
}

/* Per batch the sender announces the byte count (8 bytes), streams it, and waits for one ack
 * byte: the batch's time then covers the data received, not just queued in socket buffers. */
static void serve_sink(int fd)
{
    static char sink[TCP_CHUNK];
    uint64_t left;
    while (read_exact(fd, (char *)&left, sizeof left) == 0) {
        while (left > 0) {
            ssize_t n = read(fd, sink, left < sizeof sink ? left : sizeof sink);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return;
            left -= n;
        }
        if (write_all(fd, "k", 1) < 0)
            return;
    }
}

static int tcp_rtt_setup(struct run *r) { return tcp_pair(r, serve_echo); }

static int tcp_stream_setup(struct run *r)
{
    if (alloc_buffer(r, TCP_CHUNK) < 0)
        return -1;
    return tcp_pair(r, serve_sink);   /* op = one MiB */
}

static int tcp_stream_batch(struct run *r, long reps)
{
    uint64_t total = (uint64_t)reps * MIB;
    char ack;
    if (write_all(r->fd, (char *)&total, sizeof total) < 0)
        return fail(r, "send");
    for (long i = 0; i < reps * (MIB / TCP_CHUNK); i++)
        if (write_all(r->fd, r->buf, TCP_CHUNK) < 0)
            return fail(r, "send");
    int got = read_exact(r->fd_in, &ack, 1);
    if (got < 0)
        return fail(r, "receive");
    return got > 0 ? fail_plain(r, "peer_gone") : 0;
}

/* ------------------------------------------------------------------ file_write, file_read, file_fsync */

/* The test's buffer, and its data file in DIR opened with flags (created, truncated). */
static int data_file_setup(struct run *r, const char *name, int flags, long buf_len)
{
    if (alloc_buffer(r, buf_len) < 0)
        return -1;
    test_path(r, name);
    r->fd = open(r->path, flags | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (r->fd < 0) {
        fail(r, "create");                     /* keeps errno: file_direct reads it */
        r->path[0] = cleanup_path[0] = '\0';   /* nothing was created */
        return -1;
    }
    return 0;
}

static int file_write_setup(struct run *r)
{
    if (data_file_setup(r, "file_write", O_WRONLY, CHUNK) < 0)
        return -1;
    r->ops_per_rep = FILE_SIZE / MIB;   /* op = one MiB */
    return 0;
}

/* One pass over the 8 MiB file in 64 KiB requests, writing or reading. */
static int file_pass(struct run *r, int writing)
{
    for (long off = 0; off < FILE_SIZE; off += CHUNK) {
        ssize_t n = writing ? pwrite(r->fd, r->buf, CHUNK, off) : pread(r->fd, r->buf, CHUNK, off);
        if (n < 0)
            return fail(r, writing ? "write" : "read");
        if (n != CHUNK)
            return fail_plain(r, writing ? "short_write" : "short_read");
    }
    return 0;
}

/* Write a fresh 8 MiB file (truncated first: new page-cache pages every time, as a file being
 * written does). Dirty pages are dropped by the next truncate long before writeback starts, so
 * this is the write path to the page cache, not the disk. */
static int file_write_batch(struct run *r, long reps)
{
    for (long i = 0; i < reps; i++) {
        if (ftruncate(r->fd, 0) < 0)
            return fail(r, "ftruncate");
        if (file_pass(r, 1) < 0)
            return -1;
    }
    return 0;
}

static int file_read_setup(struct run *r)
{
    if (data_file_setup(r, "file_read", O_RDWR, CHUNK) < 0)
        return -1;
    r->ops_per_rep = FILE_SIZE / MIB;   /* op = one MiB; the warm-up reads it into the cache */
    return file_pass(r, 1);
}

static int file_read_batch(struct run *r, long reps)
{
    for (long i = 0; i < reps; i++)
        if (file_pass(r, 0) < 0)
            return -1;
    return 0;
}

static int file_fsync_setup(struct run *r)
{
    return data_file_setup(r, "file_fsync", O_WRONLY, MIB);   /* op = one MiB made durable */
}

/* Overwrite the same MiB and fsync it: the journal and the device (or, in gVisor, the Gofer
 * round trip; in a VM, the virtual disk), every time. */
static int file_fsync_batch(struct run *r, long reps)
{
    for (long i = 0; i < reps; i++) {
        ssize_t n = pwrite(r->fd, r->buf, MIB, 0);
        if (n != MIB)
            return n < 0 ? fail(r, "write") : fail_plain(r, "short_write");
        if (fsync(r->fd) < 0)
            return fail(r, "fsync");
    }
    return 0;
}

/* ------------------------------------------------------------------ file_direct */

/* The file system type of DIR, named for the unsupported reason. */
static const char *fs_name(long type)
{
    static char hex[24];
    switch ((unsigned long)type) {
    case 0x01021994: return "tmpfs";
    case 0x858458f6: return "ramfs";
    case 0xef53: return "ext4";        /* ext2 and ext3 share the magic */
    case 0x58465342: return "xfs";
    case 0x9123683e: return "btrfs";
    case 0x794c7630: return "overlay";
    case 0x01021997: return "9p";
    case 0x65735546: return "fuse";
    case 0x6969: return "nfs";
    case 0xf2f52010: return "f2fs";
    case 0x2fc12fc1: return "zfs";
    }
    snprintf(hex, sizeof hex, "0x%lx", (unsigned long)type);
    return hex;
}

static int direct_unsupported(struct run *r, const char *fstype)
{
    char reason[64];
    snprintf(reason, sizeof reason, "o_direct_not_supported_by_%s", fstype);
    return unsupported(r, reason);
}

static int file_direct_setup(struct run *r)
{
    struct statfs sfs;
    const char *fstype = "unknown";

    if (statfs(opt_dir, &sfs) == 0)
        fstype = fs_name(sfs.f_type);
    /* Memory file systems have no device to bypass the cache to. tmpfs accepts O_DIRECT since
     * Linux 6.6 (and still writes to memory) and refuses it before: unsupported on every
     * kernel, with the same reason, so hosts and guests with different kernels agree. */
    if (strcmp(fstype, "tmpfs") == 0 || strcmp(fstype, "ramfs") == 0)
        return direct_unsupported(r, fstype);
    if (data_file_setup(r, "file_direct", O_WRONLY | O_DIRECT, MIB) < 0)
        return errno == EINVAL ? direct_unsupported(r, fstype) : -1;
    /* Some file systems accept the flag at open and refuse the I/O: probe with one write. */
    if (pwrite(r->fd, r->buf, MIB, 0) != MIB)
        return errno == EINVAL ? direct_unsupported(r, fstype) : fail(r, "write");
    return 0;   /* op = one MiB */
}

/* Aligned 1 MiB O_DIRECT writes cycling over 8 MiB: the block layer and the device (virtio in
 * a VM), with no page cache to absorb them. */
static int file_direct_batch(struct run *r, long reps)
{
    static long next;
    for (long i = 0; i < reps; i++) {
        off_t off = (next++ % (FILE_SIZE / MIB)) * MIB;
        ssize_t n = pwrite(r->fd, r->buf, MIB, off);
        if (n != MIB)
            return n < 0 ? fail(r, "write") : fail_plain(r, "short_write");
    }
    return 0;
}

/* ------------------------------------------------------------------ the test table */

static const struct test tests[] = {
    {"cpu", "ms", PER_OP, 1e6, NULL, cpu_batch, NULL},
    {"getppid", "ns", PER_OP, 1, NULL, getppid_batch, NULL},
    {"open_read_close", "ns", PER_OP, 1, orc_setup, orc_batch, file_teardown, 1},
    {"stat", "ns", PER_OP, 1, stat_setup, stat_batch, file_teardown, 1},
    {"fork", "us", PER_OP, 1e3, NULL, fork_batch, NULL},
    {"exec", "us", PER_OP, 1e3, NULL, exec_batch, NULL},
    {"pipe", "ns", PER_OP, 1, pipe_setup, ping_pong_batch, child_teardown},
    {"signal", "ns", PER_OP, 1, signal_setup, signal_batch, signal_teardown},
    {"page_fault", "faults/s", RATE, 0, fault_setup, fault_batch, NULL},
    {"tcp_rtt", "us", PER_OP, 1e3, tcp_rtt_setup, ping_pong_batch, child_teardown},
    {"tcp_stream", "MiB/s", RATE, 0, tcp_stream_setup, tcp_stream_batch, child_teardown},
    {"file_write", "MiB/s", RATE, 0, file_write_setup, file_write_batch, file_teardown, 1},
    {"file_read", "MiB/s", RATE, 0, file_read_setup, file_read_batch, file_teardown, 1},
    {"file_fsync", "MiB/s", RATE, 0, file_fsync_setup, file_fsync_batch, file_teardown, 1},
    {"file_direct", "MiB/s", RATE, 0, file_direct_setup, file_direct_batch, file_teardown, 1},
};
#define NTESTS ((int)(sizeof tests / sizeof tests[0]))

/* ------------------------------------------------------------------ the runner */

/* Time one batch; -1 if it failed (r says why). */
static long long timed_batch(const struct test *t, struct run *r, long reps)
{
    long long start = now_ns();
    if (t->batch(r, reps) < 0)
        return -1;
    return now_ns() - start;
}

/* Warm up and size a batch to about batch_ns, then run batches until opt_ms has passed.
 * Returns 0 with *ops and *elapsed set, or -1 (r says why). */
static int measure(const struct test *t, struct run *r, long long *ops, long long *elapsed,
                   long long *warm_ops)
{
    long long budget = opt_ms * 1000000LL;
    long long batch_ns = budget / 20 > 1000000LL ? budget / 20 : 1000000LL;
    long long warm_cap = budget / 4, warm = 0, took = 0;
    long reps = 1;

    /* Warm-up (untimed): caches, page tables, the peer's first wake-ups; grow the batch until
     * it takes batch_ns, or the warm-up's share of the time is spent. */
    for (;;) {
        took = timed_batch(t, r, reps);
        if (took < 0)
            return -1;
        *warm_ops += reps * r->ops_per_rep;
        warm += took;
        if (took >= batch_ns || warm >= warm_cap)
            break;
        long factor = took > 0 ? (long)(batch_ns / took) : 16;
        reps *= factor < 2 ? 2 : factor > 16 ? 16 : factor;
    }
    if (took < batch_ns && took > 0) {
        long long scaled = (long long)reps * batch_ns / took;
        reps = scaled > (long long)reps * 16 ? reps * 16 : (long)scaled;
    }

    *ops = 0;
    *elapsed = 0;
    while (*elapsed < budget) {
        took = timed_batch(t, r, reps);
        if (took < 0)
            return -1;
        *elapsed += took;
        *ops += reps * r->ops_per_rep;
    }
    return 0;
}

/* ` fs=<name> fs_magic=0x<hex>` of DIR (statfs's f_type; `fs=unknown fs_magic=0x0` if statfs
 * fails): where the test's file was, so memory-held writes (tmpfs) are told from a device's. */
static void print_fs(void)
{
    struct statfs sfs;
    if (statfs(opt_dir, &sfs) == 0)
        printf(" fs=%s fs_magic=0x%lx", fs_name(sfs.f_type), (unsigned long)sfs.f_type);
    else
        printf(" fs=unknown fs_magic=0x0");
}

/* Run one test, print its line; 1 if it was ok. */
static int run_test(const struct test *t)
{
    struct run r = {.status = ST_OK, .ops_per_rep = 1, .fd = -1, .fd_in = -1};
    long long ops = 0, elapsed = 0, warm_ops = 0;
    int measured = -1;

    if (!t->setup || t->setup(&r) == 0)
        measured = measure(t, &r, &ops, &elapsed, &warm_ops);
    if (t->teardown)
        t->teardown(&r);

    if (measured == 0 && ops > 0 && elapsed > 0) {
        double ns_per_op = (double)elapsed / (double)ops;
        double value = t->display == RATE ? 1e9 / ns_per_op : ns_per_op / t->scale;
        printf("@@W test=%s status=ok ops=%lld ns_per_op=%.3f value=%.3f unit=%s",
               t->name, ops, ns_per_op, value, t->unit);
        if (opt_pause_ms > 0)
            printf(" all_ops=%lld", ops + warm_ops);
    } else {
        if (r.status == ST_OK)
            fail_plain(&r, "no_measurement");
        printf("@@W test=%s status=%s reason=%s", t->name,
               r.status == ST_UNSUPPORTED ? "unsupported" : "error", r.reason);
    }
    if (t->in_dir)
        print_fs();
    printf("\n");
    fflush(stdout);
    return measured == 0;
}

/* -p: sleep with no other system call (an observer reads its counters meanwhile). */
static void pause_ms(void)
{
    struct timespec left = {opt_pause_ms / 1000, (opt_pause_ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) < 0 && errno == EINTR)
        ;
}

/* SIGINT/SIGTERM/SIGHUP: remove the test's file and stop its helper, then die of the signal. */
static void on_terminate(int sig)
{
    if (cleanup_path[0])
        unlink(cleanup_path);
    if (helper_child > 0)
        kill(helper_child, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int usage(FILE *out, int code)
{
    fprintf(out, "usage: isoinspect-workload [-d DIR] [-t MS] [-p MS] TEST...   (TEST: all");
    for (int i = 0; i < NTESTS; i++)
        fprintf(out, " %s", tests[i].name);
    fprintf(out, ")\n       isoinspect-workload --list\n");
    return code;
}

/* An option's milliseconds in min..max into *out; -1 (said on stderr) if it is not. */
static int parse_ms(const char *option, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || *end || end == text || value < min || value > max) {
        fprintf(stderr, "isoinspect-workload: %s %s: want milliseconds, %ld..%ld\n", option, text,
                min, max);
        return -1;
    }
    *out = value;
    return 0;
}

static int find_test(const char *name)
{
    for (int i = 0; i < NTESTS; i++)
        if (strcmp(tests[i].name, name) == 0)
            return i;
    return -1;
}

int main(int argc, char **argv)
{
    static int chosen[4096];
    int nchosen = 0, argi = 1, ok = 0;

    if (argc == 2 && strcmp(argv[1], "--noop") == 0)
        return 0;   /* the exec test's child: as little as possible after execve */
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < NTESTS; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
        return usage(stdout, 0);

    for (; argi < argc; argi++) {
        const char *arg = argv[argi];
        if (strcmp(arg, "-d") == 0 && argi + 1 < argc) {
            struct stat st;
            opt_dir = argv[++argi];
            if (stat(opt_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                fprintf(stderr, "isoinspect-workload: -d %s: not a directory\n", opt_dir);
                return 2;
            }
        } else if (strcmp(arg, "-t") == 0 && argi + 1 < argc) {
            if (parse_ms("-t", argv[++argi], 1, 3600000, &opt_ms) < 0)
                return 2;
        } else if (strcmp(arg, "-p") == 0 && argi + 1 < argc) {
            if (parse_ms("-p", argv[++argi], 0, 60000, &opt_pause_ms) < 0)
                return 2;
        } else if (strcmp(arg, "all") == 0) {
            for (int i = 0; i < NTESTS && nchosen < 4096; i++)
                chosen[nchosen++] = i;
        } else {
            int i = find_test(arg);
            if (i < 0 || nchosen >= 4096) {
                fprintf(stderr, "isoinspect-workload: unknown test or option: %s\n", arg);
                return usage(stderr, 2);
            }
            chosen[nchosen++] = i;
        }
    }
    if (nchosen == 0)
        return usage(stderr, 2);

    /* The exec test runs this very file: /proc/self/exe, or argv[0] where /proc is missing. */
    snprintf(self_exe, sizeof self_exe, "%s",
             access("/proc/self/exe", X_OK) == 0 ? "/proc/self/exe" : argv[0]);

    signal(SIGPIPE, SIG_IGN);   /* a dead peer is an error line, not our death */
    signal(SIGINT, on_terminate);
    signal(SIGTERM, on_terminate);
    signal(SIGHUP, on_terminate);

    for (int i = 0; i < nchosen; i++) {
        if (opt_pause_ms > 0) {
            printf("@@W-BEGIN test=%s\n", tests[chosen[i]].name);
            fflush(stdout);
            pause_ms();
        }
        ok += run_test(&tests[chosen[i]]);
        if (opt_pause_ms > 0)
            pause_ms();
    }
    printf("@@W-END tests=%d ok=%d\n", nchosen, ok);
    fflush(stdout);
    return 0;
}
