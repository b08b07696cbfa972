/* arena.h: memory in few places.
 *
 * A network keeps its parameters, gradients, optimizer moments and activations
 * each in ONE block, with named views into it (llm.c style). Views are laid out
 * by running the same layout function twice: first on a counting arena (base
 * NULL), which only sums sizes, then on a real arena of exactly that size.
 *
 *     Arena a = arena_counter();
 *     layout(&a, ...);                 // views are NULL, a.used = total floats
 *     arena_alloc(&a);                 // one calloc, 64-byte aligned
 *     layout(&a, ...);                 // same calls, now real pointers
 *
 * Every view is 64-byte aligned. Nothing is freed piecemeal: arena_free frees
 * the whole block.
 */
#ifndef SPYNCO_ARENA_H
#define SPYNCO_ARENA_H

#include <stddef.h>

typedef struct {
    float *base;     /* NULL while counting */
    size_t capacity; /* floats available (0 while counting) */
    size_t used;     /* floats handed out so far (with alignment padding) */
} Arena;

Arena arena_counter(void);
/* Allocates `used` floats (zeroed) and rewinds; returns 0 on success, -1 if out of memory. */
int arena_alloc(Arena *a);
/* Hands out n floats (NULL while counting). */
float *arena_take(Arena *a, size_t n);
void arena_rewind(Arena *a);
void arena_free(Arena *a);

#endif
