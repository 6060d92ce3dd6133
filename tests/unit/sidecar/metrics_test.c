/*
 * The counters, their Prometheus text exposition, and the admin server that
 * serves them, driven on a real libev loop by a loopback client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "admin.h"
#include "logveil/metrics.h"
#include "logveil/util.h"

static int reset(void **state)
{
    lv_metrics_reset();
    return 0;
}

/* The exposition as a C string; the caller frees it. */
static char *render(void)
{
    struct lv_buf b;
    lv_buf_init(&b, 256, 0);
    assert_int_equal(lv_metrics_render(&b), 0);
    assert_int_equal(lv_buf_putc(&b, '\0'), 0);
    return b.data;
}

/* Whether `text` holds `line` as a whole line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static size_t count_lines_with(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* Exposition format checks ---------------------------------------------- */

/* Skips a label set `{k="v",...}` at `p`, or fails the test. */
static const char *skip_labels(const char *p, const char *line)
{
    if (*p != '{')
        return p;
    for (p++;;) {
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            fail_msg("bad label name in: %s", line);
        while (*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
               (*p >= '0' && *p <= '9'))
            p++;
        if (p[0] != '=' || p[1] != '"')
            fail_msg("expected =\" in: %s", line);
        for (p += 2; *p != '"'; p++) {
            if (*p == '\n' || *p == '\0')
                fail_msg("unterminated label value in: %s", line);
            if (*p == '\\' && p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                fail_msg("bad escape in: %s", line);
            if (*p == '\\')
                p++;
        }
        p++;
        if (*p == '}')
            return p + 1;
        if (*p != ',')
            fail_msg("expected , or } in: %s", line);
        p++;
    }
}

/* Every sample follows the HELP and TYPE of its family, each family is
 * declared once, counters end in _total, every name has the logveil_ prefix,
 * and no series appears twice. */
static void check_exposition(const char *text)
{
    char family[128] = "";
    bool typed = false, histogram = false;
    char declared[4096] = " ";
    char *series = lv_xstrdup(" ");
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        size_t len = strcspn(line, "\n");
        assert_int_equal(line[len], '\n');
        char buf[512];
        assert_true(len < sizeof buf);
        memcpy(buf, line, len);
        buf[len] = '\0';

        char name[128], type[32];
        if (sscanf(buf, "# HELP %127s", name) == 1) {
            snprintf(family, sizeof family, "%s", name);
            typed = false;
            continue;
        }
        if (sscanf(buf, "# TYPE %127s %31s", name, type) == 2) {
            if (strcmp(name, family) != 0)
                fail_msg("TYPE without HELP just before: %s", buf);
            char key[132];
            snprintf(key, sizeof key, " %s ", name);
            if (strstr(declared, key))
                fail_msg("family declared twice: %s", name);
            strncat(declared, key + 1, sizeof declared - strlen(declared) - 1);
            if (strncmp(name, "logveil_", 8) != 0)
                fail_msg("no logveil_ prefix: %s", name);
            size_t nl = strlen(name);
            bool total = nl > 6 && strcmp(name + nl - 6, "_total") == 0;
            histogram = strcmp(type, "histogram") == 0;
            if (strcmp(type, "counter") == 0 ? !total
                                             : (strcmp(type, "gauge") != 0 && !histogram) || total)
                fail_msg("counter names end in _total, gauges and histograms do not: %s %s",
                         name, type);
            typed = true;
            continue;
        }
        size_t nlen = strcspn(buf, "{ ");
        size_t flen = strlen(family);
        /* A histogram's samples are <family>_bucket, _sum and _count. */
        bool in_family = nlen == flen ||
                         (histogram && nlen > flen &&
                          (!strncmp(buf + flen, "_bucket", nlen - flen) ||
                           !strncmp(buf + flen, "_sum", nlen - flen) ||
                           !strncmp(buf + flen, "_count", nlen - flen)) &&
                          (nlen - flen == 7 || nlen - flen == 4 || nlen - flen == 6));
        if (!typed || !in_family || strncmp(buf, family, flen) != 0)
            fail_msg("sample outside its family %s: %s", family, buf);
        const char *p = skip_labels(buf + nlen, buf);
        if (*p != ' ')
            fail_msg("expected a space before the value: %s", buf);
        char *end;
        strtod(p + 1, &end);
        if (end == p + 1 || *end != '\0')
            fail_msg("bad value: %s", buf);

        size_t slen = (size_t)(p - buf);
        char key[512];
        snprintf(key, sizeof key, " %.*s ", (int)slen, buf);
        if (strstr(series, key))
            fail_msg("series appears twice: %s", key);
        size_t have = strlen(series);
        series = lv_xrealloc(series, have + strlen(key));
        strcpy(series + have, key + 1);
    }
    free(series);
}

