/*
 * archive_verify.c — checking an archive completely (verify) and removing old
 * segments (prune, with the prune log)
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
      g_autofree char *name = archive_seg_name(run, "seg");
      g_autofree char *last = archive_seg_name(n - 1, "seg");
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

/* The index of a segment, compared entry by entry with its records as the
 * pass over the segment finds them (no array of them is kept, and the file
 * is read in small pieces, not whole). What is wrong with it, if anything,
 * is kept in @why and told once the segment has been read (idx_finish), so
 * that problems are told in the same order as when the index was read after
 * the segment. */
#define IDX_READ_ENTRIES 512 /* 56 KiB a read */

typedef struct {
  char *path;
  int fd;
  guint64 n;       /* entries in the file                               */
  guint64 at;      /* the entry the buffer starts with                  */
  guint64 have;    /* entries in the buffer                             */
  char *why;       /* the first problem found; comparing stops there    */
  guint8 *buf;     /* IDX_READ_ENTRIES entries                          */
} IdxStream;

static void
idx_open(IdxStream *x, const char *dir, guint64 number)
{
  g_autofree char *iname = archive_seg_name(number, "idx");
  guint8 hdr[IDX_HEADER_SIZE];
  struct stat st;
  gsize got = 0;

  memset(x, 0, sizeof *x);
  x->path = g_build_filename(dir, iname, NULL);
  x->fd = open(x->path, O_RDONLY | O_CLOEXEC);
  if (x->fd < 0 || fstat(x->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      !archive_pread_full(x->fd, hdr, sizeof hdr, 0, &got, x->path, NULL)) {
    x->why = g_strdup("index file is missing or unreadable (readers scan the segment instead)");
    return;
  }
  if (got < sizeof hdr || (guint64)st.st_size < IDX_HEADER_SIZE ||
      !archive_decode_idx_header(hdr, number)) {
    x->why = g_strdup("index header is corrupt");
    return;
  }
  x->n = ((guint64)st.st_size - IDX_HEADER_SIZE) / IDX_ENTRY_SIZE;
  x->buf = g_malloc((gsize)IDX_READ_ENTRIES * IDX_ENTRY_SIZE);
}

/* Whether entry @i of the index is in the buffer, read if need be (FALSE
 * and x->why when it cannot be read). */
static gboolean
idx_load(IdxStream *x, guint64 i)
{
  if (i < x->at || i >= x->at + x->have) {
    gsize want = (gsize)MIN((guint64)IDX_READ_ENTRIES, x->n - i) * IDX_ENTRY_SIZE, got = 0;
    if (!archive_pread_full(x->fd, x->buf, want, IDX_HEADER_SIZE + i * IDX_ENTRY_SIZE, &got,
                            x->path, NULL) ||
        got < IDX_ENTRY_SIZE) {
      x->why = g_strdup("index file is missing or unreadable (readers scan the segment instead)");
      return FALSE;
    }
    x->at = i;
    x->have = got / IDX_ENTRY_SIZE;
  }
  return TRUE;
}

/* Compare entry @i of the index with @r, the @i-th record of the segment
 * (a valid one; records are given in order, from the first). */
static void
idx_compare(IdxStream *x, guint64 i, const SqlenvfsArchiveEntry *r)
{
  SqlenvfsArchiveEntry e;

  if (x->why != NULL || i >= x->n || !idx_load(x, i))
    return;
  if (!archive_decode_idx_entry(x->buf + (gsize)(i - x->at) * IDX_ENTRY_SIZE, &e))
    x->why = g_strdup_printf("index entry %" G_GUINT64_FORMAT " is corrupt (checksum mismatch)",
                             i + 1);
  else if (!archive_same_header(&e, r) || e.offset != r->offset)
    x->why = g_strdup_printf("index entry %" G_GUINT64_FORMAT " does not match record %"
                             G_GUINT64_FORMAT, i + 1, r->seq);
}

/* The length of the damaged record @seq at @off, the @i-th of a segment
 * of @size bytes, as entry @i of the index says it, when the index is
 * good up to it: readers take it so and go on past it. 0 when it does not
 * say. */
static guint64
idx_length(IdxStream *x, guint64 i, guint64 seq, guint64 off, guint64 size)
{
  SqlenvfsArchiveEntry e;

  if (x->why != NULL || i >= x->n || !idx_load(x, i) ||
      !archive_decode_idx_entry(x->buf + (gsize)(i - x->at) * IDX_ENTRY_SIZE, &e) ||
      e.seq != seq || e.offset != off || e.length < REC_EMPTY_SIZE || e.length > size - off)
    return 0;
  return e.length;
}

/* The segment held @n_records valid records (the last one cut short when
 * @tail_torn; the last one its SEAL when @sealed): tell what is wrong with
 * its index to @p, and close it. */
static void
idx_finish(IdxStream *x, guint64 n_records, gboolean tail_torn, gboolean sealed, Problems *p)
{
  if (x->why == NULL && x->n > n_records && !tail_torn)
    x->why = g_strdup_printf("index lists %" G_GUINT64_FORMAT " records but the segment holds %"
                             G_GUINT64_FORMAT " valid ones", x->n, n_records);
  /* Fewer entries than records: the unindexed tail of a live segment. At
   * a seal the index of every record before it was synced first
   * (invariant 4): only the seal's own entry may be missing. */
  if (x->why == NULL && sealed && x->n + 1 < n_records)
    x->why = g_strdup_printf("index of a sealed segment is cut short: it lists %" G_GUINT64_FORMAT
                             " of its %" G_GUINT64_FORMAT " records (readers scan the segment "
                             "past its last entry, so restores are exact but read more; nothing "
                             "writes a sealed segment's index again: put back the file from a "
                             "copy of the archive, such as its replica)", x->n, n_records);
  if (x->why != NULL && p != NULL)
    problem(p, x->path, "%s", x->why);
  if (x->fd >= 0)
    close(x->fd);
  g_free(x->path);
  g_free(x->why);
  g_free(x->buf);
  memset(x, 0, sizeof *x);
  x->fd = -1;
}

/* What the check of a batch's later commits needs of each record before
 * it in its segment. */
typedef struct {
  guint32 type, flags, stream_pages;
} RecordKind;

/* Version 2: read the compressed COMMIT @e (whose checksum archive_read_record()
 * found right) again, from @sf's window, and check its blocks: decompressed
 * with @dctx, or, when @dctx is NULL, by their checksums and frame headers
 * (archive_check_block_frames); *why says what is wrong, if anything. FALSE only on
 * an I/O error. */
static gboolean
verify_blocks(SegFile *sf, const SqlenvfsArchiveEntry *e, ZSTD_DCtx *dctx, const char **why,
              GError **error)
{
  g_autofree guint8 *rec = NULL;
  const guint8 *in_window;
  gsize got;

  if (!archive_seg_map(sf, e->offset, (gsize)e->length, &in_window, error))
    return FALSE;
  if (in_window != NULL) {
    *why = dctx ? archive_check_blocks(e, in_window, NULL, dctx)
                : archive_check_block_frames(e, in_window);
    return TRUE;
  }
  rec = g_try_malloc(e->length);
  if (rec == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "verify %s: no memory for record %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT
                " bytes)", sf->path, e->seq, e->length);
    return FALSE;
  }
  if (!archive_seg_pread(sf, rec, e->length, e->offset, &got, error))
    return FALSE;
  if (got < e->length)
    *why = "is cut short";
  else
    *why = dctx ? archive_check_blocks(e, rec, NULL, dctx) : archive_check_block_frames(e, rec);
  return TRUE;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ZSTD_DCtx, ZSTD_freeDCtx)

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
 * intact SEAL carrying the same checksum. TRUE, *facts as known and *seal
 * that record; FALSE and *facts zeroed, for the segment to be read. */
