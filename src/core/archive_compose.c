/*
 * archive_compose.c — composing a state from the archive: on an image over
 * a base, every page set to its last version in (base seq, target seq], and
 * the size changes applied (archive.h, sqlenvfs_archive_compose()).
 *
 * Two paths, per segment, give the same image (invariant C1):
 *   page map  a sealed version 2 segment with a good summary, whose commits
 *             in the range never shrink the database (nor change its size
 *             from the base's at a GAP inside the segment): for each page
 *             of its page map, the last version <= target; only those images are
 *             read later, each through its compressed block (checksum and
 *             length checked on every read). Only the parts of the summary
 *             the range needs are read, each checked by its own checksum
 *             (archive_summary.c): the head and the size changes to plan;
 *             the page table and the last version of each page to compose
 *             (when the range runs to the segment's end, that is the
 *             answer); every version, searched by binary search, only for
 *             the segment the target falls inside. A version 1 summary is
 *             read and checked whole, as it always was. A range that runs
 *             past the segment's last COMMIT that wrote a page, when the
 *             segment has a .last file, reads the last versions from it
 *             instead (LastMap; archive_last.c, L1 and L2), one block for
 *             16 pages, the page map's versions the fallback.
 *   records   any other segment (the unsealed last one, one without a
 *             usable summary, a version 1 segment, one where the database
 *             shrinks in the range, or may change size at the range's first
 *             COMMIT with no size change recorded): every COMMIT in the
 *             range is read and checked whole and its pages set in order,
 *             the pages past a shrink set to zeros, as restores always did.
 * Version 1 segments take the record path: their images are stored as
 *   they are, checked only by their record's checksum, so a page read
 *   straight through a page map would need its own check (the crc32 each
 *   version 1 page version carries in the summary is there for such a
 *   reader; this one does not use it).
 *
 * The segments of the range are first walked forward (which way each
 * takes, the database size through them), then composed from the last to
 * the first: each page is set once, to the first image decided for it
 * going back, which is its last in time (a zero page of a shrink counts as
 * an image). What the image registers stays as large as the database,
 * whatever the length of the range.
 *
 * Invariants:
 *   (C1) Both paths set every page to the same image: the page map lists
 *        every version of every page in seq order, a shrink (or a size
 *        the range starts from that the segment's size changes do not
 *        follow) sends the segment to the record path, which goes back
 *        through its commits
 *        (a commit's shrink after its own pages), and a page decided by a
 *        later segment is not set again by an earlier one.
 *   (C2) No image a page map names is read before the version naming it
 *        was checked against the records it names: the record holding the
 *        image (header checksum, type, compressed, page size, the image's
 *        index inside its page stream) and the COMMIT that wrote it (its
 *        seq, and the page number at that place of its page list; for a
 *        batch's later commits, found by walking the batch's headers).
 *        Composing checks every chosen version of the segment first, and a
 *        mismatch sends the whole segment to the record path (verify
 *        reports the summary). A restore that writes a temporary output
 *        (Compose.a->deferred_bad_maps) leaves the same check to the first
 *        read of each page (DeferredMap: the versions naming one record at
 *        once), so that it starts writing at once; a mismatch fails that
 *        read, the restore drops its output and composes again with the
 *        segment on the record path. A segment filled on demand (mount
 *        --remote) is checked against its index entries, and each page
 *        list entry at the page's first read. What the records cannot show
 *        is a version's seq moved out of the range by a summary whose
 *        checksums were made to fit: the checksums guard against damage,
 *        verify (which builds the summary again) against the rest.
 *   (C3) No range is composed across records missing or found damaged: a
 *        GAP error, as a plan would have refused.
 *   (C4) No range is composed from a segment that the rest of the archive
 *        does not follow (invariant 3): from the range's first segment to
 *        the archive's last, each segment's header that names the digest
 *        of the records of the segment before it names the one that
 *        segment's SEAL carries (a SEAL without one is not followed by a
 *        header naming one in a single history). Anything else is records
 *        of two histories (segments of a copy of the root that went on by
 *        itself, one or several in a row), and nothing is composed: the
 *        break may lie past the range, after segments copied in together.
 *        A segment filled on demand is not read for it (that would fetch
 *        every header of a long remote history).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "archive_int.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/image.h"

typedef struct {
  SqlenvfsArchive *a;
  SqlenvfsImage *img;
  guint32 page_size;
  guint32 cur_pages;
  guint *file_src; /* per segment: image source id of the segment file (v1)   */
  guint *rec_src;  /* per segment: image source id of its record source (v2)  */
  SqlenvfsArchiveRecordSource **rec_obj;
  guint zero_src;
  guint32 final_pages; /* the size after the target                          */
  guint8 *decided;     /* bit per page <= final_pages: its image is set      */
  guint64 done, total;
  SqlenvfsProgressFunc progress;
  gpointer user;
} Compose;

/* What segment @number says of its place in the chain (C4). */
typedef struct {
  gboolean has_prev_digest;  /* its header names the previous one's digest */
  guint32 prev_digest;
  gboolean seal_read;        /* its SEAL record was read whole             */
  gboolean has_digest;       /* ... and carries its own digest             */
  guint32 digest;
} SegLink;

static SegLink
seg_link(const SqlenvfsArchive *a, const SqlenvfsArchiveSegment *seg)
{
  SegLink l = { 0 };
  SqlenvfsArchiveEntry e;
  SegFile sf;

  if (archive_is_fetched(seg->path) ||
      !archive_seg_file_openat(a->dfd, a->dir, seg->number, O_RDONLY, &sf, NULL))
    return l; /* unknown: damage, if any, is found where the segment is read */
  if (sf.hdr_ok) {
    l.has_prev_digest = sf.hdr.has_prev_digest;
    l.prev_digest = sf.hdr.prev_digest;
    if (seg->is_sealed && archive_read_seal_entry_fd(sf.fd, sf.path, sf.size, &e, NULL, NULL)) {
      l.seal_read = TRUE;
      l.has_digest = (e.flags & SEAL_HAS_DIGEST) != 0;
      l.digest = e.digest;
    }
  }
  archive_seg_file_close(&sf);
  return l;
}

/* C4 from the segment @from of the archive to its last. */
static gboolean
check_links(const SqlenvfsArchive *a, guint from, GError **error)
{
  SegLink prev = { 0 };
  const SqlenvfsArchiveSegment *prev_seg = NULL;

  for (guint si = from; si < a->segments->len; si++) {
    const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
    SegLink l = seg_link(a, seg);
    /* A header names a digest only after a SEAL that carries one: its
     * writer took it from that SEAL (archive_writer.c). */
    if (prev_seg != NULL && prev_seg->number + 1 == seg->number && prev.seal_read &&
        l.has_prev_digest && (!prev.has_digest || l.prev_digest != prev.digest)) {
      g_autofree char *pname = g_path_get_basename(prev_seg->path);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "archive %s: %s was not written after the records %s holds, but after "
                  "others numbered the same: one of the two is from another archive (a copy "
                  "of this root that went on by itself?), and no state is composed from "
                  "them; run `sqlenvfs verify`, and put back this root's own segment from a "
                  "copy, keeping both", a->dir, seg->path, pname);
      return FALSE;
    }
    prev = l;
    prev_seg = seg;
  }
  return TRUE;
}

