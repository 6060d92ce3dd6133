/*
 * Redaction rules and the conservative pre-scan.
 *
 * The pre-scan looks for every key rule word and every value-rule hint in
 * the line's normalised stream (lower case, '_', '-' and '.' skipped: what
 * keys become), so a key whose normalised form contains a rule word, or a
 * string holding a rule's hint, cannot go unnoticed. It works in three
 * steps: the vectorised prefilter (prefilter.c) marks the positions where a
 * word may start, a table of folded raw trigrams narrows them, and each
 * remaining position is checked word by word. The words it finds, and where,
 * are kept (struct lv_scan) so that the JSON pass checks a key or a string
 * only when a hit lies inside it. A backslash anywhere makes the whole line
 * a candidate, because escapes let decoded text differ from the raw bytes.
 *
 * Value rules are compiled once, in byte mode (log lines are not guaranteed
 * to be UTF-8), and JIT-compiled. They all run on the original text and
 * their matches are merged before anything is replaced.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>

#include "json_text.h"
#include "json_write.h"
#include "logveil/metrics.h"
#include "nested.h"
#include "prefilter.h"
#include "pseudonym.h"
#include "redact.h"

#define MAX_RULES 64
#define MAX_WORDS 256
#define MAX_SPANS (1u << 20)
#define KEY_TARGET 0xff
/* Text decoded from a string, and decoded again: JSON serialised into a
 * string up to this many times is read as JSON. */
#define NEST_LEVELS 6

struct vrule {
    char *name;
    pcre2_code *re;
    char **hints; /* normalised */
    size_t nhints;
    int group;
    enum lv_action action;
    char *replacement;
    uint64_t *hits;
    bool partial_jit;
    char needs;       /* a character every match holds, or 0 */
};

struct krule {
    char *word; /* normalised */
    size_t len;
    bool exact;
    enum lv_action action;
    char *replacement;
    uint64_t *hits;
};

/* A literal the pre-scan looks for, and what finding it means: the value
 * rules it hints at, and whether it is a key rule's word. */
struct word {
    const char *text;
    size_t len;
    uint64_t rules;
    bool keys;
    bool exact; /* of an "exact" key rule: only found alone between
                   separators and non-word characters */
};

/* Text decoded from the text above it, with the place in that text of each
 * decoded byte. */
struct nest_level {
    struct lv_buf text;
    uint32_t *map;
    size_t mapcap;
};

/* A string of nested JSON with escapes, waiting to be decoded. */
struct nest_string {
    size_t start, end;
    bool open; /* the text ends inside it */
};

struct lv_redactor {
    struct krule keys[MAX_RULES];
    size_t nkeys;
    uint64_t first_contains[256]; /* "contains" key rules by their word's first byte */
    uint64_t exact_keys;          /* the "exact" key rules */
    size_t min_key_len;
    struct vrule rules[MAX_RULES];
    size_t nrules;
    uint64_t all_rules;    /* one bit per rule */
    uint64_t always_rules; /* rules without hints */
    uint64_t pair_bit;     /* the key=value rule's bit */
    struct word words[MAX_WORDS];
    size_t nwords;
    uint16_t first[256];       /* 1 + index of the last word starting with a byte */
    uint16_t next[MAX_WORDS];  /* 1 + index of the previous such word, 0 ends */
    uint8_t gram3[1 << 15]; /* hashed folded raw trigrams that may start a word */
    struct lv_prefilter *pf; /* positions worth a look, 64 at a time */
    bool vector;             /* pf has a vector implementation on this CPU */
    struct lv_scan always;     /* what every scan reports (short words) */
    char *replacement;
    struct lv_pseudonym *pseudonyms; /* NULL: no key, action hash fails closed */
    struct lv_buf policy;  /* the rules in order, one line each (lv_redact_policy) */
    char digest[9];
    pcre2_match_data *md;
    struct lv_buf scratch; /* the rewritten string */
    struct lv_buf keybuf;
    struct span *spans; /* what to replace in the string being redacted */
    size_t nspans, capspans;
    struct lv_buf reps;  /* fixed replacements of spans */
    struct lv_nested *nested;
    struct nest_level levels[NEST_LEVELS];
    struct nest_string *strs;
    size_t nstrs, capstrs;
};

/* Normalised form of each byte; 0 for the separators that vanish. */
static unsigned char norm_table[256];

static void init_norm_table(void)
{
    for (int c = 0; c < 256; c++)
        norm_table[c] = (unsigned char)tolower(c);
    norm_table['_'] = norm_table['-'] = norm_table['.'] = 0;
    norm_table[0] = 1; /* NUL is not a separator: keep it distinct */
}

size_t lv_redact_normalise(const char *key, size_t len, char *dst, size_t cap)
{
    /* Callable before any redactor exists (the configuration, tests). */
    if (LV_UNLIKELY(!norm_table['a']))
        init_norm_table();
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = norm_table[(unsigned char)key[i]];
        if (!c)
            continue;
        if (n == cap)
            return cap + 1;
        dst[n++] = (char)c;
    }
    return n;
}

/* ---- built-in value rules ---------------------------------------------- */

struct builtin {
    const char *name;
    const char *pattern;
    const char *hints[12];
    int group;
    char needs; /* a character every match holds: without it the rule is not run */
};

/* Each rule with an example of what it masks (in brackets). */
static const struct builtin builtins[] = {
    /* "Authorization: Bearer [eyJhbGciOi...]", "basic [dXNlcjpwYXNz]": a
     * lower-case "basic" only before a credential-looking word (an upper-case
     * letter, a digit, '+', '/' or '='), so prose about basic auth survives. */
    {"bearer", "\\b(?:(?i:bearer)|Basic|BASIC|(?i:basic)(?=\\s+[A-Za-z0-9+/]*[A-Z0-9+/=]))\\s+(?!(?i:bearer|basic)\\b)([A-Za-z0-9._~+/=-]{6,})",
     {"bearer", "basic"}, 1, 0},
    /* "[eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig]". From the start of the
     * base64url word that holds "eyJ" (a lookahead finds it), not from each
     * "eyJ": "eyJ-eyJ-eyJ-..." was quadratic. */
    {"jwt",
     "(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*?(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]{4})"
     "[A-Za-z0-9_-]*+\\.[A-Za-z0-9_-]{4,}+\\.[A-Za-z0-9_-]*+",
     {"eyj"}, 0, '.'},
    /* "[AKIAIOSFODNN7EXAMPLE]". Access key ids only: AKIA (long-term) and
     * ASIA (temporary). The other four-letter prefixes (AIDA, AROA, ...)
     * name users and roles; they are not credentials, and matching them
     * costs every line with "span_id". */
    {"aws_access_key_id", "(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
     {"akia", "asia"}, 0, 0},
    /* "[-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE
     * KEY-----]", or to the end of the text without its END line. */
    {"private_key",
     "-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?:-----)?[\\s\\S]*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|$)",
     {"begin"}, 0, '-'},
    /* "[sk_live_4eC39HqLyjWDarjtT1zdp7dc]", also test and restricted keys. */
    {"stripe_key", "\\b[spr]k_(?:live|test)_[0-9A-Za-z]{10,}", {"sklive", "sktest", "pklive", "pktest", "rklive", "rktest"}, 0, '_'},
    /* Tokens with a documented prefix: GitHub "[ghp_16C7e42F292c6912E7710c838347Ae178B4a]"
     * (also gho_, ghs_, ghu_, ghr_ and "github_pat_..."), Slack
     * "[xoxb-1234-5678-AbCdEf]" (xoxa, xoxp, xoxo, xoxr, xoxs), Google API
     * keys "[AIzaSyA-1234567890abcdefghijklmnopqrs]", GitLab
     * "[glpat-xxxxxxxxxxxxxxxxxxxx]", npm "[npm_abcdefghijklmnopqrstuvwxyz0123456789]". */
    {"service_token",
     "(?<![A-Za-z0-9_])(?:gh[oprsu]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
     "|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{30,}|glpat-[0-9A-Za-z_-]{20,}"
     "|npm_[A-Za-z0-9]{30,})",
     {"ghp", "gho", "ghr", "ghs", "ghu", "githubpat", "xox", "aiza", "glpat", "npm"}, 0, 0},
    /* "postgres://app:[s3cret]@db:5432/orders": the password of URL userinfo. */
    {"url_userinfo", "(?i)\\b[a-z][a-z0-9+.-]*+://[^\\s:/?#@\\[\\]\"'<>]*+:([^\\s/?#@\"'<>]++)@",
     {"://"}, 1, '@'},
    /* "Authorization: Digest [username=\"bob\", response=\"6629f\"]",
     * "Proxy-Authorization: Negotiate [YII...]", "Cookie: [sid=31d4;
     * theme=dark]", "Set-Cookie: [id=a3fWa; Path=/]": the credentials after
     * the scheme, whatever the scheme, to the end of the line; a quote ends
     * them unless it opens a quoted parameter after '='. */
    {"credential_header",
     "(?i)(?<![A-Za-z0-9_-])(?:(?:proxy-)?authorization[ \\t]*+:[ \\t]*+"
     "(?:[A-Za-z][A-Za-z0-9._~+/-]*+[ \\t]++(?=[^\\s\"']))?|(?:set-)?cookie[ \\t]*+:[ \\t]*+)"
     "([^\\s\"'](?:[^\\r\\n\"']++|(?<==)\"[^\"\\r\\n]*+\")*+)",
     {"authorization", "cookie"}, 1, ':'},
};

