/*
 * fuzz_walfile.c — the WAL reader (src/core/walfile.c) on arbitrary bytes:
 * the 32-byte header and every frame after it, read through the same pread
 * interface the archiver uses, from memory.
 *
 * An input is a WAL file as SQLite writes it. Random bytes almost never
 * carry valid WAL checksums, so each input is read twice: as it is, and
 * once more after its header checksum and each frame's cumulative checksum
 * have been recomputed (salts, page numbers and commit marks are left as the
 * input has them), so that mutations reach the frame logic behind the
 * checksums.
 *
 * Checks the contracts of walfile.h: commits come in frame order without
 * overlap, each lists one page number per frame, never page 0, and never a
 * frame beyond the file or beyond max_frame.
 */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlenvfs/walfile.h"

typedef struct {
  const guint8 *data;
  gsize size;
} Mem;

static gssize
mem_pread(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  const Mem *m = src;
  if (off < 0 || (guint64)off >= m->size)
    return 0;
  len = MIN(len, m->size - (gsize)off);
  memcpy(buf, m->data + off, len);
  return (gssize)len;
}

static guint32
get_be32(const guint8 *p)
{
  return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | p[3];
}

static void
put_be32(guint8 *p, guint32 v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

static void
fail(const char *what, guint32 frame)
{
  fprintf(stderr, "fuzz_walfile: %s (frame %u)\n", what, frame);
  abort();
}

/* Read every commit of @m, checking what is reported. */
static void
scan(const Mem *m, guint32 max_frame)
{
  SqlenvfsWalHeader hdr;
  SqlenvfsWalCursor cur;
  SqlenvfsWalCommit commit = { 0 };
  guint32 expect_first = 1;
  guint64 n_frames;

  if (!sqlenvfs_wal_read_header(mem_pread, (gpointer)m, &hdr, NULL))
    return;
  n_frames = (m->size - SQLENVFS_WAL_HEADER_SIZE) /
             (SQLENVFS_WAL_FRAME_HEADER_SIZE + (guint64)hdr.page_size);
  sqlenvfs_wal_cursor_init(&cur, &hdr);
  while (sqlenvfs_wal_next_commit(mem_pread, (gpointer)m, &cur, max_frame, &commit, NULL)) {
    if (commit.first_frame != expect_first || commit.commit_frame < commit.first_frame ||
        commit.commit_frame > n_frames || (max_frame && commit.commit_frame > max_frame))
      fail("a commit out of order or beyond the file", commit.commit_frame);
    if (commit.pgnos == NULL ||
        commit.pgnos->len != commit.commit_frame - commit.first_frame + 1)
      fail("a commit whose page list does not match its frames", commit.commit_frame);
    for (guint i = 0; i < commit.pgnos->len; i++)
      if (g_array_index(commit.pgnos, guint32, i) == 0)
        fail("page number 0 reported", commit.first_frame + i);
    if (commit.db_pages == 0 || cur.next_frame != commit.commit_frame + 1)
      fail("a commit that is not a commit", commit.commit_frame);
    expect_first = commit.commit_frame + 1;
    sqlenvfs_wal_commit_clear(&commit);
  }
  if (commit.pgnos != NULL)
    fail("a failed read left a page list behind", cur.next_frame);
}

/* Recompute the header checksum and each frame's cumulative checksum. */
static void
fix_checksums(guint8 *b, gsize size)
{
  guint32 magic, ps, s1 = 0, s2 = 0;
  gboolean be;
  gsize fsz;

  if (size < SQLENVFS_WAL_HEADER_SIZE)
    return;
  magic = get_be32(b);
  be = (magic & 1) != 0;
  ps = get_be32(b + 8);
  sqlenvfs_wal_checksum(be, b, 24, &s1, &s2);
  put_be32(b + 24, s1);
  put_be32(b + 28, s2);
  if (ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0)
    return;
  fsz = SQLENVFS_WAL_FRAME_HEADER_SIZE + ps;
  for (gsize off = SQLENVFS_WAL_HEADER_SIZE; off + fsz <= size; off += fsz) {
    sqlenvfs_wal_checksum(be, b + off, 8, &s1, &s2);
    sqlenvfs_wal_checksum(be, b + off + SQLENVFS_WAL_FRAME_HEADER_SIZE, ps, &s1, &s2);
    put_be32(b + off + 16, s1);
    put_be32(b + off + 20, s2);
  }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  fuzz_init_logging();
  return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  Mem m = { data, size };
  g_autofree guint8 *fixed = g_memdup2(data, size ? size : 1);
  Mem f = { fixed, size };
  guint32 limit = size > 0 ? data[size - 1] % 8 : 0;

  scan(&m, 0);
  fix_checksums(fixed, size);
  scan(&f, 0);
  /* Stop early at a frame limit taken from the input. */
  if (limit > 0)
    scan(&f, limit);
  return 0;
}
