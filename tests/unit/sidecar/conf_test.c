/*
 * The configuration loader: defaults, the shipped configs, ${VAR}
 * expansion, secrets from files, and the "file:line: message" reports for
 * every kind of mistake. Each fixture is written to a temporary file, loaded,
 * and removed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "logveil/conf.h"
#include "logveil/util.h"

#define MIB (1024 * 1024)

/* The path of the fixture last loaded, as it appears in messages. */
static char fixture[64];

/* Creates a file from the template `path` (ending XXXXXX then `suffix`). */
static void write_bytes(char *path, const char *suffix, const void *data, size_t len)
{
    int fd = mkstemps(path, (int)strlen(suffix));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void write_file(char *path, const char *suffix, const char *text)
{
    write_bytes(path, suffix, text, strlen(text));
}

static int load_yaml(const char *yaml, struct lv_conf *conf, struct lv_conf_errors *errors)
{
    snprintf(fixture, sizeof fixture, "/tmp/lv_conf_test_XXXXXX.yaml");
    write_file(fixture, ".yaml", yaml);
    int rc = lv_conf_load(fixture, conf, errors);
    unlink(fixture);
    return rc;
}

static void print_errors(const struct lv_conf_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        print_message("  %s\n", e->msgs[i]);
}

/* Asserts that one of the errors reads exactly "<fixture>:<line>: <msg>". */
static void assert_error(const struct lv_conf_errors *e, int line, const char *msg)
{
    char want[1024];
    snprintf(want, sizeof want, "%s:%d: %s", fixture, line, msg);
    for (size_t i = 0; i < e->n; i++)
        if (!strcmp(e->msgs[i], want))
            return;
    print_message("expected: %s\ngot %zu error(s):\n", want, e->n);
    print_errors(e);
    fail();
}

static void assert_loads(const char *yaml, struct lv_conf *conf)
{
    struct lv_conf_errors e;
    int rc = load_yaml(yaml, conf, &e);
    if (rc != 0)
        print_errors(&e);
    assert_int_equal(rc, 0);
    assert_int_equal(e.n, 0);
    lv_conf_errors_free(&e);
}

/* Loads a fixture that must fail with exactly one error, and checks it. */
static void assert_one_error(const char *yaml, int line, const char *msg)
{
    struct lv_conf conf;
    struct lv_conf_errors e;
    assert_int_equal(load_yaml(yaml, &conf, &e), -EINVAL);
    assert_error(&e, line, msg);
    if (e.n != 1)
        print_errors(&e);
    assert_int_equal(e.n, 1);
    lv_conf_errors_free(&e);
    lv_conf_free(&conf);
}

static const struct lv_key_rule *find_key_rule(const struct lv_conf *c, const char *key)
{
    for (size_t i = 0; i < c->redact.nkeys; i++)
        if (!strcmp(c->redact.keys[i].key, key))
            return &c->redact.keys[i];
    return NULL;
}

static const struct lv_sample_profile *find_profile(const struct lv_conf *c, const char *name)
{
    for (size_t i = 0; i < c->sample.nprofiles; i++)
        if (!strcmp(c->sample.profiles[i].name, name))
            return &c->sample.profiles[i];
    return NULL;
}

/* ---- defaults ---------------------------------------------------------- */

static void assert_sampled_profile(const struct lv_conf *c, const char *name, double rate,
                                   double stderr_unknown)
{
    const struct lv_sample_profile *p = find_profile(c, name);
    assert_non_null(p);
    assert_true(p->rate == rate);
    assert_true(p->unknown[LV_STREAM_STDOUT] < 0); /* stdout: the profile's rate */
    assert_true(p->unknown[LV_STREAM_STDERR] == stderr_unknown);
    assert_true(p->levels[LV_LEVEL_DEBUG] < 0 && p->levels[LV_LEVEL_INFO] < 0);
    assert_true(p->levels[LV_LEVEL_TRACE] < 0 && p->levels[LV_LEVEL_UNKNOWN] < 0);
    assert_true(p->levels[LV_LEVEL_WARN] == 1.0 && p->levels[LV_LEVEL_ERROR] == 1.0);
    assert_true(p->levels[LV_LEVEL_FATAL] == 1.0);
}

static void defaults_are_the_documented_built_in_configuration(void **state)
{
    struct lv_conf c;
    (void)state;
    lv_conf_defaults(&c, NULL);
    assert_string_equal(c.environment, "development");
    assert_int_equal(c.log_level, LV_LOG_INFO);
    assert_null(c.path);
    assert_int_equal(c.ninputs, 1);
    assert_int_equal(c.inputs[0].kind, LV_INPUT_STDIN);
    assert_int_equal(c.inputs[0].format, LV_FORMAT_JSON);
    assert_int_equal(c.noutputs, 1);
    assert_int_equal(c.outputs[0].kind, LV_OUTPUT_STDOUT);
    const char *keys[] = {"password", "passwd", "passphrase", "secret", "token",
                          "apikey", "privatekey", "credential", "authorization", "cookie",
                          "sessionid", "pwd", "pin", "otp"};
    assert_int_equal(c.redact.nkeys, sizeof keys / sizeof *keys);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        assert_string_equal(c.redact.keys[i].key, keys[i]);
        assert_int_equal(c.redact.keys[i].match, i < 11 ? LV_MATCH_CONTAINS : LV_MATCH_EXACT);
        assert_int_equal(c.redact.keys[i].action, LV_ACTION_MASK);
    }
    assert_string_equal(c.redact.replacement, "[REDACTED]");
    assert_true(c.redact.builtin_patterns);
    assert_false(c.redact.count_field);
    assert_null(c.redact.hmac_key);
    assert_int_equal(c.redact.npatterns, 0);
    lv_conf_free(&c);
}

static void default_sampling_enrichment_and_limits_are_the_documented_ones(void **state)
{
    struct lv_conf c;
    (void)state;
    lv_conf_defaults(&c, NULL);
    assert_string_equal(c.sample.key, "trace_id");
    /* The fields issue 13 names, in that order, then Serilog's markers,
     * OpenTelemetry's and MongoDB's. */
    static const char *const fields[] = {
        "level", "log.level",       "severity",       "levelname",     "loglevel",
        "lvl",   "@l",              "syslog.severity", "@mt",          "@m",
        "severity_number", "severityNumber", "severity_text", "severityText", "s"};
    assert_int_equal(c.sample.nlevel_fields, LV_ARRAY_LEN(fields));
    for (size_t i = 0; i < LV_ARRAY_LEN(fields); i++)
        assert_string_equal(c.sample.level_fields[i], fields[i]);
    assert_true(find_profile(&c, "development")->rate == 1.0);
    assert_sampled_profile(&c, "staging", 0.1, 0.5);
    assert_sampled_profile(&c, "canary", 0.1, 0.5);
    assert_sampled_profile(&c, "production", 0.01, 0.1);
    assert_int_equal(c.sample.nkeep, 1);
    assert_string_equal(c.sample.keep[0].field, "log.type");
    assert_string_equal(c.sample.keep[0].equals, "audit");
    assert_true(c.sample.rate_limit == 0 && c.sample.burst == 0);
    assert_int_equal(c.enrich.ntime_fields, 4);
    assert_string_equal(c.enrich.time_fields[0], "@timestamp");
    assert_string_equal(c.enrich.timestamp_field, "@timestamp");
    assert_string_equal(c.enrich.environment_field, "environment");
    assert_string_equal(c.enrich.stream_field, "stream");
    assert_true(c.enrich.kubernetes && c.enrich.ecs);
    assert_null(c.enrich.labels_file);
    assert_int_equal(c.limits.max_line, MIB);
    assert_int_equal(c.limits.max_depth, 64);
    assert_int_equal(c.buffer_max_bytes, 64 * MIB);
    assert_null(c.admin.listen);
    lv_conf_free(&c);
}

