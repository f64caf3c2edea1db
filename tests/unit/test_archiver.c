/* Unit tests for archiver: the embeddable engine run in a thread (sync,
 * checkpoint, status, a stop that archives everything first), the
 * one-archiver-per-root lock, and a
 * transaction that writes the same page twice (the archive keeps the last
 * version). */
#include "testutil.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/archiver.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/image.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/walfile.h"

#define PS 4096

static char *tmp;
static char *db_path;

static void
setup(void)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autofree char *prod = NULL;
  tmp = testutil_tmpdir();
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  db_path = sqlenvfs_root_prod_db(root, "app");
}

static void
teardown(void)
{
  g_free(db_path);
  db_path = NULL;
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

static SqlenvfsRoot *
open_root(void)
{
  GError *error = NULL;
  SqlenvfsRoot *root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  return root;
}

static sqlite3 *
make_wal_db(void)
{
  GError *error = NULL;
  sqlite3 *db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_CREATE, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x)", db_path, &error));
  return db;
}

static gpointer
run_thread(gpointer a)
{
  GError *error = NULL;
  gboolean ok = sqlenvfs_archiver_run(a, &error);
  if (!ok)
    g_printerr("run: %s\n", error->message);
  g_clear_error(&error);
  return GINT_TO_POINTER(ok);
}

static const SqlenvfsArchiverDbStatus *
status_of(GPtrArray *st, const char *db)
{
  for (guint i = 0; i < st->len; i++)
    if (strcmp(((SqlenvfsArchiverDbStatus *)st->pdata[i])->db, db) == 0)
      return st->pdata[i];
  return NULL;
}

/* COMMIT records in the archive at @dir. */
static guint
count_commits(const char *dir)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsArchive) ar = sqlenvfs_archive_open(dir, &error);
  guint n = 0;
  ck_assert_no_error(error);
  for (guint i = 0; i < sqlenvfs_archive_n_entries(ar); i++)
    n += sqlenvfs_archive_entry(ar, i)->type == SQLENVFS_ARCHIVE_COMMIT;
  return n;
}

static gboolean
read_wal_salts(guint32 *s1, guint32 *s2)
{
  g_autofree char *wal = g_strconcat(db_path, "-wal", NULL);
  SqlenvfsFileSource *fs = sqlenvfs_file_source_open(wal, NULL);
  SqlenvfsWalHeader h = { 0 };
  gboolean ok;
  ck_assert(fs != NULL);
  ok = sqlenvfs_wal_read_header(sqlenvfs_file_source_read, fs, &h, NULL);
  sqlenvfs_file_source_close(fs); /* the -wal file carries no POSIX locks */
  *s1 = h.salt1;
  *s2 = h.salt2;
  return ok;
}

