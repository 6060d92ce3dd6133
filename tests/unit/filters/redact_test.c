/*
 * Tests for the redaction rules: key normalisation, key matching (contains
 * and exact), the pre-scan's promise never to miss a candidate, value rules
 * on strings, and the three actions (mask, hash, drop).
 *
 * The pre-scan is tested as a property: for every default key word and
 * every built-in hint, thousands of spellings (random case, runs of '_', '-'
 * and '.' between the letters and around the word, the word at the start,
 * the end or the middle of short and long lines, as text, as a JSON key and
 * inside a JSON string) must all be reported. The generator is seeded, so a
 * failure names a spelling that reproduces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "redact.h"

#define HMAC_KEY "logveil-case-key-0123456789abcdef"

/* The default key rules and the hints of the built-in value rules. */
static char *const key_words[] = {"password", "token", "secret", "apikey"};
static char *const hint_words[] = {"bearer", "basic",  "eyj",    "akia",   "asia",
                                         "agpa",   "aida",   "aroa",   "aipa",   "anpa",
                                         "anva",   "begin",  "sklive", "sktest", "pklive",
                                         "pktest", "rklive", "rktest"};

/* ---- building redactors ---------------------------------------------------------- */

struct rules {
    struct lv_redact_conf conf;
    struct lv_hmac_key hmac;
    struct lv_key_rule keys[8];
    struct lv_value_rule patterns[4];
    char *hints[4][2];
};

/* No key rules, no value rules, mask with "[REDACTED]". */
static void rules_empty(struct rules *r)
{
    memset(r, 0, sizeof *r);
    r->conf.replacement = "[REDACTED]";
    r->conf.keys = r->keys;
    r->conf.patterns = r->patterns;
}

/* The defaults: password, token, secret, apiKey (contains, mask) and the
 * built-in value rules. */
static void rules_default(struct rules *r, enum lv_action action)
{
    rules_empty(r);
    for (size_t i = 0; i < LV_ARRAY_LEN(key_words); i++)
        r->keys[i] = (struct lv_key_rule){key_words[i], LV_MATCH_CONTAINS, action, NULL};
    r->conf.nkeys = LV_ARRAY_LEN(key_words);
    r->conf.action = action;
    r->conf.builtin_patterns = true;
    r->hmac = (struct lv_hmac_key){.id = "t", .key = HMAC_KEY, .key_len = strlen(HMAC_KEY)};
    r->conf.hmac_keys = &r->hmac;
    r->conf.nhmac_keys = 1;
}

static void add_key(struct rules *r, char *word, enum lv_match match, enum lv_action action)
{
    r->keys[r->conf.nkeys++] = (struct lv_key_rule){word, match, action, NULL};
}

static void add_pattern(struct rules *r, char *pattern, char *hint, int group)
{
    size_t i = r->conf.npatterns++;
    r->hints[i][0] = hint;
    r->patterns[i] = (struct lv_value_rule){
        .name = "test", .pattern = pattern, .hints = r->hints[i],
        .nhints = hint ? 1 : 0, .group = group, .action = LV_ACTION_MASK};
}

static struct lv_redactor *build(const struct rules *r)
{
    char err[256] = "";
    struct lv_redactor *red = lv_redact_new(&r->conf, err, sizeof err);
    if (!red)
        fail_msg("lv_redact_new: %s", err);
    return red;
}

/* `s` through lv_redact_string with the line's own scan; the JSON text
 * written is left in *out (NUL-terminated), the count returned. */
static int redact_text(struct lv_redactor *red, const char *s, struct lv_buf *out)
{
    struct lv_scan scan;
    out->len = 0;
    lv_redact_scan(red, s, strlen(s), &scan);
    int n = lv_redact_string(red, &scan, s, strlen(s), out);
    lv_buf_putc(out, '\0');
    return n;
}