static void defaults_pick_the_profile_of_the_environment_given(void **state)
{
    struct lv_conf c;
    (void)state;
    lv_conf_defaults(&c, "production");
    assert_string_equal(lv_conf_profile(&c)->name, "production");
    assert_true(lv_conf_profile(&c)->rate == 0.01);
    lv_conf_free(&c);
    lv_conf_defaults(&c, "nowhere");
    assert_null(lv_conf_profile(&c));
    lv_conf_free(&c);
}

static void free_zeroes_the_struct_and_accepts_an_empty_one(void **state)
{
    struct lv_conf c, zero;
    (void)state;
    memset(&zero, 0, sizeof zero);
    lv_conf_defaults(&c, "staging");
    lv_conf_free(&c);
    assert_memory_equal(&c, &zero, sizeof c);
    lv_conf_free(&c);
    struct lv_conf_errors e = {0};
    lv_conf_errors_free(&e);
    lv_conf_errors_free(NULL);
}

/* ---- shipped configs ------------------------------------------------------ */

static void load_shipped(const char *name, struct lv_conf *c)
{
    char path[1024];
    struct lv_conf_errors e;
    snprintf(path, sizeof path, "%s/configs/%s.yaml", LV_SOURCE_DIR, name);
    unsetenv("LOGVEIL_OUTPUT_DIR");
    unsetenv("LOGVEIL_ADMIN_LISTEN");
    unsetenv("LOGVEIL_LABELS_FILE");
    int rc = lv_conf_load(path, c, &e);
    if (rc)
        print_errors(&e);
    assert_int_equal(rc, 0);
    assert_int_equal(e.n, 0);
    assert_string_equal(c->environment, name);
    assert_non_null(lv_conf_profile(c));
    lv_conf_errors_free(&e);
}

static void shipped_development_config_keeps_everything_and_counts_redactions(void **state)
{
    struct lv_conf c;
    (void)state;
    load_shipped("development", &c);
    assert_int_equal(c.log_level, LV_LOG_DEBUG);
    assert_true(lv_conf_profile(&c)->rate == 1.0);
    assert_true(c.redact.count_field);
    assert_int_equal(c.noutputs, 1);
    assert_int_equal(c.outputs[0].kind, LV_OUTPUT_STDOUT);
    assert_string_equal(c.admin.listen, "127.0.0.1:2020");
    lv_conf_free(&c);
}

static void shipped_staging_config_samples_a_tenth_and_writes_a_file(void **state)
{
    struct lv_conf c;
    (void)state;
    load_shipped("staging", &c);
    assert_int_equal(c.log_level, LV_LOG_INFO);
    assert_true(lv_conf_profile(&c)->rate == 0.1);
    assert_true(lv_conf_profile(&c)->levels[LV_LEVEL_ERROR] == 1.0);
    assert_int_equal(c.noutputs, 2);
    assert_int_equal(c.outputs[1].kind, LV_OUTPUT_FILE);
    assert_string_equal(c.outputs[1].path, "/var/log/logveil/app.log");
    assert_null(c.enrich.labels_file); /* ${LOGVEIL_LABELS_FILE:-} is empty */
    lv_conf_free(&c);
}

static void shipped_canary_config_samples_a_tenth_to_stdout(void **state)
{
    struct lv_conf c;
    (void)state;
    load_shipped("canary", &c);
    assert_int_equal(c.log_level, LV_LOG_INFO);
    assert_true(lv_conf_profile(&c)->rate == 0.1);
    assert_int_equal(c.noutputs, 1);
    assert_int_equal(c.outputs[0].kind, LV_OUTPUT_STDOUT);
    lv_conf_free(&c);
}

static void shipped_production_config_samples_a_hundredth_and_rotates(void **state)
{
    struct lv_conf c;
    (void)state;
    load_shipped("production", &c);
    assert_int_equal(c.log_level, LV_LOG_WARN);
    const struct lv_sample_profile *p = lv_conf_profile(&c);
    assert_true(p->rate == 0.01);
    assert_true(p->levels[LV_LEVEL_WARN] == 1.0 && p->levels[LV_LEVEL_FATAL] == 1.0);
    assert_false(c.redact.count_field);
    assert_int_equal(c.noutputs, 1);
    assert_int_equal(c.outputs[0].kind, LV_OUTPUT_FILE);
    assert_int_equal(c.outputs[0].max_bytes, 100 * MIB);
    assert_int_equal(c.outputs[0].max_files, 5);
    assert_true(c.sample.rate_limit > 0);
    lv_conf_free(&c);
}

/* The shipped files leave level_fields to the built-in table, and keep
 * stderr lines without a level at a higher rate than stdout ones wherever
 * records are sampled. */
static void shipped_configs_read_every_level_field_and_favour_stderr_without_a_level(void **state)
{
    static const char *const envs[] = {"staging", "canary", "production"};
    struct lv_conf defaults;
    (void)state;
    lv_conf_defaults(&defaults, NULL);
    for (size_t i = 0; i < LV_ARRAY_LEN(envs); i++) {
        struct lv_conf c;
        load_shipped(envs[i], &c);
        assert_int_equal(c.sample.nlevel_fields, defaults.sample.nlevel_fields);
        const struct lv_sample_profile *p = lv_conf_profile(&c);
        assert_true(p->unknown[LV_STREAM_STDOUT] == p->rate);
        assert_true(p->unknown[LV_STREAM_STDERR] > p->rate);
        lv_conf_free(&c);
    }
    lv_conf_free(&defaults);
}

/* A level_fields list replaces the built-in table. */
static void level_fields_given_in_the_file_replace_the_table(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("sampling: {level_fields: [lvl, event.severity]}\n", &c);
    assert_int_equal(c.sample.nlevel_fields, 2);
    assert_string_equal(c.sample.level_fields[0], "lvl");
    assert_string_equal(c.sample.level_fields[1], "event.severity");
    lv_conf_free(&c);
}

static void shipped_configs_redact_the_same_keys(void **state)
{
    static const char *const envs[] = {"development", "staging", "canary", "production"};
    struct lv_conf first, c;
    (void)state;
    load_shipped(envs[0], &first);
    for (size_t i = 1; i < 4; i++) {
        load_shipped(envs[i], &c);
        assert_int_equal(c.redact.nkeys, first.redact.nkeys);
        for (size_t k = 0; k < c.redact.nkeys; k++)
            assert_string_equal(c.redact.keys[k].key, first.redact.keys[k].key);
        lv_conf_free(&c);
    }
    assert_non_null(find_key_rule(&first, "apikey"));
    lv_conf_free(&first);
}

/* ---- ${VAR} ------------------------------------------------------------------ */