START_TEST(test_one_per_root)
{
  g_autoptr(SqlenvfsRoot) root = open_root();
  g_autoptr(SqlenvfsRoot) root2 = open_root();
  g_autoptr(SqlenvfsArchiver) a = NULL;
  GError *error = NULL;

  a = sqlenvfs_archiver_new(root, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_archiver_new(root2, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_BUSY);
  ck_assert(strstr(error->message, "already held by process") != NULL);
  g_clear_error(&error);
  /* Not running: requests are refused at once. */
  ck_assert(!sqlenvfs_archiver_sync(a, NULL, 0, &error));
  ck_assert(strstr(error->message, "not running") != NULL);
  g_clear_error(&error);
}
END_TEST

START_TEST(test_embedded)
{
  g_autoptr(SqlenvfsRoot) root = open_root();
  g_autoptr(sqlite3) db = make_wal_db();
  g_autoptr(SqlenvfsArchiver) a = NULL;
  g_autofree char *dir = g_build_filename(tmp, "backups", "prod", "wal_archives", "app", NULL);
  GError *error = NULL;
  GThread *th;
  guint32 s1, s2, t1, t2;
  guint n_before;
  gint64 t0;

  a = sqlenvfs_archiver_new(root, &error);
  ck_assert_no_error(error);
  th = g_thread_new("archiver", run_thread, a);
  testutil_wait_capturing(a, "app");

  for (int i = 0; i < 25; i++)
    ck_assert(sqlenvfs_db_exec(db, "INSERT INTO t VALUES (randomblob(100))", db_path, &error));
  ck_assert(sqlenvfs_archiver_sync(a, "app", 0, &error));
  ck_assert_no_error(error);
  {
    g_autoptr(GPtrArray) st = sqlenvfs_archiver_status(a);
    const SqlenvfsArchiverDbStatus *s = status_of(st, "app");
    g_autoptr(SqlenvfsArchive) ar = sqlenvfs_archive_open(dir, &error);
    guint n_commits = 0;
    ck_assert(s != NULL);
    ck_assert_int_eq(s->state, SQLENVFS_ARCHIVER_CAPTURING);
    ck_assert_uint_ge(s->commits, 25);
    ck_assert_uint_ge(s->n_latency, 1);
    ck_assert_int_ge(s->capture_p99_us, s->capture_p50_us);
    ck_assert_int_ge(s->durable_p50_us, s->capture_p50_us);
    ck_assert_int_gt(s->alive_us, 0);
    for (guint i = 0; i < sqlenvfs_archive_n_entries(ar); i++)
      n_commits += sqlenvfs_archive_entry(ar, i)->type == SQLENVFS_ARCHIVE_COMMIT;
    ck_assert_uint_ge(n_commits, 26); /* CREATE TABLE and the 25 inserts */
  }
  /* The unknown database, and requests for it. */
  ck_assert(!sqlenvfs_archiver_sync(a, "nosuch", 0, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_NOT_FOUND);
  g_clear_error(&error);

  /* A checkpoint: the next write restarts the WAL (new salts). */
  ck_assert(read_wal_salts(&s1, &s2));
  ck_assert(sqlenvfs_archiver_checkpoint(a, "app", 0, &error));
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_exec(db, "INSERT INTO t VALUES (1)", db_path, &error));
  ck_assert(read_wal_salts(&t1, &t2));
  ck_assert_msg(t1 != s1 || t2 != s2, "the WAL did not restart after the archiver's checkpoint");
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error));

  /* The last application connection closing does not delete the WAL. */
  g_clear_pointer(&db, sqlite3_close_v2);
  {
    g_autofree char *wal = g_strconcat(db_path, "-wal", NULL);
    ck_assert(g_file_test(wal, G_FILE_TEST_EXISTS));
  }

  /* Stop: run() returns once a last capture is archived and durable: a
   * commit made just before (not synced) is in the archive, and the alive
   * time reaches the moment stop was asked for. */
  n_before = count_commits(dir);
  {
    g_autoptr(sqlite3) app = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_MUST_EXIST, &error);
    ck_assert(sqlenvfs_db_exec(app, "INSERT INTO t VALUES (2)", db_path, &error));
  }
  t0 = sqlenvfs_clock_now();
  sqlenvfs_archiver_stop(a);
  ck_assert(GPOINTER_TO_INT(g_thread_join(th)));
  {
    g_autoptr(GPtrArray) st = sqlenvfs_archiver_status(a);
    ck_assert_int_eq(status_of(st, "app")->state, SQLENVFS_ARCHIVER_STOPPED);
    ck_assert_int_ge(status_of(st, "app")->alive_us, t0);
  }
  ck_assert_uint_eq(count_commits(dir), n_before + 1);
  ck_assert(!sqlenvfs_archiver_sync(a, NULL, 0, &error));
  g_clear_error(&error);
}
END_TEST

/* Page @pgno of the rollback-journal database @path. */
static void
read_page(const char *path, guint32 pgno, guint8 *buf)
{
  int fd = open(path, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pread(fd, buf, PS, (off_t)(pgno - 1) * PS), PS);
  close(fd);
}

