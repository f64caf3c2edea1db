/*
 * fuzz_blocks.c — the block checksum list parser of mount --remote
 * (sqlenvfs_blocks_parse, src/core/remote.c) on arbitrary bytes.
 *
 * Random bytes almost never carry a valid trailing crc32, nor combine to
 * the MANIFEST's crc32, so each input is read three times: as it is
 * (against a file size and crc32 taken from its first bytes), then sealed
 * (its trailing crc32 recomputed) against the size and combined crc32 it
 * declares, so that mutations reach the checks behind the seal and the
 * accepting path.
 *
 * Checks the contract of remote.h: a list is accepted only when its block
 * count covers exactly the file size it was checked against, its crcs
 * combined give the crc32 it was checked against, and the encoder gives
 * back the same bytes; otherwise it fails with INTEGRITY.
 */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/remote.h"
#include "sqlenvfs/util.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  fuzz_init_logging();
  return 0;
}

static void
fail(const char *what)
{
  fprintf(stderr, "fuzz_blocks: %s\n", what);
  abort();
}

static guint32
le32(const uint8_t *p)
{
  return (guint32)p[0] | (guint32)p[1] << 8 | (guint32)p[2] << 16 | (guint32)p[3] << 24;
}

static void
check(const uint8_t *data, size_t size, guint64 want_size, guint32 want_crc)
{
  g_autoptr(GError) error = NULL;
  g_autofree guint32 *crcs = NULL;
  guint32 bs = 0, n = 0, whole = 0;

  if (!sqlenvfs_blocks_parse(data, size, "fuzz.blocks", want_size, want_crc, &bs, &crcs, &n,
                             &error)) {
    if (error == NULL || error->domain != SQLENVFS_ERROR ||
        error->code != SQLENVFS_ERROR_INTEGRITY || strstr(error->message, "fuzz.blocks") == NULL)
      fail("a refused list without an INTEGRITY error naming it");
    return;
  }
  if (bs == 0 || (guint64)n != (want_size + bs - 1) / bs)
    fail("accepted a list whose blocks do not cover the file size");
  for (guint32 i = 0; i < n; i++)
    whole = i == 0 ? crcs[0]
                   : (guint32)crc32_combine(whole, crcs[i],
                                            (z_off_t)MIN((guint64)bs, want_size - (guint64)i * bs));
  if (whole != want_crc)
    fail("accepted a list whose crcs do not combine to the file's crc32");
  {
    g_autoptr(GBytes) again = sqlenvfs_blocks_encode(bs, want_size, crcs, n);
    if (g_bytes_get_size(again) != size || memcmp(g_bytes_get_data(again, NULL), data, size) != 0)
      fail("an accepted list does not encode back to its bytes");
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autofree uint8_t *sealed = NULL;
  guint64 fsize;
  guint32 bs, count, whole = 0;

  check(data, size, size >= 32 ? (guint64)le32(data + 24) | (guint64)le32(data + 28) << 32 : 0,
        size >= 4 ? le32(data) : 0);
  if (size < 40 || size > (1u << 20))
    return 0;
  /* Sealed, against what it declares. */
  sealed = g_memdup2(data, size);
  sealed[size - 4] = sealed[size - 3] = sealed[size - 2] = sealed[size - 1] = 0;
  {
    guint32 c = sqlenvfs_crc32(0, sealed, size - 4);
    for (int i = 0; i < 4; i++)
      sealed[size - 4 + i] = (uint8_t)(c >> (8 * i));
  }
  bs = le32(sealed + 20);
  fsize = (guint64)le32(sealed + 24) | (guint64)le32(sealed + 28) << 32;
  count = le32(sealed + 32);
  for (guint32 i = 0; bs > 0 && i < count && 36 + (gsize)i * 4 + 4 <= size - 4; i++) {
    guint64 off = (guint64)i * bs;
    guint64 blen = off < fsize ? MIN((guint64)bs, fsize - off) : 0;
    guint32 c = le32(sealed + 36 + (gsize)i * 4);
    whole = i == 0 ? c : (guint32)crc32_combine(whole, c, (z_off_t)blen);
  }
  check(sealed, size, fsize, whole);
  check(sealed, size, fsize, whole ^ 1);
  return 0;
}
