/*
 * archive_last.c — the last version of each page of a sealed segment,
 * stored apart (<number>.last, beside its summary; layout in
 * docs/ARCHIVE.md, "Last versions").
 *
 * A state composed past a sealed segment takes, of that segment, the last
 * version of each page it wrote. In the records, each of those versions
 * sits in a compressed block of its batch among the other versions of that
 * batch: reaching one page means reading and decompressing a block of 16.
 * The .last file holds exactly the last versions, in page-number order, in
 * blocks of the same kind (zstd frames, each with its crc32), so that a
 * restore reads each of them once, in order, and decompresses each block
 * once for 16 pages it keeps.
 *
 * It is written with the summary (archive_summary_write), from the records
 * the summary names (each read and checked whole, its blocks checked as
 * they are decompressed), when it saves work: a version 2 segment whose
 * pages have on average LAST_MIN_VERSIONS versions or more, and whose last
 * versions take at most LAST_MAX_BYTES (they are gathered in memory).
 *
 * Invariants:
 *   (L1) A .last file is used only when its header and block table check
 *        (their crc32) and bind it to its segment and its summary: segment
 *        number, size, SEAL checksum, last seq, page size, the checksums
 *        of the segment's header and of its SEAL record's header (its
 *        creation time, the seal's time and the digest of its records:
 *        another root's segment of the same layout differs), the crc32 of the
 *        summary's page table and of its last versions (which pages, which
 *        versions). Each block is used only when it matches its crc32 and
 *        decompresses to exactly its pages.
 *   (L2) Anything else (missing, unreadable, damaged, another segment's)
 *        leaves the segment to the records: the reader falls back to the
 *        page map's versions, checked against the records (archive
 *        compose's C2), never a wrong page.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive_int.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ZSTD_DCtx, ZSTD_freeDCtx)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ZSTD_CCtx, ZSTD_freeCCtx)

char *
archive_last_path(const char *dir, guint64 number)
{
  g_autofree char *name = archive_seg_name(number, "last");
  return g_build_filename(dir, name, NULL);
}

const char archive_last_why_old[] =
  "was written by an earlier version (bound to its segment's layout and creation time "
  "only); the archiver writes it again";

gboolean
archive_last_seg_binding(int fd, const char *path, guint64 size, guint32 *head_crc,
                         guint32 *seal_head_crc, const char **why, GError **error)
{
  guint8 head[SEG_HEADER_SIZE];
  gsize got_head = 0;
  SqlenvfsArchiveEntry e;

  if (size < SEG_HEADER_SIZE + REC_EMPTY_SIZE) {
    *why = "belongs to a segment too short to be sealed";
    return FALSE;
  }
  if (!archive_pread_full(fd, head, sizeof head, 0, &got_head, path, error))
    return FALSE;
  /* The SEAL record header's own checksum: it covers every field (the
   * trailer's, over a header that ends with that checksum, would not). */
  if (got_head < sizeof head ||
      !archive_read_seal_entry_fd(fd, path, size, &e, seal_head_crc, error)) {
    if (error == NULL || *error == NULL)
      *why = "belongs to a segment that does not end in a SEAL record";
    return FALSE;
  }
  *head_crc = get32(head + SEG_HEADER_SIZE - 4);
  return TRUE;
}

gboolean
archive_last_seg_binding_at(const char *path, guint64 size, guint32 *head_crc,
                            guint32 *seal_head_crc, const char **why, GError **error)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  gboolean ok;

  if (fd < 0 || fstat(fd, &st) != 0) {
    sqlenvfs_error_errno(error, errno, "open", path);
    if (fd >= 0)
      close(fd);
    return FALSE;
  }
  if ((guint64)st.st_size != size) {
    close(fd);
    *why = "belongs to a segment of another size";
    return FALSE;
  }
  ok = archive_last_seg_binding(fd, path, size, head_crc, seal_head_crc, why, error);
  close(fd);
  return ok;
}

