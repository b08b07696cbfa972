/* pipeline/dist.h: the collectives and the work queue, with one process and
 * with two under mpirun. Run by ctest, the program tests the single-process
 * forms, then (built with MPI) starts itself with `mpirun -n 2`; those two
 * ranks test the real ones and their exit status is the verdict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/dist.h"
#include "testutil.h"

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void test_collectives(void) {
    int rank = dist_rank(), size = dist_size();
    double d[2] = {rank + 1.0, 0.5};
    dist_sum_doubles(d, 2);
    CHECK(d[0] == size * (size + 1) / 2.0 && d[1] == 0.5 * size, "sum of doubles: %g %g", d[0], d[1]);
    float f[3] = {1.0f, (float)rank, -2.0f};
    dist_sum_floats(f, 3);
    CHECK(f[0] == size && f[1] == size * (size - 1) / 2.0f && f[2] == -2.0f * size,
          "sum of floats: %g %g %g", f[0], f[1], f[2]);
    float mine[2] = {10.0f * rank, 10.0f * rank + 1}, all[16];
    dist_allgather_floats(all, mine, 2);
    int ordered = 1;
    for (int r = 0; r < size; r++) ordered &= all[2 * r] == 10.0f * r && all[2 * r + 1] == 10.0f * r + 1;
    CHECK(ordered, "allgather: pieces not in rank order");
    CHECK(dist_max_int(rank) == size - 1, "max over ranks");
    char err[64] = "";
    CHECK(dist_agree(0, err, sizeof err) == 0, "agreement without failures");
    if (rank == size - 1) snprintf(err, sizeof err, "rank %d failed", rank);
    int rc = dist_agree(rank == size - 1 ? -1 : 0, err, sizeof err);
    char expected[64];
    if (size == 1) snprintf(expected, sizeof expected, "rank 0 failed");
    else snprintf(expected, sizeof expected, "rank %d failed (on rank %d)", size - 1, size - 1);
    CHECK(rc == -1 && !strcmp(err, expected), "agreement on a failure: %d '%s'", rc, err);
    double same[3] = {1, 2, 3}, own[3] = {1, 2, (double)rank};
    CHECK(dist_same_everywhere(same, sizeof same), "equal data seen as different");
    CHECK(dist_same_everywhere(own, sizeof own) == (size == 1), "different data seen as equal");
    char word[8];
    snprintf(word, sizeof word, "rank %d", rank);
    dist_bcast(word, sizeof word);
    CHECK(!strcmp(word, "rank 0"), "broadcast: '%s', not rank 0's", word);
    dist_barrier();
}

typedef struct {
    long square;
    int rank;
} Record;

/* Every index handed out exactly once. With two ranks, rank 1 stays 3 s on
 * its first item while rank 0 takes 20 ms per item: rank 0 must get the
 * items rank 1 cannot take (a static split would give each half). */
