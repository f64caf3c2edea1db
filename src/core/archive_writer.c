/*
 * archive_writer.c — appending records to the archive: recovery of a torn tail at
 * open, segments rolled and sealed, batches, the alive file
 * (byte layout and invariants: archive_format.c, docs/ARCHIVE.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "archive_int.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

/* ------------------------------------------------------------------ */
/* Writer                                                               */

struct _SqlenvfsArchiveWriter {
  char *dir;
  gint64 max_bytes;
  guint64 max_records; /* a segment is sealed before it holds more records */
  int mode;           /* permission bits of every file written (production's) */

  int seg_fd, idx_fd; /* current segment and its index; -1: none open      */
  char *seg_path, *idx_path;
  guint64 seg_number; /* number of the current (or last) segment; 0: none */
  guint64 seg_first_seq; /* seq of the current segment's first record      */
  guint64 seg_size, idx_size;
  guint32 seg_crc;    /* crc32 of every byte of the current segment        */
  guint32 seg_digest; /* digest of its records (ArchiveSegSums)            */
  guint32 prev_seal_crc;
  gboolean has_prev_digest; /* the last SEAL's digest, which the next      */
  guint32 prev_digest;      /* segment's header names                      */
  gboolean is_sealed; /* the current segment is full: next record rolls    */
  guint32 version;    /* format version new segments are written in        */
  guint32 seg_version;/* format version of the current segment             */
  gboolean idx_broken;/* an index write failed: stop indexing this segment */
  guint64 noted_from; /* the segment's size at the last archive_note_written */
  guint64 backfill_next; /* the next older segment a seal looks at for a
                          * missing .last (backfill_last); G_MAXUINT64: done */

  guint64 next_seq;
  gboolean has_last, has_last_state;
  SqlenvfsArchiveEntry last, last_state;
  gint64 last_time;
  gint64 alive;

  int alive_fd;
  char *alive_path;
  gint64 alive_written;

  /* the COMMIT being written */
  gboolean in_commit;
  SqlenvfsArchiveEntry cur;
  guint64 cur_remaining; /* page bytes still expected */
  guint32 cur_crc;
  guint64 rec_start;
  guint32 seg_crc_before;
  /* ... when it is compressed (version 2): the header is written last, so
   * cur_crc covers the body only until then; pages collect in blk until a
   * block is full, and each block's stored length and crc32 in blocks. */
  gboolean cur_compressed;
  guint8 *blk, *zbuf;
  gsize blk_len, zcap;
  GArray *blocks;       /* guint8[BLOCK_ENTRY_SIZE] per block written     */
  ZSTD_CCtx *zctx;
  guint32 cur_stream;   /* pages in the record's blocks (a batch's holder: all) */

  /* A batch being collected (version 2): whole commits, written together by
   * end_batch(); nothing of it is in the segment or noted before that. */
  gboolean in_batch;
  GArray *batch;        /* SqlenvfsArchiveEntry per commit ended            */
  GArray *batch_pgnos;  /* guint32: the page numbers of all, in order       */
  GByteArray *batch_pages; /* their page images, in the same order          */
  gint64 batch_last_time;

  guint64 bytes_written;
  gboolean is_dirty;

  /* A record is assembled here and written with one call when complete (or
   * when this fills); index entries collect here until the next sync. */
  guint8 *stage;
  gsize stage_len;
  guint8 idx_stage[IDX_STAGE_ENTRIES * IDX_ENTRY_SIZE];
  gsize idx_stage_len;
};

static void
note_record(SqlenvfsArchiveWriter *w, const SqlenvfsArchiveEntry *e)
{
  w->last = *e;
  w->has_last = TRUE;
  if (sqlenvfs_archive_entry_is_state(e) || e->type == SQLENVFS_ARCHIVE_GAP) {
    w->last_state = *e;
    w->has_last_state = TRUE;
  }
  w->next_seq = e->seq + 1;
  if (e->time > w->last_time)
    w->last_time = e->time;
  if (e->type == SQLENVFS_ARCHIVE_COMMIT && e->aux_time > w->alive)
    w->alive = e->aux_time;
  if (e->type == SQLENVFS_ARCHIVE_GAP && e->time > w->alive)
    w->alive = e->time;
}

static void sync_index(SqlenvfsArchiveWriter *w);

static void
close_current(SqlenvfsArchiveWriter *w)
{
  sync_index(w);
  if (w->seg_fd >= 0)
    close(w->seg_fd);
  if (w->idx_fd >= 0)
    close(w->idx_fd);
  w->seg_fd = w->idx_fd = -1;
  g_clear_pointer(&w->seg_path, g_free);
  g_clear_pointer(&w->idx_path, g_free);
}

void
sqlenvfs_archive_writer_free(SqlenvfsArchiveWriter *w)
{
  if (w == NULL)
    return;
  if (w->in_commit)
    sqlenvfs_archive_writer_abort_commit(w);
  close_current(w);
  if (w->alive_fd >= 0)
    close(w->alive_fd);
  g_free(w->alive_path);
  g_free(w->blk);
  g_free(w->zbuf);
  if (w->blocks)
    g_array_free(w->blocks, TRUE);
  ZSTD_freeCCtx(w->zctx);
  if (w->batch) {
    g_array_free(w->batch, TRUE);
    g_array_free(w->batch_pgnos, TRUE);
    g_byte_array_free(w->batch_pages, TRUE);
  }
  g_free(w->stage);
  g_free(w->dir);
  g_free(w);
}

const SqlenvfsArchiveEntry *
sqlenvfs_archive_writer_last(const SqlenvfsArchiveWriter *w)
{
  return w->has_last ? &w->last : NULL;
}

const SqlenvfsArchiveEntry *
sqlenvfs_archive_writer_last_state(const SqlenvfsArchiveWriter *w)
{
  return w->has_last_state ? &w->last_state : NULL;
}

gint64
sqlenvfs_archive_writer_alive(const SqlenvfsArchiveWriter *w)
{
  return w->alive;
}

/* Rewrite the index of the current segment from @entries (atomically). */
static gboolean
rewrite_index(SqlenvfsArchiveWriter *w, GArray *entries, GError **error)
{
  g_autofree char *name = archive_seg_name(w->seg_number, "idx");
  g_autofree char *path = g_build_filename(w->dir, name, NULL);
  gsize len = IDX_HEADER_SIZE + entries->len * (gsize)IDX_ENTRY_SIZE;
  g_autofree guint8 *buf = g_malloc0(len);

  archive_encode_idx_header(buf, w->seg_number, w->seg_version);
  for (guint i = 0; i < entries->len; i++)
    archive_encode_idx_entry(&g_array_index(entries, SqlenvfsArchiveEntry, i),
                     buf + IDX_HEADER_SIZE + i * (gsize)IDX_ENTRY_SIZE);
  if (!sqlenvfs_write_file_atomic(path, buf, len, w->mode, error))
    return FALSE;
  w->idx_size = len;
  return TRUE;
}

/* Give the segment @number a file of its own when it has other names (a
 * hard link, such as `cp -al` leaves): its bytes are copied to a new file
 * that is renamed over the archive's name, so that appending to it never
 * changes the file under its other names. */
static gboolean
unshare_segment(const char *dir, guint64 number, int mode, GError **error)
{
  g_autofree char *name = archive_seg_name(number, "seg");
  g_autofree char *path = g_build_filename(dir, name, NULL);
  g_autofree char *tmp = sqlenvfs_tmp_path(dir, name);
  g_autofree guint8 *buf = NULL;
  struct stat st;
  int in, out;
  off_t off = 0;
  gboolean ok = TRUE;

  in = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0)
    return sqlenvfs_error_errno(error, errno, "open archive segment", path);
  if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink <= 1) {
    close(in);
    return TRUE; /* the open that follows reports what is wrong */
  }
  g_message("archive %s: %s has %" G_GUINT64_FORMAT " other names (hard links); continuing it in a copy of "
            "its own, so that they keep what they hold", dir, path, (guint64)st.st_nlink - 1);
  out = sqlenvfs_create_file(tmp, mode, error);
  if (out < 0) {
    close(in);
    return FALSE;
  }
  buf = g_malloc(IO_CHUNK);
  while (ok) {
    gsize got;
    if (!archive_pread_full(in, buf, IO_CHUNK, (guint64)off, &got, path, error))
      ok = FALSE;
    else if (got == 0)
      break;
    else if (!archive_pwrite_full(out, buf, got, (guint64)off, tmp, error))
      ok = FALSE;
    off += (off_t)got;
  }
  if (ok && fsync(out) != 0)
    ok = sqlenvfs_error_errno(error, errno, "fsync", tmp);
  close(out);
  close(in);
  if (ok && rename(tmp, path) != 0)
    ok = sqlenvfs_error_errno(error, errno, "rename into place", path);
  if (!ok) {
    unlink(tmp);
    return FALSE;
  }
  return sqlenvfs_fsync_dir(dir, error);
}