static void assert_redacts(struct lv_redactor *red, const char *in, const char *want, int count)
{
    struct lv_buf out;
    lv_buf_init(&out, 64, 0);
    int n = redact_text(red, in, &out);
    if (strcmp(out.data, want) != 0 || n != count)
        fail_msg("redacting <%s>\n  want %s (%d)\n  got  %s (%d)", in, want, count, out.data, n);
    lv_buf_free(&out);
}

/* ---- normalisation ------------------------------------------------------------------ */

static const char *norm(const char *key, char *buf, size_t cap)
{
    size_t n = lv_redact_normalise(key, strlen(key), buf, cap);
    assert_true(n <= cap);
    buf[n] = '\0';
    return buf;
}

static void normalise_lowers_case_and_removes_underscores_dashes_and_dots(void **state)
{
    char buf[64];
    (void)state;
    assert_string_equal(norm("API_Key", buf, sizeof buf), "apikey");
    assert_string_equal(norm("api-key", buf, sizeof buf), "apikey");
    assert_string_equal(norm("apiKey", buf, sizeof buf), "apikey");
    assert_string_equal(norm("x.API.key", buf, sizeof buf), "xapikey");
    assert_string_equal(norm("__p__a--s..sword__", buf, sizeof buf), "password");
    assert_string_equal(norm("_-.", buf, sizeof buf), "");
    assert_string_equal(norm("", buf, sizeof buf), "");
}

static void normalise_keeps_every_other_character(void **state)
{
    char buf[64];
    (void)state;
    assert_string_equal(norm("pass/word", buf, sizeof buf), "pass/word");
    assert_string_equal(norm("Pass Word", buf, sizeof buf), "pass word");
    assert_string_equal(norm("Ünïcode_KEY", buf, sizeof buf), "Ünïcodekey");
    assert_string_equal(norm("a1:B2", buf, sizeof buf), "a1:b2");
}

static void normalise_keeps_a_nul_byte_distinct_from_nothing(void **state)
{
    char buf[16];
    (void)state;
    size_t n = lv_redact_normalise("pass\0word", 9, buf, sizeof buf);
    assert_int_equal(n, 9);
    assert_int_not_equal(buf[4], '\0');
    assert_memory_not_equal(buf, "password", 8);
}

static void normalise_reports_cap_plus_one_when_the_key_does_not_fit(void **state)
{
    char buf[8];
    (void)state;
    assert_int_equal(lv_redact_normalise("PASSWORDS", 9, buf, 8), 9);
    assert_int_equal(lv_redact_normalise("PASS_WORD", 9, buf, 8), 8); /* fits once normalised */
    assert_memory_equal(buf, "password", 8);
}

/* ---- key rules ------------------------------------------------------------------------ */

static int key_rule(struct lv_redactor *red, const char *key)
{
    return lv_redact_key(red, key, strlen(key));
}

static void contains_rules_match_any_key_whose_normal_form_holds_the_word(void **state)
{
    struct rules r;
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    static const char *const password_keys[] = {
        "password", "PASSWORD", "Password", "pass_word", "p_a-s.s_w.o_r_d", "db.password",
        "oldPassword", "password_confirmation", " password ", "__p__a--s..sword__"};
    for (size_t i = 0; i < LV_ARRAY_LEN(password_keys); i++)
        if (key_rule(red, password_keys[i]) != 0)
            fail_msg("key \"%s\" does not match rule password", password_keys[i]);
    assert_int_equal(key_rule(red, "accessToken"), 1);
    assert_int_equal(key_rule(red, "refresh_token"), 1);
    assert_int_equal(key_rule(red, "tokenizer"), 1); /* contains, by design */
    assert_int_equal(key_rule(red, "client_secret"), 2);
    assert_int_equal(key_rule(red, "SECRET_ACCESS_KEY"), 2);
    assert_int_equal(key_rule(red, "x-api-key"), 3);
    assert_int_equal(key_rule(red, "API_KEY"), 3);
    assert_int_equal(key_rule(red, "a.p.i.k.e.y"), 3);
    lv_redact_free(red);
}

