/*
 * archive_summary.c — segment summaries: what a reader needs of a sealed
 * segment without its index or its records (docs/ARCHIVE.md, "Segment
 * summaries").
 *
 * <number>.sum, written once the segment is sealed (its SEAL record written
 * and synced), built from the segment's records alone (never from its
 * index), atomically (temporary, fsync, rename, fsync of the directory),
 * with the segment's permission bits. All integers little-endian.
 *
 * Version 2 (what the writer writes; version 1 below):
 *
 *   header, 160 bytes
 *      0  8  magic "SQEFSSUM"
 *      8  4  summary version (2)
 *     12  4  header size (160)
 *     16  8  segment number
 *     24  8  segment size in bytes (its SEAL record included)
 *     32  4  the seal's crc32 (the checksum the SEAL record carries)
 *     36  4  the segment's format version
 *     40  8  seq of the first record     48  8  seq of the last (the SEAL)
 *     56  8  time of the first record    64  8  time of the last
 *     72  8  records                     80  8  COMMIT records
 *     88  8  bytes of the COMMIT records
 *     96  4  m: marks                   100  4  g: generations
 *    104  4  p: page numbers            108  4  v: page versions
 *    112  4  flags (1: page versions carry the crc32 of their image)
 *    116  4  database size in pages after the last COMMIT (0: none)
 *    120  4  head checksum: crc32 of bytes 0..119 and 124..159, then of
 *            the marks and the generations (so it covers the checksums of
 *            the parts below as well)
 *    124  4  z: size changes
 *    128  4  crc32 of the size changes    132  4  of the page table
 *    136  4  crc32 of the last versions   140  4  of the versions
 *    144 16  zero
 *   marks, m x 112 bytes: the segment's GAP and OUTAGE records, each as its
 *     index entry (the .idx encoding: header, offset, crc32)
 *   generations, g x 40 bytes, in seq order: runs of consecutive COMMIT
 *     records of one WAL generation whose commit frames increase
 *      0  4  salt-1   4  4  salt-2   8  8  first seq   16  8  last seq
 *     24  4  commit frame of the first   28  4  of the last
 *     32  4  COMMIT records in the run   36  4  zero
 *   size changes, z x 16 bytes, in seq order: u64 seq, u32 database size
 *     in pages after it, u32 zero; one for the segment's first COMMIT and
 *     one for every COMMIT whose size differs from the COMMIT's before it
 *   pages, p x 8 bytes, by increasing page number: u32 page number, u32
 *     index of its first version (its versions run to the next page's
 *     first, the last page's to v)
 *   last versions, p x 24 bytes: the last version of each page of the page
 *     table, in its order (a copy of the last of its versions): what a
 *     reader composing a range that holds the whole segment needs
 *   versions, v x 24 bytes, per page by increasing seq: u64 seq of the
 *     COMMIT, u64 offset of the record holding the image (a batch's first
 *     record for the commits of a batch), u32 index of the image among that
 *     record's pages (its page stream), u32 crc32 of the page image (flag 1:
 *     version 1 segments, whose images are not otherwise checksummed on
 *     their own; 0 otherwise: version 2 blocks carry their own checksums)
 *
 * Each part is read and checked on its own (its crc32, which the head
 * checksum covers, then its order and bounds), so that a reader reads only
 * what it needs: the head to plan, the size changes to walk a range, the
 * page table and last versions to compose a whole segment, the versions
 * only for a segment a range ends inside.
 *
 * Version 1 (still read; verify rebuilds a summary in its own version):
 * header of 128 bytes, the same fields to byte 127, its head checksum
 * over bytes 0..119 and the marks and generations; no last versions; a
 * trailer, 4 bytes, the crc32 of every byte before it (the only checksum
 * of its size changes and page map, so it is read and checked whole).
 *
 * Invariants:
 *   (S1) A part of a summary is used only when the head checksum and its
 *        own are right (version 1: the head checksum and the trailer),
 *        every count agrees with the file's size, and it matches the
 *        segment: number, size and seal checksum. Anything else is a bad
 *        summary: readers fall back to the segment's index and records;
 *        verify reports it. The reader opens the archive on the summary's
 *        number alone and checks the segment's size, header and seal
 *        checksum where it first reads the segment (archive_seg_check();
 *        docs/ARCHIVE.md, "When a sealed segment is checked against its
 *        summary"): a mismatch found then fails that read (INTEGRITY),
 *        and the segment is read from its records from then on, by any
 *        archive the process opens while both files stay as they were.
 *   (S2) A summary only ever describes a sealed segment, which is never
 *        written again; so a summary that matches is current.
 *   (S3) A page version names a record of the segment; readers still check
 *        that record's header (and a v1 image's crc32, a v2 block's
 *        checksum) when they use it: a damaged summary never yields a wrong
 *        page, at worst an INTEGRITY error.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive_int.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

typedef struct {
  guint32 pgno;
  guint64 seq, offset;
  guint32 index, crc;
} Version;

/* By page number, then by seq. */
static gboolean
version_before(const Version *a, const Version *b)
{
  return a->pgno != b->pgno ? a->pgno < b->pgno : a->seq < b->seq;
}

/* Sort @v (@n versions) by version_before(), with @tmp of as many: a merge
 * sort whose scratch comes from sqlenvfs_alloc_large() (a segment's versions
 * run to megabytes, touched once). Versions come in record order, and a
 * record's pages mostly ascend from one record to the next (a table that
 * grows), so runs are sorted by insertion first, and two runs already in
 * order are copied without comparing their elements; the passes alternate
 * between @v and @tmp. */
static void
sort_versions(Version *v, gsize n, Version *tmp)
{
  enum { RUN = 32 };
  Version *src = v, *dst = tmp;

  for (gsize lo = 0; lo < n; lo += RUN) {
    gsize hi = MIN(lo + RUN, n);
    for (gsize i = lo + 1; i < hi; i++) {
      Version x = v[i];
      gsize j = i;
      for (; j > lo && version_before(&x, &v[j - 1]); j--)
        v[j] = v[j - 1];
      v[j] = x;
    }
  }
  for (gsize w = RUN; w < n; w *= 2) {
    for (gsize lo = 0; lo < n; lo += 2 * w) {
      gsize mid = MIN(lo + w, n), hi = MIN(lo + 2 * w, n), i = lo, j = mid, k = lo;
      if (mid < hi && version_before(&src[mid], &src[mid - 1]))
        while (i < mid && j < hi)
          dst[k++] = version_before(&src[j], &src[i]) ? src[j++] : src[i++];
      memcpy(dst + k, src + i, (mid - i) * sizeof *src);
      k += mid - i;
      memcpy(dst + k, src + j, (hi - j) * sizeof *src);
    }
    {
      Version *t = src;
      src = dst;
      dst = t;
    }
  }
  if (src != v)
    memcpy(v, src, n * sizeof *v);
}