static void
put_be32(guint8 *p, guint32 v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

START_TEST(test_page_written_twice)
{
  g_autofree char *scratch = g_build_filename(tmp, "scratch.db", NULL);
  g_autofree char *wal = g_strconcat(db_path, "-wal", NULL);
  g_autofree char *dir = g_build_filename(tmp, "backups", "prod", "wal_archives", "app", NULL);
  guint8 p1[PS], c0[PS], c1[PS], c2[PS];
  GError *error = NULL;

  /* Real page images: page 2 (the table) empty, with one row, with two. */
  {
    g_autoptr(sqlite3) s = sqlenvfs_db_open(scratch, SQLENVFS_OPEN_CREATE, &error);
    ck_assert(sqlenvfs_db_exec(s, "PRAGMA page_size=4096; CREATE TABLE t(x)", scratch, &error));
    read_page(scratch, 2, c0);
    ck_assert(sqlenvfs_db_exec(s, "INSERT INTO t VALUES ('one')", scratch, &error));
    read_page(scratch, 2, c1);
    ck_assert(sqlenvfs_db_exec(s, "INSERT INTO t VALUES ('two')", scratch, &error));
    read_page(scratch, 2, c2);
    read_page(scratch, 1, p1);
  }
  ck_assert(memcmp(c1, c2, PS) != 0);
  p1[18] = p1[19] = 2; /* WAL mode */

  /* The database: page 1 and the empty page 2. A WAL holding one
   * transaction that writes page 2 twice, then page 1 (the commit). */
  {
    g_autofree guint8 *file = g_malloc(2 * PS);
    guint8 hdr[32] = { 0 }, fh[24];
    guint32 s1 = 0, s2 = 0;
    const guint8 *pages[3] = { c1, c2, p1 };
    const guint32 pgnos[3] = { 2, 2, 1 };
    int fd;
    memcpy(file, p1, PS);
    memcpy(file + PS, c0, PS);
    ck_assert(g_file_set_contents(db_path, (const char *)file, 2 * PS, NULL));
    put_be32(hdr, 0x377f0682);
    put_be32(hdr + 4, 3007000);
    put_be32(hdr + 8, PS);
    put_be32(hdr + 16, 0x11223344);
    put_be32(hdr + 20, 0x55667788);
    sqlenvfs_wal_checksum(FALSE, hdr, 24, &s1, &s2);
    put_be32(hdr + 24, s1);
    put_be32(hdr + 28, s2);
    fd = open(wal, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_eq(write(fd, hdr, 32), 32);
    for (int i = 0; i < 3; i++) {
      memset(fh, 0, sizeof fh);
      put_be32(fh, pgnos[i]);
      put_be32(fh + 4, i == 2 ? 2 : 0);
      memcpy(fh + 8, hdr + 16, 8);
      sqlenvfs_wal_checksum(FALSE, fh, 8, &s1, &s2);
      sqlenvfs_wal_checksum(FALSE, pages[i], PS, &s1, &s2);
      put_be32(fh + 16, s1);
      put_be32(fh + 20, s2);
      ck_assert_int_eq(write(fd, fh, 24), 24);
      ck_assert_int_eq(write(fd, pages[i], PS), PS);
    }
    close(fd);
  }

  {
    g_autoptr(SqlenvfsRoot) root = open_root();
    g_autoptr(SqlenvfsArchiver) a = sqlenvfs_archiver_new(root, &error);
    GThread *th = g_thread_new("archiver", run_thread, a);
    testutil_wait_capturing(a, "app");
    sqlenvfs_archiver_stop(a);
    ck_assert(GPOINTER_TO_INT(g_thread_join(th)));
  }
  {
    g_autoptr(SqlenvfsArchive) ar = sqlenvfs_archive_open(dir, &error);
    const SqlenvfsArchiveEntry *e = NULL;
    g_autofree guint32 *pgnos = NULL;
    g_autofree guint8 *pages = NULL;
    for (guint i = 0; i < sqlenvfs_archive_n_entries(ar); i++)
      if (sqlenvfs_archive_entry(ar, i)->type == SQLENVFS_ARCHIVE_COMMIT)
        e = sqlenvfs_archive_entry(ar, i);
    ck_assert(e != NULL);
    ck_assert_uint_eq(e->first_frame, 1);
    ck_assert_uint_eq(e->commit_frame, 3);
    ck_assert_uint_eq(e->n_pages, 2); /* each page once */
    pgnos = sqlenvfs_archive_read_commit_pages(ar, e, &pages, &error);
    ck_assert_no_error(error);
    for (guint32 i = 0; i < e->n_pages; i++) {
      const guint8 *got = pages + (gsize)i * PS;
      if (pgnos[i] == 2)
        ck_assert_msg(memcmp(got, c2, PS) == 0, "page 2 is not its last version");
      else
        ck_assert(memcmp(got, p1, PS) == 0);
    }
  }
}
END_TEST

/* Write the archive's alive file at @dir as a power cut can leave it:
 * @time, with the next sequence number @next_seq (ARCHIVE.md, `alive`). */
static void
write_alive(const char *dir, gint64 time, guint64 next_seq)
{
  g_autofree char *path = g_build_filename(dir, "alive", NULL);
  guint8 buf[32] = { 0 };
  guint32 c;
  memcpy(buf, "SQEFSALV", 8);
  for (int i = 0; i < 8; i++) {
    buf[8 + i] = (guint8)((guint64)time >> (8 * i));
    buf[16 + i] = (guint8)(next_seq >> (8 * i));
  }
  c = (guint32)crc32(0, buf, 28);
  for (int i = 0; i < 4; i++)
    buf[28 + i] = (guint8)(c >> (8 * i));
  ck_assert(g_file_set_contents(path, (const char *)buf, sizeof buf, NULL));
}

/* The newest state of the archive at @dir can be restored: the newest
 * window reaches the last record. */
static gboolean
latest_restorable(SqlenvfsRoot *root, const char *dir)
{
  GError *error = NULL;
  g_autoptr(GPtrArray) wins = sqlenvfs_restore_windows(root, "app", &error);
  g_autoptr(SqlenvfsArchive) ar = sqlenvfs_archive_open(dir, &error);
  const SqlenvfsArchiveEntry *last;
  ck_assert_no_error(error);
  last = sqlenvfs_archive_entry(ar, sqlenvfs_archive_n_entries(ar) - 1);
  return wins->len > 0 &&
         ((SqlenvfsRestoreWindow *)wins->pdata[wins->len - 1])->to_us >= last->time;
}

/* Run an archiver until it captures "app" with its chain's snapshot
 * taken and has archived everything, then stop it. */
static void
run_archiver_once(SqlenvfsRoot *root)
{
  testutil_archive_while(root, NULL, NULL);
}

static guint
count_entries(const char *dir)
{
  GError *error = NULL;
  g_autoptr(GDir) gd = g_dir_open(dir, 0, &error);
  guint n = 0;
  ck_assert_no_error(error);
  while (g_dir_read_name(gd))
    n++;
  return n;
}

/* Archive, then, while the archiver is down: commits, a full checkpoint,
 * and a transaction that writes the restarted WAL's header and frames and
 * rolls back; then archive again. That start finds a new generation that
 * holds no commit: a gap whose chain's snapshot is pinned by time, the
 * archive's last record (returned). */
static SqlenvfsArchiveEntry
gap_into_empty_generation(SqlenvfsRoot *root, sqlite3 *db, const char *dir)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsArchive) ar = NULL;
  SqlenvfsArchiveEntry last;
  run_archiver_once(root);
  ck_assert(sqlenvfs_db_exec(db, "INSERT INTO t VALUES (1); PRAGMA wal_checkpoint(RESTART)",
                             db_path, &error));
  ck_assert(sqlenvfs_db_exec(db, "PRAGMA cache_size=2; BEGIN; "
                             "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
                             "WHERE i < 50) INSERT INTO t SELECT randomblob(3000) FROM c",
                             db_path, &error));
  ck_assert(sqlenvfs_db_exec(db, "ROLLBACK", db_path, &error));
  run_archiver_once(root);
  ar = sqlenvfs_archive_open(dir, &error);
  ck_assert_no_error(error);
  last = *sqlenvfs_archive_entry(ar, sqlenvfs_archive_n_entries(ar) - 1);
  ck_assert_int_eq(last.type, SQLENVFS_ARCHIVE_GAP);
  ck_assert_uint_eq(last.commit_frame, 0);
  return last;
}