static void environment_variables_are_substituted_in_values(void **state)
{
    struct lv_conf c;
    (void)state;
    setenv("LV_TEST_DIR", "/data", 1);
    setenv("LV_TEST_RATE", "0.25", 1);
    assert_loads("environment: staging\n"
                 "sampling: {profiles: {staging: {default: \"${LV_TEST_RATE}\"}}}\n"
                 "outputs: [{type: file, path: \"${LV_TEST_DIR}/out-${LV_TEST_DIR:-x}.log\"}]\n",
                 &c);
    assert_string_equal(c.outputs[0].path, "/data/out-/data.log");
    assert_true(lv_conf_profile(&c)->rate == 0.25);
    lv_conf_free(&c);
}

static void default_is_used_when_the_variable_is_unset_or_empty(void **state)
{
    struct lv_conf c;
    (void)state;
    unsetenv("LV_TEST_UNSET");
    setenv("LV_TEST_EMPTY", "", 1);
    assert_loads("admin: {listen: \"${LV_TEST_UNSET:-127.0.0.1:9}\"}\n"
                 "enrich:\n"
                 "  stream_field: ${LV_TEST_EMPTY:-src}\n"
                 "  labels_file: ${LV_TEST_UNSET:-}\n"
                 "limits: {max_line: \"${LV_TEST_UNSET:-64KiB}\"}\n",
                 &c);
    assert_string_equal(c.admin.listen, "127.0.0.1:9");
    assert_string_equal(c.enrich.stream_field, "src");
    assert_null(c.enrich.labels_file);
    assert_int_equal(c.limits.max_line, 64 * 1024);
    lv_conf_free(&c);
}

static void double_dollar_is_a_literal_dollar(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("redact: {replacement: \"$$${LV_TEST_UNSET:-x}$$\", keys: [\"pa$$s\"]}\n", &c);
    assert_string_equal(c.redact.replacement, "$x$");
    assert_string_equal(c.redact.keys[0].key, "pa$s");
    lv_conf_free(&c);
}

static void unset_variable_without_default_is_reported_with_its_line(void **state)
{
    (void)state;
    unsetenv("LV_TEST_UNSET");
    assert_one_error("environment: development\n"
                     "admin:\n"
                     "  listen: ${LV_TEST_UNSET}\n",
                     3,
                     "environment variable LV_TEST_UNSET is not set, expected it to be set or a "
                     "default given as ${LV_TEST_UNSET:-default}");
}

static void malformed_variable_reference_is_reported(void **state)
{
    (void)state;
    assert_one_error("admin: {listen: \"${1BAD}\"}\n", 1,
                     "bad variable reference \"${1BAD}\", expected ${NAME} or ${NAME:-default}; "
                     "write $$ for a literal $");
}

static void keys_are_not_substituted(void **state)
{
    struct lv_conf c;
    struct lv_conf_errors e;
    (void)state;
    setenv("LV_TEST_KEY", "admin", 1);
    assert_int_equal(load_yaml("${LV_TEST_KEY}: {}\n", &c, &e), -EINVAL);
    assert_int_equal(e.n, 1);
    assert_non_null(strstr(e.msgs[0], ":1: unknown key \"${LV_TEST_KEY}\""));
    lv_conf_errors_free(&e);
    lv_conf_free(&c);
}

/* ---- secrets ------------------------------------------------------------------ */

/* One line ending is not part of a key: LF or CRLF. A raw key whose last byte
 * happens to be CR (1 in 256 of `head -c 32 /dev/urandom`) keeps it. */
static void key_file_drops_one_line_ending_only(void **state)
{
    static const struct {
        const char *bytes;
        size_t len, key_len;
    } cases[] = {
        {"0123456789abcdef0123456789abcde\r", 32, 32},     /* raw, ends in CR */
        {"0123456789abcdef0123456789abcde\r\n", 33, 31},  /* CRLF: too short */
        {"0123456789abcdef0123456789abcdef\r\n", 34, 32}, /* CRLF */
        {"0123456789abcdef0123456789abcdef\n\n", 34, 33}, /* only one LF */
        {"0123456789abcdef0123456789abcdef\r\r\n", 35, 33},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[64] = "/tmp/lv_conf_key_XXXXXX";
        char yaml[256];
        struct lv_conf c;
        struct lv_conf_errors e;
        write_bytes(key, "", cases[i].bytes, cases[i].len);
        snprintf(yaml, sizeof yaml, "redact:\n  hmac_keys: [{id: k, file: %s}]\n", key);
        int rc = load_yaml(yaml, &c, &e);
        unlink(key);
        if (cases[i].key_len < 32) {
            assert_int_equal(rc, -EINVAL);
            assert_int_equal(e.n, 1);
            assert_non_null(strstr(e.msgs[0], "holds 31 bytes"));
            lv_conf_errors_free(&e);
            lv_conf_free(&c);
            continue;
        }
        if (rc != 0)
            print_errors(&e);
        assert_int_equal(rc, 0);
        lv_conf_errors_free(&e);
        assert_int_equal(c.redact.hmac_keys[0].key_len, cases[i].key_len);
        assert_memory_equal(c.redact.hmac_keys[0].key, cases[i].bytes, cases[i].key_len);
        lv_conf_free(&c);
    }
}

