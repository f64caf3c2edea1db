/* Unit tests for btree: varints, page headers, cells (local payload and
 * overflow), records, and damaged pages refused. Pages come from real
 * databases written by SQLite. */
#include "testutil.h"

#include <string.h>

#include "sqlenvfs/btree.h"
#include "sqlenvfs/error.h"

static char *tmp;

static void setup(void) { tmp = testutil_tmpdir(); }
static void teardown(void) { testutil_tmpdir_cleanup(tmp); tmp = NULL; }

START_TEST(test_varint)
{
  static const struct {
    guint8 bytes[9];
    guint len;
    guint64 value;
  } cases[] = {
    { { 0x00 }, 1, 0 },
    { { 0x7f }, 1, 127 },
    { { 0x81, 0x00 }, 2, 128 },
    { { 0x82, 0x2c }, 2, 300 },
    { { 0xff, 0x7f }, 2, 16383 },
    { { 0x81, 0x80, 0x00 }, 3, 16384 },
    { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 9, G_MAXUINT64 },
    { { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 }, 9, 1 },
  };
  guint64 v;

  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    v = 12345;
    ck_assert_uint_eq(sqlenvfs_btree_varint(cases[i].bytes, 9, &v), cases[i].len);
    ck_assert_msg(v == cases[i].value, "case %u: %" G_GUINT64_FORMAT, i, v);
    /* cut one byte short: not a varint */
    ck_assert_uint_eq(sqlenvfs_btree_varint(cases[i].bytes, cases[i].len - 1, &v), 0);
  }
}
END_TEST

/* A database of 4096-byte pages with table t(id INTEGER PRIMARY KEY, v)
 * and kv(k, j, v, PRIMARY KEY(k, j)) WITHOUT ROWID, each small enough to be
 * one leaf page; returns the file's bytes and the root pages. */
static guint8 *
make_db(gsize *len, guint32 *t_root, guint32 *kv_root)
{
  g_autofree char *path = g_build_filename(tmp, "b.db", NULL);
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  guint8 *data = NULL;

  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db,
    "PRAGMA page_size=4096;"
    "CREATE TABLE t(id INTEGER PRIMARY KEY, v);"
    "INSERT INTO t VALUES (1, 'one'), (2, 2.5), (300, NULL), (70000, x'0102'),"
    "  (5, zeroblob(10000)), (-3, -123456789012);"
    "CREATE TABLE kv(k TEXT, j INT, v, PRIMARY KEY(k, j)) WITHOUT ROWID;"
    "INSERT INTO kv VALUES ('a''b', 7, 1), ('x', -2, 'y'), ('z', 1099511627776, 0.5);",
    NULL, NULL, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT rootpage FROM sqlite_schema WHERE name=?",
                                      -1, &st, NULL), SQLITE_OK);
  sqlite3_bind_text(st, 1, "t", -1, SQLITE_STATIC);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  *t_root = (guint32) sqlite3_column_int(st, 0);
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, "kv", -1, SQLITE_STATIC);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  *kv_root = (guint32) sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  ck_assert(g_file_get_contents(path, (char **) &data, len, NULL));
  return data;
}

START_TEST(test_table_leaf)
{
  gsize len;
  guint32 t_root, kv_root;
  g_autofree guint8 *db = make_db(&len, &t_root, &kv_root);
  const guint8 *page = db + (gsize) (t_root - 1) * 4096;
  SqlenvfsBtreePage p;
  SqlenvfsBtreeCell c;
  GError *error = NULL;
  static const gint64 rowids[] = { -3, 1, 2, 5, 300, 70000 };

  ck_assert(sqlenvfs_btree_page_parse(page, 4096, 4096, t_root, &p, &error));
  ck_assert_no_error(error);
  ck_assert_int_eq(p.type, SQLENVFS_BTREE_TABLE_LEAF);
  ck_assert_uint_eq(p.n_cells, G_N_ELEMENTS(rowids));
  for (guint i = 0; i < p.n_cells; i++) {
    ck_assert(sqlenvfs_btree_cell(&p, i, &c, &error));
    /* -3 is stored as an unsigned 64-bit varint: it sorts first */
    ck_assert_int_eq(c.rowid, rowids[i]);
    if (c.rowid == 5) {
      /* zeroblob(10000): header + 10000 bytes, most of it on overflow pages */
      ck_assert_uint_gt(c.payload_size, 10000);
      ck_assert_uint_eq(c.n_local,
                        sqlenvfs_btree_local_size(SQLENVFS_BTREE_TABLE_LEAF, 4096, c.payload_size));
      ck_assert_uint_lt(c.n_local, 4096 - 35);
      ck_assert_uint_gt(c.overflow, 1);
      ck_assert_uint_le((gsize) c.overflow * 4096, len);
    } else {
      ck_assert_uint_eq(c.n_local, c.payload_size);
      ck_assert_uint_eq(c.overflow, 0);
    }
  }
  /* the local size rule at its edges (usable 4096: X = 4061, M = 489) */
  ck_assert_uint_eq(sqlenvfs_btree_local_size(SQLENVFS_BTREE_TABLE_LEAF, 4096, 4061), 4061);
  /* K = M + (P - M) % (U - 4) = 4062 > X: M */
  ck_assert_uint_eq(sqlenvfs_btree_local_size(SQLENVFS_BTREE_TABLE_LEAF, 4096, 4062), 489);
  /* K = 489 + 11 = 500 <= X: K */
  ck_assert_uint_eq(sqlenvfs_btree_local_size(SQLENVFS_BTREE_TABLE_LEAF, 4096, 4092 + 500), 500);
  ck_assert_uint_eq(sqlenvfs_btree_local_size(SQLENVFS_BTREE_INDEX_LEAF, 4096, 1002), 1002);
  /* index pages: X = 1002; K = 1003 > X: M */
  ck_assert_uint_eq(sqlenvfs_btree_local_size(SQLENVFS_BTREE_INDEX_LEAF, 4096, 1003), 489);
}
END_TEST