static gssize
zero_read(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  memset(buf, 0, len);
  return (gssize)len;
}

static gboolean
gap_error(Compose *c, GError **error)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
              "compose a state from the archive %s: records are missing or damaged between the "
              "base and the target (run `sqlenvfs verify`; plan the restore again)",
              c->a->dir);
  return FALSE;
}

static gboolean
page_size_error(Compose *c, const SqlenvfsArchiveEntry *e, GError **error)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "compose a state from the archive %s: record %" G_GUINT64_FORMAT " has pages of "
              "%u bytes, the base has %u (plan the restore again)",
              c->a->dir, e->seq, e->page_size, c->page_size);
  return FALSE;
}

static guint
record_source(Compose *c, guint si, GError **error)
{
  if (c->rec_src[si] == 0) {
    c->rec_obj[si] = sqlenvfs_archive_record_source_new(c->a, si, error);
    if (c->rec_obj[si] == NULL)
      return 0;
    c->rec_src[si] = sqlenvfs_image_add_source(c->img, sqlenvfs_archive_record_source_read,
                                               c->rec_obj[si], sqlenvfs_archive_record_source_free);
  }
  return c->rec_src[si];
}

/* Segments are composed from the last to the first, and each page gets
 * the first image decided for it (the last in time): a page is set once,
 * so what is registered for the image stays as small as the database. */
static gboolean
is_decided(const Compose *c, guint32 p)
{
  return p > c->final_pages || ((c->decided[(p - 1) / 8] >> ((p - 1) % 8)) & 1) != 0;
}

static void
decide(Compose *c, guint32 p)
{
  c->decided[(p - 1) / 8] |= (guint8)(1u << ((p - 1) % 8));
}

/* Where the records of segment @si with seq in (@lo, @hi] are in its view
 * (archive_seg_view: [*@from, *@to)), after checking that every record of
 * the range is there (no DAMAGED or GAP entry) and that its COMMIT records
 * have the base's page size; *@last_pages: the database size after the
 * last of them (unchanged when there is none). Not copied: the view stays
 * valid while only this segment is read. FALSE and *error otherwise. */
static gboolean
range_commits(Compose *c, guint si, guint64 lo, guint64 hi, guint *from, guint *to,
              guint32 *last_pages, GError **error)
{
  guint n;
  const SqlenvfsArchiveEntry *v = archive_seg_view(c->a, si, &n);
  gint i0 = -1;
  guint i;

  /* The first record after @lo (lo + 1, or the segment's first). */
  for (i = 0; i < n && i0 < 0; i++)
    if (v[i].seq > lo)
      i0 = v[i].seq == lo + 1 ? (gint)i : -2;
  if (i0 < 0)
    return gap_error(c, error);
  for (i = (guint)i0; i < n; i++) {
    const SqlenvfsArchiveEntry *e = &v[i];
    if (e->seq > hi)
      break;
    if (e->seq == 0 || e->type == SQLENVFS_ARCHIVE_GAP)
      return gap_error(c, error);
    if (e->type == SQLENVFS_ARCHIVE_COMMIT) {
      if (e->page_size != c->page_size)
        return page_size_error(c, e, error);
      if (last_pages)
        *last_pages = e->db_pages;
    }
    if (e->seq == hi) {
      i++;
      break; /* not into a DAMAGED gap after it */
    }
  }
  *from = (guint)i0;
  *to = i;
  return TRUE;
}

/* compose_records() as a record walk over the view's records [@from,
 * @to) (range_commits). */
static gboolean
compose_records_walk(Compose *c, guint si, guint from, guint to, guint32 cur_in,
                     GError **error)
{
  SqlenvfsArchive *a = c->a;
  const SqlenvfsArchiveEntry *v;
  guint n, prev;

  /* From the last COMMIT to the first; @prev: the COMMIT before the
   * current one (the database size before it), or none (@cur_in). */
  prev = to;
  for (;;) {
    guint i = prev;
    const SqlenvfsArchiveEntry *e;
    SqlenvfsArchiveEntry ec;
    g_autofree guint32 *pgnos = NULL;
    guint64 data;
    guint32 before;

    v = archive_seg_view(a, si, &n); /* the same segment: still valid */
    while (i > from && v[i - 1].type != SQLENVFS_ARCHIVE_COMMIT)
      i--;
    if (i == from)
      break;
    ec = v[i - 1];
    e = &ec;
    prev = i - 1;
    while (prev > from && v[prev - 1].type != SQLENVFS_ARCHIVE_COMMIT)
      prev--;
    before = prev > from ? v[prev - 1].db_pages : cur_in;

    /* Later in time than its own pages: the shrink after them. */
    if (e->db_pages < before) {
      if (c->zero_src == 0)
        c->zero_src = sqlenvfs_image_add_source(c->img, zero_read, NULL, NULL);
      for (guint32 p = e->db_pages + 1; p <= before; p++)
        if (!is_decided(c, p)) {
          sqlenvfs_image_set_page(c->img, p, c->zero_src, 0);
          decide(c, p);
        }
    }
    pgnos = sqlenvfs_archive_read_commit(a, e, &data, error);
    if (pgnos == NULL)
      return FALSE;
    if (e->flags & (SQLENVFS_ARCHIVE_COMPRESSED | SQLENVFS_ARCHIVE_BATCHED)) {
      /* Read through the record source, which decompresses on demand; a
       * commit of a batch has its pages in the batch's first record. */
      const SqlenvfsArchiveEntry *holder = e;
      SqlenvfsArchiveEntry h;
      guint32 first = 0;
      guint src;
      if (e->flags & SQLENVFS_ARCHIVE_BATCHED) {
        const SqlenvfsArchiveEntry *hp = sqlenvfs_archive_batch_first(a, e, &first);
        g_assert(hp != NULL); /* read_commit() found it */
        h = *hp;
        holder = &h;
      }
      src = record_source(c, si, error);
      if (src == 0)
        return FALSE;
      for (guint32 k = 0; k < e->n_pages; k++)
        if (!is_decided(c, pgnos[k])) {
          sqlenvfs_image_set_page(c->img, pgnos[k], src,
                                  sqlenvfs_archive_record_source_add(c->rec_obj[si], holder,
                                                                     first + k));
          decide(c, pgnos[k]);
        }
    } else {
      if (c->file_src[si] == 0) {
        const char *path = g_array_index(a->segments, SqlenvfsArchiveSegment, si).path;
        SqlenvfsFileSource *fs = sqlenvfs_file_source_open(path, error);
        if (fs == NULL)
          return FALSE;
        c->file_src[si] = sqlenvfs_image_add_source(c->img, sqlenvfs_file_source_read, fs,
                                                    sqlenvfs_file_source_close);
      }
      for (guint32 k = 0; k < e->n_pages; k++)
        if (!is_decided(c, pgnos[k])) {
          sqlenvfs_image_set_page(c->img, pgnos[k], c->file_src[si],
                                  (goffset)(data + (guint64)k * e->page_size));
          decide(c, pgnos[k]);
        }
    }
    c->done += e->length;
    if (c->progress)
      c->progress(c->user, c->done, c->total);
  }
  return TRUE;
}

/* The record path for the records of segment @si with seq in (@lo, @hi],
 * the database @cur_in pages before them: from the last COMMIT to the
 * first, each read and checked whole (as a record walk: read a window at
 * a time, the blocks of compressed records checked by their checksums and
 * frame headers, as the pages kept are decompressed and checked when the
 * image reads them), the pages past a shrink set to zeros, its own pages
 * set to its images, where not decided yet. */
