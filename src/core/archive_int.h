/*
 * archive_int.h — what the files of the archive module share: the byte
 * sizes and magics of the format (its layout: archive_format.c and
 * docs/ARCHIVE.md), encoding helpers, and the functions that read and write
 * the format's pieces. Private to src/core/archive_*.c.
 *
 *   archive_format.c   byte layout: headers, records, index entries, names,
 *                      shared file helpers
 *   archive_writer.c   appending records, recovery at open, sealing
 *   archive_reader.c   open/refresh, reading records, record sources,
 *                      check_records, sparse reading
 *   archive_verify.c   verify, prune and the prune log
 *   archive_summary.c  segment summaries: built at seal, parsed, searched
 *   archive_compose.c  composing a state on an image (page maps or records)
 */
#pragma once

#include <sys/stat.h>

#include <glib.h>
#include <zstd.h>

#include "sqlenvfs/archive.h"
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

static inline guint32
crc(guint32 c, const void *data, gsize len)
{
  return sqlenvfs_crc32(c, data, len);
}

typedef struct {
  guint64 number, first_seq;
  gint64 created;
  guint32 prev_crc;
  guint32 version;
  /* The digest of the previous segment's records (its SEAL's), when the
   * header names it (segments begun after a SEAL that carries one). */
  gboolean has_prev_digest;
  guint32 prev_digest;
} SegHeader;

/* A SEAL record's flag: header bytes 88..91 hold the digest of the
 * segment's records before it (archive_digest_fold). */
#define SEAL_HAS_DIGEST 0x1

/* What a pass over a segment sums, from its header on (archive_read_record):
 * @crc, the crc32 of every byte, which its SEAL carries (it depends on the
 * records' lengths only: a crc32 over bytes followed by their own crc32
 * always comes to the same value, and each record's header and each record
 * end so); and @digest, a crc32 over the segment header's bytes, then each
 * record's header checksum and checksum (its trailer's), which depends on
 * every byte of every record (the header's checksum on the header's bytes,
 * the record's on its body's, for the same reason). */
typedef struct {
  guint32 crc, digest;
} ArchiveSegSums;

static inline void
archive_sums_start(ArchiveSegSums *s, const guint8 *seg_header)
{
  s->crc = s->digest = crc(0, seg_header, SEG_HEADER_SIZE);
}

/* @digest with one more record folded in: its header's checksum @head_crc
 * (header bytes 92..95) and its own @rec_crc (its trailer's). */
static inline guint32
archive_digest_fold(guint32 digest, guint32 head_crc, guint32 rec_crc)
{
  guint8 b[8];
  put32(b, head_crc);
  put32(b + 4, rec_crc);
  return crc(digest, b, sizeof b);
}

typedef struct {
  int fd;
  char *path;
  guint64 size;
  struct stat st;     /* of the file when it was opened */
  SegHeader hdr;
  gboolean hdr_ok;
  const char *hdr_why;
  guint8 *win;        /* archive_seg_file_buffer: bytes of the file held */
  gboolean win_lent;  /* @win is the caller's (archive_seg_file_buffer_with) */
  guint64 win_start;  /* the file offset of win[0]                      */
  gsize win_len;
} SegFile;

guint64 archive_commit_length(guint32 n_pages, guint32 page_size);
gboolean archive_compressed_length_ok(const SqlenvfsArchiveEntry *e);
gboolean archive_decode_header(const guint8 *p, SqlenvfsArchiveEntry *e);
gboolean archive_decode_idx_entry(const guint8 *p, SqlenvfsArchiveEntry *e);
gboolean archive_decode_idx_header(const guint8 *p, guint64 number);
void archive_encode_header(const SqlenvfsArchiveEntry *e, guint8 *p);
void archive_encode_idx_entry(const SqlenvfsArchiveEntry *e, guint8 *p);
void archive_encode_idx_header(guint8 *p, guint64 number, guint32 version);
void archive_encode_seg_header(guint8 *p, const SegHeader *h);
gboolean archive_known_version(guint32 v);
GArray *archive_list_segments(const char *dir, GError **error);
guint32 archive_n_blocks(guint32 n_pages, guint32 page_size);
guint32 archive_pages_per_block(guint32 page_size);
/* Whether @path is filled on demand by the fetch hook (archive.h). */
gboolean archive_is_fetched(const char *path);
/* Whether the archive directory @dir is a replica's copy assembled by a
 * remote reader of this process (its alive may run ahead of its parts). */
