/* Test groups are listed in test_main.c (ND_TEST_GROUPS); each file defines void nd_test_<group>(void). */