static guint32
head_crc(const guint8 *p, gsize len)
{
  return crc(crc(0, p, 92), p + ARCHIVE_LAST_HEADER_SIZE, len - ARCHIVE_LAST_HEADER_SIZE);
}

gboolean
archive_last_parse_fixed(const guint8 *p, gsize avail, ArchiveLastHeader *h, const char **why)
{
  memset(h, 0, sizeof *h);
  if (avail < ARCHIVE_LAST_HEADER_SIZE || memcmp(p, ARCHIVE_LAST_MAGIC, 8) != 0) {
    *why = "is not a file of last versions (bad magic or too short)";
    return FALSE;
  }
  if ((get32(p + 8) == 1 || get32(p + 8) == 2) && get32(p + 12) == ARCHIVE_LAST_HEADER_SIZE) {
    *why = archive_last_why_old;
    return FALSE;
  }
  if (get32(p + 8) != ARCHIVE_LAST_VERSION || get32(p + 12) != ARCHIVE_LAST_HEADER_SIZE) {
    *why = "has a version this sqlenvfs does not know";
    return FALSE;
  }
  h->number = get64(p + 16);
  h->seg_size = get64(p + 24);
  h->seal_crc = get32(p + 32);
  h->page_size = get32(p + 36);
  h->n_pages = get32(p + 40);
  h->pages_crc = get32(p + 44);
  h->last_crc = get32(p + 48);
  h->n_blocks = get32(p + 52);
  h->last_seq = get64(p + 56);
  h->seg_head_crc = get32(p + 64);
  h->seal_head_crc = get32(p + 68);
  for (guint i = 72; i < 92; i++) {
    if (p[i] != 0) {
      *why = "has a header that does not hold together";
      return FALSE;
    }
  }
  if (!sqlenvfs_page_size_ok(h->page_size) || h->n_pages == 0 ||
      (guint64)h->n_pages * h->page_size > ARCHIVE_LAST_MAX_BYTES ||
      h->n_blocks != archive_n_blocks(h->n_pages, h->page_size)) {
    *why = "has a header that does not hold together";
    return FALSE;
  }
  h->table_len = (gsize)h->n_blocks * BLOCK_ENTRY_SIZE;
  return TRUE;
}

gboolean
archive_last_parse_table(const guint8 *p, guint64 file_len, ArchiveLastHeader *h,
                         const char **why)
{
  guint32 ppb = archive_pages_per_block(h->page_size);
  guint64 pos = ARCHIVE_LAST_HEADER_SIZE + h->table_len;

  if (get32(p + 92) != head_crc(p, ARCHIVE_LAST_HEADER_SIZE + h->table_len)) {
    *why = "has a header that fails its checksum";
    return FALSE;
  }
  for (guint32 j = 0; j < h->n_blocks; j++) {
    guint64 stored = get32(p + ARCHIVE_LAST_HEADER_SIZE + (gsize)j * BLOCK_ENTRY_SIZE);
    guint64 raw = (guint64)MIN(ppb, h->n_pages - j * ppb) * h->page_size;
    if (stored == 0 || stored > raw) {
      *why = "has a block table that does not hold together";
      return FALSE;
    }
    pos += stored;
  }
  if (pos != file_len) {
    *why = "is not the size its block table gives";
    return FALSE;
  }
  h->file_len = file_len;
  return TRUE;
}

/* Decompress (or copy) block @j of @h, its stored bytes at @src, into
 * @dst (its pages' length), checking it: NULL, or what is wrong. */
static const char *
decode_block(const ArchiveLastHeader *h, const guint8 *table, guint32 j, const guint8 *src,
             guint8 *dst, ZSTD_DCtx *dctx)
{
  guint32 ppb = archive_pages_per_block(h->page_size);
  return archive_decode_block(src, get32(table + (gsize)j * BLOCK_ENTRY_SIZE),
                              (gsize)MIN(ppb, h->n_pages - j * ppb) * h->page_size,
                              get32(table + (gsize)j * BLOCK_ENTRY_SIZE + 4), dst, dctx);
}

