/*
 * gzip-compressed rotated files (the kubelet's 0.log.<ts>.gz) for the tail
 * input: their decompressed first bytes, and sequential decompression in
 * bounded reads. Offsets into such a file are offsets into its
 * decompressed stream, as checkpoint offsets are content offsets.
 *
 * Ownership: lv_tail_gz_open() takes the descriptor; lv_tail_gz_close()
 * closes both.
 */
#ifndef LOGVEIL_SIDECAR_INPUT_TAIL_GZ_H
#define LOGVEIL_SIDECAR_INPUT_TAIL_GZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct gzFile_s;

/* Whether the descriptor's file starts with the gzip magic bytes. */
bool lv_tail_gz_is_gzip(int fd);
/* Up to `len` decompressed bytes from the start of the gzip file open on
 * `fd` (which stays open, its position at 0); -1 when it is not gzip or
 * cannot be read. */
ssize_t lv_tail_gz_head(int fd, char *buf, size_t len);
/* The same for the `len` decompressed bytes at offset `at`, decompressing
 * everything before them: fewer when the content ends first. */
ssize_t lv_tail_gz_range(int fd, uint64_t at, char *buf, size_t len);
/* The gzip trailer (the last 8 bytes: CRC-32 and length modulo 2^32 of the
 * content) of the file open on `fd`, in `out`; false when it is not gzip or
 * too short. Cheap: one read, no decompression. */
bool lv_tail_gz_trailer(int fd, unsigned char out[8]);
/* The content length a trailer gives (modulo 2^32). */
uint32_t lv_tail_gz_trailer_size(const unsigned char trailer[8]);
/* Decompresses the file open on `fd` from its start; takes `fd`, even on
 * failure (NULL, errno set). */
struct gzFile_s *lv_tail_gz_open(int fd);
/* Up to `len` decompressed bytes; 0 at the end; -1 on an error, described
 * by *what. */
ssize_t lv_tail_gz_read(struct gzFile_s *gz, char *buf, size_t len, const char **what);
void lv_tail_gz_close(struct gzFile_s *gz);

#endif
