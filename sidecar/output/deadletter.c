/*
 * Dead-letter files (the contract is in deadletter.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_map.h"
#include "deadletter.h"
#include "enrich.h"
#include "json_write.h"
#include "logveil/log.h"
#include "logveil/util.h"

#define TEXT_MAX 1024

struct lv_deadletter {
    int fd;
    char *path;
    char *output;
    struct lv_buf line;
    uint64_t count;
    bool failing;
};

struct lv_deadletter *lv_deadletter_open(const char *path, const char *output, char *err,
                                         size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open dead_letter %s: %s", path, strerror(errno));
        return NULL;
    }
    struct lv_deadletter *d = lv_xcalloc(1, sizeof *d);
    d->fd = fd;
    d->path = lv_xstrdup(path);
    d->output = lv_xstrdup(output);
    lv_buf_init(&d->line, 4096, 0);
    return d;
}

static int put_text(struct lv_buf *b, const char *s, size_t len)
{
    return lv_json_string(b, s ? s : "", s ? (len > TEXT_MAX ? TEXT_MAX : len) : 0, NULL);
}

static int format(struct lv_deadletter *d, const char *record, size_t len, int status,
                  const char *type, size_t type_len, const char *reason, size_t reason_len)
{
    struct lv_buf *b = &d->line;
    char head[160], ts[32];
    lv_time_format(lv_now_ns(), ts);
    b->len = 0;
    int n = snprintf(head, sizeof head, "{\"time\":\"%s\",\"output\":", ts);
    int rc = lv_buf_append(b, head, (size_t)n);
    rc |= put_text(b, d->output, strlen(d->output));
    n = snprintf(head, sizeof head, ",\"status\":%d,\"error\":{\"type\":", status);
    rc |= lv_buf_append(b, head, (size_t)n);
    rc |= put_text(b, type, type_len);
    rc |= lv_buf_puts(b, ",\"reason\":");
    rc |= put_text(b, reason, reason_len);
    rc |= lv_buf_puts(b, "},\"record\":");
    rc |= lv_buf_append(b, record, len);
    rc |= lv_buf_puts(b, "}\n");
    return rc ? -ENOBUFS : 0;
}

int lv_deadletter_write(struct lv_deadletter *d, const char *record, size_t len, int status,
                        const char *type, size_t type_len, const char *reason,
                        size_t reason_len)
{
    int rc = format(d, record, len, status, type, type_len, reason, reason_len);
    if (rc == 0) {
        ssize_t w = write(d->fd, d->line.data, d->line.len);
        rc = w == (ssize_t)d->line.len ? 0 : w < 0 ? -errno : -EIO;
    }
    if (rc < 0 && !d->failing)
        lv_error("output %s: cannot write the dead_letter file %s: %s; rejected records are "
                 "still counted (reason rejected)",
                 d->output, d->path, strerror(-rc));
    d->failing = rc < 0;
    d->count += rc == 0;
    return rc;
}

uint64_t lv_deadletter_count(const struct lv_deadletter *d)
{
    return d ? d->count : 0;
}

void lv_deadletter_close(struct lv_deadletter *d)
{
    if (!d)
        return;
    close(d->fd);
    lv_buf_free(&d->line);
    free(d->path);
    free(d->output);
    free(d);
}

/* The directory a dead-letter file goes in must exist and be writable. */
void lv_deadletter_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node,
                              const char *path, const char *where)
{
    char dir[4096], at[LV_CONF_MAP_WHERE];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
             slash ? path : ".");
    if (access(dir, W_OK) < 0)
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "dead_letter"),
                          lv_conf_map_join(at, where, "dead_letter"),
                          "cannot write in the directory %s: %s", dir, strerror(errno));
}
