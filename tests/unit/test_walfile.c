/* Unit tests for walfile: read WAL files written by SQLite itself. */
#include "testutil.h"

#include <string.h>
#include <sys/stat.h>

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


/* The first SQLENVFS_WAL_INDEX_HEADER_SIZE bytes of the writer's wal-index,
 * through SQLite's mapping (a descriptor of our own would drop the
 * writer's locks when closed). */
static void
copy_wal_index(guint8 *b)
{
  sqlite3_file *f = NULL;
  void volatile *p = NULL;
  ck_assert_int_eq(sqlite3_file_control(writer, "main", SQLITE_FCNTL_FILE_POINTER, &f),
                   SQLITE_OK);
  ck_assert_int_eq(f->pMethods->xShmMap(f, 0, 32 * 1024, 0, &p), SQLITE_OK);
  memcpy(b, (const void *)p, SQLENVFS_WAL_INDEX_HEADER_SIZE);
}

/* Recompute the wal-index header's checksum (native words, bytes 0..39)
 * and copy the first copy over the second, as SQLite writes it. */
static void
seal_wal_index(guint8 *b)
{
  guint32 s1 = 0, s2 = 0;
  sqlenvfs_wal_checksum(G_BYTE_ORDER == G_BIG_ENDIAN, b, 40, &s1, &s2);
  memcpy(b + 40, &s1, 4);
  memcpy(b + 44, &s2, 4);
  memcpy(b + 48, b, 48);
}

START_TEST(test_wal_index_matches_sqlite)
{
  g_autofree char *wal = g_strconcat(dbpath, "-wal", NULL);
  GError *error = NULL;
  SqlenvfsFileSource *src = sqlenvfs_file_source_open(wal, &error);
  SqlenvfsWalHeader hdr;
  SqlenvfsWalIndexHeader wi, parsed;
  guint8 b[SQLENVFS_WAL_INDEX_HEADER_SIZE], bad[SQLENVFS_WAL_INDEX_HEADER_SIZE];
  gint64 pages = 0;
  guint32 mx;
  ScanResult r;

  ck_assert_no_error(error);
  ck_assert(sqlenvfs_wal_read_header(sqlenvfs_file_source_read, src, &hdr, &error));
  sqlenvfs_file_source_close(src);
  scan(wal, 0, &r);
  ck_assert(sqlenvfs_db_query_int(writer, "PRAGMA page_count", &pages, dbpath, NULL));

  /* Through the mapping, as the archiver reads it. */
  ck_assert(sqlenvfs_wal_index_read(writer, &wi));
  ck_assert_uint_eq(wi.mx_frame, r.last.commit_frame);
  ck_assert_uint_eq(wi.n_pages, (guint32)pages);
  ck_assert_uint_eq(wi.salt1, hdr.salt1);
  ck_assert_uint_eq(wi.salt2, hdr.salt2);
  ck_assert_uint_eq(wi.n_backfill, 0); /* wal_autocheckpoint=0 */

  /* The same bytes parsed; then each way a header can be unusable. */
  copy_wal_index(b);
  ck_assert(sqlenvfs_wal_index_parse(b, &parsed));
  ck_assert_mem_eq(&parsed, &wi, sizeof wi);

  memcpy(bad, b, sizeof bad); /* the second copy differs: being written */
  bad[48 + 16] ^= 1;
  ck_assert(!sqlenvfs_wal_index_parse(bad, &parsed));
  memcpy(bad, b, sizeof bad); /* both copies changed, checksum not: torn */
  bad[16] ^= 1;
  bad[48 + 16] ^= 1;
  ck_assert(!sqlenvfs_wal_index_parse(bad, &parsed));
  memcpy(bad, b, sizeof bad); /* not built yet */
  bad[12] = 0;
  seal_wal_index(bad);
  ck_assert(!sqlenvfs_wal_index_parse(bad, &parsed));
  memcpy(bad, b, sizeof bad); /* another version */
  bad[0] ^= 1;
  seal_wal_index(bad);
  ck_assert(!sqlenvfs_wal_index_parse(bad, &parsed));
  memcpy(bad, b, sizeof bad); /* a consistent header with another mxFrame and nBackfill */
  mx = wi.mx_frame - 3;
  memcpy(bad + 16, &mx, 4);
  memcpy(bad + 96, &mx, 4);
  seal_wal_index(bad);
  ck_assert(sqlenvfs_wal_index_parse(bad, &parsed));
  ck_assert_uint_eq(parsed.mx_frame, mx);
  ck_assert_uint_eq(parsed.n_backfill, mx);
  ck_assert_uint_eq(parsed.salt1, hdr.salt1);
  sqlenvfs_wal_commit_clear(&r.last);
}
END_TEST

