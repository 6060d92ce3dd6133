/*
 * gzip reading for the tail input, through zlib's gz* interface. Reads are
 * sequential: the caller skips to a checkpoint offset with bounded reads,
 * and a range is found by decompressing everything before it. The trailer
 * is the one part read without decompressing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tail_gz.h"

bool lv_tail_gz_is_gzip(int fd)
{
    unsigned char magic[2];
    ssize_t n;
    do
        n = pread(fd, magic, sizeof magic, 0);
    while (n < 0 && errno == EINTR);
    return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

struct gzFile_s *lv_tail_gz_open(int fd)
{
    if (!lv_tail_gz_is_gzip(fd) || lseek(fd, 0, SEEK_SET) < 0) {
        int err = errno ? errno : EINVAL;
        close(fd);
        errno = err;
        return NULL;
    }
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    gzbuffer(gz, 64 * 1024);
    return gz;
}

ssize_t lv_tail_gz_read(struct gzFile_s *gz, char *buf, size_t len, const char **what)
{
    if (len > INT_MAX)
        len = INT_MAX;
    int n = gzread(gz, buf, (unsigned)len);
    if (n < 0) {
        int zerr;
        *what = gzerror(gz, &zerr);
        if (zerr == Z_ERRNO)
            *what = "read error";
        return -1;
    }
    return n;
}

void lv_tail_gz_close(struct gzFile_s *gz)
{
    if (gz)
        gzclose(gz);
}

ssize_t lv_tail_gz_head(int fd, char *buf, size_t len)
{
    return lv_tail_gz_range(fd, 0, buf, len);
}

/* Decompresses and drops `skip` bytes; false on an error or an early end. */
static bool skip_bytes(gzFile gz, uint64_t skip)
{
    char scratch[16384];
    const char *what;
    while (skip > 0) {
        ssize_t n = lv_tail_gz_read(gz, scratch, skip < sizeof scratch ? (size_t)skip : sizeof scratch,
                                    &what);
        if (n <= 0)
            return false;
        skip -= (uint64_t)n;
    }
    return true;
}

ssize_t lv_tail_gz_range(int fd, uint64_t at, char *buf, size_t len)
{
    errno = 0;
    if (!lv_tail_gz_is_gzip(fd))
        return -1;
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* gzclose closes it; shares the position */
    if (dup_fd < 0)
        return -1;
    gzFile gz = lv_tail_gz_open(dup_fd);
    if (!gz)
        return -1;
    const char *what;
    size_t got = 0;
    ssize_t n = skip_bytes(gz, at) ? 1 : 0;
    while (n > 0 && got < len && (n = lv_tail_gz_read(gz, buf + got, len - got, &what)) > 0)
        got += (size_t)n;
    gzclose(gz);
    lseek(fd, 0, SEEK_SET);
    return n < 0 && got == 0 ? -1 : (ssize_t)got;
}

bool lv_tail_gz_trailer(int fd, unsigned char out[8])
{
    struct stat st;
    ssize_t n;
    if (!lv_tail_gz_is_gzip(fd) || fstat(fd, &st) < 0 || st.st_size < 18) /* header + trailer */
        return false;
    do
        n = pread(fd, out, 8, st.st_size - 8);
    while (n < 0 && errno == EINTR);
    return n == 8;
}

uint32_t lv_tail_gz_trailer_size(const unsigned char t[8])
{
    return (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
}
