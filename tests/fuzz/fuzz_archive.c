/*
 * fuzz_archive.c — the WAL archive reader (src/core/archive_*.c) on arbitrary
 * bytes: segment headers, records, index files and the alive file, through
 * the public functions that read them from disk: sqlenvfs_archive_open()
 * (index, then a scan of the segment past it), _refresh(), _read_commit(),
 * _read_commit_pages() (version 2: compressed blocks and batches),
 * _read_gap_text(), _verify(), _prune() (a dry run), and the crash recovery
 * of sqlenvfs_archive_writer_open() (which truncates a torn tail and
 * rewrites the last index).
 *
 * An input is the files of one archive concatenated, each starting with its
 * magic: "SQEFSSEG" starts the next segment (numbered 1, 2, ... in input
 * order), "SQEFSIDX" the index of the segment before it, "SQEFSSUM" its
 * summary, "SQEFSALV" the alive file; bytes before the first magic belong
 * to segment 1. The files
 * are written to a private directory, which is emptied before each input.
 *
 * Random bytes almost never carry valid crc32s, so each input is read twice:
 * as it is, and once more after every header, record, seal, index entry and
 * alive checksum has been recomputed, so that mutations reach the logic
 * behind the checksums.
 *
 * Checks the contracts of archive.h: every entry lies inside its segment, a
 * missing sequence number is a synthetic DAMAGED gap, a COMMIT that reads
 * back has its page images inside its record (version 1) or reports none
 * there (version 2, data offset 0) and the same page numbers read with its
 * pages, and a refresh with nothing new changes nothing; the sparse
 * reading on a fresh reader (summaries in use) answers with records in
 * bounds. Summaries
 * (archive_summary.c): every summary is parsed, and, when it parses, its
 * page map searched (a version found lies in the segment, at or before the
 * seq asked); it is also read part by part as composing reads it (head,
 * size changes, page table and last versions, versions), each part's
 * answers in bounds and, when the whole file parses, the same as its; every
 * segment is summarized, and what is built must parse and match its
 * segment.
 */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/core/archive_int.h"
#include "sqlenvfs/archive.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

#define MAX_SEGMENTS 8

typedef struct {
  GByteArray *seg[MAX_SEGMENTS];
  GByteArray *idx[MAX_SEGMENTS];
  GByteArray *sum[MAX_SEGMENTS];
  GByteArray *alive;
  guint n_segs;
} Files;

static char *archive_dir;

static void
fail(const char *what, guint64 seq)
{
  fprintf(stderr, "fuzz_archive: %s (record %" G_GUINT64_FORMAT ")\n", what, seq);
  abort();
}



static void
files_clear(Files *f)
{
  for (guint i = 0; i < MAX_SEGMENTS; i++) {
    if (f->seg[i])
      g_byte_array_unref(f->seg[i]);
    if (f->idx[i])
      g_byte_array_unref(f->idx[i]);
    if (f->sum[i])
      g_byte_array_unref(f->sum[i]);
  }
  if (f->alive)
    g_byte_array_unref(f->alive);
  memset(f, 0, sizeof *f);
}