/* Block @j of @h (@stored bytes at @src) checked without decompressing
 * it: its crc32, and, for a zstd frame, the content size its header
 * declares (exactly its pages) and where the frame ends (exactly its
 * stored length). NULL, or what is wrong. */
static const char *
check_block_frame(const ArchiveLastHeader *h, const guint8 *table, guint32 j, const guint8 *src)
{
  guint32 ppb = archive_pages_per_block(h->page_size);
  gsize stored = get32(table + (gsize)j * BLOCK_ENTRY_SIZE);
  gsize raw = (gsize)MIN(ppb, h->n_pages - j * ppb) * h->page_size;

  if (crc(0, src, stored) != get32(table + (gsize)j * BLOCK_ENTRY_SIZE + 4))
    return "has a compressed block that fails its checksum";
  if (!archive_block_frame_ok(src, stored, raw))
    return "has a compressed block whose zstd frame does not hold exactly its pages";
  return NULL;
}

const char *
archive_last_check_bytes(const guint8 *p, gsize len, ArchiveLastHeader *h, gboolean decompress,
                         guint8 *pages)
{
  g_autoptr(ZSTD_DCtx) dctx = decompress || pages ? ZSTD_createDCtx() : NULL;
  g_autofree guint8 *own = NULL;
  guint32 ppb;
  const char *why = NULL;
  guint64 pos;

  if (!archive_last_parse_fixed(p, len, h, &why))
    return why;
  if (len < ARCHIVE_LAST_HEADER_SIZE + h->table_len)
    return "is cut short (in its block table)";
  if (!archive_last_parse_table(p, len, h, &why))
    return why;
  ppb = archive_pages_per_block(h->page_size);
  pos = ARCHIVE_LAST_HEADER_SIZE + h->table_len;
  if (pages == NULL && dctx != NULL)
    own = g_malloc((gsize)ppb * h->page_size);
  for (guint32 j = 0; j < h->n_blocks && why == NULL; j++) {
    gsize stored = get32(p + ARCHIVE_LAST_HEADER_SIZE + (gsize)j * BLOCK_ENTRY_SIZE);
    guint8 *dst = pages ? pages + (gsize)j * ppb * h->page_size : own;
    why = dctx ? decode_block(h, p + ARCHIVE_LAST_HEADER_SIZE, j, p + pos, dst, dctx)
               : check_block_frame(h, p + ARCHIVE_LAST_HEADER_SIZE, j, p + pos);
    pos += stored;
  }
  return why;
}

/* ------------------------------------------------------------------ */
/* Writing                                                              */

typedef struct {
  guint64 offset; /* the record holding the image */
  guint32 index;  /* among its page stream        */
  guint32 slot;   /* its page's place in the page table */
} Want;

static gint
cmp_want(gconstpointer pa, gconstpointer pb)
{
  const Want *a = pa, *b = pb;
  if (a->offset != b->offset)
    return a->offset < b->offset ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

static gboolean
not_built(GError **error, const char *path, const char *why)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "archive segment %s: its last versions cannot be gathered: %s (run "
              "`sqlenvfs verify`)", path, why);
  return FALSE;
}

/* Where each block of the compressed COMMIT @e (held whole in @rec, its
 * checksum checked) starts, and where the last one ends, into @blocks:
 * the block table must cover the block data exactly. NULL, or what is
 * wrong. */
static const char *
record_blocks(const SqlenvfsArchiveEntry *e, const guint8 *rec, GArray *blocks)
{
  guint32 nb = archive_n_blocks(archive_stream_pages(e), e->page_size);
  guint64 table = e->length - REC_TRAILER_SIZE - (guint64)nb * BLOCK_ENTRY_SIZE;
  guint64 pos = REC_HEADER_SIZE + 4 * (guint64)e->n_pages;

  g_array_set_size(blocks, 0);
  for (guint32 j = 0; j < nb; j++) {
    g_array_append_val(blocks, pos);
    pos += get32(rec + table + (gsize)j * BLOCK_ENTRY_SIZE);
    if (pos > table)
      return "has a block table that does not match its data";
  }
  g_array_append_val(blocks, pos);
  return pos == table ? NULL : "has bytes between its last block and its block table";
}

