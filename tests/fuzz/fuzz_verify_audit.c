/*
 * libFuzzer target for verify-audit's reader (sidecar/verify_audit.c): the
 * input is an export, split into lines as `logveil verify-audit` splits
 * stdin, then checked and reported. Malformed exports must give clear
 * findings, never a crash, a leak or undefined behaviour. Beyond that the
 * report has to agree with what was read: a chain is never "whole" when a
 * line was malformed, or when no audit record was read at all.
 *
 * Seeds (tests/fuzz/seeds-audit) are exports written by logveil with the key
 * below, so that the fuzzer starts from chains that verify.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify_audit.h"

#define KEY "fuzz-audit-key-0123456789abcdef!"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    struct lv_verify *v = lv_verify_new();
    lv_verify_add_key(v, NULL, KEY, strlen(KEY));
    const char *p = (const char *)data, *end = p + size;
    uint64_t lineno = 0;
    int audit = 0, malformed = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int rc = lv_verify_line(v, p, len, ++lineno);
        audit += rc == 1;
        malformed += rc < 0;
        p += len + (nl != NULL);
    }
    bool whole = lv_verify_report(v, 1, 0, sink);
    if (whole && (malformed || !audit))
        abort(); /* the verdict disagrees with what was read */
    lv_verify_free(v);
    return 0;
}
