/* Unit tests for walfile: read WAL files written by SQLite itself. */
#include "testutil.h"

#include <string.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/image.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/walfile.h"

static char *tmp;
static char *dbpath;
static sqlite3 *writer; /* kept open so the WAL is not checkpointed away */

#define N_INSERTS 20

static void
setup(void)
{
  GError *error = NULL;
  tmp = testutil_tmpdir();
  dbpath = g_build_filename(tmp, "w.db", NULL);
  writer = sqlenvfs_db_open(dbpath, SQLENVFS_OPEN_CREATE, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_exec(writer,
                             "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                             "CREATE TABLE t(n INTEGER PRIMARY KEY, v BLOB);",
                             dbpath, &error));
  for (int i = 1; i <= N_INSERTS; i++) {
    g_autofree char *sql =
        g_strdup_printf("INSERT INTO t VALUES(%d, randomblob(%d))", i, i == 7 ? 9000 : 100);
    ck_assert(sqlenvfs_db_exec(writer, sql, dbpath, &error));
  }
}

static void
teardown(void)
{
  sqlite3_close_v2(writer);
  g_free(dbpath);
  testutil_tmpdir_cleanup(tmp);
}

typedef struct {
  guint n_commits;
  SqlenvfsWalCommit last;
} ScanResult;

static void
scan(const char *walpath, guint32 max_frame, ScanResult *r)
{
  GError *error = NULL;
  SqlenvfsFileSource *src = sqlenvfs_file_source_open(walpath, &error);
  SqlenvfsWalHeader hdr;
  SqlenvfsWalCursor cur;
  SqlenvfsWalCommit c = { 0 };

  ck_assert_no_error(error);
  memset(r, 0, sizeof *r);
  ck_assert(sqlenvfs_wal_read_header(sqlenvfs_file_source_read, src, &hdr, &error));
  ck_assert_uint_eq(hdr.page_size, 4096);
  sqlenvfs_wal_cursor_init(&cur, &hdr);
  while (sqlenvfs_wal_next_commit(sqlenvfs_file_source_read, src, &cur, max_frame, &c, &error)) {
    ck_assert_uint_eq(c.first_frame, r->n_commits ? r->last.commit_frame + 1 : 1);
    ck_assert_uint_eq(c.pgnos->len, c.commit_frame - c.first_frame + 1);
    r->n_commits++;
    sqlenvfs_wal_commit_clear(&r->last);
    r->last = c;
    memset(&c, 0, sizeof c);
  }
  ck_assert_no_error(error);
  ck_assert_uint_eq(cur.next_frame, r->n_commits ? r->last.commit_frame + 1 : 1);
  sqlenvfs_file_source_close(src);
}

START_TEST(test_scan_matches_sqlite)
{
  g_autofree char *wal = g_strconcat(dbpath, "-wal", NULL);
  gint64 pages = 0;
  ScanResult r;

  scan(wal, 0, &r);
  ck_assert_uint_eq(r.n_commits, N_INSERTS + 1);
  ck_assert(sqlenvfs_db_query_int(writer, "PRAGMA page_count", &pages, dbpath, NULL));
  ck_assert_uint_eq(r.last.db_pages, (guint32)pages);
  sqlenvfs_wal_commit_clear(&r.last);
}
END_TEST

START_TEST(test_max_frame_and_resume)
{
  g_autofree char *wal = g_strconcat(dbpath, "-wal", NULL);
  ScanResult all, part;
  scan(wal, 0, &all);
  /* A limit inside a transaction stops before that transaction. */
  scan(wal, all.last.commit_frame - 1, &part);
  ck_assert_uint_eq(part.n_commits, all.n_commits - 1);
  ck_assert_uint_lt(part.last.commit_frame, all.last.commit_frame);
  sqlenvfs_wal_commit_clear(&all.last);
  sqlenvfs_wal_commit_clear(&part.last);
}
END_TEST

/* Flip one byte in the page of frame @frame of a copy of the WAL. */
static char *
corrupt_copy(guint32 frame, goffset at)
{
  g_autofree char *wal = g_strconcat(dbpath, "-wal", NULL);
  char *bad = g_build_filename(tmp, "bad-wal", NULL);
  g_autofree char *data = NULL;
  gsize len;
  ck_assert(g_file_get_contents(wal, &data, &len, NULL));
  data[sqlenvfs_wal_page_offset(4096, frame) + at] ^= 0x40;
  ck_assert(g_file_set_contents(bad, data, (gssize)len, NULL));
  return bad;
}

