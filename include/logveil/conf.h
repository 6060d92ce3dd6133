/*
 * The configuration: one YAML file (see configs/), or the built-in defaults.
 *
 * lv_conf_load() fills a struct lv_conf from a file; every problem is
 * reported as "file:line: what is wrong, what was expected" through the
 * lv_conf_errors list, and loading continues so that all problems are shown
 * at once. lv_conf_defaults() gives the built-in configuration for an
 * environment.
 *
 * Ownership: struct lv_conf owns every string and array it points to;
 * lv_conf_free() releases them all and accepts a half-filled struct.
 */
#ifndef LOGVEIL_CONF_H
#define LOGVEIL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logveil/log.h"
#include "logveil/record.h"

struct lv_conf_spec;

enum lv_action { LV_ACTION_MASK, LV_ACTION_HASH, LV_ACTION_DROP };
enum lv_match { LV_MATCH_CONTAINS, LV_MATCH_EXACT };
enum lv_format { LV_FORMAT_JSON, LV_FORMAT_CRI, LV_FORMAT_DOCKER };
enum lv_input_kind { LV_INPUT_STDIN, LV_INPUT_TAIL };
enum lv_output_kind {
    LV_OUTPUT_STDOUT,
    LV_OUTPUT_FILE,
    LV_OUTPUT_ELASTICSEARCH,
    LV_OUTPUT_LOKI,
    LV_OUTPUT_KAFKA
};

/* A key rule: the value of any key whose normalised form matches is redacted. */
struct lv_key_rule {
    char *key;         /* normalised at load: lower-case, no '_', '-', '.' */
    enum lv_match match;
    enum lv_action action;
    char *replacement; /* NULL: use lv_redact_conf.replacement */
};

/* A value rule: a PCRE2 pattern run on every string value and on text lines. */
struct lv_value_rule {
    char *name;
    char *pattern;
    /* Literal strings, one of which (case-insensitive) every match contains;
     * lets a line without any of them skip the regex. None: always run. */
    char **hints;
    size_t nhints;
    /* Capture group whose text is redacted; 0 redacts the whole match. */
    int group;
    enum lv_action action;
    char *replacement; /* NULL: use lv_redact_conf.replacement */
    int line; /* config line, for error messages; 0 for built-ins */
};

/* A pseudonym key (redact.hmac_keys): read from a file, never inline. */
struct lv_hmac_key {
    char *id;      /* 1-32 of [A-Za-z0-9_.-]; derived from the key when not given */
    char *key;     /* the file's bytes less one trailing newline; wiped when freed */
    size_t key_len;
    int line;
};

struct lv_redact_conf {
    struct lv_key_rule *keys;
    size_t nkeys;
    enum lv_match match;   /* default for rules given as plain strings */
    enum lv_action action; /* default for rules that name none */
    char *replacement;     /* "[REDACTED]" */
    char *hmac_key;        /* from hmac_key_file; may hold NULs; becomes hmac_keys[0] */
    size_t hmac_key_len;
    struct lv_hmac_key *hmac_keys; /* the first is active, the others for lookups */
    size_t nhmac_keys;
    int hmac_length;       /* hex digits of a pseudonym (16) */
    bool builtin_patterns; /* the default value rules; true */
    struct lv_value_rule *patterns; /* user rules, run after the built-ins */
    size_t npatterns;
    bool count_field;      /* add "redacted": N to records that were changed */
    bool summary_field;    /* add "redaction": {"policy": digest, "count": N} to every record */
};

/* The tamper-evident audit trail (filters/audit.h): records kept by
 * always_keep carry "audit": {stream, key, seq, chain}. */
struct lv_audit_conf {
    char *key;        /* key_file's bytes; NULL: no audit trail; wiped when freed */
    size_t key_len;
    char *key_id;     /* derived from the key when not given */
    char *stream;     /* the chain's name; default "<POD_UID>/<CONTAINER_NAME>" or the host */
    int line;
};

struct lv_sample_profile {
    char *name;
    double rate;                     /* default for levels not listed */
    double levels[LV_LEVEL_COUNT];   /* < 0: not set, use rate */
    double unknown[2];               /* `unknown`: records whose level cannot be told,
                                        by enum lv_stream; < 0: not set, use rate */
};

struct lv_keep_rule {
    char *field; /* dotted path, e.g. "log.type" */
    char *equals;
};

struct lv_sample_conf {
    char *key;           /* dotted path of the sampling key; "trace_id" */
    char **level_fields; /* fields read for the level, matched case-insensitively;
                            default: the table in filters/level.c */
    size_t nlevel_fields;
    struct lv_sample_profile *profiles;
    size_t nprofiles;
    struct lv_keep_rule *keep;
    size_t nkeep;
    double rate_limit;   /* records per second per stream; 0: off */
    double burst;        /* token bucket depth; 0: same as rate_limit */
};

struct lv_enrich_conf {
    char **time_fields;  /* record fields read as the event time */
    size_t ntime_fields;
    char *timestamp_field;   /* "@timestamp" */
    char *environment_field; /* "environment"; NULL or "" to omit */
    char *stream_field;      /* "stream" */
    bool kubernetes;         /* add kubernetes.* from the downward API */
    char *labels_file;       /* downward API labels file, optional */
    bool ecs;                /* add log.level and trace.id copies */
};

struct lv_limits {
    size_t max_line;  /* bytes; longer lines are truncated and flagged */
    int max_depth;    /* JSON nesting; deeper fails closed */
};