gboolean archive_holes_trusted(const char *dir);
gboolean archive_pread_full(int fd, void *buf, gsize len, guint64 off, gsize *got, const char *path, GError **error);
gboolean archive_pwrite_full(int fd, const void *buf, gsize len, guint64 off, const char *path, GError **error);
gboolean archive_read_alive(const char *dir, gint64 *time, guint64 *next_seq);
void archive_seg_file_buffer(SegFile *sf);
void archive_seg_file_buffer_with(SegFile *sf, guint8 **win, gsize *cap);
gboolean archive_seg_map(SegFile *sf, guint64 off, gsize len, const guint8 **p, GError **error);
gboolean archive_seg_pread(SegFile *sf, void *buf, gsize len, guint64 off, gsize *got, GError **error);
/* Tell this process's record checks (sqlenvfs_archive_check_records) that
 * every record of the segment @path, as @st identifies it (taken before it
 * was read), was checked whole and found good up to @upto: verify read it
 * completely without a problem (archive_reader.c). */
struct stat;
void archive_note_checked(const char *path, const struct stat *st, guint64 upto);
/* The archive writer of this process appended records to the segment
 * @path, which was @from bytes long at its previous note (0: it created
 * the segment) and is now as @st identifies it, every record complete: the
 * bytes it wrote need not be read back to be checked in this process. The
 * memo is extended only where it already holds everything before @from
 * (archive_reader.c). */
void archive_note_written(const char *path, const struct stat *st, guint64 from);
/* Give back what the record source's lists hold beyond their entries, once
 * every page it will read is registered (a compose, at its end). */
void archive_record_source_trim(SqlenvfsArchiveRecordSource *src);
/* The segment file @src reads (open while it lives), opened and checked
 * against its summary at the first call for a source of a segment whose
 * file was not opened yet (archive_seg_check()): -1 and *error (INTEGRITY
 * naming the file when it does not match) otherwise. */
int archive_record_source_fd(SqlenvfsArchiveRecordSource *src, GError **error);
/* Bytes of @src's segment (open: archive_record_source_fd() first) through
 * this thread's read-ahead window, as the source reads its own. */
gboolean archive_record_source_pread(SqlenvfsArchiveRecordSource *src, void *buf, gsize len,
                                     guint64 off, gsize *got, GError **error);
/* The page registered at @ref is, by a page map, page @pgno of the page
 * list entry at byte @list_off of the segment: checked by its first read,
 * which fails (INTEGRITY) when the page list names another page. */
void archive_record_source_expect(SqlenvfsArchiveRecordSource *src, goffset ref,
                                  guint64 list_off, guint32 pgno);
gboolean archive_read_record(SegFile *sf, guint64 off, SqlenvfsArchiveEntry *e, gboolean *torn,
                             ArchiveSegSums *sums, guint8 *chunk, GError **error);
gboolean archive_same_header(const SqlenvfsArchiveEntry *a, const SqlenvfsArchiveEntry *b);
void archive_seg_file_close(SegFile *sf);
gboolean archive_seg_file_open(const char *dir, guint64 number, int flags, SegFile *sf, GError **error);
/* The same, the file opened by name in @dfd, an open descriptor of @dir
 * (-1: by path); sf->path is still the whole path. */
gboolean archive_seg_file_openat(int dfd, const char *dir, guint64 number, int flags, SegFile *sf,
                                 GError **error);
char *archive_seg_name(guint64 number, const char *ext);
guint32 archive_stream_pages(const SqlenvfsArchiveEntry *e);
gboolean archive_corrupt(GError **error, const char *path, const SqlenvfsArchiveEntry *e, const char *why);
/* One block of page images as stored (a version 2 record's, a .last
 * file's): @stored bytes at @src, @raw bytes of pages decoded, @want_crc
 * the crc32 its table gives. Checked (its length, its crc32) and decoded
 * into @dst (raw bytes; a stored block is copied, unless @dst is NULL),
 * a zstd frame to exactly @raw bytes. NULL, or what is wrong ("has ..."). */