static void hmac_key_file_is_read_without_its_trailing_newline(void **state)
{
    static const char bytes[] = "s3\0cret-0123456789abcdef-0123456789\n";
    char key[64] = "/tmp/lv_conf_key_XXXXXX";
    char yaml[256], id[9];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    struct lv_conf c;
    (void)state;
    write_bytes(key, "", bytes, sizeof bytes - 1);
    setenv("LV_TEST_KEY_FILE", key, 1);
    snprintf(yaml, sizeof yaml,
             "redact:\n"
             "  hmac_key_file: ${LV_TEST_KEY_FILE}\n"
             "  keys: [{key: user_id, action: hash}]\n");
    assert_loads(yaml, &c);
    unlink(key);
    assert_int_equal(c.redact.nhmac_keys, 1);
    assert_int_equal(c.redact.hmac_keys[0].key_len, sizeof bytes - 2); /* a NUL is part of it */
    assert_memory_equal(c.redact.hmac_keys[0].key, bytes, sizeof bytes - 2);
    /* The derived id: 8 hex digits of HMAC-SHA256(key, "logveil-key-id"). */
    HMAC(EVP_sha256(), bytes, (int)sizeof bytes - 2, (const unsigned char *)"logveil-key-id", 14,
         md, &mdlen);
    snprintf(id, sizeof id, "%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
    assert_string_equal(c.redact.hmac_keys[0].id, id);
    assert_int_equal(c.redact.hmac_length, 16);
    assert_int_equal(c.redact.keys[0].action, LV_ACTION_HASH);
    lv_conf_free(&c);
}

static void hmac_keys_keep_their_order_and_ids(void **state)
{
    char k1[64] = "/tmp/lv_conf_key_XXXXXX", k2[64] = "/tmp/lv_conf_key_XXXXXX";
    char yaml[512];
    struct lv_conf c;
    (void)state;
    write_file(k1, "", "0123456789abcdef0123456789abcdef-new\n");
    write_file(k2, "", "0123456789abcdef0123456789abcdef-old\n");
    snprintf(yaml, sizeof yaml,
             "redact:\n"
             "  action: hash\n"
             "  hmac_length: 24\n"
             "  hmac_keys:\n"
             "    - {id: k2026, file: %s}\n"
             "    - {id: k2025, file: %s}\n",
             k1, k2);
    assert_loads(yaml, &c);
    unlink(k1);
    unlink(k2);
    assert_int_equal(c.redact.nhmac_keys, 2);
    assert_string_equal(c.redact.hmac_keys[0].id, "k2026");
    assert_string_equal(c.redact.hmac_keys[1].id, "k2025");
    assert_memory_equal(c.redact.hmac_keys[1].key, "0123456789abcdef0123456789abcdef-old", 36);
    assert_int_equal(c.redact.hmac_length, 24);
    lv_conf_free(&c);
}

static void key_file_shorter_than_32_bytes_is_an_error_at_its_line(void **state)
{
    char key[64] = "/tmp/lv_conf_key_XXXXXX";
    char yaml[256], msg[256];
    (void)state;
    write_file(key, "", "0123456789abcdef0123456789abcde\n"); /* 31 bytes */
    snprintf(yaml, sizeof yaml, "redact:\n  action: hash\n  hmac_keys:\n    - id: k1\n      file: %s\n",
             key);
    snprintf(msg, sizeof msg,
             "redact.hmac_keys[0].file: %s holds 31 bytes, expected a key of at least 32 bytes "
             "(for example: head -c 32 /dev/urandom | base64 > %s)",
             key, key);
    assert_one_error(yaml, 5, msg);
    snprintf(yaml, sizeof yaml, "redact:\n  action: hash\n  hmac_key_file: %s\n", key);
    assert_one_error(yaml, 3,
                     "redact.hmac_key_file: the key holds 31 bytes, expected a key of at least "
                     "32 bytes (for example: head -c 32 /dev/urandom | base64 > FILE)");
    snprintf(yaml, sizeof yaml, "audit:\n  key_file: %s\n", key);
    snprintf(msg, sizeof msg,
             "audit.key_file: %s holds 31 bytes, expected a key of at least 32 bytes "
             "(for example: head -c 32 /dev/urandom | base64 > %s)",
             key, key);
    assert_one_error(yaml, 2, msg);
    unlink(key);
}

static void bad_or_duplicate_key_ids_are_errors(void **state)
{
    char key[64] = "/tmp/lv_conf_key_XXXXXX";
    char yaml[512];
    (void)state;
    write_file(key, "", "0123456789abcdef0123456789abcdef\n");
    snprintf(yaml, sizeof yaml, "redact:\n  hmac_keys:\n    - {id: \"a:b\", file: %s}\n", key);
    assert_one_error(yaml, 3,
                     "redact.hmac_keys[0].id: key id \"a:b\" is not 1 to 32 of A-Z a-z 0-9 _ . -");
    snprintf(yaml, sizeof yaml,
             "redact:\n  hmac_keys:\n    - {id: k1, file: %s}\n    - {id: k1, file: %s}\n", key,
             key);
    assert_one_error(yaml, 4,
                     "redact.hmac_keys[1]: the id \"k1\" is already used by hmac_keys[0], give "
                     "each key its own id");
    snprintf(yaml, sizeof yaml, "redact:\n  hmac_key_file: %s\n  hmac_keys: [{file: %s}]\n", key,
             key);
    assert_one_error(yaml, 2, "redact: give hmac_keys or hmac_key_file, not both");
    assert_one_error("redact:\n  hmac_length: 15\n", 2,
                     "redact.hmac_length: expected an even number of hex digits, got 15");
    unlink(key);
}

static void inline_hmac_key_is_refused(void **state)
{
    (void)state;
    assert_one_error("redact: {hmac_key: k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y, action: hash}\n", 1,
                     "redact.hmac_key: keys are read from files only, expected hmac_key_file or "
                     "hmac_keys");
}

/* Every NAME_file key is listed, so that no tail input ever reads it. */
static void every_file_key_is_listed_as_a_secret_file(void **state)
{
    char key[64] = "/tmp/lv_conf_key_XXXXXX";
    char yaml[512];
    struct lv_conf c;
    (void)state;
    write_bytes(key, "", "k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y-\n", 33); /* 32 bytes and a newline */
    snprintf(yaml, sizeof yaml,
             "redact:\n"
             "  hmac_key_file: %s\n"
             "enrich:\n"
             "  labels_file: /etc/podinfo/labels\n",
             key);
    assert_loads(yaml, &c);
    unlink(key);
    assert_int_equal(c.nsecret_files, 2);
    bool has_key = false, has_labels = false;
    for (size_t i = 0; i < c.nsecret_files; i++) {
        has_key |= !strcmp(c.secret_files[i], key);
        has_labels |= !strcmp(c.secret_files[i], "/etc/podinfo/labels");
    }
    assert_true(has_key && has_labels);
    lv_conf_free(&c);
}

/* A secret file others can read: loads (with a warning on stderr), or with
 * strict_secret_files fails at the key's line. */
static void readable_secret_file_is_an_error_only_when_strict(void **state)
{
    char key[64] = "/tmp/lv_conf_key_XXXXXX";
    char yaml[512], msg[512];
    struct lv_conf c;
    (void)state;
    write_bytes(key, "", "k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y-\n", 33); /* 32 bytes and a newline */
    assert_int_equal(chmod(key, 0640), 0);
    snprintf(yaml, sizeof yaml, "redact:\n  hmac_key_file: %s\n", key);
    assert_loads(yaml, &c);
    assert_int_equal(c.redact.hmac_key_len, 32);
    lv_conf_free(&c);
    snprintf(yaml, sizeof yaml, "strict_secret_files: true\nredact:\n  hmac_key_file: %s\n", key);
    snprintf(msg, sizeof msg,
             "secret file %s is readable by its group (mode 0640), expected a file only its "
             "owner can read (chmod 600; defaultMode: 0400 in a Kubernetes secret volume)",
             key);
    assert_one_error(yaml, 3, msg);
    assert_int_equal(chmod(key, 0604), 0);
    snprintf(msg, sizeof msg,
             "secret file %s is readable by every user (mode 0604), expected a file only its "
             "owner can read (chmod 600; defaultMode: 0400 in a Kubernetes secret volume)",
             key);
    assert_one_error(yaml, 3, msg);
    assert_int_equal(chmod(key, 0600), 0);
    assert_loads(yaml, &c);
    lv_conf_free(&c);
    unlink(key);
}

static void allowed_roots_must_be_absolute_and_for_tail_inputs(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("inputs:\n"
                 "  - type: tail\n"
                 "    paths: [/shared/*.log]\n"
                 "    allowed_roots: [/shared, /var/log/pods]\n",
                 &c);
    assert_int_equal(c.inputs[0].nallowed_roots, 2);
    assert_string_equal(c.inputs[0].allowed_roots[1], "/var/log/pods");
    lv_conf_free(&c);
    assert_one_error("inputs:\n"
                     "  - type: tail\n"
                     "    paths: [/shared/*.log]\n"
                     "    allowed_roots: [/shared, logs]\n",
                     4,
                     "inputs[0].allowed_roots: \"logs\" is not an absolute path, expected "
                     "directories such as /var/log/pods");
    assert_one_error("inputs:\n"
                     "  - type: stdin\n"
                     "    allowed_roots: [/shared]\n",
                     2, "inputs[0]: paths, exclude and allowed_roots apply only to tail inputs");
}

static void unreadable_hmac_key_file_is_reported_with_the_errno_text(void **state)
{
    (void)state;
    assert_one_error("redact:\n"
                     "  hmac_key_file: /nonexistent/lv/hmac.key\n",
                     2,
                     "redact.hmac_key_file: cannot read \"/nonexistent/lv/hmac.key\": "
                     "No such file or directory");
}

static void hash_action_without_a_key_is_an_error(void **state)
{
    (void)state;
    assert_one_error("redact:\n"
                     "  keys:\n"
                     "    - password\n"
                     "    - {key: email, action: hash}\n",
                     2, "redact: action hash needs hmac_keys or hmac_key_file");
    assert_one_error("redact:\n"
                     "  match: exact\n"
                     "  action: hash\n",
                     3, "redact: action hash needs hmac_keys or hmac_key_file");
}

static void audit_key_id_is_derived_unless_given(void **state)
{
    char key[64] = "/tmp/lv_conf_key_XXXXXX";
    char yaml[256];
    struct lv_conf c;
    (void)state;
    write_file(key, "", "0123456789abcdef0123456789abcdef\n");
    snprintf(yaml, sizeof yaml, "audit:\n  key_file: %s\n", key);
    assert_loads(yaml, &c);
    assert_int_equal(c.audit.key_len, 32);
    assert_int_equal(strlen(c.audit.key_id), 8);
    assert_null(c.audit.stream);
    lv_conf_free(&c);
    snprintf(yaml, sizeof yaml, "audit: {key_file: %s, key_id: a2026, stream: pod-1/app}\n", key);
    assert_loads(yaml, &c);
    assert_string_equal(c.audit.key_id, "a2026");
    assert_string_equal(c.audit.stream, "pod-1/app");
    lv_conf_free(&c);
    unlink(key);
    assert_one_error("audit: {key_id: a1}\n", 1, "audit: missing required key \"key_file\"");
}

/* ---- reports ------------------------------------------------------------------- */

static void buffer_smaller_than_a_line_is_an_error(void **state)
{
    (void)state;
    assert_one_error("limits: {max_line: 1MiB}\nbuffer: {max_bytes: 512KiB}\n", 2,
                     "buffer.max_bytes: 524288 bytes is less than limits.max_line (1048576 "
                     "bytes), expected a buffer at least one line long");
}

static void unknown_key_is_reported_with_its_line_and_the_expected_keys(void **state)
{
    (void)state;
    assert_one_error("environment: production\n"
                     "sampling:\n"
                     "  key: trace_id\n"
                     "  sampl: 0.5\n",
                     4,
                     "unknown key \"sampl\" in sampling, expected one of: key, level_fields, "
                     "profiles, always_keep, rate_limit, burst");
    assert_one_error("log_level: info\nsampl: {}\n", 2,
                     "unknown key \"sampl\", expected one of: environment, log_level, inputs, "
                     "redact, sampling, enrich, limits, buffer, admin, audit, state_dir, "
                     "shutdown_timeout, strict_secret_files, outputs");
}

static void unknown_key_in_redact_lists_the_file_variant_of_secrets(void **state)
{
    (void)state;
    assert_one_error("redact: {hmac: x}\n", 1,
                     "unknown key \"hmac\" in redact, expected one of: match, action, "
                     "replacement, hmac_key, hmac_key_file, hmac_keys, hmac_length, "
                     "builtin_patterns, count_field, summary_field, keys, patterns");
}

static void wrong_type_is_reported_with_what_was_expected(void **state)
{
    (void)state;
    assert_one_error("redact:\n"
                     "  keys:\n"
                     "    - password\n"
                     "    - {key: token}\n"
                     "    - [nested]\n",
                     5,
                     "redact.keys[2]: expected a string or a map with key/match/action/"
                     "replacement, got a sequence");
    assert_one_error("limits: {max_depth: deep}\n", 1,
                     "limits.max_depth: expected an integer from 1 to 4096, got \"deep\"");
    assert_one_error("enrich: {ecs: maybe}\n", 1,
                     "enrich.ecs: expected true or false, got \"maybe\"");
    assert_one_error("sampling: [a]\n", 1, "sampling: expected a map, got a sequence");
    assert_one_error("- a\n", 1, "the top level: expected a map, got a sequence");
}

static void bad_regex_is_reported_with_its_offset(void **state)
{
    (void)state;
    assert_one_error("redact:\n"
                     "  patterns:\n"
                     "    - {name: ok, pattern: 'a+'}\n"
                     "    - name: broken\n"
                     "      pattern: '[z-a]'\n",
                     5,
                     "redact.patterns[1].pattern: bad regular expression at offset 3: range out "
                     "of order in character class");
    assert_one_error("redact: {patterns: [{name: p, pattern: 'ab(cd'}]}\n", 1,
                     "redact.patterns[0].pattern: bad regular expression at offset 5: missing "
                     "closing parenthesis");
}

static void capture_group_beyond_the_pattern_is_reported(void **state)
{
    (void)state;
    assert_one_error("redact:\n"
                     "  patterns:\n"
                     "    - name: g\n"
                     "      pattern: 'id=(\\d+)'\n"
                     "      group: 2\n",
                     5,
                     "redact.patterns[0].group: the pattern has 1 capture group, so group 2 "
                     "does not exist");
}

static void user_patterns_are_loaded_with_their_settings(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("redact:\n"
                 "  action: drop\n"
                 "  patterns:\n"
                 "    - {name: card, pattern: '\\b4[0-9]{12}(?:[0-9]{3})?\\b', hints: [\"4\"],\n"
                 "       group: 0, action: mask, replacement: \"[CARD]\"}\n"
                 "    - {name: ssn, pattern: '(\\d{3})-\\d{2}-\\d{4}', group: 1}\n",
                 &c);
    assert_int_equal(c.redact.npatterns, 2);
    const struct lv_value_rule *card = &c.redact.patterns[0], *ssn = &c.redact.patterns[1];
    assert_string_equal(card->name, "card");
    assert_string_equal(card->pattern, "\\b4[0-9]{12}(?:[0-9]{3})?\\b");
    assert_int_equal(card->nhints, 1);
    assert_string_equal(card->hints[0], "4");
    assert_int_equal(card->action, LV_ACTION_MASK);
    assert_string_equal(card->replacement, "[CARD]");
    assert_int_equal(card->line, 4);
    assert_int_equal(ssn->group, 1);
    assert_int_equal(ssn->action, LV_ACTION_DROP); /* the section's */
    assert_null(ssn->replacement);
    assert_true(c.redact.builtin_patterns);
    lv_conf_free(&c);
}

static void sizes_accept_plain_numbers_and_units(void **state)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } cases[] = {
        {"1048576", 1048576},  {"512KiB", 512 * 1024}, {"64MiB", 64ull * MIB}, {"2GiB", 2ull << 30},
        {"1KB", 1000},         {"3MB", 3000000},       {"1GB", 1000000000},    {"10B", 10},
        {"3 MiB", 3ull * MIB}, {"1mib", MIB},
    };
    char yaml[128];
    struct lv_conf c;
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(yaml, sizeof yaml, "buffer: {max_bytes: %s}\nlimits: {max_line: \"%s\"}\n",
                 cases[i].text, cases[i].text);
        assert_loads(yaml, &c);
        assert_int_equal(c.buffer_max_bytes, cases[i].bytes);
        assert_int_equal(c.limits.max_line, cases[i].bytes);
        lv_conf_free(&c);
    }
}

