/*
 * corotls C tests: the shared output convention. One line per check
 * ("ok   ..." or "FAIL ..."), then "N passed, M failed"; the exit status is
 * non-zero when anything failed.
 */
#ifndef COROTLS_CHECK_H
#define COROTLS_CHECK_H

#include <stdarg.h>
#include <stdio.h>

#define CHECK_UNUSED __attribute__((unused))

static unsigned check_passed, check_failed;

/* Records one check; returns `ok` so callers can bail out of a dependent step. */
CHECK_UNUSED __attribute__((format(printf, 2, 3)))
static int check(int ok, const char *fmt, ...)
{
    va_list ap;

    fputs(ok ? "ok   " : "FAIL ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (ok) check_passed++;
    else check_failed++;
    return ok;
}

/* Prints the summary line and returns the process exit status. */
CHECK_UNUSED static int check_summary(void)
{
    printf("%u passed, %u failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