static gboolean
not_summarized(GError **error, const char *path, const char *why)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "summarize archive segment %s: %s (run `sqlenvfs verify`)", path, why);
  return FALSE;
}

/* Read, for the COMMIT @e of @sf, its page numbers into @pgnos (n_pages)
 * and, for an uncompressed record, the crc32 of each image into @crcs:
 * from @sf's window when it holds them (a pass over the records has just
 * read them there), else read again. */
static gboolean
read_commit_pages(SegFile *sf, const SqlenvfsArchiveEntry *e, guint32 *pgnos, guint32 *crcs,
                  guint8 *chunk, GError **error)
{
  gsize got, len = 4 * (gsize)e->n_pages;
  guint64 pos = e->offset + REC_HEADER_SIZE;
  const guint8 *in_window;

  if (!archive_seg_map(sf, pos, len + (crcs ? (gsize)e->n_pages * e->page_size : 0), &in_window,
                       error))
    return FALSE;
  if (in_window != NULL) {
    for (guint32 i = 0; i < e->n_pages; i++)
      pgnos[i] = get32(in_window + 4 * (gsize)i);
    if (crcs != NULL)
      for (guint32 i = 0; i < e->n_pages; i++)
        crcs[i] = crc(0, in_window + len + (gsize)i * e->page_size, e->page_size);
    return TRUE;
  }
  for (gsize done = 0; done < len;) {
    gsize want = MIN(len - done, (gsize)IO_CHUNK);
    if (!archive_seg_pread(sf, chunk, want, pos + done, &got, error))
      return FALSE;
    if (got < want)
      return not_summarized(error, sf->path, "a record is cut short");
    for (gsize i = 0; i < want; i += 4)
      pgnos[(done + i) / 4] = get32(chunk + i);
    done += want;
  }
  if (crcs == NULL)
    return TRUE;
  pos += len;
  for (guint32 i = 0; i < e->n_pages; i++) {
    if (e->page_size > IO_CHUNK)
      return not_summarized(error, sf->path, "a record has an impossible page size");
    if (!archive_seg_pread(sf, chunk, e->page_size, pos, &got, error))
      return FALSE;
    if (got < e->page_size)
      return not_summarized(error, sf->path, "a record is cut short");
    crcs[i] = crc(0, chunk, e->page_size);
    pos += e->page_size;
  }
  return TRUE;
}

/* A compressed COMMIT record, which a batch's later commits point back to
 * (a few per segment: the builder keeps no copy of every record). */
typedef struct {
  guint64 index;         /* among the segment's records, from 0 */
  guint64 offset;
  guint32 stream_pages;
} Head;

/* What a summary is built from, gathered record by record. */
struct _ArchiveSumBuilder {
  char *path;         /* the segment, for messages                     */
  guint32 seg_version;
  guint32 flags;      /* ARCHIVE_SUM_PAGE_CRCS for version 1 segments  */
  guint64 first_seq;  /* the segment header's                          */
  guint64 n_recs;     /* records so far                                */
  SqlenvfsArchiveEntry first; /* the first of them                      */
  GArray *marks;      /* SqlenvfsArchiveEntry, the GAP and OUTAGE ones  */
  GArray *heads;      /* Head, the compressed COMMITs (a batch's first) */
  Version *versions;  /* n_versions of them, in cap_bytes              */
  gsize n_versions, cap_bytes;
  GArray *gens;       /* 40-byte generation runs                       */
  GArray *sizes;      /* size changes                                  */
  guint64 n_commits, commit_bytes;
  guint32 last_db_pages;
  guint n_marks;
  gboolean sealed;
  SqlenvfsArchiveEntry seal;
  GError *failed;     /* the first record that makes no summary        */
  guint32 *pgnos, *crcs;
  guint32 cap;
};

ArchiveSumBuilder *
archive_sum_builder_new(const SegFile *sf)
{
  ArchiveSumBuilder *b;

  g_return_val_if_fail(sf->hdr_ok, NULL);
  b = g_new0(ArchiveSumBuilder, 1);
  b->path = g_strdup(sf->path);
  b->seg_version = sf->hdr.version;
  b->flags = sf->hdr.version == 1 ? ARCHIVE_SUM_PAGE_CRCS : 0;
  b->first_seq = sf->hdr.first_seq;
  b->marks = g_array_new(FALSE, FALSE, sizeof(SqlenvfsArchiveEntry));
  b->heads = g_array_new(FALSE, FALSE, sizeof(Head));
  b->gens = g_array_new(FALSE, FALSE, 40);
  b->sizes = g_array_new(FALSE, FALSE, ARCHIVE_SUM_SIZE_SIZE);
  return b;
}

void
archive_sum_builder_free(ArchiveSumBuilder *b)
{
  if (b == NULL)
    return;
  g_free(b->path);
  g_array_unref(b->marks);
  g_array_unref(b->heads);
  g_free(b->versions);
  g_array_unref(b->gens);
  g_array_unref(b->sizes);
  g_clear_error(&b->failed);
  g_free(b->pgnos);
  g_free(b->crcs);
  g_free(b);
}