/* Whether the block of @stored bytes at @src, @raw bytes of pages decoded,
 * is stored as it is (@stored == @raw) or a zstd frame that declares
 * exactly @raw bytes of content and ends exactly at @stored, checked
 * without decompressing it (its crc32 is the caller's). */
gboolean archive_block_frame_ok(const guint8 *src, gsize stored, gsize raw);
const char *archive_decode_block(const guint8 *src, gsize stored, gsize raw, guint32 want_crc,
                                 guint8 *dst, ZSTD_DCtx *dctx);
const char *archive_check_blocks(const SqlenvfsArchiveEntry *e, const guint8 *rec, guint8 *dst, ZSTD_DCtx *dctx);
/* The blocks of the compressed COMMIT @rec (@e, its checksum found right)
 * by their checksums and zstd frame headers, not decompressed. */
const char *archive_check_block_frames(const SqlenvfsArchiveEntry *e, const guint8 *rec);
void archive_record_walk_begin(SqlenvfsArchive *a, guint si, guint64 lo, guint64 hi);
void archive_record_walk_end(SqlenvfsArchive *a);
gboolean archive_decode_seg_header(const guint8 *p, SegHeader *h, const char **why);
/* Whether @name is "<16 digits>.<ext>" (a segment's file of kind @ext:
 * "seg", "idx", "sum", "last"), and its number (> 0) in *number. */
gboolean archive_parse_seg_name(const char *name, const char *ext, guint64 *number);
gint archive_cmp_u64(gconstpointer a, gconstpointer b);

/* Segment summaries (archive_summary.c; layout there and in docs/ARCHIVE.md). */
#define ARCHIVE_SUM_MAGIC "SQEFSSUM"
#define ARCHIVE_SUM_VERSION 2        /* what the writer writes                    */
#define ARCHIVE_SUM_HEADER_SIZE 128  /* version 1's header                        */
#define ARCHIVE_SUM_HEADER_SIZE_V2 160
#define ARCHIVE_SUM_HEADER_MAX 160   /* the largest header of a known version     */
#define ARCHIVE_SUM_GEN_SIZE 40
#define ARCHIVE_SUM_PAGE_SIZE 8
#define ARCHIVE_SUM_VERSION_SIZE 24
#define ARCHIVE_SUM_SIZE_SIZE 16
#define ARCHIVE_SUM_PAGE_CRCS 0x1 /* page versions carry the crc32 of their image */

/* A summary's header, and where its sections start in the file. */
typedef struct {
  guint32 version, header_size; /* the summary's own version (1 or 2)           */
  guint64 number, seg_size;
  guint32 seal_crc, seg_version;
  guint64 first_seq, last_seq;
  gint64 first_time, last_time;
  guint64 n_records, n_commits, commit_bytes;
  guint32 n_marks, n_gens, n_pages, n_versions;
  guint32 flags, last_db_pages, n_sizes;
  /* Version 2: the crc32 of each part (covered by the head checksum). */
  guint32 sizes_crc, pages_crc, last_crc, versions_crc;
  guint64 marks_off, gens_off, sizes_off, pages_off;
  guint64 last_off;     /* version 2: the last version of each page       */
  guint64 versions_off;
  guint64 file_len;     /* what the counts make the file's length          */
} ArchiveSummary;

/* One version of a page in a page map. */
typedef struct {
  guint64 seq;    /* the COMMIT that wrote it                                */
  guint64 offset; /* the record holding its image (a batch's first record)   */
  guint32 index;  /* among that record's page stream                         */
  guint32 crc;    /* crc32 of the image (ARCHIVE_SUM_PAGE_CRCS), else 0      */
} ArchiveSumVersion;

typedef enum {
  ARCHIVE_SUM_GOOD,    /* checksum right, sections consistent, matches the segment */
  ARCHIVE_SUM_MISSING, /* no summary file                                         */
  ARCHIVE_SUM_BAD,     /* present but not usable (*why says why)                  */
  ARCHIVE_SUM_ERROR,   /* an I/O error (*error)                                   */
} ArchiveSumLoad;

/* Build the summary of the sealed segment @number of @dir from its records
 * (each read and checked whole; the seal checked against them), in the
 * summary version the writer writes. NULL and INTEGRITY when the segment
 * is not sealed or not readable to its end. */