static void render_is_valid_exposition_text(void **state)
{
    *lv_metrics_rule("aws_key") += 2;
    lv_metrics_output("es")->records = 5;
    lv_metrics_output("file")->errors = 1;
    char *text = render();
    check_exposition(text);
    free(text);
}

static void output_ends_with_newline(void **state)
{
    char *text = render();
    size_t n = strlen(text);
    assert_true(n > 0);
    assert_int_equal(text[n - 1], '\n');
    free(text);
}

static void render_appends_after_existing_content(void **state)
{
    struct lv_buf b;
    lv_buf_init(&b, 16, 0);
    assert_int_equal(lv_buf_puts(&b, "before\n"), 0);
    assert_int_equal(lv_metrics_render(&b), 0);
    assert_memory_equal(b.data, "before\n# HELP ", 14);
    lv_buf_free(&b);
}

static void render_includes_every_scalar_counter(void **state)
{
    lv_metrics.input_records = 11;
    lv_metrics.input_bytes = 1234;
    lv_metrics.lines_truncated = 1;
    lv_metrics.lines_not_json = 2;
    lv_metrics.lines_invalid_utf8 = 3;
    lv_metrics.records_fast_path = 4;
    lv_metrics.redactions = 5;
    lv_metrics.records_redacted = 6;
    lv_metrics.input_paused_total = 7;
    lv_metrics.buffer_bytes = 8;
    char *text = render();
    assert_true(has_line(text, "logveil_input_records_total 11"));
    assert_true(has_line(text, "logveil_input_bytes_total 1234"));
    assert_true(has_line(text, "logveil_lines_truncated_total 1"));
    assert_true(has_line(text, "logveil_lines_not_json_total 2"));
    assert_true(has_line(text, "logveil_lines_invalid_utf8_total 3"));
    assert_true(has_line(text, "logveil_records_fast_path_total 4"));
    assert_true(has_line(text, "logveil_redactions_total 5"));
    assert_true(has_line(text, "logveil_records_redacted_total 6"));
    assert_true(has_line(text, "logveil_input_paused_total 7"));
    assert_true(has_line(text, "# TYPE logveil_buffer_bytes gauge"));
    assert_true(has_line(text, "logveil_buffer_bytes 8"));
    free(text);
}

static const char *const levels[LV_LEVEL_COUNT] = {
    "unknown", "trace", "debug", "info", "warn", "error", "fatal",
};

static void render_includes_kept_records_per_lowercase_level(void **state)
{
    lv_metrics.records_kept[LV_LEVEL_INFO] = 9;
    char *text = render();
    for (unsigned l = 0; l < LV_LEVEL_COUNT; l++) {
        char line[128];
        snprintf(line, sizeof line, "logveil_records_kept_total{level=\"%s\"} %d", levels[l],
                 l == LV_LEVEL_INFO ? 9 : 0);
        if (!has_line(text, line))
            fail_msg("missing: %s", line);
    }
    free(text);
}

static void render_includes_every_drop_reason_and_level(void **state)
{
    lv_metrics_drop(LV_DROP_SAMPLED, LV_LEVEL_DEBUG);
    lv_metrics_drop(LV_DROP_SAMPLED, LV_LEVEL_DEBUG);
    char *text = render();
    for (unsigned r = 0; r < LV_DROP_REASON_COUNT; r++) {
        for (unsigned l = 0; l < LV_LEVEL_COUNT; l++) {
            char line[160];
            int v = r == LV_DROP_SAMPLED && l == LV_LEVEL_DEBUG ? 2 : 0;
            snprintf(line, sizeof line,
                     "logveil_records_dropped_total{reason=\"%s\",level=\"%s\"} %d",
                     lv_drop_reason_name(r), levels[l], v);
            if (!has_line(text, line))
                fail_msg("missing: %s", line);
        }
    }
    assert_int_equal(count_lines_with(text, "logveil_records_dropped_total{"),
                     LV_DROP_REASON_COUNT * LV_LEVEL_COUNT);
    free(text);
}