/* Scan the last segment, cut a torn tail, rebuild its index, and leave it
 * open for appending (or sealed). */
static gboolean
recover_last(SqlenvfsArchiveWriter *w, guint64 number, GError **error)
{
  SegFile sf;
  g_autoptr(GArray) entries = g_array_new(FALSE, FALSE, sizeof(SqlenvfsArchiveEntry));
  g_autofree guint8 *chunk = g_malloc(IO_CHUNK);
  guint64 off = SEG_HEADER_SIZE;
  guint8 hbuf[SEG_HEADER_SIZE];
  gsize got;
  ArchiveSegSums c;

  if (!unshare_segment(w->dir, number, w->mode, error) ||
      !archive_seg_file_open(w->dir, number, O_RDWR, &sf, error))
    return FALSE;
  if (!sf.hdr_ok) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "open archive segment %s: %s (move the file aside, or restore it from a "
                "copy, then start the archiver again)",
                sf.path, sf.hdr_why);
    archive_seg_file_close(&sf);
    return FALSE;
  }
  if (!archive_pread_full(sf.fd, hbuf, sizeof hbuf, 0, &got, sf.path, error)) {
    archive_seg_file_close(&sf);
    return FALSE;
  }
  archive_sums_start(&c, hbuf);
  w->is_sealed = FALSE;
  w->seg_version = sf.hdr.version;
  w->next_seq = sf.hdr.first_seq;
  w->seg_first_seq = sf.hdr.first_seq;
  for (;;) {
    SqlenvfsArchiveEntry e;
    gboolean torn;
    ArchiveSegSums before = c;
    if (off >= sf.size)
      break;
    if (!archive_read_record(&sf, off, &e, &torn, &c, chunk, error)) {
      if (error && *error) {
        archive_seg_file_close(&sf);
        return FALSE;
      }
      break;
    }
    if (e.seq != w->next_seq || w->is_sealed) {
      /* Not the record that must follow: treat as torn garbage. */
      c = before;
      break;
    }
    if (e.type == SQLENVFS_ARCHIVE_SEAL &&
        (e.reason != before.crc ||
         ((e.flags & SEAL_HAS_DIGEST) && e.digest != before.digest))) {
      c = before;
      break;
    }
    e.segment = 0;
    g_array_append_val(entries, e);
    note_record(w, &e);
    off += e.length;
    if (e.type == SQLENVFS_ARCHIVE_SEAL) {
      w->is_sealed = TRUE;
      w->prev_seal_crc = e.reason;
      w->has_prev_digest = (e.flags & SEAL_HAS_DIGEST) != 0;
      w->prev_digest = e.digest;
    }
  }
  if (off < sf.size) {
    g_message("archive %s: discarding %" G_GUINT64_FORMAT " bytes of an unfinished record at "
              "the end of %s (left by an interrupted archiver)",
              w->dir, sf.size - off, sf.path);
    if (ftruncate(sf.fd, (off_t)off) != 0 || fsync(sf.fd) != 0) {
      sqlenvfs_error_errno(error, errno, "truncate the torn tail of", sf.path);
      archive_seg_file_close(&sf);
      return FALSE;
    }
  } else if (fdatasync(sf.fd) != 0) {
    /* A writer that died (kill -9, a crash) may have left records it had
     * not synced yet, whole in the page cache: synced before anything is
     * built on them, since every alive time this writer publishes vouches
     * for the records before it, those included. */
    sqlenvfs_error_errno(error, errno, "sync", sf.path);
    archive_seg_file_close(&sf);
    return FALSE;
  }
  if (!sqlenvfs_narrow_fd(sf.fd, w->mode, sf.path, error)) {
    archive_seg_file_close(&sf);
    return FALSE;
  }
  w->seg_number = number;
  w->seg_size = off;
  w->noted_from = off;
  w->seg_crc = c.crc;
  w->seg_digest = c.digest;
  w->seg_fd = sf.fd;
  w->seg_path = sf.path;
  sf.fd = -1;
  sf.path = NULL;
  if (!rewrite_index(w, entries, error))
    return FALSE;
  {
    g_autofree char *name = archive_seg_name(number, "idx");
    w->idx_path = g_build_filename(w->dir, name, NULL);
    w->idx_fd = open(w->idx_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (w->idx_fd < 0)
      return sqlenvfs_error_errno(error, errno, "open archive index", w->idx_path);
  }
  return TRUE;
}

/* Remove the summaries and files of last versions in @dir whose segment is
 * not among @nums (the segments present): a segment of that number
 * written later must not find them (its seal checksum, which binds them,
 * depends on its records' lengths only). Left by a crash in an older
 * sqlenvfs's move aside, or by segments removed by hand. */
static gboolean
drop_orphans(const char *dir, const GArray *nums, GError **error)
{
  static const char *const kinds[] = { "sum", "last" };
  g_autoptr(GHashTable) have = g_hash_table_new(g_int64_hash, g_int64_equal);
  g_autoptr(GPtrArray) drop = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GError) local = NULL;
  g_autoptr(GDir) d = g_dir_open(dir, 0, &local);
  const char *name;

  if (d == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "list archive directory %s: %s", dir,
                local->message);
    return FALSE;
  }
  for (guint i = 0; i < nums->len; i++)
    g_hash_table_add(have, &g_array_index(nums, guint64, i));
  while ((name = g_dir_read_name(d)) != NULL) {
    guint64 n;
    for (guint k = 0; k < G_N_ELEMENTS(kinds); k++)
      if (archive_parse_seg_name(name, kinds[k], &n) && !g_hash_table_contains(have, &n))
        g_ptr_array_add(drop, g_build_filename(dir, name, NULL));
  }
  for (guint i = 0; i < drop->len; i++) {
    const char *path = drop->pdata[i];
    g_message("archive %s: removing %s: its segment is not there", dir, path);
    if (unlink(path) != 0 && errno != ENOENT)
      return sqlenvfs_error_errno(error, errno, "remove", path);
  }
  return drop->len == 0 || sqlenvfs_fsync_dir(dir, error);
}

/* Move an unreadable segment (and its index) out of the archive so that the
 * archive stays appendable; readers then see its records as missing. */
static gboolean
move_aside(const char *dir, guint64 number, const char *why, GError **error)
{
  g_autofree char *sname = archive_seg_name(number, "seg");
  g_autofree char *iname = archive_seg_name(number, "idx");
  g_autofree char *spath = g_build_filename(dir, sname, NULL);
  g_autofree char *ipath = g_build_filename(dir, iname, NULL);
  g_autofree char *stamp = g_strdup_printf("%" G_GINT64_FORMAT, sqlenvfs_clock_now());
  g_autofree char *sdest = g_strconcat(spath, ".damaged-", stamp, NULL);
  g_autofree char *idest = g_strconcat(ipath, ".damaged-", stamp, NULL);

  g_warning("archive %s: %s: %s; moving it aside to %s", dir, spath, why, sdest);
  {
    /* A summary (and the last versions) describes the segment moved
     * aside, not the next one of that number: they go first, durably, so
     * that no crash leaves them beside a new segment of that number (a
     * segment's seal checksum depends on its records' lengths, not their
     * bytes, so it cannot tell such a new segment from this one). */
    g_autofree char *sum = archive_summary_path(dir, number);
    g_autofree char *last = archive_last_path(dir, number);
    if (unlink(sum) != 0 && errno != ENOENT)
      return sqlenvfs_error_errno(error, errno, "remove the summary of", spath);
    if (unlink(last) != 0 && errno != ENOENT)
      return sqlenvfs_error_errno(error, errno, "remove the last versions of", spath);
    if (!sqlenvfs_fsync_dir(dir, error))
      return FALSE;
  }
  if (rename(spath, sdest) != 0)
    return sqlenvfs_error_errno(error, errno, "move aside the damaged archive segment", spath);
  if (rename(ipath, idest) != 0 && errno != ENOENT)
    return sqlenvfs_error_errno(error, errno, "move aside the damaged archive index", ipath);
  return sqlenvfs_fsync_dir(dir, error);
}

