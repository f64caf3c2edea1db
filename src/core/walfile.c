/*
 * walfile.c — reading SQLite's WAL file: header, frames, checksums, commits.
 *
 * The byte layout and the invariants are in walfile.h. This reader never
 * writes, never takes locks, and never reports a frame that is not part of a
 * committed transaction with a valid checksum chain (invariants 1 and 2).
 * Frames are read in batches of up to FRAMES_PER_READ to keep the number of
 * system calls low on large WALs.
 *
 * It also reads the wal-index header through SQLite's own shared-memory
 * mapping (sqlenvfs_wal_index_read), and reads a live -wal file through a
 * private descriptor with read-ahead (SqlenvfsWalFile), as the archiver
 * does while an application writes.
 */
#include "sqlenvfs/walfile.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAL_MAGIC_LE 0x377f0682u
#define WAL_MAGIC_BE 0x377f0683u
#define WAL_VERSION 3007000u
#define FRAMES_PER_READ 64
#define WAL_INDEX_VERSION 3007000u
#define WAL_INDEX_COPY_SIZE 48
#define WAL_INDEX_NBACKFILL 96
#define WAL_INDEX_READ_ATTEMPTS 16

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
      a += sqlenvfs_be32(data + i) + b;
      b += sqlenvfs_be32(data + i + 4) + a;
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
  magic = sqlenvfs_be32(b);
  if (magic != WAL_MAGIC_LE && magic != WAL_MAGIC_BE)
    return FALSE;
  if (sqlenvfs_be32(b + 4) != WAL_VERSION)
    return FALSE;
  page_size = sqlenvfs_be32(b + 8);
  if (!sqlenvfs_page_size_ok(page_size))
    return FALSE;
  sqlenvfs_wal_checksum(magic == WAL_MAGIC_BE, b, 24, &s1, &s2);
  if (s1 != sqlenvfs_be32(b + 24) || s2 != sqlenvfs_be32(b + 28))
    return FALSE;
  hdr->big_endian_cksum = magic == WAL_MAGIC_BE;
  hdr->page_size = page_size;
  hdr->ckpt_seq = sqlenvfs_be32(b + 12);
  hdr->salt1 = sqlenvfs_be32(b + 16);
  hdr->salt2 = sqlenvfs_be32(b + 20);
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
      guint32 pgno = sqlenvfs_be32(fh), db_pages = sqlenvfs_be32(fh + 4);

      if (sqlenvfs_be32(fh + 8) != cur->hdr.salt1 || sqlenvfs_be32(fh + 12) != cur->hdr.salt2 ||
          pgno == 0)
        return FALSE;
      sqlenvfs_wal_checksum(cur->hdr.big_endian_cksum, fh, 8, &s1, &s2);
      sqlenvfs_wal_checksum(cur->hdr.big_endian_cksum, fh + SQLENVFS_WAL_FRAME_HEADER_SIZE, ps,
                            &s1, &s2);
      if (s1 != sqlenvfs_be32(fh + 16) || s2 != sqlenvfs_be32(fh + 20))
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

/* ------------------------------------------------------------------ */
/* Frame headers                                                        */

void
sqlenvfs_wal_frame_header_parse(const guint8 *b, SqlenvfsWalFrameHeader *fh)
{
  fh->pgno = sqlenvfs_be32(b);
  fh->db_pages = sqlenvfs_be32(b + 4);
  fh->salt1 = sqlenvfs_be32(b + 8);
  fh->salt2 = sqlenvfs_be32(b + 12);
  fh->cksum1 = sqlenvfs_be32(b + 16);
  fh->cksum2 = sqlenvfs_be32(b + 20);
}

gboolean
sqlenvfs_wal_frame_header_read(SqlenvfsPreadFunc read, gpointer src, guint32 page_size,
                               guint32 frame, SqlenvfsWalFrameHeader *fh, GError **error)
{
  guint8 b[SQLENVFS_WAL_FRAME_HEADER_SIZE];
  goffset off = sqlenvfs_wal_page_offset(page_size, frame) - SQLENVFS_WAL_FRAME_HEADER_SIZE;
  gssize n;

  g_return_val_if_fail(frame >= 1, FALSE);
  n = read_full(read, src, b, sizeof b, off, error);
  if (n != (gssize)sizeof b)
    return FALSE;
  sqlenvfs_wal_frame_header_parse(b, fh);
  return TRUE;
}

