/* Runs every C test group that exists (weak symbols: a group's file may be absent) and prints
 * "N passed, N failed". Exit status 1 on any failure. */
#include <stdio.h>

#include "nd_test.h"

int nd_test_passed, nd_test_failed;

#define ND_TEST_GROUPS(X) X(core) X(math) X(linalg) X(nn) X(conv) X(winograd) X(deconv) X(data)
#define ND_DECLARE(name) void nd_test_##name(void) __attribute__((weak));
ND_TEST_GROUPS(ND_DECLARE)

int main(void)
{
#define ND_RUN(name)                                                                      \
    if (nd_test_##name) {                                                                 \
        int p0 = nd_test_passed, f0 = nd_test_failed;                                     \
        nd_test_##name();                                                                 \
        printf("c/%-8s %d passed, %d failed\n", #name, nd_test_passed - p0, nd_test_failed - f0); \
    }
    ND_TEST_GROUPS(ND_RUN)
    printf("%d passed, %d failed\n", nd_test_passed, nd_test_failed);
    return nd_test_failed ? 1 : 0;
}
