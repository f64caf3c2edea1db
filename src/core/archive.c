/*
 * archive.c — the WAL archive format: writing, reading, indexing, verifying
 * and pruning the segment files of one database's archive.
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
 *       never written again; writer_open() truncates a torn tail and
 *       rewrites the last index (atomically, by rename);
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
#include <zlib.h>
#include <zstd.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

#define SEG_MAGIC "SQEFSSEG"
#define IDX_MAGIC "SQEFSIDX"
#define ALIVE_MAGIC "SQEFSALV"
#define SEG_HEADER_SIZE 64
#define IDX_HEADER_SIZE 32
#define IDX_ENTRY_SIZE 112
#define STAGE_SIZE (1u << 20)     /* the writer's record buffer                 */
#define IDX_STAGE_ENTRIES 256     /* index entries buffered between syncs       */
#define ALIVE_SIZE 32
#define REC_MAGIC 0x52415153u
#define REC_END_MAGIC 0x444e4552u
#define REC_HEADER_SIZE 96
#define REC_TRAILER_SIZE 8
#define REC_EMPTY_SIZE (REC_HEADER_SIZE + REC_TRAILER_SIZE)
#define MAX_TEXT 4096
#define IO_CHUNK (1u << 20)
#define BLOCK_BYTES 65536u        /* page bytes per compressed block (version 2) */
#define BLOCK_ENTRY_SIZE 8
#define ZSTD_LEVEL 1              /* docs/ARCHIVE.md: why zstd, and this level  */

/* ------------------------------------------------------------------ */
/* Little-endian encoding                                               */

static inline void
put16(guint8 *p, guint16 v)
{
  p[0] = v & 0xff;
  p[1] = v >> 8;
}

static inline void
put32(guint8 *p, guint32 v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}

static inline void
put64(guint8 *p, guint64 v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}

static inline guint16
get16(const guint8 *p)
{
  return (guint16)(p[0] | (p[1] << 8));
}

static inline guint32
get32(const guint8 *p)
{
  return (guint32)p[0] | ((guint32)p[1] << 8) | ((guint32)p[2] << 16) | ((guint32)p[3] << 24);
}

static inline guint64
get64(const guint8 *p)
{
  return (guint64)get32(p) | ((guint64)get32(p + 4) << 32);
}

static guint32
crc(guint32 c, const void *data, gsize len)
{
  return sqlenvfs_crc32(c, data, len);
}

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

const char *
sqlenvfs_archive_gap_reason_text(SqlenvfsGapReason reason)
{
  switch (reason) {
  case SQLENVFS_GAP_FIRST_START:
    return "archiving started";
  case SQLENVFS_GAP_WAL_RESTARTED:
    return "the WAL was restarted while the archiver was not running";
  case SQLENVFS_GAP_WAL_MISSING:
    return "the WAL was checkpointed and removed while the archiver was not running";
  case SQLENVFS_GAP_WAL_MISMATCH:
    return "the WAL no longer holds the last archived frame";
  case SQLENVFS_GAP_DB_REPLACED:
    return "the database file was replaced";
  case SQLENVFS_GAP_DAMAGED:
    return "archive records are missing or unreadable";
  }
  return "unknown";
}

static guint64
commit_length(guint32 n_pages, guint32 page_size)
{
  return REC_EMPTY_SIZE + 4 * (guint64)n_pages + (guint64)n_pages * page_size;
}

static void
encode_header(const SqlenvfsArchiveEntry *e, guint8 *p)
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
  put32(p + 92, crc(0, p, 92));
}

static gboolean
valid_page_size(guint32 ps)
{
  return ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0;
}

/* Version 2: the page images of a compressed COMMIT are stored in blocks of
 * pages_per_block() pages (the last one may hold fewer). */
static guint32
pages_per_block(guint32 page_size)
{
  return MAX(1u, BLOCK_BYTES / page_size);
}

static guint32
n_blocks(guint32 n_pages, guint32 page_size)
{
  guint32 ppb = pages_per_block(page_size);
  return n_pages / ppb + (n_pages % ppb != 0);
}

/* The pages in the blocks of a compressed COMMIT: its own, or, for the
 * first record of a batch, those of every commit of the batch (text_len). */
static guint32
stream_pages(const SqlenvfsArchiveEntry *e)
{
  return e->text_len != 0 ? e->text_len : e->n_pages;
}

/* The bounds of a compressed COMMIT's length: a block is never stored
 * larger than its pages (it is then stored as they are). */
static gboolean
compressed_length_ok(const SqlenvfsArchiveEntry *e)
{
  guint32 sp = stream_pages(e);
  guint64 fixed = REC_EMPTY_SIZE + 4 * (guint64)e->n_pages +
                  BLOCK_ENTRY_SIZE * (guint64)n_blocks(sp, e->page_size);
  return sp >= e->n_pages && e->length >= fixed + n_blocks(sp, e->page_size) &&
         e->length <= fixed + (guint64)sp * e->page_size;
}

/* Decode and check a record header (invariant 1, header part). */
static gboolean
decode_header(const guint8 *p, SqlenvfsArchiveEntry *e)
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
  switch (e->type) {
  case SQLENVFS_ARCHIVE_COMMIT:
    if (!valid_page_size(e->page_size) || e->commit_frame < e->first_frame ||
        e->first_frame < 1)
      return FALSE;
    if (e->flags & SQLENVFS_ARCHIVE_BATCHED)
      return !(e->flags & SQLENVFS_ARCHIVE_COMPRESSED) && e->reason >= 1 &&
             e->length == REC_EMPTY_SIZE + 4 * (guint64)e->n_pages;
    if (e->flags & SQLENVFS_ARCHIVE_COMPRESSED)
      return compressed_length_ok(e);
    return e->length == commit_length(e->n_pages, e->page_size);
  case SQLENVFS_ARCHIVE_GAP:
    return e->text_len <= MAX_TEXT && e->length == REC_EMPTY_SIZE + (guint64)e->text_len;
  case SQLENVFS_ARCHIVE_OUTAGE:
  case SQLENVFS_ARCHIVE_SEAL:
    return e->length == REC_EMPTY_SIZE;
  }
  return FALSE;
}

static gboolean
same_header(const SqlenvfsArchiveEntry *a, const SqlenvfsArchiveEntry *b)
{
  return a->type == b->type && a->flags == b->flags && a->seq == b->seq && a->time == b->time &&
         a->aux_time == b->aux_time && a->page_size == b->page_size &&
         a->db_pages == b->db_pages && a->n_pages == b->n_pages && a->salt1 == b->salt1 &&
         a->salt2 == b->salt2 && a->ckpt_seq == b->ckpt_seq &&
         a->first_frame == b->first_frame && a->commit_frame == b->commit_frame &&
         a->cksum1 == b->cksum1 && a->cksum2 == b->cksum2 && a->reason == b->reason &&
         a->text_len == b->text_len && a->length == b->length;
}

static void
encode_idx_entry(const SqlenvfsArchiveEntry *e, guint8 *p)
{
  encode_header(e, p);
  put64(p + 96, e->offset);
  put32(p + 104, 0);
  put32(p + 108, crc(0, p, 108));
}

static gboolean
decode_idx_entry(const guint8 *p, SqlenvfsArchiveEntry *e)
{
  if (get32(p + 108) != crc(0, p, 108) || !decode_header(p, e))
    return FALSE;
  e->offset = get64(p + 96);
  return TRUE;
}

static void
encode_seg_header(guint8 *p, guint64 number, guint64 first_seq, gint64 created, guint32 prev_crc,
                  guint32 version)
{
  memset(p, 0, SEG_HEADER_SIZE);
  memcpy(p, SEG_MAGIC, 8);
  put32(p + 8, version);
  put32(p + 12, SEG_HEADER_SIZE);
  put64(p + 16, number);
  put64(p + 24, first_seq);
  put64(p + 32, (guint64)created);
  put32(p + 40, prev_crc);
  put32(p + 60, crc(0, p, 60));
}

typedef struct {
  guint64 number, first_seq;
  gint64 created;
  guint32 prev_crc;
  guint32 version;
} SegHeader;

static gboolean
known_version(guint32 v)
{
  return v >= SQLENVFS_ARCHIVE_VERSION_MIN && v <= SQLENVFS_ARCHIVE_VERSION;
}

/* FALSE with a reason in *why when the header is not a valid one. */
static gboolean
decode_seg_header(const guint8 *p, SegHeader *h, const char **why)
{
  if (memcmp(p, SEG_MAGIC, 8) != 0) {
    *why = "not an archive segment (bad magic)";
    return FALSE;
  }
  if (get32(p + 60) != crc(0, p, 60)) {
    *why = "segment header checksum mismatch";
    return FALSE;
  }
  if (!known_version(get32(p + 8)) || get32(p + 12) != SEG_HEADER_SIZE) {
    *why = "unsupported archive format version (written by a newer sqlenvfs?)";
    return FALSE;
  }
  h->number = get64(p + 16);
  h->first_seq = get64(p + 24);
  h->created = (gint64)get64(p + 32);
  h->prev_crc = get32(p + 40);
  h->version = get32(p + 8);
  return TRUE;
}

static void
encode_idx_header(guint8 *p, guint64 number, guint32 version)
{
  memset(p, 0, IDX_HEADER_SIZE);
  memcpy(p, IDX_MAGIC, 8);
  put32(p + 8, version);
  put64(p + 16, number);
  put32(p + 28, crc(0, p, 28));
}

static gboolean
decode_idx_header(const guint8 *p, guint64 number)
{
  return memcmp(p, IDX_MAGIC, 8) == 0 && get32(p + 28) == crc(0, p, 28) &&
         known_version(get32(p + 8)) && get64(p + 16) == number;
}

/* ------------------------------------------------------------------ */
/* File helpers                                                         */

static gboolean
pread_full(int fd, void *buf, gsize len, guint64 off, gsize *got, const char *path,
           GError **error)
{
  gsize done = 0;
  *got = 0;
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

static gboolean
pwrite_full(int fd, const void *buf, gsize len, guint64 off, const char *path, GError **error)
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

static char *
seg_name(guint64 number, const char *ext)
{
  return g_strdup_printf("%016" G_GUINT64_FORMAT ".%s", number, ext);
}

/* Parse "<16 digits>.seg"; FALSE for anything else. */
static gboolean
parse_seg_name(const char *name, guint64 *number)
{
  if (strlen(name) != 20 || strcmp(name + 16, ".seg") != 0)
    return FALSE;
  for (int i = 0; i < 16; i++)
    if (!g_ascii_isdigit(name[i]))
      return FALSE;
  *number = g_ascii_strtoull(name, NULL, 10);
  return *number > 0;
}

static gint
cmp_u64(gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
  return x < y ? -1 : x > y;
}

/* Segment numbers present in @dir, ascending. */
static GArray *
list_segments(const char *dir, GError **error)
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
    if (parse_seg_name(name, &n))
      g_array_append_val(nums, n);
  }
  g_array_sort(nums, cmp_u64);
  return nums;
}

typedef struct {
  int fd;
  char *path;
  guint64 size;
  SegHeader hdr;
  gboolean hdr_ok;
  const char *hdr_why;
} SegFile;

static gboolean
seg_file_open(const char *dir, guint64 number, int flags, SegFile *sf, GError **error)
{
  g_autofree char *name = seg_name(number, "seg");
  guint8 buf[SEG_HEADER_SIZE];
  struct stat st;
  gsize got;

  memset(sf, 0, sizeof *sf);
  sf->path = g_build_filename(dir, name, NULL);
  sf->fd = open(sf->path, flags | O_CLOEXEC);
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
  if (!pread_full(sf->fd, buf, sizeof buf, 0, &got, sf->path, error)) {
    close(sf->fd);
    g_clear_pointer(&sf->path, g_free);
    return FALSE;
  }
  if (got < sizeof buf)
    sf->hdr_why = "segment shorter than its header";
  else if (decode_seg_header(buf, &sf->hdr, &sf->hdr_why)) {
    if (sf->hdr.number != number)
      sf->hdr_why = "segment number in the header does not match the file name";
    else
      sf->hdr_ok = TRUE;
  }
  return TRUE;
}

static void
seg_file_close(SegFile *sf)
{
  if (sf->fd >= 0)
    close(sf->fd);
  sf->fd = -1;
  g_clear_pointer(&sf->path, g_free);
}

/* Read and fully check the record at @off of @sf (both checksums), in one
 * pass. Returns TRUE and fills *e when it is valid and complete; FALSE with
 * no error when it is not (*torn says whether it merely extends past the end
 * of the file, as an unfinished write does); FALSE with *error on an I/O
 * error. On success, when @seg_crc is non-NULL, every byte of the record is
 * folded into it (from the record's own checksum with crc32_combine, so
 * that the bytes are summed once). */