static gboolean
skip_known(const SqlenvfsArchiveVerifyMemo *memo, SegFile *sf, const char *dir, guint64 number,
           SqlenvfsArchiveSegmentFacts *facts, guint8 *chunk, SqlenvfsArchiveEntry *seal)
{
  g_autofree char *iname = archive_seg_name(number, "idx");
  g_autofree char *ipath = g_build_filename(dir, iname, NULL);
  SqlenvfsArchiveEntry e;
  gboolean torn;

  if (memo != NULL && memo->known != NULL && memo->known(memo->user, sf->path, ipath, facts) &&
      facts->size == sf->size && facts->first_seq == sf->hdr.first_seq &&
      facts->prev_crc == sf->hdr.prev_crc && sf->size >= SEG_HEADER_SIZE + REC_EMPTY_SIZE &&
      facts->next_seq > facts->first_seq &&
      archive_read_record(sf, sf->size - REC_EMPTY_SIZE, &e, &torn, NULL, chunk, NULL) &&
      e.type == SQLENVFS_ARCHIVE_SEAL && e.length == REC_EMPTY_SIZE && e.reason == facts->seal &&
      e.seq + 1 == facts->next_seq) {
    *seal = e;
    return TRUE;
  }
  memset(facts, 0, sizeof *facts);
  return FALSE;
}

/* Whether the summary file @path is, byte for byte, what @b (which
 * gathered the whole segment @number of @size bytes) builds in the file's
 * own version. Then it is good and describes its segment: what is built
 * passes every check of a summary by construction, its segment's number,
 * size and seal included. Read 64 KiB at a time, not loaded whole. FALSE
 * when it differs, is not there or cannot be read: the caller then loads
 * it to say which. */
static gboolean
summary_equals_built(const char *path, ArchiveSumBuilder *b, const char *dir, guint64 number,
                     guint64 size)
{
  g_autoptr(GByteArray) want = NULL;
  g_autofree guint8 *buf = NULL;
  guint8 head[12];
  struct stat st;
  gsize got = 0, at = 0;
  guint32 version;
  gboolean same = FALSE;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

  if (fd < 0)
    return FALSE;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      !archive_pread_full(fd, head, sizeof head, 0, &got, path, NULL) || got != sizeof head ||
      memcmp(head, ARCHIVE_SUM_MAGIC, 8) != 0)
    goto out;
  version = get32(head + 8);
  if (version != 1 && version != 2)
    goto out;
  want = archive_sum_builder_finish(b, dir, number, size, version, NULL);
  if (want == NULL || (guint64)st.st_size != want->len)
    goto out;
  buf = g_malloc(64 * 1024);
  while (at < want->len) {
    gsize n = MIN((gsize)64 * 1024, want->len - at);
    if (!archive_pread_full(fd, buf, n, at, &got, path, NULL) || got != n ||
        memcmp(buf, want->data + at, n) != 0)
      goto out;
    at += n;
  }
  same = TRUE;
