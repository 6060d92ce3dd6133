/*
 * Level detection. Three tables hold all of it: the level words, the level
 * fields, and the crash lines of the common runtimes; the code around them
 * only finds where to look.
 *
 * Words are compared as two 64-bit words after folding to lower case, the
 * most frequent first, so the common "level":"INFO" costs a few
 * instructions in the JSON pass.
 *
 * A text line's head is read token by token (blank-separated): up to
 * HEAD_TOKENS tokens that can only come before a level (a date or time, a
 * pid, a bracketed thread name, a separator) are passed over; the first
 * other token either says the level or ends the search. So
 * "2024/01/05 12:00:00 [error] 7#7: ..." (nginx) and "12:00:00.123 [main]
 * ERROR c.e.App - ..." (logback) are read, and "Error handling is ..." is
 * ERROR, while "user reported an error" is not. A name between two equal
 * separators ("2024-01-05 12:00:00,123 - app.db - ERROR - ..", Python's
 * logging cookbook) is passed over too. When the head says nothing,
 * logfmt keys from the field table are looked for ("level=warn").
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "level.h"
#include "logveil/util.h"

/* ---- words --------------------------------------------------------------------- */

#define WORD_MAX 16

struct word {
    char text[WORD_MAX]; /* lower case, zero-padded */
    enum lv_level level;
    bool field_only; /* too common in prose to be read at the head of a text
                        line ("http: TLS handshake error ...") */
};

/* Lower case. The words records carry most come first. */
#define WORD(text, level) {text, level, false}
#define FIELD_WORD(text, level) {text, level, true}
static const struct word words[] = {
    WORD("info", LV_LEVEL_INFO),
    WORD("debug", LV_LEVEL_DEBUG),
    WORD("warn", LV_LEVEL_WARN),
    WORD("error", LV_LEVEL_ERROR),
    WORD("warning", LV_LEVEL_WARN),
    WORD("trace", LV_LEVEL_TRACE),
    WORD("fatal", LV_LEVEL_FATAL),
    WORD("information", LV_LEVEL_INFO), /* .NET, Serilog */
    WORD("err", LV_LEVEL_ERROR),        /* syslog, zerolog console, Serilog u3 */
    WORD("critical", LV_LEVEL_FATAL),   /* Python, .NET, syslog */
    WORD("notice", LV_LEVEL_INFO),      /* syslog, nginx */
    WORD("verbose", LV_LEVEL_TRACE),    /* Serilog, Android: below DEBUG */
    WORD("panic", LV_LEVEL_FATAL),      /* Go: zap, logrus, zerolog */
    WORD("dpanic", LV_LEVEL_ERROR),     /* zap: panics in development only */
    WORD("crit", LV_LEVEL_FATAL),
    WORD("alert", LV_LEVEL_FATAL),
    WORD("emerg", LV_LEVEL_FATAL),
    WORD("emergency", LV_LEVEL_FATAL),
    WORD("informational", LV_LEVEL_INFO),
    WORD("severe", LV_LEVEL_ERROR), /* java.util.logging */
    WORD("fine", LV_LEVEL_DEBUG),
    WORD("finer", LV_LEVEL_TRACE),
    WORD("finest", LV_LEVEL_TRACE),
    WORD("silly", LV_LEVEL_TRACE), /* winston */
    WORD("fail", LV_LEVEL_ERROR),  /* Microsoft.Extensions.Logging console */
    FIELD_WORD("http", LV_LEVEL_INFO), /* winston: between info and verbose */
    /* Three- and four-letter forms: the zerolog and Serilog consoles,
     * log15, logrus on a terminal, .NET's simple console. */
    WORD("trc", LV_LEVEL_TRACE),
    WORD("dbg", LV_LEVEL_DEBUG),
    WORD("inf", LV_LEVEL_INFO),
    WORD("wrn", LV_LEVEL_WARN),
    WORD("ftl", LV_LEVEL_FATAL),
    WORD("vrb", LV_LEVEL_TRACE),
    WORD("pnc", LV_LEVEL_FATAL),
    WORD("trce", LV_LEVEL_TRACE),
    WORD("dbug", LV_LEVEL_DEBUG),
    WORD("eror", LV_LEVEL_ERROR),
    WORD("trac", LV_LEVEL_TRACE),
    WORD("debu", LV_LEVEL_DEBUG),
    WORD("erro", LV_LEVEL_ERROR),
    WORD("fata", LV_LEVEL_FATAL),
    WORD("pani", LV_LEVEL_FATAL),
};
#undef WORD
#undef FIELD_WORD

