/*
 * Redaction rules: key rules (the value of a key whose normalised form
 * matches is redacted, whatever its type) and value rules (PCRE2 patterns run
 * on every string, object keys included, and on text lines). Value rules all
 * run on the original text and their matches are merged, so no rule's
 * replacement can hide from another the words it needs. This module decides and rewrites; the
 * JSON pass in parse_json.c calls it as it walks a record.
 *
 * A key's normalised form is its decoded text in lower case with '_', '-'
 * and '.' removed: "API_Key", "api-key" and "apiKey" all become "apikey".
 *
 * The pre-scan (lv_redact_scan) is conservative: when it reports nothing for
 * a line, no key rule and no value rule can match anything in that line, so
 * the line may be copied through verbatim. Every value rule states literal
 * hints of which each match contains at least one; a rule without hints is
 * run on every string.
 *
 * Ownership: the redactor copies what it needs from the configuration.
 * It is used by one thread.
 */
#ifndef LOGVEIL_FILTERS_REDACT_H
#define LOGVEIL_FILTERS_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logveil/conf.h"
#include "logveil/util.h"

struct lv_redactor;

#define LV_SCAN_HITS 32

/* Where the pre-scan found a word: its raw offset in the line, and which of
 * the redactor's words (what it hints at). */
struct lv_scan_hit {
    uint32_t pos;
    uint16_t word;
};

/* What the pre-scan found in one line. */
struct lv_scan {
    uint64_t rules; /* value rules worth running on this line, one bit each */
    bool keys;      /* a key rule's word occurs (key check needed) */
    bool escapes;   /* a backslash: decoded text may differ from raw bytes */
    bool cut;       /* set by the caller: the line was cut at limits.max_line,
                       so a text that runs to its end may end inside a secret */
    /* The hits, in order, when they all fit: a key or string that lies in
     * the scanned line is then checked against the hits inside it instead
     * of being scanned again. NULL when unknown (every string is scanned). */
    const char *line;
    size_t len;
    bool every_text; /* some rule must look at every key and string, hit or not */
    uint32_t nhits;
    struct lv_scan_hit hits[LV_SCAN_HITS];
};

struct lv_redactor *lv_redact_new(const struct lv_redact_conf *conf, char *err, size_t errlen);
void lv_redact_free(struct lv_redactor *r);

/* Fills *scan for `line`. Returns true when anything may need redaction. */
bool lv_redact_scan(const struct lv_redactor *r, const char *line, size_t len,
                    struct lv_scan *scan);

/* False when the key (raw text inside the scanned line, or decoded) cannot
 * match any key rule, by the scan: the exact check may then be skipped. */
bool lv_redact_key_possible(const struct lv_redactor *r, const struct lv_scan *scan,
                            const char *key, size_t len);
/* The key rule matching this (decoded) key, or -1. */
int lv_redact_key(struct lv_redactor *r, const char *key, size_t len);
/* The (normalised) word of key rule `rule`. */
const char *lv_redact_key_word(const struct lv_redactor *r, int rule);
/* The action of key rule `rule`. */
enum lv_action lv_redact_key_action(const struct lv_redactor *r, int rule);
/* Appends the JSON value that replaces a value redacted by key rule `rule`.
 * `value` is the decoded string or raw number text (NULL for a container,
 * which is masked even under "hash": a subtree has no text to hash). */
int lv_redact_key_value(struct lv_redactor *r, int rule, const char *value, size_t len,
                        struct lv_buf *out);

/* Appends `s` as a quoted JSON string after running the value rules the scan
 * selected. Returns the number of redactions (>= 0), -ENOBUFS when `out`
 * is full, or -EIO when a rule could not be run (fail closed). */
int lv_redact_string(struct lv_redactor *r, const struct lv_scan *scan, const char *s,
                     size_t len, struct lv_buf *out);
/* The two halves of lv_redact_string, for a caller that copies unchanged
 * strings itself: lv_redact_find runs the rules and returns the number of
 * matches (or -EIO); when it is positive, lv_redact_write appends `s` (the
 * same text) quoted, with the matches replaced. */
int lv_redact_find(struct lv_redactor *r, const struct lv_scan *scan, const char *s, size_t len);
int lv_redact_write(struct lv_redactor *r, const char *s, size_t len, struct lv_buf *out);

/* For tests: the pre-scan without the vectorised prefilter (on), or with it
 * where the CPU has one (off, the default). Both report the same. */
void lv_redact_plain_scan(struct lv_redactor *r, bool on);

/* The policy: every rule in the order it applies, one line each,
 * "kind:name TAB match TAB action TAB replacement TAB pattern" (key rules
 * first, then value rules, built-in then user), then the default
 * replacement and the active pseudonym key and length. The digest is the
 * first 8 hex digits of its SHA-256: records, /metrics and check-config
 * --print-policy name the rule set by it. */
const char *lv_redact_policy(const struct lv_redactor *r, size_t *len);
const char *lv_redact_policy_digest(const struct lv_redactor *r);

/* The text that replaces what a rule masks ("[REDACTED]"). */
const char *lv_redact_replacement(const struct lv_redactor *r);

/* Normalises a key into dst (capacity cap); returns the length, or cap + 1
 * when it does not fit (the caller then treats the key as long). */
size_t lv_redact_normalise(const char *key, size_t len, char *dst, size_t cap);

#endif