static gboolean
compose_records(Compose *c, guint si, guint64 lo, guint64 hi, guint32 cur_in, GError **error)
{
  const SqlenvfsArchiveEntry *v;
  guint from, to, n;
  gboolean ok;

  if (!range_commits(c, si, lo, hi, &from, &to, NULL, error))
    return FALSE;
  v = archive_seg_view(c->a, si, &n);
  if (from < to)
    archive_record_walk_begin(c->a, si, v[from].offset, v[to - 1].offset + v[to - 1].length);
  ok = compose_records_walk(c, si, from, to, cur_in, error);
  archive_record_walk_end(c->a);
  return ok;
}

/* A record named by a page map, as its header and page numbers say. */
typedef struct {
  SqlenvfsArchiveEntry e;
  guint32 *pgnos; /* its own n_pages page numbers */
} Holder;

static void
holder_free(gpointer p)
{
  Holder *h = p;
  g_free(h->pgnos);
  g_free(h);
}

/* Bytes [@off, @off + @len) of the segment open on @fd, through the window
 * @w: refilled with one read when they are not in it, so that walking the
 * small records of a batch costs a read per window, not two per record.
 * A refill reads at least @w->hint bytes (what the walk knows it will
 * need) and, within one walk (member_walk_reset), twice as much as the
 * refill before, so that a batch is read about as far as the commit
 * wanted, in few reads. NULL when the file ends before them or cannot be
 * read. */
#define MEMBER_WINDOW_MAX (64 * 1024)
typedef struct {
  guint8 *buf;
  guint64 off;
  gsize len;
  gsize hint; /* the least the next refill reads            */
  gsize grow; /* twice the last refill of this walk, or 0    */
} MemberWindow;

static const guint8 *
window_at(int fd, const char *path, guint64 size, guint64 off, gsize len, MemberWindow *w)
{
  gsize want, got = 0;
  if (off + len > size)
    return NULL;
  if (w->buf != NULL && off >= w->off && off + len <= w->off + w->len)
    return w->buf + (off - w->off);
  want = (gsize)MIN((guint64)MAX(len, MAX(w->hint, w->grow)), size - off);
  w->grow = MIN(want * 2, MEMBER_WINDOW_MAX);
  w->buf = g_realloc(w->buf, MAX(want, 1));
  w->len = 0;
  if (!archive_pread_full(fd, w->buf, want, off, &got, path, NULL) || got < len)
    return NULL;
  w->off = off;
  w->len = got;
  return w->buf;
}

/* Read and check the compressed COMMIT at @off of @fd (@path, @size
 * bytes): its header and its page list, in one read when the list is
 * short (HOLDER_READ), no window: the records holding the images of a
 * segment are often far apart, and a restore should read little more than
 * it uses. */
#define HOLDER_READ (REC_HEADER_SIZE + 4 * 64)

/* archive_pread_full() of @fd, or through @rs's read-ahead when it is not
 * NULL (the file it reads). */
static gboolean
holder_pread(int fd, SqlenvfsArchiveRecordSource *rs, const char *path, void *buf, gsize len,
             guint64 off, gsize *got)
{
  if (rs != NULL)
    return archive_record_source_pread(rs, buf, len, off, got, NULL);
  return archive_pread_full(fd, buf, len, off, got, path, NULL);
}

static Holder *
read_holder(int fd, SqlenvfsArchiveRecordSource *rs, const char *path, guint64 size, guint64 off,
            guint32 page_size)
{
  guint8 head[HOLDER_READ];
  g_autofree guint8 *more = NULL;
  const guint8 *list;
  Holder *h;
  gsize got = 0, len;

  if (off < SEG_HEADER_SIZE || off > size ||
      !holder_pread(fd, rs, path, head, (gsize)MIN((guint64)sizeof head, size - off), off, &got) ||
      got < REC_HEADER_SIZE)
    return NULL;
  h = g_new0(Holder, 1);
  if (!archive_decode_header(head, &h->e) || h->e.type != SQLENVFS_ARCHIVE_COMMIT ||
      !(h->e.flags & SQLENVFS_ARCHIVE_COMPRESSED) || (h->e.flags & SQLENVFS_ARCHIVE_BATCHED) ||
      h->e.page_size != page_size || off + h->e.length > size ||
      !archive_compressed_length_ok(&h->e)) {
    holder_free(h);
    return NULL;
  }
  h->e.offset = off;
  len = 4 * (gsize)h->e.n_pages;
  if (REC_HEADER_SIZE + len <= got) {
    list = head + REC_HEADER_SIZE;
  } else {
    more = g_malloc(MAX(len, 1));
    if (!holder_pread(fd, rs, path, more, len, off + REC_HEADER_SIZE, &got) || got != len) {
      holder_free(h);
      return NULL;
    }
    list = more;
  }
  h->pgnos = g_new(guint32, MAX(h->e.n_pages, 1));
  for (guint32 i = 0; i < h->e.n_pages; i++)
    h->pgnos[i] = get32(list + 4 * (gsize)i);
  return h;
}

/* The later commits of one batch, as far as they were walked: for the
 * k-th after its first record (k >= 1), its text length, page count and
 * where its page numbers start in pgnos. */
typedef struct {
  guint32 text_len, n_pages;
  guint pg_start;
} Member;

typedef struct {
  guint64 first_offset; /* the batch's first record (G_MAXUINT64: none yet) */
  guint64 first_seq;
  guint64 next_off;     /* where the next member starts                     */
  GArray *members;      /* Member; [k - 1] is the k-th                      */
  GArray *pgnos;        /* guint32                                          */
} MemberWalk;

static void
member_walk_reset(MemberWalk *mw, const Holder *h, MemberWindow *w)
{
  mw->first_offset = h->e.offset;
  mw->first_seq = h->e.seq;
  mw->next_off = h->e.offset + h->e.length;
  g_array_set_size(mw->members, 0);
  g_array_set_size(mw->pgnos, 0);
  w->grow = 0;
}

/* The COMMIT @seq of the batch whose first record is @h: the records after
 * @h are walked as far as it (each header checked: a BATCHED COMMIT with
 * the next seq and its place in the batch; what was walked is kept in @mw
 * until the next batch); NULL when it is not a member of that batch. */
static const Member *
find_member(int fd, const char *path, guint64 size, const Holder *h, guint64 seq,
            MemberWalk *mw, MemberWindow *w)
{
  g_assert(mw->first_offset == h->e.offset && seq > h->e.seq);
  while (h->e.seq + mw->members->len < seq) {
    guint64 s = h->e.seq + mw->members->len + 1, off = mw->next_off;
    const guint8 *hdr, *list;
    SqlenvfsArchiveEntry e;
    Member m;
    /* The commits up to @seq take at least a header, a trailer and one
     * page number each: a window that short is read at once. */
    w->hint = (gsize)MIN(seq - s + 1, (guint64)G_MAXUINT16) * (REC_EMPTY_SIZE + 4);
    hdr = window_at(fd, path, size, off, REC_HEADER_SIZE, w);
    if (hdr == NULL || !archive_decode_header(hdr, &e) || e.seq != s ||
        e.type != SQLENVFS_ARCHIVE_COMMIT || !(e.flags & SQLENVFS_ARCHIVE_BATCHED) ||
        e.reason != s - h->e.seq || off + e.length > size)
      return NULL;
    list = window_at(fd, path, size, off + REC_HEADER_SIZE, 4 * (gsize)e.n_pages, w);
    if (list == NULL)
      return NULL;
    m = (Member){ e.text_len, e.n_pages, mw->pgnos->len };
    g_array_set_size(mw->pgnos, mw->pgnos->len + e.n_pages);
    for (guint32 i = 0; i < e.n_pages; i++)
      g_array_index(mw->pgnos, guint32, m.pg_start + i) = get32(list + 4 * (gsize)i);
    g_array_append_val(mw->members, m);
    mw->next_off = off + e.length;
  }
  return &g_array_index(mw->members, Member, seq - h->e.seq - 1);
}