gboolean
sqlenvfs_archive_writer_narrow(SqlenvfsArchiveWriter *w, int mode, GError **error)
{
  int fds[] = { w->seg_fd, w->idx_fd, w->alive_fd };
  g_autoptr(GDir) d = NULL;
  const char *name;

  if ((w->mode & ~mode & 0666) == 0)
    return TRUE;
  w->mode &= mode & 0666;
  for (gsize i = 0; i < G_N_ELEMENTS(fds); i++)
    if (fds[i] >= 0 && !sqlenvfs_narrow_fd(fds[i], w->mode, w->dir, error))
      return FALSE;
  d = g_dir_open(w->dir, 0, NULL);
  while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
    g_autofree char *path = g_build_filename(w->dir, name, NULL);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    gboolean ok;
    struct stat st;
    if (fd < 0)
      continue; /* gone meanwhile, or a link, which is not ours */
    /* Another name of a file is not the archive's to change (a hard link
     * to a file outside it). */
    ok = fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink > 1 ||
         sqlenvfs_narrow_fd(fd, w->mode, path, error);
    close(fd);
    if (!ok)
      return FALSE;
  }
  return sqlenvfs_narrow_dir(w->dir, sqlenvfs_mode_dir(w->mode), error);
}

SqlenvfsArchiveWriter *
sqlenvfs_archive_writer_open(const char *dir, gint64 segment_max_bytes, int mode, GError **error)
{
  g_autoptr(SqlenvfsArchiveWriter) w = g_new0(SqlenvfsArchiveWriter, 1);
  g_autoptr(GArray) nums = NULL;
  g_autoptr(SqlenvfsArchive) a = NULL;
  gint64 atime;
  guint64 aseq;

  w->dir = g_strdup(dir);
  w->stage = g_malloc(STAGE_SIZE);
  w->version = SQLENVFS_ARCHIVE_VERSION;
  w->max_bytes = MAX(segment_max_bytes, 64 * 1024);
  w->max_records = SQLENVFS_ARCHIVE_SEGMENT_MAX_RECORDS;
  w->mode = mode & 0666;
  w->seg_fd = w->idx_fd = w->alive_fd = -1;
  w->next_seq = 1;
  if (!sqlenvfs_mkdir_p(dir, sqlenvfs_mode_dir(w->mode), error) ||
      !sqlenvfs_refuse_symlink(dir, "open the WAL archive", error))
    return NULL;
  /* Temporaries of writers that died (summaries, indexes being rewritten). */
  if (sqlenvfs_tmp_leftovers(dir, ".tmp-", FALSE, TRUE, NULL, error) < 0)
    return NULL;
  nums = archive_list_segments(dir, error);
  if (nums == NULL)
    return NULL;

  /* A last segment whose header is unreadable: if it is no longer than a
   * header, its creation was interrupted and it holds nothing; otherwise it
   * is damaged, and is moved aside (the continuity check of the archiver
   * then decides whether what it held can be captured again). */
  while (nums->len > 0) {
    guint64 last = g_array_index(nums, guint64, nums->len - 1);
    g_autofree char *lname = archive_seg_name(last, "seg");
    g_autofree char *lpath = g_build_filename(dir, lname, NULL);
    SegFile sf;
    gboolean ok, empty;
    /* The segment the writer continues (or removes, or moves aside) is
     * its own file, never a link to one elsewhere. */
    if (!sqlenvfs_refuse_symlink(lpath, "open the WAL archive", error))
      return NULL;
    if (!archive_seg_file_open(dir, last, O_RDONLY, &sf, error))
      return NULL;
    ok = sf.hdr_ok;
    empty = sf.size <= SEG_HEADER_SIZE;
    if (!ok && empty) {
      g_autofree char *iname = archive_seg_name(last, "idx");
      g_autofree char *ipath = g_build_filename(dir, iname, NULL);
      g_message("archive %s: removing %s, a segment whose creation was interrupted", dir,
                sf.path);
      if (unlink(sf.path) != 0) {
        sqlenvfs_error_errno(error, errno, "remove", sf.path);
        archive_seg_file_close(&sf);
        return NULL;
      }
      unlink(ipath);
    } else if (!ok && !move_aside(dir, last, sf.hdr_why, error)) {
      archive_seg_file_close(&sf);
      return NULL;
    }
    archive_seg_file_close(&sf);
    if (ok)
      break;
    g_array_set_size(nums, nums->len - 1);
  }

  if (!drop_orphans(dir, nums, error))
    return NULL;
  if (nums->len > 0 && !recover_last(w, g_array_index(nums, guint64, nums->len - 1), error))
    return NULL;

  /* The last record, and the last state or gap record, may lie in earlier
   * segments; the (now consistent) index says. */
  a = sqlenvfs_archive_open(dir, error);
  if (a == NULL)
    return NULL;
  {
    SqlenvfsArchiveEntry last, st;
    archive_last_records(a, &last, &w->has_last, &st, &w->has_last_state);
    if (w->has_last) {
      w->last = last;
      w->last_time = last.time;
      if (nums->len == 0)
        w->next_seq = last.seq + 1;
    }
    if (w->has_last_state) {
      if (st.type == SQLENVFS_ARCHIVE_COMMIT && st.aux_time > w->alive)
        w->alive = st.aux_time;
      if (st.type == SQLENVFS_ARCHIVE_GAP && st.time > w->alive)
        w->alive = st.time;
      w->last_state = st;
    }
  }
  w->alive_path = g_build_filename(dir, "alive", NULL);
  if (archive_read_alive(dir, &atime, &aseq) && aseq <= w->next_seq && atime > w->alive)
    w->alive = atime;
  w->alive_written = w->alive;
  if (archive_read_alive(dir, &atime, &aseq) && aseq > w->next_seq) {
    /* The records it confirmed are gone (a damaged segment moved aside):
     * the numbers are written again, and readers must not take the new
     * records as synced until they are. */
    w->alive_written = 0;
    if (!sqlenvfs_archive_writer_set_alive(w, w->alive, 0, error))
      return NULL;
  }
  return g_steal_pointer(&w);
}

void
sqlenvfs_archive_writer_set_max_records(SqlenvfsArchiveWriter *w, guint64 max_records)
{
  w->max_records = MAX(max_records, 2); /* one record and the seal */
}