static void keys_that_do_not_hold_a_word_match_no_rule(void **state)
{
    struct rules r;
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    static const char *const keys[] = {"passwd", "pass", "pass/word", "pass word", "tok",
                                       "key",    "api",  "",          "secre t",   "t0ken"};
    for (size_t i = 0; i < LV_ARRAY_LEN(keys); i++)
        if (key_rule(red, keys[i]) != -1)
            fail_msg("key \"%s\" should match no rule", keys[i]);
    lv_redact_free(red);
}

static void exact_rules_match_only_the_whole_normalised_key(void **state)
{
    struct rules r;
    (void)state;
    rules_empty(&r);
    add_key(&r, "pin", LV_MATCH_EXACT, LV_ACTION_MASK);
    add_key(&r, "password", LV_MATCH_CONTAINS, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    assert_int_equal(key_rule(red, "pin"), 0);
    assert_int_equal(key_rule(red, "PIN"), 0);
    assert_int_equal(key_rule(red, "p-i-n"), 0);
    assert_int_equal(key_rule(red, "_pin_"), 0);
    assert_int_equal(key_rule(red, "pin_code"), -1);
    assert_int_equal(key_rule(red, "spin"), -1);
    assert_int_equal(key_rule(red, "pi"), -1);
    assert_int_equal(key_rule(red, "db_password"), 1);
    lv_redact_free(red);
}

static void the_first_matching_rule_wins(void **state)
{
    struct rules r;
    (void)state;
    rules_empty(&r);
    add_key(&r, "secret", LV_MATCH_CONTAINS, LV_ACTION_DROP);
    add_key(&r, "token", LV_MATCH_CONTAINS, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    assert_int_equal(key_rule(red, "secret_token"), 0);
    assert_int_equal(key_rule(red, "token_secret"), 0);
    assert_int_equal(lv_redact_key_action(red, 0), LV_ACTION_DROP);
    assert_int_equal(lv_redact_key_action(red, 1), LV_ACTION_MASK);
    lv_redact_free(red);
}

static void long_keys_are_matched_past_the_key_buffer(void **state)
{
    struct rules r;
    char key[2048];
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    memset(key, 'x', sizeof key);
    memcpy(key + sizeof key - 8, "PASSWORD", 8);
    assert_int_equal(lv_redact_key(red, key, sizeof key), 0);
    memcpy(key, "TOKEN", 5);
    memset(key + sizeof key - 8, '_', 8);
    assert_int_equal(lv_redact_key(red, key, sizeof key), 1);
    memset(key, 'x', 5);
    assert_int_equal(lv_redact_key(red, key, sizeof key), -1);
    lv_redact_free(red);
}

/* ---- the pre-scan never misses --------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

static size_t put_separators(char *p, size_t max)
{
    static const char seps[] = "_-.";
    size_t n = rnd_below(4) == 0 ? 1 + rnd_below(max) : 0;
    for (size_t i = 0; i < n; i++)
        p[i] = seps[rnd_below(3)];
    return n;
}

/* Filler that holds no word: letters, digits and JSON punctuation. */
static size_t put_filler(char *p, size_t max)
{
    static const char filler[] = "xqz 0179{}[]\":,|"; /* no word: "://" is one */
    size_t n = rnd_below(max + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = filler[rnd_below(sizeof filler - 1)];
    return n;
}

/* A random spelling of `word` (lower case, no separators) whose normalised
 * form is the word itself. */
static size_t spell(const char *word, char *p)
{
    size_t n = put_separators(p, 3);
    for (const char *c = word; *c; c++) {
        p[n++] = rnd_below(2) ? (char)(*c - 'a' + 'A') : *c;
        n += put_separators(p + n, 3);
    }
    return n;
}

/* A line holding a spelling of `word`, in one of three settings. Returns
 * its length; line needs 256 bytes. */
static size_t make_line(const char *word, char *line)
{
    size_t n = put_filler(line, rnd_below(3) ? 3 : 40);
    switch (rnd_below(3)) {
    case 0: /* text */
        n += spell(word, line + n);
        break;
    case 1: /* a JSON key */
        memcpy(line + n, "{\"", 2);
        n += 2;
        n += spell(word, line + n);
        memcpy(line + n, "\":1}", 4);
        n += 4;
        break;
    default: /* inside a JSON string */
        memcpy(line + n, "{\"m\":\"", 6);
        n += 6;
        n += put_filler(line + n, 5);
        n += spell(word, line + n);
        line[n++] = '"';
        break;
    }
    return n + (rnd_below(3) ? 0 : put_filler(line + n, 40));
}

/* The scan with the vectorised prefilter and the plain one report the same
 * rules and the same hits. */
static void expect_same_scans(struct lv_redactor *red, const char *line, size_t len)
{
    struct lv_scan fast, plain;
    bool a = lv_redact_scan(red, line, len, &fast);
    lv_redact_plain_scan(red, true);
    bool b = lv_redact_scan(red, line, len, &plain);
    lv_redact_plain_scan(red, false);
    bool same = a == b && fast.rules == plain.rules && fast.keys == plain.keys &&
                fast.escapes == plain.escapes && (fast.line == NULL) == (plain.line == NULL);
    if (same && fast.line) {
        same = fast.nhits == plain.nhits;
        for (uint32_t i = 0; same && i < fast.nhits; i++)
            same = fast.hits[i].pos == plain.hits[i].pos &&
                   fast.hits[i].word == plain.hits[i].word;
    }
    if (!same)
        fail_msg("the two scans disagree on <%.*s>", (int)len, line);
}

static void expect_reported(struct lv_redactor *red, const char *word, const char *line,
                            size_t len, bool as_key)
{
    struct lv_scan scan;
    expect_same_scans(red, line, len);
    bool any = lv_redact_scan(red, line, len, &scan);
    bool ok = as_key ? any && scan.keys : any && (scan.rules & 1);
    if (!ok)
        fail_msg("the scan missed \"%s\" in <%.*s>", word, (int)len, line);
}

static void scan_reports_every_spelling_of_every_key_word(void **state)
{
    struct rules r;
    char line[256];
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    r.conf.builtin_patterns = false;
    struct lv_redactor *red = build(&r);
    rng_state = 1;
    for (size_t w = 0; w < LV_ARRAY_LEN(key_words); w++)
        for (int i = 0; i < 5000; i++) {
            size_t len = make_line(key_words[w], line);
            expect_reported(red, key_words[w], line, len, true);
        }
    lv_redact_free(red);
}

/* Each hint in a redactor of its own, as the only rule: bit 0. */
static void scan_reports_every_spelling_of_every_built_in_hint(void **state)
{
    char line[256];
    (void)state;
    rng_state = 2;
    for (size_t w = 0; w < LV_ARRAY_LEN(hint_words); w++) {
        struct rules r;
        rules_empty(&r);
        add_pattern(&r, "never(?!)", hint_words[w], 0);
        struct lv_redactor *red = build(&r);
        for (int i = 0; i < 3000; i++) {
            size_t len = make_line(hint_words[w], line);
            expect_reported(red, hint_words[w], line, len, false);
        }
        lv_redact_free(red);
    }
}

/* Every offset from the start and from the end of lines of every length up
 * to 24, so that no boundary of a word-at-a-time loop is skipped. */
static void scan_reports_a_word_at_every_offset_including_the_very_end(void **state)
{
    static char *const words[] = {"password", "token", "eyj", "xyz", "apikey"};
    char line[64];
    (void)state;
    for (size_t w = 0; w < LV_ARRAY_LEN(words); w++) {
        struct rules r;
        rules_empty(&r);
        add_pattern(&r, "never(?!)", words[w], 0);
        add_key(&r, words[w], LV_MATCH_CONTAINS, LV_ACTION_MASK);
        struct lv_redactor *red = build(&r);
        size_t wl = strlen(words[w]);
        for (size_t len = wl; len <= 24; len++)
            for (size_t at = 0; at + wl <= len; at++) {
                memset(line, 'q', len);
                for (size_t k = 0; k < wl; k++)
                    line[at + k] = (char)(words[w][k] - ((at + k) % 2 ? 'a' - 'A' : 0));
                expect_reported(red, words[w], line, len, true);
                expect_reported(red, words[w], line, len, false);
            }
        lv_redact_free(red);
    }
}

static void scan_reports_a_three_letter_hint_that_ends_the_line(void **state)
{
    struct rules r;
    (void)state;
    rules_empty(&r);
    add_pattern(&r, "[0-9]{4}xyz", "xyz", 0);
    struct lv_redactor *red = build(&r);
    expect_reported(red, "xyz", "xyz", 3, false);
    expect_reported(red, "xyz", "1234xyz", 7, false);
    expect_reported(red, "xyz", "1234X_Y-Z", 9, false);
    expect_reported(red, "xyz", "order 1234XYZ", 13, false);
    assert_redacts(red, "order 1234xyz", "\"order [REDACTED]\"", 1);
    lv_redact_free(red);
}

static void scan_reports_everything_for_a_line_with_a_backslash(void **state)
{
    struct rules r;
    struct lv_scan scan;
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    const char *line = "{\"pass\\u0077ord\":\"x\"}";
    assert_true(lv_redact_scan(red, line, strlen(line), &scan));
    assert_true(scan.escapes);
    assert_true(scan.keys);
    lv_redact_free(red);
}

/* Lines of many blocks with many words, in every setting: the hits (their
 * places and what they hint at) do not depend on the prefilter. */
static void scan_hits_are_the_same_with_and_without_the_prefilter(void **state)
{
    struct rules r;
    char line[4096];
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    static const char *const words[] = {"password", "token",  "secret", "apikey", "bearer",
                                        "basic",    "eyj",    "akia",   "asia",   "begin",
                                        "sklive",   "rktest", "pass",   "tok",    "e_y"};
    rng_state = 4;
    for (int i = 0; i < 20000; i++) {
        size_t len = 0, nwords = rnd_below(12);
        for (size_t w = 0; w <= nwords && len + 300 < sizeof line; w++)
            len += make_line(words[rnd_below(LV_ARRAY_LEN(words))], line + len);
        /* and cut short at several places near the end */
        for (size_t cut = len, step; cut + 70 > len; cut -= step) {
            expect_same_scans(red, line, cut);
            step = 1 + rnd_below(9);
            if (step >= cut)
                break;
        }
    }
    lv_redact_free(red);
}

static void scan_finds_nothing_in_a_line_without_any_word(void **state)
{
    struct rules r;
    struct lv_scan scan;
    char line[256];
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    const char *plain = "{\"level\":\"info\",\"msg\":\"GET /healthz 200\",\"ms\":1.25}";
    assert_false(lv_redact_scan(red, plain, strlen(plain), &scan));
    assert_false(scan.keys);
    rng_state = 3;
    for (int i = 0; i < 1000; i++) {
        size_t len = put_filler(line, 200);
        if (lv_redact_scan(red, line, len, &scan))
            fail_msg("the scan reported <%.*s>", (int)len, line);
    }
    lv_redact_free(red);
}

/* ---- value rules ---------------------------------------------------------------------- */

static void value_rules_mask_credentials_inside_strings(void **state)
{
    struct rules r;
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    assert_redacts(red, "Authorization: Bearer abc.def-ghi", "\"Authorization: Bearer [REDACTED]\"", 1);
    assert_redacts(red, "key AKIAIOSFODNN7EXAMPLE", "\"key [REDACTED]\"", 1);
    assert_redacts(red, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "\"[REDACTED]\"", 1);
    assert_redacts(red, "GET /a?token=abc&x=1", "\"GET /a?token=[REDACTED]&x=1\"", 1);
    assert_redacts(red, "{\"password\":\"x\"}", "\"{\\\"password\\\":\\\"[REDACTED]\\\"}\"", 1);
    assert_redacts(red, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- ok",
                   "\"[REDACTED] ok\"", 1);
    assert_redacts(red, "Bearer abcdefghijk and password=hunter2",
                   "\"Bearer [REDACTED] and password=[REDACTED]\"", 2);
    lv_redact_free(red);
}

static void strings_without_candidates_are_only_escaped(void **state)
{
    struct rules r;
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    assert_redacts(red, "tokenizer ready", "\"tokenizer ready\"", 0);
    assert_redacts(red, "basic auth disabled", "\"basic auth disabled\"", 0);
    assert_redacts(red, "say \"hi\"\n", "\"say \\\"hi\\\"\\n\"", 0);
    assert_redacts(red, "bad \xff byte", "\"bad \xef\xbf\xbd byte\"", 0);
    lv_redact_free(red);
}

/* A backslash made the scan select every bit, including bits of rules that
 * do not exist: the string used to fail with -EIO and its record was
 * withheld. */
static void a_backslash_in_the_text_runs_only_the_rules_that_exist(void **state)
{
    struct rules r;
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    assert_redacts(red, "C:\\temp", "\"C:\\\\temp\"", 0);
    assert_redacts(red, "C:\\temp token=abc", "\"C:\\\\temp token=[REDACTED]\"", 1);
    struct lv_scan all = {.rules = ~0ull, .keys = true, .escapes = true};
    struct lv_buf out;
    lv_buf_init(&out, 64, 0);
    assert_int_equal(lv_redact_string(red, &all, "plain", 5, &out), 0);
    lv_buf_free(&out);
    lv_redact_free(red);
}

static void a_user_rule_redacts_its_group_only(void **state)
{
    struct rules r;
    (void)state;
    rules_empty(&r);
    add_pattern(&r, "card=([0-9]{4})[0-9]*", "card", 1);
    struct lv_redactor *red = build(&r);
    assert_redacts(red, "card=12345678 ok", "\"card=[REDACTED]5678 ok\"", 1);
    lv_redact_free(red);
}

static void a_bad_user_pattern_is_reported_not_compiled(void **state)
{
    struct rules r;
    char err[256] = "";
    (void)state;
    rules_empty(&r);
    add_pattern(&r, "unclosed(", NULL, 0);
    assert_null(lv_redact_new(&r.conf, err, sizeof err));
    assert_non_null(strstr(err, "bad regular expression"));
}

static void long_values_after_a_key_are_redacted_not_failed(void **state)
{
    struct rules r;
    struct lv_buf in, out;
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    static const char *const shapes[] = {"password=%s end", "password=\"%s\" end",
                                         "{\"token\":\"%s\"}", "{\\\"token\\\":\\\"%s\\\"}"};
    lv_buf_init(&in, 1 << 17, 0);
    lv_buf_init(&out, 1 << 17, 0);
    for (size_t s = 0; s < LV_ARRAY_LEN(shapes); s++) {
        in.len = 0;
        const char *pct = strstr(shapes[s], "%s");
        lv_buf_append(&in, shapes[s], (size_t)(pct - shapes[s]));
        for (int i = 0; i < 100000; i++)
            lv_buf_putc(&in, (char)('a' + i % 26));
        lv_buf_append(&in, pct + 2, strlen(pct + 2));
        lv_buf_putc(&in, '\0');
        int n = redact_text(red, in.data, &out);
        if (n != 1 || out.len > 64)
            fail_msg("shape %s: %d redactions, %zu bytes out", shapes[s], n, out.len);
    }
    lv_buf_free(&in);
    lv_buf_free(&out);
    lv_redact_free(red);
}

/* ---- actions ----------------------------------------------------------------------------- */

static char *key_value(struct lv_redactor *red, const char *key, const char *value,
                       struct lv_buf *out)
{
    int rule = lv_redact_key(red, key, strlen(key));
    assert_true(rule >= 0);
    out->len = 0;
    assert_int_equal(
        lv_redact_key_value(red, rule, value, value ? strlen(value) : 0, out), 0);
    lv_buf_putc(out, '\0');
    return out->data;
}

static void mask_writes_the_replacement_for_any_value(void **state)
{
    struct rules r;
    struct lv_buf out;
    (void)state;
    rules_default(&r, LV_ACTION_MASK);
    struct lv_redactor *red = build(&r);
    lv_buf_init(&out, 64, 0);
    assert_string_equal(key_value(red, "password", "hunter2", &out), "\"[REDACTED]\"");
    assert_string_equal(key_value(red, "token", "12345", &out), "\"[REDACTED]\"");
    assert_string_equal(key_value(red, "secret", NULL, &out), "\"[REDACTED]\"");
    lv_buf_free(&out);
    lv_redact_free(red);
}

static void a_rule_replacement_overrides_the_default(void **state)
{
    struct rules r;
    struct lv_buf out;
    (void)state;
    rules_empty(&r);
    r.keys[0] = (struct lv_key_rule){"pin", LV_MATCH_EXACT, LV_ACTION_MASK, "****"};
    r.conf.nkeys = 1;
    struct lv_redactor *red = build(&r);
    lv_buf_init(&out, 64, 0);
    assert_string_equal(key_value(red, "PIN", "1234", &out), "\"****\"");
    lv_buf_free(&out);
    lv_redact_free(red);
}

/* "hmac:t:" and the first 8 bytes of HMAC-SHA256(key, value) in lower-case hex. */
static void expected_hmac(const char *value, char *buf)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), HMAC_KEY, (int)strlen(HMAC_KEY), (const unsigned char *)value,
         strlen(value), md, &n);
    int at = sprintf(buf, "\"hmac:t:");
    for (int i = 0; i < 8; i++)
        at += sprintf(buf + at, "%02x", md[i]);
    strcpy(buf + at, "\"");
}