/* A page's version chosen from a page map, before it is checked. */
typedef struct {
  guint32 pgno, index;
  guint64 seq, offset;
} Candidate;

typedef struct {
  guint32 pgno, index;
  Holder *holder;
  guint64 list_off; /* deferred check (segment read on demand): 0 when checked */
} Action;

/* The index entries holder_from_index() read last: the commit (slot 0)
 * and the record holding its images (slot 1). Candidates in file order
 * name a few records each hundreds of times; each entry is read (and
 * checked) once per run of them, not once per page. */
typedef struct {
  guint64 seq[2];
  SqlenvfsArchiveEntry e[2];
  gboolean ok[2];
} EntryMemo;

static gboolean
memo_get(Compose *c, EntryMemo *m, guint slot, guint64 seq, SqlenvfsArchiveEntry *out)
{
  if (m->seq[slot] != seq || seq == 0) {
    m->seq[slot] = seq;
    m->ok[slot] = sqlenvfs_archive_get(c->a, seq, &m->e[slot]);
  }
  *out = m->e[slot];
  return m->ok[slot];
}

/* Candidate @v of a segment filled on demand (archive.h, the fetch hook),
 * checked against the index entries only: its COMMIT and the record
 * holding the image (header fields, its place in the batch), without
 * reading a record; *@list_off gets where the page list names the page,
 * which the first read of the page checks (C2, deferred). NULL when it
 * does not match. */
static Holder *
holder_from_index(Compose *c, guint si, const Candidate *v, Holder *last, GPtrArray *holders,
                  EntryMemo *memo, guint64 *list_off)
{
  SqlenvfsArchiveEntry ce, he;
  guint32 at;
  Holder *h;

  if (!memo_get(c, memo, 0, v->seq, &ce) || ce.segment != si ||
      ce.type != SQLENVFS_ARCHIVE_COMMIT)
    return NULL;
  if (ce.offset == v->offset) {
    he = ce;
    at = v->index;
    if (at >= he.n_pages)
      return NULL;
  } else {
    if (!(ce.flags & SQLENVFS_ARCHIVE_BATCHED) || ce.reason == 0 || ce.reason >= ce.seq ||
        !memo_get(c, memo, 1, ce.seq - ce.reason, &he) || he.segment != si ||
        he.offset != v->offset || v->index < ce.text_len || v->index - ce.text_len >= ce.n_pages)
      return NULL;
    at = v->index - ce.text_len;
  }
  if (he.type != SQLENVFS_ARCHIVE_COMMIT || !(he.flags & SQLENVFS_ARCHIVE_COMPRESSED) ||
      (he.flags & SQLENVFS_ARCHIVE_BATCHED) || he.page_size != c->page_size ||
      !archive_compressed_length_ok(&he) || v->index >= archive_stream_pages(&he))
    return NULL;
  *list_off = ce.offset + REC_HEADER_SIZE + 4 * (guint64)at;
  if (last != NULL && last->e.offset == he.offset)
    return last;
  h = g_new0(Holder, 1);
  h->e = he;
  g_ptr_array_add(holders, h);
  return h;
}

/* In file order: the records holding the images, then their batches'
 * commits, are read going forward. */
