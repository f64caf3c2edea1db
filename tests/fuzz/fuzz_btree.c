/*
 * fuzz_btree.c — the b-tree page parser (src/core/btree.c) on arbitrary
 * bytes: a page header, every cell of it, the local part of each payload
 * and the record of a key, as the diff reads pages of a database state.
 *
 * An input is one page; its length picks the page size (the smallest of
 * 512, 1024, 4096 and 65536 that holds it; the rest is zero), and it is
 * copied into a buffer of exactly that size so that any read past the page
 * is caught. It is parsed as page 2 (header at 0) and as page 1 (header at
 * 100), with no reserved bytes and with 32.
 *
 * Checks the contracts of btree.h: a parsed page has a b-tree type and a
 * cell pointer array inside the usable size; every cell returned lies
 * inside the usable size, with its local size as btree_local_size says; an
 * interior cell has a child >= 1, a payload with less local than its size
 * an overflow page >= 1; a refusal is an INTEGRITY error.
 */
#include "fuzzutil.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "sqlenvfs/btree.h"
#include "sqlenvfs/error.h"

static sqlite3 *mem;
static sqlite3_stmt *st;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void) argc, (void) argv;
  fuzz_init_logging();
  if (sqlite3_open(":memory:", &mem) != SQLITE_OK ||
      sqlite3_prepare_v2(mem, "SELECT ?1, ?2, ?3, ?4", -1, &st, NULL) != SQLITE_OK)
    abort();
  return 0;
}

static void
refused(GError *error)
{
  if (!g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY))
    abort();
  g_error_free(error);
}

static void
parse(const guint8 *page, guint32 ps, guint32 usable, guint32 pgno)
{
  SqlenvfsBtreePage p;
  GError *error = NULL;

  if (!sqlenvfs_btree_page_parse(page, ps, usable, pgno, &p, &error)) {
    refused(error);
    return;
  }
  if (p.type != SQLENVFS_BTREE_INDEX_INTERIOR && p.type != SQLENVFS_BTREE_TABLE_INTERIOR &&
      p.type != SQLENVFS_BTREE_INDEX_LEAF && p.type != SQLENVFS_BTREE_TABLE_LEAF)
    abort();
  for (guint i = 0; i < p.n_cells; i++) {
    SqlenvfsBtreeCell c;
    gboolean interior = p.type == SQLENVFS_BTREE_INDEX_INTERIOR ||
                        p.type == SQLENVFS_BTREE_TABLE_INTERIOR;
    if (!sqlenvfs_btree_cell(&p, i, &c, &error)) {
      refused(error);
      error = NULL;
      continue;
    }
    if (interior && c.child == 0)
      abort();
    if (p.type == SQLENVFS_BTREE_TABLE_INTERIOR)
      continue;
    if (c.local < page || c.local + c.n_local > page + usable)
      abort();
    if (c.n_local != sqlenvfs_btree_local_size(p.type, usable, c.payload_size))
      abort();
    if (c.n_local < c.payload_size && c.overflow == 0)
      abort();
    for (guint n = 1; n <= 4; n++) {
      if (!sqlenvfs_btree_record_bind(c.local, c.n_local, n, st, 1, "fuzz", &error)) {
        refused(error);
        error = NULL;
      }
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
    }
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  guint32 ps = size <= 512 ? 512 : size <= 1024 ? 1024 : size <= 4096 ? 4096 : 65536;
  guint8 *page = g_malloc0(ps);

  memcpy(page, data, MIN(size, ps));
  parse(page, ps, ps, 2);
  parse(page, ps, ps, 1);
  parse(page, ps, ps - 32, 2);
  g_free(page);
  return 0;
}