static bool is_letter(unsigned char c)
{
    c |= 0x20;
    return c >= 'a' && c <= 'z';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The table's entry for the word s, or NULL. */
static const struct word *find_word(const char *s, size_t len)
{
    char folded[WORD_MAX] = {0};
    if (len == 0 || len >= WORD_MAX)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (!is_letter((unsigned char)s[i]))
            return NULL;
        folded[i] = (char)(s[i] | 0x20);
    }
    uint64_t lo = load64(folded), hi = load64(folded + 8);
    for (size_t i = 0; i < LV_ARRAY_LEN(words); i++)
        if (load64(words[i].text) == lo && load64(words[i].text + 8) == hi)
            return &words[i];
    return NULL;
}

enum lv_level lv_level_parse(const char *s, size_t len)
{
    const struct word *w = find_word(s, len);
    return w ? w->level : LV_LEVEL_UNKNOWN;
}

const char *lv_level_name(enum lv_level level)
{
    static const char *const names[LV_LEVEL_COUNT] = {"UNKNOWN", "TRACE", "DEBUG", "INFO",
                                                      "WARN",    "ERROR", "FATAL"};
    return (unsigned)level < LV_LEVEL_COUNT ? names[level] : "UNKNOWN";
}

/* ---- numbers --------------------------------------------------------------------- */