static gint
cmp_candidate(gconstpointer pa, gconstpointer pb)
{
  const Candidate *a = pa, *b = pb;
  if (a->offset != b->offset)
    return a->offset < b->offset ? -1 : 1;
  if (a->seq != b->seq)
    return a->seq < b->seq ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

/* The end of the run of candidates from @from that name the record at
 * the same offset (@cands in file order). */
static guint
group_end(const GArray *cands, guint from)
{
  guint64 off = g_array_index(cands, Candidate, from).offset;
  guint to = from + 1;
  while (to < cands->len && g_array_index(cands, Candidate, to).offset == off)
    to++;
  return to;
}

/* C2 for the candidates [@from, @to) of @cands (file order), which name
 * the same record: that record read and checked (read_holder), each
 * candidate's place in its page stream and page list, and for a batch's
 * later commits the batch's headers walked as far as the commit
 * (find_member); the record read through @rs's read-ahead when @rs is not
 * NULL, else from @fd. The record, or NULL when anything does not match or
 * cannot be read. */
static Holder *
check_group(int fd, SqlenvfsArchiveRecordSource *rs, const char *path, guint64 size,
            guint32 page_size, const GArray *cands, guint from, guint to, MemberWalk *walk,
            MemberWindow *window)
{
  Holder *h =
    read_holder(fd, rs, path, size, g_array_index(cands, Candidate, from).offset, page_size);
  if (h == NULL)
    return NULL;
  member_walk_reset(walk, h, window);
  for (guint i = from; i < to; i++) {
    const Candidate *v = &g_array_index(cands, Candidate, i);
    /* Its own pages belong to its own commit; the others to a later
     * commit of its batch, which lists the page at that place. */
    if (v->index >= archive_stream_pages(&h->e) || v->seq < h->e.seq ||
        (v->index < h->e.n_pages ? v->seq != h->e.seq || h->pgnos[v->index] != v->pgno
                                 : v->seq == h->e.seq)) {
      holder_free(h);
      return NULL;
    }
    if (v->seq != h->e.seq) {
      const Member *m = find_member(fd, path, size, h, v->seq, walk, window);
      if (m == NULL || v->index < m->text_len || v->index - m->text_len >= m->n_pages ||
          g_array_index(walk->pgnos, guint32, m->pg_start + (v->index - m->text_len)) != v->pgno) {
        holder_free(h);
        return NULL;
      }
    }
  }
  return h;
}

/* A segment composed from its page map with the checks deferred (a
 * restore that writes a temporary output: Compose.a->deferred_bad_maps):
 * page k of this source is the version the k-th candidate registered
 * names. The first read sorts the candidates in file order (@pos); the
 * first read of a page checks the whole run of candidates naming the same
 * record (check_group, the same check as before composing) and only then
 * registers their images in @rs and reads. A mismatch fails that read and
 * every later one (INTEGRITY) and adds the segment's number to @bad, so
 * that the restore drops what it wrote and composes again with the
 * segment read from its records. */
typedef struct {
  SqlenvfsArchiveRecordSource *rs;
  char *path;
  guint64 size, number;
  guint32 page_size;
  GArray *cands;    /* Candidate: as registered, then (@pos) in file order
                     * (replaced under @lock by the first read)         */
  guint n_cands;    /* their number, which never changes (read unlocked) */
  guint32 *pos;     /* per page of this source: its candidate in file
                     * order; NULL until the first read sorts them        */
  guint32 *refs;    /* per candidate: its page in @rs + 1; 0: not checked */
  GArray *bad;      /* the restore's list (not owned), or @own_bad        */
  GArray *own_bad;  /* a source that is only a fallback outside a restore */
  gboolean failed;
  GError *failed_with; /* the segment's file could not be used (its source's
                        * error), when that is why @failed             */
  MemberWalk walk;
  MemberWindow window;
  GMutex lock;
} DeferredMap;

static void
deferred_map_free(gpointer p)
{
  DeferredMap *d = p;
  sqlenvfs_archive_record_source_free(d->rs);
  g_free(d->path);
  g_array_unref(d->cands);
  g_free(d->refs);
  g_free(d->pos);
  g_array_unref(d->walk.members);
  g_array_unref(d->walk.pgnos);
  g_free(d->window.buf);
  g_clear_error(&d->failed_with);
  if (d->own_bad != NULL)
    g_array_unref(d->own_bad);
  g_mutex_clear(&d->lock);
  g_free(d);
}

static gboolean
deferred_map_check(DeferredMap *d, guint i, GError **error)
{
  guint64 off = g_array_index(d->cands, Candidate, i).offset;
  guint from = i, to;
  Holder *h = NULL;
  int fd;

  while (from > 0 && g_array_index(d->cands, Candidate, from - 1).offset == off)
    from--;
  to = group_end(d->cands, from);
  /* Read through the record source's file: no more files open than the
   * sources hold. Its first use opens it, and checks a segment the
   * archive took from its summary against that summary: a mismatch fails
   * the read, and the restore composes the segment again from its
   * records (the source has added it to the list). */
  if (!d->failed) {
    fd = archive_record_source_fd(d->rs, &d->failed_with);
    if (fd >= 0)
      h = check_group(fd, d->rs, d->path, d->size, d->page_size, d->cands, from, to, &d->walk,
                      &d->window);
  }
  if (d->failed_with != NULL) {
    d->failed = TRUE;
    g_propagate_error(error, g_error_copy(d->failed_with));
    return FALSE;
  }
  if (h == NULL) {
    const Candidate *v = &g_array_index(d->cands, Candidate, i);
    gboolean listed = FALSE;
    for (guint k = 0; k < d->bad->len && !listed; k++)
      listed = g_array_index(d->bad, guint64, k) == d->number;
    if (!listed) {
      g_array_append_val(d->bad, d->number);
      g_message("archive segment %s: its summary does not match its records; reading the "
                "records instead (run `sqlenvfs verify`)", d->path);
    }
    d->failed = TRUE;
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "archive segment %s: its summary does not match its records: the version of "
                "page %u it names (record %" G_GUINT64_FORMAT ", at offset %" G_GUINT64_FORMAT
                ", image %u) is not there (run `sqlenvfs verify`; the restore composes the "
                "segment from its records)", d->path, v->pgno, v->seq, v->offset, v->index);
    return FALSE;
  }
  for (guint k = from; k < to; k++) {
    goffset ref = sqlenvfs_archive_record_source_add(
      d->rs, &h->e, g_array_index(d->cands, Candidate, k).index);
    d->refs[k] = (guint32)(ref / d->page_size) + 1;
  }
  holder_free(h);
  return TRUE;
}

static gint
cmp_candidate_at(gconstpointer pa, gconstpointer pb, gpointer user)
{
  const GArray *cands = user;
  return cmp_candidate(&g_array_index(cands, Candidate, *(const guint32 *)pa),
                       &g_array_index(cands, Candidate, *(const guint32 *)pb));
}

/* The candidates of @d put in file order, at the first read (not while
 * composing, before the restore writes anything): pos[] maps a page of
 * this source to its candidate. */
static void
deferred_map_sort(DeferredMap *d)
{
  guint n = d->cands->len;
  g_autofree guint32 *order = g_new(guint32, MAX(n, 1));
  GArray *sorted = g_array_sized_new(FALSE, FALSE, sizeof(Candidate), n);

  for (guint i = 0; i < n; i++)
    order[i] = i;
  g_qsort_with_data(order, (gint)n, sizeof(guint32), cmp_candidate_at, d->cands);
  d->pos = g_new(guint32, MAX(n, 1));
  for (guint k = 0; k < n; k++) {
    g_array_append_val(sorted, g_array_index(d->cands, Candidate, order[k]));
    d->pos[order[k]] = k;
  }
  g_array_unref(d->cands);
  d->cands = sorted;
}

static gssize
deferred_map_read(gpointer p, void *buf, gsize len, goffset off, GError **error)
{
  DeferredMap *d = p;
  guint64 i, within;
  gssize n;

  if (off < 0)
    return 0;
  i = (guint64)off / d->page_size;
  within = (guint64)off % d->page_size;
  if (i >= d->n_cands)
    return 0;
  g_mutex_lock(&d->lock);
  if (d->pos == NULL)
    deferred_map_sort(d);
  i = d->pos[i];
  if (d->refs[i] == 0 && !deferred_map_check(d, (guint)i, error)) {
    g_mutex_unlock(&d->lock);
    return -1;
  }
  n = sqlenvfs_archive_record_source_read(
    d->rs, buf, len, (goffset)((guint64)(d->refs[i] - 1) * d->page_size + within), error);
  g_mutex_unlock(&d->lock);
  return n;
}

/* The candidates @cands (taken; put in file order at the first read) of
 * segment @si as a DeferredMap; NULL and *error when the segment's record
 * source cannot be made. */
static DeferredMap *
deferred_map_new(Compose *c, guint si, GArray *cands, GError **error)
{
  const SqlenvfsArchiveSegment *seg = &g_array_index(c->a->segments, SqlenvfsArchiveSegment, si);
  DeferredMap *d = g_new0(DeferredMap, 1);

  d->rs = sqlenvfs_archive_record_source_new(c->a, si, error);
  if (d->rs == NULL) {
    g_array_unref(cands);
    g_free(d);
    return NULL;
  }
  d->path = g_strdup(seg->path);
  d->size = seg->size;
  d->number = seg->number;
  d->page_size = c->page_size;
  d->cands = cands;
  d->n_cands = cands->len;
  d->refs = g_new0(guint32, MAX(cands->len, 1));
  d->bad = c->a->deferred_bad_maps;
  if (d->bad == NULL)
    d->bad = d->own_bad = g_array_new(FALSE, FALSE, sizeof(guint64));
  d->walk = (MemberWalk){ G_MAXUINT64, 0, 0, g_array_new(FALSE, FALSE, sizeof(Member)),
                          g_array_new(FALSE, FALSE, sizeof(guint32)) };
  g_mutex_init(&d->lock);
  return d;
}

/* Register the candidates @cands (taken) of segment @si as a DeferredMap
 * source, each page decided. */
static gboolean
compose_deferred(Compose *c, guint si, GArray *cands, GError **error)
{
  DeferredMap *d = deferred_map_new(c, si, cands, error);
  guint src;

  if (d == NULL)
    return FALSE;
  src = sqlenvfs_image_add_source(c->img, deferred_map_read, d, deferred_map_free);
  for (guint i = 0; i < cands->len; i++) {
    guint32 pgno = g_array_index(cands, Candidate, i).pgno;
    sqlenvfs_image_set_page(c->img, pgno, src, (goffset)i * c->page_size);
    decide(c, pgno);
  }
  return TRUE;
}

