/*
 * archive_format.c — the WAL archive format: the byte layout of segments,
 * records, index entries, the alive file and the prune log, their encoding
 * and decoding, and the file helpers the writer, the reader and verify share
 * (archive_writer.c, archive_reader.c, archive_verify.c).
 *
 * Format versions 1 and 2 (new segments: 2). All integers little-endian.
 * crc32 is zlib's. Version 2 differs only in COMMIT records with flag 2
 * (below); a segment is all of one version, given in its header.
 *
 * <number>.seg  (number: 16 decimal digits, from 1, consecutive)
 *   Segment header, 64 bytes
 *      0  8  magic "SQEFSSEG"
 *      8  4  format version (1 or 2)
 *     12  4  header size (64)
 *     16  8  segment number
 *     24  8  seq of the first record in this segment
 *     32  8  creation time (us since the epoch, UTC)
 *     40  4  crc32 of the previous segment (its SEAL record's checksum; 0
 *            for the first segment ever written)
 *     44 16  zero
 *     60  4  crc32 of bytes 0..59
 *   Records, back to back from offset 64. Each record:
 *     header, 96 bytes
 *      0  4  magic 0x52415153 ("SQAR")
 *      4  2  type: 1 COMMIT, 2 GAP, 3 OUTAGE, 4 SEAL
 *      6  2  flags (COMMIT: 1 = the WAL used big-endian checksums)
 *      8  8  length of the whole record (header + body + trailer)
 *     16  8  seq
 *     24  8  time (us)
 *     32  8  aux time (us)
 *     40  4  page size
 *     44  4  database size in pages after the commit
 *     48  4  n: number of page images
 *     52  4  WAL salt-1     56  4  WAL salt-2      60  4  WAL checkpoint seq
 *     64  4  first frame    68  4  commit frame
 *     72  4  WAL cumulative checksum-1  76  4  checksum-2
 *     80  4  reason (GAP) / crc32 of the segment before this record (SEAL)
 *     84  4  text length (GAP)
 *     88  4  zero
 *     92  4  crc32 of header bytes 0..91
 *     body
 *       COMMIT  n x u32 page numbers (each once), then n page images in
 *               that order (n x page size bytes)
 *       COMMIT with flag 2 (version 2: compressed): n x u32 page numbers,
 *               then b blocks, then the block table: b x (u32 stored
 *               length, u32 crc32 of the stored bytes). Block j holds
 *               pages j*ppb .. min(n, (j+1)*ppb)-1, ppb = max(1, 65536 /
 *               page size): a zstd frame of exactly those bytes, or the
 *               bytes as they are when the stored length equals theirs.
 *               The header is written last (the length is known only
 *               then); readers check each block's crc32 and decompressed
 *               length before using a byte of it. The first record of a
 *               batch has, at header offset 84, the number of pages in its
 *               blocks: its own, then those of the batch's later commits.
 *       COMMIT with flag 4 (version 2: a later commit of a batch): n x u32
 *               page numbers only; header offset 80: records back to the
 *               batch's first record (same segment), 84: index of its first
 *               page among that record's pages. A batch is written whole or
 *               cut off whole (end_batch()).
 *       GAP     text length bytes of UTF-8 reason
 *       OUTAGE, SEAL  nothing
 *     trailer, 8 bytes
 *      0  4  crc32 of the header and the body
 *      4  4  magic 0x444e4552 ("REND")
 *
 * <number>.idx
 *   header, 32 bytes: "SQEFSIDX", u32 version, u32 zero, u64 segment
 *   number, u32 zero, u32 crc32 of bytes 0..27
 *   entries, 112 bytes each, one per record of the segment in order: the
 *   record's 96-byte header, u64 offset of the record in the segment, u32
 *   zero, u32 crc32 of the entry's bytes 0..107
 *
 * alive (32 bytes, rewritten in place)
 *   "SQEFSALV", i64 time, u64 next seq at that time, u32 zero, u32 crc32
 *   of bytes 0..27
 *
 * PRUNED (text, only appended to, by prune)
 *   one line per segment removed, written and fsync'd before the segment
 *   is unlinked:
 *     "segment=<16 digits> first-seq=<n> next-seq=<n> seal=0x<8 hex>
 *      removed-us=<n> crc32=0x<8 hex>\n"   (one line; crc32 of the line's
 *   bytes before " crc32="). next-seq is the first seq of the segment after
 *   it, seal the crc32 its SEAL record carries (the next header's
 *   previous-segment checksum).
 *
 * Invariants kept here (numbering of archive.h):
 *   (1) readers use a record only when its header checksum and length are
 *       right; read_commit() checks the trailer checksum too;
 *   (2) seq is consecutive across segments; a reader inserts a DAMAGED gap
 *       wherever it is not;
 *   (3) a segment is written by appending; a failed record is cut off again
 *       (ftruncate) before anything else is written; a sealed segment is
 *       never written again; writer_open() truncates a torn tail, syncs
 *       what it keeps of the last segment and rewrites the last index
 *       (atomically, by rename);
 *   (5) record times are clamped to never decrease.
 *   (6) The index is derived: an index entry is written only after its
 *       record is complete in the segment, so a reader that trusts an index
 *       entry never reads past what was written.
 *   (7) A segment disappears only after PRUNED durably says so: every
 *       segment number below the first one present is either in PRUNED or
 *       was lost, and verify reports it so.
 */