/* Split the input at the file magics (see the top of this file). */
static void
split(const guint8 *data, gsize size, Files *f)
{
  GByteArray *cur;
  gsize i = 0, start = 0;

  memset(f, 0, sizeof *f);
  f->n_segs = 1;
  f->seg[0] = g_byte_array_new();
  cur = f->seg[0];
  while (i <= size) {
    gboolean at_end = i == size;
    gboolean is_magic = !at_end && i + 8 <= size && data[i] == 'S' &&
                        memcmp(data + i, "SQEFS", 5) == 0;
    gboolean is_seg = is_magic && memcmp(data + i + 5, "SEG", 3) == 0;
    gboolean is_idx = is_magic && memcmp(data + i + 5, "IDX", 3) == 0;
    gboolean is_alv = is_magic && memcmp(data + i + 5, "ALV", 3) == 0;
    gboolean is_sum = is_magic && memcmp(data + i + 5, "SUM", 3) == 0;
    if (!at_end && !is_seg && !is_idx && !is_alv && !is_sum) {
      i++;
      continue;
    }
    if (cur)
      g_byte_array_append(cur, data + start, (guint)(i - start));
    if (at_end)
      break;
    start = i;
    i += 8;
    if (is_seg) {
      /* The first magic at offset 0 opens segment 1 itself. */
      if (start == 0) {
        cur = f->seg[0];
      } else if (f->n_segs < MAX_SEGMENTS) {
        cur = f->seg[f->n_segs] = g_byte_array_new();
        f->n_segs++;
      } else {
        cur = NULL;
      }
    } else if (is_idx) {
      guint k = f->n_segs - 1;
      if (f->idx[k] == NULL)
        f->idx[k] = g_byte_array_new();
      cur = f->idx[k];
    } else if (is_sum) {
      guint k = f->n_segs - 1;
      if (f->sum[k] == NULL)
        f->sum[k] = g_byte_array_new();
      cur = f->sum[k];
    } else {
      if (f->alive == NULL)
        f->alive = g_byte_array_new();
      cur = f->alive;
    }
  }
}

static guint32
crc_of(const guint8 *p, gsize len)
{
  return sqlenvfs_crc32(0, p, len);
}

/* Recompute every checksum of @f in place (the layout is in archive_format.c). */
static void
fix_checksums(Files *f)
{
  for (guint k = 0; k < f->n_segs; k++) {
    guint8 *p = f->seg[k]->data;
    gsize len = f->seg[k]->len;
    gsize off = SEG_HEADER_SIZE;

    if (len >= SEG_HEADER_SIZE)
      put32(p + 60, crc_of(p, 60));
    while (len >= SEG_HEADER_SIZE && off + REC_HEADER_SIZE <= len) {
      guint64 length = get64(p + off + 8);
      if (p[off + 4] == 4 && p[off + 5] == 0) /* a seal: crc32 of the segment before it */
        put32(p + off + 80, crc_of(p, off));
      put32(p + off + 92, crc_of(p + off, 92));
      if (length < REC_EMPTY_SIZE || length > len - off)
        break;
      put32(p + off + length - 8, crc_of(p + off, length - 8));
      off += length;
    }
    if (f->idx[k] != NULL) {
      guint8 *q = f->idx[k]->data;
      gsize ilen = f->idx[k]->len;
      if (ilen >= IDX_HEADER_SIZE)
        put32(q + 28, crc_of(q, 28));
      for (gsize e = IDX_HEADER_SIZE; e + IDX_ENTRY_SIZE <= ilen; e += IDX_ENTRY_SIZE) {
        put32(q + e + 92, crc_of(q + e, 92));
        put32(q + e + 108, crc_of(q + e, 108));
      }
    }
  }
  for (guint k = 0; k < f->n_segs; k++) {
    guint8 *p;
    gsize len, hs;
    if (f->sum[k] == NULL || f->sum[k]->len < ARCHIVE_SUM_HEADER_SIZE + 4)
      continue;
    p = f->sum[k]->data;
    len = f->sum[k]->len;
    hs = get32(p + 8) == 2 ? ARCHIVE_SUM_HEADER_SIZE_V2 : ARCHIVE_SUM_HEADER_SIZE;
    if (len < hs)
      continue;
    {
      guint64 head = hs + (guint64)get32(p + 96) * IDX_ENTRY_SIZE +
                     (guint64)get32(p + 100) * ARCHIVE_SUM_GEN_SIZE;
      for (guint64 m = hs; m + IDX_ENTRY_SIZE <= MIN(head, len); m += IDX_ENTRY_SIZE) {
        put32(p + m + 92, crc_of(p + m, 92));
        put32(p + m + 108, crc_of(p + m, 108));
      }
    }
    /* Every checksum of the summary, as the writer sets them (nothing when
     * its counts do not fit its length). */
    (void)archive_summary_seal(p, len);
  }
  if (f->alive != NULL && f->alive->len >= ALIVE_SIZE)
    put32(f->alive->data + 28, crc_of(f->alive->data, 28));
}

