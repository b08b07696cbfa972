/* dist.c: MPI behind a small interface, with single-process fallbacks.
 * Every MPI call of Spynco is in this file. */
#include "pipeline/dist.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SPYNCO_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;

/* Launchers announce themselves in the environment: Open MPI's mpirun,
 * MPICH's hydra and Slurm's srun (PMI), PMIx-based ones (without the size).
 * 0: not started by a launcher; else the number of processes (1 if unknown). */
static long launcher_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && atol(v) > 0) return atol(v);
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

int dist_init(int *argc, char ***argv, char *err, size_t n) {
    long launched = launcher_size();
#ifdef SPYNCO_HAVE_MPI
    int started = 0;
    MPI_Initialized(&started);
    if (launched < 1 || started) return 0; /* a single process, or joined already */
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        snprintf(err, n, "MPI could not start (MPI_Init_thread failed)");
        return -1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (provided < MPI_THREAD_FUNNELED) {
        snprintf(err, n, "this MPI library does not support threads (MPI_THREAD_FUNNELED), which "
                         "the OpenMP loops need");
        MPI_Finalize();
        g_rank = 0, g_size = 1;
        return -1;
    }
    return 0;
#else
    (void)argc, (void)argv;
    if (launched > 1) {
        snprintf(err, n, "started by an MPI launcher as one of %ld processes, but this spynco was "
                         "built without MPI; rebuild with libopenmpi-dev installed (cmake "
                         "-DSPYNCO_MPI=AUTO or ON), or run a single process", launched);
        return -1;
    }
    return 0;
#endif
}

void dist_finalize(void) {
#ifdef SPYNCO_HAVE_MPI
    int started = 0, finished = 0;
    MPI_Initialized(&started);
    MPI_Finalized(&finished);
    if (started && !finished) {
        /* nobody leaves before all are done: when one rank exits with an
         * error, mpirun kills the others, maybe before they said why */
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Finalize();
    }
#endif
    g_rank = 0, g_size = 1;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }

#ifdef SPYNCO_HAVE_MPI
/* MPI counts are ints: large arrays go in pieces. */
#define CHUNK ((size_t)1 << 28)
#endif

#ifdef SPYNCO_HAVE_MPI
/* In-place sum over the ranks of count elements of `size` bytes each. */
static void sum_in_place(void *values, size_t count, MPI_Datatype type, size_t size) {
    for (size_t i = 0; g_size > 1 && i < count; i += CHUNK) {
        size_t k = count - i < CHUNK ? count - i : CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, (char *)values + i * size, (int)k, type, MPI_SUM,
                      MPI_COMM_WORLD);
    }
}
#endif

void dist_sum_doubles(double *values, size_t count) {
#ifdef SPYNCO_HAVE_MPI
    sum_in_place(values, count, MPI_DOUBLE, sizeof *values);
#else
    (void)values, (void)count;
#endif
}

void dist_sum_floats(float *values, size_t count) {
#ifdef SPYNCO_HAVE_MPI
    sum_in_place(values, count, MPI_FLOAT, sizeof *values);
#else
    (void)values, (void)count;
#endif
}

void dist_allgather_floats(float *all, const float *mine, size_t count) {
#ifdef SPYNCO_HAVE_MPI
    if (g_size > 1) {
        MPI_Allgather(mine, (int)count, MPI_FLOAT, all, (int)count, MPI_FLOAT, MPI_COMM_WORLD);
        return;
    }
#endif
    memcpy(all, mine, count * sizeof(float));
}

int dist_max_int(int value) {
#ifdef SPYNCO_HAVE_MPI
    if (g_size > 1) MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
    return value;
}