/* Start a new segment after the current one. */
static gboolean
new_segment(SqlenvfsArchiveWriter *w, GError **error)
{
  guint64 number = w->seg_number + 1;
  g_autofree char *sname = archive_seg_name(number, "seg");
  g_autofree char *iname = archive_seg_name(number, "idx");
  g_autofree char *spath = g_build_filename(w->dir, sname, NULL);
  g_autofree char *ipath = g_build_filename(w->dir, iname, NULL);
  guint8 sh[SEG_HEADER_SIZE], ih[IDX_HEADER_SIZE];
  int sfd, ifd;
  SegHeader h = { number, w->next_seq, sqlenvfs_clock_now(), w->prev_seal_crc, w->version,
                  w->has_prev_digest, w->prev_digest };

  archive_encode_seg_header(sh, &h);
  archive_encode_idx_header(ih, number, w->version);
  sfd = open(spath, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, w->mode);
  if (sfd < 0)
    return sqlenvfs_error_errno(error, errno, "create archive segment", spath);
  if (sqlenvfs_group_mode(sfd, w->mode) != w->mode && !sqlenvfs_narrow_fd(sfd,
      sqlenvfs_group_mode(sfd, w->mode), spath, error)) {
    close(sfd);
    unlink(spath);
    return FALSE;
  }
  if (!archive_pwrite_full(sfd, sh, sizeof sh, 0, spath, error) || fdatasync(sfd) != 0) {
    if (error && *error == NULL)
      sqlenvfs_error_errno(error, errno, "sync archive segment", spath);
    close(sfd);
    unlink(spath);
    return FALSE;
  }
  /* A leftover index of this number is emptied; never another name of
   * production (util.h). */
  ifd = sqlenvfs_open_own_file(ipath, O_RDWR, w->mode, error);
  if (ifd >= 0 && (ftruncate(ifd, 0) != 0 || !sqlenvfs_narrow_fd(ifd, w->mode, ipath, NULL))) {
    sqlenvfs_error_errno(error, errno, "create archive index", ipath);
    close(ifd);
    ifd = -1;
  }
  if (ifd < 0) {
    close(sfd);
    unlink(spath);
    return FALSE;
  }
  if (!archive_pwrite_full(ifd, ih, sizeof ih, 0, ipath, error)) {
    close(sfd);
    close(ifd);
    unlink(spath);
    unlink(ipath);
    return FALSE;
  }
  if (!sqlenvfs_fsync_dir(w->dir, error)) {
    close(sfd);
    close(ifd);
    unlink(spath);
    unlink(ipath);
    return FALSE;
  }
  close_current(w);
  w->seg_fd = sfd;
  w->idx_fd = ifd;
  w->seg_path = g_steal_pointer(&spath);
  w->idx_path = g_steal_pointer(&ipath);
  w->seg_number = number;
  w->seg_first_seq = w->next_seq;
  w->seg_size = SEG_HEADER_SIZE;
  w->noted_from = 0;
  w->idx_size = IDX_HEADER_SIZE;
  w->seg_crc = w->seg_digest = crc(0, sh, sizeof sh);
  w->seg_version = w->version;
  w->is_sealed = FALSE;
  w->idx_broken = FALSE;
  g_debug("archive %s: new segment %s", w->dir, w->seg_path);
  return TRUE;
}

/* Write @len bytes at @off of the current segment. */
static gboolean
seg_write(SqlenvfsArchiveWriter *w, const void *data, gsize len, guint64 off, GError **error)
{
  if (!archive_pwrite_full(w->seg_fd, data, len, off, w->seg_path, error))
    return FALSE;
  w->bytes_written += len;
  w->is_dirty = TRUE;
  return TRUE;
}

/* Write what is staged to the segment (it ends at seg_size). */
static gboolean
seg_flush(SqlenvfsArchiveWriter *w, GError **error)
{
  if (w->stage_len == 0)
    return TRUE;
  if (!seg_write(w, w->stage, w->stage_len, w->seg_size - w->stage_len, error))
    return FALSE;
  w->stage_len = 0;
  return TRUE;
}

/* Append bytes of the record being written to the segment (the segment's
 * checksum is brought up to date when the record is complete). They are
 * staged, so that a small record costs one write however many pieces it is
 * built from; a piece larger than the stage is written as it is. */
static gboolean
seg_append(SqlenvfsArchiveWriter *w, const void *data, gsize len, GError **error)
{
  if (w->stage_len + len > STAGE_SIZE && !seg_flush(w, error))
    return FALSE;
  if (len > STAGE_SIZE) {
    if (!seg_write(w, data, len, w->seg_size, error))
      return FALSE;
  } else {
    memcpy(w->stage + w->stage_len, data, len);
    w->stage_len += len;
  }
  w->seg_size += len;
  w->cur_crc = crc(w->cur_crc, data, len);
  return TRUE;
}

/* Write the trailer of the record @e begun at w->rec_start and fold the
 * whole record into the segment checksum (crc32_combine: each byte is
 * checksummed once), and its two checksums into the segment's digest. */
static gboolean
seg_finish_record(SqlenvfsArchiveWriter *w, const SqlenvfsArchiveEntry *e, GError **error)
{
  guint8 trailer[REC_TRAILER_SIZE], hdr[REC_HEADER_SIZE];
  guint32 rec_crc = w->cur_crc;
  archive_encode_header(e, hdr); /* as written: for its checksum */
  put32(trailer, rec_crc);
  put32(trailer + 4, REC_END_MAGIC);
  if (!seg_append(w, trailer, sizeof trailer, error) || !seg_flush(w, error))
    return FALSE;
  w->seg_crc = sqlenvfs_crc32_combine(w->seg_crc_before, w->cur_crc,
                                      w->seg_size - w->rec_start);
  w->seg_digest = archive_digest_fold(w->seg_digest, get32(hdr + 92), rec_crc);
  return TRUE;
}

/* Cut a partly written record off again (invariant 3). What reached the
 * file is asked of the file: a flush of the staged record that failed part
 * way (ENOSPC after some of it was written) leaves bytes the stage still
 * counts as not written, which a later SEAL would leave after itself. */
static void
cut_record(SqlenvfsArchiveWriter *w)
{
  guint64 on_disk = w->seg_size - w->stage_len;
  struct stat st;
  w->stage_len = 0;
  if (w->seg_fd >= 0 && fstat(w->seg_fd, &st) == 0)
    on_disk = MAX(on_disk, (guint64)st.st_size);
  if (w->seg_fd >= 0 && on_disk > w->rec_start) {
    if (ftruncate(w->seg_fd, (off_t)w->rec_start) != 0)
      g_warning("archive %s: could not cut off a failed record in %s: %s (the archiver "
                "discards it on its next start)",
                w->dir, w->seg_path, g_strerror(errno));
  }
  w->seg_size = w->rec_start;
  w->seg_crc = w->seg_crc_before;
}

/* Write the buffered index entries. */
static void
index_flush(SqlenvfsArchiveWriter *w)
{
  g_autoptr(GError) error = NULL;

  if (w->idx_stage_len == 0 || w->idx_broken || w->idx_fd < 0) {
    w->idx_stage_len = 0;
    return;
  }
  if (!archive_pwrite_full(w->idx_fd, w->idx_stage, w->idx_stage_len, w->idx_size, w->idx_path,
                   &error)) {
    /* The index is derived: readers scan the segment past its last good
     * entry, and the next writer_open() rewrites it. */
    g_warning("archive %s: %s; readers will scan the segment instead", w->dir,
              error->message);
    if (ftruncate(w->idx_fd, (off_t)w->idx_size) != 0) {
      /* nothing more to do; readers check every entry */
    }
    w->idx_broken = TRUE;
    w->idx_stage_len = 0;
    return;
  }
  w->idx_size += w->idx_stage_len;
  w->idx_stage_len = 0;
}

/* Index a record just written. Entries are written in batches (at a sync,
 * or when the buffer fills): readers scan a segment past its last indexed
 * record anyway. */
static void
index_record(SqlenvfsArchiveWriter *w, const SqlenvfsArchiveEntry *e)
{
  /* Invariant 6: an index entry only for a record complete in the segment. */
  g_assert(e->offset + e->length <= w->seg_size);
  if (w->idx_broken)
    return;
  archive_encode_idx_entry(e, w->idx_stage + w->idx_stage_len);
  w->idx_stage_len += IDX_ENTRY_SIZE;
  if (w->idx_stage_len == sizeof w->idx_stage)
    index_flush(w);
}

/* Make room for @n_records records of @length bytes in all: seal and roll
 * when they would not fit, in bytes or in records (a segment holds at least
 * one record besides its seal). */
static gboolean
prepare_record(SqlenvfsArchiveWriter *w, guint64 length, guint64 n_records, GError **error);

static gboolean
write_simple(SqlenvfsArchiveWriter *w, SqlenvfsArchiveEntry *e, const void *body, gsize body_len,
             gboolean roll, GError **error)
{
  guint8 hdr[REC_HEADER_SIZE];

  e->length = REC_EMPTY_SIZE + body_len;
  if (roll && !prepare_record(w, e->length, 1, error))
    return FALSE;
  e->seq = w->next_seq;
  e->offset = w->seg_size;
  /* Invariant 5: every time written went through clamp_time (a seal takes
   * the last time). */
  g_assert(!w->has_last || e->time >= w->last_time);
  archive_encode_header(e, hdr);
  w->rec_start = w->seg_size;
  w->seg_crc_before = w->seg_crc;
  w->cur_crc = 0;
  if (!seg_append(w, hdr, sizeof hdr, error) ||
      (body_len > 0 && !seg_append(w, body, body_len, error))) {
    cut_record(w);
    return FALSE;
  }
  if (!seg_finish_record(w, e, error)) {
    cut_record(w);
    return FALSE;
  }
  index_record(w, e);
  note_record(w, e);
  return TRUE;
}