out:
  close(fd);
  return same;
}

/* Check the summary of the sealed segment @number (@size bytes, sealed
 * with @seal): present and usable (archive_summary.c, S1), and, when
 * @rebuild (the segment was read whole without a problem), exactly what
 * its records make: what @b gathered from them in that pass (the segment
 * is not read again), or, without @b, what archive_summary_build makes.
 * A missing summary is not a problem (the archiver writes it when it
 * starts). TRUE when it is there and good. */
static gboolean
verify_summary(const char *dir, guint64 number, guint64 size, guint32 seal, gboolean rebuild,
               ArchiveSumBuilder *b, Problems *p)
{
  g_autofree char *path = archive_summary_path(dir, number);
  g_autofree guint8 *data = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) want = NULL;
  ArchiveSummary s;
  const char *why = NULL;
  const char *fix = "readers use the segment's index instead; remove the file, and the "
                    "archiver writes it again when it next starts";

  if (rebuild && b != NULL && summary_equals_built(path, b, dir, number, size))
    return TRUE; /* the usual case: the segment read, its summary what it makes */
  switch (archive_summary_load(dir, number, size, seal, &s, &data, &why, &error)) {
  case ARCHIVE_SUM_MISSING:
    return FALSE;
  case ARCHIVE_SUM_ERROR:
    problem(p, path, "segment summary unreadable: %s", error->message);
    return FALSE;
  case ARCHIVE_SUM_BAD:
    problem(p, path, "segment summary is bad: %s (%s)", why, fix);
    return FALSE;
  case ARCHIVE_SUM_GOOD:
    break;
  }
  if (!rebuild)
    return TRUE;
  if (b != NULL)
    want = archive_sum_builder_finish(b, dir, number, size, s.version, &error);
  else
    want = archive_summary_build_version(dir, number, s.version, &error);
  if (want == NULL) {
    problem(p, path, "segment summary of a segment that cannot be summarized: %s",
            error->message);
    return FALSE;
  }
  /* load() checked the size against the counts; the bytes decide (in the
   * summary's own version: both are read). */
  if (want->len != s.file_len || memcmp(want->data, data, want->len) != 0) {
    problem(p, path, "segment summary does not describe its segment (%s)", fix);
    return FALSE;
  }
  return TRUE;
}

/* Check the last versions of the sealed segment @number (@size bytes,
 * sealed with @seal), when it has a .last file: whole (archive_last.c,
 * L1: header, block table, every block decompressed and checked), bound
 * to its segment and to its summary (good, checked before this), and with
 * @full, decompressed and holding exactly the last versions the segment's
 * records make (without, each zstd frame's header checked, as for the
 * records' blocks). A
 * missing file is not a problem (readers use the records). */
static void
verify_last(const char *dir, guint64 number, guint64 size, guint32 seal, gboolean full,
            Problems *p)
{
  g_autofree char *path = archive_last_path(dir, number);
  g_autofree gchar *data = NULL;
  g_autofree guint8 *sum = NULL, *pages = NULL, *want = NULL;
  g_autoptr(GError) error = NULL;
  const char *fix = "readers use the segment's records instead; remove the file, or remove it "
                    "and the segment's summary, and the archiver writes both again when it "
                    "next starts";
  ArchiveLastHeader h;
  ArchiveSummary s, s2;
  const char *why = NULL;
  struct stat st;
  guint32 ps, bind2[2];
  gsize len;

  if (lstat(path, &st) != 0 && errno == ENOENT)
    return;
  if (!S_ISREG(st.st_mode) ||
      (guint64)st.st_size > ARCHIVE_LAST_HEADER_SIZE + 2 * (guint64)ARCHIVE_LAST_MAX_BYTES) {
    problem(p, path, "file of last versions is not a file of the size one has (%s)", fix);
    return;
  }
  if (!g_file_get_contents(path, &data, &len, &error)) {
    problem(p, path, "file of last versions unreadable: %s", error->message);
    return;
  }
  /* With --full, the pages decompressed once, to compare below. */
  if (full && archive_last_parse_fixed((const guint8 *)data, len, &h, &why))
    pages = g_malloc((gsize)h.n_pages * h.page_size);
  why = archive_last_check_bytes((const guint8 *)data, len, &h, full, pages);
  if (why == archive_last_why_old) {
    g_debug("archive: %s %s", path, why); /* not used, not damage */
    return;
  }
  if (why != NULL) {
    problem(p, path, "file of last versions %s (%s)", why, fix);
    return;
  }
  if (archive_summary_load(dir, number, size, seal, &s, &sum, &why, &error) != ARCHIVE_SUM_GOOD)
    return; /* reported with the summary; readers use neither */
  if (s.version < 2)
    return; /* not used beside a version 1 summary (it binds to version 2's parts) */
  {
    g_autofree char *sname = archive_seg_name(number, "seg");
    g_autofree char *seg = g_build_filename(dir, sname, NULL);
    guint32 bind[2] = { 0, 0 };
    gboolean bound;
    why = NULL;
    bound = archive_last_seg_binding_at(seg, size, &bind[0], &bind[1], &why, &error);
    if (!bound && why == NULL) {
      problem(p, path, "its segment cannot be read: %s", error->message);
      return;
    }
    if (!bound || h.number != number || h.seg_size != size || h.seal_crc != seal ||
        h.n_pages != s.n_pages || h.pages_crc != s.pages_crc || h.last_crc != s.last_crc ||
        h.last_seq != s.last_seq || h.seg_head_crc != bind[0] || h.seal_head_crc != bind[1]) {
      problem(p, path, "file of last versions does not match its segment and summary (%s)",
              fix);
      return;
    }
  }
  if (!full)
    return;
  if (!archive_last_images(dir, number, sum, (gsize)s.file_len, &s2, &want, &ps, bind2,
                           &error)) {
    problem(p, path, "the last versions of the segment cannot be gathered: %s", error->message);
    return;
  }
  if (ps != h.page_size || memcmp(pages, want, (gsize)h.n_pages * ps) != 0)
    problem(p, path, "file of last versions does not hold what the segment's records make "
            "(%s)", fix);
}