static void bad_sizes_are_reported(void **state)
{
    (void)state;
    assert_one_error("buffer: {max_bytes: 12XB}\n", 1,
                     "buffer.max_bytes: expected a size such as 1048576, 512KiB, 64MiB or 1GB, "
                     "got \"12XB\"");
    assert_one_error("buffer: {max_bytes: -1}\n", 1,
                     "buffer.max_bytes: expected a size such as 1048576, 512KiB, 64MiB or 1GB, "
                     "got \"-1\"");
    assert_one_error("buffer: {max_bytes: 99999999999GiB}\n", 1,
                     "buffer.max_bytes: expected a size such as 1048576, 512KiB, 64MiB or 1GB, "
                     "got \"99999999999GiB\"");
    assert_one_error("limits: {max_line: 0}\n", 1,
                     "limits.max_line: expected a size in bytes of at least 1, got \"0\"");
}

static void all_errors_are_collected_in_line_order(void **state)
{
    struct lv_conf c;
    struct lv_conf_errors e;
    (void)state;
    unsetenv("LV_TEST_UNSET");
    const char *yaml = "environment: production\n"                  /* 1 */
                       "log_level: loud\n"                          /* 2 */
                       "redact:\n"                                  /* 3 */
                       "  keys: [password, [x]]\n"                  /* 4 */
                       "  patterns: [{name: p, pattern: '(('}]\n"   /* 5 */
                       "sampling:\n"                                /* 6 */
                       "  profiles:\n"                              /* 7 */
                       "    production: {default: 2}\n"             /* 8 */
                       "  bogus: 1\n"                               /* 9 */
                       "limits: {max_line: \"${LV_TEST_UNSET}\"}\n" /* 10 */
                       "outputs:\n"                                 /* 11 */
                       "  - {type: file}\n"                         /* 12 */
                       "  - {type: carrier-pigeon}\n";              /* 13 */
    assert_int_equal(load_yaml(yaml, &c, &e), -EINVAL);
    static const int lines[] = {2, 4, 5, 8, 9, 10, 12, 13};
    if (e.n != 8)
        print_errors(&e);
    assert_int_equal(e.n, 8);
    for (size_t i = 0; i < e.n; i++) {
        char head[96];
        snprintf(head, sizeof head, "%s:%d: ", fixture, lines[i]);
        assert_true(!strncmp(e.msgs[i], head, strlen(head)));
    }
    assert_error(&e, 2,
                 "log_level: unknown value \"loud\", expected one of: debug, info, warn, "
                 "error");
    assert_error(&e, 8,
                 "sampling.profiles.production.default: expected a number from 0 to 1, "
                 "got \"2\"");
    assert_error(&e, 12, "outputs[0]: a file output needs path");
    assert_error(&e, 13,
                 "outputs[1].type: unknown value \"carrier-pigeon\", expected one of: "
                 "stdout, file, elasticsearch, loki, kafka");
    lv_conf_errors_free(&e);
    lv_conf_free(&c);
}