static void hash_writes_hmac_and_sixteen_hex_digits_of_hmac_sha256(void **state)
{
    struct rules r;
    struct lv_buf out;
    char want[64];
    (void)state;
    rules_default(&r, LV_ACTION_HASH);
    struct lv_redactor *red = build(&r);
    lv_buf_init(&out, 64, 0);
    /* A golden value, computed independently. */
    assert_string_equal(key_value(red, "password", "hunter2", &out), "\"hmac:t:b6a75e577bc8eccd\"");
    static const char *const values[] = {"", "x", "12345", "-0", "true", "日本", "a\"b"};
    for (size_t i = 0; i < LV_ARRAY_LEN(values); i++) {
        expected_hmac(values[i], want);
        assert_string_equal(key_value(red, "token", values[i], &out), want);
        assert_int_equal(strlen(out.data), strlen("\"hmac:t:\"") + 16);
    }
    lv_buf_free(&out);
    lv_redact_free(red);
}

static void hash_is_stable_for_a_key_and_differs_between_keys(void **state)
{
    struct rules r;
    struct lv_buf out;
    char first[64], other_key[64];
    (void)state;
    rules_default(&r, LV_ACTION_HASH);
    struct lv_redactor *red = build(&r);
    lv_buf_init(&out, 64, 0);
    strcpy(first, key_value(red, "password", "hunter2", &out));
    assert_string_equal(key_value(red, "api_key", "hunter2", &out), first);
    assert_string_not_equal(key_value(red, "password", "hunter3", &out), first);
    lv_redact_free(red);
    r.hmac.key = "another-key-another-key-another-key";
    r.hmac.key_len = strlen(r.hmac.key);
    red = build(&r);
    strcpy(other_key, key_value(red, "password", "hunter2", &out));
    assert_string_not_equal(other_key, first);
    assert_memory_equal(other_key, "\"hmac:t:", 8);
    lv_buf_free(&out);
    lv_redact_free(red);
}