#include "sqlenvfs/archive.h"

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
/* Records                                                              */

gboolean
sqlenvfs_archive_entry_is_state(const SqlenvfsArchiveEntry *e)
{
  if (e->type == SQLENVFS_ARCHIVE_COMMIT)
    return TRUE;
  return e->type == SQLENVFS_ARCHIVE_GAP && e->reason != SQLENVFS_GAP_DAMAGED &&
         e->commit_frame == 0;
}

guint32
sqlenvfs_archive_entry_header_crc(const SqlenvfsArchiveEntry *e)
{
  guint8 p[REC_HEADER_SIZE];
  archive_encode_header(e, p);
  return get32(p + 92);
}

const char *
sqlenvfs_archive_gap_reason_text(SqlenvfsGapReason reason)
{
  switch (reason) {
  case SQLENVFS_GAP_FIRST_START:
    return "archiving started";
  case SQLENVFS_GAP_WAL_RESTARTED:
    return "the WAL was restarted before the archiver had read all of it";
  case SQLENVFS_GAP_WAL_MISSING:
    return "the WAL was checkpointed and removed before the archiver had read all of it";
  case SQLENVFS_GAP_WAL_MISMATCH:
    return "the WAL no longer holds the last archived frame";
  case SQLENVFS_GAP_DB_REPLACED:
    return "the database file was replaced";
  case SQLENVFS_GAP_DAMAGED:
    return "archive records are missing or unreadable";
  }
  return "unknown";
}

guint64
archive_commit_length(guint32 n_pages, guint32 page_size)
{
  return REC_EMPTY_SIZE + 4 * (guint64)n_pages + (guint64)n_pages * page_size;
}

void
archive_encode_header(const SqlenvfsArchiveEntry *e, guint8 *p)
{
  memset(p, 0, REC_HEADER_SIZE);
  put32(p + 0, REC_MAGIC);
  put16(p + 4, (guint16)e->type);
  put16(p + 6, (guint16)e->flags);
  put64(p + 8, e->length);
  put64(p + 16, e->seq);
  put64(p + 24, (guint64)e->time);
  put64(p + 32, (guint64)e->aux_time);
  put32(p + 40, e->page_size);
  put32(p + 44, e->db_pages);
  put32(p + 48, e->n_pages);
  put32(p + 52, e->salt1);
  put32(p + 56, e->salt2);
  put32(p + 60, e->ckpt_seq);
  put32(p + 64, e->first_frame);
  put32(p + 68, e->commit_frame);
  put32(p + 72, e->cksum1);
  put32(p + 76, e->cksum2);
  put32(p + 80, e->reason);
  put32(p + 84, e->text_len);
  put32(p + 88, e->digest);
  put32(p + 92, crc(0, p, 92));
}

/* Version 2: the page images of a compressed COMMIT are stored in blocks of
 * archive_pages_per_block() pages (the last one may hold fewer). */
guint32
archive_pages_per_block(guint32 page_size)
{
  return MAX(1u, BLOCK_BYTES / page_size);
}

guint32
archive_n_blocks(guint32 n_pages, guint32 page_size)
{
  guint32 ppb = archive_pages_per_block(page_size);
  return n_pages / ppb + (n_pages % ppb != 0);
}

/* The pages in the blocks of a compressed COMMIT: its own, or, for the
 * first record of a batch, those of every commit of the batch (text_len). */
guint32
archive_stream_pages(const SqlenvfsArchiveEntry *e)
{
  return e->text_len != 0 ? e->text_len : e->n_pages;
}

/* The bounds of a compressed COMMIT's length: a block is never stored
 * larger than its pages (it is then stored as they are). */
gboolean
archive_compressed_length_ok(const SqlenvfsArchiveEntry *e)
{
  guint32 sp = archive_stream_pages(e);
  guint64 fixed = REC_EMPTY_SIZE + 4 * (guint64)e->n_pages +
                  BLOCK_ENTRY_SIZE * (guint64)archive_n_blocks(sp, e->page_size);
  return sp >= e->n_pages && e->length >= fixed + archive_n_blocks(sp, e->page_size) &&
         e->length <= fixed + (guint64)sp * e->page_size;
}