guint32
sqlenvfs_wal_find_commit_frame(SqlenvfsPreadFunc read, gpointer src, const SqlenvfsWalCursor *cur,
                               guint32 max_frame)
{
  const SqlenvfsWalHeader *h = &cur->hdr;
  g_assert(cur->next_frame >= 1);
  for (guint32 f = cur->next_frame; max_frame == 0 || f <= max_frame; f++) {
    SqlenvfsWalFrameHeader fh;
    if (!sqlenvfs_wal_frame_header_read(read, src, h->page_size, f, &fh, NULL))
      return 0;
    if (fh.salt1 != h->salt1 || fh.salt2 != h->salt2 || fh.pgno == 0)
      return 0;
    if (fh.db_pages != 0)
      return f;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* The wal-index header                                                 */

static guint32
get_ne32(const guint8 *p)
{
  guint32 v;
  memcpy(&v, p, 4);
  return v;
}

gboolean
sqlenvfs_wal_index_parse(const guint8 *b, SqlenvfsWalIndexHeader *wi)
{
  guint32 s1 = 0, s2 = 0;

  if (memcmp(b, b + WAL_INDEX_COPY_SIZE, WAL_INDEX_COPY_SIZE) != 0 || b[12] == 0 ||
      get_ne32(b) != WAL_INDEX_VERSION)
    return FALSE;
  /* SQLite's own check of the header (walIndexTryHdr): its checksum over
   * bytes 0..39 in native words. */
  sqlenvfs_wal_checksum(G_BYTE_ORDER == G_BIG_ENDIAN, b, 40, &s1, &s2);
  if (s1 != get_ne32(b + 40) || s2 != get_ne32(b + 44))
    return FALSE;
  wi->mx_frame = get_ne32(b + 16);
  wi->n_pages = get_ne32(b + 20);
  wi->salt1 = sqlenvfs_be32(b + 32);
  wi->salt2 = sqlenvfs_be32(b + 36);
  wi->n_backfill = get_ne32(b + WAL_INDEX_NBACKFILL);
  return TRUE;
}

gboolean
sqlenvfs_wal_index_read(sqlite3 *db, SqlenvfsWalIndexHeader *wi)
{
  sqlite3_file *f = NULL;
  void volatile *p = NULL;
  const volatile guint8 *shm;
  guint8 b[SQLENVFS_WAL_INDEX_HEADER_SIZE];

  if (db == NULL ||
      sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK ||
      f == NULL || f->pMethods == NULL || f->pMethods->iVersion < 2 ||
      f->pMethods->xShmMap == NULL)
    return FALSE;
  if (f->pMethods->xShmMap(f, 0, 32 * 1024, 0, &p) != SQLITE_OK || p == NULL)
    return FALSE;
  shm = p;
  /* As SQLite reads it: the first copy, a barrier, the second copy (a
   * writer writes them in the other order), then nBackfill. */
  for (int attempt = 0; attempt < WAL_INDEX_READ_ATTEMPTS; attempt++) {
    f->pMethods->xShmBarrier(f);
    for (int i = 0; i < WAL_INDEX_COPY_SIZE; i++)
      b[i] = shm[i];
    f->pMethods->xShmBarrier(f);
    for (int i = WAL_INDEX_COPY_SIZE; i < 2 * WAL_INDEX_COPY_SIZE; i++)
      b[i] = shm[i];
    f->pMethods->xShmBarrier(f);
    for (int i = WAL_INDEX_NBACKFILL; i < SQLENVFS_WAL_INDEX_HEADER_SIZE; i++)
      b[i] = shm[i];
    if (sqlenvfs_wal_index_parse(b, wi))
      return TRUE;
  }
  return FALSE;
}

/* ------------------------------------------------------------------ */
/* Reading a -wal file                                                  */

struct _SqlenvfsWalFile {
  int fd;
  char *path;
  guint64 ino;
  guint8 *buf;     /* borrowed */
  gsize buf_size;
  goffset buf_off; /* what buf holds: buf_len bytes from buf_off     */
  gsize buf_len;
  goffset limit;   /* refills read no further than this (0: no limit) */
};

SqlenvfsWalFile *
sqlenvfs_wal_file_open(const char *path, guint8 *buf, gsize buf_size, GError **error)
{
  SqlenvfsWalFile *wf;
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  g_return_val_if_fail(buf != NULL && buf_size >= SQLENVFS_WAL_HEADER_SIZE, NULL);
  if (fd < 0) {
    sqlenvfs_error_errno(error, errno, "open the WAL", path);
    return NULL;
  }
  if (fstat(fd, &st) != 0) {
    sqlenvfs_error_errno(error, errno, "stat", path);
    close(fd);
    return NULL;
  }
  wf = g_new0(SqlenvfsWalFile, 1);
  wf->fd = fd;
  wf->path = g_strdup(path);
  wf->ino = st.st_ino;
  wf->buf = buf;
  wf->buf_size = buf_size;
  sqlenvfs_wal_file_invalidate(wf);
  return wf;
}

void
sqlenvfs_wal_file_free(SqlenvfsWalFile *wf)
{
  if (wf == NULL)
    return;
  close(wf->fd);
  g_free(wf->path);
  g_free(wf);
}

guint64
sqlenvfs_wal_file_ino(const SqlenvfsWalFile *wf)
{
  return wf->ino;
}

const char *
sqlenvfs_wal_file_path(const SqlenvfsWalFile *wf)
{
  return wf->path;
}

void
sqlenvfs_wal_file_invalidate(SqlenvfsWalFile *wf)
{
  wf->buf_len = 0;
  wf->limit = SQLENVFS_WAL_HEADER_SIZE;
}

void
sqlenvfs_wal_file_set_limit(SqlenvfsWalFile *wf, guint32 page_size, guint32 max_frame)
{
  wf->limit = sqlenvfs_wal_page_offset(page_size, max_frame + 1) - SQLENVFS_WAL_FRAME_HEADER_SIZE;
}

static ssize_t
pread_eintr(int fd, void *buf, gsize len, goffset off)
{
  ssize_t n;
  do
    n = pread(fd, buf, len, off);
  while (n < 0 && errno == EINTR);
  return n;
}

/* Read ahead from @off: at least @len bytes (less only at the end of the
 * file), up to the buffer's size, but not past the limit. -1 on error. */
static gssize
refill(SqlenvfsWalFile *wf, gsize len, goffset off, GError **error)
{
  gsize want = wf->buf_size;
  ssize_t n;

  if (wf->limit > off + (goffset)len && wf->limit - off < (goffset)want)
    want = (gsize)(wf->limit - off);
  else if (wf->limit > 0 && wf->limit <= off + (goffset)len)
    want = len;
  n = pread_eintr(wf->fd, wf->buf, want, off);
  if (n < 0) {
    wf->buf_len = 0;
    sqlenvfs_error_errno(error, errno, "read", wf->path);
    return -1;
  }
  wf->buf_off = off;
  wf->buf_len = (gsize)n;
  return n;
}

static gboolean
is_buffered(const SqlenvfsWalFile *wf, gsize len, goffset off)
{
  return wf->buf_len > 0 && off >= wf->buf_off &&
         off + (goffset)len <= wf->buf_off + (goffset)wf->buf_len;
}

gssize
sqlenvfs_wal_file_read(gpointer src, void *out, gsize len, goffset off, GError **error)
{
  SqlenvfsWalFile *wf = src;
  gssize n;

  if (is_buffered(wf, len, off)) {
    memcpy(out, wf->buf + (off - wf->buf_off), len);
    return (gssize)len;
  }
  if (len >= wf->buf_size / 2) {
    n = pread_eintr(wf->fd, out, len, off);
    if (n < 0) {
      sqlenvfs_error_errno(error, errno, "read", wf->path);
      return -1;
    }
    return n;
  }
  n = refill(wf, len, off, error);
  if (n < 0)
    return -1;
  len = MIN(len, (gsize)n);
  memcpy(out, wf->buf, len);
  return (gssize)len;
}

const guint8 *
sqlenvfs_wal_file_view(SqlenvfsWalFile *wf, gsize len, goffset off, GError **error)
{
  g_return_val_if_fail(len <= wf->buf_size / 2, NULL);
  if (!is_buffered(wf, len, off)) {
    gssize n = refill(wf, len, off, error);
    if (n < (gssize)len)
      return NULL;
  }
  return wf->buf + (off - wf->buf_off);
}

gboolean
sqlenvfs_wal_file_peek_frame(SqlenvfsWalFile *wf, guint32 page_size, guint32 frame,
                             SqlenvfsWalFrameHeader *fh, GError **error)
{
  guint8 b[SQLENVFS_WAL_FRAME_HEADER_SIZE];
  goffset off = sqlenvfs_wal_page_offset(page_size, frame) - SQLENVFS_WAL_FRAME_HEADER_SIZE;
  ssize_t n;

  g_return_val_if_fail(frame >= 1, FALSE);
  n = pread_eintr(wf->fd, b, sizeof b, off);
  if (n < 0) {
    sqlenvfs_error_errno(error, errno, "read", wf->path);
    return FALSE;
  }
  if (n != (ssize_t)sizeof b)
    return FALSE;
  sqlenvfs_wal_frame_header_parse(b, fh);
  return TRUE;
}

gboolean
sqlenvfs_wal_tail_damage(const char *path, SqlenvfsWalTailDamage *out)
{
  g_autofree guint8 *buf = NULL;
  g_autoptr(SqlenvfsWalFile) wf = NULL;
  g_autoptr(GError) error = NULL;
  SqlenvfsWalHeader h;
  SqlenvfsWalCursor cur;
  SqlenvfsWalCommit c = { 0 };
  guint32 n_frames;
  struct stat st;

  memset(out, 0, sizeof *out);
  if (stat(path, &st) != 0 || st.st_size == 0)
    return FALSE;
  out->size = (gint64)st.st_size;
  buf = g_malloc(1 << 20);
  wf = sqlenvfs_wal_file_open(path, buf, 1 << 20, &error);
  if (wf == NULL)
    return FALSE;
  if (!sqlenvfs_wal_read_header(sqlenvfs_wal_file_read, wf, &h, &error)) {
    if (error != NULL || st.st_size < SQLENVFS_WAL_HEADER_SIZE + SQLENVFS_WAL_FRAME_HEADER_SIZE)
      return FALSE;
    out->no_header = TRUE;
    return TRUE;
  }
  sqlenvfs_wal_cursor_init(&cur, &h);
  while (sqlenvfs_wal_next_commit(sqlenvfs_wal_file_read, wf, &cur, 0, &c, &error))
    sqlenvfs_wal_commit_clear(&c);
  if (error != NULL)
    return FALSE;
  n_frames = (guint32)MIN((st.st_size - SQLENVFS_WAL_HEADER_SIZE) /
                            (SQLENVFS_WAL_FRAME_HEADER_SIZE + h.page_size), G_MAXUINT32);
  out->first_bad = cur.next_frame;
  for (guint32 f = cur.next_frame; f <= n_frames; f++) {
    SqlenvfsWalFrameHeader fh;
    if (!sqlenvfs_wal_frame_header_read(sqlenvfs_wal_file_read, wf, h.page_size, f, &fh, NULL) ||
        fh.salt1 != h.salt1 || fh.salt2 != h.salt2)
      break; /* the end, or frames of an older generation (a restarted WAL's tail) */
    out->n_after++;
    if (fh.db_pages != 0)
      out->commit_at = f;
  }
  return out->commit_at != 0;
}
