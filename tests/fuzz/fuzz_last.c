/*
 * fuzz_last.c — the reader of a segment's last versions (<number>.last,
 * src/core/archive_last.c) on arbitrary bytes: the whole-file check
 * verify makes (archive_last_check_bytes) and the page reader composing
 * uses (archive_last_reader_open, _page), on the same bytes written to a
 * file.
 *
 * Random bytes almost never carry valid crc32s, so each input is read
 * twice: as it is, and sealed (the header checksum and each block's
 * checksum recomputed from the table the input declares), so that
 * mutations reach the block table, the zstd frames and the accepting path.
 *
 * Checks the contract of archive_int.h: the file is accepted whole only
 * when its table covers it exactly and every block decompresses to exactly
 * its pages; the reader, opened with the header the file declares, gives
 * every page exactly when the whole-file check accepts it, and the same
 * bytes; opened with any other segment or summary, it refuses the file.
 */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/core/archive_int.h"

static char *path;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  fuzz_init_logging();
  path = g_build_filename(fuzz_tmpdir(), "0000000000000001.last", NULL);
  return 0;
}

static void
fail(const char *what)
{
  fprintf(stderr, "fuzz_last: %s\n", what);
  abort();
}

static void
check(const uint8_t *data, size_t size)
{
  ArchiveLastHeader h, want;
  const char *why = NULL, *rwhy = NULL;
  g_autofree guint8 *pages = NULL;
  g_autoptr(ArchiveLastReader) r = NULL;
  g_autoptr(GError) error = NULL;
  gboolean all = TRUE;

  if (!archive_last_parse_fixed(data, size, &h, &why))
    return;
  pages = g_malloc((gsize)h.n_pages * h.page_size);
  /* verify's check without decompressing (frame headers): any answer,
   * but within the file's bytes (the sanitizers watch). */
  (void)archive_last_check_bytes(data, size, &h, FALSE, NULL);
  why = archive_last_check_bytes(data, size, &h, TRUE, pages);
  if (why == NULL && h.file_len != size)
    fail("accepted a file its table does not cover exactly");
  fuzz_write_file(path, data, size);
  want = h;
  r = archive_last_reader_open(path, &want, &rwhy, &error);
  if (r == NULL && why == NULL)
    fail("the reader refused a file the whole-file check accepts");
  for (guint32 i = 0; r != NULL && i < h.n_pages; i++) {
    const char *pwhy = NULL;
    const guint8 *p = archive_last_reader_page(r, i, &pwhy, &error);
    if (p == NULL) {
      if (pwhy == NULL && error == NULL)
        fail("a page refused without a reason");
      g_clear_error(&error);
      all = FALSE;
      continue;
    }
    if (why == NULL && memcmp(p, pages + (gsize)i * h.page_size, h.page_size) != 0)
      fail("the reader gave a page other than the whole-file check's");
  }
  if (r != NULL && all && why != NULL)
    fail("the reader gave every page of a file the whole-file check refuses");
  if (r != NULL) {
    g_clear_pointer(&r, archive_last_reader_free);
    want.seal_crc ^= 1;
    r = archive_last_reader_open(path, &want, &rwhy, &error);
    if (r != NULL)
      fail("the reader took a file made for another segment");
  }
}

static void
put32le(uint8_t *p, guint32 v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static guint32
get32le(const uint8_t *p)
{
  return (guint32)p[0] | (guint32)p[1] << 8 | (guint32)p[2] << 16 | (guint32)p[3] << 24;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  ArchiveLastHeader h;
  const char *why = NULL;
  g_autofree uint8_t *sealed = NULL;
  guint64 pos;

  check(data, size);
  if (!archive_last_parse_fixed(data, size, &h, &why) ||
      size < ARCHIVE_LAST_HEADER_SIZE + h.table_len)
    return 0;
  sealed = g_memdup2(data, size);
  pos = ARCHIVE_LAST_HEADER_SIZE + h.table_len;
  for (guint32 j = 0; j < h.n_blocks; j++) {
    uint8_t *e = sealed + ARCHIVE_LAST_HEADER_SIZE + (gsize)j * BLOCK_ENTRY_SIZE;
    guint64 stored = get32le(e);
    if (pos + stored > size)
      break;
    put32le(e + 4, crc(0, sealed + pos, (gsize)stored));
    pos += stored;
  }
  {
    guint32 c = crc(0, sealed, 92);
    c = crc(c, sealed + ARCHIVE_LAST_HEADER_SIZE, h.table_len);
    put32le(sealed + 92, c);
  }
  check(sealed, size);
  return 0;
}
