/* The syscall floor for a directory queue: what the kernel costs per message, with nothing
 * else around it. Built by bench/run with gcc at run time.
 *
 *   floor push DIR N [sync]   N x (open tmp/ + write + [fsync] + close + rename into new/
 *                             + [fsync new/]); DIR/tmp and DIR/new are created if missing
 *   floor claim DIR [N]       readdir new/, then per entry: rename into cur/ + unlink;
 *                             at most N (default all); prints the count claimed
 *   floor pop DIR             one-shot claim of one message: opendir + readdir up to the
 *                             first entry + rename into cur/ + open + read + write stdout +
 *                             close + unlink; exit 3 when new/ is empty
 * Names are pid.counter, so several producers never collide. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what, const char *path) {
    fprintf(stderr, "floor: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void mk(const char *dir, const char *sub) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    if (mkdir(p, 0700) != 0 && errno != EEXIST) die("mkdir", p);
}

static int push(const char *dir, long n, int sync) {
    char tmp[4096], dst[4096], body[64], newdir[4096];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) die("mkdir", dir);
    mk(dir, "tmp"); mk(dir, "new"); mk(dir, "cur");
    snprintf(newdir, sizeof newdir, "%s/new", dir);
    int dfd = -1;
    if (sync && (dfd = open(newdir, O_RDONLY | O_DIRECTORY)) < 0) die("open", newdir);
    pid_t pid = getpid();
    for (long i = 0; i < n; i++) {
        snprintf(tmp, sizeof tmp, "%s/tmp/%d.%ld", dir, (int)pid, i);
        snprintf(dst, sizeof dst, "%s/new/%d.%ld", dir, (int)pid, i);
        int len = snprintf(body, sizeof body, "message %d.%ld\n", (int)pid, i);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) die("open", tmp);
        if (write(fd, body, len) != len) die("write", tmp);
        if (sync && fsync(fd) != 0) die("fsync", tmp);
        if (close(fd) != 0) die("close", tmp);
        if (rename(tmp, dst) != 0) die("rename", dst);
        if (sync && fsync(dfd) != 0) die("fsync", newdir);
    }
    return 0;
}

static int claim(const char *dir, long max) {
    char newdir[4096], src[4096], dst[4096];
    mk(dir, "cur");
    snprintf(newdir, sizeof newdir, "%s/new", dir);
    DIR *d = opendir(newdir);
    if (!d) die("opendir", newdir);
    long got = 0;
    struct dirent *e;
    while ((max < 0 || got < max) && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(src, sizeof src, "%s/new/%s", dir, e->d_name);
        snprintf(dst, sizeof dst, "%s/cur/%s", dir, e->d_name);
        if (rename(src, dst) != 0) { if (errno == ENOENT) continue; die("rename", src); }
        if (unlink(dst) != 0) die("unlink", dst);
        got++;
    }
    closedir(d);
    printf("%ld\n", got);
    return 0;
}

static int pop(const char *dir) {
    char newdir[4096], src[4096], dst[4096], buf[65536];
    snprintf(newdir, sizeof newdir, "%s/new", dir);
    DIR *d = opendir(newdir);
    if (!d) die("opendir", newdir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(src, sizeof src, "%s/new/%s", dir, e->d_name);
        snprintf(dst, sizeof dst, "%s/cur/%s", dir, e->d_name);
        if (rename(src, dst) != 0) { if (errno == ENOENT) continue; die("rename", src); }
        int fd = open(dst, O_RDONLY | O_CLOEXEC);
        if (fd < 0) die("open", dst);
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0)
            if (write(1, buf, r) != r) die("write", "stdout");
        close(fd);
        if (unlink(dst) != 0) die("unlink", dst);
        closedir(d);
        return 0;
    }
    closedir(d);
    return 3;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "push"))
        return push(argv[2], atol(argv[3]), argc > 4 && !strcmp(argv[4], "sync"));
    if (argc >= 3 && !strcmp(argv[1], "claim"))
        return claim(argv[2], argc > 3 ? atol(argv[3]) : -1);
    if (argc == 3 && !strcmp(argv[1], "pop")) return pop(argv[2]);
    fprintf(stderr, "usage: floor push DIR N [sync] | claim DIR [N] | pop DIR\n");
    return 2;
}