/* A segment composed to its end from its last versions (archive_last.c):
 * page k of this source is the k-th candidate registered, read from slot
 * @slots[k] of the segment's .last file (L1: opened and matched against
 * the summary at the first read, each block checked as it is read). When
 * the file cannot be used (missing, damaged, another segment's: L2), this
 * and every later read go to @fallback, the same candidates checked
 * against the records as a restore checks them (C2), and the reason is
 * logged once. */
typedef struct {
  DeferredMap *fallback;
  char *path;
  ArchiveLastHeader want;
  guint32 *slots;
  ArchiveLastReader *r;
  gboolean is_bad;
  GMutex lock;
} LastMap;

static void
last_map_free(gpointer p)
{
  LastMap *m = p;
  deferred_map_free(m->fallback);
  archive_last_reader_free(m->r);
  g_free(m->path);
  g_free(m->slots);
  g_mutex_clear(&m->lock);
  g_free(m);
}

static void
last_map_give_up(LastMap *m, const char *why, GError *error)
{
  if (why == archive_last_why_old)
    g_debug("archive segment %s: its last versions are not used: %s %s; reading its records "
            "instead", m->fallback->path, m->path, why);
  else if (why != NULL)
    g_message("archive segment %s: its last versions are not used: %s %s; reading its "
              "records instead (run `sqlenvfs verify`)", m->fallback->path, m->path, why);
  else
    g_message("archive segment %s: its last versions are not used: %s; reading its records "
              "instead", m->fallback->path, error ? error->message : "unknown error");
  m->is_bad = TRUE;
  g_clear_pointer(&m->r, archive_last_reader_free);
}

static gssize
last_map_read(gpointer p, void *buf, gsize len, goffset off, GError **error)
{
  LastMap *m = p;
  guint32 ps = m->want.page_size;
  guint64 i, within;

  if (off < 0)
    return 0;
  i = (guint64)off / ps;
  within = (guint64)off % ps;
  if (i >= m->fallback->n_cands)
    return 0;
  g_mutex_lock(&m->lock);
  if (!m->is_bad) {
    g_autoptr(GError) local = NULL;
    const char *why = NULL;
    const guint8 *page = NULL;
    /* The checksums that bind the file to its segment, read from the
     * segment at the first read, not while planning. */
    if (m->r == NULL &&
        archive_last_seg_binding_at(m->fallback->path, m->want.seg_size, &m->want.seg_head_crc,
                                    &m->want.seal_head_crc, &why, &local))
      m->r = archive_last_reader_open(m->path, &m->want, &why, &local);
    if (m->r != NULL)
      page = archive_last_reader_page(m->r, m->slots[i], &why, &local);
    if (page != NULL) {
      gsize n = MIN(len, ps - within);
      memcpy(buf, page + within, n);
      g_mutex_unlock(&m->lock);
      return (gssize)n;
    }
    last_map_give_up(m, why, local);
  }
  g_mutex_unlock(&m->lock);
  return deferred_map_read(m->fallback, buf, len, off, error);
}

/* Register the candidates @cands (taken) of segment @si, composed to its
 * end, with their page table slots @slots (taken), as a LastMap source,
 * each page decided. */
static gboolean
compose_last(Compose *c, guint si, const ArchiveSummary *s, GArray *cands, GArray *slots,
             GError **error)
{
  LastMap *m = g_new0(LastMap, 1);
  guint src;

  m->fallback = deferred_map_new(c, si, cands, error);
  if (m->fallback == NULL) {
    g_array_unref(slots);
    g_free(m);
    return FALSE;
  }
  m->path = archive_last_path(c->a->dir, s->number);
  m->want = (ArchiveLastHeader){ .number = s->number, .seg_size = s->seg_size,
                                 .last_seq = s->last_seq, .seal_crc = s->seal_crc,
                                 .page_size = c->page_size, .n_pages = s->n_pages,
                                 .pages_crc = s->pages_crc, .last_crc = s->last_crc };
  m->slots = (guint32 *)(void *)g_array_free(slots, FALSE);
  g_mutex_init(&m->lock);
  src = sqlenvfs_image_add_source(c->img, last_map_read, m, last_map_free);
  for (guint i = 0; i < m->fallback->cands->len; i++) {
    guint32 pgno = g_array_index(m->fallback->cands, Candidate, i).pgno;
    sqlenvfs_image_set_page(c->img, pgno, src, (goffset)i * c->page_size);
    decide(c, pgno);
  }
  return TRUE;
}

/* What composing a part of segment @si adds to the progress. */
static void
count_done(Compose *c, gboolean whole, guint64 commit_bytes, guint64 lo, guint64 hi)
{
  if (whole) {
    c->done += commit_bytes;
  } else {
    guint64 bytes = 0;
    sqlenvfs_archive_count_commits(c->a, lo, hi, NULL, &bytes, NULL);
    c->done += bytes;
  }
  if (c->progress)
    c->progress(c->user, c->done, c->total);
}

/* Whether the page map of segment @seg was found not to match its records
 * by an earlier try of this restore. */
static gboolean
is_bad_map(const Compose *c, const SqlenvfsArchiveSegment *seg)
{
  const GArray *bad = c->a->deferred_bad_maps;
  for (guint k = 0; bad != NULL && k < bad->len; k++)
    if (g_array_index(bad, guint64, k) == seg->number)
      return TRUE;
  return FALSE;
}

/* A segment's part of the range, and how it is composed. */
typedef struct {
  guint si;
  guint64 lo, hi;   /* its records in (lo, hi]                   */
  gboolean whole;   /* all of its records                        */
  gboolean by_map;  /* from its page map                         */
  guint32 cur_in;   /* the database size before them             */
} Part;

/* The page-map path for segment @si with seq in (@lo, @hi], the database
 * @cur_in pages before them. With @plan_only, whether the segment can take
 * it (a sealed version 2 segment with a good summary, no shrink in the
 * range, and its size changes following from @cur_in), and the size after
 * the range in *@cur_out. Otherwise compose it:
 * the last version <= @hi of every page not decided yet, when it is after
 * @lo, each checked against its records before any is used. Returns TRUE
 * when it can or did; FALSE with no error when the segment must take the
 * record path (no usable summary, a shrink or a size it cannot follow, a
 * mismatch); FALSE with *error
 * on an I/O error. */