/* Block @j of the compressed COMMIT @e held whole in @rec (@blocks from
 * record_blocks) into @dst, checked as every read of a block is. */
static const char *
record_block(const SqlenvfsArchiveEntry *e, const guint8 *rec, const GArray *blocks, guint32 j,
             guint8 *dst, ZSTD_DCtx *dctx)
{
  guint32 sp = archive_stream_pages(e), ppb = archive_pages_per_block(e->page_size);
  guint32 nb = blocks->len - 1;
  const guint8 *table = rec + e->length - REC_TRAILER_SIZE - (gsize)nb * BLOCK_ENTRY_SIZE;
  guint64 from = g_array_index(blocks, guint64, j), to = g_array_index(blocks, guint64, j + 1);

  return archive_decode_block(rec + from, (gsize)(to - from),
                              (gsize)MIN(ppb, sp - j * ppb) * e->page_size,
                              get32(table + (gsize)j * BLOCK_ENTRY_SIZE + 4), dst, dctx);
}

/* The image of every page of @s's page table (@last: its last versions),
 * read from the records of the segment @sf names, into *@pages (n_pages *
 * *page_size bytes). Each holding record is read and checked whole (its
 * checksum, its block table), and each of its blocks that holds a version
 * wanted is checked (its crc32) and decompressed. */
static gboolean
gather(SegFile *sf, const ArchiveSummary *s, const guint8 *last, guint8 **pages,
       guint32 *page_size, GError **error)
{
  g_autoptr(GArray) wants = g_array_sized_new(FALSE, FALSE, sizeof(Want), s->n_pages);
  g_autoptr(ZSTD_DCtx) dctx = ZSTD_createDCtx();
  g_autofree guint8 *rec = NULL, *stream = NULL, *out = NULL;
  g_autoptr(GArray) blocks = g_array_new(FALSE, FALSE, sizeof(guint64));
  guint32 ps = 0, ppb = 0, decoded;

  for (guint32 i = 0; i < s->n_pages; i++) {
    const guint8 *v = last + (gsize)i * ARCHIVE_SUM_VERSION_SIZE;
    Want w = { get64(v + 8), get32(v + 16), i };
    g_array_append_val(wants, w);
  }
  g_array_sort(wants, cmp_want);
  for (guint i = 0; i < wants->len;) {
    guint64 at = g_array_index(wants, Want, i).offset;
    guint8 hdr[REC_HEADER_SIZE];
    SqlenvfsArchiveEntry e;
    gsize got;
    guint32 sp;
    const char *why;

    if (!archive_pread_full(sf->fd, hdr, sizeof hdr, at, &got, sf->path, error))
      return FALSE;
    if (got < sizeof hdr || !archive_decode_header(hdr, &e) ||
        e.type != SQLENVFS_ARCHIVE_COMMIT || !(e.flags & SQLENVFS_ARCHIVE_COMPRESSED) ||
        !archive_compressed_length_ok(&e) || at + e.length > sf->size ||
        (ps != 0 && e.page_size != ps))
      return not_built(error, sf->path, "a version its summary names is not a compressed "
                       "record there");
    ps = e.page_size;
    ppb = archive_pages_per_block(ps);
    if (out == NULL) {
      if ((guint64)s->n_pages * ps > ARCHIVE_LAST_MAX_BYTES) {
        /* Not a fault: the file would hold more than a reader or the
         * writer should keep in memory, so the records serve. */
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                    "archive segment %s: its last versions are not stored apart: %u pages "
                    "of %u bytes, more than %u MiB", sf->path, s->n_pages, ps,
                    ARCHIVE_LAST_MAX_BYTES >> 20);
        return FALSE;
      }
      out = g_malloc((gsize)s->n_pages * ps);
    }
    rec = g_realloc(rec, (gsize)e.length);
    if (!archive_pread_full(sf->fd, rec, (gsize)e.length, at, &got, sf->path, error))
      return FALSE;
    if (got < e.length || crc(0, rec, (gsize)e.length - REC_TRAILER_SIZE) !=
                            get32(rec + e.length - REC_TRAILER_SIZE) ||
        get32(rec + e.length - 4) != REC_END_MAGIC)
      return not_built(error, sf->path, "a record fails its checksum");
    sp = archive_stream_pages(&e);
    why = record_blocks(&e, rec, blocks);
    if (why != NULL)
      return not_built(error, sf->path, why);
    stream = g_realloc(stream, (gsize)MIN(ppb, sp) * ps);
    decoded = G_MAXUINT32;
    /* Only the blocks that hold a version wanted, each checked. */
    for (; i < wants->len && g_array_index(wants, Want, i).offset == at; i++) {
      const Want *x = &g_array_index(wants, Want, i);
      guint32 j = x->index / ppb;
      if (x->index >= sp)
        return not_built(error, sf->path, "a version its summary names is not in its record");
      if (j != decoded) {
        why = record_block(&e, rec, blocks, j, stream, dctx);
        if (why != NULL)
          return not_built(error, sf->path, why);
        decoded = j;
      }
      memcpy(out + (gsize)x->slot * ps, stream + (gsize)(x->index % ppb) * ps, ps);
    }
  }
  *pages = g_steal_pointer(&out);
  *page_size = ps;
  return TRUE;
}