/* verify_summary() with @memo: the summary of a segment skipped as known
 * (@known: not rebuilt) is not read again when @memo knows it as found
 * good for it and unchanged, and its file of last versions as unchanged
 * too (or still not there); one found good (rebuilt, or of a known
 * segment) with its file of last versions is told to @memo. */
static void
verify_summary_with(const SqlenvfsArchiveVerifyMemo *memo, const char *dir, guint64 number,
                    guint64 size, guint32 seal, gboolean known, gboolean rebuild, gboolean full,
                    ArchiveSumBuilder *b, Problems *p)
{
  g_autofree char *path = archive_summary_path(dir, number);
  g_autofree char *last = archive_last_path(dir, number);
  gboolean remember = memo != NULL && memo->summary_known != NULL &&
                      memo->summary_verified != NULL && (known || rebuild);
  guint before = p->n;

  if (remember && known && memo->summary_known(memo->user, path, last, seal))
    return;
  if (!verify_summary(dir, number, size, seal, rebuild && !known, b, p))
    return;
  verify_last(dir, number, size, seal, full && rebuild && !known, p);
  if (remember && p->n == before)
    memo->summary_verified(memo->user, path, last, seal);
}

/* Invariant 6 across a segment boundary: the first record of @sf (@time)
 * is not earlier than the last record of the segment before it,
 * @prev_path (@prev_time). */
static void
check_time_order(Problems *p, const SegFile *sf, gint64 time, const char *prev_path,
                 gint64 prev_time)
{
  g_autofree char *t = NULL, *pt = NULL, *pname = NULL;
  if (time >= prev_time)
    return;
  t = sqlenvfs_time_format_iso(time);
  pt = sqlenvfs_time_format_iso(prev_time);
  pname = g_path_get_basename(prev_path);
  problem(p, sf->path, "its first record (%s) is earlier than the last record of %s (%s): "
          "record times never decrease along an archive, so the two do not hold one history "
          "(a segment of another archive copied in?)", t, pname, pt);
}

/* sqlenvfs_archive_verify_with, with @dir open as @dir_fd (-1: by path):
 * each segment is opened by name in it, not by its whole path. */