static gboolean
compose_page_map(Compose *c, guint si, guint64 lo, guint64 hi, gboolean whole, gboolean plan_only,
                 guint32 cur_in, guint32 *cur_out, GError **error)
{
  const SqlenvfsArchiveSegment *seg = &g_array_index(c->a->segments, SqlenvfsArchiveSegment, si);
  g_autoptr(GPtrArray) holders = NULL; /* owns the holders the actions name */
  MemberWalk walk = { G_MAXUINT64, 0, 0, NULL, NULL };
  g_autoptr(GArray) actions = NULL;
  g_autoptr(GArray) cands = NULL;
  g_autoptr(GArray) slots = NULL;
  Holder *h = NULL;
  MemberWindow window = { NULL, 0, 0, 0, 0 };
  EntryMemo memo = { { 0, 0 }, { { 0 } }, { FALSE, FALSE } };
  ArchiveSumParts sp;
  const ArchiveSummary *s = &sp.s;
  g_autoptr(GError) load_error = NULL;
  const char *why = NULL;
  guint32 seal, cur = cur_in;
  gboolean mismatch = FALSE, on_demand;
  ArchiveSumLoad r;
  guint64 commit_bytes, last_max = 0;
  guint src;
  int fd;

  if (!seg->is_sealed || seg->is_damaged || is_bad_map(c, seg))
    return FALSE;
  /* A summary the archive uses had its head checked when the archive was
   * opened; the segment file is checked against it (size, header, SEAL's
   * checksum) where it is first read: below before any version it names
   * is, or by the record source's first read (a restore to a file). */
  if (si < c->a->segsum->len && g_array_index(c->a->segsum, ArchiveSegSum, si).is_summarized) {
    const ArchiveSummary *held = &g_array_index(c->a->segsum, ArchiveSegSum, si).s;
    if (held->seg_size != seg->size || held->seg_version < 2)
      return FALSE; /* version 1: the record path (top of this file) */
    /* Planning a wholly covered segment needs only the size after it; a
     * shrink in it is found when it is composed (below), which then takes
     * the record path from the same size before it. */
    if (plan_only && whole && held->version >= 2) {
      *cur_out = held->last_db_pages != 0 ? held->last_db_pages : cur_in;
      return TRUE;
    }
    seal = held->seal_crc;
  } else if (!archive_read_seal(seg->path, seg->size, &seal)) {
    return FALSE;
  }
  /* Only the parts this range needs: the size changes to plan; the page
   * table and the last version of each page to compose; every version
   * only when the range ends before the segment does. */
  r = archive_summary_open_parts(c->a->dir, seg->number, seg->size, seal, &sp, &why, &load_error);
  if (r == ARCHIVE_SUM_GOOD && sp.s.seg_version < 2) {
    archive_summary_parts_clear(&sp);
    return FALSE; /* version 1: the record path (top of this file) */
  }
  if (r == ARCHIVE_SUM_GOOD)
    r = archive_summary_read_part(&sp, plan_only ? ARCHIVE_SUM_PART_SIZES : ARCHIVE_SUM_PART_PAGES,
                                  &why, &load_error);
  /* The last commit that wrote a page: a range ending at or after it
   * takes every page's last version (and may take the .last file). */
  if (r == ARCHIVE_SUM_GOOD && !plan_only && sp.last == NULL)
    last_max = s->last_seq; /* a version 1 summary: no last versions part */
  for (guint32 i = 0; r == ARCHIVE_SUM_GOOD && !plan_only && sp.last && i < s->n_pages; i++)
    last_max = MAX(last_max, get64(sp.last + (gsize)i * ARCHIVE_SUM_VERSION_SIZE));
  if (r == ARCHIVE_SUM_GOOD && !plan_only && hi < last_max)
    r = archive_summary_read_part(&sp, ARCHIVE_SUM_PART_VERSIONS, &why, &load_error);
  if (r == ARCHIVE_SUM_GOOD && !plan_only)
    r = archive_summary_read_part(&sp, ARCHIVE_SUM_PART_SIZES, &why, &load_error);
  switch (r) {
  case ARCHIVE_SUM_GOOD:
    break;
  case ARCHIVE_SUM_MISSING:
    return FALSE;
  case ARCHIVE_SUM_BAD:
    g_message("archive %s: the summary of %s is not used: %s (run `sqlenvfs verify`)",
              c->a->dir, seg->path, why);
    archive_summary_parts_clear(&sp);
    return FALSE;
  case ARCHIVE_SUM_ERROR:
    /* A summary only saves work: read the records. */
    g_message("archive %s: the summary of %s is not used: %s", c->a->dir, seg->path,
              load_error->message);
    archive_summary_parts_clear(&sp);
    return FALSE;
  }
  {
    /* Sizes: a shrink in the range takes the record path (found when
     * planning, or for a wholly covered segment planned from the size
     * after it, now). A size change is recorded against the segment's
     * COMMIT before it, so the changes in the range follow from @cur_in
     * only when that COMMIT (the last one at or before @lo) left the
     * database @cur_in pages: a range that starts after a GAP inside the
     * segment (its base a new chain's first state, of another size) may
     * change the size at its first COMMIT with no change recorded, and
     * takes the record path too (C1). */
    gboolean by_records = FALSE, has_before = FALSE;
    guint32 before = 0;
    for (guint i = 0; i < s->n_sizes && !by_records; i++) {
      const guint8 *z = sp.sizes + (gsize)i * ARCHIVE_SUM_SIZE_SIZE;
      guint64 seq = get64(z);
      if (seq <= lo) {
        has_before = TRUE;
        before = get32(z + 8);
        continue;
      }
      if (seq > hi)
        continue;
      by_records = get32(z + 8) < cur;
      cur = get32(z + 8);
    }
    if (has_before && before != cur_in)
      by_records = TRUE;
    if (by_records || plan_only)
      archive_summary_parts_clear(&sp);
    if (by_records)
      return FALSE;
    if (plan_only) {
      *cur_out = cur;
      return TRUE;
    }
  }

  cands = g_array_sized_new(FALSE, FALSE, sizeof(Candidate), s->n_pages);
  slots = g_array_sized_new(FALSE, FALSE, sizeof(guint32), s->n_pages);
  for (guint32 i = 0; i < s->n_pages; i++) {
    guint32 pgno = get32(sp.pages + (gsize)i * ARCHIVE_SUM_PAGE_SIZE);
    ArchiveSumVersion v;
    Candidate cand;
    if (is_decided(c, pgno) || !archive_summary_parts_version(&sp, i, hi, &v) || v.seq <= lo)
      continue;
    cand = (Candidate){ pgno, v.index, v.seq, v.offset };
    g_array_append_val(cands, cand);
    g_array_append_val(slots, i);
  }
  commit_bytes = s->commit_bytes;
  on_demand = archive_is_fetched(seg->path);
  /* Composed to the segment's end, from its last versions when it has
   * them (L1, L2: read at the first read, the records the fallback). */
  if (!on_demand && s->version >= 2 && hi >= last_max && cands->len > 0) {
    g_autofree char *last = archive_last_path(c->a->dir, seg->number);
    if (access(last, F_OK) == 0) {
      ArchiveSummary held = *s;
      archive_summary_parts_clear(&sp);
      if (!compose_last(c, si, &held, g_steal_pointer(&cands), g_steal_pointer(&slots), error))
        return FALSE;
      count_done(c, whole, commit_bytes, lo, hi);
      return TRUE;
    }
  }
  /* C2: every candidate checked against its records before its image is
   * used; in file order: each holding record read once, then its batch's
   * commits, going forward. A segment filled on demand (mount --remote)
   * is checked against its index entries now and against its page lists
   * as each page is first read, so that composing fetches no record. A
   * restore that writes a temporary output defers the whole check to the
   * first read of each page (DeferredMap), so that it starts writing at
   * once. */
  if (!on_demand && c->a->deferred_bad_maps != NULL) {
    archive_summary_parts_clear(&sp);
    if (cands->len > 0 && !compose_deferred(c, si, g_steal_pointer(&cands), error))
      return FALSE;
    count_done(c, whole, commit_bytes, lo, hi);
    return TRUE;
  }
  g_array_sort(cands, cmp_candidate);
  /* A segment the archive took from its summary is checked against it
   * before any version it names is (C2): now, or for a segment filled on
   * demand by its record source's first read, which fetches its header
   * then (composing a state of a long remote history would otherwise
   * fetch the header of every segment it covers, one after the other). */
  if (!on_demand && !archive_seg_check(c->a, si, error)) {
    archive_summary_parts_clear(&sp);
    return FALSE;
  }
  fd = open(seg->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    archive_summary_parts_clear(&sp);
    return sqlenvfs_error_errno(error, errno, "open archive segment", seg->path);
  }
  holders = g_ptr_array_new_with_free_func(holder_free);
  walk.members = g_array_new(FALSE, FALSE, sizeof(Member));
  walk.pgnos = g_array_new(FALSE, FALSE, sizeof(guint32));
  actions = g_array_new(FALSE, FALSE, sizeof(Action));
  for (guint i = 0; i < cands->len && !mismatch && on_demand; i++) {
    const Candidate *v = &g_array_index(cands, Candidate, i);
    Action act = { v->pgno, v->index, NULL, 0 };
    act.holder = h = holder_from_index(c, si, v, h, holders, &memo, &act.list_off);
    if (h == NULL)
      mismatch = TRUE;
    else
      g_array_append_val(actions, act);
  }
  for (guint i = 0; i < cands->len && !mismatch && !on_demand;) {
    guint to = group_end(cands, i);
    h = check_group(fd, NULL, seg->path, seg->size, c->page_size, cands, i, to, &walk, &window);
    if (h == NULL) {
      mismatch = TRUE;
      break;
    }
    g_ptr_array_add(holders, h);
    for (; i < to; i++) {
      const Candidate *v = &g_array_index(cands, Candidate, i);
      Action act = { v->pgno, v->index, h, 0 };
      g_array_append_val(actions, act);
    }
  }
  close(fd);
  g_free(window.buf);
  g_array_unref(walk.members);
  g_array_unref(walk.pgnos);
  archive_summary_parts_clear(&sp);
  if (mismatch) {
    g_message("archive %s: the summary of %s does not match its records; reading the "
              "records instead (run `sqlenvfs verify`)",
              c->a->dir, seg->path);
    return FALSE;
  }

  src = actions->len > 0 ? record_source(c, si, error) : 0;
  if (actions->len > 0 && src == 0)
    return FALSE;
  for (guint i = 0; i < actions->len; i++) {
    const Action *act = &g_array_index(actions, Action, i);
    goffset ref = sqlenvfs_archive_record_source_add(c->rec_obj[si], &act->holder->e, act->index);
    if (act->list_off != 0)
      archive_record_source_expect(c->rec_obj[si], ref, act->list_off, act->pgno);
    sqlenvfs_image_set_page(c->img, act->pgno, src, ref);
    decide(c, act->pgno);
  }
  count_done(c, whole, commit_bytes, lo, hi);
  return TRUE;
}