static gboolean
read_record(SegFile *sf, guint64 off, SqlenvfsArchiveEntry *e, gboolean *torn, guint32 *seg_crc,
            guint8 *chunk, GError **error)
{
  guint8 hdr[REC_HEADER_SIZE], trailer[REC_TRAILER_SIZE];
  gsize got;
  guint32 c, sc = seg_crc ? *seg_crc : 0;
  guint64 pos, end;

  *torn = FALSE;
  if (!pread_full(sf->fd, hdr, sizeof hdr, off, &got, sf->path, error))
    return FALSE;
  if (got < sizeof hdr) {
    *torn = TRUE;
    return FALSE;
  }
  if (!decode_header(hdr, e))
    return FALSE;
  if (off + e->length > sf->size) {
    *torn = TRUE;
    return FALSE;
  }
  c = crc(0, hdr, sizeof hdr);
  pos = off + REC_HEADER_SIZE;
  end = off + e->length - REC_TRAILER_SIZE;
  while (pos < end) {
    gsize want = (gsize)MIN((guint64)IO_CHUNK, end - pos);
    if (!pread_full(sf->fd, chunk, want, pos, &got, sf->path, error))
      return FALSE;
    if (got < want) {
      *torn = TRUE;
      return FALSE;
    }
    c = crc(c, chunk, want);
    pos += want;
  }
  if (!pread_full(sf->fd, trailer, sizeof trailer, end, &got, sf->path, error))
    return FALSE;
  if (got < sizeof trailer) {
    *torn = TRUE;
    return FALSE;
  }
  if (get32(trailer) != c || get32(trailer + 4) != REC_END_MAGIC)
    return FALSE;
  if (seg_crc) {
    sc = (guint32)crc32_combine(sc, c, (z_off_t)(e->length - REC_TRAILER_SIZE));
    *seg_crc = crc(sc, trailer, sizeof trailer);
  }
  e->offset = off;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* The alive file                                                       */

static gboolean
read_alive(const char *dir, gint64 *time, guint64 *next_seq)
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
/* Writer                                                               */

struct _SqlenvfsArchiveWriter {
  char *dir;
  gint64 max_bytes;
  int mode;           /* permission bits of every file written (production's) */

  int seg_fd, idx_fd; /* current segment and its index; -1: none open      */
  char *seg_path, *idx_path;
  guint64 seg_number; /* number of the current (or last) segment; 0: none */
  guint64 seg_size, idx_size;
  guint32 seg_crc;    /* crc32 of every byte of the current segment        */
  guint32 prev_seal_crc;
  gboolean is_sealed; /* the current segment is full: next record rolls    */
  guint32 version;    /* format version new segments are written in        */
  guint32 seg_version;/* format version of the current segment             */
  gboolean idx_broken;/* an index write failed: stop indexing this segment */

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

/* Narrow the mode of the open file @fd to at most @mode. */
static gboolean
narrow_mode(int fd, int mode, const char *path, GError **error)
{
  struct stat st;
  if (fstat(fd, &st) != 0)
    return sqlenvfs_error_errno(error, errno, "stat", path);
  if ((st.st_mode & 0777 & ~(mode_t)mode) != 0 && fchmod(fd, st.st_mode & (mode_t)mode & 0777) != 0)
    return sqlenvfs_error_errno(error, errno, "restrict the mode of", path);
  return TRUE;
}

/* Rewrite the index of the current segment from @entries (atomically). */
static gboolean
rewrite_index(SqlenvfsArchiveWriter *w, GArray *entries, GError **error)
{
  g_autofree char *name = seg_name(w->seg_number, "idx");
  g_autofree char *path = g_build_filename(w->dir, name, NULL);
  gsize len = IDX_HEADER_SIZE + entries->len * (gsize)IDX_ENTRY_SIZE;
  g_autofree guint8 *buf = g_malloc0(len);

  encode_idx_header(buf, w->seg_number, w->seg_version);
  for (guint i = 0; i < entries->len; i++)
    encode_idx_entry(&g_array_index(entries, SqlenvfsArchiveEntry, i),
                     buf + IDX_HEADER_SIZE + i * (gsize)IDX_ENTRY_SIZE);
  if (!sqlenvfs_write_file_atomic(path, buf, len, w->mode, error))
    return FALSE;
  w->idx_size = len;
  return TRUE;
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
  guint32 c;

  if (!seg_file_open(w->dir, number, O_RDWR, &sf, error))
    return FALSE;
  if (!sf.hdr_ok) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "open archive segment %s: %s (move the file aside, or restore it from a "
                "copy, then start the archiver again)",
                sf.path, sf.hdr_why);
    seg_file_close(&sf);
    return FALSE;
  }
  if (!pread_full(sf.fd, hbuf, sizeof hbuf, 0, &got, sf.path, error)) {
    seg_file_close(&sf);
    return FALSE;
  }
  c = crc(0, hbuf, sizeof hbuf);
  w->is_sealed = FALSE;
  w->seg_version = sf.hdr.version;
  w->next_seq = sf.hdr.first_seq;
  for (;;) {
    SqlenvfsArchiveEntry e;
    gboolean torn;
    guint32 before = c;
    if (off >= sf.size)
      break;
    if (!read_record(&sf, off, &e, &torn, &c, chunk, error)) {
      if (error && *error) {
        seg_file_close(&sf);
        return FALSE;
      }
      break;
    }
    if (e.seq != w->next_seq || w->is_sealed) {
      /* Not the record that must follow: treat as torn garbage. */
      c = before;
      break;
    }
    if (e.type == SQLENVFS_ARCHIVE_SEAL && e.reason != before) {
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
    }
  }
  if (off < sf.size) {
    g_message("archive %s: discarding %" G_GUINT64_FORMAT " bytes of an unfinished record at "
              "the end of %s (left by an interrupted archiver)",
              w->dir, sf.size - off, sf.path);
    if (ftruncate(sf.fd, (off_t)off) != 0 || fsync(sf.fd) != 0) {
      sqlenvfs_error_errno(error, errno, "truncate the torn tail of", sf.path);
      seg_file_close(&sf);
      return FALSE;
    }
  }
  if (!narrow_mode(sf.fd, w->mode, sf.path, error)) {
    seg_file_close(&sf);
    return FALSE;
  }
  w->seg_number = number;
  w->seg_size = off;
  w->seg_crc = c;
  w->seg_fd = sf.fd;
  w->seg_path = sf.path;
  sf.fd = -1;
  sf.path = NULL;
  if (!rewrite_index(w, entries, error))
    return FALSE;
  {
    g_autofree char *name = seg_name(number, "idx");
    w->idx_path = g_build_filename(w->dir, name, NULL);
    w->idx_fd = open(w->idx_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (w->idx_fd < 0)
      return sqlenvfs_error_errno(error, errno, "open archive index", w->idx_path);
  }
  return TRUE;
}

/* Move an unreadable segment (and its index) out of the archive so that the
 * archive stays appendable; readers then see its records as missing. */
static gboolean
move_aside(const char *dir, guint64 number, const char *why, GError **error)
{
  g_autofree char *sname = seg_name(number, "seg");
  g_autofree char *iname = seg_name(number, "idx");
  g_autofree char *spath = g_build_filename(dir, sname, NULL);
  g_autofree char *ipath = g_build_filename(dir, iname, NULL);
  g_autofree char *stamp = g_strdup_printf("%" G_GINT64_FORMAT, sqlenvfs_clock_now());
  g_autofree char *sdest = g_strconcat(spath, ".damaged-", stamp, NULL);
  g_autofree char *idest = g_strconcat(ipath, ".damaged-", stamp, NULL);

  g_warning("archive %s: %s: %s; moving it aside to %s", dir, spath, why, sdest);
  if (rename(spath, sdest) != 0)
    return sqlenvfs_error_errno(error, errno, "move aside the damaged archive segment", spath);
  if (rename(ipath, idest) != 0 && errno != ENOENT)
    return sqlenvfs_error_errno(error, errno, "move aside the damaged archive index", ipath);
  return sqlenvfs_fsync_dir(dir, error);
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
  w->mode = mode & 0666;
  w->seg_fd = w->idx_fd = w->alive_fd = -1;
  w->next_seq = 1;
  if (!sqlenvfs_mkdir_p(dir, sqlenvfs_mode_dir(w->mode), error) ||
      !sqlenvfs_refuse_symlink(dir, "open the WAL archive", error))
    return NULL;
  nums = list_segments(dir, error);
  if (nums == NULL)
    return NULL;

  /* A last segment whose header is unreadable: if it is no longer than a
   * header, its creation was interrupted and it holds nothing; otherwise it
   * is damaged, and is moved aside (the continuity check of the archiver
   * then decides whether what it held can be captured again). */
  while (nums->len > 0) {
    guint64 last = g_array_index(nums, guint64, nums->len - 1);
    SegFile sf;
    gboolean ok, empty;
    if (!seg_file_open(dir, last, O_RDONLY, &sf, error))
      return NULL;
    ok = sf.hdr_ok;
    empty = sf.size <= SEG_HEADER_SIZE;
    if (!ok && empty) {
      g_autofree char *iname = seg_name(last, "idx");
      g_autofree char *ipath = g_build_filename(dir, iname, NULL);
      g_message("archive %s: removing %s, a segment whose creation was interrupted", dir,
                sf.path);
      if (unlink(sf.path) != 0) {
        sqlenvfs_error_errno(error, errno, "remove", sf.path);
        seg_file_close(&sf);
        return NULL;
      }
      unlink(ipath);
    } else if (!ok && !move_aside(dir, last, sf.hdr_why, error)) {
      seg_file_close(&sf);
      return NULL;
    }
    seg_file_close(&sf);
    if (ok)
      break;
    g_array_set_size(nums, nums->len - 1);
  }

  if (nums->len > 0 && !recover_last(w, g_array_index(nums, guint64, nums->len - 1), error))
    return NULL;

  /* The last record, and the last state or gap record, may lie in earlier
   * segments; the (now consistent) index says. */
  a = sqlenvfs_archive_open(dir, error);
  if (a == NULL)
    return NULL;
  w->has_last = w->has_last_state = FALSE;
  for (guint i = sqlenvfs_archive_n_entries(a); i > 0; i--) {
    const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i - 1);
    if (e->seq == 0)
      continue; /* a reader's synthetic gap */
    if (!w->has_last) {
      w->last = *e;
      w->has_last = TRUE;
      w->last_time = e->time;
      if (nums->len == 0)
        w->next_seq = e->seq + 1;
    }
    if (e->type == SQLENVFS_ARCHIVE_COMMIT && e->aux_time > w->alive)
      w->alive = e->aux_time;
    if (e->type == SQLENVFS_ARCHIVE_GAP || e->type == SQLENVFS_ARCHIVE_COMMIT) {
      if (e->type == SQLENVFS_ARCHIVE_GAP && e->time > w->alive)
        w->alive = e->time;
      w->last_state = *e;
      w->has_last_state = TRUE;
      break;
    }
  }
  w->alive_path = g_build_filename(dir, "alive", NULL);
  if (read_alive(dir, &atime, &aseq) && aseq <= w->next_seq && atime > w->alive)
    w->alive = atime;
  w->alive_written = w->alive;
  if (read_alive(dir, &atime, &aseq) && aseq > w->next_seq) {
    /* The records it confirmed are gone (a damaged segment moved aside):
     * the numbers are written again, and readers must not take the new
     * records as synced until they are. */
    w->alive_written = 0;
    if (!sqlenvfs_archive_writer_set_alive(w, w->alive, 0, error))
      return NULL;
  }
  return g_steal_pointer(&w);
}