static gboolean
verify_with(const char *dir, int dir_fd, const SqlenvfsArchiveVerifyMemo *memo,
            SqlenvfsArchiveProblemFunc problem_fn, gpointer user,
            SqlenvfsArchiveVerifyResult *result, GError **error)
{
  g_autoptr(GArray) nums = NULL;
  g_autofree guint8 *chunk = NULL;
  g_autofree guint8 *win = NULL; /* every segment's window, in turn */
  gsize win_cap = 0;
  g_autoptr(ZSTD_DCtx) dctx = NULL;
  SqlenvfsArchiveVerifyResult res = { 0 };
  Problems p = { problem_fn, user, 0, NULL, NULL };
  gboolean have_prev = FALSE, prev_sealed = FALSE;
  /* The previous segment's end is not known (no seal; told with it): the
   * records after it may have been lost with its end. */
  gboolean prev_end_lost = FALSE;
  /* The time of the last record of the segment before (invariant 6). */
  gboolean have_prev_time = FALSE;
  gint64 prev_time = 0;
  g_autofree char *prev_path = NULL;
  guint64 prev_number = 0, prev_next_seq = 0, alive_seq = 0;
  guint32 prev_seal = 0;
  /* The previous segment's SEAL record was read (@prev_seal_read), and
   * whether it carries the digest of its records: the header of the next
   * names it then, and only then (invariant 3). */
  gboolean prev_seal_read = FALSE, prev_has_digest = FALSE;
  guint32 prev_digest = 0;
  g_autofree char *prev_name = NULL; /* the previous segment's file name */
  g_autoptr(GHashTable) pruned = NULL;
  gint64 alive_time = 0;
  gboolean has_alive, alive_vouches;

  /* The alive file before the listing: the records it confirms are in
   * segments listed after it, even while an archiver seals and starts
   * new ones. */
  has_alive = archive_read_alive(dir, &alive_time, &alive_seq);
  nums = archive_list_segments(dir, error);
  if (nums == NULL)
    return FALSE;
  /* Records before its number are in the last segment, cut short by
   * nothing but damage; not in a replica's copy, whose alive may be ahead
   * of the parts shipped. */
  alive_vouches = has_alive && !archive_holes_trusted(dir);
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
      g_autofree char *name = archive_seg_name(last + 1, "seg");
      g_autofree char *path = g_build_filename(dir, name, NULL);
      problem(&p, path, "segment %s is missing: prune never removes the last segment, so it was "
              "deleted or lost", name);
    }
  }
  chunk = g_malloc(IO_CHUNK);
  if (memo == NULL || !memo->frames_only) {
    dctx = ZSTD_createDCtx();
    g_assert(dctx != NULL); /* fails only for lack of memory, as g_malloc would */
  }
  for (guint k = 0; k < nums->len; k++) {
    guint64 number = g_array_index(nums, guint64, k);
    gboolean is_last = k + 1 == nums->len;
    g_autoptr(GArray) kinds = NULL; /* RecordKind of each record read */
    IdxStream idx = { .fd = -1 };
    g_autoptr(ArchiveSumBuilder) sum = NULL; /* its summary, from the same pass */
    SegFile sf;
    guint8 hbuf[SEG_HEADER_SIZE];
    gsize got;
    guint64 off = SEG_HEADER_SIZE, seq;
    ArchiveSegSums c;
    guint32 end_seal;
    gboolean sealed = FALSE, tail_torn = FALSE;
    /* A damaged record was told: the seal's checksum cannot match, and a
     * batch whose first record it is was told with it. When it could not
     * be read past (@stopped; @cut: the file ends inside it), its end is
     * found from the seal at the end of the file if that is intact. */
    gboolean damaged = FALSE, stopped = FALSE, cut = FALSE;
    gboolean ends_damaged = FALSE; /* its last record read past is damaged */
    guint n_problems_before = p.n;
    SqlenvfsArchiveSegmentFacts facts = { 0 };
    SqlenvfsArchiveEntry seal_rec = { 0 };
    /* Invariant 6 inside it: told once a segment. */
    gboolean times_back_told = FALSE;

    res.n_segments++;
    /* sf.st is taken at the open, before any read: a later change shows. */
    if (!archive_seg_file_openat(dir_fd, dir, number, O_RDONLY, &sf, error))
      return FALSE;
    res.bytes += sf.size;
    if (!sf.hdr_ok && is_last && sf.size < SEG_HEADER_SIZE &&
        (!alive_vouches || (have_prev && prev_next_seq >= alive_seq))) {
      /* The segment being started when the archiver stopped: its name
       * reached the disk before its header (a power cut between the two).
       * It holds no record, and none that the alive file says were synced
       * is missing; the archiver's next start writes it again. */
      g_debug("archive: %s: %s (the segment being started; the archiver writes it again on "
              "its next start)", sf.path, sf.hdr_why);
      archive_seg_file_close(&sf);
      continue;
    }
    if (!sf.hdr_ok) {
      problem(&p, sf.path, "%s", sf.hdr_why);
      have_prev = FALSE;
      archive_seg_file_close(&sf);
      continue;
    }
    if (have_prev) {
      if (number != prev_number + 1)
        problem(&p, sf.path, "segments %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                " are missing before this one", prev_number + 1, number - 1);
      else if (sf.hdr.first_seq != prev_next_seq &&
               !(prev_end_lost && sf.hdr.first_seq > prev_next_seq))
        /* (Past a previous segment that could not be read to its end:
         * the records its damage hid, told with it.) */
        problem(&p, sf.path, "starts at record %" G_GUINT64_FORMAT " but the previous segment "
                "ends before record %" G_GUINT64_FORMAT, sf.hdr.first_seq, prev_next_seq);
      else if (prev_sealed && prev_seal_read && sf.hdr.has_prev_digest &&
               (!prev_has_digest || sf.hdr.prev_digest != prev_digest))
        problem(&p, sf.path, "was not written after the records %s holds, but after others "
                "of the same numbers: one of the two is from another archive (a copy of this "
                "root that went on by itself?), so restores refuse the times they hold; put "
                "back this root's own segment from a copy, keeping both", prev_name);
      else if (prev_sealed && sf.hdr.prev_crc != prev_seal)
        problem(&p, sf.path, "does not chain to the previous segment (its checksum differs)");
    }
    if (skip_known(memo, &sf, dir, number, &facts, chunk, &seal_rec)) {
      /* Verified before and unchanged: chain past it as it was found. Its
       * first record's header gives the time it starts at. */
      guint8 h[REC_HEADER_SIZE];
      SqlenvfsArchiveEntry fe;
      gsize hgot = 0;
      if (have_prev_time && archive_seg_pread(&sf, h, sizeof h, SEG_HEADER_SIZE, &hgot, NULL) &&
          hgot == sizeof h && archive_decode_header(h, &fe))
        check_time_order(&p, &sf, fe.time, prev_path, prev_time);
      have_prev_time = TRUE;
      prev_time = seal_rec.time;
      g_free(prev_path);
      prev_path = g_strdup(sf.path);
      res.n_skipped++;
      res.n_records += facts.n_records;
      res.n_commits += facts.n_commits;
      res.n_gaps += facts.n_gaps;
      have_prev = prev_sealed = TRUE;
      prev_end_lost = FALSE;
      prev_seal = facts.seal;
      prev_seal_read = TRUE;
      prev_has_digest = (seal_rec.flags & SEAL_HAS_DIGEST) != 0;
      prev_digest = seal_rec.digest;
      g_free(prev_name);
      prev_name = g_path_get_basename(sf.path);
      prev_number = number;
      prev_next_seq = facts.next_seq;
      verify_summary_with(memo, dir, number, sf.size, facts.seal, TRUE, FALSE, FALSE, NULL, &p);
      archive_note_checked(sf.path, &sf.st, sf.size);
      archive_seg_file_close(&sf);
      continue;
    }
    kinds = g_array_new(FALSE, FALSE, sizeof(RecordKind));
    archive_seg_file_buffer_with(&sf, &win, &win_cap); /* read whole: large reads */
    if (!archive_seg_pread(&sf, hbuf, sizeof hbuf, 0, &got, error)) {
      archive_seg_file_close(&sf);
      return FALSE;
    }
    idx_open(&idx, dir, number);
    seq = sf.hdr.first_seq;
    /* Its summary is built in the same pass when it is sealed; the last
     * segment usually is not (the one being written), which its end says. */
    if (!is_last || archive_read_seal_fd(sf.fd, sf.path, sf.size, &end_seal))
      sum = archive_sum_builder_new(&sf);
    archive_sums_start(&c, hbuf);
    prev_seal_read = prev_has_digest = FALSE;
    while (off < sf.size) {
      SqlenvfsArchiveEntry e;
      gboolean torn;
      ArchiveSegSums before = c;
      g_autoptr(GError) local = NULL;
      if (!archive_read_record(&sf, off, &e, &torn, &c, chunk, &local)) {
        if (local) {
          g_propagate_error(error, g_steal_pointer(&local));
          idx_finish(&idx, 0, TRUE, FALSE, NULL);
          archive_seg_file_close(&sf);
          return FALSE;
        }
        if (sealed)
          problem(&p, sf.path, "%" G_GUINT64_FORMAT " bytes of data after the seal",
                  sf.size - off);
        else if (is_last && ((torn && !alive_vouches) || !has_alive || seq >= alive_seq) &&
                 (tail_torn = TRUE))
          /* Past what the alive file says was synced: the unsynced tail
           * that a crash of the machine left half-written. */
          g_debug("archive %s: %s ends with an unfinished record (discarded by the archiver "
                  "on its next start)", dir, sf.path);
        else {
          guint64 len = 0;
          problem(&p, sf.path, "record %" G_GUINT64_FORMAT " at offset %" G_GUINT64_FORMAT
                  " is corrupt (%s)", seq, off,
                  torn ? "cut short" : "checksum mismatch");
          damaged = TRUE;
          g_clear_pointer(&sum, archive_sum_builder_free); /* not built past damage */
          /* Readers go on past it, as far as its header (or, when that is
           * damaged, the index) gives its length: what follows is checked
           * as they read it, and not told again for this damage. */
          if (!torn) {
            guint8 h[REC_HEADER_SIZE];
            SqlenvfsArchiveEntry d;
            gsize hgot = 0;
            if (archive_seg_pread(&sf, h, sizeof h, off, &hgot, NULL) && hgot == sizeof h &&
                archive_decode_header(h, &d) && d.seq == seq && d.length >= REC_EMPTY_SIZE &&
                d.length <= sf.size - off)
              len = d.length;
            else
              len = idx_length(&idx, seq - sf.hdr.first_seq, seq, off, sf.size);
          }
          if (len > 0) {
            RecordKind kind = { 0, 0, 0 }; /* damaged: no batch's first record */
            g_array_append_val(kinds, kind);
            off += len;
            seq++;
            ends_damaged = TRUE;
            continue;
          }
          stopped = TRUE;
          cut = torn;
        }
        break;
      }
      if (sealed) {
        problem(&p, sf.path, "records after the seal");
        break;
      }
      ends_damaged = FALSE;
      if (e.seq != seq) {
        problem(&p, sf.path, "record at offset %" G_GUINT64_FORMAT " has number %"
                G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT, off, e.seq, seq);
        stopped = TRUE;
        break;
      }
      if (have_prev_time && e.seq == sf.hdr.first_seq)
        check_time_order(&p, &sf, e.time, prev_path, prev_time);
      else if (have_prev_time && e.time < prev_time && !times_back_told) {
        g_autofree char *t = sqlenvfs_time_format_iso(e.time);
        g_autofree char *pt = sqlenvfs_time_format_iso(prev_time);
        problem(&p, sf.path, "record %" G_GUINT64_FORMAT " at offset %" G_GUINT64_FORMAT
                " (%s) is earlier than the record before it (%s): record times never "
                "decrease along an archive", seq, off, t, pt);
        times_back_told = TRUE;
      }
      have_prev_time = TRUE;
      prev_time = e.time;
      if (e.type == SQLENVFS_ARCHIVE_COMMIT && (e.flags & SQLENVFS_ARCHIVE_BATCHED)) {
        /* Its pages are in the batch's first record, earlier in this
         * segment (checked itself as a compressed record). */
        const RecordKind *h =
          e.reason <= kinds->len ? &g_array_index(kinds, RecordKind, kinds->len - e.reason)
                                 : NULL;
        if (h != NULL && h->type == 0)
          ; /* its first record is damaged, told above: readers skip the batch */
        else if (h == NULL || h->type != SQLENVFS_ARCHIVE_COMMIT ||
            !(h->flags & SQLENVFS_ARCHIVE_COMPRESSED) ||
            (guint64)e.text_len + e.n_pages > h->stream_pages)
          problem(&p, sf.path, "record %" G_GUINT64_FORMAT " at offset %" G_GUINT64_FORMAT
                  " belongs to a batch whose first record is missing or does not hold its "
                  "pages", seq, off);
      }
      if (e.type == SQLENVFS_ARCHIVE_COMMIT && (e.flags & SQLENVFS_ARCHIVE_COMPRESSED)) {
        const char *why = NULL;
        if (!verify_blocks(&sf, &e, dctx, &why, error)) {
          idx_finish(&idx, 0, TRUE, FALSE, NULL);
          archive_seg_file_close(&sf);
          return FALSE;
        }
        if (why != NULL)
          problem(&p, sf.path, "record %" G_GUINT64_FORMAT " at offset %" G_GUINT64_FORMAT
                  " %s", seq, off, why);
      }
      if (e.type == SQLENVFS_ARCHIVE_SEAL) {
        if (e.reason != before.crc && !damaged)
          problem(&p, sf.path, "segment checksum mismatch (the seal does not match the data)");
        else if ((e.flags & SEAL_HAS_DIGEST) && e.digest != before.digest && !damaged)
          problem(&p, sf.path, "its seal was written after other records than the ones it "
                  "holds (a record replaced by one of another archive?)");
        sealed = TRUE;
        prev_seal = e.reason;
        prev_seal_read = TRUE;
        prev_has_digest = (e.flags & SEAL_HAS_DIGEST) != 0;
        prev_digest = e.digest;
      }
      {
        RecordKind kind = { e.type, e.flags,
                         e.type == SQLENVFS_ARCHIVE_COMMIT ? archive_stream_pages(&e) : 0 };
        g_array_append_val(kinds, kind);
      }
      idx_compare(&idx, seq - sf.hdr.first_seq, &e);
      if (sum != NULL)
        archive_sum_builder_add(sum, &sf, &e, chunk); /* while the window holds it */
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
    if (facts.n_records > 0) { /* prev_time is its last record's */
      g_free(prev_path);
      prev_path = g_strdup(sf.path);
    }
    if (stopped && !is_last) {
      /* Read no further than the damage: is its seal at the end intact? */
      SqlenvfsArchiveEntry se;
      gboolean se_torn;
      if (sf.size >= off + REC_EMPTY_SIZE &&
          archive_read_record(&sf, sf.size - REC_EMPTY_SIZE, &se, &se_torn, NULL, chunk, NULL) &&
          se.type == SQLENVFS_ARCHIVE_SEAL && se.length == REC_EMPTY_SIZE && se.seq >= seq) {
        sealed = TRUE;
        prev_seal = se.reason;
        seq = se.seq + 1;
        /* What it carries is what the next header names (its records'
         * digest cannot be checked past the damage). */
        prev_seal_read = TRUE;
        prev_has_digest = (se.flags & SEAL_HAS_DIGEST) != 0;
        prev_digest = se.digest;
      } else if (!cut) {
        problem(&p, sf.path, "segment is not sealed but a later one exists (it does not end "
                "with a seal past its damage)");
      }
      /* Cut short: the seal went with the rest (the damage told above). */
    } else if (!sealed && !is_last && !ends_damaged) {
      /* (Its last record damaged, told above: the seal it would be.) */
      problem(&p, sf.path, "segment is not sealed but a later one exists (it ends after record %"
              G_GUINT64_FORMAT ", at offset %" G_GUINT64_FORMAT ": cut short, its seal lost; or "
              "the last segment of a copy of this root put in its place, whose records cannot "
              "be told from this root's: put back this root's own file if you have one)",
              seq - 1, off);
    }
    /* The alive file (read before this segment was opened) confirms every
     * record before its number as synced: the last segment must hold them
     * (a damaged one among them is told above). */
    if (is_last && !sealed && alive_vouches && seq < alive_seq && off >= sf.size)
      problem(&p, sf.path, "records %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT " are missing: "
              "the alive file says they were synced, but the segment ends at offset %"
              G_GUINT64_FORMAT " (cut short)", seq, alive_seq - 1, sf.size);
    if (is_last && !sealed) {
      Problems live = { note_live_index, NULL, 0, NULL, NULL };
      idx_finish(&idx, seq - sf.hdr.first_seq, tail_torn, FALSE, &live);
      g_free(live.first_file);
      g_free(live.first_message);
    } else {
      /* A segment whose end is lost (told above): an index listing more
       * records than it holds is that loss seen again. */
      idx_finish(&idx, seq - sf.hdr.first_seq, tail_torn || !sealed, sealed, &p);
    }
    if (sealed)
      verify_summary_with(memo, dir, number, sf.size, prev_seal, FALSE,
                          p.n == n_problems_before, dctx != NULL, sum, &p);
    if (sealed && p.n == n_problems_before && memo != NULL && memo->verified != NULL) {
      g_autofree char *iname = archive_seg_name(number, "idx");
      g_autofree char *ipath = g_build_filename(dir, iname, NULL);
      facts.size = sf.size;
      facts.first_seq = sf.hdr.first_seq;
      facts.prev_crc = sf.hdr.prev_crc;
      facts.seal = prev_seal;
      facts.next_seq = seq;
      memo->verified(memo->user, sf.path, ipath, &facts);
    }
    if (sealed && p.n == n_problems_before)
      archive_note_checked(sf.path, &sf.st, sf.size); /* the timeline's checks need not read it */
    have_prev = TRUE;
    prev_sealed = sealed;
    prev_end_lost = !sealed;
    g_free(prev_name);
    prev_name = g_path_get_basename(sf.path);
    prev_number = number;
    prev_next_seq = seq;
    archive_seg_file_close(&sf);
  }
  if (alive_vouches && have_prev && prev_sealed && prev_next_seq < alive_seq) {
    /* The last segment present is sealed, yet the alive file confirms
     * records after it: the segment that held them is gone. */
    g_autofree char *name = archive_seg_name(prev_number + 1, "seg");
    g_autofree char *path = g_build_filename(dir, name, NULL);
    problem(&p, path, "segment is missing: records %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
            " were synced (the alive file says so), and no segment holds them", prev_next_seq,
            alive_seq - 1);
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

gboolean
sqlenvfs_archive_verify_with(const char *dir, const SqlenvfsArchiveVerifyMemo *memo,
                             SqlenvfsArchiveProblemFunc problem_fn, gpointer user,
                             SqlenvfsArchiveVerifyResult *result, GError **error)
{
  int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  gboolean ok = verify_with(dir, dir_fd, memo, problem_fn, user, result, error);
  if (dir_fd >= 0)
    close(dir_fd);
  return ok;
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
    return sqlenvfs_error_errno(error, errno, "stat", like);
  fd = sqlenvfs_open_own_file(path, O_WRONLY | O_APPEND, st.st_mode & 0666, error);
  if (fd < 0) {
    g_prefix_error(error, "the prune log: ");
    return FALSE;
  }
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
        return sqlenvfs_error_errno(error, e, "repair the prune log", path);
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
    return sqlenvfs_error_errno(error, e, "write the prune log", path);
  }
  if (fdatasync(fd) != 0) {
    int e = errno;
    close(fd);
    return sqlenvfs_error_errno(error, e, "sync the prune log", path);
  }
  close(fd);
  return !created || sqlenvfs_fsync_dir(dir, error);
}

int
sqlenvfs_archive_prune(const char *dir, guint64 keep_from_seq, gboolean dry_run,
                       GPtrArray *removed, GError **error)
{
  g_autoptr(GArray) nums = archive_list_segments(dir, error);
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
    if (!archive_seg_file_open(dir, g_array_index(nums, guint64, k + 1), O_RDONLY, &next, error))
      return -1;
    if (!archive_seg_file_open(dir, g_array_index(nums, guint64, k), O_RDONLY, &cur, error)) {
      archive_seg_file_close(&next);
      return -1;
    }
    ok = next.hdr_ok && next.hdr.first_seq <= keep_from_seq;
    if (ok) {
      g_autofree char *line =
        prune_line(g_array_index(nums, guint64, k), cur.hdr_ok ? cur.hdr.first_seq : 0,
                   next.hdr.first_seq, next.hdr.prev_crc, now);
      g_string_append(log, line);
    }
    archive_seg_file_close(&cur);
    archive_seg_file_close(&next);
    if (!ok)
      break;
    n++;
  }
  if (n > 0 && !dry_run) {
    g_autofree char *first = archive_seg_name(g_array_index(nums, guint64, 0), "seg");
    g_autofree char *like = g_build_filename(dir, first, NULL);
    if (!append_prune_log(dir, like, log->str, error))
      return -1;
  }
  for (guint k = 0; k < n; k++) {
    guint64 number = g_array_index(nums, guint64, k);
    g_autofree char *sname = archive_seg_name(number, "seg");
    g_autofree char *iname = archive_seg_name(number, "idx");
    g_autofree char *spath = g_build_filename(dir, sname, NULL);
    g_autofree char *ipath = g_build_filename(dir, iname, NULL);
    if (!dry_run) {
      if (unlink(spath) != 0) {
        sqlenvfs_error_errno(error, errno, "remove archive segment", spath);
        return -1;
      }
      unlink(ipath);
      {
        g_autofree char *sum = archive_summary_path(dir, number);
        g_autofree char *last = archive_last_path(dir, number);
        unlink(sum);
        unlink(last);
      }
    }
    if (removed)
      g_ptr_array_add(removed, g_strdup(spath));
  }
  if (n > 0 && !dry_run && !sqlenvfs_fsync_dir(dir, error))
    return -1;
  return (int)n;
}
