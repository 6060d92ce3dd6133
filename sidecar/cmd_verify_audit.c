/*
 * `logveil verify-audit --key-file [ID=]K [--from-seq N] [--expect-last N]
 * < export.jsonl`: reads an export on stdin and reports, per stream, what
 * sidecar/verify_audit.h checks. Exit 0 only when every chain is whole, 1
 * when one is not (or nothing could be verified), 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_compliance.h"
#include "logveil/util.h"
#include "verify_audit.h"

/* A line longer than this is not an exported log record. */
#define MAX_EXPORT_LINE (64u << 20)

/* "ID=PATH" or "PATH"; the key is the file less one line ending, as the
 * configuration reads it. */
static int add_key_file(struct lv_verify *v, const char *arg)
{
    const char *eq = strchr(arg, '=');
    const char *path = eq ? eq + 1 : arg;
    char *id = eq ? lv_xstrndup(arg, (size_t)(eq - arg)) : NULL;
    char *data = NULL;
    size_t len = 0;
    int rc = lv_read_file(path, 64 * 1024, &data, &len);
    if (rc < 0) {
        fprintf(stderr, "logveil: verify-audit: cannot read the key file \"%s\": %s\n", path,
                strerror(-rc));
    } else {
        lv_verify_add_key(v, id, data, lv_secret_file_len(data, len));
        explicit_bzero(data, len);
    }
    free(data);
    free(id);
    return rc;
}

static int parse_seq(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-')
        return -EINVAL;
    *out = n;
    return 0;
}

static int read_export(struct lv_verify *v, FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if ((size_t)n > MAX_EXPORT_LINE) {
            fprintf(stdout, "malformed line %" PRIu64 ": longer than 64 MiB, skipped\n", lineno);
            continue;
        }
        lv_verify_line(v, line, (size_t)n, lineno);
    }
    free(line);
    return ferror(in) ? -EIO : 0;
}

int lv_cmd_verify_audit(int argc, char **argv)
{
    static const struct option opts[] = {{"key-file", required_argument, 0, 'k'},
                                         {"from-seq", required_argument, 0, 'f'},
                                         {"expect-last", required_argument, 0, 'e'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    struct lv_verify *v = lv_verify_new();
    uint64_t from = 1, last = 0;
    int c, rc = 0, nkeys = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "k:f:e:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            rc = add_key_file(v, optarg) < 0 ? 2 : 0;
            nkeys++;
            break;
        case 'f':
            if (parse_seq(optarg, &from) < 0)
                rc = lv_cmd_usage_error("--from-seq expects a number", optarg);
            break;
        case 'e':
            if (parse_seq(optarg, &last) < 0)
                rc = lv_cmd_usage_error("--expect-last expects a number", optarg);
            break;
        case 'h':
            puts("usage: logveil verify-audit --key-file [ID=]FILE [--from-seq N] "
                 "[--expect-last N] < EXPORT");
            lv_verify_free(v);
            return 0;
        default: rc = lv_cmd_usage_error("bad option for verify-audit", NULL); break;
        }
    }
    if (rc == 0 && !nkeys)
        rc = lv_cmd_usage_error("verify-audit needs --key-file FILE", NULL);
    if (rc == 0 && optind < argc)
        rc = lv_cmd_usage_error("verify-audit reads the export on stdin; unexpected argument",
                                argv[optind]);
    if (rc == 0 && read_export(v, stdin) < 0) {
        fprintf(stderr, "logveil: verify-audit: cannot read stdin: %s\n", strerror(errno));
        rc = 1;
    }
    if (rc == 0)
        rc = lv_verify_report(v, from, last, stdout) ? 0 : 1;
    lv_verify_free(v);
    fflush(stdout);
    return rc;
}