/* A character of a pattern that matches it literally. */
static void append_char(struct lv_buf *b, unsigned char c)
{
    if (isalnum(c)) {
        lv_buf_putc(b, (char)c);
    } else {
        char esc[8];
        snprintf(esc, sizeof esc, "\\x%02x", c);
        lv_buf_append(b, esc, strlen(esc));
    }
}

/* "apikey" -> "a[_.-]*p[_.-]*i[_.-]*k[_.-]*e[_.-]*y": the word as it may be
 * written in text, before normalisation (which removes every separator, so
 * "p__assword" is a password key too). */
static void append_word_pattern(struct lv_buf *b, const char *word)
{
    for (const char *p = word; *p; p++) {
        if (p != word)
            lv_buf_puts(b, "[_.-]*");
        append_char(b, (unsigned char)*p);
    }
}

/* The words of the key rules with (exact) or without (contains) the
 * exact flag, as alternatives. */
static void append_words(struct lv_buf *b, const struct lv_redactor *r, bool exact)
{
    bool first = true;
    for (size_t i = 0; i < r->nkeys; i++) {
        if (r->keys[i].exact != exact)
            continue;
        if (!first)
            lv_buf_putc(b, '|');
        first = false;
        append_word_pattern(b, r->keys[i].word);
    }
}

static size_t exact_keys(const struct lv_redactor *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nkeys; i++)
        n += r->keys[i].exact;
    return n;
}

/* A bare key in text that a key rule matches: a "contains" word inside a
 * run of word characters and separators (matched from the start of the
 * run, a lookahead finding the word in it: starting at every '_', '-' or
 * '.' and scanning to the end made "a-a-a-..." quadratic, seconds for 40
 * KB), or an "exact" word alone between separators. `start` asserts where
 * a run may start. */
static void append_bare_key(struct lv_buf *b, const struct lv_redactor *r, const char *start)
{
    size_t nexact = exact_keys(r);
    lv_buf_puts(b, "(?:");
    if (nexact < r->nkeys) {
        lv_buf_append(b, start, strlen(start));
        lv_buf_puts(b, "(?=[A-Za-z0-9_.-]*?(?:");
        append_words(b, r, false);
        lv_buf_puts(b, "))[A-Za-z0-9_.-]*+");
    }
    if (nexact) {
        if (nexact < r->nkeys)
            lv_buf_putc(b, '|');
        lv_buf_append(b, start, strlen(start));
        lv_buf_puts(b, "[_.-]*+(?:");
        append_words(b, r, true);
        lv_buf_puts(b, ")[_.-]*+(?![A-Za-z0-9])");
    }
    lv_buf_putc(b, ')');
}

/* key=value, key: value, key => value, key%3Dvalue and "key":"value" pairs
 * whose key matches a key rule, in free text, URLs and JSON held inside
 * strings (once or twice serialised: "password\":\"x\"").
 *
 * The key is bare (with a subscript: "user[password]", "password[0]"), or
 * quoted, with any characters around a "contains" word ("'db password
 * (old)'"), the quote escaped or not. The value is capture group 1. */
static char *pair_pattern(const struct lv_redactor *r)
{
    struct lv_buf b;
    lv_buf_init(&b, 256, 0);
    lv_buf_puts(&b, "(?i)(?:");
    append_bare_key(&b, r, "(?:(?<![A-Za-z0-9_.-])|(?<=%2[27]))");
    lv_buf_puts(&b, "(?:[\\[(][A-Za-z0-9_.-]*+[\\])])?");
    /* Quoted keys are bounded (a lazy run over a long string would take
     * the JIT a frame a character). */
    static const char *const quotes[] = {"\"", "'"};
    for (size_t q = 0; q < 2 && exact_keys(r) < r->nkeys; q++) {
        lv_buf_puts(&b, "|\\\\*+");
        lv_buf_append(&b, quotes[q], 1);
        lv_buf_puts(&b, "(?=[^\r\n");
        lv_buf_append(&b, quotes[q], 1);
        lv_buf_puts(&b, "]{0,256}?(?:");
        append_words(&b, r, false);
        lv_buf_puts(&b, "))[^\r\n");
        lv_buf_append(&b, quotes[q], 1);
        lv_buf_puts(&b, "]{0,256}+");
        lv_buf_append(&b, quotes[q], 1);
    }
    /* The key's closing quote (escaped when serialised twice, or
     * URL-encoded) or bracket (PHP print_r), then ':', '=', '=>', or
     * URL-encoded. The value: quoted (escapes kept, closing quote optional
     * for cut lines), quoted with escaped quotes, a container up to the end
     * of the text (broken JSON is redacted to its end rather than risk a
     * nested secret; see find_spans), or a bare token after the
     * authorization scheme if there is one ("Bearer [x]"; the schemes of
     * IANA's registry and a few vendors'). A bare token ends at
     * a blank, quote, comma or bracket; '&' and ';' (and %26) end it only
     * where the next key=value starts ("?token=x&page=2"), so
     * "password=Tr0ub&3" is masked whole. */
    lv_buf_puts(&b, ")(?:\\\\*[\"'\\]]|%2[27])?\\s*(?:=>|[:=]|%3[ad])\\s*");
    /* A value that is already a replacement, left by an earlier rule, is
     * left alone: "[REDACTED]" would otherwise read as a container and take
     * the rest of the text ("id_token=[REDACTED]&state=x"). */
    lv_buf_puts(&b, "(?!(?:");
    for (const char *p = r->replacement; *p; p++)
        append_char(&b, (unsigned char)*p);
    /* Runs and repeats are possessive: a repeat of one character at a time
     * costs the JIT a frame per character, and a value of 2 KB overflowed
     * its stack (the record was withheld). */
    lv_buf_puts(&b, "|hmac:[A-Za-z0-9_.-]{1,32}:[0-9a-f]{8,64})(?:[\\s\"'&;,}\\]]|$))(?|"
                    "\"((?:[^\"\\\\]++|\\\\.)*+)\"?"
                    "|\\\\+\"((?:[^\"\\\\]++|\\\\++[^\"\\\\])*+)"
                    "|'((?:[^'\\\\]++|\\\\.)*+)'?"
                    "|([\\[{][\\s\\S]*)"
                    "|(?:(?:bearer|basic|digest|token|negotiate|ntlm|apikey|key|ssws|dpop|gnap|hoba|mutual"
                    "|oauth|privatetoken|concealed|vapid|scram-sha-1|scram-sha-256|aws4-hmac-sha256)\\s+)?"
                    "((?:[^\\s\"'&;,}\\]%]++|%(?!26[A-Za-z0-9_.\\[\\]-]+%3d)"
                    "|[&;](?![A-Za-z0-9_.\\[\\]-]+=))++))");
    lv_buf_putc(&b, '\0');
    return b.data;
}

