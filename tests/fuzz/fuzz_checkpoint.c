/*
 * libFuzzer target over the tail checkpoint reader (lv_checkpoint_load).
 *
 * The first byte picks the mode: with its low bit set, the target writes
 * the rest followed by a correct `end` line (entry count and checksum,
 * computed here with its own FNV-1a, from the format described in
 * checkpoint.h), so that the fuzzer reaches the entry parser instead of
 * stopping at the checksum; otherwise the bytes are the file as they are.
 *
 * Oracles: no crash, leak or unbounded allocation; a file that loads
 * formats (lv_checkpoint_format) into text that loads again into the same
 * entries (every field a version 2 line holds; version 1 files have no tail
 * fingerprint and no flags), and formats again into the same bytes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "input/checkpoint.h"
#include "logveil/util.h"

static char dir[64], path[128], path2[128];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "%s/lv-fuzz-ckpt-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/a.ckpt", dir);
    snprintf(path2, sizeof path2, "%s/b.ckpt", dir);
    return 0;
}

/* FNV-1a, 64 bits, written from its definition. */
static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void write_file(const char *name, const uint8_t *data, size_t size, bool fix)
{
    FILE *f = fopen(name, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size))
        abort();
    if (fix) {
        size_t lines = 0;
        for (size_t i = 0; i < size; i++)
            lines += data[i] == '\n';
        if (size && data[size - 1] != '\n') {
            fputc('\n', f);
            lines++;
        }
        uint8_t *all = lv_xmalloc(size + 1);
        memcpy(all, data, size);
        size_t n = size;
        if (n && all[n - 1] != '\n')
            all[n++] = '\n';
        fprintf(f, "end %zu %016" PRIx64 "\n", lines ? lines - 1 : 0, fnv1a(all, n));
        free(all);
    }
    if (fclose(f) != 0)
        abort();
}

static bool same_entry(const struct lv_checkpoint_entry *a, const struct lv_checkpoint_entry *b,
                       int version)
{
    bool v2 = version != 1;
    return a->dev == b->dev && a->ino == b->ino && a->fp == b->fp && a->fp_len == b->fp_len &&
           a->offset == b->offset && strcmp(a->path, b->path) == 0 &&
           (!v2 ||
            (a->tail_fp == b->tail_fp && a->tail_len == b->tail_len && a->flags == b->flags));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    write_file(path, data + 1, size - 1, data[0] & 1);
    struct lv_checkpoint cp, again;
    int rc = lv_checkpoint_load(path, &cp);
    if (rc == 0) {
        struct lv_buf text, text2;
        lv_buf_init(&text, 4096, 0);
        lv_buf_init(&text2, 4096, 0);
        if (lv_checkpoint_format(cp.entries, cp.n, &text) < 0)
            abort();
        write_file(path2, (const uint8_t *)text.data, text.len, false);
        if (lv_checkpoint_load(path2, &again) != 0 || again.n != cp.n) {
            fprintf(stderr, "a loaded checkpoint, formatted, does not load again\n");
            abort();
        }
        for (size_t i = 0; i < cp.n; i++) {
            if (!same_entry(&cp.entries[i], &again.entries[i], cp.version)) {
                fprintf(stderr, "entry %zu changed through format and load\n", i);
                abort();
            }
        }
        if (lv_checkpoint_format(again.entries, again.n, &text2) < 0 || text2.len != text.len ||
            memcmp(text.data, text2.data, text.len) != 0) {
            fprintf(stderr, "formatting is not stable\n");
            abort();
        }
        lv_checkpoint_free(&again);
        lv_buf_free(&text);
        lv_buf_free(&text2);
    } else if (rc != -EINVAL) {
        fprintf(stderr, "load: unexpected %d\n", rc);
        abort();
    }
    lv_checkpoint_free(&cp);
    return 0;
}
