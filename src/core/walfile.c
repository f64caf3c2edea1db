/*
 * walfile.c — reading SQLite's WAL file: header, frames, checksums, commits.
 *
 * The byte layout and the invariants are in walfile.h. This reader never
 * writes, never takes locks, and never reports a frame that is not part of a
 * committed transaction with a valid checksum chain (invariants 1 and 2).
 * Frames are read in batches of up to FRAMES_PER_READ to keep the number of
 * system calls low on large WALs.
 */
#include "sqlenvfs/walfile.h"
#include "sqlenvfs/error.h"

#include <string.h>

#define WAL_MAGIC_LE 0x377f0682u
#define WAL_MAGIC_BE 0x377f0683u
#define WAL_VERSION 3007000u
#define FRAMES_PER_READ 64

static guint32
get_be32(const guint8 *p)
{
  return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | p[3];
}

static guint32
get_le32(const guint8 *p)
{
  return ((guint32)p[3] << 24) | ((guint32)p[2] << 16) | ((guint32)p[1] << 8) | p[0];
}

void
sqlenvfs_wal_checksum(gboolean big_endian, const guint8 *data, gsize len, guint32 *s1,
                      guint32 *s2)
{
  guint32 a = *s1, b = *s2;
  g_return_if_fail(len % 8 == 0);
  if (big_endian) {
    for (gsize i = 0; i < len; i += 8) {
      a += get_be32(data + i) + b;
      b += get_be32(data + i + 4) + a;
    }
  } else {
    for (gsize i = 0; i < len; i += 8) {
      a += get_le32(data + i) + b;
      b += get_le32(data + i + 4) + a;
    }
  }
  *s1 = a;
  *s2 = b;
}

goffset
sqlenvfs_wal_page_offset(guint32 page_size, guint32 frame)
{
  return SQLENVFS_WAL_HEADER_SIZE +
         (goffset)(frame - 1) * (SQLENVFS_WAL_FRAME_HEADER_SIZE + page_size) +
         SQLENVFS_WAL_FRAME_HEADER_SIZE;
}

/* Read exactly @len bytes or report how many were there. */
static gssize
read_full(SqlenvfsPreadFunc read, gpointer src, void *buf, gsize len, goffset off,
          GError **error)
{
  gsize done = 0;
  while (done < len) {
    gssize n = read(src, (guint8 *)buf + done, len - done, off + (goffset)done, error);
    if (n < 0)
      return -1;
    if (n == 0)
      break;
    done += (gsize)n;
  }
  return (gssize)done;
}

gboolean
sqlenvfs_wal_read_header(SqlenvfsPreadFunc read, gpointer src, SqlenvfsWalHeader *hdr,
                         GError **error)
{
  guint8 b[SQLENVFS_WAL_HEADER_SIZE];
  guint32 magic, s1 = 0, s2 = 0, page_size;
  gssize n = read_full(read, src, b, sizeof b, 0, error);

  if (n < 0)
    return FALSE;
  if (n < (gssize)sizeof b)
    return FALSE;
  magic = get_be32(b);
  if (magic != WAL_MAGIC_LE && magic != WAL_MAGIC_BE)
    return FALSE;
  if (get_be32(b + 4) != WAL_VERSION)
    return FALSE;
  page_size = get_be32(b + 8);
  if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)) != 0)
    return FALSE;
  sqlenvfs_wal_checksum(magic == WAL_MAGIC_BE, b, 24, &s1, &s2);
  if (s1 != get_be32(b + 24) || s2 != get_be32(b + 28))
    return FALSE;
  hdr->big_endian_cksum = magic == WAL_MAGIC_BE;
  hdr->page_size = page_size;
  hdr->ckpt_seq = get_be32(b + 12);
  hdr->salt1 = get_be32(b + 16);
  hdr->salt2 = get_be32(b + 20);
  hdr->cksum1 = s1;
  hdr->cksum2 = s2;
  return TRUE;
}

void
sqlenvfs_wal_cursor_init(SqlenvfsWalCursor *cur, const SqlenvfsWalHeader *hdr)
{
  cur->hdr = *hdr;
  cur->next_frame = 1;
  cur->cksum1 = hdr->cksum1;
  cur->cksum2 = hdr->cksum2;
}

void
sqlenvfs_wal_commit_clear(SqlenvfsWalCommit *commit)
{
  if (commit->pgnos)
    g_array_unref(commit->pgnos);
  memset(commit, 0, sizeof *commit);
}

gboolean
sqlenvfs_wal_next_commit(SqlenvfsPreadFunc read, gpointer src, SqlenvfsWalCursor *cur,
                         guint32 max_frame, SqlenvfsWalCommit *commit, GError **error)
{
  const guint32 ps = cur->hdr.page_size;
  const gsize fsz = SQLENVFS_WAL_FRAME_HEADER_SIZE + ps;
  g_autofree guint8 *buf = g_malloc(fsz * FRAMES_PER_READ);
  g_autoptr(GArray) pgnos = g_array_new(FALSE, FALSE, sizeof(guint32));
  guint32 frame = cur->next_frame, s1 = cur->cksum1, s2 = cur->cksum2;

  for (;;) {
    guint32 want = FRAMES_PER_READ, got;
    gssize n;

    if (max_frame && frame > max_frame)
      return FALSE;
    if (max_frame && max_frame - frame + 1 < want)
      want = max_frame - frame + 1;
    n = read_full(read, src, buf, fsz * want,
                  SQLENVFS_WAL_HEADER_SIZE + (goffset)(frame - 1) * (goffset)fsz, error);
    if (n < 0)
      return FALSE;
    got = (guint32)((gsize)n / fsz);
    if (got == 0)
      return FALSE;
    for (guint32 i = 0; i < got; i++, frame++) {
      const guint8 *fh = buf + i * fsz;
      guint32 pgno = get_be32(fh), db_pages = get_be32(fh + 4);

      if (get_be32(fh + 8) != cur->hdr.salt1 || get_be32(fh + 12) != cur->hdr.salt2 ||
          pgno == 0)
        return FALSE;
      sqlenvfs_wal_checksum(cur->hdr.big_endian_cksum, fh, 8, &s1, &s2);
      sqlenvfs_wal_checksum(cur->hdr.big_endian_cksum, fh + SQLENVFS_WAL_FRAME_HEADER_SIZE, ps,
                            &s1, &s2);
      if (s1 != get_be32(fh + 16) || s2 != get_be32(fh + 20))
        return FALSE;
      g_array_append_val(pgnos, pgno);
      if (db_pages != 0) {
        commit->first_frame = cur->next_frame;
        commit->commit_frame = frame;
        commit->db_pages = db_pages;
        commit->cksum1 = s1;
        commit->cksum2 = s2;
        commit->pgnos = g_steal_pointer(&pgnos);
        cur->next_frame = frame + 1;
        cur->cksum1 = s1;
        cur->cksum2 = s2;
        return TRUE;
      }
    }
    if (got < want)
      return FALSE;
  }
}