/* Command-line flags whose name matches a key rule, with the value after a
 * blank or '=': "--password [hunter2]", "-token=[abc]", "--db-password
 * '[s3 cret]'". A value starting with '-' is the next flag. */
static char *flag_pattern(const struct lv_redactor *r)
{
    struct lv_buf b;
    lv_buf_init(&b, 256, 0);
    lv_buf_puts(&b, "(?i)(?<![A-Za-z0-9_-])--?+");
    append_bare_key(&b, r, "");
    lv_buf_puts(&b, "(?:=|[ \\t]++)(?!-)(\"[^\"]*+\"?|'[^']*+'?|[^\\s\"']++)");
    lv_buf_putc(&b, '\0');
    return b.data;
}

/* ---- construction ------------------------------------------------------- */

static char *normalised_copy(const char *s)
{
    size_t len = strlen(s);
    char *d = lv_xmalloc(len + 1);
    d[lv_redact_normalise(s, len, d, len)] = '\0';
    return d;
}


static void mark(struct lv_scan *scan, uint8_t target);

static void mark_word(struct word *w, uint8_t target)
{
    if (target == KEY_TARGET)
        w->keys = true;
    else
        w->rules |= 1ull << target;
}

/* The scan reads the raw bytes three at a time, folded to lower case by
 * OR 0x20 (which leaves digits, '-' and '.' alone and turns '_' into 0x7f).
 * A word occurring in the normalised stream starts at a raw byte w0 followed
 * by either w1 or a separator, then by w1, w2 or a separator: so marking
 * (w0 w1 w2), (w0 w1 S), (w0 S w1) and (w0 S S) for every separator S
 * catches it, whatever its case and separators. Words shorter than three
 * characters cannot be filtered this way: their target is always reported. */
/* 15 bits: one byte per entry keeps the table (32 KiB) in L1 and the test a
 * single load. */
static unsigned tri_hash(uint32_t w)
{
    return (w * 2654435761u) >> 17;
}

static void mark_trigram(struct lv_redactor *r, unsigned a, unsigned b, unsigned c)
{
    uint32_t w = (a | 0x20) | (b | 0x20) << 8 | (c | 0x20) << 16;
    r->gram3[tri_hash(w)] = 1;
}

/* Returns the word, or NULL when it cannot be filtered (too short, or no
 * room left): its target is then always reported. */
static struct word *add_word(struct lv_redactor *r, const char *text, uint8_t target, bool exact)
{
    static const unsigned char seps[] = {'_', '-', '.'};
    size_t len = strlen(text);
    const unsigned char *t = (const unsigned char *)text;
    /* One entry a text: found once, it marks every rule it hints at. */
    for (size_t i = 0; i < r->nwords; i++) {
        struct word *w = &r->words[i];
        if (w->exact == exact && w->len == len && memcmp(w->text, text, len) == 0) {
            mark_word(w, target);
            return w;
        }
    }
    if (len < 3 || r->nwords == MAX_WORDS) {
        mark(&r->always, target);
        return NULL;
    }
    struct word *w = &r->words[r->nwords];
    *w = (struct word){text, len, 0, false, exact};
    mark_word(w, target);
    r->next[r->nwords] = r->first[t[0]]; /* chain the words by first character */
    r->first[t[0]] = (uint16_t)++r->nwords;
    mark_trigram(r, t[0], t[1], t[2]);
    for (size_t i = 0; i < sizeof seps; i++) {
        mark_trigram(r, t[0], t[1], seps[i]);
        mark_trigram(r, t[0], seps[i], t[1]);
        for (size_t k = 0; k < sizeof seps; k++)
            mark_trigram(r, t[0], seps[i], seps[k]);
    }
    return w;
}



/* One rule of the policy: kind:name, match, action, replacement, pattern,
 * tab-separated (tabs and newlines in a field become spaces). */
static void put_field(struct lv_buf *b, const char *s)
{
    for (; *s; s++)
        lv_buf_putc(b, *s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s);
}

static void describe(struct lv_redactor *r, const char *rule, const char *match,
                     enum lv_action action, const char *replacement, const char *pattern)
{
    static const char *const actions[] = {"mask", "hash", "drop"};
    const char *fields[] = {rule, match, actions[action], replacement ? replacement : "", pattern};
    for (size_t i = 0; i < LV_ARRAY_LEN(fields); i++) {
        if (i)
            lv_buf_putc(&r->policy, '\t');
        put_field(&r->policy, fields[i]);
    }
    lv_buf_putc(&r->policy, '\n');
}

static int compile_rule(struct lv_redactor *r, const char *name, const char *pattern,
                        const char *const *hints, const bool *exact, size_t nhints, int group,
                        enum lv_action action, const char *replacement, char *err, size_t errlen)
{
    if (r->nrules == MAX_RULES) {
        snprintf(err, errlen, "too many value rules (at most %d)", MAX_RULES);
        return -EINVAL;
    }
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, errlen, "value rule %s: bad regular expression at offset %zu: %s", name,
                 (size_t)off, (char *)msg);
        return -EINVAL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    struct vrule *v = &r->rules[r->nrules];
    v->name = lv_xstrdup(name);
    v->re = re;
    v->group = group;
    v->action = action;
    v->replacement = replacement ? lv_xstrdup(replacement) : NULL;
    v->hints = nhints ? lv_xcalloc(nhints, sizeof *v->hints) : NULL;
    for (size_t i = 0; i < nhints; i++) {
        v->hints[v->nhints] = normalised_copy(hints[i]);
        if (v->hints[v->nhints][0])
            v->nhints++;
        else
            free(v->hints[v->nhints]);
    }
    if (nhints && v->nhints < nhints)
        v->nhints = 0; /* a hint of separators only proves nothing: always run */
    for (size_t i = 0; i < v->nhints; i++)
        add_word(r, v->hints[i], (uint8_t)r->nrules, exact && exact[i]);
    if (!v->nhints)
        r->always_rules |= 1ull << r->nrules;
    char counter[64], grp[16];
    snprintf(counter, sizeof counter, "value:%s", name);
    v->hits = lv_metrics_rule(counter);
    snprintf(grp, sizeof grp, "group=%d", group);
    describe(r, counter, grp, action, v->replacement, pattern);
    r->nrules++;
    return 0;
}

static void add_key_rules(struct lv_redactor *r, const struct lv_redact_conf *conf)
{
    r->min_key_len = SIZE_MAX;
    for (size_t i = 0; i < conf->nkeys && r->nkeys < MAX_RULES; i++) {
        struct krule *k = &r->keys[r->nkeys];
        k->word = normalised_copy(conf->keys[i].key);
        k->len = strlen(k->word);
        if (!k->len) {
            free(k->word);
            continue;
        }
        k->exact = conf->keys[i].match == LV_MATCH_EXACT;
        k->action = conf->keys[i].action;
        k->replacement = conf->keys[i].replacement ? lv_xstrdup(conf->keys[i].replacement) : NULL;
        char counter[64];
        snprintf(counter, sizeof counter, "key:%s", k->word);
        k->hits = lv_metrics_rule(counter);
        describe(r, counter, k->exact ? "exact" : "contains", k->action, k->replacement, "");
        add_word(r, k->word, KEY_TARGET, k->exact);
        if (k->exact)
            r->exact_keys |= 1ull << r->nkeys;
        else
            r->first_contains[(unsigned char)k->word[0]] |= 1ull << r->nkeys;
        if (k->len < r->min_key_len)
            r->min_key_len = k->len;
        r->nkeys++;
    }
}