static void yaml_syntax_error_is_reported_with_its_line(void **state)
{
    (void)state;
    assert_one_error("environment: staging\n"
                     "redact:\n"
                     "  keys: [password\n"
                     "  match: exact\n",
                     4,
                     "YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
                     "sequence at line 3)");
}

static void unquoted_variable_in_flow_style_gets_a_hint(void **state)
{
    (void)state;
    assert_one_error("admin: {listen: ${LV_TEST_UNSET:-127.0.0.1:2020}}\n", 1,
                     "YAML syntax error: did not find expected ',' or '}' (while parsing a flow "
                     "mapping at line 1); inside { } or [ ], quote a value that holds ${...}");
}

static void missing_file_is_reported_with_the_errno_text(void **state)
{
    struct lv_conf c;
    struct lv_conf_errors e;
    (void)state;
    assert_int_equal(lv_conf_load("/nonexistent/lv.yaml", &c, &e), -ENOENT);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.msgs[0],
                        "/nonexistent/lv.yaml: cannot read the file: No such file or directory");
    assert_string_equal(c.environment, "development"); /* still safe to use and free */
    lv_conf_errors_free(&e);
    lv_conf_free(&c);
}

static void duplicate_key_is_an_error(void **state)
{
    (void)state;
    assert_one_error("log_level: info\n"
                     "admin: {}\n"
                     "log_level: debug\n",
                     3, "duplicate key \"log_level\", first given at line 1");
}

static void empty_file_gives_the_defaults(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("# nothing but a comment\n", &c);
    assert_string_equal(c.environment, "development");
    assert_int_equal(c.redact.nkeys, 14);
    assert_non_null(c.path);
    lv_conf_free(&c);
}

/* ---- sampling -------------------------------------------------------------------- */

static void file_profiles_override_builtins_by_name_and_add_new_ones(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("environment: qa\n"
                 "sampling:\n"
                 "  profiles:\n"
                 "    production: {default: 0.05, levels: {warning: 0.5}}\n"
                 "    qa:\n"
                 "      default: 0.2\n"
                 "      levels: {err: 0.9, TRACE: 0}\n",
                 &c);
    const struct lv_sample_profile *prod = find_profile(&c, "production");
    assert_true(prod->rate == 0.05);
    assert_true(prod->levels[LV_LEVEL_WARN] == 0.5);
    assert_true(prod->levels[LV_LEVEL_ERROR] == 1.0); /* kept from the built-in */
    assert_true(find_profile(&c, "staging")->rate == 0.1);
    const struct lv_sample_profile *qa = lv_conf_profile(&c);
    assert_string_equal(qa->name, "qa");
    assert_true(qa->rate == 0.2);
    assert_true(qa->levels[LV_LEVEL_ERROR] == 0.9);
    assert_true(qa->levels[LV_LEVEL_TRACE] == 0);
    assert_true(qa->levels[LV_LEVEL_FATAL] == 1.0);
    assert_true(qa->levels[LV_LEVEL_DEBUG] < 0);
    lv_conf_free(&c);
}

static void unknown_level_name_and_rate_out_of_range_are_errors(void **state)
{
    (void)state;
    assert_one_error("sampling:\n"
                     "  profiles:\n"
                     "    staging:\n"
                     "      levels: {LOUD: 1.0}\n",
                     4,
                     "sampling.profiles.staging.levels: unknown level \"LOUD\", expected one "
                     "of: TRACE, DEBUG, INFO, WARN, ERROR, FATAL");
    assert_one_error("sampling: {profiles: {staging: {levels: {WARN: 1.5}}}}\n", 1,
                     "sampling.profiles.staging.levels.WARN: expected a number from 0 to 1, got "
                     "\"1.5\"");
    assert_one_error("sampling: {profiles: {staging: {default: -0.1}}}\n", 1,
                     "sampling.profiles.staging.default: expected a number from 0 to 1, got "
                     "\"-0.1\"");
    assert_one_error("sampling: {profiles: {staging: {unknown: 2}}}\n", 1,
                     "sampling.profiles.staging.unknown: expected a number from 0 to 1, got "
                     "\"2\"");
    assert_one_error("sampling:\n  profiles:\n    staging:\n      unknown: {stdout: 0.1, "
                     "stdin: 0.2}\n",
                     4,
                     "unknown key \"stdin\" in sampling.profiles.staging.unknown, expected one "
                     "of: stdout, stderr");
}

/* `unknown` is one rate for both streams, or a map by stream; a stream left
 * out keeps its default. */
