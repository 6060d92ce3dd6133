/*
 * The sidecar's own diagnostics: one JSON object per line on stderr, so they
 * can be collected like the application's logs. Messages describe the
 * sidecar's state; record contents are never passed here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "logveil/log.h"
#include "logveil/util.h"

static enum lv_log_level min_level = LV_LOG_INFO;

void lv_log_set_level(enum lv_log_level level)
{
    min_level = level;
}

int lv_log_level_parse(const char *name, enum lv_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < LV_ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum lv_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Writes `s` as a JSON string body: quotes, backslashes and control bytes escaped. */
static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void lv_log(enum lv_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < min_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

    flockfile(stderr);
    fprintf(stderr, "{\"@timestamp\":\"%s.%03ldZ\",\"log.level\":\"%s\",\"log.logger\":\"logveil\",\"message\":\"",
            when, ts.tv_nsec / 1000000, names[level]);
    put_escaped(stderr, msg);
    fputs("\"}\n", stderr);
    funlockfile(stderr);
}