/* The rules built from the key rules' words (hinted by those words, which
 * the pre-scan checks for "exact" rules as it does for keys). */
static int add_key_word_rule(struct lv_redactor *r, const char *name, char *pattern, int group,
                             enum lv_action action, char *err, size_t errlen)
{
    const char *words[MAX_RULES];
    bool exact[MAX_RULES];
    for (size_t i = 0; i < r->nkeys; i++) {
        words[i] = r->keys[i].word;
        exact[i] = r->keys[i].exact;
    }
    int rc = compile_rule(r, name, pattern, words, exact, r->nkeys, group, action, NULL, err,
                          errlen);
    free(pattern);
    return rc;
}

static int add_builtin_rules(struct lv_redactor *r, const struct lv_redact_conf *conf, char *err,
                             size_t errlen)
{
    for (size_t i = 0; i < LV_ARRAY_LEN(builtins); i++) {
        const struct builtin *b = &builtins[i];
        size_t nh = 0;
        while (nh < LV_ARRAY_LEN(b->hints) && b->hints[nh])
            nh++;
        if (compile_rule(r, b->name, b->pattern, b->hints, NULL, nh, b->group, conf->action, NULL, err,
                         errlen) < 0)
            return -EINVAL;
        r->rules[r->nrules - 1].needs = b->needs;
    }
    if (!r->nkeys)
        return 0;
    r->pair_bit = 1ull << r->nrules;
    if (add_key_word_rule(r, "key_value_pair", pair_pattern(r), 1, conf->action, err, errlen) < 0)
        return -EINVAL;
    if (add_key_word_rule(r, "command_line_flag", flag_pattern(r), 1, conf->action, err, errlen) < 0)
        return -EINVAL;
    r->rules[r->nrules - 1].needs = '-';
    return 0;
}

static int add_user_rules(struct lv_redactor *r, const struct lv_redact_conf *conf, char *err,
                          size_t errlen)
{
    for (size_t i = 0; i < conf->npatterns; i++) {
        const struct lv_value_rule *u = &conf->patterns[i];
        if (compile_rule(r, u->name ? u->name : "pattern", u->pattern,
                         (const char *const *)u->hints, NULL, u->nhints, u->group, u->action,
                         u->replacement, err, errlen) < 0)
            return -EINVAL;
    }
    return 0;
}

static void make_prefilter(struct lv_redactor *r)
{
    const char *texts[MAX_WORDS];
    size_t lens[MAX_WORDS];
    for (size_t i = 0; i < r->nwords; i++) {
        texts[i] = r->words[i].text;
        lens[i] = r->words[i].len;
    }
    r->pf = lv_prefilter_new(texts, lens, r->nwords);
    /* The portable prefilter is slower than the table walk it would save. */
    r->vector = strcmp(lv_prefilter_impl(r->pf), "scalar") != 0;
}

void lv_redact_plain_scan(struct lv_redactor *r, bool on)
{
    r->vector = !on && strcmp(lv_prefilter_impl(r->pf), "scalar") != 0;
}

/* What else decides a record's redacted text: the default replacement and
 * the pseudonyms' active key and length. Then the digest. */
static void finish_policy(struct lv_redactor *r, const struct lv_redact_conf *conf)
{
    char len[16];
    snprintf(len, sizeof len, "digits=%d", conf->hmac_length ? conf->hmac_length : 16);
    describe(r, "replacement", "", LV_ACTION_MASK, r->replacement, "");
    if (lv_pseudonym_nkeys(r->pseudonyms))
        describe(r, "hash_key", lv_pseudonym_key_id(r->pseudonyms, 0), LV_ACTION_HASH, len, "");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(r->policy.data, r->policy.len, md, &mdlen, EVP_sha256(), NULL);
    snprintf(r->digest, sizeof r->digest, "%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
}

const char *lv_redact_policy(const struct lv_redactor *r, size_t *len)
{
    *len = r->policy.len;
    return r->policy.data;
}

const char *lv_redact_policy_digest(const struct lv_redactor *r)
{
    return r->digest;
}

struct lv_redactor *lv_redact_new(const struct lv_redact_conf *conf, char *err, size_t errlen)
{
    if (!norm_table['a'])
        init_norm_table();
    struct lv_redactor *r = lv_xcalloc(1, sizeof *r);
    r->replacement = lv_xstrdup(conf->replacement ? conf->replacement : "[REDACTED]");
    r->pseudonyms = lv_pseudonym_new(conf);
    lv_buf_init(&r->policy, 4096, 0);
    add_key_rules(r, conf);
    if (conf->builtin_patterns && add_builtin_rules(r, conf, err, errlen) < 0)
        goto err;
    if (add_user_rules(r, conf, err, errlen) < 0)
        goto err;
    r->all_rules = r->nrules == 64 ? ~0ull : (1ull << r->nrules) - 1;
    finish_policy(r, conf);
    make_prefilter(r);
    r->md = pcre2_match_data_create(16, NULL);
    lv_buf_init(&r->scratch, 4096, 16u << 20);
    lv_buf_init(&r->keybuf, 256, 0);
    lv_buf_init(&r->reps, 256, 64u << 20);
    for (size_t i = 0; i < NEST_LEVELS; i++)
        lv_buf_init(&r->levels[i].text, 0, 0);
    r->nested = lv_nested_new(r);
    return r;
err:
    lv_redact_free(r);
    return NULL;
}

void lv_redact_free(struct lv_redactor *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nkeys; i++) {
        free(r->keys[i].word);
        free(r->keys[i].replacement);
    }
    for (size_t i = 0; i < r->nrules; i++) {
        struct vrule *v = &r->rules[i];
        pcre2_code_free(v->re);
        for (size_t h = 0; h < v->nhints; h++)
            free(v->hints[h]);
        free(v->hints);
        free(v->name);
        free(v->replacement);
    }
    pcre2_match_data_free(r->md);
    lv_prefilter_free(r->pf);
    free(r->spans);
    lv_buf_free(&r->scratch);
    lv_buf_free(&r->keybuf);
    lv_buf_free(&r->reps);
    for (size_t i = 0; i < NEST_LEVELS; i++) {
        lv_buf_free(&r->levels[i].text);
        free(r->levels[i].map);
    }
    free(r->strs);
    lv_nested_free(r->nested);
    lv_pseudonym_free(r->pseudonyms);
    lv_buf_free(&r->policy);
    free(r->replacement);
    free(r);
}

/* ---- pre-scan ------------------------------------------------------------ */

/* Does the normalised stream starting at raw position `at` begin with `w`? */
static const unsigned char *word_at(const unsigned char *p, const unsigned char *end,
                                    const struct word *w)
{
    size_t k = 0;
    for (; p < end && k < w->len; p++) {
        unsigned char c = norm_table[*p];
        if (!c)
            continue;
        if (c != (unsigned char)w->text[k])
            return NULL;
        k++;
    }
    return k == w->len ? p : NULL;
}

static bool is_word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* Is the word at [at, to) alone: separators, then a non-word byte (or a
 * URL-encoded quote, %22 or %27), on each side? What an "exact" key
 * rule's key must look like, raw, in the line. */
static bool word_alone(const unsigned char *start, const unsigned char *at,
                       const unsigned char *to, const unsigned char *end)
{
    while (at > start && !norm_table[at[-1]])
        at--;
    bool encoded_quote = at - start >= 3 && at[-3] == '%' && at[-2] == '2';
    if (at > start && is_word_byte(at[-1]) && !encoded_quote)
        return false;
    while (to < end && !norm_table[*to])
        to++;
    return to == end || !is_word_byte(*to);
}

