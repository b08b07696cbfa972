#include "nn/arena.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN_FLOATS 16 /* 64 bytes: one cache line, one AVX-512 vector */

Arena arena_counter(void) {
    Arena a = {NULL, 0, 0};
    return a;
}

int arena_alloc(Arena *a) {
    size_t n = a->used ? a->used : ARENA_ALIGN_FLOATS;
    size_t bytes = n * sizeof(float);
    a->base = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!a->base) return -1;
    memset(a->base, 0, bytes);
    a->capacity = n;
    a->used = 0;
    return 0;
}

float *arena_take(Arena *a, size_t n) {
    size_t start = (a->used + ARENA_ALIGN_FLOATS - 1) / ARENA_ALIGN_FLOATS * ARENA_ALIGN_FLOATS;
    a->used = start + n;
    if (!a->base) return NULL;
    if (a->used > a->capacity) abort(); /* layout changed between the two passes: a bug */
    return a->base + start;
}

void arena_rewind(Arena *a) { a->used = 0; }

void arena_free(Arena *a) {
    free(a->base);
    a->base = NULL;
    a->capacity = a->used = 0;
}