/* Decode and check a record header (invariant 1, header part). */
gboolean
archive_decode_header(const guint8 *p, SqlenvfsArchiveEntry *e)
{
  memset(e, 0, sizeof *e);
  if (get32(p) != REC_MAGIC || get32(p + 92) != crc(0, p, 92))
    return FALSE;
  e->type = get16(p + 4);
  e->flags = get16(p + 6);
  e->length = get64(p + 8);
  e->seq = get64(p + 16);
  e->time = (gint64)get64(p + 24);
  e->aux_time = (gint64)get64(p + 32);
  e->page_size = get32(p + 40);
  e->db_pages = get32(p + 44);
  e->n_pages = get32(p + 48);
  e->salt1 = get32(p + 52);
  e->salt2 = get32(p + 56);
  e->ckpt_seq = get32(p + 60);
  e->first_frame = get32(p + 64);
  e->commit_frame = get32(p + 68);
  e->cksum1 = get32(p + 72);
  e->cksum2 = get32(p + 76);
  e->reason = get32(p + 80);
  e->text_len = get32(p + 84);
  e->digest = get32(p + 88);
  switch (e->type) {
  case SQLENVFS_ARCHIVE_COMMIT:
    if (!sqlenvfs_page_size_ok(e->page_size) || e->commit_frame < e->first_frame ||
        e->first_frame < 1)
      return FALSE;
    if (e->flags & SQLENVFS_ARCHIVE_BATCHED)
      return !(e->flags & SQLENVFS_ARCHIVE_COMPRESSED) && e->reason >= 1 &&
             e->length == REC_EMPTY_SIZE + 4 * (guint64)e->n_pages;
    if (e->flags & SQLENVFS_ARCHIVE_COMPRESSED)
      return archive_compressed_length_ok(e);
    return e->length == archive_commit_length(e->n_pages, e->page_size);
  case SQLENVFS_ARCHIVE_GAP:
    return e->text_len <= MAX_TEXT && e->length == REC_EMPTY_SIZE + (guint64)e->text_len;
  case SQLENVFS_ARCHIVE_OUTAGE:
  case SQLENVFS_ARCHIVE_SEAL:
    return e->length == REC_EMPTY_SIZE;
  }
  return FALSE;
}

gboolean
archive_same_header(const SqlenvfsArchiveEntry *a, const SqlenvfsArchiveEntry *b)
{
  return a->type == b->type && a->flags == b->flags && a->seq == b->seq && a->time == b->time &&
         a->aux_time == b->aux_time && a->page_size == b->page_size &&
         a->db_pages == b->db_pages && a->n_pages == b->n_pages && a->salt1 == b->salt1 &&
         a->salt2 == b->salt2 && a->ckpt_seq == b->ckpt_seq &&
         a->first_frame == b->first_frame && a->commit_frame == b->commit_frame &&
         a->cksum1 == b->cksum1 && a->cksum2 == b->cksum2 && a->reason == b->reason &&
         a->text_len == b->text_len && a->digest == b->digest && a->length == b->length;
}

void
archive_encode_idx_entry(const SqlenvfsArchiveEntry *e, guint8 *p)
{
  archive_encode_header(e, p);
  put64(p + 96, e->offset);
  put32(p + 104, 0);
  put32(p + 108, crc(0, p, 108));
}

gboolean
archive_decode_idx_entry(const guint8 *p, SqlenvfsArchiveEntry *e)
{
  if (get32(p + 108) != crc(0, p, 108) || !archive_decode_header(p, e))
    return FALSE;
  e->offset = get64(p + 96);
  return TRUE;
}

void
archive_encode_seg_header(guint8 *p, const SegHeader *h)
{
  memset(p, 0, SEG_HEADER_SIZE);
  memcpy(p, SEG_MAGIC, 8);
  put32(p + 8, h->version);
  put32(p + 12, SEG_HEADER_SIZE);
  put64(p + 16, h->number);
  put64(p + 24, h->first_seq);
  put64(p + 32, (guint64)h->created);
  put32(p + 40, h->prev_crc);
  if (h->has_prev_digest) {
    put32(p + 44, h->prev_digest);
    put32(p + 48, 1);
  }
  put32(p + 60, crc(0, p, 60));
}

gboolean
archive_known_version(guint32 v)
{
  return v >= SQLENVFS_ARCHIVE_VERSION_MIN && v <= SQLENVFS_ARCHIVE_VERSION;
}