static void mark(struct lv_scan *scan, uint8_t target)
{
    if (target == KEY_TARGET)
        scan->keys = true;
    else
        scan->rules |= 1ull << target;
}

static void mark_found(struct lv_scan *scan, const struct word *w)
{
    scan->rules |= w->rules;
    scan->keys |= w->keys;
}

/* Word `i` found at raw position `at`; its place is kept while hits fit. */
static void hit(const struct lv_redactor *r, struct lv_scan *scan, const unsigned char *at,
                size_t i)
{
    mark_found(scan, &r->words[i]);
    if (!scan->line)
        return;
    if (scan->nhits == LV_SCAN_HITS) {
        scan->line = NULL; /* too many to keep: strings are scanned again */
        return;
    }
    uint32_t pos = (uint32_t)(at - (const unsigned char *)scan->line);
    scan->hits[scan->nhits++] = (struct lv_scan_hit){pos, (uint16_t)i};
}

/* Verifies the words that may start at raw position `at` of the text
 * [start, end). */
static void check_words(const struct lv_redactor *r, const unsigned char *start,
                        const unsigned char *at, const unsigned char *end, struct lv_scan *scan)
{
    /* The second character of the normalised stream sorts out most of the
     * words that share the first. */
    const unsigned char *p = at + 1;
    while (p < end && !norm_table[*p])
        p++;
    if (p == end)
        return;
    unsigned char second = norm_table[*p];
    for (unsigned i = r->first[norm_table[*at]]; i; i = r->next[i - 1]) {
        const struct word *w = &r->words[i - 1];
        if ((unsigned char)w->text[1] != second)
            continue;
        const unsigned char *to = word_at(at, end, w);
        if (to && (!w->exact || word_alone(start, at, to, end)))
            hit(r, scan, at, i - 1);
    }
}

static uint32_t load_folded(const unsigned char *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof w);
    return w | 0x20202020u;
}

static bool gram_at(const struct lv_redactor *r, const unsigned char *p)
{
    uint32_t w = (uint32_t)(p[0] | 0x20) | (uint32_t)(p[1] | 0x20) << 8 | (uint32_t)(p[2] | 0x20) << 16;
    return r->gram3[tri_hash(w)];
}

/* The trigram table at every position. The last bytes are scanned from a
 * padded copy so that the loop can always load four. */
static void scan_every_position(const struct lv_redactor *r, const unsigned char *p, size_t len,
                                struct lv_scan *scan)
{
    const unsigned char *end = p + len;
    size_t i = 0;
    /* Six trigram positions from each eight-byte load. */
    for (; i + 8 <= len; i += 6) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        w |= 0x2020202020202020ull;
        for (unsigned k = 0; k < 6; k++)
            if (LV_UNLIKELY(r->gram3[tri_hash((uint32_t)(w >> (8 * k)) & 0xffffffu)]))
                check_words(r, p, p + i + k, end, scan);
    }
    for (; i + 4 <= len; i++) {
        uint32_t w = load_folded(p + i) & 0xffffffu;
        if (LV_UNLIKELY(r->gram3[tri_hash(w)]))
            check_words(r, p, p + i, end, scan);
    }
    unsigned char tail[8] = {0};
    size_t rest = len - i;
    memcpy(tail, p + i, rest);
    for (size_t k = 0; k + 3 <= rest; k++) {
        uint32_t w = load_folded(tail + k) & 0xffffffu;
        if (r->gram3[tri_hash(w)])
            check_words(r, p, p + i + k, end, scan);
    }
}

/* The trigram table only where the prefilter points, 64 positions at a
 * time; the last positions from a padded copy. */
static void scan_candidates(const struct lv_redactor *r, const unsigned char *p, size_t len,
                            struct lv_scan *scan)
{
    const unsigned char *end = p + len;
    size_t i = 0;
    for (; i + LV_PREFILTER_READ <= len; i += 64)
        for (uint64_t m = lv_prefilter_block(r->pf, p + i); m; m &= m - 1) {
            const unsigned char *at = p + i + __builtin_ctzll(m);
            if (gram_at(r, at))
                check_words(r, p, at, end, scan);
        }
    size_t rest = len - i; /* < LV_PREFILTER_READ */
    if (rest < 3)
        return;
    unsigned char tail[LV_PREFILTER_READ] = {0};
    memcpy(tail, p + i, rest);
    uint64_t m = lv_prefilter_block(r->pf, tail) & ((1ull << (rest - 2)) - 1);
    for (; m; m &= m - 1) {
        size_t k = (size_t)__builtin_ctzll(m);
        if (gram_at(r, tail + k))
            check_words(r, p, p + i + k, end, scan);
    }
}

/* One pass over the raw bytes: a hit in the trigram table at position i is
 * verified against the words in their normalised form. */
static void scan_text(const struct lv_redactor *r, const char *text, size_t len,
                      struct lv_scan *scan)
{
    if (memchr(text, '\\', len)) {
        scan->escapes = scan->keys = true;
        scan->rules = ~0ull;
        scan->line = NULL;
        return;
    }
    scan->rules |= r->always.rules;
    scan->keys |= r->always.keys;
    if (r->vector)
        scan_candidates(r, (const unsigned char *)text, len, scan);
    else
        scan_every_position(r, (const unsigned char *)text, len, scan);
}

bool lv_redact_scan(const struct lv_redactor *r, const char *line, size_t len, struct lv_scan *scan)
{
    scan->rules = r->always_rules;
    scan->keys = false;
    scan->escapes = false;
    scan->line = len <= UINT32_MAX ? line : NULL;
    scan->len = len;
    scan->nhits = 0;
    scan->cut = false;
    scan->every_text = r->always_rules || r->always.rules || r->always.keys;
    scan_text(r, line, len, scan);
    return scan->keys || scan->rules;
}

/* What a scan of the text [s, s + len) would report, from the line's hits:
 * every word the text holds starts inside it, and was verified against the
 * line from the same place (a word found in the shorter text is found in the
 * longer one too). False when the hits cannot tell. */
static bool hits_within(const struct lv_redactor *r, const struct lv_scan *scan, const char *s,
                        size_t len, struct lv_scan *own)
{
    if (!scan->line)
        return false;
    uintptr_t base = (uintptr_t)scan->line, at = (uintptr_t)s;
    if (at < base || len > scan->len || at - base > scan->len - len)
        return false;
    size_t from = at - base, to = from + len;
    own->rules |= r->always.rules;
    own->keys |= r->always.keys;
    for (uint32_t i = 0; i < scan->nhits && scan->hits[i].pos < to; i++)
        if (scan->hits[i].pos >= from)
            mark_found(own, &r->words[scan->hits[i].word]);
    return true;
}

/* ---- key rules ----------------------------------------------------------- */

/* The key rules a normalised key matches, one bit each: one pass over the
 * key, each byte trying only the "contains" words that start with it. */
static uint64_t matching_keys(const struct lv_redactor *r, const char *s, size_t n)
{
    uint64_t found = 0;
    for (size_t i = 0; i < n; i++) {
        for (uint64_t m = r->first_contains[(unsigned char)s[i]] & ~found; m; m &= m - 1) {
            const struct krule *k = &r->keys[__builtin_ctzll(m)];
            if (i + k->len <= n && memcmp(s + i, k->word, k->len) == 0)
                found |= m & -m;
        }
    }
    for (uint64_t m = r->exact_keys; m; m &= m - 1) {
        const struct krule *k = &r->keys[__builtin_ctzll(m)];
        if (n == k->len && memcmp(s, k->word, n) == 0)
            found |= m & -m;
    }
    return found;
}

bool lv_redact_key_possible(const struct lv_redactor *r, const struct lv_scan *scan,
                            const char *key, size_t len)
{
    if (!scan->keys)
        return false;
    struct lv_scan own;
    own.keys = false;
    own.rules = 0;
    return !hits_within(r, scan, key, len, &own) || own.keys;
}

