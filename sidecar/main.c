/*
 * The command line. `run` is the sidecar; `filter` is the same pipeline with
 * stdin as its only input and stdout as its only output; `check-config`
 * validates a file. Exit status: 0 success, 1 runtime failure, 2 usage or
 * configuration error.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>

#include "cmd_compliance.h"
#include "logveil/conf.h"
#include "logveil/log.h"
#include "logveil/metrics.h"
#include "pipeline.h"
#include "redact.h"
#include "reload.h"

static const char usage_text[] =
    "usage: logveil <command> [options]\n"
    "\n"
    "Reads application log lines, redacts secrets, samples by environment and\n"
    "ships the records.\n"
    "\n"
    "commands:\n"
    "  run --config FILE          run the sidecar with the inputs and outputs in FILE\n"
    "      [--watch-config]       reload FILE when it changes (SIGHUP always reloads it)\n"
    "  filter [options]           read log lines on stdin, write redacted JSON lines\n"
    "                             to stdout, exit at end of input\n"
    "      --config FILE          rules from FILE (default: built-in rules)\n"
    "      --env NAME             environment whose sampling profile applies\n"
    "                             (development, staging, canary, production)\n"
    "      --format FORMAT        input framing: json (default), cri or docker\n"
    "      --stats                print the counters to stderr at the end\n"
    "      --explain              instead of the records, one JSON line per line read\n"
    "                             naming what was redacted (paths, spans, rules), never\n"
    "                             a value\n"
    "      --report               instead of the records, a summary: records, records\n"
    "                             touched, counts per rule and action, drops per level\n"
    "  check-config [--print-policy] FILE\n"
    "                             validate FILE; print every problem as file:line;\n"
    "                             --print-policy: the redaction policy's digest and rules\n"
    "  pseudonym --config FILE [VALUE...]\n"
    "                             print the pseudonym of each VALUE (or of each line of\n"
    "                             stdin) under every key of FILE, active key first\n"
    "  verify-audit --key-file K [--from-seq N] [--expect-last N] < EXPORT\n"
    "                             check the audit chain of an export; exit 0 only when\n"
    "                             it is whole\n"
    "\n"
    "  --version                  print the version\n"
    "  --help                     print this help\n"
    "\n"
    "examples:\n"
    "  logveil filter --env production < app.log\n"
    "  kubectl logs my-pod | logveil filter --config configs/staging.yaml\n"
    "  logveil check-config configs/production.yaml\n";

int lv_cmd_usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "logveil: %s%s%s\nTry 'logveil --help'.\n", what, arg ? ": " : "",
            arg ? arg : "");
    return 2;
}

int lv_cmd_print_errors(struct lv_conf_errors *errors)
{
    for (size_t i = 0; i < errors->n; i++)
        fprintf(stderr, "%s\n", errors->msgs[i]);
    lv_conf_errors_free(errors);
    return 2;
}

static int load(const char *path, const char *env, struct lv_conf *conf)
{
    struct lv_conf_errors errors = {0};
    if (path) {
        if (lv_conf_load(path, conf, &errors) < 0)
            return lv_cmd_print_errors(&errors);
    } else {
        lv_conf_defaults(conf, env);
    }
    lv_conf_errors_free(&errors);
    if (env) {
        free(conf->environment);
        conf->environment = lv_xstrdup(env);
    }
    if (!lv_conf_profile(conf)) {
        fprintf(stderr, "logveil: no sampling profile for environment \"%s\"; expected one of:",
                conf->environment);
        for (size_t i = 0; i < conf->sample.nprofiles; i++)
            fprintf(stderr, " %s", conf->sample.profiles[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    lv_log_set_level(conf->log_level);
    return 0;
}

/* `reload_path`: the file SIGHUP (and, with `watch`, a change of it)
 * reloads; NULL for none. */
static int run_pipeline(struct lv_conf *conf, bool stats, const char *reload_path, bool watch)
{
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    char err[512] = "";
    struct lv_pipeline *p = lv_pipeline_new(loop, conf, err, sizeof err);
    if (!p) {
        lv_error("%s", err);
        return 1;
    }
    lv_conf_wipe_keys(conf); /* the redactor has its own copy */
    struct lv_reload *reload = reload_path ? lv_reload_new(p, reload_path, watch) : NULL;
    int rc = lv_pipeline_run(p);
    lv_reload_stop(reload);
    lv_pipeline_free(p);
    lv_reload_free(reload);
    if (stats) {
        struct lv_buf b;
        lv_buf_init(&b, 16384, 0);
        lv_metrics_render(&b);
        fwrite(b.data, 1, b.len, stderr);
        lv_buf_free(&b);
    }
    return rc;
}

/* `filter`: the configured rules, but stdin in and stdout out. The first
 * input's format and multiline joining stay, as rules for its lines. */