static void
write_files(const Files *f)
{
  fuzz_rm_rf(archive_dir);
  if (!sqlenvfs_mkdir_p(archive_dir, 0700, NULL))
    abort();
  for (guint k = 0; k < f->n_segs; k++) {
    g_autofree char *sname = g_strdup_printf("%016u.seg", k + 1);
    g_autofree char *spath = g_build_filename(archive_dir, sname, NULL);
    fuzz_write_file(spath, f->seg[k]->data, f->seg[k]->len);
    if (f->idx[k] != NULL) {
      g_autofree char *iname = g_strdup_printf("%016u.idx", k + 1);
      g_autofree char *ipath = g_build_filename(archive_dir, iname, NULL);
      fuzz_write_file(ipath, f->idx[k]->data, f->idx[k]->len);
    }
    if (f->sum[k] != NULL) {
      g_autofree char *uname = g_strdup_printf("%016u.sum", k + 1);
      g_autofree char *upath = g_build_filename(archive_dir, uname, NULL);
      fuzz_write_file(upath, f->sum[k]->data, f->sum[k]->len);
    }
  }
  if (f->alive != NULL) {
    g_autofree char *apath = g_build_filename(archive_dir, "alive", NULL);
    fuzz_write_file(apath, f->alive->data, f->alive->len);
  }
}

/* The sparse reading on a fresh reader, before anything loads every entry
 * (summaries of sealed segments in use): what it answers must be records
 * of the archive, in bounds. */
static void
read_sparse(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SqlenvfsArchive) a = sqlenvfs_archive_open(archive_dir, &error);
  guint64 first = 0, last = 0, after, n;
  SqlenvfsArchiveEntry e;

  /* A refusal of the archive as a whole (segments whose records go back:
   * two histories in one directory) is the reader naming damage. */
  if (a == NULL && g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY))
    return;
  if (a == NULL)
    fail("open failed on a readable directory", 0);
  for (guint i = 0; i < sqlenvfs_archive_n_marks(a); i++) {
    const SqlenvfsArchiveEntry *m = sqlenvfs_archive_mark(a, i, &after);
    if (m->type != SQLENVFS_ARCHIVE_GAP && m->type != SQLENVFS_ARCHIVE_OUTAGE)
      fail("a mark that is not a GAP or an OUTAGE", m->seq);
  }
  if (!sqlenvfs_archive_bounds(a, &first, &last))
    return;
  if (first > last)
    fail("bounds out of order", first);
  for (guint64 s = first; s <= last && s < first + 64; s++)
    if (sqlenvfs_archive_get(a, s, &e) && e.seq != s)
      fail("get returned another record", s);
  if (sqlenvfs_archive_last_state(a, G_MAXINT64, 0, G_MAXUINT64, &e) &&
      !sqlenvfs_archive_entry_is_state(&e))
    fail("last_state returned a record that is not a state", e.seq);
  sqlenvfs_archive_count_commits(a, 0, G_MAXUINT64, &n, NULL, NULL);
  if (sqlenvfs_archive_get(a, first, &e))
    (void)sqlenvfs_archive_generation_end(a, first, G_MAXUINT64, &e);
  (void)sqlenvfs_archive_alive(a);
}