int lv_redact_key(struct lv_redactor *r, const char *key, size_t len)
{
    if (len < r->min_key_len)
        return -1;
    char small[256];
    char *norm = small;
    size_t n = lv_redact_normalise(key, len, small, sizeof small);
    if (n > sizeof small) {
        struct lv_buf *kb = &r->keybuf;
        kb->len = 0;
        if (lv_buf_reserve(kb, len) < 0)
            return 0; /* cannot check: treat as matching the first rule */
        n = lv_redact_normalise(key, len, kb->data, len);
        norm = kb->data;
    }
    uint64_t found = matching_keys(r, norm, n);
    return found ? __builtin_ctzll(found) : -1; /* the first rule in order */
}

const char *lv_redact_key_word(const struct lv_redactor *r, int rule)
{
    return r->keys[rule].word;
}

enum lv_action lv_redact_key_action(const struct lv_redactor *r, int rule)
{
    return r->keys[rule].action;
}

/* The pseudonym of `text` under the active key: "hmac:<id>:<hex>". */
static int put_hmac(const struct lv_redactor *r, const char *text, size_t len, struct lv_buf *out)
{
    return lv_pseudonym_put(r->pseudonyms, 0, text, len, out);
}

/* The value that replaces one redacted by key rule `rule`: JSON, or (for a
 * value cut short in text) the bare replacement text. */
static int put_key_value(struct lv_redactor *r, int rule, const char *value, size_t len, bool json,
                         struct lv_buf *out)
{
    const struct krule *k = &r->keys[rule];
    if (k->action == LV_ACTION_DROP)
        return 0;
    if (k->action == LV_ACTION_HASH && value) {
        if (lv_buf_putc(out, '"') < 0 || put_hmac(r, value, len, out) < 0)
            return -EIO;
        return lv_buf_putc(out, '"');
    }
    const char *rep = k->replacement ? k->replacement : r->replacement;
    if (!json)
        return lv_buf_append(out, rep, strlen(rep));
    return lv_json_string(out, rep, strlen(rep), NULL);
}

int lv_redact_key_value(struct lv_redactor *r, int rule, const char *value, size_t len,
                        struct lv_buf *out)
{
    (*r->keys[rule].hits)++;
    lv_metrics.redactions++;
    return put_key_value(r, rule, value, len, true, out);
}

/* ---- value rules --------------------------------------------------------- */

static int put_replacement(struct lv_redactor *r, const struct vrule *v, const char *text,
                           size_t len, struct lv_buf *out)
{
    if (v->action == LV_ACTION_DROP)
        return 0;
    if (v->action == LV_ACTION_HASH)
        return put_hmac(r, text, len, out);
    const char *rep = v->replacement ? v->replacement : r->replacement;
    return lv_buf_append(out, rep, strlen(rep));
}

/* A part of the text to replace: by its value rule's replacement for what
 * it covers, or by fixed bytes in r->reps (the value of a matching key in
 * nested JSON, or anything found in decoded text: written already, and
 * escaped for the text the span lies in). */
struct span {
    size_t start, end;
    uint32_t rule; /* value rule, when !fixed */
    bool fixed;
    uint8_t level; /* how many decodings below the text it was found in */
    size_t rep, rep_len;
};

static int push_span(struct lv_redactor *r, struct span sp)
{
    if (r->nspans == r->capspans) {
        if (r->capspans >= MAX_SPANS)
            return -EIO; /* fail closed rather than grow without bound */
        r->capspans = r->capspans ? r->capspans * 2 : 16;
        r->spans = lv_xrealloc(r->spans, r->capspans * sizeof *r->spans);
    }
    r->spans[r->nspans++] = sp;
    return 0;
}

static int add_span(struct lv_redactor *r, size_t start, size_t end, size_t rule)
{
    return push_span(r, (struct span){start, end, (uint32_t)rule, false, 0, 0, 0});
}

/* Does the start of a partial match hold one of its rule's hints? */
static bool holds_hint(struct lv_redactor *r, const struct vrule *v, const char *s, size_t len)
{
    if (!v->nhints)
        return len >= 4;
    char norm[1024];
    size_t n = lv_redact_normalise(s, len < sizeof norm ? len : sizeof norm, norm, sizeof norm);
    n = n > sizeof norm ? sizeof norm : n;
    for (size_t i = 0; i < v->nhints; i++)
        if (memmem(norm, n, v->hints[i], strlen(v->hints[i])))
            return true;
    return false;
}

/* A text cut short (limits.max_line) may end inside a secret too short for
 * its rule ("sk_live_ABCD"): a partial match at the end that holds the
 * rule's hint masks the rest of the text. `from` is where the search for
 * whole matches found none. */
static int cut_match(struct lv_redactor *r, size_t i, const char *s, size_t len, size_t from)
{
    struct vrule *v = &r->rules[i];
    if (!v->partial_jit) { /* compiled for partial matching when first needed */
        pcre2_jit_compile(v->re, PCRE2_JIT_PARTIAL_HARD);
        v->partial_jit = true;
    }
    int rc = pcre2_match(v->re, (PCRE2_SPTR)s, len, from, PCRE2_PARTIAL_HARD, r->md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH || rc >= 0)
        return 0;
    if (rc != PCRE2_ERROR_PARTIAL)
        return -EIO;
    size_t start = pcre2_get_ovector_pointer(r->md)[0];
    if (start >= len || !holds_hint(r, v, s + start, len - start))
        return 0;
    return add_span(r, start, len, i) < 0 ? -EIO : 1;
}

/* Where the container that opens at s[at] closes (just past it), or len
 * when it does not, or when more than a delimiter follows it ("[REDACTED]x"
 * is a token, not a container): brackets are counted outside quoted
 * strings. */
static size_t container_end(const char *s, size_t at, size_t len)
{
    size_t depth = 0;
    char quote = 0;
    for (size_t i = at; i < len; i++) {
        char c = s[i];
        if (quote) {
            if (c == '\\')
                i++;
            else if (c == quote)
                quote = 0;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            c = i + 1 < len ? s[i + 1] : ' ';
            return strchr(" \t\r\n,;&}])\"'", c) ? i + 1 : len;
        }
    }
    return len;
}

/* Finds every match of rule `i` in `s`; returns the count or -EIO. A pair
 * whose value is a container runs to the end of the text in the pattern
 * (broken JSON must not let a nested secret through); one that closes is
 * masked to its end. Text escaped inside it is also read decoded, where its
 * strings are whole. */
static int find_spans(struct lv_redactor *r, size_t i, const char *s, size_t len, bool cut)
{
    struct vrule *v = &r->rules[i];
    size_t pos = 0;
    int count = 0;
    while (pos <= len) {
        int rc = pcre2_match(v->re, (PCRE2_SPTR)s, len, pos, 0, r->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            return -EIO;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        int g = (v->group < rc && ov[2 * v->group] != PCRE2_UNSET) ? v->group : 0;
        pos = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        if (ov[2 * g + 1] > ov[2 * g]) {
            size_t end = ov[2 * g + 1];
            char c = s[ov[2 * g]];
            if (end == len && (1ull << i) == r->pair_bit && (c == '{' || c == '['))
                pos = end = container_end(s, ov[2 * g], len); /* and on after it */
            if (add_span(r, ov[2 * g], end, i) < 0)
                return -EIO;
            count++;
        }
        /* A quoted key ("db token=x": ...) may hold a pair of its own: the
         * search goes on inside it, once (the pair found there starts past
         * the quote). */
        if (s[ov[0]] == '"' || s[ov[0]] == '\'' || s[ov[0]] == '\\')
            pos = ov[0] + 1;
    }
    if (cut && pos < len) {
        int rc = cut_match(r, i, s, len, pos);
        if (rc < 0)
            return rc;
        count += rc;
    }
    *v->hits += (uint64_t)count;
    return count;
}

static int span_order(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->fixed != y->fixed)
        return x->fixed ? -1 : 1; /* a key rule's whole value first */
    if (x->end != y->end)
        return x->end > y->end ? -1 : 1;
    return (x->level > y->level) - (x->level < y->level); /* then the text's own */
}

