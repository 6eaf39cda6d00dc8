/* Error reporting for the C engine: every fallible function returns an nd_status;
 * on failure a thread-local message (with the source file and line) says why.
 * No longjmp, no exit: callers (the Lua binding) turn the message into a Lua error. */
#ifndef ND_ERROR_H
#define ND_ERROR_H

typedef enum nd_status {
    ND_OK = 0,
    ND_ERR_ARG,      /* bad argument value */
    ND_ERR_SHAPE,    /* sizes that do not fit together */
    ND_ERR_INDEX,    /* index out of range */
    ND_ERR_DTYPE,    /* unsupported dtype for the op */
    ND_ERR_MEMORY,   /* allocation failed */
    ND_ERR_IO,       /* file read/write failed or malformed file */
    ND_ERR_DEVICE,   /* wrong device or device failure */
    ND_ERR_NUMERIC   /* non-finite values where finite ones are required */
} nd_status;

/* Records a formatted message for the calling thread and returns `code`. */
nd_status nd_error_set(nd_status code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The last message of the calling thread ("" when none). Valid until the next error. */
const char *nd_error_message(void);
const char *nd_error_where(void); /* "file:line" of the last error */
void nd_error_clear(void);

#define ND_ERROR(code, ...) nd_error_set((code), __FILE__, __LINE__, __VA_ARGS__)
/* Propagates a failing status to the caller. */
#define ND_TRY(expr)                         \
    do {                                     \
        nd_status nd_try_st_ = (expr);       \
        if (nd_try_st_ != ND_OK) return nd_try_st_; \
    } while (0)

#endif