/* The summaries this process could not write, path -> why: an archiver
 * retrying every few seconds on a full disk tries again at each start of
 * its writer, and says so only when the reason changes. */
static GMutex unwritten_lock;
static GHashTable *unwritten;

/* Whether @path's summary is one that could not be written for @why
 * before (@why NULL: for any reason); with @note, remember @why for it
 * (NULL: forget it, it was written). */
static gboolean
unwritten_before(const char *path, const char *why, gboolean note)
{
  const char *was;
  gboolean same;

  g_mutex_lock(&unwritten_lock);
  if (unwritten == NULL)
    unwritten = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  was = g_hash_table_lookup(unwritten, path);
  same = was != NULL && (why == NULL || g_str_equal(was, why));
  if (note && why != NULL)
    g_hash_table_replace(unwritten, g_strdup(path), g_strdup(why));
  else if (note)
    g_hash_table_remove(unwritten, path);
  g_mutex_unlock(&unwritten_lock);
  return same;
}

/* Write the summary of the sealed segment @number (archive_summary.c). A
 * summary only saves readers work: when it cannot be written, readers use
 * the segment's index, and the archiver tries again when it next starts. */
static void
summarize(SqlenvfsArchiveWriter *w, guint64 number)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = archive_summary_path(w->dir, number);

  if (archive_summary_write(w->dir, number, w->mode, &error)) {
    unwritten_before(path, NULL, TRUE);
    return;
  }
  if (!unwritten_before(path, error->message, TRUE))
    g_warning("archive %s: no summary of segment %" G_GUINT64_FORMAT
              " (readers use its index instead): %s",
              w->dir, number, error->message);
}

/* Whether the file @path is a .last file of the version before 2 (bound
 * to its segment's layout only), which readers leave unused: it is written
 * again like a missing one. */
static gboolean
last_is_old(const char *path)
{
  guint8 head[ARCHIVE_LAST_HEADER_SIZE];
  ArchiveLastHeader h;
  const char *why = NULL;
  gsize got = 0;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  gboolean old;

  if (fd < 0)
    return FALSE;
  old = archive_pread_full(fd, head, sizeof head, 0, &got, path, NULL) &&
        !archive_last_parse_fixed(head, got, &h, &why) && why == archive_last_why_old;
  close(fd);
  return old;
}

/* Write the .last file of the sealed segment @number when its summary is
 * there and asks for one (archive_last_worth, read from its header alone)
 * and the file is not, or is of the version before 2. TRUE when it
 * tried. */
static gboolean
write_missing_last(SqlenvfsArchiveWriter *w, guint64 number)
{
  g_autofree char *spath = archive_summary_path(w->dir, number);
  g_autofree char *lpath = archive_last_path(w->dir, number);
  g_autofree gchar *sum = NULL;
  guint8 head[ARCHIVE_SUM_HEADER_SIZE_V2];
  const char *why = NULL;
  ArchiveSummary s;
  struct stat st;
  gsize len = 0, got = 0;
  gboolean worth;
  int fd;

  if (lstat(lpath, &st) == 0 ? !last_is_old(lpath) : errno != ENOENT)
    return FALSE;
  fd = open(spath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return FALSE;
  worth = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
          archive_pread_full(fd, head, sizeof head, 0, &got, spath, NULL) &&
          got == sizeof head &&
          archive_summary_parse_header(head, (gsize)st.st_size, &s, &why) &&
          archive_last_worth(&s);
  close(fd);
  if (!worth || !g_file_get_contents(spath, &sum, &len, NULL) ||
      !archive_summary_parse((const guint8 *)sum, len, &s, &why) || !archive_last_worth(&s))
    return FALSE;
  /* At debug level: after an upgrade there is one a seal for a while. */
  g_debug("archive %s: writing the last versions of segment %" G_GUINT64_FORMAT, w->dir,
          number);
  archive_last_write(w->dir, number, (const guint8 *)sum, len, w->mode);
  return TRUE;
}

/* After a seal: the oldest sealed segment not looked at yet whose summary
 * asks for a .last file it lacks (sealed by a version that wrote none, or
 * whose file was lost) gets it, one a seal, so that an archive's history
 * gains them without holding capture up at a start. */
static void
backfill_last(SqlenvfsArchiveWriter *w)
{
  g_autoptr(GArray) nums = NULL;

  if (w->backfill_next == G_MAXUINT64)
    return;
  nums = archive_list_segments(w->dir, NULL);
  if (nums == NULL)
    return; /* tried again at the next seal */
  for (guint i = 0; i < nums->len; i++) {
    guint64 n = g_array_index(nums, guint64, i);
    if (n < w->backfill_next)
      continue;
    if (n >= w->seg_number)
      break;
    w->backfill_next = n + 1;
    if (write_missing_last(w, n))
      return;
  }
  w->backfill_next = G_MAXUINT64; /* every older segment looked at */
}

gboolean
sqlenvfs_archive_writer_write_summaries(SqlenvfsArchiveWriter *w, GError **error)
{
  g_autoptr(GArray) nums = archive_list_segments(w->dir, error);
  guint64 newest = 0; /* the newest sealed segment */
  if (nums == NULL)
    return FALSE;
  for (guint i = 0; i < nums->len; i++) {
    guint64 n = g_array_index(nums, guint64, i);
    g_autofree char *path = archive_summary_path(w->dir, n);
    if (n == w->seg_number && !w->is_sealed)
      continue; /* the segment being written */
    newest = n;
    if (g_file_test(path, G_FILE_TEST_EXISTS))
      continue;
    if (!unwritten_before(path, NULL, FALSE))
      g_message("archive %s: writing the summary of segment %" G_GUINT64_FORMAT, w->dir, n);
    summarize(w, n);
  }
  if (newest > 0)
    write_missing_last(w, newest);
  return TRUE;
}

/* The index of the segment just sealed, written again whole from its
 * records when a write of it failed (a full disk stopped it): a sealed
 * segment's index lists every record (invariant 4). A failure again is
 * logged only: readers scan a segment past its index, and verify reports
 * an index left short. */
static void
rebuild_broken_index(SqlenvfsArchiveWriter *w)
{
  g_autoptr(GArray) entries = g_array_new(FALSE, FALSE, sizeof(SqlenvfsArchiveEntry));
  g_autofree guint8 *chunk = g_malloc(IO_CHUNK);
  g_autoptr(GError) error = NULL;
  guint64 off = SEG_HEADER_SIZE, size;
  SegFile sf;

  if (!archive_seg_file_open(w->dir, w->seg_number, O_RDONLY, &sf, &error)) {
    g_warning("archive %s: %s (its index stays short; readers scan the segment)", w->dir,
              error->message);
    return;
  }
  size = sf.size;
  while (off < size) {
    SqlenvfsArchiveEntry e;
    gboolean torn;
    if (!archive_read_record(&sf, off, &e, &torn, NULL, chunk, &error))
      break;
    e.segment = 0;
    g_array_append_val(entries, e);
    off += e.length;
  }
  archive_seg_file_close(&sf);
  if (error == NULL && off != size)
    g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s: a record at offset %" G_GUINT64_FORMAT " does not read back", w->seg_path,
                off);
  if (error != NULL || !rewrite_index(w, entries, &error)) {
    g_warning("archive %s: rewrite the index of %s: %s (it stays short; readers scan the "
              "segment)", w->dir, w->seg_path, error->message);
    return;
  }
  g_message("archive %s: the index of %s, cut short by a failed write, was written again",
            w->dir, w->seg_path);
}