/* Sorts the spans and merges those that overlap; a merged span takes the
 * replacement of the longest of them (a key rule's whole value over a match
 * inside it; a value masked to the end of a cut text over a piece of it
 * found in decoded text), the first of equals. Returns how many are left. */
static size_t merge_spans(struct lv_redactor *r)
{
    if (r->nspans < 2)
        return r->nspans;
    qsort(r->spans, r->nspans, sizeof *r->spans, span_order);
    size_t n = 0;
    for (size_t i = 0; i < r->nspans;) {
        struct span m = r->spans[i++], best = m;
        while (i < r->nspans && r->spans[i].start < m.end) {
            const struct span *o = &r->spans[i++];
            if (o->end > m.end)
                m.end = o->end;
            if (o->end - o->start > best.end - best.start)
                best = *o;
        }
        best.start = m.start;
        best.end = m.end;
        r->spans[n++] = best;
    }
    r->nspans = n;
    return n;
}

/* Writes `s` with every (merged) span replaced. */
static int rewrite(struct lv_redactor *r, const char *s, size_t len, struct lv_buf *out)
{
    size_t copied = 0;
    out->len = 0;
    for (size_t i = 0; i < r->nspans; i++) {
        const struct span *m = &r->spans[i];
        if (lv_buf_append(out, s + copied, m->start - copied) < 0)
            return -EIO;
        int rc = m->fixed ? lv_buf_append(out, r->reps.data + m->rep, m->rep_len)
                          : put_replacement(r, &r->rules[m->rule], s + m->start,
                                            m->end - m->start, out);
        if (rc < 0)
            return -EIO;
        copied = m->end;
    }
    return lv_buf_append(out, s + copied, len - copied) < 0 ? -EIO : 0;
}

/* ---- nested JSON and decoded text ------------------------------------------ */

static int find_level(struct lv_redactor *r, const struct lv_scan *scan, const char *s, size_t len,
                      int depth, bool cut);
static int find_level_spans(struct lv_redactor *r, const struct lv_scan *scan, const char *s,
                            size_t len, int depth, bool cut);

/* The end in the encoded text of the decoded bytes before `end`. */
static size_t map_end(const struct nest_level *lv, size_t end)
{
    while (end > 0 && end < lv->text.len && lv->map[end] == lv->map[end - 1])
        end++; /* inside the bytes of one character: take all of it */
    return lv->map[end];
}

/* Was decoded byte k a quote written bare in the encoded text? */
static bool bare_quote(const struct nest_level *lv, const char *enc, size_t k)
{
    return lv->text.data[k] == '"' && enc[lv->map[k]] == '"';
}

/* A span from text decoded as a whole must not take a quote of the
 * encoded text's own JSON with it (it would join a key to what follows):
 * such quotes at its ends stay. `enc` is the encoded text from `at`. */
static void trim_bare_quotes(struct span *sp, const struct nest_level *lv, const char *enc,
                             size_t start, size_t end)
{
    if (end > start && bare_quote(lv, enc, start))
        sp->start++;
    if (end > start + 1 && bare_quote(lv, enc, end - 1))
        sp->end--;
    if (sp->end <= sp->start) {
        sp->end = sp->start; /* nothing but quotes: nothing to replace */
        sp->rep_len = 0;
    }
}

/* Is s[at] escaped: after an odd run of backslashes? */
static bool escaped_at(const char *s, size_t at)
{
    size_t k = at;
    while (k > 0 && s[k - 1] == '\\')
        k--;
    return (at - k) % 2 == 1;
}

/* A span from text decoded as a whole is cut at the quotes written bare in
 * the encoded text (its own JSON's: they stay, each piece is replaced). */
static int split_at_bare_quotes(struct lv_redactor *r, size_t first, const char *s)
{
    for (size_t i = first; i < r->nspans; i++) {
        for (size_t q = r->spans[i].start; q < r->spans[i].end; q++) {
            if (s[q] != '"' || escaped_at(s, q))
                continue;
            struct span rest = r->spans[i];
            r->spans[i].end = q;
            rest.start = q + 1;
            if (push_span(r, rest) < 0)
                return -EIO;
            break; /* the rest is split in its turn */
        }
    }
    return 0;
}

/* Moves the spans from `first` on, found in the text decoded from s[at..],
 * into the encoded text: each is written out now (its decoded text is
 * about to go) and its replacement escaped as that text escapes it. Text
 * decoded as a whole (`whole`: free text, not one string) may hold bare
 * JSON as well as escaped: a replacement that is a JSON string goes in
 * without its quotes there, which is right either way. */
static int lift(struct lv_redactor *r, size_t first, const struct nest_level *lv, const char *s,
                size_t at, bool whole)
{
    for (size_t i = first; i < r->nspans; i++) {
        struct span *sp = &r->spans[i];
        if (!sp->fixed) {
            size_t rep = r->reps.len;
            if (put_replacement(r, &r->rules[sp->rule], lv->text.data + sp->start,
                                sp->end - sp->start, &r->reps) < 0)
                return -EIO;
            *sp = (struct span){sp->start, sp->end, 0, true, sp->level, rep, r->reps.len - rep};
        }
        if (whole && sp->rep_len >= 2 && r->reps.data[sp->rep] == '"' &&
            r->reps.data[sp->rep + sp->rep_len - 1] == '"') {
            sp->rep++;
            sp->rep_len -= 2;
        }
        /* Escaping at most sextuples a byte: reserve first, so that the
         * source does not move while it is read. */
        if (lv_buf_reserve(&r->reps, 6 * sp->rep_len) < 0)
            return -EIO;
        size_t rep = r->reps.len;
        if (lv_json_string_body(&r->reps, r->reps.data + sp->rep, sp->rep_len, NULL) < 0)
            return -EIO;
        sp->rep = rep;
        sp->rep_len = r->reps.len - rep;
        size_t start = sp->start, end = sp->end;
        sp->start = at + lv->map[start];
        sp->end = at + map_end(lv, end);
        sp->level++;
        if (whole)
            trim_bare_quotes(sp, lv, s + at, start, end);
    }
    return whole ? split_at_bare_quotes(r, first, s) : 0;
}

/* The text s[start, end) decoded (JSON escapes; free text keeps a stray
 * backslash), redacted as a text of its own, its spans lifted into s:
 * the text of a string token, or (`whole`) all of s. */
static int find_decoded(struct lv_redactor *r, const char *s, size_t start, size_t end, int depth,
                        bool cut, bool whole)
{
    struct nest_level *lv = &r->levels[depth + 1];
    if (lv_json_unescape(s + start, end - start, true, &lv->text, &lv->map, &lv->mapcap) < 0)
        return -EIO;
    size_t first = r->nspans;
    if (find_level(r, NULL, lv->text.data, lv->text.len, depth + 1, cut) < 0 ||
        lift(r, first, lv, s, start, whole) < 0)
        return -EIO;
    return 0;
}

struct nest_walk {
    struct lv_redactor *r;
    const char *text;
};

/* The value of a matching key in nested JSON: the key rule's JSON value
 * replaces it, or the drop action removes the member. A value cut short is
 * masked from inside its quote, with the bare replacement, as the text
 * rules mask one. */