static void hash_masks_a_container_which_has_no_text(void **state)
{
    struct rules r;
    struct lv_buf out;
    (void)state;
    rules_default(&r, LV_ACTION_HASH);
    struct lv_redactor *red = build(&r);
    lv_buf_init(&out, 64, 0);
    assert_string_equal(key_value(red, "secret", NULL, &out), "\"[REDACTED]\"");
    lv_buf_free(&out);
    lv_redact_free(red);
}

static void value_rules_hash_what_they_match(void **state)
{
    struct rules r;
    (void)state;
    rules_default(&r, LV_ACTION_HASH);
    struct lv_redactor *red = build(&r);
    assert_redacts(red, "Bearer abcdefghijk", "\"Bearer hmac:t:fcfba3d102ed8d31\"", 1);
    assert_redacts(red, "password=hunter2", "\"password=hmac:t:b6a75e577bc8eccd\"", 1);
    lv_redact_free(red);
}

static void drop_writes_nothing_and_reports_the_drop_action(void **state)
{
    struct rules r;
    struct lv_buf out;
    (void)state;
    rules_default(&r, LV_ACTION_DROP);
    struct lv_redactor *red = build(&r);
    lv_buf_init(&out, 64, 0);
    assert_int_equal(lv_redact_key_action(red, lv_redact_key(red, "password", 8)), LV_ACTION_DROP);
    assert_string_equal(key_value(red, "password", "hunter2", &out), "");
    assert_string_equal(key_value(red, "token", NULL, &out), "");
    lv_buf_free(&out);
    lv_redact_free(red);
}