GByteArray *archive_summary_build(const char *dir, guint64 number, GError **error);
/* As archive_summary_build, in summary version @version (1 or 2): verify
 * rebuilds a summary in its own version. */
GByteArray *archive_summary_build_version(const char *dir, guint64 number, guint32 version,
                                          GError **error);
/* A summary built record by record, as a pass over a sealed segment
 * reads them (archive_summary_build's, verify's): new() for the segment
 * @sf (header good); add() each record found valid, in order, while its
 * bytes are still in @sf's window (its page numbers, and a version 1
 * segment's page images, are read from there, else read again with
 * @chunk, IO_CHUNK bytes); fail() when the pass finds what makes no
 * summary; finish() gives the summary's bytes in summary version @version
 * (1 or 2), exactly archive_summary_build_version's, or NULL and the error
 * it gives (the first record that makes no summary, or not sealed). */
typedef struct _ArchiveSumBuilder ArchiveSumBuilder;
ArchiveSumBuilder *archive_sum_builder_new(const SegFile *sf);
void archive_sum_builder_add(ArchiveSumBuilder *b, SegFile *sf, const SqlenvfsArchiveEntry *e,
                             guint8 *chunk);
void archive_sum_builder_fail(ArchiveSumBuilder *b, const char *why);
GByteArray *archive_sum_builder_finish(ArchiveSumBuilder *b, const char *dir, guint64 number,
                                       guint64 size, guint32 version, GError **error);
void archive_sum_builder_free(ArchiveSumBuilder *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ArchiveSumBuilder, archive_sum_builder_free)
/* Build it and write it as <number>.sum atomically with permission bits
 * @mode. */
gboolean archive_summary_write(const char *dir, guint64 number, int mode, GError **error);
char *archive_summary_path(const char *dir, guint64 number);
/* The header of the summary starting at @p (@file_len bytes in all; @p
 * holds at least MIN(@file_len, ARCHIVE_SUM_HEADER_MAX) bytes): FALSE and
 * *why when it is not a summary or does not hold together. */
gboolean archive_summary_parse_header(const guint8 *p, gsize file_len, ArchiveSummary *s,
                                      const char **why);
/* The whole summary @p (@len bytes), either version: its header, its
 * checksums, and its sections checked against each other (in order,
 * inside the segment). */
gboolean archive_summary_parse(const guint8 *p, gsize len, ArchiveSummary *s, const char **why);
/* Set every checksum of the summary @p (@len bytes) whose header counts
 * agree with @len: the parts' (version 2), the head's, the trailer
 * (version 1). FALSE, nothing changed, when they do not agree. */
gboolean archive_summary_seal(guint8 *p, gsize len);
/* Read and parse <number>.sum of @dir whole and check that it matches the
 * segment (@seg_size, @seal_crc). GOOD: *s set, and *data (when not NULL)
 * the whole file (g_free). */
ArchiveSumLoad archive_summary_load(const char *dir, guint64 number, guint64 seg_size,
                                    guint32 seal_crc, ArchiveSummary *s, guint8 **data,
                                    const char **why, GError **error);
/* The head checksum (header offset 120) of the summary @p whose header,
 * marks and generations take @head_len bytes (its version and header size
 * read from @p). */
guint32 archive_summary_head_crc(const guint8 *p, gsize head_len);
/* Check the marks and generations of @s (at @p, the start of the summary;
 * the page map need not be there), in order and inside the segment. */
gboolean archive_summary_check_head(const guint8 *p, const ArchiveSummary *s, const char **why);
/* Check the size changes and the page map of @s (@p: the whole summary). */
gboolean archive_summary_check_page_map(const guint8 *p, const ArchiveSummary *s,
                                        const char **why);
/* As archive_summary_load, reading only the header, marks and generations
 * (checked with the head checksum); *head holds them (g_free). With
 * @seg_size 0 (this and open_parts), only the segment number is matched:
 * the caller did not open the segment and checks it against *s later
 * (archive_seg_check()). */
ArchiveSumLoad archive_summary_load_head(const char *dir, guint64 number, guint64 seg_size,
                                         guint32 seal_crc, ArchiveSummary *s, guint8 **head,
                                         const char **why, GError **error);
/* The same, <number>.sum opened by name in @dfd, an open descriptor of
 * @dir (-1: by path). */