/* Open the archive and read every record the way restore does. */
static void
read_all(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SqlenvfsArchive) a = sqlenvfs_archive_open(archive_dir, &error);
  guint n;
  guint64 prev_seq = 0;

  /* A refusal of the archive as a whole (segments whose records go back:
   * two histories in one directory) is the reader naming damage. */
  if (a == NULL && g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY))
    return;
  if (a == NULL)
    fail("open failed on a readable directory", 0);
  n = sqlenvfs_archive_n_entries(a);
  for (guint i = 0; i < n; i++) {
    const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
    const SqlenvfsArchiveSegment *s;

    if (e->segment >= sqlenvfs_archive_n_segments(a))
      fail("an entry in no segment", e->seq);
    s = sqlenvfs_archive_segment(a, e->segment);
    if (e->seq == 0) {
      if (e->type != SQLENVFS_ARCHIVE_GAP || e->reason != SQLENVFS_GAP_DAMAGED)
        fail("a synthetic entry that is not a DAMAGED gap", 0);
      continue;
    }
    if (prev_seq != 0 && e->seq != prev_seq + 1 &&
        (i == 0 || sqlenvfs_archive_entry(a, i - 1)->seq != 0))
      fail("missing records without a DAMAGED gap", e->seq);
    prev_seq = e->seq;
    if (e->offset < SEG_HEADER_SIZE || e->length < REC_EMPTY_SIZE ||
        e->offset + e->length > s->size)
      fail("an entry outside its segment", e->seq);
    if (e->type == SQLENVFS_ARCHIVE_COMMIT) {
      g_autoptr(GError) rerr = NULL;
      guint64 data_offset = 0;
      g_autofree guint32 *pgnos = sqlenvfs_archive_read_commit(a, e, &data_offset, &rerr);
      if (pgnos != NULL) {
        gboolean packed = (e->flags & (SQLENVFS_ARCHIVE_COMPRESSED | SQLENVFS_ARCHIVE_BATCHED)) != 0;
        if (packed ? data_offset != 0
                   : data_offset + (guint64)e->n_pages * e->page_size + 8 > e->offset + e->length)
          fail("page images beyond their record", e->seq);
        for (guint32 p = 0; p < e->n_pages; p++)
          if (pgnos[p] == 0)
            fail("page number 0 read back", e->seq);
        /* Version 2: the pages decompressed (or from the batch's first
         * record), when few enough to hold. */
        if (packed && (guint64)e->n_pages * e->page_size <= 16 << 20) {
          g_autoptr(GError) perr = NULL;
          g_autofree guint8 *pages = NULL;
          g_autofree guint32 *again = sqlenvfs_archive_read_commit_pages(a, e, &pages, &perr);
          if (again == NULL && perr == NULL)
            fail("a COMMIT whose pages failed without an error", e->seq);
          if (again != NULL && memcmp(again, pgnos, (gsize)e->n_pages * 4) != 0)
            fail("page numbers that differ between read_commit and read_commit_pages", e->seq);
        }
      } else if (rerr == NULL) {
        fail("a COMMIT that failed without an error", e->seq);
      }
    } else if (e->type == SQLENVFS_ARCHIVE_GAP) {
      g_autoptr(GError) rerr = NULL;
      g_autofree char *text = sqlenvfs_archive_read_gap_text(a, e, &rerr);
      if (text == NULL && rerr == NULL)
        fail("a GAP whose text failed without an error", e->seq);
    }
  }
  (void)sqlenvfs_archive_alive(a);
  (void)sqlenvfs_archive_find_time(a, 0);
  (void)sqlenvfs_archive_find_time(a, G_MAXINT64);
  if (n > 0)
    (void)sqlenvfs_archive_find_time(a, sqlenvfs_archive_entry(a, n / 2)->time);
  if (!sqlenvfs_archive_refresh(a, &error)) {
    /* The open trusted a summary that reading the segments in full (the
     * entries above) found untrue, and the reload refused what the
     * summary hid: an archive opened now must refuse it too. */
    g_autoptr(GError) again = NULL;
    g_autoptr(SqlenvfsArchive) b = NULL;
    if (!g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY))
      fail("refresh failed on a readable directory", 0);
    b = sqlenvfs_archive_open(archive_dir, &again);
    if (b != NULL || !g_error_matches(again, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY))
      fail("a refresh refused what an open accepts", 0);
    return;
  }
  if (sqlenvfs_archive_n_entries(a) != n)
    fail("a refresh with nothing new changed the entries", 0);
}

static void
problem_cb(gpointer user, const char *file, const char *message)
{
  if (file == NULL || message == NULL || *message == '\0')
    fail("a problem without a file or a message", 0);
  (*(guint *)user)++;
}

/* Search the page map of the parsed summary @p for a few pages and seqs:
 * what is found must be a version at or before the seq asked, inside the
 * segment. */