START_TEST(test_record_keys)
{
  gsize len;
  guint32 t_root, kv_root;
  g_autofree guint8 *db = make_db(&len, &t_root, &kv_root);
  const guint8 *page = db + (gsize) (kv_root - 1) * 4096;
  SqlenvfsBtreePage p;
  SqlenvfsBtreeCell c;
  GError *error = NULL;
  sqlite3 *mem = NULL;
  sqlite3_stmt *st = NULL;
  static const char *const want[] = { "a'b|7", "x|-2", "z|1099511627776" };

  ck_assert(sqlenvfs_btree_page_parse(page, 4096, 4096, kv_root, &p, &error));
  ck_assert_int_eq(p.type, SQLENVFS_BTREE_INDEX_LEAF);
  ck_assert_uint_eq(p.n_cells, 3);
  ck_assert_int_eq(sqlite3_open(":memory:", &mem), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(mem, "SELECT ?1 || '|' || ?2, typeof(?2)", -1, &st, NULL),
                   SQLITE_OK);
  for (guint i = 0; i < p.n_cells; i++) {
    ck_assert(sqlenvfs_btree_cell(&p, i, &c, &error));
    ck_assert_uint_eq(c.overflow, 0);
    ck_assert(sqlenvfs_btree_record_bind(c.local, c.n_local, 2, st, 1, "kv", &error));
    ck_assert_no_error(error);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *) sqlite3_column_text(st, 0), want[i]);
    ck_assert_str_eq((const char *) sqlite3_column_text(st, 1), "integer");
    sqlite3_reset(st);
    /* a record cut short, or asked for more fields than it has */
    ck_assert(!sqlenvfs_btree_record_bind(c.local, 3, 2, st, 1, "kv", &error));
    ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY));
    g_clear_error(&error);
    ck_assert(!sqlenvfs_btree_record_bind(c.local, c.n_local, 9, st, 1, "kv", &error));
    g_clear_error(&error);
  }
  sqlite3_finalize(st);
  sqlite3_close(mem);
}
END_TEST

/* Damaged pages are INTEGRITY errors naming the page, never read past. */
START_TEST(test_damaged)
{
  gsize len;
  guint32 t_root, kv_root;
  g_autofree guint8 *db = make_db(&len, &t_root, &kv_root);
  g_autofree guint8 *page = g_memdup2(db + (gsize) (t_root - 1) * 4096, 4096);
  SqlenvfsBtreePage p;
  SqlenvfsBtreeCell c;
  GError *error = NULL;

  page[0] = 0x07; /* no such page type */
  ck_assert(!sqlenvfs_btree_page_parse(page, 4096, 4096, t_root, &p, &error));
  ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY));
  ck_assert_msg(strstr(error->message, "page") != NULL, "%s", error->message);
  g_clear_error(&error);
  page[0] = SQLENVFS_BTREE_TABLE_LEAF;
  page[3] = 0xff, page[4] = 0xff; /* 65535 cells: the pointer array runs past */
  ck_assert(!sqlenvfs_btree_page_parse(page, 4096, 4096, t_root, &p, &error));
  g_clear_error(&error);
  page[3] = 0, page[4] = 1;
  ck_assert(sqlenvfs_btree_page_parse(page, 4096, 4096, t_root, &p, &error));
  page[8] = 0x0f, page[9] = 0xff; /* the cell starts at the last byte */
  ck_assert(!sqlenvfs_btree_cell(&p, 0, &c, &error));
  ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY));
  g_clear_error(&error);
  page[8] = 0x00, page[9] = 0x02; /* inside the header */
  ck_assert(!sqlenvfs_btree_cell(&p, 0, &c, &error));
  g_clear_error(&error);
  ck_assert(!sqlenvfs_btree_page_parse(page, 4096, 100, t_root, &p, &error));
  g_clear_error(&error);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("btree");
  TCase *tc = tcase_create("btree");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_varint);
  tcase_add_test(tc, test_table_leaf);
  tcase_add_test(tc, test_record_keys);
  tcase_add_test(tc, test_damaged);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