static void unknown_rate_is_one_number_or_one_per_stream(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("environment: production\n"
                 "sampling:\n"
                 "  profiles:\n"
                 "    production: {unknown: {stdout: 0.02}}\n"
                 "    qa: {default: 0.3, unknown: 0.25}\n",
                 &c);
    const struct lv_sample_profile *prod = find_profile(&c, "production");
    assert_true(prod->unknown[LV_STREAM_STDOUT] == 0.02);
    assert_true(prod->unknown[LV_STREAM_STDERR] == 0.1); /* kept from the built-in */
    const struct lv_sample_profile *qa = find_profile(&c, "qa");
    assert_true(qa->unknown[LV_STREAM_STDOUT] == 0.25);
    assert_true(qa->unknown[LV_STREAM_STDERR] == 0.25);
    lv_conf_free(&c);
}

static void environment_without_a_profile_is_an_error(void **state)
{
    (void)state;
    assert_one_error("log_level: info\nenvironment: prodcution\n", 2,
                     "environment: no sampling profile named \"prodcution\", expected one of: "
                     "development, staging, canary, production, or a profile of that name under "
                     "sampling.profiles");
}

static void always_keep_given_in_the_file_replaces_the_default(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("sampling:\n"
                 "  always_keep:\n"
                 "    - {field: event.kind, equals: alert}\n"
                 "    - {field: log.type, equals: audit}\n"
                 "  rate_limit: 100\n"
                 "  burst: 250.5\n",
                 &c);
    assert_int_equal(c.sample.nkeep, 2);
    assert_string_equal(c.sample.keep[0].field, "event.kind");
    assert_true(c.sample.rate_limit == 100 && c.sample.burst == 250.5);
    lv_conf_free(&c);
}

/* ---- key rules --------------------------------------------------------------------- */

static void plain_and_map_key_rules_are_normalised(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("redact:\n"
                 "  keys:\n"
                 "    - API_Key\n"
                 "    - {key: X-Auth.Token, match: exact, action: drop, replacement: \"-\"}\n",
                 &c);
    assert_int_equal(c.redact.nkeys, 2);
    const struct lv_key_rule *api = &c.redact.keys[0], *auth = &c.redact.keys[1];
    assert_string_equal(api->key, "apikey");
    assert_int_equal(api->match, LV_MATCH_CONTAINS);
    assert_int_equal(api->action, LV_ACTION_MASK);
    assert_null(api->replacement);
    assert_string_equal(auth->key, "xauthtoken");
    assert_int_equal(auth->match, LV_MATCH_EXACT);
    assert_int_equal(auth->action, LV_ACTION_DROP);
    assert_string_equal(auth->replacement, "-");
    lv_conf_free(&c);
}

static void section_match_and_action_apply_to_rules_written_before_them(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("redact:\n"
                 "  keys: [password, {key: pin}, {key: ssn, match: contains}]\n"
                 "  match: exact\n"
                 "  action: drop\n",
                 &c);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(c.redact.keys[i].match, LV_MATCH_EXACT);
        assert_int_equal(c.redact.keys[i].action, LV_ACTION_DROP);
    }
    assert_int_equal(c.redact.keys[2].match, LV_MATCH_CONTAINS);
    lv_conf_free(&c);
}

static void section_action_applies_to_the_default_rules_when_keys_are_not_given(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("redact: {action: drop}\n", &c);
    assert_int_equal(c.redact.nkeys, 14);
    assert_int_equal(find_key_rule(&c, "password")->action, LV_ACTION_DROP);
    assert_int_equal(find_key_rule(&c, "pin")->match, LV_MATCH_EXACT);
    lv_conf_free(&c);
}

static void section_match_applies_to_the_default_rules_only_when_given(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("redact: {match: contains}\n", &c);
    assert_int_equal(find_key_rule(&c, "pin")->match, LV_MATCH_CONTAINS);
    lv_conf_free(&c);
}

static void keys_given_in_the_file_replace_the_default_list(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("redact: {keys: [pin]}\n", &c);
    assert_int_equal(c.redact.nkeys, 1);
    assert_null(find_key_rule(&c, "password"));
    lv_conf_free(&c);
    assert_loads("redact: {keys: []}\n", &c);
    assert_int_equal(c.redact.nkeys, 0);
    lv_conf_free(&c);
}

static void key_that_normalises_to_nothing_is_an_error(void **state)
{
    (void)state;
    assert_one_error("redact: {keys: [\"_-.\"]}\n", 1,
                     "redact.keys[0]: the key is empty once normalised (lower case, without _ - "
                     ".)");
}

/* ---- inputs and outputs --------------------------------------------------------------- */

static void inputs_and_outputs_are_loaded(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("inputs:\n"
                 "  - {type: tail, format: cri, paths: [/var/log/*.log], exclude: /var/log/x.log}\n"
                 "outputs:\n"
                 "  - {type: stdout}\n"
                 "  - type: file\n"
                 "    name: archive\n"
                 "    path: /tmp/out.log\n"
                 "    max_bytes: 100MiB\n"
                 "    max_files: 3\n"
                 "    fsync: yes\n",
                 &c);
    assert_int_equal(c.inputs[0].kind, LV_INPUT_TAIL);
    assert_int_equal(c.inputs[0].format, LV_FORMAT_CRI);
    assert_int_equal(c.inputs[0].npaths, 1);
    assert_string_equal(c.inputs[0].exclude[0], "/var/log/x.log");
    assert_int_equal(c.inputs[0].line, 2);
    assert_string_equal(c.outputs[0].name, "stdout");
    assert_string_equal(c.outputs[1].name, "archive");
    assert_int_equal(c.outputs[1].max_bytes, 100 * MIB);
    assert_int_equal(c.outputs[1].max_files, 3);
    assert_true(c.outputs[1].fsync);
    assert_int_equal(c.outputs[1].line, 5);
    lv_conf_free(&c);
}

static void missing_or_empty_inputs_and_outputs_are_errors(void **state)
{
    (void)state;
    assert_one_error("outputs: []\n", 1,
                     "outputs: expected at least one entry, got an empty sequence");
    assert_one_error("outputs:\n  - type: file\n    name: x\n", 2,
                     "outputs[0]: a file output needs path");
    assert_one_error("inputs:\n  - type: tail\n", 2,
                     "inputs[0]: a tail input needs paths, the files to follow");
    assert_one_error("inputs:\n  - format: json\n", 2, "inputs[0]: missing required key \"type\"");
    assert_one_error("inputs: [{type: stdin, format: xml}]\n", 1,
                     "inputs[0].format: unknown value \"xml\", expected one of: json, cri, "
                     "docker");
    assert_one_error("outputs: [{type: file, path: /a}, {type: file, path: /b}]\n", 1,
                     "outputs[1]: the name \"file\" is already used by outputs[0], give each "
                     "output its own name");
}

static void multiline_is_off_unless_the_input_has_a_multiline_map(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("inputs:\n"
                 "  - {type: stdin}\n"
                 "  - {type: tail, paths: [/a], multiline: {}}\n"
                 "  - {type: tail, paths: [/b], multiline: {continue: '^\\+', timeout: 2.5, "
                 "max_lines: 20}}\n",
                 &c);
    assert_false(c.inputs[0].multiline.enabled);
    assert_true(c.inputs[1].multiline.enabled);
    assert_string_equal(c.inputs[1].multiline.pattern, LV_MULTILINE_CONTINUE);
    assert_true(c.inputs[1].multiline.timeout == 1.0);
    assert_int_equal(c.inputs[1].multiline.max_lines, 500);
    assert_true(c.inputs[2].multiline.enabled);
    assert_string_equal(c.inputs[2].multiline.pattern, "^\\+");
    assert_true(c.inputs[2].multiline.timeout == 2.5);
    assert_int_equal(c.inputs[2].multiline.max_lines, 20);
    lv_conf_free(&c);
}

