/*
 * `logveil pseudonym --config FILE [VALUE...]`: the pseudonym of each value
 * under every configured key, active key first, one line each:
 *
 *     <pseudonym> TAB <value>
 *
 * Values come from the arguments, or one a line from stdin when there are
 * none (a trailing "\r" is dropped with the newline). The pseudonyms are
 * those the pipeline writes for the same value: the same module computes
 * them from the same keys, so an investigator can search the store for a
 * user's records without the value being stored.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_compliance.h"
#include "logveil/conf.h"
#include "logveil/util.h"
#include "pseudonym.h"

static int print_one(struct lv_pseudonym *ps, const char *value, size_t len)
{
    struct lv_buf out;
    int rc = 0;
    lv_buf_init(&out, 128, 0);
    for (size_t i = 0; i < lv_pseudonym_nkeys(ps) && rc == 0; i++) {
        out.len = 0;
        rc = lv_pseudonym_put(ps, i, value, len, &out);
        if (rc == 0) {
            fwrite(out.data, 1, out.len, stdout);
            putchar('\t');
            fwrite(value, 1, len, stdout);
            putchar('\n');
        }
    }
    lv_buf_free(&out);
    return rc;
}

static int from_stdin(struct lv_pseudonym *ps)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
        rc = print_one(ps, line, lv_secret_file_len(line, (size_t)n)); /* less LF or CRLF */
    }
    if (line)
        explicit_bzero(line, cap);
    free(line);
    return rc;
}

int lv_cmd_pseudonym(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'c')
            path = optarg;
        else if (c == 'h') {
            puts("usage: logveil pseudonym --config FILE [VALUE...]   (values from stdin when none)");
            return 0;
        } else
            return lv_cmd_usage_error("bad option for pseudonym", NULL);
    }
    if (!path)
        return lv_cmd_usage_error("pseudonym needs --config FILE", NULL);
    struct lv_conf conf;
    struct lv_conf_errors errors = {0};
    int rc = lv_conf_load(path, &conf, &errors);
    if (rc < 0) {
        lv_conf_free(&conf);
        return lv_cmd_print_errors(&errors);
    }
    lv_conf_errors_free(&errors);
    struct lv_pseudonym *ps = lv_pseudonym_new(&conf.redact);
    lv_conf_free(&conf); /* the key set holds its own copy; the file's is wiped */
    if (!ps) {
        fprintf(stderr, "logveil: %s has no pseudonym key, expected redact.hmac_keys or "
                        "redact.hmac_key_file\n", path);
        return 2;
    }
    rc = 0;
    if (optind < argc)
        for (int i = optind; i < argc && rc == 0; i++)
            rc = print_one(ps, argv[i], strlen(argv[i]));
    else
        rc = from_stdin(ps);
    lv_pseudonym_free(ps);
    if (fflush(stdout) != 0 || rc < 0) {
        fprintf(stderr, "logveil: pseudonym: cannot write the result\n");
        return 1;
    }
    return 0;
}