START_TEST(test_corrupt_frame_stops_chain)
{
  g_autofree char *wal = g_strconcat(dbpath, "-wal", NULL);
  ScanResult all, r;
  g_autofree char *bad = NULL;

  scan(wal, 0, &all);
  /* Corrupt a frame in the 5th commit: commits 1..4 survive, nothing after. */
  {
    GError *error = NULL;
    SqlenvfsFileSource *src = sqlenvfs_file_source_open(wal, &error);
    SqlenvfsWalHeader hdr;
    SqlenvfsWalCursor cur;
    SqlenvfsWalCommit c = { 0 };
    guint32 frame5 = 0;
    ck_assert(sqlenvfs_wal_read_header(sqlenvfs_file_source_read, src, &hdr, NULL));
    sqlenvfs_wal_cursor_init(&cur, &hdr);
    for (int i = 0; i < 5; i++) {
      ck_assert(sqlenvfs_wal_next_commit(sqlenvfs_file_source_read, src, &cur, 0, &c, NULL));
      frame5 = c.commit_frame;
      sqlenvfs_wal_commit_clear(&c);
    }
    sqlenvfs_file_source_close(src);
    bad = corrupt_copy(frame5, 1234);
  }
  scan(bad, 0, &r);
  ck_assert_uint_eq(r.n_commits, 4);
  sqlenvfs_wal_commit_clear(&all.last);
  sqlenvfs_wal_commit_clear(&r.last);
}
END_TEST

START_TEST(test_bad_headers)
{
  g_autofree char *wal = g_strconcat(dbpath, "-wal", NULL);
  g_autofree char *bad = g_build_filename(tmp, "hdr", NULL);
  g_autofree char *data = NULL;
  gsize len;
  SqlenvfsWalHeader hdr;
  GError *error = NULL;
  SqlenvfsFileSource *src;

  ck_assert(g_file_get_contents(wal, &data, &len, NULL));
  /* Truncated header, flipped salt (header checksum fails), empty file. */
  for (int k = 0; k < 3; k++) {
    if (k == 0)
      ck_assert(g_file_set_contents(bad, data, 20, NULL));
    if (k == 1) {
      data[17] ^= 1;
      ck_assert(g_file_set_contents(bad, data, (gssize)len, NULL));
      data[17] ^= 1;
    }
    if (k == 2)
      ck_assert(g_file_set_contents(bad, "", 0, NULL));
    src = sqlenvfs_file_source_open(bad, &error);
    ck_assert(!sqlenvfs_wal_read_header(sqlenvfs_file_source_read, src, &hdr, &error));
    ck_assert_no_error(error);
    sqlenvfs_file_source_close(src);
  }
}
END_TEST

START_TEST(test_checksum_vector)
{
  /* Two 8-byte blocks, little-endian words: s1 += x0 + s2; s2 += x1 + s1. */
  const guint8 d[16] = { 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0 };
  guint32 s1 = 0, s2 = 0;
  sqlenvfs_wal_checksum(FALSE, d, 16, &s1, &s2);
  /* block 1: s1 = 1, s2 = 2 + 1 = 3; block 2: s1 = 1 + 3 + 3 = 7, s2 = 3 + 4 + 7 = 14 */
  ck_assert_uint_eq(s1, 7);
  ck_assert_uint_eq(s2, 14);
  s1 = s2 = 0;
  sqlenvfs_wal_checksum(TRUE, d, 8, &s1, &s2);
  ck_assert_uint_eq(s1, 0x01000000u);
  ck_assert_uint_eq(s2, 0x02000000u + 0x01000000u);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("walfile");
  TCase *tc = tcase_create("walfile");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_scan_matches_sqlite);
  tcase_add_test(tc, test_max_frame_and_resume);
  tcase_add_test(tc, test_corrupt_frame_stops_chain);
  tcase_add_test(tc, test_bad_headers);
  tcase_add_test(tc, test_checksum_vector);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