/* A chain's snapshot pinned while the WAL held no commit is placed by its
 * pin time, valid only where capture was known complete then. A power cut
 * that leaves the alive file before that time makes the next start record
 * an outage over it: the chain then has no usable base, and the archiver
 * takes a new one. */
START_TEST(test_chain_without_base_gets_one)
{
  g_autoptr(SqlenvfsRoot) root = open_root();
  g_autoptr(sqlite3) db = make_wal_db();
  g_autofree char *dir = g_build_filename(tmp, "backups", "prod", "wal_archives", "app", NULL);
  g_autofree char *snaps = g_build_filename(tmp, "backups", "prod", "snapshots", NULL);
  GError *error = NULL;
  SqlenvfsArchiveEntry gap;
  guint n_snaps;

  gap = gap_into_empty_generation(root, db, dir);
  n_snaps = count_entries(snaps);
  /* The cut: the alive file is back at the chain's start, before the
   * snapshot was pinned; commits are made while the archiver is down. */
  write_alive(dir, gap.time, gap.seq + 1);
  for (int i = 0; i < 3; i++)
    ck_assert(sqlenvfs_db_exec(db, "INSERT INTO t VALUES (2)", db_path, &error));
  run_archiver_once(root);
  {
    /* The outage comes before the commits archived late (all three), which
     * carry its time and, as their aux time, its start: no reader takes
     * capture for complete past the outage while they are written. */
    g_autoptr(SqlenvfsArchive) ar = sqlenvfs_archive_open(dir, &error);
    const SqlenvfsArchiveEntry *outage;
    guint n;
    ck_assert_no_error(error);
    n = sqlenvfs_archive_n_entries(ar);
    ck_assert_uint_ge(n, 4);
    outage = sqlenvfs_archive_entry(ar, n - 4);
    ck_assert_int_eq(outage->type, SQLENVFS_ARCHIVE_OUTAGE);
    for (guint i = n - 3; i < n; i++) {
      const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(ar, i);
      ck_assert_int_eq(e->type, SQLENVFS_ARCHIVE_COMMIT);
      ck_assert_int_eq(e->time, outage->time);
      ck_assert_int_eq(e->aux_time, outage->aux_time);
    }
  }
  ck_assert_uint_eq(count_entries(snaps), n_snaps + 1);
  ck_assert_msg(latest_restorable(root, dir),
                "the chain resumed after an outage over its base has no recoverable window");
}
END_TEST