static void bad_multiline_settings_are_reported_with_their_line(void **state)
{
    (void)state;
    assert_one_error("inputs:\n"
                     "  - type: stdin\n"
                     "    multiline:\n"
                     "      continue: '^(\\s|at '\n",
                     4,
                     "inputs[0].multiline.continue: bad regular expression at offset 8: missing "
                     "closing parenthesis");
    assert_one_error("inputs: [{type: stdin, multiline: {continue: ''}}]\n", 1,
                     "inputs[0].multiline.continue: expected a non-empty string, got \"\"");
    assert_one_error("inputs: [{type: stdin, multiline: {timeout: 0}}]\n", 1,
                     "inputs[0].multiline.timeout: expected a number from 0.01 to 3600, got "
                     "\"0\"");
    assert_one_error("inputs: [{type: stdin, multiline: {max_lines: 0}}]\n", 1,
                     "inputs[0].multiline.max_lines: expected an integer from 1 to 100000, got "
                     "\"0\"");
    assert_one_error("inputs: [{type: stdin, multiline: true}]\n", 1,
                     "inputs[0].multiline: expected a map, got \"true\"");
}

static void admin_listen_must_be_an_ipv4_host_and_port(void **state)
{
    (void)state;
    assert_one_error("admin: {listen: \"[::1]:2020\"}\n", 1,
                     "admin.listen: expected HOST:PORT with HOST an IPv4 address or localhost, "
                     "such as 127.0.0.1:2020, got \"[::1]:2020\"");
}

static void probe_listen_is_checked_like_listen_and_needs_it(void **state)
{
    struct lv_conf c;
    (void)state;
    assert_loads("admin:\n  listen: 127.0.0.1:2020\n  probe_listen: 0.0.0.0:2021\n", &c);
    assert_string_equal(c.admin.probe_listen, "0.0.0.0:2021");
    lv_conf_free(&c);
    assert_one_error("admin:\n  listen: 127.0.0.1:2020\n  probe_listen: \"host:2021\"\n", 3,
                     "admin.probe_listen: expected HOST:PORT with HOST an IPv4 address or "
                     "localhost, such as 0.0.0.0:2021, got \"host:2021\"");
    assert_one_error("admin:\n  probe_listen: 0.0.0.0:2021\n", 2,
                     "admin.probe_listen: a probe listener needs admin.listen as well");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_the_documented_built_in_configuration),
        cmocka_unit_test(default_sampling_enrichment_and_limits_are_the_documented_ones),
        cmocka_unit_test(defaults_pick_the_profile_of_the_environment_given),
        cmocka_unit_test(free_zeroes_the_struct_and_accepts_an_empty_one),
        cmocka_unit_test(shipped_development_config_keeps_everything_and_counts_redactions),
        cmocka_unit_test(shipped_staging_config_samples_a_tenth_and_writes_a_file),
        cmocka_unit_test(shipped_canary_config_samples_a_tenth_to_stdout),
        cmocka_unit_test(shipped_production_config_samples_a_hundredth_and_rotates),
        cmocka_unit_test(shipped_configs_redact_the_same_keys),
        cmocka_unit_test(environment_variables_are_substituted_in_values),
        cmocka_unit_test(default_is_used_when_the_variable_is_unset_or_empty),
        cmocka_unit_test(double_dollar_is_a_literal_dollar),
        cmocka_unit_test(unset_variable_without_default_is_reported_with_its_line),
        cmocka_unit_test(malformed_variable_reference_is_reported),
        cmocka_unit_test(keys_are_not_substituted),
        cmocka_unit_test(hmac_key_file_is_read_without_its_trailing_newline),
        cmocka_unit_test(key_file_drops_one_line_ending_only),
        cmocka_unit_test(inline_hmac_key_is_refused),
        cmocka_unit_test(hmac_keys_keep_their_order_and_ids),
        cmocka_unit_test(key_file_shorter_than_32_bytes_is_an_error_at_its_line),
        cmocka_unit_test(bad_or_duplicate_key_ids_are_errors),
        cmocka_unit_test(audit_key_id_is_derived_unless_given),
        cmocka_unit_test(unreadable_hmac_key_file_is_reported_with_the_errno_text),
        cmocka_unit_test(hash_action_without_a_key_is_an_error),
        cmocka_unit_test(unknown_key_is_reported_with_its_line_and_the_expected_keys),
        cmocka_unit_test(buffer_smaller_than_a_line_is_an_error),
        cmocka_unit_test(unknown_key_in_redact_lists_the_file_variant_of_secrets),
        cmocka_unit_test(wrong_type_is_reported_with_what_was_expected),
        cmocka_unit_test(bad_regex_is_reported_with_its_offset),
        cmocka_unit_test(capture_group_beyond_the_pattern_is_reported),
        cmocka_unit_test(user_patterns_are_loaded_with_their_settings),
        cmocka_unit_test(sizes_accept_plain_numbers_and_units),
        cmocka_unit_test(bad_sizes_are_reported),
        cmocka_unit_test(all_errors_are_collected_in_line_order),
        cmocka_unit_test(yaml_syntax_error_is_reported_with_its_line),
        cmocka_unit_test(unquoted_variable_in_flow_style_gets_a_hint),
        cmocka_unit_test(missing_file_is_reported_with_the_errno_text),
        cmocka_unit_test(duplicate_key_is_an_error),
        cmocka_unit_test(empty_file_gives_the_defaults),
        cmocka_unit_test(file_profiles_override_builtins_by_name_and_add_new_ones),
        cmocka_unit_test(unknown_level_name_and_rate_out_of_range_are_errors),
        cmocka_unit_test(unknown_rate_is_one_number_or_one_per_stream),
        cmocka_unit_test(shipped_configs_read_every_level_field_and_favour_stderr_without_a_level),
        cmocka_unit_test(level_fields_given_in_the_file_replace_the_table),
        cmocka_unit_test(environment_without_a_profile_is_an_error),
        cmocka_unit_test(always_keep_given_in_the_file_replaces_the_default),
        cmocka_unit_test(plain_and_map_key_rules_are_normalised),
        cmocka_unit_test(section_match_and_action_apply_to_rules_written_before_them),
        cmocka_unit_test(section_action_applies_to_the_default_rules_when_keys_are_not_given),
        cmocka_unit_test(section_match_applies_to_the_default_rules_only_when_given),
        cmocka_unit_test(keys_given_in_the_file_replace_the_default_list),
        cmocka_unit_test(key_that_normalises_to_nothing_is_an_error),
        cmocka_unit_test(inputs_and_outputs_are_loaded),
        cmocka_unit_test(missing_or_empty_inputs_and_outputs_are_errors),
        cmocka_unit_test(multiline_is_off_unless_the_input_has_a_multiline_map),
        cmocka_unit_test(bad_multiline_settings_are_reported_with_their_line),
        cmocka_unit_test(admin_listen_must_be_an_ipv4_host_and_port),
        cmocka_unit_test(probe_listen_is_checked_like_listen_and_needs_it),
        cmocka_unit_test(every_file_key_is_listed_as_a_secret_file),
        cmocka_unit_test(readable_secret_file_is_an_error_only_when_strict),
        cmocka_unit_test(allowed_roots_must_be_absolute_and_for_tail_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