static void as_filter(struct lv_conf *conf, int format)
{
    enum lv_format fmt = conf->ninputs ? conf->inputs[0].format : LV_FORMAT_JSON;
    struct lv_multiline_conf ml =
        conf->ninputs ? conf->inputs[0].multiline : (struct lv_multiline_conf){0};
    for (size_t i = 0; i < conf->ninputs; i++) {
        struct lv_input_conf *ic = &conf->inputs[i];
        for (size_t k = 0; k < ic->npaths; k++)
            free(ic->paths[k]);
        for (size_t k = 0; k < ic->nexclude; k++)
            free(ic->exclude[k]);
        for (size_t k = 0; k < ic->nallowed_roots; k++)
            free(ic->allowed_roots[k]);
        free(ic->paths);
        free(ic->exclude);
        free(ic->allowed_roots);
        free(ic->checkpoint);
        if (i > 0)
            free(ic->multiline.pattern);
    }
    for (size_t i = 0; i < conf->noutputs; i++) {
        free(conf->outputs[i].name);
        free(conf->outputs[i].path);
    }
    conf->ninputs = 1;
    conf->inputs = lv_xrealloc(conf->inputs, sizeof *conf->inputs);
    conf->inputs[0] = (struct lv_input_conf){.kind = LV_INPUT_STDIN,
                                             .format = format >= 0 ? (enum lv_format)format : fmt,
                                             .multiline = ml};
    conf->noutputs = 1;
    conf->outputs = lv_xrealloc(conf->outputs, sizeof *conf->outputs);
    conf->outputs[0] = (struct lv_output_conf){.kind = LV_OUTPUT_STDOUT};
    free(conf->admin.listen);
    free(conf->admin.probe_listen);
    conf->admin.listen = conf->admin.probe_listen = NULL;
}

static int parse_format(const char *s)
{
    static const char *const names[] = {"json", "cri", "docker"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static int cmd_filter(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"env", required_argument, 0, 'e'},
                                         {"format", required_argument, 0, 'f'},
                                         {"stats", no_argument, 0, 's'},
                                         {"explain", no_argument, 0, 'x'},
                                         {"report", no_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *path = NULL, *env = NULL;
    int format = -1, c;
    bool stats = false;
    int tool = 0; /* 'x': --explain, 'r': --report */
    while ((c = getopt_long(argc, argv, "c:e:f:sh", opts, NULL)) != -1) {
        switch (c) {
        case 'x':
        case 'r': tool = c; break;
        case 'c': path = optarg; break;
        case 'e': env = optarg; break;
        case 's': stats = true; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'f':
            format = parse_format(optarg);
            if (format < 0)
                return lv_cmd_usage_error("unknown format, expected json, cri or docker", optarg);
            break;
        default: return lv_cmd_usage_error("bad option for filter", NULL);
        }
    }
    if (optind < argc)
        return lv_cmd_usage_error("unexpected argument", argv[optind]);
    struct lv_conf conf;
    int rc = load(path, env, &conf);
    if (rc == 0) {
        as_filter(&conf, format);
        rc = tool ? lv_cmd_explain(&conf, tool == 'x') : run_pipeline(&conf, stats, NULL, false);
    }
    lv_conf_free(&conf);
    return rc;
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"watch-config", no_argument, 0, 'w'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *path = NULL;
    bool watch = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:wh", opts, NULL)) != -1) {
        if (c == 'c')
            path = optarg;
        else if (c == 'w')
            watch = true;
        else if (c == 'h') {
            fputs(usage_text, stdout);
            return 0;
        } else
            return lv_cmd_usage_error("bad option for run", NULL);
    }
    if (!path)
        return lv_cmd_usage_error("run needs --config FILE", NULL);
    struct lv_conf conf;
    int rc = load(path, NULL, &conf);
    if (rc == 0)
        rc = run_pipeline(&conf, false, path, watch);
    lv_conf_free(&conf);
    return rc;
}

/* The policy digest and its rules, one per line, numbered in order. */
static int print_policy(const struct lv_conf *conf)
{
    char err[512] = "";
    struct lv_redactor *r = lv_redact_new(&conf->redact, err, sizeof err);
    if (!r) {
        fprintf(stderr, "logveil: %s\n", err);
        return 1;
    }
    size_t len;
    const char *text = lv_redact_policy(r, &len);
    printf("policy %s\n", lv_redact_policy_digest(r));
    unsigned order = 0;
    for (const char *l = text, *end = text + len; l < end;) {
        const char *nl = memchr(l, '\n', (size_t)(end - l));
        size_t n = nl ? (size_t)(nl - l) : (size_t)(end - l);
        printf("%u\t%.*s\n", order++, (int)n, l);
        l += n + 1;
    }
    lv_redact_free(r);
    return 0;
}

static int cmd_check(int argc, char **argv)
{
    bool policy = argc == 3 && !strcmp(argv[1], "--print-policy");
    if (argc != 2 && !policy)
        return lv_cmd_usage_error("check-config needs exactly one FILE (and --print-policy "
                                  "before it to print the redaction policy)",
                                  NULL);
    const char *path = argv[argc - 1];
    struct lv_conf conf;
    struct lv_conf_errors errors = {0};
    int rc = lv_conf_load(path, &conf, &errors);
    if (rc < 0) {
        lv_conf_free(&conf);
        return lv_cmd_print_errors(&errors);
    }
    lv_conf_errors_free(&errors);
    rc = policy ? print_policy(&conf) : 0;
    if (!policy)
        printf("%s: ok\n", path);
    lv_conf_free(&conf);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is an EPIPE for the output to report */
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("logveil %s\n", LOGVEIL_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "filter") == 0)
        return cmd_filter(argc - 1, argv + 1);
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "pseudonym") == 0)
        return lv_cmd_pseudonym(argc - 1, argv + 1);
    if (strcmp(cmd, "verify-audit") == 0)
        return lv_cmd_verify_audit(argc - 1, argv + 1);
    return lv_cmd_usage_error("unknown command, expected run, filter, check-config, pseudonym "
                              "or verify-audit",
                              cmd);
}
