/*
 * libFuzzer target over the YAML configuration binder (lv_conf_load): any
 * file, valid or not, loads without a crash, a leak or an unbounded
 * allocation, and the result keeps the loader's promises:
 *   - it fails exactly when it reports errors, and a file that loads has an
 *     environment with a sampling profile, an input and an output;
 *   - every error reads "<file>:<line>: <message>", the line a number;
 *   - no message quotes the content of a secret file: ${LV_FUZZ_SECRET}
 *     names one (and the dictionary offers hmac_key_file with it), whose
 *     content is a marker no fuzz input can spell (a 'Q' in it; the target
 *     turns every 'Q' of the input into 'O').
 * The input is written to a file in a private directory and loaded from
 * there, as check-config would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logveil/conf.h"
#include "logveil/log.h"

#define MARKER "zQsecretQz"

static char dir[64], path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put(const char *name, const char *text, mode_t mode, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", dir, name);
    FILE *f = fopen(out, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
    chmod(out, mode);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char secret[128], readable[128];
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "%s/lv-fuzz-conf-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        abort();
    put("secret", MARKER "\n", 0600, secret, sizeof secret);
    put("readable", MARKER "\n", 0644, readable, sizeof readable);
    setenv("LV_FUZZ_SECRET", secret, 1);
    setenv("LV_FUZZ_READABLE", readable, 1);
    setenv("LV_FUZZ_WORD", "staging", 1);
    setenv("LV_FUZZ_EMPTY", "", 1);
    snprintf(path, sizeof path, "%s/c.yaml", dir);
    lv_log_set_level(LV_LOG_ERROR); /* the readable secret's warning, every run */
    return 0;
}

static void check_message(const char *msg)
{
    size_t n = strlen(path);
    if (strncmp(msg, path, n) != 0 || msg[n] != ':') {
        fprintf(stderr, "message without the file name: %s\n", msg);
        abort();
    }
    const char *p = msg + n + 1;
    if (*p < '0' || *p > '9') {
        fprintf(stderr, "message without a line number: %s\n", msg);
        abort();
    }
    while (*p >= '0' && *p <= '9')
        p++;
    if (strncmp(p, ": ", 2) != 0 || !p[2]) {
        fprintf(stderr, "message not \"file:line: message\": %s\n", msg);
        abort();
    }
    if (strstr(msg, "zQsecret") || strstr(msg, "secretQz")) {
        fprintf(stderr, "a secret file's content in a message: %s\n", msg);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    for (size_t i = 0; i < size; i++)
        fputc(data[i] == 'Q' ? 'O' : data[i], f);
    fclose(f);

    struct lv_conf conf;
    struct lv_conf_errors errors;
    int rc = lv_conf_load(path, &conf, &errors);
    if ((rc == 0) != (errors.n == 0)) {
        fprintf(stderr, "rc %d with %zu errors\n", rc, errors.n);
        abort();
    }
    for (size_t i = 0; i < errors.n; i++)
        check_message(errors.msgs[i]);
    if (rc == 0 &&
        (!conf.environment || !lv_conf_profile(&conf) || !conf.ninputs || !conf.noutputs)) {
        fprintf(stderr, "loaded without an environment profile, an input or an output\n");
        abort();
    }
    lv_conf_errors_free(&errors);
    lv_conf_free(&conf);
    return 0;
}