/* The COMMIT @e's pages: its versions, its generation run. */
static gboolean
builder_add_commit(ArchiveSumBuilder *b, SegFile *sf, const SqlenvfsArchiveEntry *e,
                   guint8 *chunk, GError **error)
{
  guint64 img_off = e->offset;
  guint32 first = 0;

  if (b->n_commits == 0 || e->db_pages != b->last_db_pages) {
    guint8 z[ARCHIVE_SUM_SIZE_SIZE] = { 0 };
    put64(z, e->seq);
    put32(z + 8, e->db_pages);
    g_array_append_vals(b->sizes, z, 1);
  }
  b->n_commits++;
  b->commit_bytes += e->length;
  b->last_db_pages = e->db_pages;
  if ((b->flags & ARCHIVE_SUM_PAGE_CRCS) &&
      (e->flags & (SQLENVFS_ARCHIVE_COMPRESSED | SQLENVFS_ARCHIVE_BATCHED)))
    return not_summarized(error, b->path, "a version 1 segment holds a compressed record");
  if (e->n_pages > b->cap) {
    b->cap = MAX(e->n_pages, 2 * b->cap);
    g_free(b->pgnos);
    g_free(b->crcs);
    b->pgnos = g_new(guint32, b->cap);
    b->crcs = g_new(guint32, b->cap);
  }
  if (!read_commit_pages(sf, e, b->pgnos, (b->flags & ARCHIVE_SUM_PAGE_CRCS) ? b->crcs : NULL,
                         chunk, error))
    return FALSE;
  if (e->flags & SQLENVFS_ARCHIVE_BATCHED) {
    const Head *h = NULL;
    guint64 target;
    if (e->reason == 0 || e->reason > b->n_recs - 1)
      return not_summarized(error, b->path, "a batch member points before the segment");
    /* The record it points to must be a compressed COMMIT: one of the
     * heads, searched from the newest (its batch's, in a sound segment). */
    target = b->n_recs - 1 - e->reason;
    for (guint i = b->heads->len; i > 0 && h == NULL; i--) {
      const Head *c = &g_array_index(b->heads, Head, i - 1);
      if (c->index < target)
        break;
      if (c->index == target)
        h = c;
    }
    if (h == NULL || (guint64)e->text_len + e->n_pages > h->stream_pages)
      return not_summarized(error, b->path, "a batch member does not match its first record");
    img_off = h->offset;
    first = e->text_len;
  }
  for (guint32 i = 0; i < e->n_pages; i++) {
    Version v = { b->pgnos[i], e->seq, img_off, first + i,
                  (b->flags & ARCHIVE_SUM_PAGE_CRCS) ? b->crcs[i] : 0 };
    if (b->pgnos[i] == 0)
      return not_summarized(error, b->path, "a record lists page number 0");
    if ((b->n_versions + 1) * sizeof(Version) > b->cap_bytes)
      b->versions = sqlenvfs_grow_large(b->versions, b->n_versions * sizeof(Version),
                                        (b->n_versions + 1) * sizeof(Version), &b->cap_bytes);
    b->versions[b->n_versions++] = v;
  }
  /* Generations: a new run when the salts change or the commit frame
   * does not increase (so that a run is searchable by frame). */
  {
    guint8 *g = b->gens->len ? (guint8 *)b->gens->data + (b->gens->len - 1) * 40 : NULL;
    if (g && get32(g) == e->salt1 && get32(g + 4) == e->salt2 &&
        get32(g + 28) < e->commit_frame && get64(g + 16) < e->seq) {
      put64(g + 16, e->seq);
      put32(g + 28, e->commit_frame);
      put32(g + 32, get32(g + 32) + 1);
    } else {
      guint8 ng[40] = { 0 };
      put32(ng, e->salt1);
      put32(ng + 4, e->salt2);
      put64(ng + 8, e->seq);
      put64(ng + 16, e->seq);
      put32(ng + 24, e->commit_frame);
      put32(ng + 28, e->commit_frame);
      put32(ng + 32, 1);
      g_array_append_vals(b->gens, ng, 1);
    }
  }
  return TRUE;
}

void
archive_sum_builder_add(ArchiveSumBuilder *b, SegFile *sf, const SqlenvfsArchiveEntry *e,
                        guint8 *chunk)
{
  SqlenvfsArchiveEntry r = *e;

  if (b->failed != NULL)
    return;
  if (b->sealed) {
    not_summarized(&b->failed, b->path, "its seal does not match it");
    return;
  }
  if (r.seq != b->first_seq + b->n_recs) {
    not_summarized(&b->failed, b->path, "its sequence numbers do not follow each other");
    return;
  }
  r.segment = 0;
  if (b->n_recs == 0)
    b->first = r;
  b->n_recs++;
  if (r.type == SQLENVFS_ARCHIVE_COMMIT && (r.flags & SQLENVFS_ARCHIVE_COMPRESSED)) {
    Head h = { b->n_recs - 1, r.offset, archive_stream_pages(&r) };
    g_array_append_val(b->heads, h);
  }
  if (r.type == SQLENVFS_ARCHIVE_SEAL) {
    b->seal = r;
    b->sealed = TRUE;
  } else if (r.type == SQLENVFS_ARCHIVE_GAP || r.type == SQLENVFS_ARCHIVE_OUTAGE) {
    g_array_append_val(b->marks, r);
    b->n_marks++;
  } else if (r.type == SQLENVFS_ARCHIVE_COMMIT) {
    builder_add_commit(b, sf, &r, chunk, &b->failed);
  }
}

void
archive_sum_builder_fail(ArchiveSumBuilder *b, const char *why)
{
  if (b->failed == NULL)
    not_summarized(&b->failed, b->path, why);
}