gboolean
archive_last_worth(const ArchiveSummary *s)
{
  return s->seg_version >= 2 && s->n_pages > 0 &&
         s->n_versions / s->n_pages >= ARCHIVE_LAST_MIN_VERSIONS;
}

gboolean
archive_last_images(const char *dir, guint64 number, const guint8 *sum, gsize sum_len,
                    ArchiveSummary *s, guint8 **pages, guint32 *page_size, guint32 bind[2],
                    GError **error)
{
  const char *why = NULL;
  SegFile sf;
  gboolean ok;

  if (!archive_summary_parse(sum, sum_len, s, &why) || s->version < 2) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "segment %" G_GUINT64_FORMAT " of %s: no usable summary to gather its last "
                "versions from (%s)", number, dir, why ? why : "version 1");
    return FALSE;
  }
  if (!archive_seg_file_open(dir, number, O_RDONLY, &sf, error))
    return FALSE;
  if (sf.size != s->seg_size) {
    ok = not_built(error, sf.path, "it is not the size its summary gives");
  } else if (!archive_last_seg_binding(sf.fd, sf.path, sf.size, &bind[0], &bind[1], &why,
                                       error)) {
    ok = why != NULL ? not_built(error, sf.path, why) : FALSE;
  } else {
    ok = gather(&sf, s, sum + s->last_off, pages, page_size, error);
  }
  archive_seg_file_close(&sf);
  return ok;
}

