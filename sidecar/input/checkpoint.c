/*
 * The checkpoint store. Loading is all or nothing: every line is checked, and
 * the checksum on the `end` line covers every byte before it, so a file cut
 * short by a crash, or damaged on disk, is refused rather than half believed.
 * Paths are escaped (backslash and newline) so that one entry is one line.
 */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"

#define HEADER_V1 "logveil-tail-checkpoint 1\n"
#define HEADER "logveil-tail-checkpoint 2\n"
#define MAX_FILE (64u << 20)

uint64_t lv_checkpoint_fingerprint(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- loading -------------------------------------------------------------------- */

/* An unsigned number in `base` followed by `sep`; advances *p past both. */
static int parse_num(char **p, int base, char sep, uint64_t *out)
{
    char *s = *p, *end;
    if (!(base == 16 ? isxdigit((unsigned char)*s) : *s >= '0' && *s <= '9'))
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || *end != sep)
        return -EINVAL;
    *out = v;
    *p = end + 1;
    return 0;
}

/* Undoes the escaping of a path in place, up to the end of the line. */
static int unescape_path(char *s)
{
    char *out = s;
    for (; *s != '\n'; s++) {
        if (*s == '\0')
            return -EINVAL;
        if (*s == '\\') {
            s++;
            if (*s != '\\' && *s != 'n')
                return -EINVAL;
            *out++ = *s == 'n' ? '\n' : '\\';
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
    return 0;
}

/* The flags as written: a letter each, in this order, or `-` for none. */
static const struct {
    unsigned flag;
    char letter;
} flag_letters[] = {
    {LV_CHECKPOINT_DONE, 'd'},
    {LV_CHECKPOINT_GZ, 'z'},
    {LV_CHECKPOINT_UNREAD, 'u'},
};

/* A flags word followed by a space; advances *p past both. */
static int parse_flags(char **p, unsigned *flags)
{
    char *s = *p;
    *flags = 0;
    if (*s == '-') {
        s++;
    } else {
        for (size_t i = 0; i < LV_ARRAY_LEN(flag_letters); i++)
            if (*s == flag_letters[i].letter) {
                *flags |= flag_letters[i].flag;
                s++;
            }
        if (s == *p)
            return -EINVAL;
    }
    if (*s != ' ')
        return -EINVAL;
    *p = s + 1;
    return 0;
}

static void format_flags(unsigned flags, char out[8])
{
    size_t n = 0;
    for (size_t i = 0; i < LV_ARRAY_LEN(flag_letters); i++)
        if (flags & flag_letters[i].flag)
            out[n++] = flag_letters[i].letter;
    if (n == 0)
        out[n++] = '-';
    out[n] = '\0';
}

static int parse_entry(char *line, int version, struct lv_checkpoint_entry *e)
{
    uint64_t fp_len, tail_len = 0;
    char *p = line;
    if (parse_num(&p, 10, ' ', &e->dev) < 0 || parse_num(&p, 10, ' ', &e->ino) < 0 ||
        parse_num(&p, 16, ' ', &e->fp) < 0 || parse_num(&p, 10, ' ', &fp_len) < 0 ||
        parse_num(&p, 10, ' ', &e->offset) < 0 || fp_len > LV_CHECKPOINT_FP_MAX)
        return -EINVAL;
    if (version > 1 &&
        (parse_num(&p, 16, ' ', &e->tail_fp) < 0 || parse_num(&p, 10, ' ', &tail_len) < 0 ||
         tail_len > LV_CHECKPOINT_TAIL_MAX || parse_flags(&p, &e->flags) < 0))
        return -EINVAL;
    e->fp_len = (uint32_t)fp_len;
    e->tail_len = (uint32_t)tail_len;
    e->path = p;
    return unescape_path(p);
}

/* The `end` line: the last line of `text`, which must end with '\n'. Checks
 * its checksum against every byte before it and returns the entry count it
 * declares through `count`; NULL when it is missing or wrong. */
static char *find_end(char *text, size_t len, uint64_t *count)
{
    if (len < 2 || text[len - 1] != '\n')
        return NULL;
    char *end = text + len - 1;
    while (end > text && end[-1] != '\n')
        end--;
    uint64_t sum;
    char *p = end + 4;
    if (strncmp(end, "end ", 4) != 0 || parse_num(&p, 10, ' ', count) < 0 ||
        parse_num(&p, 16, '\n', &sum) < 0 || *p != '\0')
        return NULL;
    return sum == lv_checkpoint_fingerprint(text, (size_t)(end - text)) ? end : NULL;
}

static int parse(struct lv_checkpoint *cp, size_t len)
{
    char *text = cp->text, *line = text + strlen(HEADER);
    uint64_t count;
    if (strlen(text) != len)
        return -EINVAL;
    if (strncmp(text, HEADER, strlen(HEADER)) == 0)
        cp->version = 2;
    else if (strncmp(text, HEADER_V1, strlen(HEADER_V1)) == 0)
        cp->version = 1;
    else
        return -EINVAL;
    char *end = find_end(text, len, &count);
    if (!end || end < line || count > (uint64_t)(end - line) / 2)
        return -EINVAL;
    cp->entries = lv_xcalloc(count ? count : 1, sizeof *cp->entries);
    while (line < end) {
        char *nl = strchr(line, '\n');
        if (cp->n == count || parse_entry(line, cp->version, &cp->entries[cp->n]) < 0)
            return -EINVAL;
        cp->n++;
        line = nl + 1;
    }
    return cp->n == count ? 0 : -EINVAL;
}

int lv_checkpoint_load(const char *path, struct lv_checkpoint *cp)
{
    *cp = (struct lv_checkpoint){0};
    size_t len;
    int rc = lv_read_file(path, MAX_FILE, &cp->text, &len);
    if (rc < 0)
        return rc;
    rc = parse(cp, len);
    if (rc < 0) {
        free(cp->entries);
        cp->entries = NULL;
        cp->n = 0;
    }
    return rc;
}

void lv_checkpoint_free(struct lv_checkpoint *cp)
{
    if (!cp)
        return;
    free(cp->entries);
    free(cp->text);
    *cp = (struct lv_checkpoint){0};
}

/* ---- writing -------------------------------------------------------------------- */

static int put_path(struct lv_buf *out, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        if (*s == '\\')
            rc = lv_buf_puts(out, "\\\\");
        else if (*s == '\n')
            rc = lv_buf_puts(out, "\\n");
        else
            rc = lv_buf_putc(out, *s);
    }
    return rc;
}

static int put_fmt(struct lv_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int put_fmt(struct lv_buf *out, const char *fmt, ...)
{
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    return lv_buf_append(out, line, (size_t)n);
}

int lv_checkpoint_format(const struct lv_checkpoint_entry *e, size_t n, struct lv_buf *out)
{
    size_t start = out->len;
    int rc = lv_buf_puts(out, HEADER);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char flags[8];
        format_flags(e[i].flags, flags);
        rc = put_fmt(out,
                     "%" PRIu64 " %" PRIu64 " %016" PRIx64 " %" PRIu32 " %" PRIu64 " %016" PRIx64
                     " %" PRIu32 " %s ",
                     e[i].dev, e[i].ino, e[i].fp, e[i].fp_len, e[i].offset, e[i].tail_fp,
                     e[i].tail_len, flags);
        if (rc == 0)
            rc = put_path(out, e[i].path ? e[i].path : "");
        if (rc == 0)
            rc = lv_buf_putc(out, '\n');
    }
    if (rc == 0) {
        uint64_t sum = lv_checkpoint_fingerprint(out->data + start, out->len - start);
        rc = put_fmt(out, "end %zu %016" PRIx64 "\n", n, sum);
    }
    if (rc < 0)
        out->len = start;
    return rc;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The directory part of `path` ("." when there is none), in `dir`. */
static void dir_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, size, ".");
    else if (slash == path)
        snprintf(dir, size, "/");
    else
        snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

static int sync_dir(const char *path)
{
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int lv_checkpoint_write(const char *path, const char *data, size_t len)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    return sync_dir(path);
}

int lv_checkpoint_mkdir(const char *path)
{
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = c;
        if (c == '\0')
            return 0;
    }
}
