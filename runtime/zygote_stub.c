/* isoinspect-zygote: where a warm-pool zygote waits for its command (runtime/warm_pool.py).
 *
 * The zygote's Python sets the container up (namespaces, cgroup, root, privileges, seccomp,
 * working directory, environment with HOME), then execs this program from a sealed memfd
 * (the pool's copy, runtime/zygote_program.py). So a start wakes a process that holds no
 * interpreter: it receives the command, moves the descriptors and execs, with no Python left
 * to run and no interpreter's address space to tear down on that exec.
 *
 *   isoinspect-zygote CHANNEL_FD READY_FD ERR_FD
 *
 * READY_FD: "r" is written, then closed: set up and waiting. CHANNEL_FD: a SOCK_SEQPACKET
 * socket; one message = a byte whose bits 0..2 say which of stdin/stdout/stderr come with it
 * (SCM_RIGHTS, in that order) + argv as NUL-separated bytes (warm_pool.encode_command). An
 * empty message or EOF (the pool closed it): exit 125. ERR_FD: close-on-exec, like every descriptor from 3
 * up, before the exec (its EOF tells the pool the command runs); a failure is written there like Docker's and
 * runtime/child.py's: exec: "<path>": <reason> (127 not found, 126 otherwise).
 * The program name is searched on $PATH as execvp does (runtime/child.py _look_up's results).
 * Run with other arguments (e.g. as a "#!/proc/self/exe" interpreter): exit 127.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_COMMAND 65536       /* warm_pool.MAX_COMMAND_BYTES */
#define SETUP_FAILED 125
#define NOT_EXECUTABLE 126
#define NOT_FOUND 127
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;
static char message[MAX_COMMAND + 2];
static char *args[MAX_COMMAND + 2];
static char candidate[MAX_COMMAND + 4096];
static int err_fd = -1;

static int number(const char *text) {
    char *end;
    long value = strtol(text, &end, 10);
    return (*text && !*end && value >= 0 && value < 1 << 20) ? (int)value : -1;
}

static void put(const char *text) {
    size_t len = strlen(text);
    while (len) {
        ssize_t n = write(err_fd, text, len);
        if (n <= 0 && errno != EINTR)
            return;
        if (n > 0) {
            text += n;
            len -= n;
        }
    }
}

static void fail(const char *path, const char *reason, int code) {
    put("exec: \"");
    put(path);
    put("\": ");
    put(reason);
    _exit(code);
}

static void fail_errno(const char *path, int error) {
    static char reason[256];
    strncpy(reason, strerror(error), sizeof reason - 1);
    for (char *c = reason; *c; c++)
        *c = tolower((unsigned char)*c);
    fail(path, reason, error == ENOENT ? NOT_FOUND : NOT_EXECUTABLE);
}

static void search_path(char **argv) {
    const char *path = getenv("PATH");
    const char *name = argv[0];
    size_t name_len = strlen(name);
    int denied = 0;
    if (!path)
        path = DEFAULT_PATH;
    for (;;) {
        const char *end = strchrnul(path, ':');
        size_t dir_len = end - path;
        if (dir_len + name_len + 3 <= sizeof candidate) {
            if (dir_len) {
                memcpy(candidate, path, dir_len);
            } else {
                candidate[0] = '.';
                dir_len = 1;
            }
            candidate[dir_len] = '/';
            memcpy(candidate + dir_len + 1, name, name_len + 1);
            execve(candidate, argv, environ);
            if (errno == EACCES)
                denied = 1;
            else if (errno != ENOENT && errno != ENOTDIR)
                fail_errno(candidate, errno);
        }
        if (!*end)
            break;
        path = end + 1;
    }
    if (denied)
        fail(name, "permission denied", NOT_EXECUTABLE);
    fail(name, "executable file not found in $PATH", NOT_FOUND);
}

int main(int argc, char **argv) {
    if (argc != 4)
        return NOT_FOUND;
    int channel = number(argv[1]), ready = number(argv[2]);
    err_fd = number(argv[3]);
    if (channel < 0 || ready < 0 || err_fd < 0)
        return NOT_FOUND;
    prctl(PR_SET_DUMPABLE, 0);  /* the exec made it dumpable; it waits inside the container */
    prctl(PR_SET_NAME, "isoinspect-zyg");
    /* nothing of ours reaches the command: this program's own descriptor, the error pipe */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        for (int fd = 3; fd < 1024; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (write(ready, "r", 1) != 1)
        return SETUP_FAILED;
    close(ready);

    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(3 * sizeof(int))];
    } control;
    struct iovec iov = {message, sizeof message - 1};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof control.space;
    ssize_t got;
    do
        got = recvmsg(channel, &msg, MSG_CMSG_CLOEXEC);
    while (got < 0 && errno == EINTR);
    if (got < 2 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
        _exit(SETUP_FAILED);  /* the pool closed without a command */
    close(channel);
    int fds[3], count = 0;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    if (cmsg && cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
        count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        memcpy(fds, CMSG_DATA(cmsg), count * sizeof(int));
    }
    for (int target = 0, next = 0; target < 3 && next < count; target++) {
        if (!(message[0] & (1 << target)))
            continue;
        /* dup2's copy is inheritable; one received as the target itself is marked so */
        if (fds[next] == target ? fcntl(target, F_SETFD, 0) < 0 : dup2(fds[next], target) < 0)
            _exit(SETUP_FAILED);
        next++;
    }
    for (int i = 0; i < count; i++)
        if (fds[i] > 2)
            close(fds[i]);

    message[got] = '\0';
    int n = 0;
    for (char *arg = message + 1;; arg++) {  /* every NUL-separated field, empty ones too */
        args[n++] = arg;
        arg += strlen(arg);
        if (arg >= message + got)
            break;
    }
    args[n] = NULL;
    if (strchr(args[0], '/')) {
        execve(args[0], args, environ);
        fail_errno(args[0], errno);
    }
    search_path(args);
    return NOT_FOUND;
}