/* FALSE with a reason in *why when the header is not a valid one. */
gboolean
archive_decode_seg_header(const guint8 *p, SegHeader *h, const char **why)
{
  if (memcmp(p, SEG_MAGIC, 8) != 0) {
    *why = "not an archive segment (bad magic)";
    return FALSE;
  }
  if (get32(p + 60) != crc(0, p, 60)) {
    *why = "segment header checksum mismatch";
    return FALSE;
  }
  if (!archive_known_version(get32(p + 8)) || get32(p + 12) != SEG_HEADER_SIZE) {
    *why = "unsupported archive format version (written by a newer sqlenvfs?)";
    return FALSE;
  }
  h->number = get64(p + 16);
  h->first_seq = get64(p + 24);
  h->created = (gint64)get64(p + 32);
  h->prev_crc = get32(p + 40);
  h->version = get32(p + 8);
  h->has_prev_digest = (get32(p + 48) & 1) != 0;
  h->prev_digest = h->has_prev_digest ? get32(p + 44) : 0;
  return TRUE;
}

void
archive_encode_idx_header(guint8 *p, guint64 number, guint32 version)
{
  memset(p, 0, IDX_HEADER_SIZE);
  memcpy(p, IDX_MAGIC, 8);
  put32(p + 8, version);
  put64(p + 16, number);
  put32(p + 28, crc(0, p, 28));
}

gboolean
archive_decode_idx_header(const guint8 *p, guint64 number)
{
  return memcmp(p, IDX_MAGIC, 8) == 0 && get32(p + 28) == crc(0, p, 28) &&
         archive_known_version(get32(p + 8)) && get64(p + 16) == number;
}

/* ------------------------------------------------------------------ */
/* File helpers                                                         */

static SqlenvfsArchiveFetchFunc fetch_hook;
static gpointer fetch_hook_user;

void
sqlenvfs_archive_set_fetch_hook(SqlenvfsArchiveFetchFunc fetch, gpointer user)
{
  fetch_hook_user = user;
  fetch_hook = fetch;
}

gboolean
archive_is_fetched(const char *path)
{
  return fetch_hook != NULL &&
         fetch_hook(fetch_hook_user, path, 0, 0, NULL) == SQLENVFS_ARCHIVE_IO_READY;
}

gboolean
archive_pread_full(int fd, void *buf, gsize len, guint64 off, gsize *got, const char *path,
           GError **error)
{
  gsize done = 0;
  *got = 0;
  /* Bytes filled on demand: fetched and checked first (archive.h). */
  if (fetch_hook != NULL && len > 0 &&
      fetch_hook(fetch_hook_user, path, off, len, error) == SQLENVFS_ARCHIVE_IO_FAILED)
    return FALSE;
  while (done < len) {
    ssize_t n = pread(fd, (guint8 *)buf + done, len - done, (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return sqlenvfs_error_errno(error, errno, "read archive file", path);
    }
    if (n == 0)
      break;
    done += (gsize)n;
  }
  *got = done;
  return TRUE;
}

gboolean
archive_pwrite_full(int fd, const void *buf, gsize len, guint64 off, const char *path, GError **error)
{
  gsize done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, (const guint8 *)buf + done, len - done, (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return sqlenvfs_error_errno(error, errno, "write archive file", path);
    }
    done += (gsize)n;
  }
  return TRUE;
}

char *
archive_seg_name(guint64 number, const char *ext)
{
  return g_strdup_printf("%016" G_GUINT64_FORMAT ".%s", number, ext);
}

/* Parse "<16 digits>.seg"; FALSE for anything else. */
gboolean
archive_parse_seg_name(const char *name, const char *ext, guint64 *number)
{
  if (strlen(name) != 17 + strlen(ext) || name[16] != '.' || strcmp(name + 17, ext) != 0)
    return FALSE;
  for (int i = 0; i < 16; i++)
    if (!g_ascii_isdigit(name[i]))
      return FALSE;
  *number = g_ascii_strtoull(name, NULL, 10);
  return *number > 0;
}

gint
archive_cmp_u64(gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
  return x < y ? -1 : x > y;
}

/* Segment numbers present in @dir, ascending. */
GArray *
archive_list_segments(const char *dir, GError **error)
{
  GArray *nums = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_autoptr(GError) local = NULL;
  g_autoptr(GDir) d = g_dir_open(dir, 0, &local);
  const char *name;

  if (d == NULL) {
    if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return nums;
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "list archive directory %s: %s", dir,
                local->message);
    g_array_free(nums, TRUE);
    return NULL;
  }
  while ((name = g_dir_read_name(d)) != NULL) {
    guint64 n;
    if (archive_parse_seg_name(name, "seg", &n))
      g_array_append_val(nums, n);
  }
  g_array_sort(nums, archive_cmp_u64);
  return nums;
}

gboolean
archive_seg_file_open(const char *dir, guint64 number, int flags, SegFile *sf, GError **error)
{
  return archive_seg_file_openat(-1, dir, number, flags, sf, error);
}