static gboolean
seal(SqlenvfsArchiveWriter *w, GError **error)
{
  SqlenvfsArchiveEntry e = { 0 };
  e.type = SQLENVFS_ARCHIVE_SEAL;
  e.time = w->last_time; /* never later than what follows (invariant 6) */
  e.reason = w->seg_crc; /* the checksum of every byte before the seal */
  e.flags = SEAL_HAS_DIGEST;
  e.digest = w->seg_digest; /* ... and of its records, which the next header names */
  /* The index of every record before the seal is durable before the seal
   * can be: a sealed segment's index is checked as a finished one (only
   * the seal's own entry may be missing after a power cut). */
  sync_index(w);
  if (!write_simple(w, &e, NULL, 0, FALSE, error))
    return FALSE;
  if (!sqlenvfs_archive_writer_sync(w, error))
    return FALSE;
  sync_index(w);
  if (w->idx_broken)
    rebuild_broken_index(w);
  w->prev_seal_crc = e.reason;
  w->has_prev_digest = TRUE;
  w->prev_digest = e.digest;
  w->is_sealed = TRUE;
  g_debug("archive %s: sealed %s (%" G_GUINT64_FORMAT " bytes)", w->dir, w->seg_path,
          w->seg_size);
  summarize(w, w->seg_number);
  backfill_last(w);
  return TRUE;
}

static gboolean
prepare_record(SqlenvfsArchiveWriter *w, guint64 length, guint64 n_records, GError **error)
{
  if (w->seg_fd < 0 || w->is_sealed)
    return new_segment(w, error);
  /* The seal counts: it is one more record. */
  if (w->seg_version != w->version ||
      (w->seg_size > SEG_HEADER_SIZE &&
       (w->seg_size + length + REC_EMPTY_SIZE > (guint64)w->max_bytes ||
        w->next_seq - w->seg_first_seq + n_records + 1 > w->max_records))) {
    if (!seal(w, error))
      return FALSE;
    return new_segment(w, error);
  }
  return TRUE;
}

/* @t, or the last record's time when the clock went back before it, or the
 * alive time when it went back before that: alive says that every commit
 * made before it is archived already, so a later one captured under a
 * clock that stepped forward (alive was written then) and back must not
 * take a time before it, where restores already gave the state without it. */
static gint64
clamp_time(SqlenvfsArchiveWriter *w, gint64 t)
{
  gint64 floor = MAX(w->last_time, w->alive);
  if (t < floor) {
    g_debug("archive %s: clock went back %" G_GINT64_FORMAT " us; keeping time order", w->dir,
            floor - t);
    return floor;
  }
  return t;
}

gboolean
sqlenvfs_archive_writer_add_gap(SqlenvfsArchiveWriter *w, gint64 time, gint64 prev_alive,
                                SqlenvfsGapReason reason, const char *text,
                                const SqlenvfsArchiveEntry *wal, GError **error)
{
  SqlenvfsArchiveEntry e = { 0 };
  gsize len = text ? MIN(strlen(text), (gsize)MAX_TEXT) : 0;

  g_return_val_if_fail(!w->in_commit && !w->in_batch, FALSE);
  e.type = SQLENVFS_ARCHIVE_GAP;
  e.time = clamp_time(w, time);
  e.aux_time = prev_alive;
  e.reason = reason;
  e.text_len = (guint32)len;
  if (wal) {
    e.salt1 = wal->salt1;
    e.salt2 = wal->salt2;
    e.ckpt_seq = wal->ckpt_seq;
    e.page_size = wal->page_size;
    e.commit_frame = wal->commit_frame;
    e.cksum1 = wal->cksum1;
    e.cksum2 = wal->cksum2;
  }
  return write_simple(w, &e, text, len, TRUE, error);
}

gboolean
sqlenvfs_archive_writer_add_outage(SqlenvfsArchiveWriter *w, gint64 from, gint64 to,
                                   GError **error)
{
  SqlenvfsArchiveEntry e = { 0 };
  g_return_val_if_fail(!w->in_commit && !w->in_batch, FALSE);
  e.type = SQLENVFS_ARCHIVE_OUTAGE;
  e.time = clamp_time(w, to);
  e.aux_time = from;
  return write_simple(w, &e, NULL, 0, TRUE, error);
}

void
sqlenvfs_archive_writer_set_version(SqlenvfsArchiveWriter *w, guint32 version)
{
  g_return_if_fail(archive_known_version(version));
  w->version = version;
}

/* Version 2: store the pages collected in w->blk as the record's next block,
 * compressed unless that would not make it smaller (a block stored as long
 * as its pages is stored as they are), and note its length and crc32. */
static gboolean
flush_block(SqlenvfsArchiveWriter *w, GError **error)
{
  guint8 ent[BLOCK_ENTRY_SIZE];
  const guint8 *out = w->blk;
  gsize n = w->blk_len;
  size_t z;

  if (w->blk_len == 0)
    return TRUE;
  z = ZSTD_compressCCtx(w->zctx, w->zbuf, w->zcap, w->blk, w->blk_len, ZSTD_LEVEL);
  if (!ZSTD_isError(z) && z < w->blk_len) {
    out = w->zbuf;
    n = z;
  }
  put32(ent, (guint32)n);
  put32(ent + 4, crc(0, out, n));
  g_array_append_vals(w->blocks, ent, 1);
  w->blk_len = 0;
  return seg_append(w, out, n, error);
}

/* Version 2: end a compressed COMMIT's body (last block, block table), then
 * write its header, now that its length is known, at the record's start
 * (still staged for any record that fits the stage), and make cur_crc the
 * checksum of the header and the body. */
static gboolean
finish_compressed(SqlenvfsArchiveWriter *w, GError **error)
{
  guint8 hdr[REC_HEADER_SIZE];
  guint64 body_len, on_disk;

  if (!flush_block(w, error) ||
      !seg_append(w, w->blocks->data, (gsize)w->blocks->len * BLOCK_ENTRY_SIZE, error))
    return FALSE;
  g_assert(w->blocks->len == archive_n_blocks(w->cur_stream, w->cur.page_size));
  body_len = w->seg_size - w->rec_start - REC_HEADER_SIZE;
  w->cur.length = REC_HEADER_SIZE + body_len + REC_TRAILER_SIZE;
  g_assert(archive_compressed_length_ok(&w->cur));
  archive_encode_header(&w->cur, hdr);
  on_disk = w->seg_size - w->stage_len;
  if (w->rec_start >= on_disk) {
    memcpy(w->stage + (w->rec_start - on_disk), hdr, sizeof hdr);
  } else {
    /* The stage is flushed whole: the placeholder header went with it. */
    g_assert(w->rec_start + REC_HEADER_SIZE <= on_disk);
    if (!seg_write(w, hdr, sizeof hdr, w->rec_start, error))
      return FALSE;
  }
  w->cur_crc = sqlenvfs_crc32_combine(crc(0, hdr, sizeof hdr), w->cur_crc, (guint64)body_len);
  return TRUE;
}

/* Begin a COMMIT record whose blocks hold @stream pages: its own n_pages
 * (first), then, for the first record of a batch, those of the batch's
 * other commits (@stream > n_pages: version 2 only). @prepared: room was
 * made for it already (a batch is made room for as a whole). */
