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
 * frame beyond the file or beyond max_frame; a scan that takes each commit
 * frame from sqlenvfs_wal_find_commit_frame() as its limit (as the
 * archiver does) finds the same commits.
 *
 * The first SQLENVFS_WAL_INDEX_HEADER_SIZE bytes are also parsed as a
 * wal-index header, as they are and once more made plausible (built, the
 * right version, the second copy equal to the first, its checksum
 * recomputed): a header accepted has two equal copies, and the parse is
 * deterministic.
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

/* The same scan, commit frame by commit frame, as the archiver reads:
 * every commit it finds is the next one of the plain scan. */
static void
scan_by_commit_frame(const Mem *m, guint32 max_frame)
{
  SqlenvfsWalHeader hdr;
  SqlenvfsWalCursor plain, cur;
  SqlenvfsWalCommit a = { 0 }, b = { 0 };
  guint32 f;

  if (!sqlenvfs_wal_read_header(mem_pread, (gpointer)m, &hdr, NULL))
    return;
  sqlenvfs_wal_cursor_init(&plain, &hdr);
  sqlenvfs_wal_cursor_init(&cur, &hdr);
  while ((f = sqlenvfs_wal_find_commit_frame(mem_pread, (gpointer)m, &cur, max_frame)) != 0) {
    SqlenvfsWalFrameHeader fh;
    if (f < cur.next_frame || (max_frame && f > max_frame))
      fail("a commit frame outside the range searched", f);
    if (!sqlenvfs_wal_frame_header_read(mem_pread, (gpointer)m, hdr.page_size, f, &fh, NULL) ||
        fh.db_pages == 0 || fh.pgno == 0 || fh.salt1 != hdr.salt1 || fh.salt2 != hdr.salt2)
      fail("a commit frame that does not look like one", f);
    if (!sqlenvfs_wal_next_commit(mem_pread, (gpointer)m, &cur, f, &b, NULL))
      break; /* a checksum breaks the chain before it: the plain scan stops too */
    if (!sqlenvfs_wal_next_commit(mem_pread, (gpointer)m, &plain, max_frame, &a, NULL) ||
        a.commit_frame != b.commit_frame || a.first_frame != b.first_frame ||
        a.cksum1 != b.cksum1 || a.cksum2 != b.cksum2 || a.pgnos->len != b.pgnos->len)
      fail("the commit-frame scan and the plain scan disagree", f);
    sqlenvfs_wal_commit_clear(&a);
    sqlenvfs_wal_commit_clear(&b);
  }
  /* Nothing after: the plain scan finds no further commit either. */
  if (sqlenvfs_wal_next_commit(mem_pread, (gpointer)m, &plain, max_frame, &a, NULL))
    fail("the commit-frame scan missed a commit", a.commit_frame);
  sqlenvfs_wal_commit_clear(&a);
}

/* Parse @b as a wal-index header; if accepted, check what was accepted. */
static void
parse_wal_index(const guint8 *b)
{
  SqlenvfsWalIndexHeader wi, again;
  if (!sqlenvfs_wal_index_parse(b, &wi))
    return;
  if (memcmp(b, b + 48, 48) != 0 || b[12] == 0)
    fail("a wal-index header accepted with differing copies or not built", 0);
  if (!sqlenvfs_wal_index_parse(b, &again) || memcmp(&wi, &again, sizeof wi) != 0)
    fail("a wal-index header parsed two ways", wi.mx_frame);
}

static void
fuzz_wal_index(const uint8_t *data, size_t size)
{
  guint8 b[SQLENVFS_WAL_INDEX_HEADER_SIZE] = { 0 };
  SqlenvfsWalIndexHeader wi;
  const guint32 version = 3007000;
  guint32 s1 = 0, s2 = 0;

  memcpy(b, data, MIN(size, sizeof b));
  parse_wal_index(b);
  memcpy(b, &version, 4);
  b[12] |= 1;
  sqlenvfs_wal_checksum(G_BYTE_ORDER == G_BIG_ENDIAN, b, 40, &s1, &s2);
  memcpy(b + 40, &s1, 4);
  memcpy(b + 44, &s2, 4);
  memcpy(b + 48, b, 48);
  if (!sqlenvfs_wal_index_parse(b, &wi))
    fail("a well-formed wal-index header refused", 0);
  parse_wal_index(b);
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
  fuzz_wal_index(data, size);
  fix_checksums(fixed, size);
  scan(&f, 0);
  scan_by_commit_frame(&f, 0);
  /* Stop early at a frame limit taken from the input. */
  if (limit > 0) {
    scan(&f, limit);
    scan_by_commit_frame(&f, limit);
  }
  return 0;
}