GByteArray *
archive_last_encode(const ArchiveSummary *s, const guint32 bind[2], const guint8 *pages,
                    guint32 ps)
{
  g_autoptr(ZSTD_CCtx) cctx = ZSTD_createCCtx();
  g_autofree guint8 *zbuf = NULL;
  GByteArray *out = g_byte_array_new();
  guint32 ppb = archive_pages_per_block(ps), nb = archive_n_blocks(s->n_pages, ps);
  guint8 hdr[ARCHIVE_LAST_HEADER_SIZE] = { 0 };
  gsize zcap;

  zcap = ZSTD_compressBound((gsize)ppb * ps);
  zbuf = g_malloc(zcap);
  memcpy(hdr, ARCHIVE_LAST_MAGIC, 8);
  put32(hdr + 8, ARCHIVE_LAST_VERSION);
  put32(hdr + 12, ARCHIVE_LAST_HEADER_SIZE);
  put64(hdr + 16, s->number);
  put64(hdr + 24, s->seg_size);
  put32(hdr + 32, s->seal_crc);
  put32(hdr + 36, ps);
  put32(hdr + 40, s->n_pages);
  put32(hdr + 44, s->pages_crc);
  put32(hdr + 48, s->last_crc);
  put32(hdr + 52, nb);
  put64(hdr + 56, s->last_seq);
  put32(hdr + 64, bind[0]);
  put32(hdr + 68, bind[1]);
  g_byte_array_append(out, hdr, sizeof hdr);
  g_byte_array_set_size(out, ARCHIVE_LAST_HEADER_SIZE + nb * BLOCK_ENTRY_SIZE);
  for (guint32 j = 0; j < nb; j++) {
    const guint8 *raw = pages + (gsize)j * ppb * ps;
    gsize raw_len = (gsize)MIN(ppb, s->n_pages - j * ppb) * ps;
    size_t z = ZSTD_compressCCtx(cctx, zbuf, zcap, raw, raw_len, ZSTD_LEVEL);
    const guint8 *stored = raw;
    gsize stored_len = raw_len;
    guint8 *entry;
    if (!ZSTD_isError(z) && z < raw_len) {
      stored = zbuf;
      stored_len = z;
    }
    entry = out->data + ARCHIVE_LAST_HEADER_SIZE + (gsize)j * BLOCK_ENTRY_SIZE;
    put32(entry, (guint32)stored_len);
    put32(entry + 4, crc(0, stored, stored_len));
    g_byte_array_append(out, stored, (guint)stored_len);
  }
  put32(out->data + 92, head_crc(out->data, ARCHIVE_LAST_HEADER_SIZE + nb * BLOCK_ENTRY_SIZE));
  return out;
}

GByteArray *
archive_last_build(const char *dir, guint64 number, const guint8 *sum, gsize sum_len,
                   GError **error)
{
  g_autofree guint8 *pages = NULL;
  ArchiveSummary s;
  guint32 ps, bind[2];

  if (!archive_last_images(dir, number, sum, sum_len, &s, &pages, &ps, bind, error))
    return NULL;
  return archive_last_encode(&s, bind, pages, ps);
}

void
archive_last_write(const char *dir, guint64 number, const guint8 *sum, gsize sum_len, int mode)
{
  g_autofree char *path = archive_last_path(dir, number);
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) out = archive_last_build(dir, number, sum, sum_len, &error);

  if (out != NULL && sqlenvfs_write_file_atomic(path, out->data, out->len, mode, &error))
    return;
  if (g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED))
    g_debug("archive %s: %s", dir, error->message); /* too large: none, as planned */
  else
    g_warning("archive %s: no file of last versions for segment %" G_GUINT64_FORMAT
              " (readers use its records instead): %s", dir, number, error->message);
}

/* ------------------------------------------------------------------ */
/* Reading                                                              */

struct _ArchiveLastReader {
  char *path;
  int fd;
  ArchiveLastHeader h;
  guint8 *table;       /* the block table                               */
  guint64 *block_off;  /* per block: where it starts in the file        */
  guint serial;        /* names it in a thread's scratch                 */
};

/* What decoding a block needs, one per thread and shared by every reader
 * it reads (a restore crosses hundreds of segments: their readers keep
 * only their tables): the zstd context, the stored bytes, and the block
 * decoded last (its reader's serial and number). */
typedef struct {
  ZSTD_DCtx *dctx;
  guint8 raw[BLOCK_BYTES], zbuf[BLOCK_BYTES];
  guint serial;
  guint32 block;
} LastScratch;

static void
last_scratch_free(gpointer p)
{
  LastScratch *sc = p;
  ZSTD_freeDCtx(sc->dctx);
  g_free(sc);
}

static GPrivate last_scratch = G_PRIVATE_INIT(last_scratch_free);

static LastScratch *
scratch(void)
{
  LastScratch *sc = g_private_get(&last_scratch);
  if (sc == NULL) {
    sc = g_new0(LastScratch, 1);
    sc->dctx = ZSTD_createDCtx();
    g_private_set(&last_scratch, sc);
  }
  return sc;
}