static gboolean
begin_stream(SqlenvfsArchiveWriter *w, const SqlenvfsArchiveEntry *e, const guint32 *pgnos,
             guint32 stream, gboolean prepared, GError **error)
{
  gsize list_len = 4 * (gsize)e->n_pages;
  g_autofree guint8 *buf = g_malloc0(REC_HEADER_SIZE + list_len);
  gboolean compress;

  w->cur = *e;
  w->cur.type = SQLENVFS_ARCHIVE_COMMIT;
  w->cur.flags &= ~(guint32)(SQLENVFS_ARCHIVE_COMPRESSED | SQLENVFS_ARCHIVE_BATCHED);
  w->cur.length = archive_commit_length(stream, e->page_size);
  w->cur.reason = 0;
  w->cur.text_len = stream > e->n_pages ? stream : 0;
  /* A compressed record is at most this long plus its block table. */
  if (!prepared &&
      !prepare_record(w,
                      w->cur.length + BLOCK_ENTRY_SIZE * (guint64)archive_n_blocks(stream, e->page_size),
                      1, error))
    return FALSE;
  compress = w->seg_version >= 2 && stream > 0;
  g_return_val_if_fail(compress || stream == e->n_pages, FALSE);
  if (compress)
    w->cur.flags |= SQLENVFS_ARCHIVE_COMPRESSED;
  w->cur_stream = stream;
  w->cur.seq = w->next_seq;
  w->cur.time = clamp_time(w, e->time);
  w->cur.aux_time = MIN(e->aux_time, w->cur.time);
  w->cur.offset = w->seg_size;
  if (!compress)
    archive_encode_header(&w->cur, buf); /* else: zeros until the length is known */
  for (guint32 i = 0; i < e->n_pages; i++)
    put32(buf + REC_HEADER_SIZE + 4 * i, pgnos[i]);
  w->rec_start = w->seg_size;
  w->seg_crc_before = w->seg_crc;
  w->cur_crc = 0;
  if (compress) {
    gsize blk_cap = (gsize)archive_pages_per_block(e->page_size) * e->page_size;
    if (w->zctx == NULL) {
      w->zctx = ZSTD_createCCtx();
      if (w->zctx == NULL) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                    "archive %s: cannot create a zstd compression context (out of memory)",
                    w->dir);
        return FALSE;
      }
      w->blocks = g_array_new(FALSE, FALSE, BLOCK_ENTRY_SIZE);
    }
    if (w->zcap < ZSTD_compressBound(blk_cap)) {
      w->zcap = ZSTD_compressBound(blk_cap);
      w->zbuf = g_realloc(w->zbuf, w->zcap);
      w->blk = g_realloc(w->blk, blk_cap);
    }
    w->blk_len = 0;
    g_array_set_size(w->blocks, 0);
    if (!seg_append(w, buf, REC_HEADER_SIZE, error)) {
      cut_record(w);
      return FALSE;
    }
    w->cur_crc = 0; /* the header is folded in by finish_compressed() */
    if (!seg_append(w, buf + REC_HEADER_SIZE, list_len, error)) {
      cut_record(w);
      return FALSE;
    }
  } else if (!seg_append(w, buf, REC_HEADER_SIZE + list_len, error)) {
    cut_record(w);
    return FALSE;
  }
  w->cur_compressed = compress;
  w->cur_remaining = (guint64)stream * e->page_size;
  w->in_commit = TRUE;
  return TRUE;
}

static gint64
batch_clamp(SqlenvfsArchiveWriter *w, gint64 t)
{
  gint64 t0 = clamp_time(w, t);
  return MAX(t0, w->batch_last_time);
}

gboolean
sqlenvfs_archive_writer_begin_commit(SqlenvfsArchiveWriter *w, const SqlenvfsArchiveEntry *e,
                                     const guint32 *pgnos, GError **error)
{
  g_return_val_if_fail(!w->in_commit, FALSE);
  g_return_val_if_fail(sqlenvfs_page_size_ok(e->page_size), FALSE);
  g_return_val_if_fail(e->first_frame >= 1 && e->commit_frame >= e->first_frame, FALSE);
  if (!w->in_batch)
    return begin_stream(w, e, pgnos, e->n_pages, FALSE, error);
  /* In a batch: collect it (its sequence number and time are those it
   * will be written with). */
  g_return_val_if_fail(w->batch->len == 0 ||
                         g_array_index(w->batch, SqlenvfsArchiveEntry, 0).page_size == e->page_size,
                       FALSE);
  w->cur = *e;
  w->cur.type = SQLENVFS_ARCHIVE_COMMIT;
  w->cur.flags &= ~(guint32)(SQLENVFS_ARCHIVE_COMPRESSED | SQLENVFS_ARCHIVE_BATCHED);
  w->cur.reason = 0;
  w->cur.text_len = 0;
  w->cur.seq = 0; /* given when written (a roll may take a number first) */
  w->cur.time = batch_clamp(w, e->time);
  w->cur.aux_time = MIN(e->aux_time, w->cur.time);
  w->cur_remaining = (guint64)e->n_pages * e->page_size;
  g_array_append_vals(w->batch_pgnos, pgnos, e->n_pages);
  w->in_commit = TRUE;
  return TRUE;
}

