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

#include "logveil/conf.h"
#include "logveil/log.h"
#include "logveil/metrics.h"
#include "pipeline.h"

static const char usage_text[] =
    "usage: logveil <command> [options]\n"
    "\n"
    "Reads application log lines, redacts secrets, samples by environment and\n"
    "ships the records.\n"
    "\n"
    "commands:\n"
    "  run --config FILE          run the sidecar with the inputs and outputs in FILE\n"
    "  filter [options]           read log lines on stdin, write redacted JSON lines\n"
    "                             to stdout, exit at end of input\n"
    "      --config FILE          rules from FILE (default: built-in rules)\n"
    "      --env NAME             environment whose sampling profile applies\n"
    "                             (development, staging, canary, production)\n"
    "      --format FORMAT        input framing: json (default), cri or docker\n"
    "      --stats                print the counters to stderr at the end\n"
    "  check-config FILE          validate FILE; print every problem as file:line\n"
    "\n"
    "  --version                  print the version\n"
    "  --help                     print this help\n"
    "\n"
    "examples:\n"
    "  logveil filter --env production < app.log\n"
    "  kubectl logs my-pod | logveil filter --config configs/staging.yaml\n"
    "  logveil check-config configs/production.yaml\n";

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "logveil: %s%s%s\nTry 'logveil --help'.\n", what, arg ? ": " : "",
            arg ? arg : "");
    return 2;
}

static int print_errors(struct lv_conf_errors *errors)
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
            return print_errors(&errors);
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

static int run_pipeline(struct lv_conf *conf, bool stats)
{
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    char err[512] = "";
    struct lv_pipeline *p = lv_pipeline_new(loop, conf, err, sizeof err);
    if (!p) {
        lv_error("%s", err);
        return 1;
    }
    lv_conf_wipe_keys(conf); /* the redactor has its own copy */
    int rc = lv_pipeline_run(p);
    lv_pipeline_free(p);
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
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *path = NULL, *env = NULL;
    int format = -1, c;
    bool stats = false;
    while ((c = getopt_long(argc, argv, "c:e:f:sh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'e': env = optarg; break;
        case 's': stats = true; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'f':
            format = parse_format(optarg);
            if (format < 0)
                return usage_error("unknown format, expected json, cri or docker", optarg);
            break;
        default: return usage_error("bad option for filter", NULL);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument", argv[optind]);
    struct lv_conf conf;
    int rc = load(path, env, &conf);
    if (rc == 0) {
        as_filter(&conf, format);
        rc = run_pipeline(&conf, stats);
    }
    lv_conf_free(&conf);
    return rc;
}

static int cmd_run(int argc, char **argv)
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
            fputs(usage_text, stdout);
            return 0;
        } else
            return usage_error("bad option for run", NULL);
    }
    if (!path)
        return usage_error("run needs --config FILE", NULL);
    struct lv_conf conf;
    int rc = load(path, NULL, &conf);
    if (rc == 0)
        rc = run_pipeline(&conf, false);
    lv_conf_free(&conf);
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    if (argc != 2)
        return usage_error("check-config needs exactly one FILE", NULL);
    struct lv_conf conf;
    struct lv_conf_errors errors = {0};
    int rc = lv_conf_load(argv[1], &conf, &errors);
    lv_conf_free(&conf);
    if (rc < 0)
        return print_errors(&errors);
    lv_conf_errors_free(&errors);
    printf("%s: ok\n", argv[1]);
    return 0;
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
    return usage_error("unknown command, expected run, filter or check-config", cmd);
}
