/*
 * The fuzzer's oracle, written apart from the product: a strict RFC 8259
 * reader (RFC 3629 UTF-8, no blank but space, tab, CR and LF, surrogate
 * escapes decoded as a strict decoder does: an unpaired one is U+FFFD and
 * the escape after it is read on its own), and the promise it checks: no
 * member whose key, strictly decoded and normalised (lower case, '_', '-'
 * and '.' removed), matches a key rule keeps its value, in a record, in
 * JSON inside a record's strings (serialised once or several times), and in
 * JSON inside a line shipped as text (after a prefix, before a suffix, in a
 * top-level array, cut short). It shares no code with logveil: not yajl,
 * not the product's JSON writer or decoder.
 *
 * A matching key's value must be the replacement string ("[REDACTED]").
 * Where the JSON ends inside that value (a line cut short, broken JSON),
 * what follows the key's colon must be the replacement, bare or after a
 * quote, and nothing else: the product masks such a value to the end of
 * the text. Under the drop action a matching member must not be there.
 */
#ifndef LOGVEIL_TESTS_FUZZ_ORACLE_H
#define LOGVEIL_TESTS_FUZZ_ORACLE_H

#include <stdbool.h>
#include <stddef.h>

struct oracle_rules {
    const char *const *contains; /* normalised words a matching key holds */
    size_t ncontains;
    const char *const *exact;    /* normalised words a matching key is */
    size_t nexact;
    const char *replacement;
    bool drop;                   /* matching members are removed, not masked */
};

/* The rules logveil applies with no configuration (its documented
 * defaults), masking or dropping. */
const struct oracle_rules *oracle_default_rules(bool drop);

/* NULL when `s` is one strict JSON text whose root is an object; else what
 * is wrong, with *at (may be NULL) its offset. */
const char *oracle_validate(const char *s, size_t n, size_t *at);

/* NULL when the record keeps the promise; else what is wrong, and the key
 * that broke it in `detail`. `s` must be valid (oracle_validate). */
const char *oracle_check_keys(const char *s, size_t n, const struct oracle_rules *rules,
                              char *detail, size_t cap);

/* Decodes the JSON string text s[0, n) (no quotes) strictly into `out`
 * (capacity >= n). Returns the decoded length, or -1 when it is not valid
 * JSON string text. */
long oracle_decode(const char *s, size_t n, char *out);

/* Called for every key, string and number of a record: each string
 * decoded, and again with its JSON escapes decoded as long as it has some
 * (serialised text), a number as written. Returning true stops the walk. */
typedef bool oracle_text_fn(void *arg, const char *text, size_t n, bool number);
void oracle_each_text(const char *s, size_t n, oracle_text_fn *fn, void *arg);

/* Does the normalised `key` match a rule? */
bool oracle_key_matches(const struct oracle_rules *rules, const char *key, size_t n);

#endif