/* Scanning commit by commit with sqlenvfs_wal_find_commit_frame() as the
 * limit finds exactly the commits of a plain scan, and stops at a frame of
 * another generation. */
START_TEST(test_find_commit_frame)
{
  g_autofree char *wal = g_strconcat(dbpath, "-wal", NULL);
  g_autofree char *other = g_build_filename(tmp, "other-wal", NULL);
  g_autofree char *data = NULL;
  GError *error = NULL;
  SqlenvfsFileSource *src;
  SqlenvfsWalHeader hdr;
  SqlenvfsWalCursor cur;
  SqlenvfsWalCommit c = { 0 };
  SqlenvfsWalFrameHeader fh;
  guint32 f, n = 0, frame5 = 0;
  gsize len;
  ScanResult all;

  scan(wal, 0, &all);
  src = sqlenvfs_file_source_open(wal, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_wal_read_header(sqlenvfs_file_source_read, src, &hdr, NULL));
  sqlenvfs_wal_cursor_init(&cur, &hdr);
  while ((f = sqlenvfs_wal_find_commit_frame(sqlenvfs_file_source_read, src, &cur, 0)) != 0) {
    ck_assert(sqlenvfs_wal_frame_header_read(sqlenvfs_file_source_read, src, hdr.page_size, f,
                                             &fh, &error));
    ck_assert_uint_ne(fh.db_pages, 0);
    ck_assert_uint_eq(fh.salt1, hdr.salt1);
    ck_assert(sqlenvfs_wal_next_commit(sqlenvfs_file_source_read, src, &cur, f, &c, &error));
    ck_assert_uint_eq(c.commit_frame, f);
    ck_assert_uint_eq(fh.cksum1, c.cksum1);
    ck_assert_uint_eq(fh.cksum2, c.cksum2);
    if (++n == 5)
      frame5 = f;
    sqlenvfs_wal_commit_clear(&c);
  }
  ck_assert_no_error(error);
  ck_assert_uint_eq(n, all.n_commits);
  ck_assert_uint_eq(cur.next_frame, all.last.commit_frame + 1);
  /* A limit before the next commit frame: none. Past the end: no header. */
  sqlenvfs_wal_cursor_init(&cur, &hdr);
  ck_assert_uint_eq(sqlenvfs_wal_find_commit_frame(sqlenvfs_file_source_read, src, &cur, 1), 0);
  ck_assert(!sqlenvfs_wal_frame_header_read(sqlenvfs_file_source_read, src, hdr.page_size,
                                            all.last.commit_frame + 1, &fh, &error));
  ck_assert_no_error(error);
  sqlenvfs_file_source_close(src);

  /* The frame after the 4th commit carries another salt-2 (an old
   * generation's frame): the search stops there, finding nothing. */
  ck_assert(g_file_get_contents(wal, &data, &len, NULL));
  {
    ScanResult four;
    scan(wal, frame5 - 1, &four);
    ck_assert_uint_eq(four.n_commits, 4);
    data[sqlenvfs_wal_page_offset(hdr.page_size, four.last.commit_frame + 1) -
         SQLENVFS_WAL_FRAME_HEADER_SIZE + 12] ^= 0x10;
    cur.hdr = hdr;
    cur.next_frame = four.last.commit_frame + 1;
    sqlenvfs_wal_commit_clear(&four.last);
  }
  ck_assert(g_file_set_contents(other, data, (gssize)len, NULL));
  src = sqlenvfs_file_source_open(other, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(sqlenvfs_wal_find_commit_frame(sqlenvfs_file_source_read, src, &cur, 0), 0);
  sqlenvfs_file_source_close(src);
  sqlenvfs_wal_commit_clear(&all.last);
}
END_TEST

/* SqlenvfsWalFile returns the file's bytes for every read, whether served
 * from its read-ahead, refilled, read directly, or past its limit. */
START_TEST(test_wal_file_reads)
{
  g_autofree char *wal = g_strconcat(dbpath, "-wal", NULL);
  g_autofree char *absent = g_build_filename(tmp, "absent-wal", NULL);
  g_autofree char *data = NULL;
  g_autofree guint8 *buf = g_malloc(3 * 4096);
  g_autofree guint8 *out = g_malloc(64 * 1024);
  GError *error = NULL;
  SqlenvfsWalFile *wf;
  SqlenvfsWalFrameHeader a, b;
  gsize len;
  GRand *rnd = g_rand_new_with_seed(7);
  struct stat st;

  ck_assert(g_file_get_contents(wal, &data, &len, NULL));
  wf = sqlenvfs_wal_file_open(wal, buf, 3 * 4096, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(sqlenvfs_wal_file_path(wf), wal);
  ck_assert_int_eq(stat(wal, &st), 0);
  ck_assert_uint_eq(sqlenvfs_wal_file_ino(wf), (guint64)st.st_ino);
  for (int i = 0; i < 2000; i++) {
    gsize n = (gsize)g_rand_int_range(rnd, 1, i % 10 == 0 ? 8 * 4096 : 5000);
    goffset off = g_rand_int_range(rnd, 0, (gint32)len);
    gssize got;
    if (i % 100 == 0)
      sqlenvfs_wal_file_invalidate(wf);
    if (i % 100 == 50)
      sqlenvfs_wal_file_set_limit(wf, 4096, (guint32)g_rand_int_range(rnd, 1, 30));
    got = sqlenvfs_wal_file_read(wf, out, n, off, &error);
    ck_assert_no_error(error);
    ck_assert_int_eq(got, (gssize)MIN(n, len - (gsize)off));
    ck_assert_mem_eq(out, data + off, (gsize)got);
  }
  /* Reads that end just past what the read-ahead holds: a full buffer,
   * then one that stopped at the limit (frame 2's end, byte 8272). */
  {
    const struct { guint32 limit_frame; goffset fill, at; } cases[] = {
      { 1000, 100, 100 + 3 * 4096 - 4 }, { 1000, 100, 100 + 3 * 4096 - 8 },
      { 2, 8000, 8270 }, { 2, 8000, 8264 }, { 2, 8272, 8273 },
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
      sqlenvfs_wal_file_invalidate(wf);
      sqlenvfs_wal_file_set_limit(wf, 4096, cases[i].limit_frame);
      ck_assert_int_eq(sqlenvfs_wal_file_read(wf, out, 10, cases[i].fill, &error), 10);
      ck_assert_mem_eq(out, data + cases[i].fill, 10);
      ck_assert_int_eq(sqlenvfs_wal_file_read(wf, out, 8, cases[i].at, &error), 8);
      ck_assert_mem_eq(out, data + cases[i].at, 8);
    }
  }
  /* Views: the same bytes without a copy, in the buffer or read into it;
   * none past the end of the file. */
  for (int i = 0; i < 500; i++) {
    gsize n = (gsize)g_rand_int_range(rnd, 1, 3 * 4096 / 2 + 1);
    goffset off = g_rand_int_range(rnd, 0, (gint32)(len - n));
    const guint8 *v;
    if (i % 50 == 0)
      sqlenvfs_wal_file_set_limit(wf, 4096, (guint32)g_rand_int_range(rnd, 1, 30));
    v = sqlenvfs_wal_file_view(wf, n, off, &error);
    ck_assert_no_error(error);
    ck_assert(v != NULL);
    ck_assert_mem_eq(v, data + off, n);
  }
  ck_assert(sqlenvfs_wal_file_view(wf, 100, (goffset)len - 50, &error) == NULL);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_wal_file_peek_frame(wf, 4096, 3, &a, &error));
  ck_assert(sqlenvfs_wal_frame_header_read(sqlenvfs_wal_file_read, wf, 4096, 3, &b, &error));
  ck_assert_mem_eq(&a, &b, sizeof a);
  ck_assert_uint_ne(a.pgno, 0);
  ck_assert(!sqlenvfs_wal_file_peek_frame(wf, 4096, 100000, &a, &error));
  ck_assert_no_error(error);
  sqlenvfs_wal_file_free(wf);
  g_rand_free(rnd);

  ck_assert(sqlenvfs_wal_file_open(absent, buf, 4096, &error) == NULL);
  ck_assert(error != NULL && strstr(error->message, "absent-wal") != NULL);
  g_clear_error(&error);
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
  tcase_add_test(tc, test_wal_index_matches_sqlite);
  tcase_add_test(tc, test_find_commit_frame);
  tcase_add_test(tc, test_wal_file_reads);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
