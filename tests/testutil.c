#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int test_passed = 0, test_failed = 0;

void test_fail_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed ? 1 : 0;
}

static uint64_t next(TestRng *r) {
    uint64_t x = r->s ? r->s : 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->s = x;
    return x;
}

float test_uniform(TestRng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((next(r) >> 40) * (1.0 / 16777216.0));
}

float test_normal(TestRng *r) {
    double u1 = ((next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void test_fill_uniform(TestRng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = test_uniform(r, lo, hi);
}

double test_rel_error(const float *a, const float *b, size_t n, double floor) {
    double max_diff = 0.0, max_ref = floor;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > max_diff || isnan(d)) max_diff = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > max_ref) max_ref = fabs((double)b[i]);
    }
    return max_diff / max_ref;
}

pid_t test_spawn(char *const argv[], char *const env[], const char *log) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0) return pid;
    for (int i = 0; env && env[i]; i++) putenv(env[i]);
    if (log) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
    }
    execv(argv[0], argv);
    _exit(127);
}

int test_wait(pid_t pid) {
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status) == 127 ? -1 : WEXITSTATUS(status);
}

int test_run(char *const argv[], char *const env[], const char *log) {
    return test_wait(test_spawn(argv, env, log));
}

char *test_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) size = 0;
    if (buf) buf[size] = 0;
    fclose(f);
    return buf;
}

void test_write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f && fputs(text, f) >= 0, "cannot write %s", path);
    if (f) CHECK(fclose(f) == 0, "cannot write %s", path);
}

double test_mtime(const char *path, ino_t *inode) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (inode) *inode = st.st_ino;
    return st.st_mtim.tv_sec + st.st_mtim.tv_nsec * 1e-9;
}

int test_count_entries(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, part) != NULL;
    if (d) closedir(d);
    return n;
}

TestPath test_path(const char *dir, const char *fmt, ...) {
    TestPath p;
    int len = snprintf(p.s, sizeof p.s, "%s/", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p.s + len, sizeof p.s - len, fmt, ap);
    va_end(ap);
    return p;
}

const char *test_tmpdir(const char *name) {
    static char dir[256];
    snprintf(dir, sizeof dir, "/tmp/spynco-%s-XXXXXX", name);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    return dir;
}

void test_remove_tree(const char *dir) {
    if (strncmp(dir, "/tmp/spynco-", 12) != 0) return; /* never anything else */
    char *argv[] = {"/bin/rm", "-rf", (char *)dir, NULL};
    test_run(argv, NULL, NULL);
}
