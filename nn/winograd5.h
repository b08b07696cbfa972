/* winograd5.h: the input transform B^T of the Winograd algorithms on the
 * points 0, 1, -1, 2 and infinity with 5-element tiles: F(2, 4)
 * (nn/winograd24.c) and F(4, 2) (nn/winograd_phase.c). The two are each
 * other's transpose in the roles of kernel and output (F(4, 2)'s A^T is
 * F(2, 4)'s G^T and its G F(2, 4)'s A, up to a diagonal scaling), and share
 *   B^T = [2 -1 -2 1 0; 0 -2 -1 1 0; 0 2 -3 1 0; 0 -1 0 1 0; 0 2 -1 -2 1].
 */
#ifndef SPYNCO_WINOGRAD5_H
#define SPYNCO_WINOGRAD5_H

/* (B^T d) of a 5-vector as five expressions: the rows of B^T as adds and
 * doublings (scalars, so that the loops over tiles vectorise) */
#define BT5(o, d0, d1, d2, d3, d4)                                     \
    float o##0 = 2.0f * ((d0) - (d2)) + ((d3) - (d1)),                \
          o##1 = ((d3) - (d2)) - 2.0f * (d1),                         \
          o##2 = ((d3) - (d2)) + 2.0f * ((d1) - (d2)), o##3 = (d3) - (d1), \
          o##4 = ((d4) - (d2)) + 2.0f * ((d1) - (d3))

#endif