gboolean
archive_seg_file_openat(int dfd, const char *dir, guint64 number, int flags, SegFile *sf,
                        GError **error)
{
  g_autofree char *name = archive_seg_name(number, "seg");
  guint8 buf[SEG_HEADER_SIZE];
  struct stat st;
  gsize got;

  memset(sf, 0, sizeof *sf);
  sf->path = g_build_filename(dir, name, NULL);
  /* By name in the open directory @dfd when there is one: the same file,
   * without walking the directory's path again for every segment. */
  if ((flags & O_ACCMODE) != O_RDONLY)
    flags |= O_NOFOLLOW; /* written only as the archive's own file */
  sf->fd = dfd >= 0 ? openat(dfd, name, flags | O_CLOEXEC) : open(sf->path, flags | O_CLOEXEC);
  if (sf->fd < 0) {
    sqlenvfs_error_errno(error, errno, "open archive segment", sf->path);
    g_clear_pointer(&sf->path, g_free);
    return FALSE;
  }
  if (fstat(sf->fd, &st) != 0) {
    sqlenvfs_error_errno(error, errno, "stat archive segment", sf->path);
    close(sf->fd);
    g_clear_pointer(&sf->path, g_free);
    return FALSE;
  }
  sf->size = (guint64)st.st_size;
  sf->st = st;
  if (!archive_pread_full(sf->fd, buf, sizeof buf, 0, &got, sf->path, error)) {
    close(sf->fd);
    g_clear_pointer(&sf->path, g_free);
    return FALSE;
  }
  if (got < sizeof buf)
    sf->hdr_why = "segment shorter than its header";
  else if (archive_decode_seg_header(buf, &sf->hdr, &sf->hdr_why)) {
    if (sf->hdr.number != number)
      sf->hdr_why = "segment number in the header does not match the file name";
    else
      sf->hdr_ok = TRUE;
  }
  return TRUE;
}

gboolean
archive_seg_open_expect(int dfd, const char *dir, const ArchiveSegExpect *x, SegFile *sf,
                        const char **why, GError **error)
{
  SqlenvfsArchiveEntry seal;

  *why = NULL;
  if (!archive_seg_file_openat(dfd, dir, x->number, O_RDONLY, sf, error))
    return FALSE;
  if (!sf->hdr_ok)
    *why = sf->hdr_why;
  else if (sf->size != x->size)
    *why = "its size is not the one its summary gives (it was cut short or replaced)";
  else if (sf->hdr.first_seq != x->first_seq)
    *why = "its header's first record is not the one its summary gives";
  else if (sf->hdr.version != x->version)
    *why = "its header's format version is not the one its summary gives";
  else if (!archive_read_seal_entry_fd(sf->fd, sf->path, sf->size, &seal, NULL, NULL))
    *why = "it does not end with a valid SEAL record";
  else if (seal.reason != x->seal_crc)
    *why = "its SEAL record's checksum is not the one its summary gives";
  if (*why != NULL)
    archive_seg_file_close(sf);
  return TRUE;
}

void
archive_seg_file_close(SegFile *sf)
{
  if (sf->fd >= 0)
    close(sf->fd);
  sf->fd = -1;
  g_clear_pointer(&sf->path, g_free);
  if (sf->win_lent)
    sf->win = NULL;
  g_clear_pointer(&sf->win, g_free);
  sf->win_lent = FALSE;
}

/* The bytes a buffered SegFile reads at once. */
#define SEG_WINDOW (1u << 20)

/* From this many bytes on, a record's checksum is folded into its
 * segment's with crc32_combine rather than by summing the bytes again. */
#define COMBINE_MIN 4096

/* Read @sf from now on in windows of SEG_WINDOW bytes (archive_seg_pread,
 * archive_read_record), never past the size it had when it was opened: a
 * pass over a sealed segment's many small records then makes a few large
 * reads, not three small ones per record. */
/* The window @sf needs: no larger than the file (which a window never
 * reads past), so that a small segment's pass does not clear a huge page
 * it never fills. */
static gsize
seg_window_size(const SegFile *sf)
{
  return (gsize)MIN((guint64)SEG_WINDOW, MAX(sf->size, 4096));
}

void
archive_seg_file_buffer(SegFile *sf)
{
  if (sf->win == NULL)
    sf->win = sqlenvfs_alloc_large(seg_window_size(sf));
  sf->win_start = 0;
  sf->win_len = 0;
}

/* archive_seg_file_buffer() in the caller's window *@win of *@cap bytes,
 * kept from one segment of a pass to the next, so that its memory is
 * touched once (new memory costs a page fault per page: util.h): replaced
 * by a larger one (sqlenvfs_alloc_large) when @sf needs more, and not freed
 * when @sf is closed. The caller frees *@win with g_free(). */
void
archive_seg_file_buffer_with(SegFile *sf, guint8 **win, gsize *cap)
{
  gsize need = seg_window_size(sf);

  g_return_if_fail(sf->win == NULL);
  if (*cap < need) {
    g_free(*win);
    *win = sqlenvfs_alloc_large(need);
    *cap = need;
  }
  sf->win = *win;
  sf->win_lent = TRUE;
  sf->win_start = 0;
  sf->win_len = 0;
}