enum lv_read_from { LV_READ_HEAD, LV_READ_TAIL };

/* The continuation lines `multiline: {}` joins: indented lines (Java "\tat"
 * frames and "... N more", Python "File" lines and source), "Caused by: ",
 * exception lines ("java.lang.IllegalStateException: boom", "ValueError: x")
 * and Python's "Traceback (most recent call last):". */
#define LV_MULTILINE_CONTINUE \
    "^(\\s|Caused by: |[\\w$.]+(Exception|Error)(: |$)|Traceback \\(most recent call last\\):)"

/* Joining of continuation lines (stack traces) into one record; see
 * filters/multiline.h. */
struct lv_multiline_conf {
    bool enabled;   /* the input has a multiline map */
    char *pattern;  /* `continue`: a line matching it joins the record before it */
    double timeout; /* seconds without a line before a held record is sent (1.0) */
    int max_lines;  /* lines in one record at most (500); a line past them starts the next */
};

struct lv_input_conf {
    enum lv_input_kind kind;
    enum lv_format format;
    char **paths;     /* tail: globs of the files to follow */
    size_t npaths;
    char **exclude;   /* tail: globs (matched on the path) to leave out */
    size_t nexclude;
    char **allowed_roots; /* tail: directories a file's resolved path must lie under;
                             none given: the globs' directories plus the defaults
                             (sidecar/input/tail_guard.h) */
    size_t nallowed_roots;
    char *checkpoint; /* tail: checkpoint file; default <state_dir>/tail-<n>.ckpt */
    int max_open_files;  /* tail: files held open at once (default 64) */
    double scan_interval; /* tail: seconds between stat/glob reconciliations (2) */
    double rotate_wait;   /* tail: seconds a rotated file is kept after EOF (5) */
    enum lv_read_from read_from; /* tail: where a file with no checkpoint starts */
    struct lv_multiline_conf multiline;
    int line;
};

/* What the pipeline does when buffer.max_bytes is reached. */
enum lv_when_full { LV_FULL_BLOCK, LV_FULL_DROP_NEWEST, LV_FULL_DROP_OLDEST, LV_FULL_SHED };

struct lv_output_conf {
    enum lv_output_kind kind;
    char *name;       /* instance name in logs and metrics; defaults to the type */
    char *path;       /* file */
    uint64_t max_bytes; /* file: rotate when larger; 0: never */
    int max_files;    /* file: rotated files kept */
    bool fsync;       /* file: fsync after each batch */
    int line;
    /* The options of a type that declares its own keys (next to its code:
     * struct lv_output_type.opts), bound by that table; NULL otherwise. */
    void *opts;
    const struct lv_conf_spec *opts_spec;
};

struct lv_admin_conf {
    char *listen;     /* "127.0.0.1:2020"; NULL: no admin server */
    char *probe_listen; /* "0.0.0.0:2021": /livez, /healthz, /readyz only, for the
                           kubelet; NULL: none (needs listen) */
};

struct lv_conf {
    char *path;       /* NULL for built-in defaults */
    char *environment;
    enum lv_log_level log_level;
    struct lv_input_conf *inputs;
    size_t ninputs;
    struct lv_output_conf *outputs;
    size_t noutputs;
    struct lv_redact_conf redact;
    struct lv_sample_conf sample;
    struct lv_enrich_conf enrich;
    struct lv_limits limits;
    struct lv_admin_conf admin;
    struct lv_audit_conf audit;
    uint64_t buffer_max_bytes;
    enum lv_when_full when_full;
    char *spool_dir;          /* NULL: no disk spool */
    uint64_t spool_max_bytes;
    char *state_dir;          /* checkpoints; "/var/lib/logveil" */
    double shutdown_timeout;  /* seconds to drain at SIGTERM (25: under Kubernetes' 30 s grace) */
    /* The files given by a NAME_file key (secrets, labels), as written: no
     * input ever reads them (sidecar/input/tail_guard.h). */
    char **secret_files;
    size_t nsecret_files;
    /* A secret file group- or world-readable is an error, not a warning. */
    bool strict_secret_files;
};

/* Collected load errors, each already formatted "file:line: message". */
struct lv_conf_errors {
    char **msgs;
    size_t n;
};

void lv_conf_errors_free(struct lv_conf_errors *e);

/* Built-in configuration for `environment` (NULL: "development"): stdin
 * input, stdout output, default redaction, the built-in sampling profiles.
 * Overwrites `conf` without freeing what it held. */
void lv_conf_defaults(struct lv_conf *conf, const char *environment);

/* Loads `path` over the defaults for the environment it names. 0 when valid;
 * -EINVAL with `errors` filled otherwise (-errno when the file cannot be read,
 * also reported there). `errors` (may be NULL) is overwritten, not appended
 * to. Whatever the result, `conf` is filled, the defaults at least, and must
 * be released with lv_conf_free(). */
int lv_conf_load(const char *path, struct lv_conf *conf, struct lv_conf_errors *errors);

/* The profile for conf->environment, or NULL when there is none. */
const struct lv_sample_profile *lv_conf_profile(const struct lv_conf *conf);

/* Wipes and frees the key material the filters keep their own copies of
 * (redact.hmac_key, hmac_keys, audit.key), once the pipeline is built: the sidecar then holds
 * each key once. */
void lv_conf_wipe_keys(struct lv_conf *conf);

void lv_conf_free(struct lv_conf *conf);

#endif