GByteArray *
archive_sum_builder_finish(ArchiveSumBuilder *b, const char *dir, guint64 number, guint64 size,
                           guint32 version, GError **error)
{
  g_autoptr(GByteArray) out = NULL;
  const Version *versions = b->versions;
  const gsize n_versions = b->n_versions;
  GArray *gens = b->gens, *sizes = b->sizes;
  const gsize hs = version == 1 ? ARCHIVE_SUM_HEADER_SIZE : ARCHIVE_SUM_HEADER_SIZE_V2;
  guint64 n_pages = 0;
  guint8 *p;

  g_return_val_if_fail(version == 1 || version == 2, NULL);
  if (b->failed != NULL) {
    g_propagate_error(error, g_error_copy(b->failed));
    return NULL;
  }
  if (!b->sealed) {
    not_summarized(error, b->path, "it is not sealed");
    return NULL;
  }
  {
    g_autofree Version *tmp = sqlenvfs_alloc_large(MAX(b->cap_bytes, sizeof *tmp));
    sort_versions(b->versions, n_versions, tmp);
  }
  for (gsize i = 0; i < n_versions; i++)
    if (i == 0 || versions[i].pgno != versions[i - 1].pgno)
      n_pages++;
  if (n_versions > G_MAXUINT32 || n_pages > G_MAXUINT32) {
    not_summarized(error, b->path, "it holds too many page versions");
    return NULL;
  }

  {
    gsize len = hs + (gsize)b->n_marks * IDX_ENTRY_SIZE + (gsize)gens->len * ARCHIVE_SUM_GEN_SIZE +
                (gsize)sizes->len * ARCHIVE_SUM_SIZE_SIZE + n_pages * ARCHIVE_SUM_PAGE_SIZE +
                (version == 2 ? n_pages * ARCHIVE_SUM_VERSION_SIZE : 0) +
                n_versions * ARCHIVE_SUM_VERSION_SIZE + (version == 1 ? 4 : 0);
    const SqlenvfsArchiveEntry *first_rec = &b->first; /* sealed: there is one */
    const SqlenvfsArchiveEntry *seal = &b->seal;
    guint8 *last;
    guint k = 0;
    out = g_byte_array_new_take(sqlenvfs_alloc_large(len), len);
    p = out->data;
    memset(p, 0, len);
    memcpy(p, ARCHIVE_SUM_MAGIC, 8);
    put32(p + 8, version);
    put32(p + 12, (guint32)hs);
    put64(p + 16, number);
    put64(p + 24, size);
    put32(p + 32, seal->reason);
    put32(p + 36, b->seg_version);
    put64(p + 40, first_rec->seq);
    put64(p + 48, seal->seq);
    put64(p + 56, (guint64)first_rec->time);
    put64(p + 64, (guint64)seal->time);
    put64(p + 72, b->n_recs);
    put64(p + 80, b->n_commits);
    put64(p + 88, b->commit_bytes);
    put32(p + 96, b->n_marks);
    put32(p + 100, gens->len);
    put32(p + 104, (guint32)n_pages);
    put32(p + 108, (guint32)n_versions);
    put32(p + 112, b->flags);
    put32(p + 116, b->last_db_pages);
    put32(p + 124, sizes->len);
    p += hs;
    for (guint i = 0; i < b->marks->len; i++) {
      archive_encode_idx_entry(&g_array_index(b->marks, SqlenvfsArchiveEntry, i), p);
      p += IDX_ENTRY_SIZE;
    }
    if (gens->len > 0) /* an empty array has no data (memcpy wants a pointer) */
      memcpy(p, gens->data, (gsize)gens->len * ARCHIVE_SUM_GEN_SIZE);
    p += (gsize)gens->len * ARCHIVE_SUM_GEN_SIZE;
    if (sizes->len > 0)
      memcpy(p, sizes->data, (gsize)sizes->len * ARCHIVE_SUM_SIZE_SIZE);
    p += (gsize)sizes->len * ARCHIVE_SUM_SIZE_SIZE;
    for (gsize i = 0; i < n_versions; i++) {
      const Version *v = &versions[i];
      if (i == 0 || v->pgno != (v - 1)->pgno) {
        put32(p, v->pgno);
        put32(p + 4, i);
        p += ARCHIVE_SUM_PAGE_SIZE;
        k++;
      }
    }
    g_assert(k == n_pages);
    last = p; /* version 2: the last version of each page, then all */
    if (version == 2)
      p += n_pages * ARCHIVE_SUM_VERSION_SIZE;
    for (gsize i = 0; i < n_versions; i++) {
      const Version *v = &versions[i];
      put64(p, v->seq);
      put64(p + 8, v->offset);
      put32(p + 16, v->index);
      put32(p + 20, v->crc);
      if (version == 2 && (i + 1 == n_versions || (v + 1)->pgno != v->pgno)) {
        memcpy(last, p, ARCHIVE_SUM_VERSION_SIZE);
        last += ARCHIVE_SUM_VERSION_SIZE;
      }
      p += ARCHIVE_SUM_VERSION_SIZE;
    }
    g_assert(p + (version == 1 ? 4 : 0) == out->data + len);
    if (!archive_summary_seal(out->data, len))
      g_assert_not_reached(); /* its counts are what was just written */
  }
  {
    /* Records that pass their own checks can still make a summary readers
     * would refuse (a page listed twice in one commit, say): none is
     * written then, and readers use the segment's index. */
    ArchiveSummary parsed;
    const char *why = NULL;
    if (!archive_summary_parse(out->data, out->len, &parsed, &why)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "the records of segment %" G_GUINT64_FORMAT " of %s make no valid summary (%s)",
                  number, dir, why);
      return NULL;
    }
  }
  return g_steal_pointer(&out);
}

GByteArray *
archive_summary_build(const char *dir, guint64 number, GError **error)
{
  return archive_summary_build_version(dir, number, ARCHIVE_SUM_VERSION, error);
}

GByteArray *
archive_summary_build_version(const char *dir, guint64 number, guint32 version, GError **error)
{
  SegFile sf;
  g_autofree guint8 *chunk = g_malloc(IO_CHUNK);
  g_autoptr(ArchiveSumBuilder) b = NULL;
  guint8 hbuf[SEG_HEADER_SIZE];
  guint64 off = SEG_HEADER_SIZE;
  ArchiveSegSums c;
  gsize got;
  GByteArray *out;

  g_return_val_if_fail(version == 1 || version == 2, NULL);
  if (!archive_seg_file_open(dir, number, O_RDONLY, &sf, error))
    return NULL;
  if (!sf.hdr_ok) {
    not_summarized(error, sf.path, sf.hdr_why);
    archive_seg_file_close(&sf);
    return NULL;
  }
  b = archive_sum_builder_new(&sf);
  archive_seg_file_buffer(&sf); /* one pass over every record: large reads */
  if (!archive_seg_pread(&sf, hbuf, sizeof hbuf, 0, &got, error))
    goto fail;
  archive_sums_start(&c, hbuf);
  while (off < sf.size) {
    SqlenvfsArchiveEntry e;
    gboolean torn;
    ArchiveSegSums before = c;
    if (!archive_read_record(&sf, off, &e, &torn, &c, chunk, error)) {
      if (error == NULL || *error == NULL)
        not_summarized(error, sf.path, "a record before its end is unreadable");
      goto fail;
    }
    archive_sum_builder_add(b, &sf, &e, chunk);
    off += e.length;
    if (e.type == SQLENVFS_ARCHIVE_SEAL) {
      if (e.reason != before.crc || off != sf.size ||
          ((e.flags & SEAL_HAS_DIGEST) && e.digest != before.digest))
        archive_sum_builder_fail(b, "its seal does not match it");
      break;
    }
    if (b->failed != NULL)
      break;
  }
  out = archive_sum_builder_finish(b, dir, number, sf.size, version, error);
  archive_seg_file_close(&sf);
  return out;

fail:
  archive_seg_file_close(&sf);
  return NULL;
}

char *
archive_summary_path(const char *dir, guint64 number)
{
  g_autofree char *name = archive_seg_name(number, "sum");
  return g_build_filename(dir, name, NULL);
}

gboolean
archive_summary_write(const char *dir, guint64 number, int mode, GError **error)
{
  g_autoptr(GByteArray) sum = archive_summary_build(dir, number, error);
  g_autofree char *path = archive_summary_path(dir, number);
  ArchiveSummary s;
  const char *why = NULL;

  if (sum == NULL || !sqlenvfs_write_file_atomic(path, sum->data, sum->len, mode, error))
    return FALSE;
  /* The last versions of its pages, when they save work (archive_last.c);
   * like the summary they only save readers work: without them, readers
   * use the records. */
  if (archive_summary_parse(sum->data, sum->len, &s, &why) && archive_last_worth(&s))
    archive_last_write(dir, number, sum->data, sum->len, mode);
  return TRUE;
}

guint32
archive_summary_head_crc(const guint8 *p, gsize head_len)
{
  gsize hs = get32(p + 8) == 2 ? ARCHIVE_SUM_HEADER_SIZE_V2 : ARCHIVE_SUM_HEADER_SIZE;
  guint32 c = crc(0, p, 120);

  g_return_val_if_fail(head_len >= hs, 0);
  if (hs > ARCHIVE_SUM_HEADER_SIZE) /* version 2: its z and the parts' checksums */
    c = crc(c, p + 124, hs - 124);
  return crc(c, p + hs, head_len - hs);
}