ArchiveSumLoad archive_summary_load_head_at(int dfd, const char *dir, guint64 number,
                                            guint64 seg_size, guint32 seal_crc, ArchiveSummary *s,
                                            guint8 **head, const char **why, GError **error);

/* A summary read part by part (version 2; a version 1 summary is read and
 * checked whole when opened, all its parts then there but @last). Each
 * pointer is NULL until its part is read and checked (its crc32, its
 * order, inside the segment); they point into buffers owned here. */
typedef struct {
  ArchiveSummary s;
  int fd;            /* -1 once closed, or for a version 1 summary       */
  char *path;
  guint8 *head;      /* header, marks and generations (s.sizes_off bytes) */
  guint8 *whole;     /* version 1: the whole file                          */
  guint8 *buf_sizes, *buf_pages, *buf_versions; /* version 2: what was read */
  const guint8 *sizes;    /* s.n_sizes x ARCHIVE_SUM_SIZE_SIZE              */
  const guint8 *pages;    /* s.n_pages x ARCHIVE_SUM_PAGE_SIZE              */
  const guint8 *last;     /* s.n_pages x ARCHIVE_SUM_VERSION_SIZE (v2 only) */
  const guint8 *versions; /* s.n_versions x ARCHIVE_SUM_VERSION_SIZE        */
} ArchiveSumParts;

typedef enum {
  ARCHIVE_SUM_PART_SIZES,    /* the size changes                             */
  ARCHIVE_SUM_PART_PAGES,    /* the page table and the last version of each  */
  ARCHIVE_SUM_PART_VERSIONS, /* every version (needs PAGES read first)       */
} ArchiveSumPart;

/* Open <number>.sum of @dir: its header, marks and generations read and
 * checked (the head checksum; in order; matching the segment: @seg_size,
 * @seal_crc). GOOD: *sp set (archive_summary_parts_clear() it); otherwise
 * *sp holds nothing. */
ArchiveSumLoad archive_summary_open_parts(const char *dir, guint64 number, guint64 seg_size,
                                          guint32 seal_crc, ArchiveSumParts *sp,
                                          const char **why, GError **error);
ArchiveSumLoad archive_summary_open_parts_at(int dfd, const char *dir, guint64 number,
                                             guint64 seg_size, guint32 seal_crc,
                                             ArchiveSumParts *sp, const char **why,
                                             GError **error);
/* Read and check @part of the opened summary @sp (nothing to do when it is
 * there). BAD: *why; the part stays NULL. */
ArchiveSumLoad archive_summary_read_part(ArchiveSumParts *sp, ArchiveSumPart part,
                                         const char **why, GError **error);
void archive_summary_parts_clear(ArchiveSumParts *sp);
/* The last version with seq <= @max_seq of the @i-th page of the page
 * table of @sp (PAGES read; VERSIONS read too unless the last version of
 * that page is at or before @max_seq): FALSE when it has none. */
gboolean archive_summary_parts_version(const ArchiveSumParts *sp, guint32 i, guint64 max_seq,
                                       ArchiveSumVersion *out);
/* The last version of each page of a sealed segment, stored apart
 * (archive_last.c; layout in docs/ARCHIVE.md, "Last versions"). */
#define ARCHIVE_LAST_MAGIC "SQEFSLST"
#define ARCHIVE_LAST_VERSION 3
#define ARCHIVE_LAST_HEADER_SIZE 96
#define ARCHIVE_LAST_MIN_VERSIONS 4          /* versions per page, on average   */
#define ARCHIVE_LAST_MAX_BYTES (8u << 20)    /* of last versions, uncompressed  */

typedef struct {
  guint64 number, seg_size, last_seq;
  guint32 seal_crc, page_size, n_pages, pages_crc, last_crc, n_blocks;
  /* The checksums of the segment's header and of its SEAL record's header,
   * which cover its creation time, the seal's time and the digest of its
   * records: they bind the file to this segment, not to any of the same
   * layout. */
  guint32 seg_head_crc, seal_head_crc;
  gsize table_len;  /* n_blocks * BLOCK_ENTRY_SIZE                          */
  guint64 file_len; /* set by archive_last_parse_table                       */
} ArchiveLastHeader;

char *archive_last_path(const char *dir, guint64 number);
/* What archive_last_parse_fixed says of a file of a version before 3,
 * which binds to its segment's layout and creation time only: not used,
 * and written again by the archiver (not damage). */
