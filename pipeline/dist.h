/* dist.h: the processes of a distributed run (MPI), or just this one.
 *
 * `mpirun -n N spynco ...` starts N copies of the program, ranks 0..N-1;
 * these calls let them cooperate. Built without MPI (no SPYNCO_HAVE_MPI), or
 * started without a launcher, the program is rank 0 of 1 and every call is
 * its trivial single-process form, so callers need no #ifdefs.
 *
 * Unless a call says otherwise it is collective: every rank makes it, in the
 * same order. MPI runs in MPI_THREAD_FUNNELED mode: call from the main
 * thread only (OpenMP loops in between are fine).
 *
 * Training (pipeline/train.c, data-parallel) uses the sums (gradients,
 * BatchNorm statistics, losses), the allgather (the fakes for the history
 * pool) and the agreements (errors, stop requests). Batch jobs over many
 * inputs use DistQueue: rank 0 deals out item indices on request, so a slow
 * item holds up only the rank working on it.
 */
#ifndef SPYNCO_DIST_H
#define SPYNCO_DIST_H

#include <stddef.h>

/* Joins the run (a second call does nothing). MPI starts only when a
 * launcher (mpirun, srun) started the process; a plain `spynco ...` stays a
 * single process without touching MPI.
 * -1 with a message if MPI cannot start, or if a launcher asks for several
 * ranks from a build without MPI (they would all write the same files). */
int dist_init(int *argc, char ***argv, char *err, size_t err_size);
/* Waits for every rank, then leaves the run (MPI_Finalize); dist_size() is
 * 1 again afterwards. Report errors before: once a rank exits with a
 * failure, mpirun kills the others. */
void dist_finalize(void);
/* Not collective. */
int dist_rank(void);
int dist_size(void);

/* values[i] = the sum of values[i] over all ranks, on every rank. */
void dist_sum_doubles(double *values, size_t count);
void dist_sum_floats(float *values, size_t count);
/* all = the `count` floats of rank 0, then rank 1's, ...; all holds size*count
 * (count below 2^31). */
void dist_allgather_floats(float *all, const float *mine, size_t count);
/* The largest value over all ranks. */
int dist_max_int(int value);
void dist_barrier(void);
/* Agreement on failure: when any rank's rc is nonzero, every rank returns -1
 * with the message (err) of the lowest failing rank, followed by
 * " (on rank N)" unless that is rank 0; otherwise 0. */
int dist_agree(int rc, char *err, size_t err_size);
/* 1 if every rank holds the same bytes (compared through a 64-bit hash). */
int dist_same_everywhere(const void *data, size_t bytes);
/* data = rank 0's bytes, on every rank. */
void dist_bcast(void *data, size_t bytes);

/* ---- dynamic work assignment ------------------------------------------------
 *   DistQueue *q = dist_queue_create(n);              // collective
 *   for (long i; (i = dist_queue_next(q, stop)) >= 0;) {  // not collective
 *       ... work on item i, results into records[i] ...
 *       (rank 0: call dist_queue_poll(q) now and then during long items)
 *   }
 *   dist_queue_gather(q, records, sizeof *records);   // rank 0 has them all
 *   dist_queue_free(q);
 * Each index 0..n-1 goes to exactly one rank, in increasing order, to
 * whichever rank asks first. Rank 0 works on items too and answers the
 * others' requests whenever it enters dist_queue_next or dist_queue_poll;
 * once the items are gone, its dist_queue_next serves until every rank has
 * been told there is no more. With one process: 0, 1, ..., n-1, then -1.
 * To end early (a signal), a rank passes stop = 1: it gets -1, and so do
 * the other ranks once they ask. */
typedef struct DistQueue DistQueue;
/* NULL if out of memory (on any rank: then on every rank). */
DistQueue *dist_queue_create(long num_items);
/* The next item for this rank, or -1 when all are handed out. stop: this
 * rank asks that no rank get another item (rank 0 hands out none from now
 * on; another rank's request tells it so) and gets -1. */
long dist_queue_next(DistQueue *q, int stop);
/* Rank 0: answers the requests waiting now; elsewhere nothing. Not collective. */
void dist_queue_poll(DistQueue *q);
/* The items this rank was given so far, in order (not collective). */
long dist_queue_count_mine(const DistQueue *q);
const long *dist_queue_mine(const DistQueue *q);
/* records holds num_items records of record_size bytes on every rank, each
 * rank having filled those of its own items; afterwards rank 0's holds all
 * (other ranks' copies are unchanged). 0, or -1 if out of memory (on every rank). */
int dist_queue_gather(DistQueue *q, void *records, size_t record_size);
void dist_queue_free(DistQueue *q);

#endif