static void value_rules_under_drop_remove_the_matched_text(void **state)
{
    struct rules r;
    (void)state;
    rules_default(&r, LV_ACTION_DROP);
    struct lv_redactor *red = build(&r);
    assert_redacts(red, "Authorization: Bearer abcdefghijk", "\"Authorization: Bearer \"", 1);
    assert_redacts(red, "id AKIAIOSFODNN7EXAMPLE!", "\"id !\"", 1);
    lv_redact_free(red);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(normalise_lowers_case_and_removes_underscores_dashes_and_dots),
        cmocka_unit_test(normalise_keeps_every_other_character),
        cmocka_unit_test(normalise_keeps_a_nul_byte_distinct_from_nothing),
        cmocka_unit_test(normalise_reports_cap_plus_one_when_the_key_does_not_fit),
        cmocka_unit_test(contains_rules_match_any_key_whose_normal_form_holds_the_word),
        cmocka_unit_test(keys_that_do_not_hold_a_word_match_no_rule),
        cmocka_unit_test(exact_rules_match_only_the_whole_normalised_key),
        cmocka_unit_test(the_first_matching_rule_wins),
        cmocka_unit_test(long_keys_are_matched_past_the_key_buffer),
        cmocka_unit_test(scan_reports_every_spelling_of_every_key_word),
        cmocka_unit_test(scan_reports_every_spelling_of_every_built_in_hint),
        cmocka_unit_test(scan_reports_a_word_at_every_offset_including_the_very_end),
        cmocka_unit_test(scan_reports_a_three_letter_hint_that_ends_the_line),
        cmocka_unit_test(scan_reports_everything_for_a_line_with_a_backslash),
        cmocka_unit_test(scan_hits_are_the_same_with_and_without_the_prefilter),
        cmocka_unit_test(scan_finds_nothing_in_a_line_without_any_word),
        cmocka_unit_test(value_rules_mask_credentials_inside_strings),
        cmocka_unit_test(strings_without_candidates_are_only_escaped),
        cmocka_unit_test(a_backslash_in_the_text_runs_only_the_rules_that_exist),
        cmocka_unit_test(a_user_rule_redacts_its_group_only),
        cmocka_unit_test(a_bad_user_pattern_is_reported_not_compiled),
        cmocka_unit_test(long_values_after_a_key_are_redacted_not_failed),
        cmocka_unit_test(mask_writes_the_replacement_for_any_value),
        cmocka_unit_test(a_rule_replacement_overrides_the_default),
        cmocka_unit_test(hash_writes_hmac_and_sixteen_hex_digits_of_hmac_sha256),
        cmocka_unit_test(hash_is_stable_for_a_key_and_differs_between_keys),
        cmocka_unit_test(hash_masks_a_container_which_has_no_text),
        cmocka_unit_test(value_rules_hash_what_they_match),
        cmocka_unit_test(drop_writes_nothing_and_reports_the_drop_action),
        cmocka_unit_test(value_rules_under_drop_remove_the_matched_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