/* The version, counts and offsets of the header at @p (MIN(@file_len,
 * ARCHIVE_SUM_HEADER_MAX) bytes there), which must fit in @file_len bytes
 * exactly. */
static gboolean
layout(const guint8 *p, gsize file_len, ArchiveSummary *s, const char **why)
{
  memset(s, 0, sizeof *s);
  if (file_len < ARCHIVE_SUM_HEADER_SIZE + 4 || memcmp(p, ARCHIVE_SUM_MAGIC, 8) != 0) {
    *why = "not a segment summary (bad magic or too short)";
    return FALSE;
  }
  s->version = get32(p + 8);
  s->header_size = get32(p + 12);
  if (!(s->version == 1 && s->header_size == ARCHIVE_SUM_HEADER_SIZE) &&
      !(s->version == 2 && s->header_size == ARCHIVE_SUM_HEADER_SIZE_V2)) {
    *why = "unsupported summary version";
    return FALSE;
  }
  if (file_len < s->header_size) {
    *why = "not a segment summary (too short)";
    return FALSE;
  }
  s->n_marks = get32(p + 96);
  s->n_gens = get32(p + 100);
  s->n_pages = get32(p + 104);
  s->n_versions = get32(p + 108);
  s->n_sizes = get32(p + 124);
  s->marks_off = s->header_size;
  s->gens_off = s->marks_off + (guint64)s->n_marks * IDX_ENTRY_SIZE;
  s->sizes_off = s->gens_off + (guint64)s->n_gens * ARCHIVE_SUM_GEN_SIZE;
  s->pages_off = s->sizes_off + (guint64)s->n_sizes * ARCHIVE_SUM_SIZE_SIZE;
  s->last_off = s->pages_off + (guint64)s->n_pages * ARCHIVE_SUM_PAGE_SIZE;
  s->versions_off =
    s->last_off + (s->version == 2 ? (guint64)s->n_pages * ARCHIVE_SUM_VERSION_SIZE : 0);
  s->file_len =
    s->versions_off + (guint64)s->n_versions * ARCHIVE_SUM_VERSION_SIZE + (s->version == 1 ? 4 : 0);
  if (s->file_len != file_len) {
    *why = "its size does not match its counts";
    return FALSE;
  }
  return TRUE;
}

gboolean
archive_summary_seal(guint8 *p, gsize len)
{
  ArchiveSummary s;
  const char *why = NULL;

  if (!layout(p, len, &s, &why))
    return FALSE;
  if (s.version == 2) {
    put32(p + 128, crc(0, p + s.sizes_off, s.pages_off - s.sizes_off));
    put32(p + 132, crc(0, p + s.pages_off, s.last_off - s.pages_off));
    put32(p + 136, crc(0, p + s.last_off, s.versions_off - s.last_off));
    put32(p + 140, crc(0, p + s.versions_off, len - s.versions_off));
  }
  put32(p + 120, archive_summary_head_crc(p, (gsize)s.sizes_off));
  if (s.version == 1)
    put32(p + len - 4, crc(0, p, len - 4));
  return TRUE;
}

gboolean
archive_summary_parse_header(const guint8 *p, gsize file_len, ArchiveSummary *s,
                             const char **why)
{
  gboolean reserved_zero = TRUE;

  if (!layout(p, file_len, s, why))
    return FALSE;
  s->number = get64(p + 16);
  s->seg_size = get64(p + 24);
  s->seal_crc = get32(p + 32);
  s->seg_version = get32(p + 36);
  s->first_seq = get64(p + 40);
  s->last_seq = get64(p + 48);
  s->first_time = (gint64)get64(p + 56);
  s->last_time = (gint64)get64(p + 64);
  s->n_records = get64(p + 72);
  s->n_commits = get64(p + 80);
  s->commit_bytes = get64(p + 88);
  s->flags = get32(p + 112);
  s->last_db_pages = get32(p + 116);
  if (s->version == 2) {
    s->sizes_crc = get32(p + 128);
    s->pages_crc = get32(p + 132);
    s->last_crc = get32(p + 136);
    s->versions_crc = get32(p + 140);
    for (guint i = 144; i < ARCHIVE_SUM_HEADER_SIZE_V2; i++)
      reserved_zero = reserved_zero && p[i] == 0;
  }
  if (!archive_known_version(s->seg_version) || s->first_seq == 0 ||
      s->last_seq < s->first_seq || s->last_time < s->first_time ||
      s->n_records != s->last_seq - s->first_seq + 1 ||
      (guint64)s->n_marks + s->n_commits + 1 != s->n_records || s->seg_size <= SEG_HEADER_SIZE ||
      (s->flags & ~(guint32)ARCHIVE_SUM_PAGE_CRCS) != 0 || (s->n_versions == 0) != (s->n_pages == 0) ||
      s->n_pages > s->n_versions || (s->n_commits == 0) != (s->n_gens == 0) ||
      s->n_gens > s->n_commits || (s->n_commits == 0) != (s->n_sizes == 0) ||
      s->n_sizes > s->n_commits || !reserved_zero) {
    *why = "its header does not hold together";
    return FALSE;
  }
  return TRUE;
}

gboolean
archive_summary_check_head(const guint8 *p, const ArchiveSummary *s, const char **why)
{
  guint64 prev_seq = 0, gen_commits = 0;

  for (guint i = 0; i < s->n_marks; i++) {
    SqlenvfsArchiveEntry e;
    if (!archive_decode_idx_entry(p + s->marks_off + (gsize)i * IDX_ENTRY_SIZE, &e) ||
        (e.type != SQLENVFS_ARCHIVE_GAP && e.type != SQLENVFS_ARCHIVE_OUTAGE) ||
        e.seq <= prev_seq || e.seq < s->first_seq || e.seq >= s->last_seq ||
        e.offset < SEG_HEADER_SIZE || e.offset + e.length > s->seg_size) {
      *why = "a mark is not a GAP or OUTAGE record of the segment";
      return FALSE;
    }
    prev_seq = e.seq;
  }
  prev_seq = 0;
  for (guint i = 0; i < s->n_gens; i++) {
    const guint8 *g = p + s->gens_off + (gsize)i * ARCHIVE_SUM_GEN_SIZE;
    guint64 first = get64(g + 8), last = get64(g + 16);
    guint32 n = get32(g + 32);
    if (first <= prev_seq || first < s->first_seq || last < first || last >= s->last_seq ||
        get32(g + 28) < get32(g + 24) || n == 0 || n > last - first + 1 ||
        (n == 1) != (first == last)) {
      *why = "a generation is out of order or out of the segment";
      return FALSE;
    }
    gen_commits += n;
    prev_seq = last;
  }
  if (gen_commits != s->n_commits) {
    *why = "its generations do not count its commits";
    return FALSE;
  }
  return TRUE;
}