static void
search_page_map(const guint8 *p, const ArchiveSummary *s)
{
  for (guint i = 0; i < MIN(s->n_pages, 64u); i++) {
    guint32 pgno = get32(p + s->pages_off + (gsize)i * ARCHIVE_SUM_PAGE_SIZE);
    guint64 seqs[] = { 0, s->first_seq, (s->first_seq + s->last_seq) / 2, s->last_seq,
                       G_MAXUINT64 };
    for (guint j = 0; j < G_N_ELEMENTS(seqs); j++) {
      ArchiveSumVersion v;
      if (!archive_summary_page_version(p, s, pgno, seqs[j], &v))
        continue;
      if (v.seq > seqs[j] || v.seq < s->first_seq || v.seq >= s->last_seq ||
          v.offset < SEG_HEADER_SIZE || v.offset >= s->seg_size)
        fail("a page version outside what was asked or outside the segment", v.seq);
    }
    if (!archive_summary_page_version(p, s, pgno, G_MAXUINT64, &(ArchiveSumVersion){ 0 }))
      fail("a page of the page table without a version", pgno);
  }
}

/* Read the summary of segment @k part by part, as composing does: what
 * reads must agree with the whole file's parse (@whole_ok: it parsed and
 * matches the segment; @p, @ws), and every version it answers lies in the
 * segment at or before the seq asked. */
static void
read_parts(const Files *f, guint k, gboolean whole_ok, const guint8 *p, const ArchiveSummary *ws)
{
  g_autofree char *spath = g_strdup_printf("%s/%016u.seg", archive_dir, k + 1);
  g_autoptr(GError) error = NULL;
  ArchiveSumParts sp;
  const char *why = NULL;
  guint32 seal;
  ArchiveSumLoad r;

  if (!archive_read_seal(spath, f->seg[k]->len, &seal))
    return;
  whole_ok = whole_ok && ws->seal_crc == seal;
  r = archive_summary_open_parts(archive_dir, k + 1, f->seg[k]->len, seal, &sp, &why, &error);
  if (r == ARCHIVE_SUM_ERROR || (r == ARCHIVE_SUM_BAD && why == NULL))
    fail("a summary's head refused without a reason", 0);
  if (r != ARCHIVE_SUM_GOOD) {
    if (whole_ok)
      fail("a summary that parses whole refused by its head", 0);
    return;
  }
  for (ArchiveSumPart part = ARCHIVE_SUM_PART_SIZES; part <= ARCHIVE_SUM_PART_VERSIONS; part++) {
    why = NULL;
    r = archive_summary_read_part(&sp, part, &why, &error);
    if (r == ARCHIVE_SUM_ERROR || (r == ARCHIVE_SUM_BAD && why == NULL))
      fail("a summary's part refused without a reason", part);
    if (r != ARCHIVE_SUM_GOOD && whole_ok)
      fail("a summary that parses whole has a part refused", part);
    if (r == ARCHIVE_SUM_GOOD && part == ARCHIVE_SUM_PART_SIZES && sp.sizes == NULL)
      fail("a part read without its bytes", part);
    if (r != ARCHIVE_SUM_GOOD && part == ARCHIVE_SUM_PART_PAGES)
      break; /* the versions need the page table */
    if (r != ARCHIVE_SUM_GOOD || part == ARCHIVE_SUM_PART_SIZES)
      continue;
    for (guint32 i = 0; i < MIN(sp.s.n_pages, 64u); i++) {
      guint32 pgno = get32(sp.pages + (gsize)i * ARCHIVE_SUM_PAGE_SIZE);
      guint64 seqs[] = { 0, sp.s.first_seq, (sp.s.first_seq + sp.s.last_seq) / 2,
                         sp.s.last_seq, G_MAXUINT64 };
      for (guint j = 0; j < G_N_ELEMENTS(seqs); j++) {
        ArchiveSumVersion v, w;
        gboolean found;
        /* Without the versions, only what the last versions answer. */
        if (sp.versions == NULL && seqs[j] < sp.s.last_seq)
          continue;
        found = archive_summary_parts_version(&sp, i, seqs[j], &v);
        if (found && (v.seq > seqs[j] || v.seq < sp.s.first_seq || v.seq >= sp.s.last_seq ||
                      v.offset < SEG_HEADER_SIZE || v.offset >= sp.s.seg_size))
          fail("a page version of a part outside what was asked or the segment", v.seq);
        if (whole_ok &&
            (found != archive_summary_page_version(p, ws, pgno, seqs[j], &w) ||
             (found && (v.seq != w.seq || v.offset != w.offset || v.index != w.index ||
                        v.crc != w.crc))))
          fail("the parts and the whole summary answer differently", pgno);
      }
    }
  }
  archive_summary_parts_clear(&sp);
}

