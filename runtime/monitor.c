/* isoinspect-monitor: what stays alive next to a `run -d` container (the role of conmon).
 *
 * The Python monitor (runtime/detach.py) starts the container, answers the CLI, then execs
 * this program, which therefore is the parent of the container's PID 1 and holds the
 * inherited monitor lock. It copies the container's stdout and stderr pipes into its log as
 * records byte-for-byte like runtime/log_copier.py + runtime/log_format.py, waits for PID 1,
 * then execs the cleanup command (Python: record the exit, release the cgroup, undo the
 * network, --rm) with the wait status and the exit time appended. A static binary with no
 * interpreter: a few hundred KiB instead of Python's ~4.5 MiB per container.
 *
 *   isoinspect-monitor --out FD --err FD --log FD [--pid PID] [--time NS] [-- CLEANUP ARGV...]
 *
 * --pid: the container's PID 1, our child (without it: copy only, for tests).
 * --time: every record gets this time (tests compare output with the Python copier's).
 * Record: stream (1 byte) + time ns (8, big-endian) + length (4, BE) + data + length (4, BE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE 16384          /* log_format.MAX_LINE */
#define READ_SIZE 65536         /* log_copier reads this much at a time */
#define AFTER_EXIT_MS 2000      /* log_copier.AFTER_EXIT_SECONDS */
#define OUT_SIZE 65536          /* records are gathered here before a write */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

struct stream {
    int fd;                     /* -1 once ended */
    unsigned char id;           /* 1 stdout, 2 stderr */
    size_t pending;             /* bytes of an incomplete line at the start of buf */
    unsigned char buf[MAX_LINE + READ_SIZE];
};

static struct stream streams[2];
static unsigned char out[OUT_SIZE];
static size_t out_len;
static int log_fd = -1;
static long long fixed_time = -1;