/* Version 2: collect page bytes into blocks, storing each block when full. */
static gboolean
add_compressed(SqlenvfsArchiveWriter *w, const guint8 *data, gsize len, GError **error)
{
  gsize blk_cap = (gsize)archive_pages_per_block(w->cur.page_size) * w->cur.page_size;
  while (len > 0) {
    gsize take = MIN(len, blk_cap - w->blk_len);
    memcpy(w->blk + w->blk_len, data, take);
    w->blk_len += take;
    data += take;
    len -= take;
    if (w->blk_len == blk_cap && !flush_block(w, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
sqlenvfs_archive_writer_add_pages(SqlenvfsArchiveWriter *w, const void *data, gsize len,
                                  GError **error)
{
  g_return_val_if_fail(w->in_commit, FALSE);
  g_return_val_if_fail(len <= w->cur_remaining, FALSE);
  if (w->in_batch) {
    g_byte_array_append(w->batch_pages, data, (guint)len);
    w->cur_remaining -= len;
    return TRUE;
  }
  if (!(w->cur_compressed ? add_compressed(w, data, len, error)
                          : seg_append(w, data, len, error))) {
    sqlenvfs_archive_writer_abort_commit(w);
    return FALSE;
  }
  w->cur_remaining -= len;
  return TRUE;
}

gboolean
sqlenvfs_archive_writer_end_commit(SqlenvfsArchiveWriter *w, GError **error)
{
  g_return_val_if_fail(w->in_commit, FALSE);
  g_return_val_if_fail(w->cur_remaining == 0, FALSE);
  if (w->in_batch) {
    g_array_append_val(w->batch, w->cur);
    w->batch_last_time = w->cur.time;
    w->in_commit = FALSE;
    return TRUE;
  }
  if ((w->cur_compressed && !finish_compressed(w, error)) ||
      !seg_finish_record(w, &w->cur, error)) {
    sqlenvfs_archive_writer_abort_commit(w);
    return FALSE;
  }
  w->in_commit = FALSE;
  index_record(w, &w->cur);
  note_record(w, &w->cur);
  return TRUE;
}

void
sqlenvfs_archive_writer_abort_commit(SqlenvfsArchiveWriter *w)
{
  if (!w->in_commit)
    return;
  w->in_commit = FALSE;
  if (w->in_batch) {
    /* Drop what this commit added to the batch. */
    guint64 pages_len = 0;
    guint npg = 0;
    for (guint i = 0; i < w->batch->len; i++)
      npg += g_array_index(w->batch, SqlenvfsArchiveEntry, i).n_pages;
    pages_len = (guint64)npg * w->cur.page_size;
    g_array_set_size(w->batch_pgnos, npg);
    g_byte_array_set_size(w->batch_pages, (guint)pages_len);
    return;
  }
  cut_record(w);
}

void
sqlenvfs_archive_writer_begin_batch(SqlenvfsArchiveWriter *w)
{
  g_return_if_fail(!w->in_batch && !w->in_commit);
  if (w->batch == NULL) {
    w->batch = g_array_new(FALSE, FALSE, sizeof(SqlenvfsArchiveEntry));
    w->batch_pgnos = g_array_new(FALSE, FALSE, sizeof(guint32));
    w->batch_pages = g_byte_array_new();
  }
  g_array_set_size(w->batch, 0);
  g_array_set_size(w->batch_pgnos, 0);
  g_byte_array_set_size(w->batch_pages, 0);
  w->batch_last_time = G_MININT64;
  w->in_batch = TRUE;
}

guint
sqlenvfs_archive_writer_batch_size(const SqlenvfsArchiveWriter *w, guint64 *page_bytes)
{
  if (page_bytes)
    *page_bytes = w->in_batch ? w->batch_pages->len : 0;
  return w->in_batch ? w->batch->len : 0;
}

void
sqlenvfs_archive_writer_abort_batch(SqlenvfsArchiveWriter *w)
{
  if (!w->in_batch)
    return;
  sqlenvfs_archive_writer_abort_commit(w);
  w->in_batch = FALSE;
}

/* What end_batch() puts back when writing a batch fails. */
typedef struct {
  guint64 seg_size, next_seq, idx_size;
  guint32 seg_crc, seg_digest;
  gsize idx_stage_len;
  gboolean has_last, has_last_state;
  SqlenvfsArchiveEntry last, last_state;
  gint64 last_time, alive;
} WriterMark;

gboolean
sqlenvfs_archive_writer_end_batch(SqlenvfsArchiveWriter *w, GError **error)
{
  guint n = 0, first_page = 0;
  const SqlenvfsArchiveEntry *e0;
  guint64 bound;
  WriterMark m;
  gboolean batched;

  g_return_val_if_fail(w->in_batch && !w->in_commit, FALSE);
  w->in_batch = FALSE;
  if (w->batch->len == 0)
    return TRUE;
  e0 = &g_array_index(w->batch, SqlenvfsArchiveEntry, 0);
  n = w->batch_pgnos->len;
  batched = w->batch->len > 1 && n > 0 && w->version >= 2;

  /* Room for all of it in one segment (so that a failure cuts it all off
   * again): batched, the first record with every page, then one record per
   * other commit; else a record per commit. */
  if (batched) {
    bound = archive_commit_length(n, e0->page_size) +
            BLOCK_ENTRY_SIZE * (guint64)archive_n_blocks(n, e0->page_size);
    for (guint i = 1; i < w->batch->len; i++)
      bound += REC_EMPTY_SIZE +
               4 * (guint64)g_array_index(w->batch, SqlenvfsArchiveEntry, i).n_pages;
  } else {
    bound = 0;
    for (guint i = 0; i < w->batch->len; i++) {
      const SqlenvfsArchiveEntry *e = &g_array_index(w->batch, SqlenvfsArchiveEntry, i);
      bound += archive_commit_length(e->n_pages, e->page_size) +
               BLOCK_ENTRY_SIZE * (guint64)archive_n_blocks(e->n_pages, e->page_size);
    }
  }
  if (!prepare_record(w, bound, w->batch->len, error))
    return FALSE;
  index_flush(w);
  m = (WriterMark){ w->seg_size, w->next_seq, w->idx_size, w->seg_crc, w->seg_digest,
                    w->idx_stage_len,
                    w->has_last, w->has_last_state, w->last, w->last_state, w->last_time,
                    w->alive };
  if (!batched) {
    /* One commit, or no pages, or version 1: one record each. */
    for (guint i = 0; i < w->batch->len; i++) {
      SqlenvfsArchiveEntry *e = &g_array_index(w->batch, SqlenvfsArchiveEntry, i);
      if (!begin_stream(w, e, &g_array_index(w->batch_pgnos, guint32, first_page), e->n_pages,
                        TRUE, error) ||
          !sqlenvfs_archive_writer_add_pages(w, w->batch_pages->data +
                                                  (gsize)first_page * e->page_size,
                                             (gsize)e->n_pages * e->page_size, error) ||
          !sqlenvfs_archive_writer_end_commit(w, error))
        goto fail;
      first_page += e->n_pages;
    }
    return TRUE;
  }
  if (!begin_stream(w, e0, &g_array_index(w->batch_pgnos, guint32, 0), n, TRUE, error) ||
      !sqlenvfs_archive_writer_add_pages(w, w->batch_pages->data, w->batch_pages->len, error) ||
      !sqlenvfs_archive_writer_end_commit(w, error))
    goto fail;
  first_page = e0->n_pages;
  for (guint i = 1; i < w->batch->len; i++) {
    SqlenvfsArchiveEntry e = g_array_index(w->batch, SqlenvfsArchiveEntry, i);
    g_autofree guint8 *body = g_malloc(MAX(4 * (gsize)e.n_pages, 1));
    for (guint32 k = 0; k < e.n_pages; k++)
      put32(body + 4 * k, g_array_index(w->batch_pgnos, guint32, first_page + k));
    e.flags |= SQLENVFS_ARCHIVE_BATCHED;
    e.reason = i;          /* records back to the batch's first */
    e.text_len = first_page; /* its first page there */
    /* Its number is given now: rolling the segment took one for the seal. */
    if (!write_simple(w, &e, body, 4 * (gsize)e.n_pages, FALSE, error))
      goto fail;
    first_page += e.n_pages;
  }
  return TRUE;

fail:
  /* Cut the whole batch off: its later records need its first. */
  w->stage_len = 0;
  if (w->seg_fd >= 0 && ftruncate(w->seg_fd, (off_t)m.seg_size) != 0)
    g_warning("archive %s: could not cut off a failed batch in %s: %s (the archiver "
              "discards it on its next start)", w->dir, w->seg_path, g_strerror(errno));
  w->seg_size = m.seg_size;
  w->seg_crc = m.seg_crc;
  w->seg_digest = m.seg_digest;
  w->next_seq = m.next_seq;
  w->has_last = m.has_last;
  w->has_last_state = m.has_last_state;
  w->last = m.last;
  w->last_state = m.last_state;
  w->last_time = m.last_time;
  w->alive = m.alive;
  /* The index was flushed before the batch: cut what it got of it. */
  w->idx_stage_len = 0;
  if (w->idx_size != m.idx_size && w->idx_fd >= 0 &&
      ftruncate(w->idx_fd, (off_t)m.idx_size) != 0)
    w->idx_broken = TRUE; /* readers check entries; the next start rewrites it */
  w->idx_size = m.idx_size;
  return FALSE;
}

/* The index is derived (invariant 6): it is made durable only when its
 * segment is sealed or closed; after a crash the next writer rewrites the
 * last one, and readers check every entry. */
static void
sync_index(SqlenvfsArchiveWriter *w)
{
  index_flush(w);
  if (w->idx_fd >= 0 && !w->idx_broken && fdatasync(w->idx_fd) != 0)
    g_warning("archive %s: sync %s: %s (the index is rebuilt when the archiver starts)",
              w->dir, w->idx_path, g_strerror(errno));
}

gboolean
sqlenvfs_archive_writer_sync(SqlenvfsArchiveWriter *w, GError **error)
{
  index_flush(w);
  if (!w->is_dirty)
    return TRUE;
  if (w->seg_fd >= 0 && fdatasync(w->seg_fd) != 0)
    return sqlenvfs_error_errno(error, errno, "sync archive segment", w->seg_path);
  w->is_dirty = FALSE;
  /* A reader of this process (the mount's pitr/) need not read back what
   * was just written to check it: only whole records, nothing else. */
  if (w->seg_fd >= 0 && !w->in_commit) {
    struct stat st;
    if (fstat(w->seg_fd, &st) == 0 && (guint64)st.st_size == w->seg_size) {
      archive_note_written(w->seg_path, &st, w->noted_from);
      w->noted_from = w->seg_size;
    }
  }
  return TRUE;
}

gboolean
sqlenvfs_archive_writer_set_alive(SqlenvfsArchiveWriter *w, gint64 time, gint64 min_step_us,
                                  GError **error)
{
  guint8 buf[ALIVE_SIZE];

  /* An alive time vouches for every record before it as durable. */
  if (w->is_dirty && !sqlenvfs_archive_writer_sync(w, error))
    return FALSE;
  if (time > w->alive)
    w->alive = time;
  if (w->alive - w->alive_written < min_step_us && w->alive_written > 0)
    return TRUE;
  if (w->alive_fd < 0) {
    w->alive_fd = sqlenvfs_open_own_file(w->alive_path, O_RDWR, w->mode, error);
    if (w->alive_fd < 0)
      return FALSE;
    if (!sqlenvfs_narrow_fd(w->alive_fd, w->mode, w->alive_path, error))
      return FALSE;
    /* its name, if it was just created, is durable only with the directory */
    if (!sqlenvfs_fsync_dir(w->dir, error))
      return FALSE;
  }
  memset(buf, 0, sizeof buf);
  memcpy(buf, ALIVE_MAGIC, 8);
  put64(buf + 8, (guint64)w->alive);
  put64(buf + 16, w->next_seq);
  put32(buf + 28, crc(0, buf, 28));
  if (!archive_pwrite_full(w->alive_fd, buf, sizeof buf, 0, w->alive_path, error))
    return FALSE;
  /* Published, so durable: a restart after a power cut must not find an
   * older alive time than the one shown (the window would go backwards). */
  if (fdatasync(w->alive_fd) != 0)
    return sqlenvfs_error_errno(error, errno, "sync", w->alive_path);
  w->alive_written = w->alive;
  return TRUE;
}