static void drop_reason_names_are_the_documented_labels(void **state)
{
    assert_string_equal(lv_drop_reason_name(LV_DROP_SAMPLED), "sampled");
    assert_string_equal(lv_drop_reason_name(LV_DROP_RATE_LIMITED), "rate_limited");
    assert_string_equal(lv_drop_reason_name(LV_DROP_DEPTH), "depth");
    assert_string_equal(lv_drop_reason_name(LV_DROP_REDACT_FAILED), "redact_failed");
    assert_string_equal(lv_drop_reason_name(LV_DROP_BUFFER), "buffer");
    assert_string_equal(lv_drop_reason_name(LV_DROP_REJECTED), "rejected");
    assert_string_equal(lv_drop_reason_name(LV_DROP_REASON_COUNT), "unknown");
}

static void dropped_total_sums_over_levels(void **state)
{
    lv_metrics_drop(LV_DROP_DEPTH, LV_LEVEL_INFO);
    lv_metrics_drop(LV_DROP_DEPTH, LV_LEVEL_ERROR);
    lv_metrics_drop(LV_DROP_DEPTH, LV_LEVEL_UNKNOWN);
    lv_metrics_drop(LV_DROP_BUFFER, LV_LEVEL_INFO);
    assert_int_equal(lv_metrics_dropped_total(LV_DROP_DEPTH), 3);
    assert_int_equal(lv_metrics_dropped_total(LV_DROP_BUFFER), 1);
    assert_int_equal(lv_metrics_dropped_total(LV_DROP_SAMPLED), 0);
}

static void drop_at_an_out_of_range_level_counts_as_unknown(void **state)
{
    lv_metrics_drop(LV_DROP_REJECTED, (enum lv_level)99);
    assert_int_equal(lv_metrics.dropped[LV_DROP_REJECTED][LV_LEVEL_UNKNOWN], 1);
}

static void same_rule_name_returns_same_counter(void **state)
{
    uint64_t *a = lv_metrics_rule("jwt");
    uint64_t *b = lv_metrics_rule("aws_key");
    assert_ptr_equal(lv_metrics_rule("jwt"), a);
    assert_ptr_not_equal(a, b);
    assert_int_equal(lv_metrics.nrules, 2);
    *a += 3;
    char *text = render();
    assert_true(has_line(text, "logveil_redactions_by_rule_total{rule=\"jwt\"} 3"));
    assert_true(has_line(text, "logveil_redactions_by_rule_total{rule=\"aws_key\"} 0"));
    free(text);
}

static void rule_table_overflow_shares_other_slot(void **state)
{
    char name[32];
    for (unsigned i = 0; i < LV_METRICS_MAX_RULES - 1; i++) {
        snprintf(name, sizeof name, "rule%u", i);
        lv_metrics_rule(name);
    }
    assert_int_equal(lv_metrics.nrules, LV_METRICS_MAX_RULES - 1);
    uint64_t *x = lv_metrics_rule("late_x");
    uint64_t *y = lv_metrics_rule("late_y");
    assert_ptr_equal(x, y);
    assert_ptr_equal(x, &lv_metrics.rules[LV_METRICS_MAX_RULES - 1].hits);
    assert_string_equal(lv_metrics.rules[LV_METRICS_MAX_RULES - 1].name, "other");
    assert_int_equal(lv_metrics.nrules, LV_METRICS_MAX_RULES);
    assert_ptr_equal(lv_metrics_rule("rule0"), &lv_metrics.rules[0].hits);
    *x += 2;
    char *text = render();
    assert_true(has_line(text, "logveil_redactions_by_rule_total{rule=\"other\"} 2"));
    assert_false(strstr(text, "late_x"));
    check_exposition(text);
    free(text);
}

static void rule_named_other_is_rendered_once_after_overflow(void **state)
{
    uint64_t *own = lv_metrics_rule("other");
    char name[32];
    for (unsigned i = 0; i < LV_METRICS_MAX_RULES + 5; i++) {
        snprintf(name, sizeof name, "rule%u", i);
        lv_metrics_rule(name);
    }
    assert_ptr_equal(lv_metrics_rule("late"), own);
    char *text = render();
    assert_int_equal(count_lines_with(text, "{rule=\"other\"}"), 1);
    check_exposition(text);
    free(text);
}

