/* testutil.h: tiny assertion helpers shared by the test programs.
 * CHECK(cond, fmt, ...) records a failure and goes on; a test's main returns
 * test_summary(), which prints "N passed, M failed" and the exit status. */
#ifndef SPYNCO_TESTUTIL_H
#define SPYNCO_TESTUTIL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

extern int test_passed, test_failed;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (cond) {                                        \
            test_passed++;                                 \
        } else {                                           \
            test_failed++;                                 \
            test_fail_at(__FILE__, __LINE__, __VA_ARGS__); \
        }                                                  \
    } while (0)

void test_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int test_summary(const char *name);

/* Deterministic xorshift random numbers for fixtures. */
typedef struct {
    uint64_t s;
} TestRng;
float test_uniform(TestRng *r, float lo, float hi);
float test_normal(TestRng *r);
void test_fill_uniform(TestRng *r, float *x, size_t n, float lo, float hi);

/* max|a-b| / max(max|b|, floor): the norm-wise relative error used by the golden tests. */
double test_rel_error(const float *a, const float *b, size_t n, double floor);

/* Real processes. test_spawn starts argv (argv[0] a path), with extra
 * environment entries env (NAME=VALUE, NULL-terminated; may be NULL) and
 * stdout and stderr appended to log (may be NULL: inherited). test_wait
 * returns the exit status 0..255, 128+N if killed by signal N, -1 if the
 * program could not start. test_run does both. */
#include <sys/types.h>
pid_t test_spawn(char *const argv[], char *const env[], const char *log);
int test_wait(pid_t pid);
int test_run(char *const argv[], char *const env[], const char *log);
/* The whole file as a NUL-terminated string (caller frees); NULL if unreadable. */
char *test_read_file(const char *path);
/* Writes text into the file path (a failed CHECK if it cannot). */
void test_write_text(const char *path, const char *text);
/* The modification time of path in seconds, its inode into *inode (may be
 * NULL); -1 if it does not exist. */
double test_mtime(const char *path, ino_t *inode);
/* The entries of folder dir whose name contains part. */
int test_count_entries(const char *dir, const char *part);
/* A path in folder dir, by value: test_path(dir, "x").s lives until the end of
 * the full expression (arguments of one call), a TestPath variable as long as
 * it is in scope. */
typedef struct {
    char s[PATH_MAX];
} TestPath;
TestPath test_path(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A fresh temporary folder "/tmp/spynco-<name>-XXXXXX" (static storage),
 * removed with everything in it by test_remove_tree. */
const char *test_tmpdir(const char *name);
void test_remove_tree(const char *dir);

#endif
