/* testutil.h: tiny assertion helpers shared by the test programs.
 * CHECK(cond, fmt, ...) records a failure and goes on; a test's main returns
 * test_summary(), which prints "N passed, M failed" and the exit status. */
#ifndef SPYNCO_TESTUTIL_H
#define SPYNCO_TESTUTIL_H

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

#endif