static void long_rule_names_are_cut_to_the_slot(void **state)
{
    char name[200];
    memset(name, 'k', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    uint64_t *a = lv_metrics_rule(name);
    assert_ptr_equal(lv_metrics_rule(name), a);
    assert_int_equal(strlen(lv_metrics.rules[0].name), sizeof lv_metrics.rules[0].name - 1);
}

static void same_output_name_returns_same_counter(void **state)
{
    struct lv_output_counter *es = lv_metrics_output("es");
    assert_ptr_equal(lv_metrics_output("es"), es);
    assert_ptr_not_equal(lv_metrics_output("file"), es);
    es->records = 10;
    es->bytes = 2048;
    es->errors = 1;
    char *text = render();
    assert_true(has_line(text, "logveil_output_records_total{output=\"es\"} 10"));
    assert_true(has_line(text, "logveil_output_bytes_total{output=\"es\"} 2048"));
    assert_true(has_line(text, "logveil_output_errors_total{output=\"es\"} 1"));
    assert_true(has_line(text, "logveil_output_records_total{output=\"file\"} 0"));
    free(text);
}

static void output_table_overflow_shares_other_slot(void **state)
{
    char name[32];
    for (unsigned i = 0; i < LV_METRICS_MAX_OUTPUTS - 1; i++) {
        snprintf(name, sizeof name, "out%u", i);
        lv_metrics_output(name);
    }
    struct lv_output_counter *x = lv_metrics_output("late_x");
    assert_ptr_equal(lv_metrics_output("late_y"), x);
    assert_string_equal(x->name, "other");
    assert_int_equal(lv_metrics.noutputs, LV_METRICS_MAX_OUTPUTS);
}

static void label_values_are_escaped(void **state)
{
    *lv_metrics_rule("a\"b\\c\nd") = 1;
    lv_metrics_output("x\"y");
    char *text = render();
    assert_true(has_line(text, "logveil_redactions_by_rule_total{rule=\"a\\\"b\\\\c\\nd\"} 1"));
    assert_true(has_line(text, "logveil_output_records_total{output=\"x\\\"y\"} 0"));
    check_exposition(text);
    free(text);
}

static void render_past_the_buffer_limit_returns_enobufs_and_appends_nothing(void **state)
{
    struct lv_buf b;
    lv_buf_init(&b, 16, 512);
    assert_int_equal(lv_buf_puts(&b, "kept"), 0);
    assert_int_equal(lv_metrics_render(&b), -ENOBUFS);
    assert_int_equal(b.len, 4);
    lv_buf_free(&b);
}

static void reset_zeroes_everything(void **state)
{
    lv_metrics.input_records = 3;
    lv_metrics_drop(LV_DROP_SAMPLED, LV_LEVEL_INFO);
    *lv_metrics_rule("jwt") = 1;
    lv_metrics_output("es")->bytes = 1;
    lv_metrics_reset();
    assert_int_equal(lv_metrics.input_records, 0);
    assert_int_equal(lv_metrics_dropped_total(LV_DROP_SAMPLED), 0);
    assert_int_equal(lv_metrics.nrules, 0);
    assert_int_equal(lv_metrics.noutputs, 0);
    assert_ptr_equal(lv_metrics_rule("new"), &lv_metrics.rules[0].hits);
}

/* The admin server --------------------------------------------------------- */

struct fixture {
    struct ev_loop *loop;
    struct lv_admin *admin;
};

static int admin_setup(void **state)
{
    lv_metrics_reset();
    struct fixture *f = lv_xcalloc(1, sizeof *f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    char err[256] = "";
    f->admin = lv_admin_start(f->loop, "127.0.0.1:0", NULL, err, sizeof err);
    if (!f->admin)
        fail_msg("lv_admin_start: %s", err);
    assert_true(lv_admin_port(f->admin) > 0);
    *state = f;
    return 0;
}

static int admin_teardown(void **state)
{
    struct fixture *f = *state;
    lv_admin_stop(f->admin);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static int connect_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The kernel completes a loopback handshake against the listen backlog,
     * so this does not wait for the loop. */
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Turns the loop until `fd` reaches end of file, 3 s at most. Returns the
 * bytes read into `resp` (NUL-terminated). */
static size_t read_until_eof(struct ev_loop *loop, int fd, char *resp, size_t cap)
{
    size_t len = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (int turns = 0; turns < 300; turns++) {
        ev_run(loop, EVRUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) <= 0)
            continue;
        ssize_t n = read(fd, resp + len, cap - 1 - len);
        if (n == 0) {
            resp[len] = '\0';
            return len;
        }
        if (n > 0)
            len += (size_t)n;
        assert_true(len < cap - 1);
    }
    fail_msg("no complete response within 3 s");
    return 0;
}

struct response {
    int status;
    char raw[65536];
    const char *body;
};

static void request(struct fixture *f, const char *method, const char *path, struct response *r)
{
    int fd = connect_loopback(lv_admin_port(f->admin));
    char req[256];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                 method, path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    read_until_eof(f->loop, fd, r->raw, sizeof r->raw);
    close(fd);
    assert_int_equal(sscanf(r->raw, "HTTP/1.1 %d", &r->status), 1);
    char *sep = strstr(r->raw, "\r\n\r\n");
    assert_non_null(sep);
    sep[2] = '\0'; /* headers end with their own CRLF */
    r->body = sep + 4;
}

/* The value of header `name`, copied into `out`; "" when absent. */
static const char *header(const struct response *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    out[0] = '\0';
    for (const char *p = strstr(r->raw, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n + strspn(p + 3 + n, " ");
            snprintf(out, cap, "%.*s", (int)strcspn(v, "\r"), v);
            break;
        }
    }
    return out;
}

static void admin_serves_metrics_with_prometheus_content_type(void **state)
{
    struct fixture *f = *state;
    lv_metrics.input_records = 4242;
    struct response r;
    request(f, "GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    char ct[128];
    assert_string_equal(header(&r, "Content-Type", ct, sizeof ct),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_true(has_line(r.body, "logveil_input_records_total 4242"));
    check_exposition(r.body);
}

static void admin_metrics_reflect_counters_at_request_time(void **state)
{
    struct fixture *f = *state;
    struct response r;
    request(f, "GET", "/metrics", &r);
    assert_true(has_line(r.body, "logveil_redactions_total 0"));
    lv_metrics.redactions = 7;
    request(f, "GET", "/metrics", &r);
    assert_true(has_line(r.body, "logveil_redactions_total 7"));
}

/* Prometheus reuses its connection between scrapes. */
static void admin_keeps_the_connection_alive_between_requests(void **state)
{
    struct fixture *f = *state;
    int fd = connect_loopback(lv_admin_port(f->admin));
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                       "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    static char resp[65536];
    read_until_eof(f->loop, fd, resp, sizeof resp);
    close(fd);
    assert_int_equal(count_lines_with(resp, "HTTP/1.1 200 OK\r\n"), 2);
    assert_non_null(strstr(resp, "logveil_input_records_total 0\n"));
}

static void admin_readyz_is_503_until_set_ready(void **state)
{
    struct fixture *f = *state;
    struct response r;
    request(f, "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    lv_admin_set_ready(f->admin, true);
    request(f, "GET", "/readyz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    lv_admin_set_ready(f->admin, false);
    request(f, "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
}

static void admin_livez_and_healthz_answer_ok_before_ready(void **state)
{
    struct fixture *f = *state;
    struct response r;
    request(f, "GET", "/livez", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    request(f, "GET", "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
}

static void admin_unknown_path_is_404(void **state)
{
    struct fixture *f = *state;
    struct response r;
    request(f, "GET", "/nope", &r);
    assert_int_equal(r.status, 404);
    request(f, "GET", "/metrics/extra", &r);
    assert_int_equal(r.status, 404);
}

static void admin_query_string_does_not_change_the_route(void **state)
{
    struct fixture *f = *state;
    struct response r;
    request(f, "GET", "/livez?verbose", &r);
    assert_int_equal(r.status, 200);
}

static void admin_post_is_405_with_allow_header(void **state)
{
    struct fixture *f = *state;
    struct response r;
    request(f, "POST", "/metrics", &r);
    assert_int_equal(r.status, 405);
    char allow[64];
    assert_string_equal(header(&r, "Allow", allow, sizeof allow), "GET, HEAD");
    request(f, "DELETE", "/readyz", &r);
    assert_int_equal(r.status, 405);
}

static void admin_head_answers_without_body(void **state)
{
    struct fixture *f = *state;
    struct response r;
    request(f, "HEAD", "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "");
}

static void on_stop_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ONE);
}

/* MHD_get_timeout() can ask for an immediate turn; an idle server with an
 * idle connection open must still let the loop sleep. */
static void admin_idle_server_lets_the_loop_sleep(void **state)
{
    struct fixture *f = *state;
    struct response r;
    request(f, "GET", "/livez", &r);
    int idle = connect_loopback(lv_admin_port(f->admin));
    ev_timer stop;
    ev_timer_init(&stop, on_stop_timer, 0.3, 0.0);
    ev_timer_start(f->loop, &stop);
    unsigned before = ev_iteration(f->loop);
    ev_run(f->loop, 0);
    assert_true(ev_iteration(f->loop) - before < 20);
    close(idle);
}

static void admin_start_rejects_malformed_listen(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    static const char *const bad[] = {
        "",
        "2020",
        ":2020",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:http",
        "127.0.0.1:70000",
        "127.0.0.1:-1",
        "example.com:80",
        "::1:80",
        "127.0.0.1:80x",
    };
    for (size_t i = 0; i < LV_ARRAY_LEN(bad); i++) {
        char err[256] = "";
        struct lv_admin *a = lv_admin_start(loop, bad[i], NULL, err, sizeof err);
        if (a)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(strstr(err, "admin.listen"));
    }
    ev_loop_destroy(loop);
}

static void admin_start_reports_a_port_in_use(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);

    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char listen_at[64], err[256] = "";
    snprintf(listen_at, sizeof listen_at, "localhost:%d", ntohs(sa.sin_port));
    assert_null(lv_admin_start(loop, listen_at, NULL, err, sizeof err));
    assert_non_null(strstr(err, listen_at));
    ev_loop_destroy(loop);
    close(fd);
}

static void admin_stop_accepts_null(void **state)
{
    lv_admin_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(render_is_valid_exposition_text, reset),
        cmocka_unit_test_setup(output_ends_with_newline, reset),
        cmocka_unit_test_setup(render_appends_after_existing_content, reset),
        cmocka_unit_test_setup(render_includes_every_scalar_counter, reset),
        cmocka_unit_test_setup(render_includes_kept_records_per_lowercase_level, reset),
        cmocka_unit_test_setup(render_includes_every_drop_reason_and_level, reset),
        cmocka_unit_test_setup(drop_reason_names_are_the_documented_labels, reset),
        cmocka_unit_test_setup(dropped_total_sums_over_levels, reset),
        cmocka_unit_test_setup(drop_at_an_out_of_range_level_counts_as_unknown, reset),
        cmocka_unit_test_setup(same_rule_name_returns_same_counter, reset),
        cmocka_unit_test_setup(rule_table_overflow_shares_other_slot, reset),
        cmocka_unit_test_setup(rule_named_other_is_rendered_once_after_overflow, reset),
        cmocka_unit_test_setup(long_rule_names_are_cut_to_the_slot, reset),
        cmocka_unit_test_setup(same_output_name_returns_same_counter, reset),
        cmocka_unit_test_setup(output_table_overflow_shares_other_slot, reset),
        cmocka_unit_test_setup(label_values_are_escaped, reset),
        cmocka_unit_test_setup(render_past_the_buffer_limit_returns_enobufs_and_appends_nothing,
                               reset),
        cmocka_unit_test_setup(reset_zeroes_everything, reset),
        cmocka_unit_test_setup_teardown(admin_serves_metrics_with_prometheus_content_type,
                                        admin_setup, admin_teardown),
        cmocka_unit_test_setup_teardown(admin_metrics_reflect_counters_at_request_time, admin_setup,
                                        admin_teardown),
        cmocka_unit_test_setup_teardown(admin_keeps_the_connection_alive_between_requests,
                                        admin_setup, admin_teardown),
        cmocka_unit_test_setup_teardown(admin_readyz_is_503_until_set_ready, admin_setup,
                                        admin_teardown),
        cmocka_unit_test_setup_teardown(admin_livez_and_healthz_answer_ok_before_ready, admin_setup,
                                        admin_teardown),
        cmocka_unit_test_setup_teardown(admin_unknown_path_is_404, admin_setup, admin_teardown),
        cmocka_unit_test_setup_teardown(admin_query_string_does_not_change_the_route, admin_setup,
                                        admin_teardown),
        cmocka_unit_test_setup_teardown(admin_post_is_405_with_allow_header, admin_setup,
                                        admin_teardown),
        cmocka_unit_test_setup_teardown(admin_head_answers_without_body, admin_setup,
                                        admin_teardown),
        cmocka_unit_test_setup_teardown(admin_idle_server_lets_the_loop_sleep, admin_setup,
                                        admin_teardown),
        cmocka_unit_test(admin_start_rejects_malformed_listen),
        cmocka_unit_test(admin_start_reports_a_port_in_use),
        cmocka_unit_test(admin_stop_accepts_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