extern const char archive_last_why_old[];
/* The checksums that bind a .last file to the sealed segment open at @fd
 * (@path, @size bytes): its header's and its SEAL record header's
 * (ArchiveLastHeader). FALSE and *why when the segment does not end in a
 * SEAL record, or *error on an I/O error. */
gboolean archive_last_seg_binding(int fd, const char *path, guint64 size, guint32 *head_crc,
                                  guint32 *seal_head_crc, const char **why, GError **error);
/* The same for the segment file @path, opened here, which must be @size
 * bytes long (else FALSE and *why). */
gboolean archive_last_seg_binding_at(const char *path, guint64 size, guint32 *head_crc,
                                     guint32 *seal_head_crc, const char **why, GError **error);
/* Whether the segment @s summarizes gets a .last file. */
gboolean archive_last_worth(const ArchiveSummary *s);
/* The fixed header at @p (@avail bytes there): FALSE and *why when it is
 * not one or does not hold together. */
gboolean archive_last_parse_fixed(const guint8 *p, gsize avail, ArchiveLastHeader *h,
                                  const char **why);
/* With the header and block table at @p (h->table_len bytes after the
 * header): their checksum, the table, and the file's length @file_len. */
gboolean archive_last_parse_table(const guint8 *p, guint64 file_len, ArchiveLastHeader *h,
                                  const char **why);
/* The whole file @p (@len bytes) checked: header, table, every block
 * (its checksum; decompressed to exactly its pages with @decompress or
 * @pages, else its zstd frame header); the pages go to @pages (n_pages *
 * page_size bytes) when it is not NULL. NULL when all is right, else why
 * not. */
const char *archive_last_check_bytes(const guint8 *p, gsize len, ArchiveLastHeader *h,
                                     gboolean decompress, guint8 *pages);
/* The last version of each page of the sealed segment @number, gathered
 * from its records through its version 2 summary @sum (@sum_len bytes,
 * just built): *s its summary, *pages (g_free) n_pages images of
 * *page_size bytes in page table order. REFUSED when they would be more
 * than ARCHIVE_LAST_MAX_BYTES (no file is written for such a segment). */
gboolean archive_last_images(const char *dir, guint64 number, const guint8 *sum, gsize sum_len,
                             ArchiveSummary *s, guint8 **pages, guint32 *page_size,
                             guint32 bind[2], GError **error);
/* The bytes of a .last file holding @pages (n_pages images of @ps bytes,
 * in page table order) for the segment and summary @s. */
GByteArray *archive_last_encode(const ArchiveSummary *s, const guint32 bind[2],
                                const guint8 *pages, guint32 ps);
/* The bytes of <number>.last; and writing them atomically (@mode), a failure
 * logged (a warning; at debug level for a segment too large for one, which
 * gets none by design): the file only saves readers work. */
GByteArray *archive_last_build(const char *dir, guint64 number, const guint8 *sum,
                               gsize sum_len, GError **error);
void archive_last_write(const char *dir, guint64 number, const guint8 *sum, gsize sum_len,
                        int mode);
/* A .last file opened for reading pages: its header and table checked and
 * matched against @want (every field but n_blocks, table_len, file_len);
 * NULL and *why when it is not usable, or *error on an I/O error. One
 * thread at a time. */
typedef struct _ArchiveLastReader ArchiveLastReader;
ArchiveLastReader *archive_last_reader_open(const char *path, const ArchiveLastHeader *want,
                                            const char **why, GError **error);
/* Page @slot of the page table (page_size bytes, valid until the next
 * call on this thread): its block read and checked, into the thread's
 * scratch (a reader keeps only its file and table); NULL and *why or
 * *error. */
const guint8 *archive_last_reader_page(ArchiveLastReader *r, guint32 slot, const char **why,
                                       GError **error);
void archive_last_reader_free(ArchiveLastReader *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ArchiveLastReader, archive_last_reader_free)

/* The checksum the SEAL record ending the segment file @path (@size bytes)
 * carries; FALSE when it does not end with a valid SEAL record. */