void dist_barrier(void) {
#ifdef SPYNCO_HAVE_MPI
    if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

#ifdef SPYNCO_HAVE_MPI
/* data = root's bytes, on every rank. */
static void bcast_from(int root, void *data, size_t bytes) {
    for (size_t i = 0; i < bytes; i += CHUNK) {
        size_t k = bytes - i < CHUNK ? bytes - i : CHUNK;
        MPI_Bcast((char *)data + i, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}
#endif

int dist_agree(int rc, char *err, size_t n) {
#ifdef SPYNCO_HAVE_MPI
    if (g_size > 1) {
        int first = rc ? g_rank : g_size;
        MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (first == g_size) return 0;
        /* the message of the rank that failed, on every rank (n is the same everywhere) */
        if (g_rank == first) err[n - 1] = '\0';
        bcast_from(first, err, n);
        /* rank 0 reports it: say whose it was (another machine may see other files) */
        size_t len = strlen(err);
        if (first > 0) snprintf(err + len, n - len, " (on rank %d)", first);
        return -1;
    }
#else
    (void)err, (void)n;
#endif
    return rc ? -1 : 0;
}

#ifdef SPYNCO_HAVE_MPI
/* FNV-1a over 64-bit words, then the tail bytes. */
static uint64_t hash_bytes(const void *data, size_t bytes) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull, w;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    for (; i < bytes; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
#endif

int dist_same_everywhere(const void *data, size_t bytes) {
#ifdef SPYNCO_HAVE_MPI
    if (g_size > 1) {
        uint64_t h = hash_bytes(data, bytes);
        uint64_t v[2] = {h, ~h}; /* max of both: the largest and (negated) the smallest hash */
        MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
        return v[0] == ~v[1];
    }
#endif
    (void)data, (void)bytes;
    return 1;
}

void dist_bcast(void *data, size_t bytes) {
#ifdef SPYNCO_HAVE_MPI
    if (g_size > 1) bcast_from(0, data, bytes);
#else
    (void)data, (void)bytes;
#endif
}

/* ---- DistQueue --------------------------------------------------------------- */

#define TAG_REQUEST 7101
#define TAG_ITEM 7102

struct DistQueue {
    long num_items;
    long next;      /* rank 0: the first item not given out yet */
    int told_done;  /* rank 0: ranks told that no items are left */
    int finished;   /* this rank was told so */
    long *mine;     /* the items this rank was given, room for all */
    long count;
#ifdef SPYNCO_HAVE_MPI
    MPI_Comm comm;  /* our own, so the queue's messages meet no others */
#endif
};

DistQueue *dist_queue_create(long num_items) {
    DistQueue *q = calloc(1, sizeof *q);
    if (q) {
        q->num_items = num_items > 0 ? num_items : 0;
        q->mine = malloc((size_t)(q->num_items ? q->num_items : 1) * sizeof *q->mine);
        if (!q->mine) free(q), q = NULL;
    }
    if (dist_max_int(q == NULL)) {
        if (q) free(q->mine), free(q);
        return NULL;
    }
#ifdef SPYNCO_HAVE_MPI
    if (g_size > 1) MPI_Comm_dup(MPI_COMM_WORLD, &q->comm);
#endif
    return q;
}

#ifdef SPYNCO_HAVE_MPI
/* Rank 0: receives one request (waiting for it) and answers with the next
 * item. A request is 1 from a rank that stops the queue, else 0. */
static void serve_one(DistQueue *q) {
    MPI_Status st;
    long stop = 0;
    MPI_Recv(&stop, 1, MPI_LONG, MPI_ANY_SOURCE, TAG_REQUEST, q->comm, &st);
    if (stop) q->next = q->num_items;
    long item = q->next < q->num_items ? q->next++ : -1;
    if (item < 0) q->told_done++;
    MPI_Send(&item, 1, MPI_LONG, st.MPI_SOURCE, TAG_ITEM, q->comm);
}
#endif

void dist_queue_poll(DistQueue *q) {
#ifdef SPYNCO_HAVE_MPI
    if (g_size == 1 || g_rank != 0) return;
    for (;;) {
        int waiting = 0;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQUEST, q->comm, &waiting, MPI_STATUS_IGNORE);
        if (!waiting) return;
        serve_one(q);
    }
#else
    (void)q;
#endif
}

long dist_queue_next(DistQueue *q, int stop) {
    if (q->finished) return -1;
    if (stop && g_rank == 0) q->next = q->num_items;
    long item = -1;
    if (g_size == 1) {
        item = q->next < q->num_items ? q->next++ : -1;
    }
#ifdef SPYNCO_HAVE_MPI
    else if (g_rank == 0) {
        dist_queue_poll(q);
        if (q->next < q->num_items) item = q->next++;
        else
            while (q->told_done < g_size - 1) serve_one(q);
    } else {
        long request = stop != 0;
        MPI_Send(&request, 1, MPI_LONG, 0, TAG_REQUEST, q->comm);
        MPI_Recv(&item, 1, MPI_LONG, 0, TAG_ITEM, q->comm, MPI_STATUS_IGNORE);
    }
#endif
    if (item < 0) {
        q->finished = 1;
        return -1;
    }
    q->mine[q->count++] = item;
    return item;
}

long dist_queue_count_mine(const DistQueue *q) { return q->count; }
const long *dist_queue_mine(const DistQueue *q) { return q->mine; }

int dist_queue_gather(DistQueue *q, void *records, size_t record_size) {
#ifdef SPYNCO_HAVE_MPI
    if (g_size == 1) return 0;
    int root = g_rank == 0, count = (int)q->count;
    unsigned char *packed = malloc((size_t)(count ? count : 1) * record_size), *all = NULL;
    /* rank 0: item counts, their displacements, and both again in bytes */
    int *meta = root ? calloc(4 * (size_t)g_size, sizeof *meta) : NULL;
    long *items = NULL, total = 0;
    int rc = -1;
    if (dist_max_int(!packed || (root && !meta))) goto done;
    int *counts = meta, *displs = meta + g_size, *byte_counts = meta + 2 * g_size,
        *byte_displs = meta + 3 * g_size;
    MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, 0, q->comm);
    for (int r = 0; root && r < g_size; r++) {
        displs[r] = (int)total;
        byte_counts[r] = (int)((size_t)counts[r] * record_size);
        byte_displs[r] = (int)((size_t)total * record_size);
        total += counts[r];
    }
    if (root) {
        items = malloc((size_t)(total ? total : 1) * sizeof *items);
        all = malloc((size_t)(total ? total : 1) * record_size);
    }
    if (dist_max_int(root && (!items || !all))) goto done;
    for (int k = 0; k < count; k++)
        memcpy(packed + (size_t)k * record_size,
               (unsigned char *)records + (size_t)q->mine[k] * record_size, record_size);
    MPI_Gatherv(q->mine, count, MPI_LONG, items, counts, displs, MPI_LONG, 0, q->comm);
    MPI_Gatherv(packed, (int)((size_t)count * record_size), MPI_BYTE, all, byte_counts,
                byte_displs, MPI_BYTE, 0, q->comm);
    for (long k = 0; k < total; k++)
        memcpy((unsigned char *)records + (size_t)items[k] * record_size,
               all + (size_t)k * record_size, record_size);
    rc = 0;
done:
    free(meta), free(items), free(all), free(packed);
    return rc;
#else
    (void)q, (void)records, (void)record_size;
    return 0;
#endif
}

void dist_queue_free(DistQueue *q) {
    if (!q) return;
#ifdef SPYNCO_HAVE_MPI
    if (g_size > 1) MPI_Comm_free(&q->comm);
#endif
    free(q->mine);
    free(q);
}