static long long now_ns(void) {
    struct timespec ts;
    if (fixed_time >= 0)
        return fixed_time;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A failed write (a full disk) loses those records, as log_copier._append does. */
static void flush_out(void) {
    size_t done = 0;
    while (done < out_len) {
        ssize_t n = write(log_fd, out + done, out_len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    out_len = 0;
}

static void put_be(unsigned char *p, unsigned long long value, int bytes) {
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (unsigned char)(value & 0xff);
        value >>= 8;
    }
}

static void record(unsigned char id, long long time, const unsigned char *data, size_t len) {
    if (out_len + 17 + len > OUT_SIZE)
        flush_out();
    unsigned char *p = out + out_len;
    p[0] = id;
    put_be(p + 1, (unsigned long long)time, 8);
    put_be(p + 9, len, 4);
    memcpy(p + 13, data, len);
    put_be(p + 13 + len, len, 4);
    out_len += 17 + len;
}

/* log_copier.split_lines: records for the complete lines (cut at MAX_LINE), the incomplete
 * rest also cut while it is MAX_LINE or longer; what remains stays pending. */
static void split_lines(struct stream *s, size_t len, long long time) {
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (s->buf[i] != '\n')
            continue;
        for (size_t at = start; at <= i; at += MAX_LINE) {
            size_t piece = i + 1 - at < MAX_LINE ? i + 1 - at : MAX_LINE;
            record(s->id, time, s->buf + at, piece);
        }
        start = i + 1;
    }
    while (len - start >= MAX_LINE) {
        record(s->id, time, s->buf + start, MAX_LINE);
        start += MAX_LINE;
    }
    s->pending = len - start;
    memmove(s->buf, s->buf + start, s->pending);
}

static void end_stream(struct stream *s, long long time) {
    if (s->pending)
        record(s->id, time, s->buf, s->pending);
    s->pending = 0;
    close(s->fd);
    s->fd = -1;
}

/* Read one stream once: its records, or its end. Read errors end it too. */
static void read_stream(struct stream *s) {
    ssize_t n;
    do {
        n = read(s->fd, s->buf + s->pending, READ_SIZE);
    } while (n < 0 && errno == EINTR);
    long long time = now_ns();
    if (n > 0)
        split_lines(s, s->pending + (size_t)n, time);
    else
        end_stream(s, time);
    flush_out();
}

/* log_copier.copy_streams: both pipes until both end; once PID 1 has exited (its pidfd is
 * readable) at most AFTER_EXIT_MS more, should something outside hold a pipe open. */
static void copy_streams(int exit_fd) {
    long long deadline = -1;
    for (;;) {
        struct pollfd fds[3];
        struct stream *owner[3];
        int count = 0;
        for (int i = 0; i < 2; i++)
            if (streams[i].fd >= 0) {
                fds[count].fd = streams[i].fd;
                fds[count].events = POLLIN;
                owner[count++] = &streams[i];
            }
        if (count == 0)
            break;
        if (exit_fd >= 0) {
            fds[count].fd = exit_fd;
            fds[count].events = POLLIN;
            owner[count++] = NULL;
        }
        int timeout = -1;
        if (deadline >= 0) {
            long long left = deadline - monotonic_ms();
            if (left <= 0)
                break;
            timeout = (int)left;
        }
        int ready = poll(fds, (nfds_t)count, timeout);
        if (ready < 0 && errno != EINTR)
            break;
        for (int i = 0; i < count && ready > 0; i++) {
            if (!fds[i].revents)
                continue;
            if (owner[i] == NULL) {
                exit_fd = -1;   /* stays open (closed at exec): we only stop polling it */
                deadline = monotonic_ms() + AFTER_EXIT_MS;
            } else if (owner[i]->fd >= 0) {
                read_stream(owner[i]);
            }
        }
    }
    for (int i = 0; i < 2; i++)   /* given up on after the exit: keep what came */
        if (streams[i].fd >= 0)
            end_stream(&streams[i], now_ns());
    flush_out();
}

static int wait_child(pid_t pid) {
    int status;
    for (;;) {
        if (waitpid(pid, &status, 0) == pid)
            return status;
        if (errno != EINTR)
            return 255 << 8;   /* as Runtime.wait_child: not ours, exit code unknown */
    }
}

static int number(const char *text, long long *value) {
    char *end;
    errno = 0;
    *value = strtoll(text, &end, 10);
    return errno == 0 && end != text && *end == '\0';
}

static int usage(void) {
    fprintf(stderr, "usage: isoinspect-monitor --out FD --err FD --log FD [--pid PID] "
                    "[--time NS] [-- CLEANUP ARGV...]\n");
    return 125;
}

int main(int argc, char **argv) {
    long long out_fd = -1, err_fd = -1, log = -1, pid = 0;
    int rest = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check") == 0) {
            puts("isoinspect-monitor");
            return 0;
        }
        if (strcmp(argv[i], "--") == 0) {
            rest = i + 1;
            break;
        }
        long long *target = NULL;
        if (strcmp(argv[i], "--out") == 0) target = &out_fd;
        else if (strcmp(argv[i], "--err") == 0) target = &err_fd;
        else if (strcmp(argv[i], "--log") == 0) target = &log;
        else if (strcmp(argv[i], "--pid") == 0) target = &pid;
        else if (strcmp(argv[i], "--time") == 0) target = &fixed_time;
        if (target == NULL || i + 1 >= argc || !number(argv[++i], target))
            return usage();
    }
    if (out_fd < 0 || err_fd < 0 || log < 0)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    log_fd = (int)log;
    streams[0].fd = (int)out_fd;
    streams[0].id = 1;
    streams[1].fd = (int)err_fd;
    streams[1].id = 2;
    int exit_fd = pid > 0 ? (int)syscall(SYS_pidfd_open, (pid_t)pid, 0) : -1;
    copy_streams(exit_fd);   /* before Linux 5.3 (no pidfd): the pipes alone bound it */
    close(log_fd);
    if (exit_fd >= 0)
        close(exit_fd);
    if (pid <= 0)
        return 0;
    int status = wait_child((pid_t)pid);
    long long finished = now_ns();
    if (rest >= argc)
        return 0;
    int count = argc - rest;
    char **cleanup = calloc((size_t)count + 3, sizeof(char *));
    char status_text[24], finished_text[24];
    if (cleanup == NULL)
        return 1;
    snprintf(status_text, sizeof status_text, "%d", status);
    snprintf(finished_text, sizeof finished_text, "%lld", finished);
    memcpy(cleanup, argv + rest, (size_t)count * sizeof(char *));
    cleanup[count] = status_text;
    cleanup[count + 1] = finished_text;
    execv(cleanup[0], cleanup);
    return 127;   /* the lock drops with us: readers mark the container exited, code unknown */
}