gboolean archive_read_seal(const char *path, guint64 size, guint32 *seal);
/* The same, on the segment already open on @fd. */
gboolean archive_read_seal_fd(int fd, const char *path, guint64 size, guint32 *seal);
/* The same, the whole SEAL record's header in *@e, and the checksum that
 * header carries (its bytes 92..95) in *@head_crc when it is not NULL;
 * FALSE with *@error set when the read failed. */
gboolean archive_read_seal_entry_fd(int fd, const char *path, guint64 size,
                                    SqlenvfsArchiveEntry *e, guint32 *head_crc, GError **error);
/* In the parsed summary @p (the whole file, either version), the last
 * version of page @pgno with seq <= @max_seq (binary searches); FALSE when
 * the segment has none. */
gboolean archive_summary_page_version(const guint8 *p, const ArchiveSummary *s, guint32 pgno,
                                      guint64 max_seq, ArchiveSumVersion *out);

/* The reader (archive_reader.c; composition in archive_compose.c). */
struct _SqlenvfsArchive {
  char *dir;
  int dfd;          /* @dir, open (O_PATH) for opening its files by name; -1: by path */
  gboolean just_listed; /* opened, not refreshed yet: its listing is fresh */
  GArray *segments; /* SqlenvfsArchiveSegment                        */
  GArray *fds;      /* int per segment, -1 until read_commit needs it */
  GArray *entries;  /* SqlenvfsArchiveEntry                          */
  guint64 next_offset; /* where the last segment's next record starts */
  gint64 alive_file;
  guint64 alive_seq;
  gboolean has_alive;
  /* The last segment lacks records the alive file vouches for (load_segment):
   * a refresh loads the archive again whole, as the next archiver start
   * repairs the segment; the record it was last said of (said once). */
  gboolean tail_lost;
  guint64 tail_lost_said;
  ZSTD_DCtx *dctx;     /* for compressed records; created when first needed */
  /* The batch first record read_member() last checked whole: segment + 1
   * (0: none) and offset; its other commits need not read it again. */
  guint checked_batch_seg;
  guint64 checked_batch_off;
  /* While a walk over the records of a range is on (the record path of
   * composing: archive_record_walk_begin/end), the records within bytes
   * [@rwalk_lo, @rwalk_hi) of segment @rwalk_seg are read whole through a
   * window, refilled going the walk's way, and their blocks checked by
   * their checksums and frame headers only: the pages an image keeps are
   * decompressed, and checked, when it reads them. */
  gboolean rwalk;
  guint rwalk_seg;
  guint64 rwalk_lo, rwalk_hi;
  guint8 *rwin;
  gsize rwin_cap, rwin_len, rwin_grow;
  guint64 rwin_off;
  /* The last segment's index had an entry that does not follow from the
   * ones before it; a refresh scans the segment instead, as open did. */
  gboolean is_last_index_bad;
  /* Sparse reading: per segment (ArchiveSegSum), where its entries are in
   * @entries, or, for a sealed segment with a good summary, the summary's
   * small parts instead (its entries are read from its index when a
   * question needs them, into @cache). Any use of the global entry list
   * (n_entries, entry, find_time) loads everything first,
   * without summaries (@no_sums). */
  GArray *segsum;
  guint n_summarized;
  gboolean no_sums;
  SqlenvfsArchiveEntry sum_last; /* the SEAL of the last summarized segment */
  gboolean has_sum_last;
  guint cache_si;                /* segment held in @cache (G_MAXUINT: none) */
  GArray *cache;
  GArray *marks;                 /* ArchiveMark, built when first asked      */
  gboolean is_checked;           /* check_records ran: its damage applies    */
  /* The sparse calls read a summarized segment's index entries one by one
   * (pread of the entries they need); FALSE (tests): through @cache. */
  gboolean is_sparse;
  guint n_view_loads;              /* summarized segments loaded whole (tests) */
  guint n_idx_open;                /* indexes open for reading entry by entry */
  guint idx_open_max;              /* at most (16; tests: fewer)               */
  SqlenvfsArchiveEntry batch_head; /* what batch_first() last returned        */
  /* Numbers of segments whose summaries are not used (guint64; owned,
   * NULL: none): a restore composing again after such a segment was found
   * not to match its summary (archive_open_except()). */
  GArray *no_sum_of;
  /* Set by a restore that writes a temporary output (not owned, NULL
   * otherwise): composing checks the page versions chosen from page maps
   * as their images are first read, not before (archive_compose.c), and
   * appends there (guint64) the number of a segment whose page map does
   * not match its records, or whose file does not match its summary
   * (archive_seg_check()); its segments are composed from their records. */
  GArray *deferred_bad_maps;
};

