/*
 * Level detection: the level of a record, whatever logger wrote it.
 *
 * One table of level words serves every place a level is read: JSON level
 * fields, logfmt keys and the head of a text line, and the level names of
 * the configuration. Words are matched case-insensitively ("WARNING",
 * "Warning" and "warn" are WARN). One table of fields says which JSON fields
 * hold a level and how a number in each is read: a field whose name ends in
 * "severity" holds a syslog severity (0-7), OpenTelemetry's severity_number
 * its SeverityNumber (1-24), any other a pino/bunyan level (10-60);
 * MongoDB's "s" holds one of its letters and nothing else. A text line is read by its head: a level word after a timestamp
 * or a bracketed thread ("12:00:00.123 [main] ERROR"), a klog/glog or Ruby
 * Logger letter, or the first line of a crash (a Java exception, a Go panic,
 * a Python traceback, a Node or .NET unhandled exception, a Ruby uncaught
 * exception), which is ERROR, or FATAL where the runtime says fatal or
 * panic. The README lists every word, field and shape.
 *
 * Nothing here allocates or keeps state. Every function reads a bounded
 * prefix of its input, except that lv_level_text() finds where the first
 * line ends and, on a joined record whose first line has no level, looks at
 * the start of each later line.
 */
#ifndef LOGVEIL_FILTERS_LEVEL_H
#define LOGVEIL_FILTERS_LEVEL_H

#include <stdbool.h>
#include <stddef.h>

#include "logveil/record.h"

/* How the value of a level field is read. Words are read the same way in
 * every kind; the kind decides numbers (and strings of digits). */
enum lv_level_kind {
    LV_LEVEL_PINO,   /* pino/bunyan: 10 TRACE, 20 DEBUG ... 60 FATAL */
    LV_LEVEL_SYSLOG, /* syslog severity: 0-2 FATAL, 3 ERROR ... 7 DEBUG */
    LV_LEVEL_PRESENT_INFO, /* the field's presence means INFO when no level
                              field says otherwise (Serilog's @mt and @m,
                              whose records leave @l out for Information) */
    LV_LEVEL_OTEL,  /* OpenTelemetry SeverityNumber: 1-4 TRACE, 5-8 DEBUG, 9-12
                       INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL */
    LV_LEVEL_MONGO, /* MongoDB's "s": F, E, W, I, D and D1-D5, and nothing else */
};

struct lv_level_field {
    const char *name; /* dotted path; matched case-insensitively */
    enum lv_level_kind kind;
};

/* The built-in level fields, in order (the default of sampling.level_fields). */
const struct lv_level_field *lv_level_fields(size_t *n);

/* The kind of a field given by name (sampling.level_fields): the table's,
 * else LV_LEVEL_SYSLOG for a name ending in "severity", else LV_LEVEL_PINO. */
enum lv_level_kind lv_level_kind_of(const char *name, size_t len);

/* The level a field's value (JSON string contents or number text) says;
 * UNKNOWN when it says none. */
enum lv_level lv_level_value(enum lv_level_kind kind, const char *s, size_t len);

/* The level of a text record: read from its first line (a line starting
 * with '{' is JSON that could not be parsed, read by its level keys); when
 * that says none and the record was joined from several lines, the first
 * later line that starts a crash (an exception line, "Caused by:", a
 * traceback). */
enum lv_level lv_level_text(const char *s, size_t len);

#endif