/* Point *p at bytes [@off, @off + @len) of @sf in its window, reading the
 * window from @off on when it does not hold them; *p NULL when @sf has no
 * window, @len is larger than one, or the file (as large as it was when
 * opened) ends before. FALSE on an I/O error. A pass from the first record
 * to the last moves the part of the window from @off on (the start of a
 * record cut by the window's end) to its front and reads only what
 * follows it, so that each byte of the file is read once. */
gboolean
archive_seg_map(SegFile *sf, guint64 off, gsize len, const guint8 **p, GError **error)
{
  *p = NULL;
  if (sf->win == NULL || len > SEG_WINDOW)
    return TRUE;
  if (off < sf->win_start || off + len > sf->win_start + sf->win_len) {
    guint64 win_end = sf->win_start + sf->win_len;
    gsize kept = off >= sf->win_start && off < win_end ? (gsize)(win_end - off) : 0;
    guint64 from = off + kept;
    gsize want = from < sf->size ? (gsize)MIN((guint64)(SEG_WINDOW - kept), sf->size - from) : 0;
    gsize n = 0;
    if (kept > 0)
      memmove(sf->win, sf->win + (off - sf->win_start), kept);
    sf->win_start = off;
    sf->win_len = kept;
    if (want > 0 && !archive_pread_full(sf->fd, sf->win + kept, want, from, &n, sf->path, error))
      return FALSE;
    sf->win_len = kept + n;
  }
  if (off + len <= sf->win_start + sf->win_len)
    *p = sf->win + (off - sf->win_start);
  return TRUE;
}

/* archive_pread_full() on @sf, through its window when it has one. */
gboolean
archive_seg_pread(SegFile *sf, void *buf, gsize len, guint64 off, gsize *got, GError **error)
{
  const guint8 *p;

  if (sf->win == NULL || len > SEG_WINDOW)
    return archive_pread_full(sf->fd, buf, len, off, got, sf->path, error);
  if (!archive_seg_map(sf, off, len, &p, error))
    return FALSE;
  if (p != NULL)
    *got = len;
  else /* the file ends before: what there is, from the window read at @off */
    *got = off == sf->win_start ? MIN(len, sf->win_len) : 0;
  if (*got > 0)
    memcpy(buf, sf->win + (off - sf->win_start), *got);
  return TRUE;
}

/* Read and fully check the record at @off of @sf (both checksums), in one
 * pass. Returns TRUE and fills *e when it is valid and complete; FALSE with
 * no error when it is not (*torn says whether it merely extends past the end
 * of the file, as an unfinished write does); FALSE with *error on an I/O
 * error. On success, when @seg_crc is non-NULL, every byte of the record is
 * folded into it (from the record's own checksum with crc32_combine, so
 * that the bytes are summed once). */