typedef struct {
  guint start, end;       /* its entries in a->entries (summarized: only a
                           * DAMAGED gap before it, if any)                 */
  gboolean is_summarized;
  ArchiveSummary s;
  SqlenvfsArchiveEntry *marks; /* s.n_marks */
  guint8 *gens;                /* s.n_gens x ARCHIVE_SUM_GEN_SIZE */
  /* Its index, read entry by entry (summarized segments): opened when
   * first needed; @idx_bad once it failed a check (then @cache). */
  int idx_fd;
  gboolean idx_open, idx_bad;
  char *idx_path;
  /* Its file is not opened when the archive is (its size, first seq,
   * format version and SEAL checksum are the summary's): it is checked
   * against the summary where it is first read (archive_seg_check()).
   * @is_seg_checked once that found it right; @is_seg_bad once it found
   * it not (@seg_why: what). */
  gboolean is_seg_checked, is_seg_bad;
  const char *seg_why;
} ArchiveSegSum;

typedef struct {
  SqlenvfsArchiveEntry e;
  guint64 after;
} ArchiveMark;

/* The archive a timeline read, taken from it (timeline.c): the timeline
 * must only be freed afterwards. A restore reuses the one its plan read
 * (restore.c). */
struct _SqlenvfsTimeline;
SqlenvfsArchive *timeline_take_archive(struct _SqlenvfsTimeline *tl);

/* As sqlenvfs_archive_open(), the summaries of the segments numbered in
 * @no_summary (guint64; NULL: none) not used: their entries are loaded
 * from their indexes and records, as for a segment with no summary. */
SqlenvfsArchive *archive_open_except(const char *dir, const GArray *no_summary, GError **error);
/* Check that the file of segment @si is the segment its summary describes,
 * when the archive took it from the summary without opening it: its size,
 * its header (number, first seq, format version) and the checksum its
 * SEAL record carries, read now (once; reading its records through the
 * archive keeps the descriptor that check opened). TRUE when it is right,
 * or the segment is not summarized.
 * FALSE with INTEGRITY naming the file when it is not (the segment is then
 * marked: every later check fails the same way, and the number is added
 * to a->deferred_bad_maps when that is set), or with the I/O error. */
gboolean archive_seg_check(SqlenvfsArchive *a, guint si, GError **error);
/* What a record source of a summarized segment checks before its first
 * read (archive_seg_check's check, done by the source on its own file). */
typedef struct {
  guint64 number, size, first_seq;
  guint32 version, seal_crc;
} ArchiveSegExpect;

/* Open the segment @x->number of @dir (by name in @dfd when it is not
 * -1) and check it against @x (what its summary says). TRUE and *why NULL:
 * @sf open, its header read; TRUE and *why set: it does not match (@sf
 * closed); FALSE and *error: it cannot be opened or read. */
gboolean archive_seg_open_expect(int dfd, const char *dir, const ArchiveSegExpect *x, SegFile *sf,
                                 const char **why, GError **error);

/* Index in a->entries of the real entry with sequence number @seq, or -1. */
gint archive_index_of_seq(const SqlenvfsArchive *a, guint64 seq);
/* The entries of segment @si, in order (a summarized segment's are read
 * from its index on demand; one such segment is kept at a time): valid
 * until the next call for another segment, a refresh or a check. */
const SqlenvfsArchiveEntry *archive_seg_view(SqlenvfsArchive *a, guint si, guint *n);
/* Whether the sparse calls read summarized segments' index entries one by
 * one (the default) or load the segment's whole index (tests compare the
 * two). */
void archive_set_sparse(SqlenvfsArchive *a, gboolean sparse);
/* The last record of the archive (*@last) and its last COMMIT or GAP record
 * (*@state), read from its end backwards (a summarized segment's index
 * entry by entry, never every entry): what the writer continues from. */
gboolean archive_last_records(SqlenvfsArchive *a, SqlenvfsArchiveEntry *last, gboolean *has_last,
                              SqlenvfsArchiveEntry *state, gboolean *has_state);