gboolean
sqlenvfs_archive_compose(SqlenvfsArchive *a, SqlenvfsImage *img, guint32 page_size,
                         guint64 base_seq, guint32 base_pages, guint64 target_seq,
                         guint32 *n_pages, SqlenvfsProgressFunc progress, gpointer user,
                         GError **error)
{
  Compose c = { 0 };
  guint n_segs = a->segments->len;
  g_autofree guint *file_src = g_new0(guint, MAX(n_segs, 1));
  g_autofree guint *rec_src = g_new0(guint, MAX(n_segs, 1));
  g_autofree SqlenvfsArchiveRecordSource **rec_obj =
    g_new0(SqlenvfsArchiveRecordSource *, MAX(n_segs, 1));
  g_autoptr(GArray) parts = NULL;
  g_autofree guint8 *decided = NULL;
  SqlenvfsArchiveEntry e;
  guint64 first_seq = 0;

  g_return_val_if_fail(target_seq >= base_seq, FALSE);
  c.a = a;
  c.img = img;
  c.page_size = page_size;
  c.cur_pages = base_pages;
  c.file_src = file_src;
  c.rec_src = rec_src;
  c.rec_obj = rec_obj;
  c.progress = progress;
  c.user = user;
  /* C3: the base and the target are readable records, nothing between them
   * is missing, damaged or a new chain. */
  if (!sqlenvfs_archive_get(a, base_seq, &e) || !sqlenvfs_archive_get(a, target_seq, &e))
    return gap_error(&c, error);
  for (guint i = 0; i < sqlenvfs_archive_n_marks(a); i++) {
    guint64 after;
    const SqlenvfsArchiveEntry *m = sqlenvfs_archive_mark(a, i, &after);
    if (m->type == SQLENVFS_ARCHIVE_GAP && after >= base_seq && after < target_seq)
      return gap_error(&c, error);
  }
  sqlenvfs_archive_count_commits(a, base_seq, target_seq, NULL, &c.total, NULL);

  /* Forward: the segments of the range, the way each is composed, and
   * the database size through them. */
  parts = g_array_new(FALSE, FALSE, sizeof(Part));
  for (guint si = 0; si < n_segs; si++) {
    const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
    guint64 next_first = G_MAXUINT64, lo, hi;
    Part part;
    if (seg->is_damaged && seg->n_entries == 0)
      continue;
    first_seq = seg->first_seq;
    for (guint k = si + 1; k < n_segs; k++) {
      const SqlenvfsArchiveSegment *n = &g_array_index(a->segments, SqlenvfsArchiveSegment, k);
      if (!n->is_damaged || n->n_entries > 0) {
        next_first = n->first_seq;
        break;
      }
    }
    if (next_first <= first_seq)
      continue;
    lo = MAX(base_seq, first_seq - 1);
    hi = MIN(target_seq, next_first - 1);
    if (lo >= hi)
      continue;
    part = (Part){ si, lo, hi, lo == first_seq - 1 && hi == next_first - 1, FALSE, c.cur_pages };
    part.by_map = compose_page_map(&c, si, lo, hi, part.whole, TRUE, c.cur_pages, &c.cur_pages,
                                   error);
    if (error && *error)
      return FALSE;
    if (!part.by_map) {
      guint from, to;
      if (!range_commits(&c, si, lo, hi, &from, &to, &c.cur_pages, error))
        return FALSE;
    }
    g_array_append_val(parts, part);
  }
  if (parts->len > 0 && !check_links(a, g_array_index(parts, Part, 0).si, error))
    return FALSE;
  /* Backward: each page's last image decided once. */
  c.final_pages = c.cur_pages;
  decided = g_malloc0(c.final_pages / 8 + 1);
  c.decided = decided;
  for (guint k = parts->len; k > 0; k--) {
    const Part *part = &g_array_index(parts, Part, k - 1);
    if (part->by_map &&
        compose_page_map(&c, part->si, part->lo, part->hi, part->whole, FALSE, part->cur_in, NULL,
                         error))
      continue;
    if ((error && *error) ||
        !compose_records(&c, part->si, part->lo, part->hi, part->cur_in, error))
      return FALSE;
  }
  for (guint si = 0; si < n_segs; si++)
    if (rec_obj[si] != NULL)
      archive_record_source_trim(rec_obj[si]);
  sqlenvfs_image_set_n_pages(img, c.cur_pages);
  *n_pages = c.cur_pages;
  return TRUE;
}