/* The size changes @z of @s: in seq order, inside the segment, the last
 * one the size the header gives. */
static gboolean
check_sizes(const guint8 *z, const ArchiveSummary *s, const char **why)
{
  guint64 prev_seq = 0;

  for (guint i = 0; i < s->n_sizes; i++, z += ARCHIVE_SUM_SIZE_SIZE) {
    guint64 seq = get64(z);
    if (seq <= prev_seq || seq < s->first_seq || seq >= s->last_seq ||
        (i + 1 == s->n_sizes && get32(z + 8) != s->last_db_pages)) {
      *why = "its size changes are out of order or out of the segment";
      return FALSE;
    }
    prev_seq = seq;
  }
  return TRUE;
}

/* Where the versions of the @i-th page of the page table @pg run: [*first,
 * *end). */
static void
page_versions(const guint8 *pg, const ArchiveSummary *s, guint32 i, guint32 *first, guint32 *end)
{
  *first = get32(pg + (gsize)i * ARCHIVE_SUM_PAGE_SIZE + 4);
  *end = i + 1 < s->n_pages ? get32(pg + (gsize)(i + 1) * ARCHIVE_SUM_PAGE_SIZE + 4)
                            : s->n_versions;
}

/* The page table @pg of @s: page numbers strictly increasing, each page's
 * versions a non-empty run, the runs in order and covering every version. */
static gboolean
check_pages(const guint8 *pg, const ArchiveSummary *s, const char **why)
{
  for (guint32 i = 0; i < s->n_pages; i++) {
    const guint8 *e = pg + (gsize)i * ARCHIVE_SUM_PAGE_SIZE;
    guint32 first, end;
    page_versions(pg, s, i, &first, &end);
    if (get32(e) == 0 || (i > 0 && get32(e - ARCHIVE_SUM_PAGE_SIZE) >= get32(e)) ||
        (i == 0 && first != 0) || end <= first || end > s->n_versions) {
      *why = "its page table is out of order";
      return FALSE;
    }
  }
  return TRUE;
}

/* A page version @v of @s names a COMMIT and a record of the segment. */
static gboolean
version_inside(const guint8 *v, const ArchiveSummary *s)
{
  guint64 seq = get64(v), off = get64(v + 8);
  return seq >= s->first_seq && seq < s->last_seq && off >= SEG_HEADER_SIZE && off < s->seg_size;
}

static gboolean
check_last(const guint8 *last, const ArchiveSummary *s, const char **why)
{
  for (guint32 i = 0; i < s->n_pages; i++)
    if (!version_inside(last + (gsize)i * ARCHIVE_SUM_VERSION_SIZE, s)) {
      *why = "a last page version is out of the segment";
      return FALSE;
    }
  return TRUE;
}

/* The versions @ver of @s, by the checked page table @pg: each page's in
 * increasing seq, inside the segment; and, with @last (version 2), the
 * last of each page's the same bytes as its entry in @last. */