void
archive_last_reader_free(ArchiveLastReader *r)
{
  if (r == NULL)
    return;
  if (r->fd >= 0)
    close(r->fd);
  g_free(r->path);
  g_free(r->table);
  g_free(r->block_off);
  g_free(r);
}

ArchiveLastReader *
archive_last_reader_open(const char *path, const ArchiveLastHeader *want, const char **why,
                         GError **error)
{
  static gint serials;
  g_autoptr(ArchiveLastReader) r = g_new0(ArchiveLastReader, 1);
  guint8 fixed[ARCHIVE_LAST_HEADER_SIZE];
  g_autofree guint8 *head = NULL;
  struct stat st;
  gsize got;
  guint64 pos;

  r->path = g_strdup(path);
  r->fd = open(path, O_RDONLY | O_CLOEXEC);
  r->serial = (guint)g_atomic_int_add(&serials, 1) + 1;
  if (r->fd < 0 || fstat(r->fd, &st) != 0) {
    sqlenvfs_error_errno(error, errno, "open the last versions", path);
    return NULL;
  }
  if (!archive_pread_full(r->fd, fixed, sizeof fixed, 0, &got, path, error))
    return NULL;
  if (!archive_last_parse_fixed(fixed, got, &r->h, why))
    return NULL;
  if (r->h.number != want->number || r->h.seg_size != want->seg_size ||
      r->h.seal_crc != want->seal_crc || r->h.page_size != want->page_size ||
      r->h.n_pages != want->n_pages || r->h.pages_crc != want->pages_crc ||
      r->h.last_crc != want->last_crc || r->h.last_seq != want->last_seq ||
      r->h.seg_head_crc != want->seg_head_crc || r->h.seal_head_crc != want->seal_head_crc) {
    *why = "does not match its segment and summary";
    return NULL;
  }
  head = g_malloc(ARCHIVE_LAST_HEADER_SIZE + r->h.table_len);
  if (!archive_pread_full(r->fd, head, ARCHIVE_LAST_HEADER_SIZE + r->h.table_len, 0, &got, path,
                          error))
    return NULL;
  if (got < ARCHIVE_LAST_HEADER_SIZE + r->h.table_len) {
    *why = "is cut short (in its block table)";
    return NULL;
  }
  if (!archive_last_parse_table(head, (guint64)st.st_size, &r->h, why))
    return NULL;
  r->table = g_memdup2(head + ARCHIVE_LAST_HEADER_SIZE, r->h.table_len);
  r->block_off = g_new(guint64, r->h.n_blocks);
  pos = ARCHIVE_LAST_HEADER_SIZE + r->h.table_len;
  for (guint32 j = 0; j < r->h.n_blocks; j++) {
    r->block_off[j] = pos;
    pos += get32(r->table + (gsize)j * BLOCK_ENTRY_SIZE);
  }
  return g_steal_pointer(&r);
}

const guint8 *
archive_last_reader_page(ArchiveLastReader *r, guint32 slot, const char **why, GError **error)
{
  guint32 ppb = archive_pages_per_block(r->h.page_size), j = slot / ppb;
  LastScratch *sc = scratch();
  gsize stored, got;

  g_return_val_if_fail(slot < r->h.n_pages, NULL);
  if (sc->serial != r->serial || sc->block != j) {
    stored = get32(r->table + (gsize)j * BLOCK_ENTRY_SIZE);
    sc->serial = 0;
    if (!archive_pread_full(r->fd, sc->zbuf, stored, r->block_off[j], &got, r->path, error))
      return NULL;
    if (got < stored) {
      *why = "is cut short";
      return NULL;
    }
    *why = decode_block(&r->h, r->table, j, sc->zbuf, sc->raw, sc->dctx);
    if (*why != NULL)
      return NULL;
    sc->serial = r->serial;
    sc->block = j;
  }
  return sc->raw + (gsize)(slot % ppb) * r->h.page_size;
}