static void test_queue(void) {
    enum { N = 60 };
    int rank = dist_rank(), size = dist_size();
    DistQueue *q = dist_queue_create(N);
    CHECK(q != NULL, "dist_queue_create");
    if (!q) return;
    Record *rec = malloc(N * sizeof *rec);
    for (int i = 0; i < N; i++) rec[i] = (Record){-1, -1};
    long last = -1;
    int increasing = 1;
    dist_barrier();
    for (long i; (i = dist_queue_next(q, 0)) >= 0;) {
        increasing &= i > last;
        rec[i] = (Record){i * i, rank};
        if (size > 1 && rank > 0 && last < 0) sleep_ms(3000);
        for (int k = 0; size > 1 && k < 2; k++) {
            sleep_ms(10);
            dist_queue_poll(q); /* rank 0 answers the others during its items */
        }
        last = i;
    }
    CHECK(dist_queue_next(q, 0) == -1, "items after the end");
    CHECK(increasing, "rank %d got its items out of order", rank);
    long count = dist_queue_count_mine(q);
    const long *items = dist_queue_mine(q);
    int listed = 1;
    for (long k = 0; k < count; k++) listed &= rec[items[k]].rank == rank;
    CHECK(listed, "dist_queue_mine lists items rank %d did not get", rank);
    double total = (double)count;
    dist_sum_doubles(&total, 1);
    CHECK(total == N, "%g items handed out for %d", total, N);
    CHECK(dist_queue_gather(q, rec, sizeof *rec) == 0, "gather failed");
    if (rank == 0) {
        int per_rank[8] = {0}, complete = 1;
        for (int i = 0; i < N; i++) {
            complete &= rec[i].square == (long)i * i && rec[i].rank >= 0 && rec[i].rank < size;
            if (rec[i].rank >= 0 && rec[i].rank < 8) per_rank[rec[i].rank]++;
        }
        CHECK(complete, "rank 0 lacks results after the gather");
        if (size == 2) {
            CHECK(per_rank[1] >= 1 && per_rank[0] > per_rank[1],
                  "items per rank %d and %d: not shared by speed", per_rank[0], per_rank[1]);
            printf("  queue: rank 0 did %d items while rank 1 was busy with its first (%d in "
                   "all), each index once\n", per_rank[0], per_rank[1]);
        } else {
            CHECK(per_rank[0] == N, "one process did %d of %d items", per_rank[0], N);
        }
    }
    dist_queue_free(q);
    free(rec);
}

/* Stopped early by the last rank after its first item (as a signal would):
 * no rank gets another item, every rank's loop ends. Rank 0 takes 20 ms
 * per item, so without the stop it would go on for a second. */
static void test_queue_stop(void) {
    enum { N = 50 };
    int rank = dist_rank(), size = dist_size();
    DistQueue *q = dist_queue_create(N);
    CHECK(q != NULL, "dist_queue_create");
    if (!q) return;
    dist_barrier();
    for (long i; (i = dist_queue_next(q, rank == size - 1 && dist_queue_count_mine(q) > 0)) >= 0;)
        if (rank != size - 1) sleep_ms(20), dist_queue_poll(q);
    CHECK(dist_queue_next(q, 0) == -1, "items after the stop");
    double counts[2] = {(double)dist_queue_count_mine(q), rank == size - 1 ? dist_queue_count_mine(q) : 0};
    dist_sum_doubles(counts, 2);
    CHECK(counts[1] == 1, "the stopping rank got %g items, not 1", counts[1]);
    CHECK(counts[0] < N / 2, "%g of %d items handed out despite the stop", counts[0], N);
    dist_queue_free(q);
}

/* Starts this program on two ranks; their exit status tells. */
static void test_two_ranks(void) {
#ifdef MPIEXEC
    char self[1024], cmd[2200];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        CHECK(0, "cannot find this program");
        return;
    }
    self[len] = '\0';
    snprintf(cmd, sizeof cmd, "exec %s -n 2 %s %s", MPIEXEC, MPIEXEC_FLAGS, self);
    /* Open MPI refuses root without the first two; waiting ranks yield the
     * CPU; ASan needs full stacks to match the MPI leak suppressions in
     * tests/lsan.supp */
    static char asan[1024];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%sfast_unwind_on_malloc=0", old ? old : "",
             old && *old ? ":" : "");
    char *env[] = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                   "OMPI_MCA_mpi_yield_when_idle=1", asan, NULL};
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int rc = test_run(argv, env, NULL);
    CHECK(rc == 0, "the 2-rank run failed (exit %d)", rc);
#else
    printf("  built without MPI: the 2-rank part is skipped\n");
#endif
}

int main(int argc, char **argv) {
    char err[256];
    if (dist_init(&argc, &argv, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int size = dist_size();
    printf("%s\n", size > 1 ? "rank of 2 processes" : "one process");
    test_collectives();
    test_queue();
    test_queue_stop();
    if (size == 1) test_two_ranks();
    int rc = test_summary(size > 1 ? "test_dist (2 ranks)" : "test_dist");
    dist_finalize();
    return rc;
}