static int on_nested_value(void *arg, const struct lv_nested_value *v)
{
    struct nest_walk *w = arg;
    struct lv_redactor *r = w->r;
    (*r->keys[v->rule].hits)++;
    size_t start = v->start, end = v->end, rep = r->reps.len;
    if (r->keys[v->rule].action == LV_ACTION_DROP) {
        start = v->member_start;
        end = v->member_end;
    } else if (start == end) {
        return 0; /* cut right after the key: no value to mask */
    } else if (v->open && w->text[start] == '"') {
        start++;
    }
    if (put_key_value(r, v->rule, v->value, v->len, !v->open, &r->reps) < 0)
        return -EIO;
    return push_span(r, (struct span){start, end, 0, true, 0, rep, r->reps.len - rep});
}

/* A string token with escapes: decoded and searched after the walk. */
static int on_nested_string(void *arg, size_t start, size_t end, bool open)
{
    struct lv_redactor *r = ((struct nest_walk *)arg)->r;
    if (r->nstrs == r->capstrs) {
        if (r->capstrs >= MAX_SPANS)
            return -EIO;
        r->capstrs = r->capstrs ? r->capstrs * 2 : 16;
        r->strs = lv_xrealloc(r->strs, r->capstrs * sizeof *r->strs);
    }
    r->strs[r->nstrs++] = (struct nest_string){start, end, open};
    return 0;
}

/* JSON inside the text: the values of matching keys, then the strings of
 * that JSON which hold escapes, each as a text of its own. */
static int find_nested(struct lv_redactor *r, const char *s, size_t len, int depth, bool cut)
{
    struct nest_walk w = {r, s};
    const struct lv_nested_sink sink = {on_nested_value, on_nested_string, &w};
    size_t first = r->nstrs;
    if (lv_nested_walk(r->nested, s, len, &sink) < 0)
        return -EIO;
    for (size_t i = first; i < r->nstrs && depth + 1 < NEST_LEVELS; i++) {
        struct nest_string str = r->strs[i];
        if (find_decoded(r, s, str.start, str.end, depth, cut && str.open, false) < 0)
            return -EIO;
    }
    r->nstrs = first;
    return 0;
}

/* ---- finding ----------------------------------------------------------------- */

/* The value rules to run on `s` at the top (with the line's scan: the rules
 * it selected whose hints lie in this string), and in *keys whether a key
 * rule's word does. */
static uint64_t top_rules(struct lv_redactor *r, const struct lv_scan *scan, const char *s,
                          size_t len, bool *keys)
{
    struct lv_scan own;
    own.rules = r->always_rules;
    own.keys = own.escapes = false;
    own.line = NULL;
    *keys = false;
    uint64_t hinted = scan->rules & ~r->always_rules;
    if (!hinted && !scan->keys)
        return scan->rules & r->all_rules;
    /* A key=value pair, or a member of nested JSON, needs its '=', ':' or
     * "%3D"; most strings have none. */
    bool known = hits_within(r, scan, s, len, &own), no_pair = false;
    if (!known || own.keys || (own.rules & r->pair_bit))
        no_pair = !memchr(s, '=', len) && !memchr(s, ':', len) && !memchr(s, '%', len);
    if (!known && (hinted != r->pair_bit || !no_pair))
        scan_text(r, s, len, &own);
    *keys = scan->keys && own.keys && !no_pair;
    /* A backslash makes the scan report every bit, rules or not: only the
     * rules that exist are run. */
    uint64_t run = scan->rules & own.rules & r->all_rules;
    if (no_pair)
        run &= ~r->pair_bit;
    return run;
}

/* Value rules, JSON inside the text, and the text decoded once more, for
 * one text: a string or text line (depth 0, with the line's scan), or text
 * decoded from one. Every rule runs on the text as it is, so one rule's
 * replacement cannot hide from another the words it needs ("Bearer
 * password: x"). The spans go to r->spans; returns 0 or -EIO. */
/* The start of the escape sequence that holds s[at], or at. */
static size_t escape_start(const char *s, size_t len, size_t at)
{
    if (at < len && escaped_at(s, at))
        return at - 1;
    for (size_t d = 2; d <= 5 && d <= at; d++) /* inside a \uXXXX */
        if (s[at - d] == '\\' && s[at - d + 1] == 'u' && !escaped_at(s, at - d))
            return at - d;
    return at;
}

/* Spans found in escaped text hold whole escape sequences, so that a
 * replacement never leaves a backslash escaping what follows it (or a
 * quote it escaped bare). */
static void align_spans(struct lv_redactor *r, size_t first, const char *s, size_t len)
{
    for (size_t i = first; i < r->nspans; i++) {
        struct span *sp = &r->spans[i];
        sp->start = escape_start(s, len, sp->start);
        if (sp->end < len && sp->end > sp->start) {
            size_t e = escape_start(s, len, sp->end);
            if (e < sp->end) /* the end cuts a sequence: take all of it */
                sp->end = s[e + 1] == 'u' ? (e + 6 < len ? e + 6 : len) : e + 2;
        }
    }
}

/* Can `s` hold a backslash? Not when the line the scan read has none: a
 * string of such a line is its own raw text. */
static bool may_escape(const struct lv_scan *scan, const char *s, size_t len)
{
    return (!scan || scan->escapes) && memchr(s, '\\', len) != NULL;
}

static int find_level(struct lv_redactor *r, const struct lv_scan *scan, const char *s, size_t len,
                      int depth, bool cut)
{
    size_t first = r->nspans;
    if (find_level_spans(r, scan, s, len, depth, cut) < 0)
        return -EIO;
    if (may_escape(scan, s, len))
        align_spans(r, first, s, len);
    return 0;
}

static int find_level_spans(struct lv_redactor *r, const struct lv_scan *scan, const char *s,
                            size_t len, int depth, bool cut)
{
    bool keys;
    uint64_t run;
    if (scan) {
        run = top_rules(r, scan, s, len, &keys);
    } else {
        struct lv_scan own = {0};
        own.rules = r->always_rules;
        scan_text(r, s, len, &own);
        run = own.rules & r->all_rules;
        keys = own.keys;
    }
    for (; run; run &= run - 1) {
        size_t i = (size_t)__builtin_ctzll(run);
        /* (A text cut short may end before that character: a partial
         * match still counts.) */
        if (r->rules[i].needs && !cut && !memchr(s, r->rules[i].needs, len))
            continue;
        if (find_spans(r, i, s, len, cut) < 0)
            return -EIO;
    }
    if (keys && r->nkeys && lv_nested_possible(s, len) && find_nested(r, s, len, depth, cut) < 0)
        return -EIO;
    /* Escaped text (JSON serialised into a string, or quoted in a line) is
     * also read decoded, as a text of its own. */
    if (depth + 1 < NEST_LEVELS && may_escape(scan, s, len) && lv_json_has_escape(s, len))
        return find_decoded(r, s, 0, len, depth, cut, true);
    return 0;
}

int lv_redact_find(struct lv_redactor *r, const struct lv_scan *scan, const char *s, size_t len)
{
    r->nspans = 0;
    r->reps.len = 0;
    r->nstrs = 0;
    if (!scan->rules && !scan->keys && !r->always_rules)
        return 0;
    if (find_level(r, scan, s, len, 0, scan->cut) < 0)
        return -EIO;
    size_t n = merge_spans(r);
    lv_metrics.redactions += n;
    return n > INT_MAX ? INT_MAX : (int)n;
}

const char *lv_redact_replacement(const struct lv_redactor *r)
{
    return r->replacement;
}

int lv_redact_write(struct lv_redactor *r, const char *s, size_t len, struct lv_buf *out)
{
    if (rewrite(r, s, len, &r->scratch) < 0)
        return -EIO;
    return lv_json_string(out, r->scratch.data, r->scratch.len, NULL);
}

int lv_redact_string(struct lv_redactor *r, const struct lv_scan *scan, const char *s, size_t len,
                     struct lv_buf *out)
{
    int total = lv_redact_find(r, scan, s, len);
    if (total < 0)
        return total;
    int rc = total ? lv_redact_write(r, s, len, out) : lv_json_string(out, s, len, NULL);
    return rc < 0 ? rc : total;
}