static gboolean
check_versions(const guint8 *pg, const guint8 *last, const guint8 *ver, const ArchiveSummary *s,
               const char **why)
{
  for (guint32 i = 0; i < s->n_pages; i++) {
    guint64 prev_seq = 0;
    guint32 first, end;
    page_versions(pg, s, i, &first, &end);
    for (guint32 j = first; j < end; j++) {
      const guint8 *v = ver + (gsize)j * ARCHIVE_SUM_VERSION_SIZE;
      if (get64(v) <= prev_seq || !version_inside(v, s)) {
        *why = "a page version is out of order or out of the segment";
        return FALSE;
      }
      prev_seq = get64(v);
    }
    if (last != NULL && memcmp(last + (gsize)i * ARCHIVE_SUM_VERSION_SIZE,
                               ver + (gsize)(end - 1) * ARCHIVE_SUM_VERSION_SIZE,
                               ARCHIVE_SUM_VERSION_SIZE) != 0) {
      *why = "a last page version is not the last of its page's versions";
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
archive_summary_check_page_map(const guint8 *p, const ArchiveSummary *s, const char **why)
{
  const guint8 *last = s->version == 2 ? p + s->last_off : NULL;
  return check_sizes(p + s->sizes_off, s, why) && check_pages(p + s->pages_off, s, why) &&
         (last == NULL || check_last(last, s, why)) &&
         check_versions(p + s->pages_off, last, p + s->versions_off, s, why);
}

/* The checksums of the whole summary @p (@len bytes) with the header @s. */
static gboolean
checksums_right(const guint8 *p, gsize len, const ArchiveSummary *s)
{
  if (get32(p + 120) != archive_summary_head_crc(p, (gsize)s->sizes_off))
    return FALSE;
  if (s->version == 1)
    return get32(p + len - 4) == crc(0, p, len - 4);
  return s->sizes_crc == crc(0, p + s->sizes_off, s->pages_off - s->sizes_off) &&
         s->pages_crc == crc(0, p + s->pages_off, s->last_off - s->pages_off) &&
         s->last_crc == crc(0, p + s->last_off, s->versions_off - s->last_off) &&
         s->versions_crc == crc(0, p + s->versions_off, len - s->versions_off);
}

gboolean
archive_summary_parse(const guint8 *p, gsize len, ArchiveSummary *s, const char **why)
{
  if (!archive_summary_parse_header(p, len, s, why))
    return FALSE;
  if (!checksums_right(p, len, s)) {
    *why = "fails its checksum";
    return FALSE;
  }
  return archive_summary_check_head(p, s, why) && archive_summary_check_page_map(p, s, why);
}

static gboolean
matches_segment(const ArchiveSummary *s, guint64 number, guint64 seg_size, guint32 seal_crc,
                const char **why)
{
  /* @seg_size 0: the segment was not opened (the reader takes its size and
   * seal from here, and checks the segment against them when it first
   * reads it: archive_seg_check()). */
  if (s->number != number ||
      (seg_size != 0 && (s->seg_size != seg_size || s->seal_crc != seal_crc))) {
    *why = "it does not match its segment (number, size or seal checksum)";
    return FALSE;
  }
  return TRUE;
}

ArchiveSumLoad
archive_summary_load(const char *dir, guint64 number, guint64 seg_size, guint32 seal_crc,
                     ArchiveSummary *s, guint8 **data, const char **why, GError **error)
{
  g_autofree char *path = archive_summary_path(dir, number);
  g_autofree guint8 *buf = NULL;
  struct stat st;
  gsize got;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

  if (fd < 0) {
    if (errno == ENOENT)
      return ARCHIVE_SUM_MISSING;
    sqlenvfs_error_errno(error, errno, "open segment summary", path);
    return ARCHIVE_SUM_ERROR;
  }
  if (fstat(fd, &st) != 0) {
    sqlenvfs_error_errno(error, errno, "stat segment summary", path);
    close(fd);
    return ARCHIVE_SUM_ERROR;
  }
  if (!S_ISREG(st.st_mode) || st.st_size < ARCHIVE_SUM_HEADER_SIZE + 4 ||
      (guint64)st.st_size > G_MAXSIZE / 2) {
    close(fd);
    *why = "not a segment summary (not a file, or too short)";
    return ARCHIVE_SUM_BAD;
  }
  buf = g_malloc((gsize)st.st_size);
  if (!archive_pread_full(fd, buf, (gsize)st.st_size, 0, &got, path, error)) {
    close(fd);
    return ARCHIVE_SUM_ERROR;
  }
  close(fd);
  if (got != (gsize)st.st_size) {
    *why = "it changed while it was read";
    return ARCHIVE_SUM_BAD;
  }
  if (!archive_summary_parse(buf, got, s, why) ||
      !matches_segment(s, number, seg_size, seal_crc, why))
    return ARCHIVE_SUM_BAD;
  if (data)
    *data = g_steal_pointer(&buf);
  return ARCHIVE_SUM_GOOD;
}

/* The last version with seq <= @max_seq among versions [@first, @end) of
 * @ver; FALSE when there is none. */
static gboolean
search_versions(const guint8 *ver, guint32 first, guint32 end, guint64 max_seq,
                ArchiveSumVersion *out)
{
  guint32 lo = first, hi = end;
  const guint8 *v;

  while (lo < hi) {
    guint32 mid = lo + (hi - lo) / 2;
    if (get64(ver + (gsize)mid * ARCHIVE_SUM_VERSION_SIZE) <= max_seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == first)
    return FALSE;
  v = ver + (gsize)(lo - 1) * ARCHIVE_SUM_VERSION_SIZE;
  out->seq = get64(v);
  out->offset = get64(v + 8);
  out->index = get32(v + 16);
  out->crc = get32(v + 20);
  return TRUE;
}

gboolean
archive_summary_page_version(const guint8 *p, const ArchiveSummary *s, guint32 pgno,
                             guint64 max_seq, ArchiveSumVersion *out)
{
  const guint8 *pg = p + s->pages_off;
  guint32 lo = 0, hi = s->n_pages, first, end;

  while (lo < hi) {
    guint32 mid = lo + (hi - lo) / 2;
    guint32 at = get32(pg + (gsize)mid * ARCHIVE_SUM_PAGE_SIZE);
    if (at == pgno) {
      lo = mid;
      break;
    }
    if (at < pgno)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo >= s->n_pages || get32(pg + (gsize)lo * ARCHIVE_SUM_PAGE_SIZE) != pgno)
    return FALSE;
  page_versions(pg, s, lo, &first, &end);
  return search_versions(p + s->versions_off, first, end, max_seq, out);
}

void
archive_summary_parts_clear(ArchiveSumParts *sp)
{
  if (sp->fd >= 0)
    close(sp->fd);
  g_free(sp->path);
  g_free(sp->head);
  g_free(sp->whole);
  g_free(sp->buf_sizes);
  g_free(sp->buf_pages);
  g_free(sp->buf_versions);
  memset(sp, 0, sizeof *sp);
  sp->fd = -1;
}

/* Bytes [@off, @off + @len) of the opened summary @sp into a new *@buf.
 * BAD when the file ends before them (it changed), ERROR on I/O errors. */
static ArchiveSumLoad
read_range(ArchiveSumParts *sp, guint64 off, guint64 len, guint8 **buf, const char **why,
           GError **error)
{
  gsize got = 0;

  *buf = g_malloc(MAX((gsize)len, 1));
  if (len > 0 && !archive_pread_full(sp->fd, *buf, (gsize)len, off, &got, sp->path, error)) {
    g_clear_pointer(buf, g_free);
    return ARCHIVE_SUM_ERROR;
  }
  if (got != len) {
    g_clear_pointer(buf, g_free);
    *why = "it changed while it was read";
    return ARCHIVE_SUM_BAD;
  }
  return ARCHIVE_SUM_GOOD;
}

/* The bytes open_parts reads first: the header and, when they fit (most
 * summaries: a few marks and generations), the marks and generations too,
 * in one read. */
#define SUM_FIRST_READ 4096

ArchiveSumLoad
archive_summary_open_parts(const char *dir, guint64 number, guint64 seg_size, guint32 seal_crc,
                           ArchiveSumParts *sp, const char **why, GError **error)
{
  return archive_summary_open_parts_at(-1, dir, number, seg_size, seal_crc, sp, why, error);
}

ArchiveSumLoad
archive_summary_open_parts_at(int dfd, const char *dir, guint64 number, guint64 seg_size,
                              guint32 seal_crc, ArchiveSumParts *sp, const char **why,
                              GError **error)
{
  guint8 first[SUM_FIRST_READ];
  struct stat st;
  gsize got = 0, want;
  ArchiveSumLoad r;

  G_STATIC_ASSERT(SUM_FIRST_READ >= ARCHIVE_SUM_HEADER_MAX);
  memset(sp, 0, sizeof *sp);
  sp->path = archive_summary_path(dir, number);
  if (dfd >= 0) {
    g_autofree char *name = archive_seg_name(number, "sum");
    sp->fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  } else {
    sp->fd = open(sp->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  }
  if (sp->fd < 0) {
    r = errno == ENOENT ? ARCHIVE_SUM_MISSING : ARCHIVE_SUM_ERROR;
    if (r == ARCHIVE_SUM_ERROR)
      sqlenvfs_error_errno(error, errno, "open segment summary", sp->path);
    goto out;
  }
  if (fstat(sp->fd, &st) != 0) {
    r = ARCHIVE_SUM_ERROR;
    sqlenvfs_error_errno(error, errno, "stat segment summary", sp->path);
    goto out;
  }
  r = ARCHIVE_SUM_BAD;
  if (!S_ISREG(st.st_mode) || st.st_size < ARCHIVE_SUM_HEADER_SIZE + 4 ||
      (guint64)st.st_size > G_MAXSIZE / 2) {
    *why = "not a segment summary (not a file, or too short)";
    goto out;
  }
  want = (gsize)MIN((guint64)st.st_size, sizeof first);
  if (!archive_pread_full(sp->fd, first, want, 0, &got, sp->path, error)) {
    r = ARCHIVE_SUM_ERROR;
    goto out;
  }
  if (got != want) {
    *why = "it changed while it was read";
    goto out;
  }
  if (!archive_summary_parse_header(first, (gsize)st.st_size, &sp->s, why))
    goto out;
  if (sp->s.sizes_off <= want) {
    /* The head was in that read. */
    sp->head = g_memdup2(first, MAX((gsize)sp->s.sizes_off, 1));
  } else {
    r = read_range(sp, 0, sp->s.sizes_off, &sp->head, why, error);
    if (r != ARCHIVE_SUM_GOOD)
      goto out;
    r = ARCHIVE_SUM_BAD;
    if (memcmp(sp->head, first, sp->s.header_size) != 0) {
      *why = "it changed while it was read";
      goto out;
    }
  }
  if (get32(sp->head + 120) != archive_summary_head_crc(sp->head, (gsize)sp->s.sizes_off)) {
    *why = "fails its head checksum";
    goto out;
  }
  if (!archive_summary_check_head(sp->head, &sp->s, why) ||
      !matches_segment(&sp->s, number, seg_size, seal_crc, why))
    goto out;
  return ARCHIVE_SUM_GOOD;

out:
  archive_summary_parts_clear(sp);
  return r;
}

/* Version 1: the whole file, checked as it always was (its trailer). */
static ArchiveSumLoad
read_whole_v1(ArchiveSumParts *sp, const char **why, GError **error)
{
  ArchiveSummary s;
  ArchiveSumLoad r = read_range(sp, 0, sp->s.file_len, &sp->whole, why, error);

  if (r != ARCHIVE_SUM_GOOD)
    return r;
  if (!archive_summary_parse(sp->whole, (gsize)sp->s.file_len, &s, why) ||
      memcmp(sp->whole, sp->head, (gsize)sp->s.sizes_off) != 0) {
    if (memcmp(sp->whole, sp->head, (gsize)sp->s.sizes_off) != 0)
      *why = "it changed while it was read";
    g_clear_pointer(&sp->whole, g_free);
    return ARCHIVE_SUM_BAD;
  }
  sp->sizes = sp->whole + s.sizes_off;
  sp->pages = sp->whole + s.pages_off;
  sp->versions = sp->whole + s.versions_off;
  return ARCHIVE_SUM_GOOD;
}

ArchiveSumLoad
archive_summary_read_part(ArchiveSumParts *sp, ArchiveSumPart part, const char **why,
                          GError **error)
{
  const ArchiveSummary *s = &sp->s;
  ArchiveSumLoad r;
  guint8 *buf = NULL;

  g_return_val_if_fail(sp->head != NULL, ARCHIVE_SUM_ERROR);
  if (s->version == 1)
    return sp->whole != NULL ? ARCHIVE_SUM_GOOD : read_whole_v1(sp, why, error);
  switch (part) {
  case ARCHIVE_SUM_PART_SIZES:
    if (sp->sizes != NULL)
      return ARCHIVE_SUM_GOOD;
    r = read_range(sp, s->sizes_off, s->pages_off - s->sizes_off, &buf, why, error);
    if (r != ARCHIVE_SUM_GOOD)
      return r;
    if (crc(0, buf, s->pages_off - s->sizes_off) != s->sizes_crc) {
      *why = "its size changes fail their checksum";
      break;
    }
    if (!check_sizes(buf, s, why))
      break;
    sp->sizes = sp->buf_sizes = buf;
    return ARCHIVE_SUM_GOOD;
  case ARCHIVE_SUM_PART_PAGES:
    if (sp->pages != NULL)
      return ARCHIVE_SUM_GOOD;
    r = read_range(sp, s->pages_off, s->versions_off - s->pages_off, &buf, why, error);
    if (r != ARCHIVE_SUM_GOOD)
      return r;
    if (crc(0, buf, s->last_off - s->pages_off) != s->pages_crc ||
        crc(0, buf + (s->last_off - s->pages_off), s->versions_off - s->last_off) !=
          s->last_crc) {
      *why = "its page table fails its checksum";
      break;
    }
    if (!check_pages(buf, s, why) || !check_last(buf + (s->last_off - s->pages_off), s, why))
      break;
    sp->pages = sp->buf_pages = buf;
    sp->last = buf + (s->last_off - s->pages_off);
    return ARCHIVE_SUM_GOOD;
  case ARCHIVE_SUM_PART_VERSIONS:
    g_return_val_if_fail(sp->pages != NULL, ARCHIVE_SUM_ERROR);
    if (sp->versions != NULL)
      return ARCHIVE_SUM_GOOD;
    r = read_range(sp, s->versions_off, s->file_len - s->versions_off, &buf, why, error);
    if (r != ARCHIVE_SUM_GOOD)
      return r;
    if (crc(0, buf, s->file_len - s->versions_off) != s->versions_crc) {
      *why = "its page versions fail their checksum";
      break;
    }
    if (!check_versions(sp->pages, sp->last, buf, s, why))
      break;
    sp->versions = sp->buf_versions = buf;
    return ARCHIVE_SUM_GOOD;
  }
  g_free(buf);
  return ARCHIVE_SUM_BAD;
}

gboolean
archive_summary_parts_version(const ArchiveSumParts *sp, guint32 i, guint64 max_seq,
                              ArchiveSumVersion *out)
{
  guint32 first, end;

  g_return_val_if_fail(sp->pages != NULL && i < sp->s.n_pages, FALSE);
  if (sp->last != NULL) {
    const guint8 *v = sp->last + (gsize)i * ARCHIVE_SUM_VERSION_SIZE;
    if (get64(v) <= max_seq) {
      out->seq = get64(v);
      out->offset = get64(v + 8);
      out->index = get32(v + 16);
      out->crc = get32(v + 20);
      return TRUE;
    }
  }
  g_return_val_if_fail(sp->versions != NULL, FALSE);
  page_versions(sp->pages, &sp->s, i, &first, &end);
  return search_versions(sp->versions, first, end, max_seq, out);
}

ArchiveSumLoad
archive_summary_load_head(const char *dir, guint64 number, guint64 seg_size, guint32 seal_crc,
                          ArchiveSummary *s, guint8 **head, const char **why, GError **error)
{
  return archive_summary_load_head_at(-1, dir, number, seg_size, seal_crc, s, head, why, error);
}

ArchiveSumLoad
archive_summary_load_head_at(int dfd, const char *dir, guint64 number, guint64 seg_size,
                             guint32 seal_crc, ArchiveSummary *s, guint8 **head,
                             const char **why, GError **error)
{
  ArchiveSumParts sp;
  ArchiveSumLoad r =
    archive_summary_open_parts_at(dfd, dir, number, seg_size, seal_crc, &sp, why, error);

  if (r != ARCHIVE_SUM_GOOD)
    return r;
  *s = sp.s;
  *head = g_steal_pointer(&sp.head);
  archive_summary_parts_clear(&sp);
  return ARCHIVE_SUM_GOOD;
}