/* Parse every summary given (whole, and part by part); summarize every
 * segment, and parse what is built. */
static void
check_summaries(const Files *f)
{
  for (guint k = 0; k < f->n_segs; k++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(GByteArray) built = NULL;
    ArchiveSummary s;
    const char *why = NULL;
    if (f->sum[k] != NULL) {
      gboolean whole_ok = archive_summary_parse(f->sum[k]->data, f->sum[k]->len, &s, &why);
      if (whole_ok)
        search_page_map(f->sum[k]->data, &s);
      read_parts(f, k, whole_ok && s.number == k + 1 && s.seg_size == f->seg[k]->len, f->sum[k]->data,
                 &s);
    }
    built = archive_summary_build(archive_dir, k + 1, &error);
    if (built == NULL) {
      if (error == NULL)
        fail("a segment not summarized without an error", 0);
      continue;
    }
    if (!archive_summary_parse(built->data, built->len, &s, &why))
      fail(why, 0);
    if (s.number != k + 1 || s.seg_size != f->seg[k]->len)
      fail("a summary built that does not match its segment", 0);
    search_page_map(built->data, &s);
  }
}

static void
check(const Files *f)
{
  SqlenvfsArchiveVerifyResult res;
  guint n_problems = 0;
  g_autoptr(GError) error = NULL;
  gboolean ok;

  write_files(f);
  /* What a remote reader does with an index it fetched: all of it or none. */
  for (guint i = 0; i < f->n_segs; i++) {
    g_autoptr(GArray) entries = g_array_new(FALSE, FALSE, sizeof(SqlenvfsArchiveEntry));
    if (f->idx[i] == NULL)
      continue;
    if (!sqlenvfs_archive_idx_decode(f->idx[i]->data, f->idx[i]->len, i + 1, entries) &&
        entries->len != 0)
      fail("a refused index left entries behind", 0);
  }
  read_sparse();
  read_all();
  check_summaries(f);
  ok = sqlenvfs_archive_verify(archive_dir, problem_cb, &n_problems, &res, &error);
  if (ok != (n_problems == 0) || (!ok && error == NULL) || res.n_problems != n_problems)
    fail("verify's result disagrees with the problems it reported", 0);
  /* What `prune --dry-run` reads: the segment headers. */
  {
    g_autoptr(GError) perr = NULL;
    g_autoptr(GPtrArray) removed = g_ptr_array_new_with_free_func(g_free);
    int n = sqlenvfs_archive_prune(archive_dir, G_MAXUINT64, TRUE, removed, &perr);
    if (n < 0 ? perr == NULL : (guint)n != removed->len || n >= (int)MAX(f->n_segs, 1))
      fail("prune's count disagrees with what it would remove", 0);
  }
  /* What the archiver does on start: recover the last segment. */
  {
    g_autoptr(GError) werr = NULL;
    g_autoptr(SqlenvfsArchiveWriter) w =
      sqlenvfs_archive_writer_open(archive_dir, 64 * 1024, 0600, &werr);
    if (w == NULL && werr == NULL)
      fail("writer_open failed without an error", 0);
  }
  read_all();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  fuzz_init_logging();
  archive_dir = g_build_filename(fuzz_tmpdir(), "wal_archives", "app", NULL);
  return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  Files f;

  split(data, size, &f);
  check(&f);
  fix_checksums(&f);
  check(&f);
  files_clear(&f);
  return 0;
}