/* Start a new segment after the current one. */
static gboolean
new_segment(SqlenvfsArchiveWriter *w, GError **error)
{
  guint64 number = w->seg_number + 1;
  g_autofree char *sname = seg_name(number, "seg");
  g_autofree char *iname = seg_name(number, "idx");
  g_autofree char *spath = g_build_filename(w->dir, sname, NULL);
  g_autofree char *ipath = g_build_filename(w->dir, iname, NULL);
  guint8 sh[SEG_HEADER_SIZE], ih[IDX_HEADER_SIZE];
  int sfd, ifd;

  encode_seg_header(sh, number, w->next_seq, sqlenvfs_clock_now(), w->prev_seal_crc, w->version);
  encode_idx_header(ih, number, w->version);
  sfd = open(spath, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, w->mode);
  if (sfd < 0)
    return sqlenvfs_error_errno(error, errno, "create archive segment", spath);
  if (!pwrite_full(sfd, sh, sizeof sh, 0, spath, error) || fdatasync(sfd) != 0) {
    if (error && *error == NULL)
      sqlenvfs_error_errno(error, errno, "sync archive segment", spath);
    close(sfd);
    unlink(spath);
    return FALSE;
  }
  ifd = open(ipath, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, w->mode);
  if (ifd >= 0 && !narrow_mode(ifd, w->mode, ipath, NULL)) {
    close(ifd);
    ifd = -1;
  }
  if (ifd < 0) {
    sqlenvfs_error_errno(error, errno, "create archive index", ipath);
    close(sfd);
    unlink(spath);
    return FALSE;
  }
  if (!pwrite_full(ifd, ih, sizeof ih, 0, ipath, error)) {
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
  w->seg_size = SEG_HEADER_SIZE;
  w->idx_size = IDX_HEADER_SIZE;
  w->seg_crc = crc(0, sh, sizeof sh);
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
  if (!pwrite_full(w->seg_fd, data, len, off, w->seg_path, error))
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

/* Write the trailer of the record begun at w->rec_start and fold the whole
 * record into the segment checksum (crc32_combine: each byte is
 * checksummed once). */
static gboolean
seg_finish_record(SqlenvfsArchiveWriter *w, GError **error)
{
  guint8 trailer[REC_TRAILER_SIZE];
  put32(trailer, w->cur_crc);
  put32(trailer + 4, REC_END_MAGIC);
  if (!seg_append(w, trailer, sizeof trailer, error) || !seg_flush(w, error))
    return FALSE;
  w->seg_crc = (guint32)crc32_combine(w->seg_crc_before, w->cur_crc,
                                      (z_off_t)(w->seg_size - w->rec_start));
  return TRUE;
}

/* Cut a partly written record off again (invariant 3). */
static void
cut_record(SqlenvfsArchiveWriter *w)
{
  guint64 on_disk = w->seg_size - w->stage_len;
  w->stage_len = 0;
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
  if (!pwrite_full(w->idx_fd, w->idx_stage, w->idx_stage_len, w->idx_size, w->idx_path,
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
  if (w->idx_broken)
    return;
  encode_idx_entry(e, w->idx_stage + w->idx_stage_len);
  w->idx_stage_len += IDX_ENTRY_SIZE;
  if (w->idx_stage_len == sizeof w->idx_stage)
    index_flush(w);
}

/* Make room for a record of @length bytes: seal and roll when it would not
 * fit (a segment holds at least one record besides its seal). */
static gboolean
prepare_record(SqlenvfsArchiveWriter *w, guint64 length, GError **error);

static gboolean
write_simple(SqlenvfsArchiveWriter *w, SqlenvfsArchiveEntry *e, const void *body, gsize body_len,
             gboolean roll, GError **error)
{
  guint8 hdr[REC_HEADER_SIZE];

  e->length = REC_EMPTY_SIZE + body_len;
  if (roll && !prepare_record(w, e->length, error))
    return FALSE;
  e->seq = w->next_seq;
  e->offset = w->seg_size;
  encode_header(e, hdr);
  w->rec_start = w->seg_size;
  w->seg_crc_before = w->seg_crc;
  w->cur_crc = 0;
  if (!seg_append(w, hdr, sizeof hdr, error) ||
      (body_len > 0 && !seg_append(w, body, body_len, error))) {
    cut_record(w);
    return FALSE;
  }
  if (!seg_finish_record(w, error)) {
    cut_record(w);
    return FALSE;
  }
  index_record(w, e);
  note_record(w, e);
  return TRUE;
}

static gboolean
seal(SqlenvfsArchiveWriter *w, GError **error)
{
  SqlenvfsArchiveEntry e = { 0 };
  e.type = SQLENVFS_ARCHIVE_SEAL;
  e.time = w->last_time; /* never later than what follows (invariant 6) */
  e.reason = w->seg_crc; /* the checksum of every byte before the seal */
  if (!write_simple(w, &e, NULL, 0, FALSE, error))
    return FALSE;
  if (!sqlenvfs_archive_writer_sync(w, error))
    return FALSE;
  sync_index(w);
  w->prev_seal_crc = e.reason;
  w->is_sealed = TRUE;
  g_debug("archive %s: sealed %s (%" G_GUINT64_FORMAT " bytes)", w->dir, w->seg_path,
          w->seg_size);
  return TRUE;
}

static gboolean
prepare_record(SqlenvfsArchiveWriter *w, guint64 length, GError **error)
{
  if (w->seg_fd < 0 || w->is_sealed)
    return new_segment(w, error);
  if (w->seg_version != w->version ||
      (w->seg_size > SEG_HEADER_SIZE &&
       w->seg_size + length + REC_EMPTY_SIZE > (guint64)w->max_bytes)) {
    if (!seal(w, error))
      return FALSE;
    return new_segment(w, error);
  }
  return TRUE;
}

static gint64
clamp_time(SqlenvfsArchiveWriter *w, gint64 t)
{
  if (t < w->last_time) {
    g_debug("archive %s: clock went back %" G_GINT64_FORMAT " us; keeping time order", w->dir,
            w->last_time - t);
    return w->last_time;
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
  g_return_if_fail(known_version(version));
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
  g_assert(w->blocks->len == n_blocks(w->cur_stream, w->cur.page_size));
  body_len = w->seg_size - w->rec_start - REC_HEADER_SIZE;
  w->cur.length = REC_HEADER_SIZE + body_len + REC_TRAILER_SIZE;
  g_assert(compressed_length_ok(&w->cur));
  encode_header(&w->cur, hdr);
  on_disk = w->seg_size - w->stage_len;
  if (w->rec_start >= on_disk) {
    memcpy(w->stage + (w->rec_start - on_disk), hdr, sizeof hdr);
  } else {
    /* The stage is flushed whole: the placeholder header went with it. */
    g_assert(w->rec_start + REC_HEADER_SIZE <= on_disk);
    if (!seg_write(w, hdr, sizeof hdr, w->rec_start, error))
      return FALSE;
  }
  w->cur_crc = (guint32)crc32_combine(crc(0, hdr, sizeof hdr), w->cur_crc, (z_off_t)body_len);
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
  w->cur.length = commit_length(stream, e->page_size);
  w->cur.reason = 0;
  w->cur.text_len = stream > e->n_pages ? stream : 0;
  /* A compressed record is at most this long plus its block table. */
  if (!prepared &&
      !prepare_record(w,
                      w->cur.length + BLOCK_ENTRY_SIZE * (guint64)n_blocks(stream, e->page_size),
                      error))
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
    encode_header(&w->cur, buf); /* else: zeros until the length is known */
  for (guint32 i = 0; i < e->n_pages; i++)
    put32(buf + REC_HEADER_SIZE + 4 * i, pgnos[i]);
  w->rec_start = w->seg_size;
  w->seg_crc_before = w->seg_crc;
  w->cur_crc = 0;
  if (compress) {
    gsize blk_cap = (gsize)pages_per_block(e->page_size) * e->page_size;
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
  g_return_val_if_fail(valid_page_size(e->page_size), FALSE);
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
  gsize blk_cap = (gsize)pages_per_block(w->cur.page_size) * w->cur.page_size;
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
  if ((w->cur_compressed && !finish_compressed(w, error)) || !seg_finish_record(w, error)) {
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
  guint32 seg_crc;
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
    bound = commit_length(n, e0->page_size) +
            BLOCK_ENTRY_SIZE * (guint64)n_blocks(n, e0->page_size);
    for (guint i = 1; i < w->batch->len; i++)
      bound += REC_EMPTY_SIZE +
               4 * (guint64)g_array_index(w->batch, SqlenvfsArchiveEntry, i).n_pages;
  } else {
    bound = 0;
    for (guint i = 0; i < w->batch->len; i++) {
      const SqlenvfsArchiveEntry *e = &g_array_index(w->batch, SqlenvfsArchiveEntry, i);
      bound += commit_length(e->n_pages, e->page_size) +
               BLOCK_ENTRY_SIZE * (guint64)n_blocks(e->n_pages, e->page_size);
    }
  }
  if (!prepare_record(w, bound, error))
    return FALSE;
  index_flush(w);
  m = (WriterMark){ w->seg_size, w->next_seq, w->idx_size, w->seg_crc, w->idx_stage_len,
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
  return TRUE;
}

gboolean
sqlenvfs_archive_writer_set_alive(SqlenvfsArchiveWriter *w, gint64 time, gint64 min_step_us,
                                  GError **error)
{
  guint8 buf[ALIVE_SIZE];

  g_return_val_if_fail(!w->is_dirty, FALSE);
  if (time > w->alive)
    w->alive = time;
  if (w->alive - w->alive_written < min_step_us && w->alive_written > 0)
    return TRUE;
  if (w->alive_fd < 0) {
    w->alive_fd = open(w->alive_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, w->mode);
    if (w->alive_fd < 0)
      return sqlenvfs_error_errno(error, errno, "open", w->alive_path);
    if (!narrow_mode(w->alive_fd, w->mode, w->alive_path, error))
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
  if (!pwrite_full(w->alive_fd, buf, sizeof buf, 0, w->alive_path, error))
    return FALSE;
  /* Published, so durable: a restart after a power cut must not find an
   * older alive time than the one shown (the window would go backwards). */
  if (fdatasync(w->alive_fd) != 0)
    return sqlenvfs_error_errno(error, errno, "sync", w->alive_path);
  w->alive_written = w->alive;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Reader                                                               */

struct _SqlenvfsArchive {
  char *dir;
  GArray *segments; /* SqlenvfsArchiveSegment                        */
  GArray *fds;      /* int per segment, -1 until read_commit needs it */
  GArray *entries;  /* SqlenvfsArchiveEntry                          */
  guint64 next_offset; /* where the last segment's next record starts */
  gint64 alive_file;
  guint64 alive_seq;
  gboolean has_alive;
  ZSTD_DCtx *dctx;     /* for compressed records; created when first needed */
  /* The batch first record read_member() last checked whole: segment + 1
   * (0: none) and offset; its other commits need not read it again. */
  guint checked_batch_seg;
  guint64 checked_batch_off;
  /* The last segment's index had an entry that does not follow from the
   * ones before it; a refresh scans the segment instead, as open did. */
  gboolean is_last_index_bad;
};

static void
segment_clear(SqlenvfsArchiveSegment *s)
{
  g_free(s->path);
}

void
sqlenvfs_archive_free(SqlenvfsArchive *a)
{
  if (a == NULL)
    return;
  for (guint i = 0; i < a->fds->len; i++)
    if (g_array_index(a->fds, int, i) >= 0)
      close(g_array_index(a->fds, int, i));
  g_array_free(a->fds, TRUE);
  g_array_free(a->segments, TRUE);
  g_array_free(a->entries, TRUE);
  ZSTD_freeDCtx(a->dctx);
  g_free(a->dir);
  g_free(a);
}

guint
sqlenvfs_archive_n_entries(const SqlenvfsArchive *a)
{
  return a->entries->len;
}

const SqlenvfsArchiveEntry *
sqlenvfs_archive_entry(const SqlenvfsArchive *a, guint i)
{
  g_return_val_if_fail(i < a->entries->len, NULL);
  return &g_array_index(a->entries, SqlenvfsArchiveEntry, i);
}

guint
sqlenvfs_archive_n_segments(const SqlenvfsArchive *a)
{
  return a->segments->len;
}

const SqlenvfsArchiveSegment *
sqlenvfs_archive_segment(const SqlenvfsArchive *a, guint i)
{
  g_return_val_if_fail(i < a->segments->len, NULL);
  return &g_array_index(a->segments, SqlenvfsArchiveSegment, i);
}

/* The last real (not synthetic) entry, or NULL. */
static const SqlenvfsArchiveEntry *
last_real(const SqlenvfsArchive *a)
{
  for (guint i = a->entries->len; i > 0; i--) {
    const SqlenvfsArchiveEntry *e = &g_array_index(a->entries, SqlenvfsArchiveEntry, i - 1);
    if (e->seq != 0)
      return e;
  }
  return NULL;
}

/* Append @e (from segment @si), inserting a DAMAGED gap first when the
 * sequence does not continue (invariant 2). */
static void
add_entry(SqlenvfsArchive *a, SqlenvfsArchiveEntry *e, guint si)
{
  const SqlenvfsArchiveEntry *prev = last_real(a);
  SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);

  if (prev && e->seq != prev->seq + 1) {
    SqlenvfsArchiveEntry gap = { 0 };
    gap.type = SQLENVFS_ARCHIVE_GAP;
    gap.reason = SQLENVFS_GAP_DAMAGED;
    gap.time = MAX(e->time, prev->time);
    gap.aux_time = prev->type == SQLENVFS_ARCHIVE_COMMIT ? prev->aux_time : prev->time;
    gap.commit_frame = G_MAXUINT32; /* never a state */
    gap.segment = si;
    g_array_append_val(a->entries, gap);
  }
  e->segment = si;
  g_array_append_val(a->entries, *e);
  seg->n_entries++;
}

/* Is the record @e of the last segment one that a power cut may have left
 * half-written? Records before the alive file's sequence number were
 * synced before it was written; later ones may not have been. */
static gboolean
is_unconfirmed(const SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e)
{
  return !a->has_alive || e->seq >= a->alive_seq;
}

/* Read the record @e (at e->offset of @sf) in full and check it. FALSE
 * with no error when it is incomplete or fails a checksum. */
static gboolean
record_is_whole(SegFile *sf, const SqlenvfsArchiveEntry *e, guint8 **chunk, GError **error)
{
  SqlenvfsArchiveEntry r;
  gboolean torn;
  if (*chunk == NULL)
    *chunk = g_malloc(IO_CHUNK);
  if (!read_record(sf, e->offset, &r, &torn, NULL, *chunk, error))
    return FALSE;
  return r.seq == e->seq && r.length == e->length && r.type == e->type;
}

/* Load the entries of segment @si starting at @from_offset with expected
 * sequence @from_seq: the index first, then a scan of the segment past the
 * last good index entry. Sets the segment's sealed/damaged state. In the
 * last segment, records that may not have been synced (is_unconfirmed) are
 * read in full: the first that is not whole ends the segment, as it ends it
 * for the writer's next start (a power cut can leave any part of the
 * unsynced tail unwritten, including the middle of a record). */
static gboolean
load_segment(SqlenvfsArchive *a, guint si, guint64 from_offset, guint64 from_seq,
             gboolean is_last, GError **error)
{
  SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
  SegFile sf;
  guint64 off = from_offset, seq = from_seq;
  gboolean sealed = FALSE, tail_bad = FALSE;
  g_autofree guint8 *chunk = NULL;

  if (!seg_file_open(a->dir, seg->number, O_RDONLY, &sf, error))
    return FALSE;
  seg->size = sf.size;
  if (!sf.hdr_ok) {
    g_debug("archive %s: %s: %s", a->dir, sf.path, sf.hdr_why);
    seg->is_damaged = TRUE;
    seg_file_close(&sf);
    return TRUE;
  }
  seg->first_seq = sf.hdr.first_seq;
  seg->created = sf.hdr.created;
  if (off == 0) {
    off = SEG_HEADER_SIZE;
    seq = sf.hdr.first_seq;
  }

  /* The index, up to its first entry that is not the next record: past
   * that, only the segment is trusted (also on a refresh, which would
   * otherwise resume the index beyond the entry open stopped at). */
  if (from_offset == 0)
    a->is_last_index_bad = FALSE;
  if (!a->is_last_index_bad) {
    g_autofree char *iname = seg_name(seg->number, "idx");
    g_autofree char *ipath = g_build_filename(a->dir, iname, NULL);
    int ifd = open(ipath, O_RDONLY | O_CLOEXEC);
    if (ifd >= 0) {
      guint8 ih[IDX_HEADER_SIZE];
      gsize got;
      struct stat st;
      if (fstat(ifd, &st) == 0 &&
          pread_full(ifd, ih, sizeof ih, 0, &got, ipath, NULL) && got == sizeof ih &&
          decode_idx_header(ih, seg->number)) {
        guint64 n = ((guint64)st.st_size - IDX_HEADER_SIZE) / IDX_ENTRY_SIZE;
        /* Skip the entries already loaded (refresh). */
        guint64 first = seq - sf.hdr.first_seq;
        g_autofree guint8 *buf = NULL;
        if (first < n) {
          gsize len = (gsize)((n - first) * IDX_ENTRY_SIZE);
          buf = g_malloc(len);
          if (pread_full(ifd, buf, len, IDX_HEADER_SIZE + first * IDX_ENTRY_SIZE, &got, ipath,
                         NULL)) {
            for (gsize i = 0; i + IDX_ENTRY_SIZE <= got; i += IDX_ENTRY_SIZE) {
              SqlenvfsArchiveEntry e;
              if (sealed)
                break;
              if (!decode_idx_entry(buf + i, &e) || e.offset != off || e.seq != seq ||
                  e.offset + e.length > sf.size) {
                a->is_last_index_bad = TRUE;
                break;
              }
              if (is_last && is_unconfirmed(a, &e) && !record_is_whole(&sf, &e, &chunk, error)) {
                if (error && *error) {
                  close(ifd);
                  seg_file_close(&sf);
                  return FALSE;
                }
                tail_bad = TRUE;
                break;
              }
              add_entry(a, &e, si);
              off += e.length;
              seq++;
              if (e.type == SQLENVFS_ARCHIVE_SEAL)
                sealed = TRUE;
            }
          }
        }
      }
      close(ifd);
    }
  }

  /* Past the index: scan record headers (an unindexed tail, or a damaged
   * index). */
  while (!sealed && !tail_bad && off + REC_HEADER_SIZE <= sf.size) {
    guint8 hdr[REC_HEADER_SIZE];
    gsize got;
    SqlenvfsArchiveEntry e;
    if (!pread_full(sf.fd, hdr, sizeof hdr, off, &got, sf.path, error)) {
      seg_file_close(&sf);
      return FALSE;
    }
    if (got < sizeof hdr || !decode_header(hdr, &e) || e.seq != seq ||
        off + e.length > sf.size)
      break;
    e.offset = off;
    if (is_last && is_unconfirmed(a, &e) && !record_is_whole(&sf, &e, &chunk, error)) {
      if (error && *error) {
        seg_file_close(&sf);
        return FALSE;
      }
      break;
    }
    add_entry(a, &e, si);
    off += e.length;
    seq++;
    if (e.type == SQLENVFS_ARCHIVE_SEAL)
      sealed = TRUE;
  }
  seg->is_sealed = sealed;
  /* Bytes left over: the unfinished tail of the segment being written is
   * expected; anywhere else it is damage. */
  if (!sealed && off < sf.size && !is_last)
    seg->is_damaged = TRUE;
  if (!sealed && !is_last)
    seg->is_damaged = TRUE;
  a->next_offset = off;
  seg_file_close(&sf);
  return TRUE;
}

static gboolean
load_from(SqlenvfsArchive *a, GArray *nums, guint start, GError **error)
{
  for (guint k = start; k < nums->len; k++) {
    SqlenvfsArchiveSegment seg = { 0 };
    g_autofree char *name = seg_name(g_array_index(nums, guint64, k), "seg");
    int fd = -1;
    seg.number = g_array_index(nums, guint64, k);
    seg.path = g_build_filename(a->dir, name, NULL);
    g_array_append_val(a->segments, seg);
    g_array_append_val(a->fds, fd);
    if (!load_segment(a, a->segments->len - 1, 0, 0, k + 1 == nums->len, error))
      return FALSE;
  }
  return TRUE;
}

static void
load_alive(SqlenvfsArchive *a)
{
  a->has_alive = read_alive(a->dir, &a->alive_file, &a->alive_seq);
}

SqlenvfsArchive *
sqlenvfs_archive_open(const char *dir, GError **error)
{
  g_autoptr(SqlenvfsArchive) a = g_new0(SqlenvfsArchive, 1);
  g_autoptr(GArray) nums = NULL;

  a->dir = g_strdup(dir);
  a->segments = g_array_new(FALSE, TRUE, sizeof(SqlenvfsArchiveSegment));
  g_array_set_clear_func(a->segments, (GDestroyNotify)segment_clear);
  a->fds = g_array_new(FALSE, FALSE, sizeof(int));
  a->entries = g_array_new(FALSE, FALSE, sizeof(SqlenvfsArchiveEntry));
  nums = list_segments(dir, error);
  if (nums == NULL)
    return NULL;
  load_alive(a);
  if (!load_from(a, nums, 0, error))
    return NULL;
  return g_steal_pointer(&a);
}

gboolean
sqlenvfs_archive_refresh(SqlenvfsArchive *a, GError **error)
{
  g_autoptr(GArray) nums = list_segments(a->dir, error);
  guint n_old = a->segments->len;
  const SqlenvfsArchiveEntry *last;

  if (nums == NULL)
    return FALSE;
  load_alive(a);
  /* Segments removed at the front (prune), or anything unexpected: reload. */
  if (n_old == 0 || nums->len < n_old ||
      g_array_index(nums, guint64, 0) != g_array_index(a->segments, SqlenvfsArchiveSegment, 0).number ||
      g_array_index(nums, guint64, n_old - 1) !=
        g_array_index(a->segments, SqlenvfsArchiveSegment, n_old - 1).number) {
    for (guint i = 0; i < a->fds->len; i++)
      if (g_array_index(a->fds, int, i) >= 0)
        close(g_array_index(a->fds, int, i));
    g_array_set_size(a->fds, 0);
    g_array_set_size(a->segments, 0);
    g_array_set_size(a->entries, 0);
    if (!load_from(a, nums, 0, error))
      return FALSE;
    return TRUE;
  }
  /* Continue the last known segment, then load new ones. */
  {
    SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, n_old - 1);
    if (!seg->is_sealed && !seg->is_damaged) {
      last = last_real(a);
      if (last && last->segment == n_old - 1) {
        if (!load_segment(a, n_old - 1, last->offset + last->length, last->seq + 1,
                          nums->len == n_old, error))
          return FALSE;
      } else if (!load_segment(a, n_old - 1, 0, 0, nums->len == n_old, error)) {
        return FALSE;
      }
    }
  }
  if (!load_from(a, nums, n_old, error))
    return FALSE;
  return TRUE;
}

gint64
sqlenvfs_archive_alive(const SqlenvfsArchive *a)
{
  gint64 alive = 0;
  guint64 next_seq = 1;
  for (guint i = a->entries->len; i > 0; i--) {
    const SqlenvfsArchiveEntry *e = &g_array_index(a->entries, SqlenvfsArchiveEntry, i - 1);
    if (e->seq != 0 && next_seq == 1)
      next_seq = e->seq + 1;
    if (e->type == SQLENVFS_ARCHIVE_COMMIT) {
      alive = MAX(alive, e->aux_time);
      break;
    }
    if (e->type == SQLENVFS_ARCHIVE_GAP) {
      if (e->reason != SQLENVFS_GAP_DAMAGED)
        alive = MAX(alive, e->time);
      break;
    }
  }
  if (a->has_alive && a->alive_seq <= next_seq && a->entries->len > 0)
    alive = MAX(alive, a->alive_file);
  return alive;
}

gint
sqlenvfs_archive_find_time(const SqlenvfsArchive *a, gint64 time)
{
  guint lo = 0, hi = a->entries->len; /* first entry with time > @time */
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;
    if (g_array_index(a->entries, SqlenvfsArchiveEntry, mid).time <= time)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (gint)lo - 1;
}

/* ------------------------------------------------------------------ */
/* Sparse reading (archive.h). This implementation walks the entries held
 * in memory. */

static const SqlenvfsArchiveEntry *
entry_at(const SqlenvfsArchive *a, guint i)
{
  return &g_array_index(a->entries, SqlenvfsArchiveEntry, i);
}

/* Index of the real entry with sequence number @seq, or -1. */
static gint
index_of_seq(const SqlenvfsArchive *a, guint64 seq)
{
  guint lo = 0, hi = a->entries->len;
  /* Real entries are in seq order; synthetic ones (seq 0) sit between. */
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2, m = mid;
    while (m < hi && entry_at(a, m)->seq == 0)
      m++;
    if (m == hi) {
      hi = mid;
      continue;
    }
    if (entry_at(a, m)->seq == seq)
      return (gint)m;
    if (entry_at(a, m)->seq < seq)
      lo = m + 1;
    else
      hi = mid;
  }
  return -1;
}

guint
sqlenvfs_archive_n_marks(const SqlenvfsArchive *a)
{
  guint n = 0;
  for (guint i = 0; i < a->entries->len; i++) {
    SqlenvfsArchiveRecordType t = entry_at(a, i)->type;
    n += t == SQLENVFS_ARCHIVE_GAP || t == SQLENVFS_ARCHIVE_OUTAGE;
  }
  return n;
}

const SqlenvfsArchiveEntry *
sqlenvfs_archive_mark(const SqlenvfsArchive *a, guint k, guint64 *after_seq)
{
  guint64 last = 0;
  for (guint i = 0; i < a->entries->len; i++) {
    const SqlenvfsArchiveEntry *e = entry_at(a, i);
    if (e->type == SQLENVFS_ARCHIVE_GAP || e->type == SQLENVFS_ARCHIVE_OUTAGE) {
      if (k-- == 0) {
        if (after_seq)
          *after_seq = e->seq != 0 ? e->seq - 1 : last;
        return e;
      }
    }
    if (e->seq != 0)
      last = e->seq;
  }
  g_return_val_if_reached(NULL);
}

gboolean
sqlenvfs_archive_bounds(const SqlenvfsArchive *a, guint64 *first_seq, guint64 *last_seq)
{
  gboolean found = FALSE;
  for (guint i = 0; i < a->entries->len; i++)
    if (entry_at(a, i)->seq != 0) {
      if (!found && first_seq)
        *first_seq = entry_at(a, i)->seq;
      found = TRUE;
      if (last_seq)
        *last_seq = entry_at(a, i)->seq;
    }
  return found;
}

gboolean
sqlenvfs_archive_get(SqlenvfsArchive *a, guint64 seq, SqlenvfsArchiveEntry *out)
{
  gint i = seq == 0 ? -1 : index_of_seq(a, seq);
  if (i < 0)
    return FALSE;
  *out = *entry_at(a, (guint)i);
  return TRUE;
}

gboolean
sqlenvfs_archive_last_state(SqlenvfsArchive *a, gint64 time, guint64 min_seq, guint64 max_seq,
                            SqlenvfsArchiveEntry *out)
{
  for (gint i = sqlenvfs_archive_find_time(a, time); i >= 0; i--) {
    const SqlenvfsArchiveEntry *e = entry_at(a, (guint)i);
    if (e->seq == 0 || e->seq > max_seq)
      continue;
    if (e->seq < min_seq)
      break;
    if (sqlenvfs_archive_entry_is_state(e)) {
      *out = *e;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean
sqlenvfs_archive_find_commit(SqlenvfsArchive *a, guint32 salt1, guint32 salt2, guint32 frame,
                             guint32 cksum1, guint32 cksum2, SqlenvfsArchiveEntry *out)
{
  for (guint i = a->entries->len; i > 0; i--) {
    const SqlenvfsArchiveEntry *e = entry_at(a, i - 1);
    if (e->type == SQLENVFS_ARCHIVE_COMMIT && e->commit_frame == frame && e->salt1 == salt1 &&
        e->salt2 == salt2 && e->cksum1 == cksum1 && e->cksum2 == cksum2) {
      *out = *e;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean
sqlenvfs_archive_generation_end(SqlenvfsArchive *a, guint64 seq, guint64 max_seq,
                                SqlenvfsArchiveEntry *out)
{
  gint s = index_of_seq(a, seq);
  const SqlenvfsArchiveEntry *st;
  if (s < 0)
    return FALSE;
  st = entry_at(a, (guint)s);
  *out = *st;
  for (guint i = (guint)s + 1; i < a->entries->len; i++) {
    const SqlenvfsArchiveEntry *e = entry_at(a, i);
    if (e->seq == 0 || e->seq > max_seq)
      break;
    if (e->type != SQLENVFS_ARCHIVE_COMMIT)
      continue;
    if (e->salt1 != st->salt1 || e->salt2 != st->salt2)
      break;
    *out = *e;
  }
  return TRUE;
}

void
sqlenvfs_archive_count_commits(SqlenvfsArchive *a, guint64 after_seq, guint64 upto_seq,
                               guint64 *n_commits, guint64 *bytes, guint32 *db_pages)
{
  guint64 n = 0, b = 0;
  for (guint i = 0; i < a->entries->len; i++) {
    const SqlenvfsArchiveEntry *e = entry_at(a, i);
    if (e->type != SQLENVFS_ARCHIVE_COMMIT || e->seq <= after_seq || e->seq > upto_seq)
      continue;
    n++;
    b += e->length;
    if (db_pages)
      *db_pages = e->db_pages;
  }
  if (n_commits)
    *n_commits = n;
  if (bytes)
    *bytes = b;
}

static int
segment_fd(SqlenvfsArchive *a, guint si, GError **error)
{
  int *fd = &g_array_index(a->fds, int, si);
  if (*fd < 0) {
    const char *path = g_array_index(a->segments, SqlenvfsArchiveSegment, si).path;
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
      sqlenvfs_error_errno(error, errno, "open archive segment", path);
      return -1;
    }
  }
  return *fd;
}

static gboolean
corrupt(GError **error, const char *path, const SqlenvfsArchiveEntry *e, const char *why)
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
static const char *
check_blocks(const SqlenvfsArchiveEntry *e, const guint8 *rec, guint8 *dst, ZSTD_DCtx *dctx)
{
  guint32 sp = stream_pages(e);
  guint32 ppb = pages_per_block(e->page_size), nb = n_blocks(sp, e->page_size);
  const guint8 *table = rec + e->length - REC_TRAILER_SIZE - (gsize)nb * BLOCK_ENTRY_SIZE;
  const guint8 *pos = rec + REC_HEADER_SIZE + 4 * (gsize)e->n_pages;
  g_autofree guint8 *scratch = dst ? NULL : g_malloc((gsize)ppb * e->page_size);
  const char *why = NULL;

  for (guint32 j = 0; j < nb && why == NULL; j++) {
    gsize stored = get32(table + (gsize)j * BLOCK_ENTRY_SIZE);
    gsize raw = (gsize)MIN(ppb, sp - j * ppb) * e->page_size;
    guint8 *out = dst ? dst + (gsize)j * ppb * e->page_size : scratch;
    if (stored == 0 || stored > raw || stored > (gsize)(table - pos)) {
      why = "has a block table that does not match its data";
    } else if (crc(0, pos, stored) != get32(table + (gsize)j * BLOCK_ENTRY_SIZE + 4)) {
      why = "has a compressed block that fails its checksum";
    } else if (stored == raw) {
      memcpy(out, pos, raw);
    } else {
      size_t r = ZSTD_decompressDCtx(dctx, out, raw, pos, stored);
      if (ZSTD_isError(r) || r != raw)
        why = "has a compressed block that does not decompress to its pages";
    }
    pos += stored;
  }
  if (why == NULL && pos != table)
    why = "has bytes between its last block and its block table";
  return why;
}

/* Read the record @e whole into @rec (e->length bytes) from @fd and check
 * its header against @e, its checksum and its page numbers. Returns its page
 * numbers (newly allocated), or NULL and *error naming @path. */
static guint32 *
read_whole_record(int fd, const char *path, const SqlenvfsArchiveEntry *e, guint8 *rec,
                  GError **error)
{
  g_autofree guint32 *pgnos = NULL;
  SqlenvfsArchiveEntry disk;
  gsize got;

  if (!pread_full(fd, rec, e->length, e->offset, &got, path, error))
    return NULL;
  if (got < e->length) {
    corrupt(error, path, e, "is cut short (the file is truncated)");
    return NULL;
  }
  if (!decode_header(rec, &disk) || !same_header(&disk, e)) {
    corrupt(error, path, e, "has a header that does not match its index entry");
    return NULL;
  }
  if (get32(rec + e->length - 4) != REC_END_MAGIC ||
      get32(rec + e->length - REC_TRAILER_SIZE) != crc(0, rec, e->length - REC_TRAILER_SIZE)) {
    corrupt(error, path, e, "fails its checksum");
    return NULL;
  }
  pgnos = g_new(guint32, MAX(e->n_pages, 1));
  for (guint32 i = 0; i < e->n_pages; i++) {
    pgnos[i] = get32(rec + REC_HEADER_SIZE + 4 * i);
    if (pgnos[i] == 0) {
      corrupt(error, path, e, "lists page number 0");
      return NULL;
    }
  }
  return g_steal_pointer(&pgnos);
}

/* Version 2: read the compressed COMMIT @e whole and check it: its header
 * against @e, its checksum, its page numbers, its blocks (check_blocks).
 * Returns the page numbers, and the pages in *@pages when it is not NULL. */
static guint32 *
read_compressed(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e, guint8 **pages,
                GError **error)
{
  const char *path = g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path;
  int fd = segment_fd(a, e->segment, error);
  g_autofree guint8 *rec = NULL;
  g_autofree guint8 *out = NULL;
  g_autofree guint32 *pgnos = NULL;
  const char *why;

  if (fd < 0)
    return NULL;
  rec = g_try_malloc(e->length);
  if (rec == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "read archive segment %s: no memory for record %" G_GUINT64_FORMAT
                " (%" G_GUINT64_FORMAT " bytes)", path, e->seq, e->length);
    return NULL;
  }
  pgnos = read_whole_record(fd, path, e, rec, error);
  if (pgnos == NULL)
    return NULL;
  if (pages != NULL) {
    out = g_try_malloc(MAX((gsize)stream_pages(e) * e->page_size, 1));
    if (out == NULL) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                  "read archive segment %s: no memory for the %u pages of record %" G_GUINT64_FORMAT,
                  path, e->n_pages, e->seq);
      return NULL;
    }
  }
  if (a->dctx == NULL)
    a->dctx = ZSTD_createDCtx();
  g_assert(a->dctx != NULL); /* fails only for lack of memory, as g_malloc would */
  why = check_blocks(e, rec, out, a->dctx);
  if (why != NULL) {
    corrupt(error, path, e, why);
    return NULL;
  }
  if (pages != NULL)
    *pages = g_steal_pointer(&out);
  return g_steal_pointer(&pgnos);
}

const SqlenvfsArchiveEntry *
sqlenvfs_archive_batch_first(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e, guint32 *first)
{
  const SqlenvfsArchiveEntry *base = (const SqlenvfsArchiveEntry *)a->entries->data;
  guint64 want;
  gint64 i = -1;

  g_return_val_if_fail(e->flags & SQLENVFS_ARCHIVE_BATCHED, NULL);
  if (e->reason == 0 || e->seq <= e->reason)
    return NULL;
  want = e->seq - e->reason;
  /* @e is normally an entry of @a: look just before it. */
  if (e >= base && e < base + a->entries->len)
    i = e - base;
  else
    i = (gint64)a->entries->len;
  for (gint64 j = i - 1; j >= 0; j--) {
    const SqlenvfsArchiveEntry *h = base + j;
    if (h->seq != 0 && h->seq < want)
      break;
    if (h->seq == want) {
      if (h->type != SQLENVFS_ARCHIVE_COMMIT || h->segment != e->segment ||
          !(h->flags & SQLENVFS_ARCHIVE_COMPRESSED) ||
          (guint64)e->text_len + e->n_pages > stream_pages(h))
        return NULL;
      *first = e->text_len;
      return h;
    }
  }
  return NULL;
}

/* A commit of a batch: read its own record whole and check it, then the
 * batch's first record, which holds its pages (checked once per batch when
 * only checking: @pages NULL). */
static guint32 *
read_member(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e, guint8 **pages, GError **error)
{
  const char *path = g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path;
  int fd = segment_fd(a, e->segment, error);
  g_autofree guint8 *rec = NULL;
  g_autofree guint32 *pgnos = NULL;
  g_autofree guint32 *hp = NULL;
  g_autofree guint8 *all = NULL;
  const SqlenvfsArchiveEntry *h;
  guint32 first = 0;

  if (fd < 0)
    return NULL;
  rec = g_malloc(e->length);
  pgnos = read_whole_record(fd, path, e, rec, error);
  if (pgnos == NULL)
    return NULL;
  h = sqlenvfs_archive_batch_first(a, e, &first);
  if (h == NULL) {
    corrupt(error, path, e, "belongs to a batch whose first record, which holds its pages, is "
            "missing or does not match");
    return NULL;
  }
  if (pages == NULL && a->checked_batch_seg == h->segment + 1 &&
      a->checked_batch_off == h->offset)
    return g_steal_pointer(&pgnos);
  hp = read_compressed(a, h, pages ? &all : NULL, error);
  if (hp == NULL)
    return NULL;
  a->checked_batch_seg = h->segment + 1;
  a->checked_batch_off = h->offset;
  if (pages != NULL) {
    *pages = g_memdup2(all + (gsize)first * e->page_size, MAX((gsize)e->n_pages * e->page_size, 1));
  }
  return g_steal_pointer(&pgnos);
}

guint32 *
sqlenvfs_archive_read_commit(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e,
                             guint64 *data_offset, GError **error)
{
  const char *path;
  int fd;
  gsize list_len, got;
  g_autofree guint8 *head = NULL;
  g_autofree guint8 *chunk = NULL;
  g_autofree guint32 *pgnos = NULL;
  SqlenvfsArchiveEntry disk;
  guint32 c;
  guint64 pos, end;
  guint8 trailer[REC_TRAILER_SIZE];

  g_return_val_if_fail(e->type == SQLENVFS_ARCHIVE_COMMIT, NULL);
  if (e->flags & SQLENVFS_ARCHIVE_COMPRESSED) {
    *data_offset = 0;
    return read_compressed(a, e, NULL, error);
  }
  if (e->flags & SQLENVFS_ARCHIVE_BATCHED) {
    *data_offset = 0;
    return read_member(a, e, NULL, error);
  }
  path = g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path;
  fd = segment_fd(a, e->segment, error);
  if (fd < 0)
    return NULL;
  list_len = 4 * (gsize)e->n_pages;
  head = g_malloc(REC_HEADER_SIZE + list_len);
  if (!pread_full(fd, head, REC_HEADER_SIZE + list_len, e->offset, &got, path, error))
    return NULL;
  if (got < REC_HEADER_SIZE + list_len) {
    corrupt(error, path, e, "is cut short (the file is truncated)");
    return NULL;
  }
  if (!decode_header(head, &disk) || !same_header(&disk, e)) {
    corrupt(error, path, e, "has a header that does not match its index entry");
    return NULL;
  }
  c = crc(0, head, REC_HEADER_SIZE + list_len);
  pgnos = g_new(guint32, MAX(e->n_pages, 1));
  for (guint32 i = 0; i < e->n_pages; i++) {
    pgnos[i] = get32(head + REC_HEADER_SIZE + 4 * i);
    if (pgnos[i] == 0) {
      corrupt(error, path, e, "lists page number 0");
      return NULL;
    }
  }
  chunk = g_malloc(IO_CHUNK);
  pos = e->offset + REC_HEADER_SIZE + list_len;
  end = e->offset + e->length - REC_TRAILER_SIZE;
  while (pos < end) {
    gsize want = (gsize)MIN((guint64)IO_CHUNK, end - pos);
    if (!pread_full(fd, chunk, want, pos, &got, path, error))
      return NULL;
    if (got < want) {
      corrupt(error, path, e, "is cut short (the file is truncated)");
      return NULL;
    }
    c = crc(c, chunk, want);
    pos += want;
  }
  if (!pread_full(fd, trailer, sizeof trailer, end, &got, path, error))
    return NULL;
  if (got < sizeof trailer || get32(trailer + 4) != REC_END_MAGIC || get32(trailer) != c) {
    corrupt(error, path, e, "fails its checksum");
    return NULL;
  }
  *data_offset = e->offset + REC_HEADER_SIZE + list_len;
  return g_steal_pointer(&pgnos);
}

guint32 *
sqlenvfs_archive_read_commit_pages(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e,
                                   guint8 **pages, GError **error)
{
  g_autofree guint32 *pgnos = NULL;
  g_autofree guint8 *out = NULL;
  guint64 data = 0;
  gsize len = (gsize)e->n_pages * e->page_size, got;
  int fd;

  g_return_val_if_fail(e->type == SQLENVFS_ARCHIVE_COMMIT, NULL);
  if (e->flags & SQLENVFS_ARCHIVE_BATCHED)
    return read_member(a, e, pages, error);
  if (e->flags & SQLENVFS_ARCHIVE_COMPRESSED) {
    /* Only its own pages (a batch's first record holds others after). */
    g_autofree guint8 *all = NULL;
    g_autofree guint32 *own = read_compressed(a, e, &all, error);
    if (own == NULL)
      return NULL;
    if (stream_pages(e) == e->n_pages)
      *pages = g_steal_pointer(&all);
    else
      *pages = g_memdup2(all, MAX((gsize)e->n_pages * e->page_size, 1));
    return g_steal_pointer(&own);
  }
  pgnos = sqlenvfs_archive_read_commit(a, e, &data, error);
  if (pgnos == NULL)
    return NULL;
  fd = segment_fd(a, e->segment, error);
  if (fd < 0)
    return NULL;
  out = g_malloc(MAX(len, 1));
  if (!pread_full(fd, out, len, data, &got,
                  g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path, error))
    return NULL;
  if (got < len) {
    corrupt(error, g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path, e,
            "is cut short (the file is truncated)");
    return NULL;
  }
  *pages = g_steal_pointer(&out);
  return g_steal_pointer(&pgnos);
}

/* ------------------------------------------------------------------ */
/* Compressed records as a source of page images (version 2)           */

typedef struct {
  guint64 offset, length;
  guint32 n_pages, page_size; /* n_pages: in its blocks (stream_pages()) */
  guint32 own_pages;          /* its own: the page numbers it lists      */
} SrcRecord;

struct _SqlenvfsArchiveRecordSource {
  char *path;
  int fd;
  guint32 page_size;
  GArray *records;   /* SrcRecord, in the order first registered               */
  GArray *refs;      /* guint64 per registered page: record index << 32 | page */
  /* The block last read: record index, block, its pages. */
  gint64 cached_rec;
  guint32 cached_block;
  guint8 *cache, *zbuf;
  gsize zcap;
  /* The block table of the record last read, as byte offsets of blocks. */
  gint64 table_rec;
  GArray *starts;    /* guint64 per block + 1: offset of block j in the record */
  GArray *crcs;      /* guint32 per block: its crc32                           */
  ZSTD_DCtx *dctx;
};

SqlenvfsArchiveRecordSource *
sqlenvfs_archive_record_source_new(SqlenvfsArchive *a, guint segment, GError **error)
{
  SqlenvfsArchiveRecordSource *src;
  const char *path;
  int fd;

  g_return_val_if_fail(segment < a->segments->len, NULL);
  path = g_array_index(a->segments, SqlenvfsArchiveSegment, segment).path;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    sqlenvfs_error_errno(error, errno, "open archive segment", path);
    return NULL;
  }
  src = g_new0(SqlenvfsArchiveRecordSource, 1);
  src->path = g_strdup(path);
  src->fd = fd;
  src->records = g_array_new(FALSE, FALSE, sizeof(SrcRecord));
  src->refs = g_array_new(FALSE, FALSE, sizeof(guint64));
  src->starts = g_array_new(FALSE, FALSE, sizeof(guint64));
  src->crcs = g_array_new(FALSE, FALSE, sizeof(guint32));
  src->cached_rec = src->table_rec = -1;
  src->dctx = ZSTD_createDCtx();
  if (src->dctx == NULL) {
    sqlenvfs_archive_record_source_free(src);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "read archive segment %s: cannot create a zstd context (out of memory)", path);
    return NULL;
  }
  return src;
}

void
sqlenvfs_archive_record_source_free(gpointer p)
{
  SqlenvfsArchiveRecordSource *src = p;
  if (src == NULL)
    return;
  if (src->fd >= 0)
    close(src->fd);
  ZSTD_freeDCtx(src->dctx);
  g_array_free(src->records, TRUE);
  g_array_free(src->refs, TRUE);
  g_array_free(src->starts, TRUE);
  g_array_free(src->crcs, TRUE);
  g_free(src->cache);
  g_free(src->zbuf);
  g_free(src->path);
  g_free(src);
}

goffset
sqlenvfs_archive_record_source_add(SqlenvfsArchiveRecordSource *src,
                                   const SqlenvfsArchiveEntry *e, guint32 k)
{
  SrcRecord *last = src->records->len
                      ? &g_array_index(src->records, SrcRecord, src->records->len - 1)
                      : NULL;
  guint64 ref;

  g_return_val_if_fail(e->flags & SQLENVFS_ARCHIVE_COMPRESSED, 0);
  g_return_val_if_fail(k < stream_pages(e), 0);
  g_return_val_if_fail(src->page_size == 0 || src->page_size == e->page_size, 0);
  src->page_size = e->page_size;
  if (last == NULL || last->offset != e->offset) {
    SrcRecord r = { e->offset, e->length, stream_pages(e), e->page_size, e->n_pages };
    g_array_append_val(src->records, r);
  }
  ref = ((guint64)(src->records->len - 1) << 32) | k;
  g_array_append_val(src->refs, ref);
  return (goffset)(src->refs->len - 1) * src->page_size;
}

static gboolean
source_corrupt(SqlenvfsArchiveRecordSource *src, const SrcRecord *r, const char *why,
               GError **error)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "archive segment %s is corrupt: the record at offset %" G_GUINT64_FORMAT
              " %s (run `sqlenvfs verify`)", src->path, r->offset, why);
  return FALSE;
}

/* Make block @j of record @ri the cached one. */
static gboolean
source_load(SqlenvfsArchiveRecordSource *src, guint ri, guint32 j, GError **error)
{
  const SrcRecord *r = &g_array_index(src->records, SrcRecord, ri);
  guint32 ppb = pages_per_block(r->page_size), nb = n_blocks(r->n_pages, r->page_size);
  gsize raw = (gsize)MIN(ppb, r->n_pages - j * ppb) * r->page_size, stored, got;
  guint64 first = REC_HEADER_SIZE + 4 * (guint64)r->own_pages;
  guint64 table_off = r->length - REC_TRAILER_SIZE - (guint64)nb * BLOCK_ENTRY_SIZE;
  g_autofree guint8 *table = NULL;
  guint32 want_crc;

  if (src->cached_rec == (gint64)ri && src->cached_block == j)
    return TRUE;
  if (src->table_rec != (gint64)ri) {
    guint64 at = first;
    table = g_malloc((gsize)nb * BLOCK_ENTRY_SIZE);
    if (!pread_full(src->fd, table, (gsize)nb * BLOCK_ENTRY_SIZE, r->offset + table_off, &got,
                    src->path, error))
      return FALSE;
    if (got < (gsize)nb * BLOCK_ENTRY_SIZE)
      return source_corrupt(src, r, "is cut short (the file is truncated)", error);
    src->table_rec = -1;
    g_array_set_size(src->starts, 0);
    g_array_set_size(src->crcs, 0);
    for (guint32 b = 0; b <= nb; b++) {
      g_array_append_val(src->starts, at);
      if (b < nb) {
        guint32 c = get32(table + (gsize)b * BLOCK_ENTRY_SIZE + 4);
        at += get32(table + (gsize)b * BLOCK_ENTRY_SIZE);
        g_array_append_val(src->crcs, c);
      }
    }
    if (at != table_off)
      return source_corrupt(src, r, "has a block table that does not match its data", error);
    src->table_rec = ri;
    src->cached_rec = -1;
  }
  stored = (gsize)(g_array_index(src->starts, guint64, j + 1) -
                   g_array_index(src->starts, guint64, j));
  want_crc = g_array_index(src->crcs, guint32, j);
  if (stored == 0 || stored > raw)
    return source_corrupt(src, r, "has a block table that does not match its data", error);
  if (src->zcap < MAX(stored, (gsize)ppb * r->page_size)) {
    src->zcap = MAX(stored, (gsize)ppb * r->page_size);
    src->zbuf = g_realloc(src->zbuf, src->zcap);
    src->cache = g_realloc(src->cache, src->zcap);
  }
  if (!pread_full(src->fd, src->zbuf, stored,
                  r->offset + g_array_index(src->starts, guint64, j), &got, src->path, error))
    return FALSE;
  if (got < stored)
    return source_corrupt(src, r, "is cut short (the file is truncated)", error);
  if (crc(0, src->zbuf, stored) != want_crc)
    return source_corrupt(src, r, "has a compressed block that fails its checksum", error);
  if (stored == raw) {
    memcpy(src->cache, src->zbuf, raw);
  } else {
    size_t n = ZSTD_decompressDCtx(src->dctx, src->cache, raw, src->zbuf, stored);
    if (ZSTD_isError(n) || n != raw)
      return source_corrupt(src, r, "has a compressed block that does not decompress to its "
                            "pages", error);
  }
  src->cached_rec = ri;
  src->cached_block = j;
  return TRUE;
}

gssize
sqlenvfs_archive_record_source_read(gpointer p, void *buf, gsize len, goffset off,
                                    GError **error)
{
  SqlenvfsArchiveRecordSource *src = p;
  guint64 i, within, ref;
  guint32 ri, k, ppb;
  gsize n;

  if (src->page_size == 0 || off < 0)
    return 0;
  i = (guint64)off / src->page_size;
  within = (guint64)off % src->page_size;
  if (i >= src->refs->len)
    return 0;
  ref = g_array_index(src->refs, guint64, i);
  ri = (guint32)(ref >> 32);
  k = (guint32)ref;
  ppb = pages_per_block(src->page_size);
  if (!source_load(src, ri, k / ppb, error))
    return -1;
  n = (gsize)MIN((guint64)len, src->page_size - within);
  memcpy(buf, src->cache + (gsize)(k % ppb) * src->page_size + within, n);
  return (gssize)n;
}

char *
sqlenvfs_archive_read_gap_text(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e, GError **error)
{
  const char *path;
  int fd;
  g_autofree char *text = NULL;
  gsize got;

  g_return_val_if_fail(e->type == SQLENVFS_ARCHIVE_GAP, NULL);
  if (e->seq == 0 || e->text_len == 0)
    return g_strdup("");
  path = g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path;
  fd = segment_fd(a, e->segment, error);
  if (fd < 0)
    return NULL;
  text = g_malloc0(e->text_len + 1);
  if (!pread_full(fd, text, e->text_len, e->offset + REC_HEADER_SIZE, &got, path, error))
    return NULL;
  if (got < e->text_len || !g_utf8_validate(text, -1, NULL)) {
    corrupt(error, path, e, "has unreadable gap text");
    return NULL;
  }
  return g_steal_pointer(&text);
}

/* ------------------------------------------------------------------ */
/* Checking every record                                                */

/* What check_records found in one segment file (memo by identity). */
typedef struct {
  guint64 dev, ino, size;
  gint64 mtime_ns, ctime_ns;
  guint64 checked_upto; /* every COMMIT record ending at or before this was read */
  GArray *bad;          /* guint64 offsets of the records that failed */
} SegMemo;

static GMutex memo_lock;
static GHashTable *memos; /* path -> SegMemo * */

static void
seg_memo_free(gpointer p)
{
  SegMemo *m = p;
  g_array_unref(m->bad);
  g_free(m);
}

static gboolean
offset_is_bad(const GArray *bad, guint64 off)
{
  for (guint i = 0; i < bad->len; i++)
    if (g_array_index(bad, guint64, i) == off)
      return TRUE;
  return FALSE;
}

static SegMemo *
seg_memo_new(const struct stat *st, guint64 checked_upto, GArray *bad /* ref taken */)
{
  SegMemo *m = g_new0(SegMemo, 1);
  m->dev = (guint64)st->st_dev;
  m->ino = (guint64)st->st_ino;
  m->size = (guint64)st->st_size;
  m->mtime_ns = (gint64)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
  m->ctime_ns = (gint64)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
  m->checked_upto = checked_upto;
  m->bad = bad;
  return m;
}

void
sqlenvfs_archive_forget_checks(void)
{
  g_mutex_lock(&memo_lock);
  g_clear_pointer(&memos, g_hash_table_destroy);
  g_mutex_unlock(&memo_lock);
}

/* The memo file (see sqlenvfs_archive_check_records):
 *   "<segment file name> <dev> <ino> <size> <mtime ns> <ctime ns> <checked
 *    up to> <bad offsets, comma-separated, or ->\n" per segment, then
 *   "crc32=0x<8 hex>\n" over every byte before it.
 * Adds what it says of the segments of @dir to the process memo, for paths
 * the memo does not hold yet. A file that fails its checksum is ignored. */
static void
load_memo_file(const char *memo_path, const char *dir)
{
  g_autofree char *data = NULL;
  g_auto(GStrv) lines = NULL;
  const char *tail;
  gsize len = 0;
  guint32 sum;

  if (memo_path == NULL || !g_file_get_contents(memo_path, &data, &len, NULL))
    return;
  tail = g_strrstr_len(data, (gssize)len, "crc32=0x");
  if (tail == NULL || (tail != data && tail[-1] != '\n') ||
      sscanf(tail, "crc32=0x%8x", &sum) != 1 || sum != crc(0, data, (gsize)(tail - data))) {
    g_debug("ignoring %s: it fails its checksum", memo_path);
    return;
  }
  data[tail - data] = '\0';
  lines = g_strsplit(data, "\n", -1);
  g_mutex_lock(&memo_lock);
  if (memos == NULL)
    memos = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, seg_memo_free);
  for (char **l = lines; *l; l++) {
    char name[64], bad[4096];
    struct stat st = { 0 };
    guint64 dev, ino, size, upto;
    gint64 mt, ct;
    g_autofree char *path = NULL;
    GArray *offs;
    if (sscanf(*l, "%63s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
               " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GUINT64_FORMAT " %4095s",
               name, &dev, &ino, &size, &mt, &ct, &upto, bad) != 8 ||
        strchr(name, '/') != NULL)
      continue;
    path = g_build_filename(dir, name, NULL);
    if (g_hash_table_contains(memos, path))
      continue;
    offs = g_array_new(FALSE, FALSE, sizeof(guint64));
    if (strcmp(bad, "-") != 0) {
      g_auto(GStrv) parts = g_strsplit(bad, ",", -1);
      for (char **q = parts; *q; q++) {
        guint64 o = g_ascii_strtoull(*q, NULL, 10);
        g_array_append_val(offs, o);
      }
    }
    st.st_dev = (dev_t)dev;
    st.st_ino = (ino_t)ino;
    st.st_size = (off_t)size;
    st.st_mtim.tv_sec = mt / 1000000000;
    st.st_mtim.tv_nsec = mt % 1000000000;
    st.st_ctim.tv_sec = ct / 1000000000;
    st.st_ctim.tv_nsec = ct % 1000000000;
    g_hash_table_replace(memos, g_steal_pointer(&path), seg_memo_new(&st, upto, offs));
  }
  g_mutex_unlock(&memo_lock);
}

/* Write what the process memo says of the segments of @a to @memo_path
 * (atomically, mode 0600); a failure only costs a later reader time. */
static void
save_memo_file(SqlenvfsArchive *a, const char *memo_path)
{
  GString *s = g_string_new(NULL);
  g_autoptr(GError) local = NULL;

  g_mutex_lock(&memo_lock);
  for (guint si = 0; memos != NULL && si < a->segments->len; si++) {
    const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
    const SegMemo *m = g_hash_table_lookup(memos, seg->path);
    g_autofree char *name = g_path_get_basename(seg->path);
    if (m == NULL)
      continue;
    g_string_append_printf(s, "%s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                           " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GUINT64_FORMAT " ",
                           name, m->dev, m->ino, m->size, m->mtime_ns, m->ctime_ns,
                           m->checked_upto);
    for (guint i = 0; i < m->bad->len && i < 256; i++)
      g_string_append_printf(s, "%s%" G_GUINT64_FORMAT, i ? "," : "",
                             g_array_index(m->bad, guint64, i));
    g_string_append(s, m->bad->len ? "\n" : "-\n");
  }
  g_mutex_unlock(&memo_lock);
  g_string_append_printf(s, "crc32=0x%08x\n", crc(0, s->str, s->len));
  if (!sqlenvfs_write_file_atomic(memo_path, s->str, s->len, 0600, &local))
    g_debug("remember archive checks: %s", local->message);
  g_string_free(s, TRUE);
}

int
sqlenvfs_archive_check_records(SqlenvfsArchive *a, const char *memo_path, GError **error)
{
  guint n_segs = a->segments->len;
  g_autofree guint64 *start = g_new0(guint64, MAX(n_segs, 1));
  g_autofree guint64 *upto = g_new0(guint64, MAX(n_segs, 1));
  g_autofree struct stat *st = g_new0(struct stat, MAX(n_segs, 1));
  g_autoptr(GPtrArray) bad = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
  int n_bad = 0;
  guint n_read = 0;

  load_memo_file(memo_path, a->dir);
  /* What is already known of each segment. */
  g_mutex_lock(&memo_lock);
  for (guint si = 0; si < n_segs; si++) {
    const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
    const SegMemo *m = memos ? g_hash_table_lookup(memos, seg->path) : NULL;
    GArray *b = g_array_new(FALSE, FALSE, sizeof(guint64));
    g_ptr_array_add(bad, b);
    if (stat(seg->path, &st[si]) != 0) {
      st[si].st_ino = 0; /* gone: nothing is remembered for it */
      continue;
    }
    if (m == NULL || m->dev != (guint64)st[si].st_dev || m->ino != (guint64)st[si].st_ino)
      continue;
    if (m->size == (guint64)st[si].st_size &&
        m->mtime_ns == (gint64)st[si].st_mtim.tv_sec * 1000000000 + st[si].st_mtim.tv_nsec &&
        m->ctime_ns == (gint64)st[si].st_ctim.tv_sec * 1000000000 + st[si].st_ctim.tv_nsec) {
      start[si] = m->checked_upto; /* unchanged */
    } else if ((guint64)st[si].st_size > m->size) {
      start[si] = m->checked_upto; /* appended to: only the new records */
    } else {
      continue; /* changed in place: read it all again */
    }
    g_array_append_vals(b, m->bad->data, m->bad->len);
  }
  g_mutex_unlock(&memo_lock);

  /* Read what is not known yet. */
  for (guint i = 0; i < a->entries->len; i++) {
    const SqlenvfsArchiveEntry *e = &g_array_index(a->entries, SqlenvfsArchiveEntry, i);
    g_autoptr(GError) local = NULL;
    g_autofree guint32 *pgnos = NULL;
    guint64 data;
    if (e->type != SQLENVFS_ARCHIVE_COMMIT || e->seq == 0)
      continue;
    upto[e->segment] = MAX(upto[e->segment], e->offset + e->length);
    if (e->offset < start[e->segment])
      continue;
    n_read++;
    pgnos = sqlenvfs_archive_read_commit(a, e, &data, &local);
    if (pgnos != NULL)
      continue;
    if (local->domain != SQLENVFS_ERROR || local->code != SQLENVFS_ERROR_INTEGRITY) {
      g_propagate_error(error, g_steal_pointer(&local));
      return -1;
    }
    g_info("archive %s: %s", a->dir, local->message);
    g_array_append_val((GArray *)bad->pdata[e->segment], e->offset);
  }

  /* Remember, then mark the damaged records (invariant 2: never bridged). */
  g_mutex_lock(&memo_lock);
  if (memos == NULL || g_hash_table_size(memos) > 65536) {
    g_clear_pointer(&memos, g_hash_table_destroy);
    memos = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, seg_memo_free);
  }
  for (guint si = 0; si < n_segs; si++) {
    const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
    SegMemo *m;
    if (st[si].st_ino == 0)
      continue;
    m = seg_memo_new(&st[si], MAX(upto[si], start[si]), g_array_ref(bad->pdata[si]));
    g_hash_table_replace(memos, g_strdup(seg->path), m);
  }
  g_mutex_unlock(&memo_lock);
  if (memo_path != NULL && n_read > 0)
    save_memo_file(a, memo_path);

  for (guint i = 0; i < a->entries->len; i++) {
    SqlenvfsArchiveEntry *e = &g_array_index(a->entries, SqlenvfsArchiveEntry, i);
    SqlenvfsArchiveEntry gap = { 0 };
    if (e->type != SQLENVFS_ARCHIVE_COMMIT || e->seq == 0 ||
        !offset_is_bad(bad->pdata[e->segment], e->offset))
      continue;
    gap.type = SQLENVFS_ARCHIVE_GAP;
    gap.reason = SQLENVFS_GAP_DAMAGED;
    gap.time = e->time;
    gap.aux_time = i > 0 ? g_array_index(a->entries, SqlenvfsArchiveEntry, i - 1).time : 0;
    gap.commit_frame = G_MAXUINT32; /* never a state */
    gap.segment = e->segment;
    gap.offset = e->offset;
    gap.length = e->length;
    *e = gap;
    n_bad++;
  }
  return n_bad;
}

/* ------------------------------------------------------------------ */
/* The prune log                                                        */

#define PRUNE_LOG "PRUNED"

typedef struct {
  guint64 number, first_seq, next_seq;
  guint32 seal;
} PrunedSegment;

static char *
prune_line(guint64 number, guint64 first_seq, guint64 next_seq, guint32 seal, gint64 when)
{
  g_autofree char *body = g_strdup_printf("segment=%016" G_GUINT64_FORMAT " first-seq=%"
                                          G_GUINT64_FORMAT " next-seq=%" G_GUINT64_FORMAT
                                          " seal=0x%08x removed-us=%" G_GINT64_FORMAT,
                                          number, first_seq, next_seq, seal, when);
  return g_strdup_printf("%s crc32=0x%08x\n", body, crc(0, body, strlen(body)));
}

/* Parse one line of PRUNED (without its newline); FALSE when it is damaged. */
static gboolean
parse_prune_line(const char *line, PrunedSegment *out)
{
  const char *c = strstr(line, " crc32=0x");
  guint64 number, first, next;
  guint32 seal, sum;
  gint64 when;
  int used = 0;

  if (c == NULL || sscanf(c, " crc32=0x%8x%n", &sum, &used) != 1 || c[used] != '\0' ||
      sum != crc(0, line, (gsize)(c - line)))
    return FALSE;
  if (sscanf(line, "segment=%16" G_GUINT64_FORMAT " first-seq=%" G_GUINT64_FORMAT
             " next-seq=%" G_GUINT64_FORMAT " seal=0x%8x removed-us=%" G_GINT64_FORMAT,
             &number, &first, &next, &seal, &when) != 5 || number == 0)
    return FALSE;
  out->number = number;
  out->first_seq = first;
  out->next_seq = next;
  out->seal = seal;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Verification                                                         */

typedef struct _Problems Problems;
static void problem(Problems *p, const char *file, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* The segments PRUNED records (number -> PrunedSegment *); damaged lines
 * are problems. A last line without its newline is an append a crash cut
 * short: its segment was not removed yet, so it is left out quietly. */
static GHashTable *
load_prune_log(const char *dir, Problems *p)
{
  GHashTable *t = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
  g_autofree char *path = g_build_filename(dir, PRUNE_LOG, NULL);
  g_autofree char *data = NULL;
  g_auto(GStrv) lines = NULL;
  guint n;

  if (!g_file_get_contents(path, &data, NULL, NULL))
    return t;
  lines = g_strsplit(data, "\n", -1);
  n = g_strv_length(lines);
  for (guint i = 0; i + 1 < n; i++) {
    PrunedSegment ps;
    if (!parse_prune_line(lines[i], &ps)) {
      problem(p, path, "line %u is damaged (checksum mismatch): which segment it removed is "
              "unknown", i + 1);
      continue;
    }
    {
      PrunedSegment *v = g_memdup2(&ps, sizeof ps);
      g_hash_table_replace(t, &v->number, v); /* the key lives in the value */
    }
  }
  if (n > 0 && lines[n - 1][0] != '\0')
    g_debug("archive %s: %s ends with an unfinished line (ignored)", dir, path);
  return t;
}

/* Report the segments below @first that are neither present nor in
 * @pruned: deleted or lost, not pruned (invariant 7). */
static void
verify_pruned(const char *dir, GHashTable *pruned, guint64 first, Problems *p)
{
  guint64 run = 0;
  for (guint64 n = 1; n <= first; n++) {
    gboolean missing = n < first && !g_hash_table_contains(pruned, &n);
    if (missing && run == 0)
      run = n;
    if (!missing && run != 0) {
      g_autofree char *name = seg_name(run, "seg");
      g_autofree char *last = seg_name(n - 1, "seg");
      g_autofree char *path = g_build_filename(dir, name, NULL);
      if (run == n - 1)
        problem(p, path, "segment %s is missing and no prune removed it (deleted or lost: the "
                "records in it cannot be restored)", name);
      else
        problem(p, path, "segments %s to %s are missing and no prune removed them (deleted or "
                "lost: the records in them cannot be restored)", name, last);
      run = 0;
    }
  }
}

struct _Problems {
  SqlenvfsArchiveProblemFunc fn;
  gpointer user;
  guint n;
  char *first_file;
  char *first_message;
};

static void
problem(Problems *p, const char *file, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;
  va_start(ap, fmt);
  msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  p->n++;
  if (p->first_file == NULL) {
    p->first_file = g_strdup(file);
    p->first_message = g_strdup(msg);
  }
  if (p->fn)
    p->fn(p->user, file, msg);
}

/* Compare the index of segment @number with the records found in it. */
static void
verify_index(const char *dir, guint64 number, GArray *records, gboolean tail_torn, Problems *p)
{
  g_autofree char *iname = seg_name(number, "idx");
  g_autofree char *ipath = g_build_filename(dir, iname, NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  guint n;

  if (!g_file_get_contents(ipath, &data, &len, NULL)) {
    problem(p, ipath, "index file is missing or unreadable (readers scan the segment instead)");
    return;
  }
  if (len < IDX_HEADER_SIZE || !decode_idx_header((const guint8 *)data, number)) {
    problem(p, ipath, "index header is corrupt");
    return;
  }
  n = (guint)((len - IDX_HEADER_SIZE) / IDX_ENTRY_SIZE);
  for (guint i = 0; i < n && i < records->len; i++) {
    SqlenvfsArchiveEntry e;
    const SqlenvfsArchiveEntry *r = &g_array_index(records, SqlenvfsArchiveEntry, i);
    if (!decode_idx_entry((const guint8 *)data + IDX_HEADER_SIZE + i * (gsize)IDX_ENTRY_SIZE,
                          &e)) {
      problem(p, ipath, "index entry %u is corrupt (checksum mismatch)", i + 1);
      return;
    }
    if (!same_header(&e, r) || e.offset != r->offset) {
      problem(p, ipath, "index entry %u does not match record %" G_GUINT64_FORMAT, i + 1, r->seq);
      return;
    }
  }
  if (n > records->len && !tail_torn)
    problem(p, ipath, "index lists %u records but the segment holds %u valid ones", n,
            records->len);
  /* Fewer entries than records: the unindexed tail of a live segment. */
}

/* Version 2: read the compressed COMMIT @e (whose checksum read_record()
 * found right) again and check its blocks; *why says what is wrong, if
 * anything. FALSE only on an I/O error. */
static gboolean
verify_blocks(SegFile *sf, const SqlenvfsArchiveEntry *e, const char **why, GError **error)
{
  g_autofree guint8 *rec = g_try_malloc(e->length);
  gsize got;

  if (rec == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "verify %s: no memory for record %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT
                " bytes)", sf->path, e->seq, e->length);
    return FALSE;
  }
  if (!pread_full(sf->fd, rec, e->length, e->offset, &got, sf->path, error))
    return FALSE;
  if (got < e->length) {
    *why = "is cut short";
  } else {
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    g_assert(dctx != NULL); /* fails only for lack of memory, as g_malloc would */
    *why = check_blocks(e, rec, NULL, dctx);
    ZSTD_freeDCtx(dctx);
  }
  return TRUE;
}

/* The index of the segment being written is synced only when the segment
 * is sealed, and the archiver rewrites it on its next start: after a power
 * cut its unsynced entries may be anything. Its damage is noted, not
 * counted. */
static void
note_live_index(gpointer user, const char *file, const char *message)
{
  (void)user;
  g_debug("archive: %s: %s (the index of the segment being written; the archiver rewrites it "
          "on its next start)", file, message);
}

gboolean
sqlenvfs_archive_verify(const char *dir, SqlenvfsArchiveProblemFunc problem_fn, gpointer user,
                        SqlenvfsArchiveVerifyResult *result, GError **error)
{
  return sqlenvfs_archive_verify_with(dir, NULL, problem_fn, user, result, error);
}

/* Whether segment @sf (header good) may be skipped as @memo knows it: the
 * header agrees with what was found before, and its last record is an
 * intact SEAL carrying the same checksum. TRUE and *facts as known; FALSE
 * and *facts zeroed, for the segment to be read. */
static gboolean
skip_known(const SqlenvfsArchiveVerifyMemo *memo, SegFile *sf, const char *dir, guint64 number,
           SqlenvfsArchiveSegmentFacts *facts, guint8 *chunk)
{
  g_autofree char *iname = seg_name(number, "idx");
  g_autofree char *ipath = g_build_filename(dir, iname, NULL);
  SqlenvfsArchiveEntry e;
  gboolean torn;

  if (memo != NULL && memo->known != NULL && memo->known(memo->user, sf->path, ipath, facts) &&
      facts->size == sf->size && facts->first_seq == sf->hdr.first_seq &&
      facts->prev_crc == sf->hdr.prev_crc && sf->size >= SEG_HEADER_SIZE + REC_EMPTY_SIZE &&
      facts->next_seq > facts->first_seq &&
      read_record(sf, sf->size - REC_EMPTY_SIZE, &e, &torn, NULL, chunk, NULL) &&
      e.type == SQLENVFS_ARCHIVE_SEAL && e.length == REC_EMPTY_SIZE && e.reason == facts->seal &&
      e.seq + 1 == facts->next_seq)
    return TRUE;
  memset(facts, 0, sizeof *facts);
  return FALSE;
}

gboolean
sqlenvfs_archive_verify_with(const char *dir, const SqlenvfsArchiveVerifyMemo *memo,
                             SqlenvfsArchiveProblemFunc problem_fn, gpointer user,
                             SqlenvfsArchiveVerifyResult *result, GError **error)
{
  g_autoptr(GArray) nums = list_segments(dir, error);
  g_autofree guint8 *chunk = NULL;
  SqlenvfsArchiveVerifyResult res = { 0 };
  Problems p = { problem_fn, user, 0, NULL, NULL };
  gboolean have_prev = FALSE, prev_sealed = FALSE;
  guint64 prev_number = 0, prev_next_seq = 0, alive_seq = 0;
  guint32 prev_seal = 0;
  g_autoptr(GHashTable) pruned = NULL;
  gint64 alive_time = 0;
  gboolean has_alive;

  if (nums == NULL)
    return FALSE;
  has_alive = read_alive(dir, &alive_time, &alive_seq);
  pruned = load_prune_log(dir, &p);
  if (nums->len > 0) {
    guint64 first = g_array_index(nums, guint64, 0);
    guint64 before = first - 1;
    const PrunedSegment *ps = g_hash_table_lookup(pruned, &before);
    verify_pruned(dir, pruned, first, &p);
    if (ps != NULL) {
      /* The first segment present chains to the last one pruned. */
      have_prev = prev_sealed = TRUE;
      prev_number = before;
      prev_next_seq = ps->next_seq;
      prev_seal = ps->seal;
    }
  } else if (g_hash_table_size(pruned) > 0) {
    guint64 last = 0;
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, pruned);
    while (g_hash_table_iter_next(&it, &k, NULL))
      last = MAX(last, *(guint64 *)k);
    {
      g_autofree char *name = seg_name(last + 1, "seg");
      g_autofree char *path = g_build_filename(dir, name, NULL);
      problem(&p, path, "segment %s is missing: prune never removes the last segment, so it was "
              "deleted or lost", name);
    }
  }
  chunk = g_malloc(IO_CHUNK);
  for (guint k = 0; k < nums->len; k++) {
    guint64 number = g_array_index(nums, guint64, k);
    gboolean is_last = k + 1 == nums->len;
    g_autoptr(GArray) records = g_array_new(FALSE, FALSE, sizeof(SqlenvfsArchiveEntry));
    SegFile sf;
    guint8 hbuf[SEG_HEADER_SIZE];
    gsize got;
    guint64 off = SEG_HEADER_SIZE, seq;
    guint32 c;
    gboolean sealed = FALSE, tail_torn = FALSE;
    guint n_problems_before = p.n;
    SqlenvfsArchiveSegmentFacts facts = { 0 };

    res.n_segments++;
    if (!seg_file_open(dir, number, O_RDONLY, &sf, error))
      return FALSE;
    res.bytes += sf.size;
    if (!sf.hdr_ok) {
      problem(&p, sf.path, "%s", sf.hdr_why);
      have_prev = FALSE;
      seg_file_close(&sf);
      continue;
    }
    if (have_prev) {
      if (number != prev_number + 1)
        problem(&p, sf.path, "segments %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                " are missing before this one", prev_number + 1, number - 1);
      else if (sf.hdr.first_seq != prev_next_seq)
        problem(&p, sf.path, "starts at record %" G_GUINT64_FORMAT " but the previous segment "
                "ends before record %" G_GUINT64_FORMAT, sf.hdr.first_seq, prev_next_seq);
      else if (prev_sealed && sf.hdr.prev_crc != prev_seal)
        problem(&p, sf.path, "does not chain to the previous segment (its checksum differs)");
    }
    if (skip_known(memo, &sf, dir, number, &facts, chunk)) {
      /* Verified before and unchanged: chain past it as it was found. */
      res.n_skipped++;
      res.n_records += facts.n_records;
      res.n_commits += facts.n_commits;
      res.n_gaps += facts.n_gaps;
      have_prev = prev_sealed = TRUE;
      prev_seal = facts.seal;
      prev_number = number;
      prev_next_seq = facts.next_seq;
      seg_file_close(&sf);
      continue;
    }
    if (!pread_full(sf.fd, hbuf, sizeof hbuf, 0, &got, sf.path, error)) {
      seg_file_close(&sf);
      return FALSE;
    }
    c = crc(0, hbuf, sizeof hbuf);
    seq = sf.hdr.first_seq;
    while (off < sf.size) {
      SqlenvfsArchiveEntry e;
      gboolean torn;
      guint32 before = c;
      g_autoptr(GError) local = NULL;
      if (!read_record(&sf, off, &e, &torn, &c, chunk, &local)) {
        if (local) {
          g_propagate_error(error, g_steal_pointer(&local));
          seg_file_close(&sf);
          return FALSE;
        }
        if (sealed)
          problem(&p, sf.path, "%" G_GUINT64_FORMAT " bytes of data after the seal",
                  sf.size - off);
        else if (is_last && (torn || !has_alive || seq >= alive_seq) && (tail_torn = TRUE))
          /* Cut short, or past what the alive file says was synced: the
           * unsynced tail that a crash of the machine left half-written. */
          g_debug("archive %s: %s ends with an unfinished record (discarded by the archiver "
                  "on its next start)", dir, sf.path);
        else
          problem(&p, sf.path, "record %" G_GUINT64_FORMAT " at offset %" G_GUINT64_FORMAT
                  " is corrupt (%s)", seq, off,
                  torn ? "cut short" : "checksum mismatch");
        break;
      }
      if (sealed) {
        problem(&p, sf.path, "records after the seal");
        break;
      }
      if (e.seq != seq) {
        problem(&p, sf.path, "record at offset %" G_GUINT64_FORMAT " has number %"
                G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT, off, e.seq, seq);
        break;
      }
      if (e.type == SQLENVFS_ARCHIVE_COMMIT && (e.flags & SQLENVFS_ARCHIVE_BATCHED)) {
        /* Its pages are in the batch's first record, earlier in this
         * segment (checked itself as a compressed record). */
        const SqlenvfsArchiveEntry *h =
          e.reason <= records->len
            ? &g_array_index(records, SqlenvfsArchiveEntry, records->len - e.reason)
            : NULL;
        if (h == NULL || h->type != SQLENVFS_ARCHIVE_COMMIT ||
            !(h->flags & SQLENVFS_ARCHIVE_COMPRESSED) ||
            (guint64)e.text_len + e.n_pages > stream_pages(h))
          problem(&p, sf.path, "record %" G_GUINT64_FORMAT " at offset %" G_GUINT64_FORMAT
                  " belongs to a batch whose first record is missing or does not hold its "
                  "pages", seq, off);
      }
      if (e.type == SQLENVFS_ARCHIVE_COMMIT && (e.flags & SQLENVFS_ARCHIVE_COMPRESSED)) {
        const char *why = NULL;
        if (!verify_blocks(&sf, &e, &why, error)) {
          seg_file_close(&sf);
          return FALSE;
        }
        if (why != NULL)
          problem(&p, sf.path, "record %" G_GUINT64_FORMAT " at offset %" G_GUINT64_FORMAT
                  " %s", seq, off, why);
      }
      if (e.type == SQLENVFS_ARCHIVE_SEAL) {
        if (e.reason != before)
          problem(&p, sf.path, "segment checksum mismatch (the seal does not match the data)");
        sealed = TRUE;
        prev_seal = e.reason;
      }
      g_array_append_val(records, e);
      facts.n_records++;
      if (e.type == SQLENVFS_ARCHIVE_COMMIT)
        facts.n_commits++;
      if (e.type == SQLENVFS_ARCHIVE_GAP)
        facts.n_gaps++;
      off += e.length;
      seq++;
    }
    res.n_records += facts.n_records;
    res.n_commits += facts.n_commits;
    res.n_gaps += facts.n_gaps;
    if (!sealed && !is_last)
      problem(&p, sf.path, "segment is not sealed but a later one exists");
    if (is_last && !sealed) {
      Problems live = { note_live_index, NULL, 0, NULL, NULL };
      verify_index(dir, number, records, tail_torn, &live);
      g_free(live.first_file);
      g_free(live.first_message);
    } else {
      verify_index(dir, number, records, tail_torn, &p);
    }
    if (sealed && p.n == n_problems_before && memo != NULL && memo->verified != NULL) {
      g_autofree char *iname = seg_name(number, "idx");
      g_autofree char *ipath = g_build_filename(dir, iname, NULL);
      facts.size = sf.size;
      facts.first_seq = sf.hdr.first_seq;
      facts.prev_crc = sf.hdr.prev_crc;
      facts.seal = prev_seal;
      facts.next_seq = seq;
      memo->verified(memo->user, sf.path, ipath, &facts);
    }
    have_prev = TRUE;
    prev_sealed = sealed;
    prev_number = number;
    prev_next_seq = seq;
    seg_file_close(&sf);
  }
  res.n_problems = p.n;
  if (result)
    *result = res;
  if (p.n > 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "archive %s: %s: %s%s", dir, p.first_file, p.first_message,
                p.n > 1 ? " (and more problems)" : "");
    g_free(p.first_file);
    g_free(p.first_message);
    return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Pruning                                                              */

/* Append @text to PRUNED and make it durable (invariant 7); the file is
 * created with the mode of @like (a segment), never wider. */
static gboolean
append_prune_log(const char *dir, const char *like, const char *text, GError **error)
{
  g_autofree char *path = g_build_filename(dir, PRUNE_LOG, NULL);
  gboolean created = !g_file_test(path, G_FILE_TEST_EXISTS);
  struct stat st;
  int fd;

  errno = 0;
  if (stat(like, &st) != 0)
    return sqlenvfs_error_errno(error, errno, "prune: stat", like);
  fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, st.st_mode & 0666);
  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "prune: open the prune log", path);
  /* A line an earlier run did not finish (a crash, a full disk) removed
   * nothing: cut it off, so that it never reads as a damaged line. */
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    g_autofree char *old = NULL;
    gsize len = 0;
    if (g_file_get_contents(path, &old, &len, NULL) && len > 0 && old[len - 1] != '\n') {
      const char *nl = g_strrstr_len(old, (gssize)len, "\n");
      off_t keep = nl ? (off_t)(nl - old + 1) : 0;
      if (ftruncate(fd, keep) != 0) {
        int e = errno;
        close(fd);
        return sqlenvfs_error_errno(error, e, "prune: repair the prune log", path);
      }
      st.st_size = keep;
    }
  }
  /* One write: concurrent appenders never interleave within it. */
  if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
    int e = errno ? errno : EIO;
    if (ftruncate(fd, st.st_size) != 0)
      g_warning("prune: cut off a failed append to %s: %s", path, g_strerror(errno));
    close(fd);
    return sqlenvfs_error_errno(error, e, "prune: write the prune log", path);
  }
  if (fdatasync(fd) != 0) {
    int e = errno;
    close(fd);
    return sqlenvfs_error_errno(error, e, "prune: sync the prune log", path);
  }
  close(fd);
  return !created || sqlenvfs_fsync_dir(dir, error);
}

int
sqlenvfs_archive_prune(const char *dir, guint64 keep_from_seq, gboolean dry_run,
                       GPtrArray *removed, GError **error)
{
  g_autoptr(GArray) nums = list_segments(dir, error);
  g_autoptr(GString) log = g_string_new(NULL);
  gint64 now = g_get_real_time();
  guint n = 0;

  if (nums == NULL)
    return -1;
  /* Which segments go: those whose next segment starts at or before
   * @keep_from_seq (its first record tells where this one ends). */
  for (guint k = 0; k + 1 < nums->len; k++) {
    SegFile cur, next;
    gboolean ok;
    if (!seg_file_open(dir, g_array_index(nums, guint64, k + 1), O_RDONLY, &next, error))
      return -1;
    if (!seg_file_open(dir, g_array_index(nums, guint64, k), O_RDONLY, &cur, error)) {
      seg_file_close(&next);
      return -1;
    }
    ok = next.hdr_ok && next.hdr.first_seq <= keep_from_seq;
    if (ok) {
      g_autofree char *line =
        prune_line(g_array_index(nums, guint64, k), cur.hdr_ok ? cur.hdr.first_seq : 0,
                   next.hdr.first_seq, next.hdr.prev_crc, now);
      g_string_append(log, line);
    }
    seg_file_close(&cur);
    seg_file_close(&next);
    if (!ok)
      break;
    n++;
  }
  if (n > 0 && !dry_run) {
    g_autofree char *first = seg_name(g_array_index(nums, guint64, 0), "seg");
    g_autofree char *like = g_build_filename(dir, first, NULL);
    if (!append_prune_log(dir, like, log->str, error))
      return -1;
  }
  for (guint k = 0; k < n; k++) {
    guint64 number = g_array_index(nums, guint64, k);
    g_autofree char *sname = seg_name(number, "seg");
    g_autofree char *iname = seg_name(number, "idx");
    g_autofree char *spath = g_build_filename(dir, sname, NULL);
    g_autofree char *ipath = g_build_filename(dir, iname, NULL);
    if (!dry_run) {
      if (unlink(spath) != 0) {
        sqlenvfs_error_errno(error, errno, "remove archive segment", spath);
        return -1;
      }
      unlink(ipath);
    }
    if (removed)
      g_ptr_array_add(removed, g_strdup(spath));
  }
  if (n > 0 && !dry_run && !sqlenvfs_fsync_dir(dir, error))
    return -1;
  return (int)n;
}