/* Rows in production and in a restore of the newest state of "app". */
static void
latest_rows(SqlenvfsRoot *root, sqlite3 *db, gint64 *in_prod, gint64 *restored)
{
  GError *error = NULL;
  SqlenvfsTime t = { .is_latest = TRUE };
  g_autofree char *out = g_build_filename(tmp, "latest.db", NULL);
  g_autoptr(SqlenvfsRestorePlan) plan = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_query_int(db, "SELECT count(*) FROM t", in_prod, db_path, &error));
  unlink(out);
  ck_assert(sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error));
  ck_assert_no_error(error);
  {
    g_autoptr(sqlite3) r = sqlenvfs_db_open(out, SQLENVFS_OPEN_READONLY, &error);
    ck_assert_no_error(error);
    ck_assert(sqlenvfs_db_query_int(r, "SELECT count(*) FROM t", restored, out, &error));
  }
}

/* A snapshot pinned while its chain's WAL generation held no commit holds
 * none of that generation's commits: each was made after it. The WAL goes
 * on in that generation (the next commit is its frame 1), so the snapshot
 * is placed at the chain's start, not at the generation's last commit:
 * placed there, it would stand for commits it does not hold (a restore
 * would then fall back to an older window, or with a base whose pages
 * were not checked, return the snapshot's rows as the newest state). */
START_TEST(test_base_before_generation_commits)
{
  g_autoptr(SqlenvfsRoot) root = open_root();
  g_autoptr(sqlite3) db = make_wal_db();
  g_autofree char *dir = g_build_filename(tmp, "backups", "prod", "wal_archives", "app", NULL);
  GError *error = NULL;
  gint64 in_prod = -1, restored = -1;

  gap_into_empty_generation(root, db, dir);
  latest_rows(root, db, &in_prod, &restored);
  ck_assert_int_eq(restored, in_prod);
  /* Commits in that generation, small enough that the database keeps its
   * size (so that the size check cannot tell the states apart), archived
   * by the next start. */
  for (int i = 0; i < 3; i++)
    ck_assert(sqlenvfs_db_exec(db, "INSERT INTO t VALUES (2)", db_path, &error));
  run_archiver_once(root);
  ck_assert_msg(latest_restorable(root, dir),
                "the commits made in the generation the snapshot was pinned in have no window");
  latest_rows(root, db, &in_prod, &restored);
  ck_assert_int_eq(restored, in_prod);
}
END_TEST

static Suite *
archiver_suite(void)
{
  Suite *s = suite_create("archiver");
  TCase *tc = tcase_create("engine");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_one_per_root);
  tcase_add_test(tc, test_embedded);
  tcase_add_test(tc, test_page_written_twice);
  tcase_add_test(tc, test_chain_without_base_gets_one);
  tcase_add_test(tc, test_base_before_generation_commits);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(archiver_suite());
}
