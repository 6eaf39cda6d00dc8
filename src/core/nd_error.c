#include "nd_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char nd_err_msg[1024];
static _Thread_local char nd_err_where[256];

nd_status nd_error_set(nd_status code, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nd_err_msg, sizeof nd_err_msg, fmt, ap);
    va_end(ap);
    const char *base = strstr(file, "src/");
    snprintf(nd_err_where, sizeof nd_err_where, "%s:%d", base ? base : file, line);
    return code;
}

const char *nd_error_message(void) { return nd_err_msg; }
const char *nd_error_where(void) { return nd_err_where; }

void nd_error_clear(void)
{
    nd_err_msg[0] = '\0';
    nd_err_where[0] = '\0';
}