gboolean
archive_read_record(SegFile *sf, guint64 off, SqlenvfsArchiveEntry *e, gboolean *torn,
                    ArchiveSegSums *sums, guint8 *chunk, GError **error)
{
  guint8 hdr[REC_HEADER_SIZE], trailer[REC_TRAILER_SIZE];
  gsize got;
  guint32 c, sc = sums ? sums->crc : 0;
  guint32 *seg_crc = sums ? &sums->crc : NULL;
  guint64 pos, end;

  *torn = FALSE;
  if (!archive_seg_pread(sf, hdr, sizeof hdr, off, &got, error))
    return FALSE;
  if (got < sizeof hdr) {
    *torn = TRUE;
    return FALSE;
  }
  if (!archive_decode_header(hdr, e))
    return FALSE;
  if (off + e->length > sf->size) {
    *torn = TRUE;
    return FALSE;
  }
  if (sf->win != NULL) {
    /* Buffered: checked where the window holds it. The segment's checksum
     * is summed over a short record's bytes again (cheaper than combining
     * the two) and combined for a long one (cheaper than a second pass). */
    const guint8 *p;
    if (!archive_seg_map(sf, off, (gsize)e->length, &p, error))
      return FALSE;
    if (p != NULL) {
      gsize body = (gsize)e->length - REC_TRAILER_SIZE;
      guint32 rc = crc(0, p, body);
      if (get32(p + body) != rc || get32(p + body + 4) != REC_END_MAGIC)
        return FALSE;
      if (seg_crc && body < COMBINE_MIN)
        *seg_crc = crc(sc, p, (gsize)e->length);
      else if (seg_crc)
        *seg_crc = crc(sqlenvfs_crc32_combine(sc, rc, (guint64)body), p + body, REC_TRAILER_SIZE);
      if (sums)
        sums->digest = archive_digest_fold(sums->digest, get32(p + 92), rc);
      e->offset = off;
      return TRUE;
    }
  }
  c = crc(0, hdr, sizeof hdr);
  pos = off + REC_HEADER_SIZE;
  end = off + e->length - REC_TRAILER_SIZE;
  while (pos < end) {
    gsize want = (gsize)MIN((guint64)IO_CHUNK, end - pos);
    if (!archive_seg_pread(sf, chunk, want, pos, &got, error))
      return FALSE;
    if (got < want) {
      *torn = TRUE;
      return FALSE;
    }
    c = crc(c, chunk, want);
    pos += want;
  }
  if (!archive_seg_pread(sf, trailer, sizeof trailer, end, &got, error))
    return FALSE;
  if (got < sizeof trailer) {
    *torn = TRUE;
    return FALSE;
  }
  if (get32(trailer) != c || get32(trailer + 4) != REC_END_MAGIC)
    return FALSE;
  if (seg_crc) {
    sc = sqlenvfs_crc32_combine(sc, c, e->length - REC_TRAILER_SIZE);
    *seg_crc = crc(sc, trailer, sizeof trailer);
    sums->digest = archive_digest_fold(sums->digest, get32(hdr + 92), c);
  }
  e->offset = off;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* The alive file                                                       */

gboolean
archive_read_alive(const char *dir, gint64 *time, guint64 *next_seq)
{
  g_autofree char *path = g_build_filename(dir, "alive", NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  const guint8 *p;

  if (!g_file_get_contents(path, &data, &len, NULL) || len < ALIVE_SIZE)
    return FALSE;
  p = (const guint8 *)data;
  if (memcmp(p, ALIVE_MAGIC, 8) != 0 || get32(p + 28) != crc(0, p, 28))
    return FALSE;
  *time = (gint64)get64(p + 8);
  *next_seq = get64(p + 16);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Checking records                                                     */

gboolean
archive_corrupt(GError **error, const char *path, const SqlenvfsArchiveEntry *e, const char *why)
{
  g_autofree char *when = sqlenvfs_time_format_iso(e->time);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "archive segment %s is corrupt: record %" G_GUINT64_FORMAT " at offset %" G_GUINT64_FORMAT
              " %s (run `sqlenvfs verify`; times before %s can still be restored)",
              path, e->seq, e->offset, why, when);
  return FALSE;
}

/* Version 2: check the blocks of the compressed COMMIT @e held whole in
 * @rec (its header, body and trailer, already checked against the record's
 * checksum): the block table must cover the block data exactly, each block
 * match its crc32 and decompress to exactly its pages. The pages go to
 * @dst (n_pages * page_size bytes) when it is not NULL. Returns NULL when
 * all is right, else what is wrong ("has ..."). */
const char *
archive_decode_block(const guint8 *src, gsize stored, gsize raw, guint32 want_crc, guint8 *dst,
                     ZSTD_DCtx *dctx)
{
  if (stored == 0 || stored > raw)
    return "has a block table that does not match its data";
  if (crc(0, src, stored) != want_crc)
    return "has a compressed block that fails its checksum";
  if (stored == raw) {
    if (dst != NULL)
      memcpy(dst, src, raw);
    return NULL;
  }
  {
    size_t r = ZSTD_decompressDCtx(dctx, dst, raw, src, stored);
    if (ZSTD_isError(r) || r != raw)
      return "has a compressed block that does not decompress to its pages";
  }
  return NULL;
}

const char *
archive_check_blocks(const SqlenvfsArchiveEntry *e, const guint8 *rec, guint8 *dst, ZSTD_DCtx *dctx)
{
  guint32 sp = archive_stream_pages(e);
  guint32 ppb = archive_pages_per_block(e->page_size), nb = archive_n_blocks(sp, e->page_size);
  const guint8 *table = rec + e->length - REC_TRAILER_SIZE - (gsize)nb * BLOCK_ENTRY_SIZE;
  const guint8 *pos = rec + REC_HEADER_SIZE + 4 * (gsize)e->n_pages;
  g_autofree guint8 *scratch = dst ? NULL : g_malloc((gsize)ppb * e->page_size);
  const char *why = NULL;

  for (guint32 j = 0; j < nb && why == NULL; j++) {
    gsize stored = get32(table + (gsize)j * BLOCK_ENTRY_SIZE);
    gsize raw = (gsize)MIN(ppb, sp - j * ppb) * e->page_size;
    /* checking alone (no @dst): a stored block is not copied */
    guint8 *out = dst ? dst + (gsize)j * ppb * e->page_size : scratch;
    if (stored > (gsize)(table - pos))
      why = "has a block table that does not match its data";
    else
      why = archive_decode_block(pos, stored, raw, get32(table + (gsize)j * BLOCK_ENTRY_SIZE + 4),
                                 stored == raw ? dst ? out : NULL : out, dctx);
    pos += stored;
  }
  if (why == NULL && pos != table)
    why = "has bytes between its last block and its block table";
  return why;
}

/* The blocks of the compressed COMMIT @rec (@e), checked without
 * decompressing them: the block table covers the block data exactly, each
 * block matches its crc32, and each zstd frame declares exactly its pages'
 * length as its content and ends exactly at its stored length. The record's
 * own checksum (found right before this is called) covers every byte as
 * stored, so any change to them since they were written is already found;
 * what decompressing adds is the proof that the writer's zstd output
 * decodes, which `verify --full` gives (archive_check_blocks).
 *
 * The blocks' checksums are checked without summing their bytes again:
 * the record's checksum is the crc32 of its head, its blocks and its table
 * in turn, so folding the table's crc32 of each block between the other two
 * (crc32_combine) gives the record's checksum exactly when each block's
 * crc32 in the table is that of its bytes (up to crc32's own 2^-32). NULL
 * when all is right, else what is wrong ("has ..."). */
gboolean
archive_block_frame_ok(const guint8 *src, gsize stored, gsize raw)
{
  if (stored == raw)
    return TRUE; /* stored as it is */
  {
    unsigned long long content = ZSTD_getFrameContentSize(src, stored);
    size_t frame = ZSTD_findFrameCompressedSize(src, stored);
    return content == (unsigned long long)raw && !ZSTD_isError(frame) && frame == stored;
  }
}

const char *
archive_check_block_frames(const SqlenvfsArchiveEntry *e, const guint8 *rec)
{
  guint32 sp = archive_stream_pages(e);
  guint32 ppb = archive_pages_per_block(e->page_size), nb = archive_n_blocks(sp, e->page_size);
  const guint8 *table = rec + e->length - REC_TRAILER_SIZE - (gsize)nb * BLOCK_ENTRY_SIZE;
  const guint8 *pos = rec + REC_HEADER_SIZE + 4 * (gsize)e->n_pages;
  const gsize table_len = (gsize)nb * BLOCK_ENTRY_SIZE;
  guint32 folded = crc(0, rec, (gsize)(pos - rec));

  for (guint32 j = 0; j < nb; j++) {
    gsize stored = get32(table + (gsize)j * BLOCK_ENTRY_SIZE);
    gsize raw = (gsize)MIN(ppb, sp - j * ppb) * e->page_size;
    if (stored == 0 || stored > raw || stored > (gsize)(table - pos))
      return "has a block table that does not match its data";
    folded = sqlenvfs_crc32_combine(folded, get32(table + (gsize)j * BLOCK_ENTRY_SIZE + 4),
                                    (guint64)stored);
    if (!archive_block_frame_ok(pos, stored, raw))
      return "has a compressed block whose zstd frame does not hold exactly its pages";
    pos += stored;
  }
  if (pos != table)
    return "has bytes between its last block and its block table";
  folded = sqlenvfs_crc32_combine(folded, crc(0, table, table_len), (guint64)table_len);
  if (folded != get32(table + table_len))
    return "has a compressed block that fails its checksum";
  return NULL;
}

/* The checksum of the SEAL record that ends the segment file @path of
 * @size bytes (FALSE when it does not end with a valid one). */
gboolean
archive_read_seal_entry_fd(int fd, const char *path, guint64 size, SqlenvfsArchiveEntry *e,
                           guint32 *head_crc, GError **error)
{
  guint8 rec[REC_EMPTY_SIZE];
  gsize got = 0;

  if (size < SEG_HEADER_SIZE + REC_EMPTY_SIZE ||
      !archive_pread_full(fd, rec, sizeof rec, size - REC_EMPTY_SIZE, &got, path, error) ||
      got < sizeof rec || !archive_decode_header(rec, e) || e->type != SQLENVFS_ARCHIVE_SEAL ||
      e->length != REC_EMPTY_SIZE ||
      get32(rec + REC_HEADER_SIZE) != crc(0, rec, REC_HEADER_SIZE) ||
      get32(rec + REC_HEADER_SIZE + 4) != REC_END_MAGIC)
    return FALSE;
  if (head_crc != NULL)
    *head_crc = get32(rec + REC_HEADER_SIZE - 4);
  return TRUE;
}

gboolean
archive_read_seal_fd(int fd, const char *path, guint64 size, guint32 *seal)
{
  SqlenvfsArchiveEntry e;

  if (!archive_read_seal_entry_fd(fd, path, size, &e, NULL, NULL))
    return FALSE;
  *seal = e.reason;
  return TRUE;
}

gboolean
archive_read_seal(const char *path, guint64 size, guint32 *seal)
{
  gboolean ok;
  int fd;

  if (size < SEG_HEADER_SIZE + REC_EMPTY_SIZE)
    return FALSE;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return FALSE;
  ok = archive_read_seal_fd(fd, path, size, seal);
  close(fd);
  return ok;
}