/* Up to nine digits and nothing else: the value; else -1. */
static long digits_value(const char *s, size_t len)
{
    if (len == 0 || len > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* pino/bunyan: 10 TRACE, 20 DEBUG, 30 INFO, 40 WARN, 50 ERROR, 60 FATAL. A
 * custom level between two takes the lower one (pino's customLevels); above
 * 60 is FATAL. */
static enum lv_level pino_level(long n)
{
    if (n < 10)
        return LV_LEVEL_UNKNOWN;
    if (n >= 60)
        return LV_LEVEL_FATAL;
    return (enum lv_level)(LV_LEVEL_TRACE + n / 10 - 1);
}

/* RFC 5424: 0 emerg, 1 alert, 2 crit, 3 err, 4 warning, 5 notice, 6 info,
 * 7 debug, mapped as the words are. */
static enum lv_level syslog_level(long n)
{
    static const enum lv_level severities[8] = {
        LV_LEVEL_FATAL, LV_LEVEL_FATAL, LV_LEVEL_FATAL, LV_LEVEL_ERROR,
        LV_LEVEL_WARN,  LV_LEVEL_INFO,  LV_LEVEL_INFO,  LV_LEVEL_DEBUG,
    };
    return n >= 0 && n < 8 ? severities[n] : LV_LEVEL_UNKNOWN;
}

/* slog names a level between its own by the one below and an offset
 * ("ERROR+2", "INFO+1"); below DEBUG it counts down ("DEBUG-4"), which is
 * TRACE. */
static enum lv_level offset_level(const char *s, size_t len)
{
    size_t i = len;
    while (i > 0 && is_digit(s[i - 1]))
        i--;
    if (i == len || i < 2 || (s[i - 1] != '+' && s[i - 1] != '-'))
        return LV_LEVEL_UNKNOWN;
    enum lv_level base = lv_level_parse(s, i - 1);
    if (base == LV_LEVEL_UNKNOWN || s[i - 1] == '+')
        return base;
    return base > LV_LEVEL_TRACE ? (enum lv_level)(base - 1) : LV_LEVEL_TRACE;
}

/* OpenTelemetry's log data model: four numbers per level, TRACE (1-4) to
 * FATAL (21-24). */
static enum lv_level otel_level(long n)
{
    return n >= 1 && n <= 24 ? (enum lv_level)(LV_LEVEL_TRACE + (n - 1) / 4) : LV_LEVEL_UNKNOWN;
}

/* MongoDB's structured log ("s"): one letter, a debug verbosity after D.
 * Only these: "s" is too short a name to read words from. */
static enum lv_level mongo_level(const char *s, size_t len)
{
    static const char letters[] = "FEWID";
    static const enum lv_level levels[] = {LV_LEVEL_FATAL, LV_LEVEL_ERROR, LV_LEVEL_WARN,
                                           LV_LEVEL_INFO, LV_LEVEL_DEBUG};
    const char *at = len ? memchr(letters, s[0], sizeof letters - 1) : NULL;
    if (!at || (len > 1 && (s[0] != 'D' || len != 2 || s[1] < '1' || s[1] > '5')))
        return LV_LEVEL_UNKNOWN;
    return levels[at - letters];
}

enum lv_level lv_level_value(enum lv_level_kind kind, const char *s, size_t len)
{
    if (kind == LV_LEVEL_PRESENT_INFO)
        return LV_LEVEL_INFO;
    if (kind == LV_LEVEL_MONGO)
        return mongo_level(s, len);
    enum lv_level l = lv_level_parse(s, len);
    if (l != LV_LEVEL_UNKNOWN || len == 0)
        return l;
    if (is_digit(s[0])) {
        long n = digits_value(s, len);
        return kind == LV_LEVEL_SYSLOG ? syslog_level(n)
               : kind == LV_LEVEL_OTEL ? otel_level(n)
                                       : pino_level(n);
    }
    return offset_level(s, len);
}

/* ---- fields ------------------------------------------------------------------------ */

/* Matched case-insensitively, so "Level" (Serilog's JSON formatter) and
 * "LogLevel" (Microsoft.Extensions.Logging's JSON console) are here too. */
static const struct lv_level_field fields[] = {
    {"level", LV_LEVEL_PINO},              /* pino, bunyan, winston, logrus, zap, zerolog,
                                              slog, log4j2, logback, structlog */
    {"log.level", LV_LEVEL_PINO},          /* ECS */
    {"severity", LV_LEVEL_SYSLOG},         /* Google Cloud Logging, syslog bridges */
    {"levelname", LV_LEVEL_PINO},          /* python-json-logger */
    {"loglevel", LV_LEVEL_PINO},           /* .NET JSON console */
    {"lvl", LV_LEVEL_PINO},                /* log15, go-kit */
    {"@l", LV_LEVEL_PINO},                 /* Serilog compact JSON */
    {"syslog.severity", LV_LEVEL_SYSLOG},
    {"@mt", LV_LEVEL_PRESENT_INFO},        /* Serilog compact JSON leaves @l out */
    {"@m", LV_LEVEL_PRESENT_INFO},         /*   for Information */
    {"severity_number", LV_LEVEL_OTEL},    /* OpenTelemetry's log data model, as its */
    {"severityNumber", LV_LEVEL_OTEL},     /*   SDKs' console exporters write it */
    {"severity_text", LV_LEVEL_PINO},
    {"severityText", LV_LEVEL_PINO},
    {"s", LV_LEVEL_MONGO},                 /* MongoDB 4.4+ structured log */
};

const struct lv_level_field *lv_level_fields(size_t *n)
{
    *n = LV_ARRAY_LEN(fields);
    return fields;
}

static bool same_name(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* The table's kind for a name; false when the name is not in it. */
static bool table_kind(const char *name, size_t len, enum lv_level_kind *kind)
{
    for (size_t i = 0; i < LV_ARRAY_LEN(fields); i++) {
        if (same_name(name, len, fields[i].name)) {
            *kind = fields[i].kind;
            return true;
        }
    }
    return false;
}

enum lv_level_kind lv_level_kind_of(const char *name, size_t len)
{
    enum lv_level_kind kind;
    if (table_kind(name, len, &kind))
        return kind;
    if (len >= 8 && strncasecmp(name + len - 8, "severity", 8) == 0)
        return LV_LEVEL_SYSLOG;
    return LV_LEVEL_PINO;
}

/* ---- text: crashes ------------------------------------------------------------------- */

/* The first line of a crash report, matched case-insensitively where a
 * token starts. Exception class lines ("java.lang.IllegalStateException:
 * boom", "ValueError: x") are told by their shape; see exception_line(). */
static const struct {
    const char *text;
    enum lv_level level;
} crashes[] = {
    {"Exception in thread ", LV_LEVEL_ERROR},        /* Java, Kotlin: uncaught */
    {"Caused by: ", LV_LEVEL_ERROR},                 /* Java: a cause, when not joined */
    {"Traceback (most recent call last):", LV_LEVEL_ERROR}, /* Python */
    {"panic: ", LV_LEVEL_FATAL},                     /* Go: an unrecovered panic */
    {"fatal error: ", LV_LEVEL_FATAL},               /* Go runtime: deadlock, map race */
    {"Uncaught", LV_LEVEL_ERROR},                    /* Node: "Uncaught TypeError: ..",
                                                        "uncaughtException: .." */
    {"UnhandledPromiseRejection", LV_LEVEL_ERROR},   /* Node: "[UnhandledPromiseRejection:
                                                        ..", "..Warning: .." (Node < 15) */
    {"Unhandled exception", LV_LEVEL_ERROR},         /* .NET: "Unhandled exception. System.X" */
};

static bool starts_with(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && strncasecmp(s, prefix, n) == 0;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static bool class_char(char c)
{
    return is_letter((unsigned char)c) || is_digit(c) || c == '_' || c == '$' || c == '.';
}

/* A class name ending in Exception or Error, then ':' or the end of the
 * line: how Java, Kotlin, Python, Node and .NET print the exception itself. */
static bool exception_line(const char *s, size_t len)
{
    size_t i = 0;
    if (len == 0 || is_digit(s[0]) || s[0] == '.')
        return false;
    while (i < len && class_char(s[i]))
        i++;
    if (i < len && s[i] != ':')
        return false;
    return ends_with(s, i, "Exception") || ends_with(s, i, "Error");
}

/* A crash report starting at s (the rest of a line); UNKNOWN if none. */
static enum lv_level crash_level(const char *s, size_t len)
{
    for (size_t i = 0; i < LV_ARRAY_LEN(crashes); i++)
        if (starts_with(s, len, crashes[i].text))
            return crashes[i].level;
    return exception_line(s, len) ? LV_LEVEL_ERROR : LV_LEVEL_UNKNOWN;
}

/* ---- text: the head of a line ---------------------------------------------------------- */

#define HEAD_TOKENS 6   /* tokens passed over before giving up */
#define HEAD_BYTES 160  /* where the level must start */
#define TOKEN_MAX 256   /* a token longer than this says nothing */
#define LOGFMT_BYTES 1024

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static bool is_opener(char c)
{
    return c == '[' || c == '(' || c == '<';
}

static bool is_closer(char c)
{
    return c == ']' || c == ')' || c == '>';
}

/* What may follow a level word inside its token: "ERROR:root:..", "[INFO]",
 * "EROR[01-05|..]", an SGR colour sequence. */
static bool ends_word(char c)
{
    return c == ':' || c == ']' || c == ')' || c == '>' || c == '[' || c == '|' || c == ',' ||
           c == '\x1b';
}

/* Past the SGR colour sequences ("\x1b[31m") at the start of s. */
static size_t past_colour(const char *s, size_t len)
{
    size_t i = 0;
    while (i + 2 < len && s[i] == '\x1b' && s[i + 1] == '[') {
        size_t j = i + 2;
        while (j < len && (is_digit(s[j]) || s[j] == ';'))
            j++;
        if (j == len || s[j] != 'm')
            break;
        i = j + 1;
    }
    return i;
}

/* The letters klog/glog and Ruby's Logger start a line with, in level
 * order from TRACE. */
static enum lv_level letter_level(char c)
{
    static const char letters[] = "TDIWEF";
    const char *at = c ? memchr(letters, c, sizeof letters - 1) : NULL;
    return at ? (enum lv_level)(LV_LEVEL_TRACE + (at - letters)) : LV_LEVEL_UNKNOWN;
}

/* Ruby's uncaught exception: "app.rb:3:in `div': divided by 0
 * (ZeroDivisionError)": a first token path:line:in, a line ending in the
 * class in parentheses. */
static bool ruby_uncaught(const char *s, size_t tok, size_t n)
{
    if (tok < 6 || !ends_with(s, tok, ":in") || !is_digit(s[tok - 4]))
        return false;
    size_t i = tok - 4;
    while (i > 0 && is_digit(s[i - 1]))
        i--;
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    return i > 1 && s[i - 1] == ':' && n > 0 && s[n - 1] == ')';
}

/* Shapes that only ever start a line: klog/glog "E1205 12:00:00.000000 1
 * x.go:10] ..", Ruby's Logger "E, [2024-01-05T12:00:00.1 #1] ERROR -- ..",
 * a Ruby uncaught exception. */
static enum lv_level line_start_level(const char *s, size_t n, size_t tok)
{
    if (tok == 5 && n >= 14 && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
        is_digit(s[4]) && s[5] == ' ' && is_digit(s[6]) && is_digit(s[7]) && s[8] == ':')
        return letter_level(s[0]);
    if (tok == 2 && n >= 4 && s[1] == ',' && s[2] == ' ' && s[3] == '[')
        return letter_level(s[0]);
    return ruby_uncaught(s, tok, n) ? LV_LEVEL_ERROR : LV_LEVEL_UNKNOWN;
}

/* A level word, a crash, or nothing, at the token [s, s + tok) with `rest`
 * bytes to the end of the line. */
static enum lv_level token_level(const char *s, size_t tok, size_t rest)
{
    size_t o = past_colour(s, tok);
    while (o < tok && is_opener(s[o]))
        o++;
    enum lv_level l = crash_level(s + o, rest - o);
    if (l != LV_LEVEL_UNKNOWN)
        return l;
    size_t w = o;
    while (w < tok && is_letter((unsigned char)s[w]))
        w++;
    if (w == o || (w < tok && !ends_word(s[w])))
        return LV_LEVEL_UNKNOWN;
    const struct word *word = find_word(s + o, w - o);
    return word && !word->field_only ? word->level : LV_LEVEL_UNKNOWN;
}

/* A token that comes before a level: it starts with a digit (after
 * brackets or a sign: a date, a time, a zone offset, a pid), is bracketed
 * whole ("[main]", "(node:1234)"), is a separator ("-", "|", "--") or UTC. */
static bool before_level(const char *s, size_t tok)
{
    size_t i = past_colour(s, tok);
    while (i < tok && (is_opener(s[i]) || s[i] == '+' || s[i] == '-'))
        i++;
    if (i < tok && is_digit(s[i]))
        return true;
    if (i == tok) /* only brackets and signs: a separator */
        return true;
    size_t e = tok;
    if (e > 2 && s[e - 1] == ':')
        e--;
    if (e >= 2 && is_opener(s[0]) && is_closer(s[e - 1]))
        return true;
    return (tok == 1 && (s[0] == '|' || s[0] == ':')) || (tok == 3 && starts_with(s, 3, "UTC"));
}

static bool is_separator(const char *s, size_t tok)
{
    return tok == 1 && (s[0] == '-' || s[0] == '|');
}

/* A logger name: letters, digits and . _ : / $ - ("myapp", "app.db",
 * "uvicorn.error", "main.py:42"). */
static bool name_token(const char *s, size_t tok)
{
    for (size_t i = 0; i < tok; i++)
        if (!is_letter((unsigned char)s[i]) && !is_digit(s[i]) && !strchr("._:/$-", s[i]))
            return false;
    return tok > 0;
}

/* Whether the token after [p, e) is the separator `sep`. */
static bool separator_follows(const char *s, size_t e, size_t n, char sep)
{
    while (e < n && is_blank(s[e]))
        e++;
    return e + 1 < n && s[e] == sep && is_blank(s[e + 1]);
}

static enum lv_level head_level(const char *s, size_t n)
{
    size_t p = 0, limit = n < HEAD_BYTES ? n : HEAD_BYTES;
    char sep = 0; /* the previous token, when it was a separator */
    for (int t = 0; t < HEAD_TOKENS; t++) {
        while (p < limit && is_blank(s[p]))
            p++;
        if (p >= limit)
            break;
        size_t e = p, end = n - p < TOKEN_MAX ? n : p + TOKEN_MAX;
        while (e < end && !is_blank(s[e]))
            e++;
        enum lv_level l = p == 0 ? line_start_level(s, n, e) : LV_LEVEL_UNKNOWN;
        if (l == LV_LEVEL_UNKNOWN)
            l = token_level(s + p, e - p, n - p);
        if (l != LV_LEVEL_UNKNOWN || e == end)
            return l;
        /* Python's logging cookbook puts the logger's name between two
         * separators before the level: "%(asctime)s - %(name)s -
         * %(levelname)s - %(message)s". */
        bool named = sep && name_token(s + p, e - p) && separator_follows(s, e, n, sep);
        if (!named && !before_level(s + p, e - p))
            return l;
        sep = is_separator(s + p, e - p) ? s[p] : 0;
        p = e;
    }
    return LV_LEVEL_UNKNOWN;
}

/* The level a key's value at v says: a quoted value up to the next quote,
 * else up to a blank (or, in JSON, a ',', '}' or ']'). */
static enum lv_level keyed_value(enum lv_level_kind kind, const char *v, const char *end,
                                 bool json)
{
    const char *ve;
    if (v < end && *v == '"') {
        v++;
        ve = memchr(v, '"', (size_t)(end - v));
        if (!ve)
            ve = end;
    } else {
        for (ve = v; ve < end && !is_blank(*ve); ve++)
            if (json && (*ve == ',' || *ve == '}' || *ve == ']'))
                break;
    }
    return lv_level_value(kind, v, (size_t)(ve - v));
}

/* logfmt: "time=.. level=warn msg=..", the keys from the field table. */
static enum lv_level logfmt_level(const char *s, size_t n)
{
    const char *p = s, *end = s + (n < LOGFMT_BYTES ? n : LOGFMT_BYTES);
    const char *eq;
    while ((eq = memchr(p, '=', (size_t)(end - p))) != NULL) {
        const char *k = eq;
        while (k > s && !is_blank(k[-1]))
            k--;
        enum lv_level_kind kind;
        p = eq + 1;
        if (k == eq || !table_kind(k, (size_t)(eq - k), &kind) || kind == LV_LEVEL_PRESENT_INFO)
            continue;
        enum lv_level l = keyed_value(kind, p, s + n, false);
        if (l != LV_LEVEL_UNKNOWN)
            return l;
    }
    return LV_LEVEL_UNKNOWN;
}

/* A JSON record that could not be parsed (cut at limits.max_line, or
 * malformed) is shipped as text: its level is read from the "key": value
 * pairs near its start, a key from the field table by its own name, at any
 * depth ("level" in {"log":{"level":..}} too). */
static enum lv_level json_text_level(const char *s, size_t n)
{
    const char *p = s, *end = s + (n < LOGFMT_BYTES ? n : LOGFMT_BYTES);
    const char *colon;
    enum lv_level implied = LV_LEVEL_UNKNOWN;
    while ((colon = memchr(p, ':', (size_t)(end - p))) != NULL) {
        const char *q = colon; /* just past the key's closing quote */
        p = colon + 1;
        while (q > s && is_blank(q[-1]))
            q--;
        if (q == s || q[-1] != '"')
            continue;
        const char *k = q - 1;
        while (k > s && k[-1] != '"')
            k--;
        enum lv_level_kind kind;
        if (k == s || !table_kind(k, (size_t)(q - 1 - k), &kind))
            continue;
        const char *v = p;
        while (v < s + n && is_blank(*v))
            v++;
        enum lv_level l = keyed_value(kind, v, s + n, true);
        if (kind == LV_LEVEL_PRESENT_INFO)
            implied = l;
        else if (l != LV_LEVEL_UNKNOWN)
            return l;
    }
    return implied;
}

/* A joined record whose first line says nothing: the first later line that
 * starts a crash ("java.lang.X: boom" after "2024-01-05 12:00:00 request
 * failed", a traceback after Python's "During handling ..."). */
static enum lv_level later_crash(const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        enum lv_level l = crash_level(p, n);
        if (l != LV_LEVEL_UNKNOWN || !nl)
            return l;
        p = nl + 1;
    }
    return LV_LEVEL_UNKNOWN;
}

enum lv_level lv_level_text(const char *s, size_t len)
{
    const char *nl = memchr(s, '\n', len);
    size_t n = nl ? (size_t)(nl - s) : len, b = 0;
    while (b < n && is_blank(s[b]))
        b++;
    enum lv_level l;
    if (b < n && s[b] == '{')
        l = json_text_level(s + b, n - b);
    else if ((l = head_level(s, n)) == LV_LEVEL_UNKNOWN)
        l = logfmt_level(s, n);
    if (l == LV_LEVEL_UNKNOWN && nl)
        l = later_crash(nl + 1, len - n - 1);
    return l;
}
