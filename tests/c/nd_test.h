/* A tiny C test framework: checks count passes and failures; failures print file:line. */
#ifndef ND_TEST_H
#define ND_TEST_H

#include <math.h>
#include <stdio.h>

extern int nd_test_passed, nd_test_failed;

#define ND_CHECK(cond)                                                         \
    do {                                                                       \
        if (cond) nd_test_passed++;                                            \
        else {                                                                 \
            nd_test_failed++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                      \
    } while (0)

#define ND_CHECK_NEAR(a, b, tol)                                                            \
    do {                                                                                    \
        double nd_a_ = (double)(a), nd_b_ = (double)(b);                                    \
        if (fabs(nd_a_ - nd_b_) <= (tol) * (1.0 + fabs(nd_b_))) nd_test_passed++;           \
        else {                                                                              \
            nd_test_failed++;                                                               \
            fprintf(stderr, "FAIL %s:%d: %s = %.10g, expected %s = %.10g (tol %g)\n",       \
                    __FILE__, __LINE__, #a, nd_a_, #b, nd_b_, (double)(tol));               \
        }                                                                                   \
    } while (0)

/* A status-returning call expected to succeed. */
#define ND_CHECK_OK(expr)                                                                   \
    do {                                                                                    \
        nd_status nd_st_ = (expr);                                                          \
        if (nd_st_ == ND_OK) nd_test_passed++;                                              \
        else {                                                                              \
            nd_test_failed++;                                                               \
            fprintf(stderr, "FAIL %s:%d: %s -> %s\n", __FILE__, __LINE__, #expr, nd_error_message()); \
        }                                                                                   \
    } while (0)

#endif
