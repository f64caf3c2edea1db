/* Unit tests for restore: windows, the choice of base, images, and
 * retention (the prune keep hook and archive pruning) with a fake clock.
 * A real archiver runs in a thread while the test commits and snapshots. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/archiver.h"
#include "sqlenvfs/drill.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/retention.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/timeline.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/verifymemo.h"

#include "../../src/core/archive_int.h"

static char *tmp;
static SqlenvfsRoot *root;
static char *db_path;
static SqlenvfsStoredCopy *s0, *s1; /* the archiver's first snapshot, one taken later */
static gint64 t_mid;                /* between the two phases of commits */

static gpointer
run_thread(gpointer a)
{
  return GINT_TO_POINTER(sqlenvfs_archiver_run(a, NULL));
}

static void
commit_rows(sqlite3 *db, int from, int to)
{
  GError *error = NULL;
  for (int k = from; k <= to; k++) {
    g_autofree char *sql = g_strdup_printf("INSERT INTO t VALUES (%d, randomblob(40000))", k);
    ck_assert(sqlenvfs_db_exec(db, sql, db_path, &error));
  }
}

typedef struct {
  sqlite3 *db;
  void (*commit)(sqlite3 *, int, int);
  int from, to;
} Commits;

static void
do_commits(gpointer user)
{
  Commits *c = user;
  c->commit(c->db, c->from, c->to);
}

/* @commit(@db, @from, @to) under a running archiver, stopped once all of
 * it is archived. */
static void
archive_commits(sqlite3 *db, void (*commit)(sqlite3 *, int, int), int from, int to)
{
  Commits c = { db, commit, from, to };
  testutil_archive_while(root, do_commits, &c);
}

/* The archiver again (an interruption, then more commits): rows 61..70, a
 * snapshot (returned), rows 71..80, each part archived before the next. */
static SqlenvfsStoredCopy *
archive_around_snapshot(sqlite3 *db)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsArchiver) a = sqlenvfs_archiver_new(root, &error);
  SqlenvfsStoredCopy *snap;
  GThread *th;

  ck_assert_no_error(error);
  th = g_thread_new("archiver", run_thread, a);
  testutil_wait_capturing(a, "app");
  commit_rows(db, 61, 70);
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error));
  snap = sqlenvfs_store_create(root, SQLENVFS_KIND_SNAPSHOT, "app", NULL, NULL, &error);
  ck_assert_no_error(error);
  commit_rows(db, 71, 80);
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error));
  sqlenvfs_archiver_stop(a);
  ck_assert(GPOINTER_TO_INT(g_thread_join(th)));
  return snap;
}

/* A root whose archive holds: the first start (snapshot s0), rows 1..30,
 * snapshot s1, rows 31..60. */
static void
setup(void)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsArchiver) a = NULL;
  g_autoptr(sqlite3) db = NULL;
  g_autoptr(GPtrArray) snaps = NULL;
  GThread *th;

  tmp = testutil_tmpdir();
  {
    g_autofree char *conf = g_build_filename(tmp, "sqlenvfs.conf", NULL);
    ck_assert(g_file_set_contents(conf, "[archive]\nsegment-max-bytes=1048576\n", -1, NULL));
  }
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  db_path = sqlenvfs_root_prod_db(root, "app");
  db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_CREATE, &error);
  ck_assert(sqlenvfs_db_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(k INTEGER PRIMARY KEY, b)",
                             db_path, &error));

  a = sqlenvfs_archiver_new(root, &error);
  ck_assert_no_error(error);
  th = g_thread_new("archiver", run_thread, a);
  testutil_wait_capturing(a, "app");
  commit_rows(db, 1, 30);
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error));
  t_mid = sqlenvfs_clock_now();
  /* s1 is pinned strictly after t_mid. */
  while (sqlenvfs_clock_now() <= t_mid)
    g_thread_yield();
  s1 = sqlenvfs_store_create(root, SQLENVFS_KIND_SNAPSHOT, "app", NULL, NULL, &error);
  ck_assert_no_error(error);
  commit_rows(db, 31, 60);
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error));
  sqlenvfs_archiver_stop(a);
  ck_assert(GPOINTER_TO_INT(g_thread_join(th)));

  snaps = sqlenvfs_store_list(root, SQLENVFS_KIND_SNAPSHOT, &error);
  ck_assert_uint_eq(snaps->len, 2);
  s0 = g_steal_pointer(&snaps->pdata[0]);
  ck_assert_str_ne(s0->name, s1->name);
}

static void
teardown(void)
{
  testutil_clock_reset();
  g_clear_pointer(&s0, sqlenvfs_stored_copy_free);
  g_clear_pointer(&s1, sqlenvfs_stored_copy_free);
  g_clear_pointer(&root, sqlenvfs_root_free);
  g_free(db_path);
  db_path = NULL;
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

/* Rows in the state of @plan, read from its image written to a file. */
static gint64
rows_at(SqlenvfsRestorePlan *plan)
{
  g_autofree char *out = g_build_filename(tmp, "restored.db", NULL);
  GError *error = NULL;
  gint64 n = -1, mx = -1;
  unlink(out);
  ck_assert(sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error));
  ck_assert_no_error(error);
  {
    g_autoptr(sqlite3) db = sqlenvfs_db_open(out, SQLENVFS_OPEN_READONLY, &error);
    ck_assert(sqlenvfs_db_query_int(db, "SELECT count(*) FROM t", &n, out, &error));
    ck_assert(sqlenvfs_db_query_int(db, "SELECT coalesce(max(k), 0) FROM t", &mx, out, &error));
  }
  ck_assert_int_eq(n, mx); /* exactly rows 1..n */
  return n;
}

START_TEST(test_windows_and_plans)
{
  g_autoptr(GPtrArray) wins = NULL;
  g_autoptr(SqlenvfsRestorePlan) latest = NULL, mid = NULL, early = NULL;
  SqlenvfsTime t = { .is_latest = TRUE };
  const SqlenvfsRestoreWindow *w;
  GError *error = NULL;

  wins = sqlenvfs_restore_windows(root, "app", &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(wins->len, 1);
  w = wins->pdata[0];
  ck_assert_int_le(w->from_us, s0->dbs->len ? ((SqlenvfsStoredDb *)s0->dbs->pdata[0])->pos.pinned_at : 0);
  ck_assert_int_gt(w->to_us, t_mid);
  ck_assert_str_eq(w->note, "archiving started");

  latest = sqlenvfs_restore_plan(root, NULL, &t, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(latest->base_name, s1->name); /* the newest base */
  ck_assert_uint_eq(latest->n_commits, 30);
  ck_assert_int_eq(latest->target_us, w->to_us);
  ck_assert_int_eq(rows_at(latest), 60);

  t.is_latest = FALSE;
  t.us = t_mid;
  mid = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  /* s1 was pinned after t_mid, but holds exactly the state at t_mid (rows
   * 1..30, all archived before t_mid): it is the newest base for it. */
  ck_assert_str_eq(mid->base_name, s1->name);
  ck_assert_uint_eq(mid->n_commits, 0);
  ck_assert_int_le(mid->state_us, t_mid);
  ck_assert_int_eq(rows_at(mid), 30);

  /* Just before the last of rows 1..30 was captured: only s0 can serve. */
  t.us = mid->state_us - 1;
  g_clear_pointer(&mid, sqlenvfs_restore_plan_free);
  mid = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(mid->base_name, s0->name);
  ck_assert_int_eq(rows_at(mid), 29);

  t.us = w->from_us;
  early = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(early->n_commits, 0);

  t.us = w->from_us - 1;
  ck_assert(sqlenvfs_restore_plan(root, "app", &t, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_GAP);
  ck_assert(strstr(error->message, "before the earliest recoverable time") != NULL);
  g_clear_error(&error);
  t.us = w->to_us + 1;
  ck_assert(sqlenvfs_restore_plan(root, "app", &t, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_GAP);
  ck_assert(strstr(error->message, "after the latest archived time") != NULL);
  g_clear_error(&error);
  /* Far ahead of the clock: no "retry in a moment", that time is to come. */
  t.us = sqlenvfs_clock_now() + G_GINT64_CONSTANT(86400) * G_USEC_PER_SEC;
  ck_assert(sqlenvfs_restore_plan(root, "app", &t, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_GAP);
  ck_assert_msg(strstr(error->message, "is in the future (it is now ") != NULL &&
                  strstr(error->message, "retry in a moment") == NULL,
                "%s", error->message);
  g_clear_error(&error);
}
END_TEST

static void
flip_byte(const char *path, goffset off)
{
  int fd = open(path, O_RDWR);
  unsigned char c;
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pread(fd, &c, 1, off), 1);
  c ^= 0x10;
  ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
  close(fd);
}

/* Rows of the state of @plan, written to a file, that are byte for byte the
 * rows of production (which holds rows 1..60). */
static gint64
rows_same_as_prod(SqlenvfsRestorePlan *plan)
{
  g_autofree char *out = g_build_filename(tmp, "restored.db", NULL);
  g_autofree char *sql = NULL;
  GError *error = NULL;
  gint64 n = -1;
  unlink(out);
  ck_assert(sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error));
  ck_assert_no_error(error);
  {
    g_autoptr(sqlite3) db = sqlenvfs_db_open(out, 0, &error);
    sql = g_strdup_printf("ATTACH '%s' AS p", db_path);
    ck_assert(sqlenvfs_db_exec(db, sql, out, &error));
    ck_assert(sqlenvfs_db_query_int(db, "SELECT count(*) FROM t JOIN p.t AS q USING (k) "
                                        "WHERE t.b = q.b", &n, out, &error));
    ck_assert_no_error(error);
  }
  return n;
}

/* A base whose bytes changed is never used: the restore falls back to an
 * older good base of the chain (same bytes out), or is refused naming
 * every bad one, leaving no file. */
START_TEST(test_bad_base_falls_back)
{
  const SqlenvfsStoredDb *d0 = s0->dbs->pdata[0], *d1 = s1->dbs->pdata[0];
  g_autoptr(SqlenvfsRestorePlan) plan = NULL, again = NULL;
  g_autofree char *out = g_build_filename(tmp, "refused.db", NULL);
  SqlenvfsTime t = { .is_latest = TRUE };
  GError *error = NULL;

  plan = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(plan->base_name, s1->name);
  ck_assert_uint_eq(plan->n_commits, 30);
  /* A byte in the middle of s1: row data, which no integrity_check sees. */
  flip_byte(d1->path, (goffset)d1->size / 2);
  ck_assert_int_eq(rows_same_as_prod(plan), 60);
  ck_assert_str_eq(plan->base_name, s0->name);
  ck_assert_uint_ge(plan->n_commits, 60);
  ck_assert_str_eq(plan->base_path, d0->path);

  /* Every base bad: refused, naming each, nothing written. */
  flip_byte(d0->path, (goffset)d0->size / 2);
  again = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert(!sqlenvfs_restore_to_file(root, again, out, FALSE, NULL, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert_msg(strstr(error->message, d0->path) != NULL, "%s", error->message);
  ck_assert_msg(strstr(error->message, d1->path) != NULL, "%s", error->message);
  ck_assert(strstr(error->message, ".tmp-") == NULL);
  g_clear_error(&error);
  ck_assert(!g_file_test(out, G_FILE_TEST_EXISTS));

  /* Known bad in this process: no window starts from them any more, and
   * planning says why. */
  {
    g_autoptr(GPtrArray) wins = sqlenvfs_restore_windows(root, "app", &error);
    ck_assert_no_error(error);
    ck_assert_uint_eq(wins->len, 0);
  }
  ck_assert(sqlenvfs_restore_plan(root, "app", &t, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_GAP);
  ck_assert_msg(strstr(error->message, "not usable") != NULL, "%s", error->message);
  ck_assert(strstr(error->message, d0->path) != NULL);
  g_clear_error(&error);
}
END_TEST

/* `latest` is the archive's newest state or an error, never an older one
 * in its place: after a gap whose chain lost its only base, the end of the
 * window before the gap is not the latest state, and a restore to
 * `latest` is refused, naming the base and the newest time that can be
 * restored, which `--time` then restores. */
START_TEST(test_latest_refused_past_last_window)
{
  g_autoptr(sqlite3) db = NULL;
  g_autoptr(GPtrArray) snaps = NULL, wins = NULL;
  g_autoptr(SqlenvfsRestorePlan) plan = NULL, older = NULL;
  g_autofree char *out = g_build_filename(tmp, "refused.db", NULL);
  g_autofree char *newest = NULL, *arg = NULL;
  const SqlenvfsStoredCopy *s2;
  const SqlenvfsStoredDb *d2;
  SqlenvfsTime latest = { .is_latest = TRUE }, at;
  GError *error = NULL;

  /* Rows 61..70 committed and checkpointed away while the archiver is
   * down: its next start records a gap and takes a snapshot (s2). */
  db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_MUST_EXIST, &error);
  ck_assert_no_error(error);
  commit_rows(db, 61, 70);
  ck_assert(sqlenvfs_db_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", db_path, &error));
  archive_commits(db, commit_rows, 71, 80);
  snaps = sqlenvfs_store_list(root, SQLENVFS_KIND_SNAPSHOT, &error);
  ck_assert_uint_eq(snaps->len, 3);
  s2 = snaps->pdata[2];
  d2 = s2->dbs->pdata[0];

  plan = sqlenvfs_restore_plan(root, "app", &latest, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(plan->base_name, s2->name);
  ck_assert_int_eq(rows_at(plan), 80);
  {
    g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(root, "app", &error);
    gint64 from, to;
    char *why = NULL;
    ck_assert_no_error(error);
    ck_assert(!sqlenvfs_timeline_unrecoverable_tail(tl, &from, &to, &why));
  }

  /* s2 damaged: found bad by a restore, which has no other base for it. */
  flip_byte(d2->path, (goffset)d2->size / 2);
  ck_assert(!sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  g_clear_error(&error);
  wins = sqlenvfs_restore_windows(root, "app", &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(wins->len, 1);
  {
    /* What `list` shows: from the gap to the newest record, and why. */
    g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(root, "app", &error);
    g_autofree char *why = NULL;
    gint64 from, to;
    ck_assert_no_error(error);
    ck_assert(sqlenvfs_timeline_unrecoverable_tail(tl, &from, &to, &why));
    ck_assert_int_gt(from, ((SqlenvfsRestoreWindow *)wins->pdata[0])->to_us);
    ck_assert_int_ge(to, plan->state_us);
    ck_assert_msg(strstr(why, "gap: ") == why, "%s", why);
    ck_assert_msg(strstr(why, d2->path) != NULL, "%s", why);
  }

  /* `latest`: refused, not the end of the window before the gap. */
  ck_assert(sqlenvfs_restore_plan(root, "app", &latest, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_GAP);
  newest = sqlenvfs_time_format_iso(((SqlenvfsRestoreWindow *)wins->pdata[0])->to_us);
  arg = g_strdup_printf("`--time %s`", newest);
  ck_assert_msg(strstr(error->message, "latest archived state") != NULL, "%s", error->message);
  ck_assert_msg(strstr(error->message, d2->path) != NULL, "%s", error->message);
  ck_assert_msg(strstr(error->message, arg) != NULL, "%s", error->message);
  g_clear_error(&error);

  /* The time it names: the state before the gap, rows 1..60. */
  ck_assert(sqlenvfs_time_parse(newest, &at, &error));
  older = sqlenvfs_restore_plan(root, "app", &at, &error);
  ck_assert_no_error(error);
  ck_assert_int_eq(rows_at(older), 60);
}
END_TEST

/* Flip a byte in the middle of row @k's blob in the base @path: damage
 * that no integrity_check sees, and that a restore must not turn into a
 * plausible database. */
static void
flip_row_byte(const char *path, int k)
{
  g_autofree char *data = NULL;
  g_autoptr(sqlite3) db = NULL;
  GError *error = NULL;
  const char *at = NULL;
  gsize len;

  db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_READONLY, &error);
  ck_assert(g_file_get_contents(path, &data, &len, NULL));
  /* 16 bytes of the blob that lie on one page of the file. */
  for (int from = 20001; at == NULL && from < 40000; from += 1000) {
    g_autofree char *sql =
      g_strdup_printf("SELECT hex(substr(b, %d, 16)) FROM t WHERE k = %d", from, k);
    g_autofree char *hex = NULL;
    guint8 needle[16];
    ck_assert(sqlenvfs_db_query_text(db, sql, &hex, db_path, &error));
    ck_assert_uint_eq(strlen(hex), 32);
    for (int i = 0; i < 16; i++)
      needle[i] = (guint8)g_ascii_strtoull((char[3]){ hex[2 * i], hex[2 * i + 1], 0 }, NULL, 16);
    at = memmem(data, len, needle, sizeof needle);
    if (at != NULL)
      ck_assert(memmem(at + 1, len - (gsize)(at + 1 - data), needle, sizeof needle) == NULL);
  }
  ck_assert_msg(at != NULL, "row %d's blob is not in %s", k, path);
  flip_byte(path, (goffset)(at - data) + 8);
}

/* The restore reads the base once, computing its crc32 as it writes the
 * output: a base whose row data changed (which integrity_check cannot see)
 * is still found bad before anything is kept, remembered as bad, and the
 * state is built from the next good base. */
START_TEST(test_damaged_base_one_pass)
{
  const SqlenvfsStoredDb *d0 = s0->dbs->pdata[0], *d1 = s1->dbs->pdata[0];
  g_autoptr(SqlenvfsRestorePlan) plan = NULL;
  g_autofree char *dir = g_build_filename(tmp, "out", NULL);
  g_autofree char *out = g_build_filename(dir, "restored.db", NULL);
  SqlenvfsTime t = { .is_latest = TRUE };
  GError *error = NULL;

  plan = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(plan->base_name, s1->name);
  flip_row_byte(d1->path, 5);
  ck_assert(!sqlenvfs_store_base_known_bad(d1, NULL));
  ck_assert_int_eq(mkdir(dir, 0700), 0);
  ck_assert(sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error));
  ck_assert_no_error(error);
  ck_assert_str_eq(plan->base_path, d0->path);
  ck_assert(sqlenvfs_store_base_known_bad(d1, NULL));
  {
    g_autoptr(sqlite3) db = sqlenvfs_db_open(out, 0, &error);
    g_autofree char *sql = g_strdup_printf("ATTACH '%s' AS p", db_path);
    gint64 n = -1;
    ck_assert(sqlenvfs_db_exec(db, sql, out, &error));
    ck_assert(sqlenvfs_db_query_int(db, "SELECT count(*) FROM t JOIN p.t AS q USING (k) "
                                        "WHERE t.b = q.b", &n, out, &error));
    ck_assert_int_eq(n, 60);
  }
  /* Nothing but the output is left in its directory. */
  {
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    while ((name = g_dir_read_name(d)) != NULL)
      ck_assert_str_eq(name, "restored.db");
  }

  /* The only base for an earlier state damaged too (it holds no rows):
   * refused, nothing written. */
  unlink(out);
  flip_byte(d0->path, (goffset)d0->size / 2);
  g_clear_pointer(&plan, sqlenvfs_restore_plan_free);
  t = (SqlenvfsTime){ .us = t_mid - 1 };
  plan = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(plan->base_path, d0->path);
  ck_assert(!sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert_msg(strstr(error->message, "crc32") != NULL, "%s", error->message);
  g_clear_error(&error);
  {
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    ck_assert(g_dir_read_name(d) == NULL);
  }
}
END_TEST

typedef struct {
  guint n_windows;
  gboolean first_unchecked;
  guint64 bytes_read;
} FreshView;

/* The windows of "app" as a fresh process sees them (a fork: nothing this
 * process found is remembered there beyond what the root's memo holds),
 * and the bytes that process read to compute them. */
static FreshView
fresh_windows(void)
{
  FreshView v = { 0 };
  int fds[2];
  pid_t pid;
  int status;

  ck_assert_int_eq(pipe(fds), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    GError *error = NULL;
    guint64 before = testutil_bytes_read();
    GPtrArray *wins = sqlenvfs_restore_windows(root, "app", &error);
    FreshView c = { 0 };
    c.bytes_read = testutil_bytes_read() - before;
    if (wins == NULL)
      _exit(2);
    c.n_windows = wins->len;
    c.first_unchecked =
      wins->len > 0 && ((SqlenvfsRestoreWindow *)wins->pdata[0])->base_unchecked;
    _exit(write(fds[1], &c, sizeof c) == (ssize_t)sizeof c ? 0 : 3);
  }
  close(fds[1]);
  ck_assert_int_eq(read(fds[0], &v, sizeof v), (ssize_t)sizeof v);
  close(fds[0]);
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return v;
}

/* Base verdicts are shared through the root's memo: copies just written
 * count as checked without being read; a changed copy makes its window
 * "not checked" until verify or a restore attempt reads it, after which a
 * fresh process leaves the window out too; a damaged memo is ignored. */
START_TEST(test_base_verdicts_shared)
{
  const SqlenvfsStoredDb *d0 = s0->dbs->pdata[0], *d1 = s1->dbs->pdata[0];
  g_autofree char *memo = sqlenvfs_verify_memo_path(root);
  FreshView v, checked;
  GError *error = NULL;

  (void)fresh_windows(); /* the archive's own check, remembered */
  checked = fresh_windows();
  ck_assert_uint_eq(checked.n_windows, 1);
  ck_assert(!checked.first_unchecked);

  flip_byte(d0->path, (goffset)d0->size / 2);
  flip_byte(d1->path, (goffset)d1->size / 2);
  v = fresh_windows();
  ck_assert_uint_eq(v.n_windows, 1);
  ck_assert(v.first_unchecked);
  /* Checked without reading the copies: no more read than when nothing is
   * known of them (d1 alone is over a megabyte). */
  ck_assert_msg(checked.bytes_read < v.bytes_read + d1->size / 2,
                "read %" G_GUINT64_FORMAT " bytes, %" G_GUINT64_FORMAT " when unchecked",
                checked.bytes_read, v.bytes_read);

  if (_i == 0) {
    g_autoptr(SqlenvfsVerifyReport) report = sqlenvfs_verify_report_new();
    ck_assert(sqlenvfs_verify_memo_run(root, FALSE, report, &error));
    ck_assert_no_error(error);
  } else {
    /* The attempt in a process of its own, so that what it found reaches
     * the next one only through the memo. */
    pid_t pid = fork();
    int status;
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
      SqlenvfsTime t = { .is_latest = TRUE };
      g_autofree char *out = g_build_filename(tmp, "refused.db", NULL);
      SqlenvfsRestorePlan *plan = sqlenvfs_restore_plan(root, "app", &t, &error);
      _exit(plan != NULL && !sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error) &&
            error->code == SQLENVFS_ERROR_INTEGRITY ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  v = fresh_windows();
  ck_assert_uint_eq(v.n_windows, 0);

  /* A damaged memo is not trusted: the window is back, not checked. */
  flip_byte(memo, 30);
  v = fresh_windows();
  ck_assert_uint_eq(v.n_windows, 1);
  ck_assert(v.first_unchecked);
}
END_TEST

/* A MANIFEST whose WAL position places its copy at a later archived state
 * than the one it holds (the same database size, so nothing else tells)
 * would make a restore roll forward from the wrong point and skip the
 * transactions in between. The restore compares the pages of the record
 * the base is placed at with the base, finds the difference, and builds
 * the state from the next good base. */
START_TEST(test_misplaced_base_refused)
{
  g_autoptr(SqlenvfsArchiver) a = NULL;
  g_autoptr(sqlite3) db = NULL;
  g_autoptr(SqlenvfsStoredCopy) sa = NULL, sc = NULL;
  g_autoptr(SqlenvfsRestorePlan) plan = NULL;
  g_autofree char *out = g_build_filename(tmp, "misplaced.db", NULL);
  SqlenvfsTime t = { .is_latest = TRUE };
  GError *error = NULL;
  GThread *th;
  gint64 x = -1;

  a = sqlenvfs_archiver_new(root, &error);
  ck_assert_no_error(error);
  th = g_thread_new("archiver", run_thread, a);
  testutil_wait_capturing(a, "app");
  db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_MUST_EXIST, &error);
  ck_assert(sqlenvfs_db_exec(db, "CREATE TABLE u(x); INSERT INTO u VALUES (0); "
                             "UPDATE u SET x = 1", db_path, &error));
  sa = sqlenvfs_store_create(root, SQLENVFS_KIND_SNAPSHOT, "app", NULL, NULL, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_exec(db, "UPDATE u SET x = 2", db_path, &error));
  ck_assert(sqlenvfs_db_exec(db, "UPDATE u SET x = 3", db_path, &error));
  sc = sqlenvfs_store_create(root, SQLENVFS_KIND_SNAPSHOT, "app", NULL, NULL, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error));
  sqlenvfs_archiver_stop(a);
  ck_assert(GPOINTER_TO_INT(g_thread_join(th)));
  ck_assert_uint_eq(((SqlenvfsStoredDb *)sa->dbs->pdata[0])->pos.n_pages,
                    ((SqlenvfsStoredDb *)sc->dbs->pdata[0])->pos.n_pages);

  /* sa's MANIFEST gets sc's WAL position (format 1: no checksum to
   * betray it); sc goes away. */
  {
    static const char *keys[] = { "wal-salt1", "wal-salt2", "wal-frame", "wal-cksum1",
                                  "wal-cksum2", "wal-ckpt-seq", "pinned-at", "pinned-at-us" };
    g_autofree char *ma = g_build_filename(sa->dir, "MANIFEST", NULL);
    g_autofree char *mc = g_build_filename(sc->dir, "MANIFEST", NULL);
    g_autoptr(GKeyFile) ka = g_key_file_new(), kc = g_key_file_new();
    g_autofree char *text = NULL;
    ck_assert(g_key_file_load_from_file(ka, ma, G_KEY_FILE_KEEP_COMMENTS, NULL));
    ck_assert(g_key_file_load_from_file(kc, mc, G_KEY_FILE_KEEP_COMMENTS, NULL));
    for (guint i = 0; i < G_N_ELEMENTS(keys); i++) {
      g_autofree char *v = g_key_file_get_value(kc, "db app", keys[i], NULL);
      ck_assert_msg(v != NULL, "%s", keys[i]);
      g_key_file_set_value(ka, "db app", keys[i], v);
    }
    g_key_file_set_value(ka, "sqlenvfs-copy", "format", "1");
    g_key_file_remove_key(ka, "sqlenvfs-copy", "checksum", NULL);
    text = g_key_file_to_data(ka, NULL, NULL);
    ck_assert(g_file_set_contents(ma, text, -1, NULL));
    {
      g_autoptr(GDir) gd = g_dir_open(sc->dir, 0, &error);
      const char *name;
      ck_assert_no_error(error);
      while ((name = g_dir_read_name(gd)) != NULL) {
        g_autofree char *f = g_build_filename(sc->dir, name, NULL);
        ck_assert_int_eq(unlink(f), 0);
      }
      ck_assert_int_eq(rmdir(sc->dir), 0);
    }
  }

  plan = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(plan->base_name, sa->name); /* placed at the latest state */
  ck_assert(sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error));
  ck_assert_no_error(error);
  ck_assert_str_ne(plan->base_name, sa->name);
  {
    g_autoptr(sqlite3) rdb = sqlenvfs_db_open(out, SQLENVFS_OPEN_READONLY, &error);
    ck_assert(sqlenvfs_db_query_int(rdb, "SELECT x FROM u", &x, out, &error));
  }
  ck_assert_int_eq(x, 3);
}
END_TEST

/* Empty the WAL (a TRUNCATE checkpoint, once the archiver has let go of
 * it), so that the next commit starts a new WAL generation. */
static void
truncate_wal(sqlite3 *db)
{
  int log = -1, done = -1, rc = SQLITE_BUSY;
  for (int i = 0; i < 1000 && (rc != SQLITE_OK || log != 0); i++) {
    rc = sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
    if (rc != SQLITE_OK || log != 0)
      g_usleep(10000);
  }
  ck_assert_int_eq(rc, SQLITE_OK);
  ck_assert_int_eq(log, 0);
}

/* Under the running archiver @a, in production @db: table v, rows 1 and
 * 2000 on different leaf pages (updating them in place changes neither
 * the size nor page 1); x = 1 at row 1, archived, then a time t (returned),
 * then x = 2 at row 2000 in a new WAL generation, archived, and the WAL
 * left empty. */
static gint64
two_generations(SqlenvfsArchiver *a, sqlite3 *db)
{
  GError *error = NULL;
  gint64 t;

  ck_assert(sqlenvfs_db_exec(db, "CREATE TABLE v(k INTEGER PRIMARY KEY, x INTEGER); "
                             "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n "
                             "WHERE k < 2000) INSERT INTO v SELECT k, 0 FROM n; "
                             "UPDATE v SET x = 1 WHERE k = 1", db_path, &error));
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error));
  t = sqlenvfs_clock_now();
  while (sqlenvfs_clock_now() <= t + 1000)
    g_usleep(200);
  truncate_wal(db);
  ck_assert(sqlenvfs_db_exec(db, "UPDATE v SET x = 2 WHERE k = 2000", db_path, &error));
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error));
  truncate_wal(db);
  return t;
}

/* Restore @plan and read v's x at rows 1 and 2000. */
static void
v_values(SqlenvfsRestorePlan *plan, gint64 *x1, gint64 *x2)
{
  g_autofree char *out = g_build_filename(tmp, "v.db", NULL);
  g_autoptr(sqlite3) rdb = NULL;
  GError *error = NULL;

  unlink(out);
  ck_assert(sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error));
  ck_assert_no_error(error);
  rdb = sqlenvfs_db_open(out, SQLENVFS_OPEN_READONLY, &error);
  ck_assert(sqlenvfs_db_query_int(rdb, "SELECT x FROM v WHERE k = 1", x1, out, &error));
  ck_assert(sqlenvfs_db_query_int(rdb, "SELECT x FROM v WHERE k = 2000", x2, out, &error));
}

/* A copy pinned while the WAL held no frame is placed by the time it was
 * pinned. A clock stepped back between the archiving of its last commits
 * and the pin puts that time before commits it holds: placed there, it
 * would hand a restore to a time in between a database with commits made
 * after it (the pages of the record it is placed at are its own, so
 * nothing else tells). A clock stepped back after the pin gives the
 * commits archived next times at or before it: placed after them, it
 * would stand for commits it lacks. The archive's numbers seen around the
 * pin refuse both; a copy pinned with the clock right is used. */
START_TEST(test_empty_wal_base_clock_stepped_back)
{
  g_autoptr(SqlenvfsArchiver) a = NULL;
  g_autoptr(sqlite3) db = NULL;
  g_autoptr(SqlenvfsStoredCopy) sc = NULL, sd = NULL;
  g_autoptr(SqlenvfsRestorePlan) at_step = NULL, latest = NULL, after = NULL;
  SqlenvfsTime t = { 0 };
  const SqlenvfsStoredDb *c;
  GError *error = NULL;
  GThread *th;
  gint64 t_step, t_late, x1 = -1, x2 = -1;

  a = sqlenvfs_archiver_new(root, &error);
  ck_assert_no_error(error);
  th = g_thread_new("archiver", run_thread, a);
  testutil_wait_capturing(a, "app");
  db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_MUST_EXIST, &error);
  t_step = two_generations(a, db);
  /* The clock steps back to t_step for the pin of sc. */
  testutil_clock_set(t_step);
  sc = sqlenvfs_store_create(root, SQLENVFS_KIND_SNAPSHOT, "app", NULL, NULL, &error);
  ck_assert_no_error(error);
  testutil_clock_reset();
  c = sc->dbs->pdata[0];
  ck_assert_uint_eq(c->pos.frame, 0);
  ck_assert_int_eq(c->pos.pinned_at, t_step);
  ck_assert_uint_gt(c->archive_before, 0);
  ck_assert_uint_ge(c->archive_after, c->archive_before);
  /* With the clock right again, a copy of the same state. */
  sd = sqlenvfs_store_create(root, SQLENVFS_KIND_SNAPSHOT, "app", NULL, NULL, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error)); /* capture known past sd's pin */

  /* At t_step, row 2000 was not updated yet. */
  t.us = t_step;
  at_step = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_str_ne(at_step->base_name, sc->name);
  v_values(at_step, &x1, &x2);
  ck_assert_int_eq(x1, 1);
  ck_assert_int_eq(x2, 0);
  /* The copy pinned with the clock right is a base, at the latest state. */
  t.us = 0;
  t.is_latest = TRUE;
  latest = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(latest->base_name, sd->name);
  ck_assert_uint_eq(latest->n_commits, 0);

  /* Two commits archived after sd's pin, the last writing row 1's page as
   * sd has it; then sd's MANIFEST says it was pinned after their times, as
   * a clock stepped back after the pin makes it (format 1: no checksum to
   * betray the edit). */
  ck_assert(sqlenvfs_db_exec(db, "UPDATE v SET x = 3 WHERE k = 2000", db_path, &error));
  ck_assert(sqlenvfs_db_exec(db, "UPDATE v SET x = 1 WHERE k = 1", db_path, &error));
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error));
  t_late = sqlenvfs_clock_now(); /* capture was complete then */
  sqlenvfs_archiver_stop(a);
  ck_assert(GPOINTER_TO_INT(g_thread_join(th)));
  {
    g_autofree char *m = g_build_filename(sd->dir, "MANIFEST", NULL);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *text = NULL;
    ck_assert(g_key_file_load_from_file(kf, m, G_KEY_FILE_KEEP_COMMENTS, NULL));
    g_key_file_set_int64(kf, "db app", "pinned-at-us", t_late);
    g_key_file_set_value(kf, "sqlenvfs-copy", "format", "1");
    g_key_file_remove_key(kf, "sqlenvfs-copy", "checksum", NULL);
    text = g_key_file_to_data(kf, NULL, NULL);
    ck_assert(g_file_set_contents(m, text, -1, NULL));
  }
  after = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_str_ne(after->base_name, sd->name);
  v_values(after, &x1, &x2);
  ck_assert_int_eq(x1, 1);
  ck_assert_int_eq(x2, 3);
}
END_TEST

/* The drill pins production itself: pinned while the WAL is empty, with
 * the clock stepped back before the last commits' archiving, its time
 * would place production's state before them, and the drill would report
 * a page that differs as damage. It says the clock was stepped instead;
 * with the clock right it passes. */
START_TEST(test_drill_clock_stepped_back)
{
  g_autoptr(SqlenvfsArchiver) a = NULL;
  g_autoptr(sqlite3) db = NULL;
  SqlenvfsDrillResult *r;
  GError *error = NULL;
  GThread *th;
  gint64 t_step;

  a = sqlenvfs_archiver_new(root, &error);
  ck_assert_no_error(error);
  th = g_thread_new("archiver", run_thread, a);
  testutil_wait_capturing(a, "app");
  db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_MUST_EXIST, &error);
  t_step = two_generations(a, db);
  testutil_clock_set(t_step);
  r = sqlenvfs_drill_db(root, "app", a, 10 * G_USEC_PER_SEC);
  testutil_clock_reset();
  ck_assert(!r->ok);
  ck_assert_msg(strstr(r->why, "the system clock was stepped back") != NULL, "%s", r->why);
  ck_assert_msg(strstr(r->why, "nothing was compared") != NULL, "%s", r->why);
  sqlenvfs_drill_result_free(r);
  r = sqlenvfs_drill_db(root, "app", a, 10 * G_USEC_PER_SEC);
  ck_assert_msg(r->ok, "%s", r->why ? r->why : "");
  ck_assert_uint_eq(r->wal_frame, 0);
  sqlenvfs_drill_result_free(r);
  sqlenvfs_archiver_stop(a);
  ck_assert(GPOINTER_TO_INT(g_thread_join(th)));
}
END_TEST

START_TEST(test_retention)
{
  const SqlenvfsStoredDb *d1 = s1->dbs->pdata[0];
  g_autoptr(GPtrArray) removed = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) wins = NULL;
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *dir = g_build_filename(tmp, "backups", "prod", "wal_archives", "app", NULL);
  gint64 week = G_GINT64_CONSTANT(7) * 86400 * G_USEC_PER_SEC;
  char *why = NULL;
  GError *error = NULL;
  guint n_before;

  a = sqlenvfs_archive_open(dir, &error);
  n_before = sqlenvfs_archive_n_segments(a);
  ck_assert_uint_ge(n_before, 3);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* Today: the whole window is retained; its first base is s0. */
  ck_assert(sqlenvfs_retention_keep_base(s0, root, &why));
  ck_assert(strstr(why, "base of the point-in-time window of app") != NULL);
  g_clear_pointer(&why, g_free);
  ck_assert(!sqlenvfs_retention_keep_base(s1, root, &why));
  ck_assert(sqlenvfs_retention_prune_archives(root, FALSE, removed, &error));
  ck_assert_uint_eq(removed->len, 0);

  /* A week after s1: the retained period starts after s1's state, so s1 is
   * the base it needs, s0 is not, and so are the segments before s1. */
  testutil_clock_set(d1->pos.pinned_at + week + 1000);
  ck_assert(!sqlenvfs_retention_keep_base(s0, root, &why));
  ck_assert(sqlenvfs_retention_keep_base(s1, root, &why));
  g_clear_pointer(&why, g_free);
  ck_assert(sqlenvfs_retention_prune_archives(root, TRUE, removed, &error));
  ck_assert_uint_ge(removed->len, 1);
  g_ptr_array_set_size(removed, 0);
  ck_assert(sqlenvfs_retention_prune_archives(root, FALSE, removed, &error));
  ck_assert_no_error(error);
  ck_assert_uint_ge(removed->len, 1);
  a = sqlenvfs_archive_open(dir, &error);
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), n_before - removed->len);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* What remains still restores everything from s1 on, exactly. */
  testutil_clock_reset();
  wins = sqlenvfs_restore_windows(root, "app", &error);
  ck_assert_uint_eq(wins->len, 1);
  ck_assert_str_eq(((SqlenvfsRestoreWindow *)wins->pdata[0])->note,
                   "older archive segments were pruned");
  {
    SqlenvfsTime t = { .is_latest = TRUE };
    g_autoptr(SqlenvfsRestorePlan) p = sqlenvfs_restore_plan(root, "app", &t, &error);
    ck_assert_no_error(error);
    ck_assert_str_eq(p->base_name, s1->name);
    ck_assert_int_eq(rows_at(p), 60);
    /* The window now starts at s1's state: just before it, nothing. */
    ck_assert_int_le(((SqlenvfsRestoreWindow *)wins->pdata[0])->from_us, t_mid);
    t.is_latest = FALSE;
    t.us = ((SqlenvfsRestoreWindow *)wins->pdata[0])->from_us - 1;
    ck_assert(sqlenvfs_restore_plan(root, "app", &t, &error) == NULL);
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_GAP);
    g_clear_error(&error);
  }

  /* Long after everything (the archiver stopped weeks ago): the newest
   * state stays recoverable, from the base it needs, s1. */
  testutil_clock_set(d1->pos.pinned_at + 5 * week);
  ck_assert(sqlenvfs_retention_keep_base(s1, root, &why));
  g_clear_pointer(&why, g_free);
  ck_assert(!sqlenvfs_retention_keep_base(s0, root, &why));
}
END_TEST

/* A copy whose MANIFEST cannot be read is left for inspection, not
 * removed: it may be repaired. The archive it needs is not removed on its
 * word either. Here it is the only copy at or before the retained start
 * (s0 is gone), so without it the retained window would start at a later
 * snapshot; once repaired, a restore to the retained start is exact. */
START_TEST(test_retention_unreadable_manifest)
{
  const SqlenvfsStoredDb *d1 = s1->dbs->pdata[0];
  g_autoptr(GPtrArray) removed = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *aside = g_build_filename(tmp, "s0-aside", NULL);
  g_autofree char *manifest = g_build_filename(s1->dir, "MANIFEST", NULL);
  g_autofree char *good = NULL, *bad = NULL;
  g_autoptr(sqlite3) db = NULL;
  gint64 week = G_GINT64_CONSTANT(7) * 86400 * G_USEC_PER_SEC;
  gint64 since = d1->pos.pinned_at + 1000;
  SqlenvfsTime t = { .us = since };
  GError *error = NULL;

  /* s0 gone (pruned before); a snapshot after s1, with commits around it. */
  ck_assert_int_eq(rename(s0->dir, aside), 0);
  db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_MUST_EXIST, &error);
  ck_assert_no_error(error);
  sqlenvfs_stored_copy_free(archive_around_snapshot(db));

  /* s1's MANIFEST changed by hand: it no longer matches its checksum. */
  ck_assert(g_file_get_contents(manifest, &good, NULL, NULL));
  bad = g_strconcat(good, "# edited\n[note]\nwho=me\n", NULL);
  ck_assert(g_file_set_contents(manifest, bad, -1, NULL));
  {
    g_autoptr(SqlenvfsStoredCopy) c =
      sqlenvfs_store_load(root, SQLENVFS_KIND_SNAPSHOT, s1->name, &error);
    ck_assert(c == NULL);
    g_clear_error(&error);
  }

  /* A week after s1: the retained period starts just after its state. */
  testutil_clock_set(since + week);
  ck_assert(sqlenvfs_retention_prune_archives(root, FALSE, removed, &error));
  ck_assert_no_error(error);

  /* Repaired, s1 is a base again, and the archive after it is all there. */
  ck_assert(g_file_set_contents(manifest, good, -1, NULL));
  testutil_clock_reset();
  {
    g_autoptr(SqlenvfsRestorePlan) p = sqlenvfs_restore_plan(root, "app", &t, &error);
    ck_assert_msg(p != NULL, "restore to the retained start after a prune: %s",
                  error ? error->message : "");
    ck_assert_str_eq(p->base_name, s1->name);
    ck_assert_int_eq(rows_at(p), 30);
  }
}
END_TEST

/* ------------------------------------------------------------------ */
/* A timeline refreshed against one opened afresh                       */

/* @a and @b give the same windows, and the same plan (or the same refusal,
 * word for word) for every time that matters: each window's ends and the
 * times just outside them, midpoints, latest. */
static void
assert_same_timeline(SqlenvfsTimeline *a, SqlenvfsTimeline *b)
{
  g_autoptr(GPtrArray) wa = sqlenvfs_timeline_windows(a);
  g_autoptr(GPtrArray) wb = sqlenvfs_timeline_windows(b);
  g_autoptr(GArray) times = g_array_new(FALSE, FALSE, sizeof(gint64));

  ck_assert_uint_eq(wa->len, wb->len);
  for (guint i = 0; i < wa->len; i++) {
    const SqlenvfsRestoreWindow *x = wa->pdata[i], *y = wb->pdata[i];
    gint64 ts[] = { x->from_us - 1, x->from_us, (x->from_us + x->to_us) / 2, x->to_us,
                    x->to_us + 1 };
    ck_assert_int_eq(x->from_us, y->from_us);
    ck_assert_int_eq(x->to_us, y->to_us);
    ck_assert_str_eq(x->note, y->note);
    ck_assert_int_eq(x->before, y->before);
    ck_assert_int_eq(x->base_unchecked, y->base_unchecked);
    g_array_append_vals(times, ts, G_N_ELEMENTS(ts));
  }
  g_array_append_val(times, t_mid);
  for (guint i = 0; i <= times->len; i++) {
    SqlenvfsTime t = { .is_latest = i == times->len,
                       .us = i < times->len ? g_array_index(times, gint64, i) : 0 };
    GError *ea = NULL, *eb = NULL;
    g_autoptr(SqlenvfsRestorePlan) pa = sqlenvfs_timeline_plan(a, &t, &ea);
    g_autoptr(SqlenvfsRestorePlan) pb = sqlenvfs_timeline_plan(b, &t, &eb);
    ck_assert_int_eq(pa == NULL, pb == NULL);
    if (pa == NULL) {
      ck_assert_int_eq(ea->code, eb->code);
      ck_assert_str_eq(ea->message, eb->message);
      g_clear_error(&ea);
      g_clear_error(&eb);
      continue;
    }
    ck_assert_int_eq(pa->target_us, pb->target_us);
    ck_assert_uint_eq(pa->state_seq, pb->state_seq);
    ck_assert_int_eq(pa->state_us, pb->state_us);
    ck_assert_str_eq(pa->base_name, pb->base_name);
    ck_assert_uint_eq(pa->base_seq, pb->base_seq);
    ck_assert_uint_eq(pa->n_commits, pb->n_commits);
    ck_assert_uint_eq(pa->archive_bytes, pb->archive_bytes);
    ck_assert_uint_eq(pa->n_pages, pb->n_pages);
  }
}

START_TEST(test_timeline_refresh)
{
  g_autoptr(SqlenvfsTimeline) tl = NULL, fresh = NULL;
  g_autoptr(sqlite3) db = NULL;
  g_autoptr(SqlenvfsStoredCopy) s2 = NULL;
  g_autoptr(SqlenvfsRestorePlan) before = NULL, after = NULL;
  SqlenvfsTime latest = { .is_latest = TRUE };
  GError *error = NULL;

  tl = sqlenvfs_timeline_open(root, "app", &error);
  ck_assert_no_error(error);
  ck_assert(!sqlenvfs_timeline_is_stale(tl));
  before = sqlenvfs_timeline_plan(tl, &latest, &error);
  ck_assert_no_error(error);

  /* Append: the archiver again (an interruption, then more commits), and a
   * new snapshot. */
  db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_MUST_EXIST, &error);
  ck_assert_no_error(error);
  s2 = archive_around_snapshot(db);

  /* Not refreshed: the old answers. */
  ck_assert(sqlenvfs_timeline_is_stale(tl));
  {
    g_autoptr(SqlenvfsRestorePlan) p = sqlenvfs_timeline_plan(tl, &latest, &error);
    ck_assert_no_error(error);
    ck_assert_uint_eq(p->state_seq, before->state_seq);
  }
  ck_assert(sqlenvfs_timeline_refresh(tl, &error));
  ck_assert_no_error(error);
  ck_assert(!sqlenvfs_timeline_is_stale(tl));
  fresh = sqlenvfs_timeline_open(root, "app", &error);
  ck_assert_no_error(error);
  assert_same_timeline(tl, fresh);

  /* And those answers are the new history: latest is row 80, from s2. */
  after = sqlenvfs_timeline_plan(tl, &latest, &error);
  ck_assert_no_error(error);
  ck_assert_uint_gt(after->state_seq, before->state_seq);
  ck_assert_str_eq(after->base_name, s2->name);
  ck_assert_int_eq(rows_at(after), 80);

  /* A refresh with nothing new changes nothing. */
  ck_assert(sqlenvfs_timeline_refresh(tl, &error));
  assert_same_timeline(tl, fresh);
}
END_TEST

/* A refresh that cannot read the archive again (its first segment gone,
 * as a prune's first step, and its newest one not a file, so that reading
 * it anew stops after the segments between) leaves the timeline holding
 * part of the records: it then makes no plan, even once the archive can be
 * read (a plan made of part of the records would be an older state), until
 * a refresh reads it whole. */
START_TEST(test_timeline_refresh_unreadable)
{
  g_autoptr(SqlenvfsTimeline) tl = NULL, fresh = NULL;
  g_autoptr(SqlenvfsRestorePlan) p = NULL, want = NULL;
  SqlenvfsTime latest = { .is_latest = TRUE };
  GError *error = NULL;
  guint n;
  g_autofree char *first = NULL, *first_aside = NULL, *last = NULL, *last_aside = NULL;

  tl = sqlenvfs_timeline_open(root, "app", &error);
  ck_assert_no_error(error);
  n = sqlenvfs_archive_n_segments(sqlenvfs_timeline_archive(tl));
  ck_assert_uint_ge(n, 3);
  first = g_strdup(sqlenvfs_archive_segment(sqlenvfs_timeline_archive(tl), 0)->path);
  last = g_strdup(sqlenvfs_archive_segment(sqlenvfs_timeline_archive(tl), n - 1)->path);
  first_aside = g_strconcat(first, ".aside", NULL);
  last_aside = g_strconcat(last, ".aside", NULL);
  ck_assert_int_eq(rename(first, first_aside), 0);
  ck_assert_int_eq(rename(last, last_aside), 0);
  ck_assert_int_eq(mkdir(last, 0700), 0);
  ck_assert(sqlenvfs_timeline_is_stale(tl));
  ck_assert(!sqlenvfs_timeline_refresh(tl, &error));
  ck_assert_ptr_nonnull(error);
  g_clear_error(&error);

  /* Readable again, not refreshed: no plan. */
  ck_assert_int_eq(rmdir(last), 0);
  ck_assert_int_eq(rename(last_aside, last), 0);
  ck_assert_int_eq(rename(first_aside, first), 0);
  p = sqlenvfs_timeline_plan(tl, &latest, &error);
  ck_assert_ptr_null(p);
  ck_assert_ptr_nonnull(error);
  ck_assert_msg(strstr(error->message, "could not be read again") != NULL, "%s", error->message);
  g_clear_error(&error);

  /* Refreshed: the answers of a timeline opened now. */
  ck_assert(sqlenvfs_timeline_refresh(tl, &error));
  ck_assert_no_error(error);
  fresh = sqlenvfs_timeline_open(root, "app", &error);
  ck_assert_no_error(error);
  assert_same_timeline(tl, fresh);
  p = sqlenvfs_timeline_plan(tl, &latest, &error);
  want = sqlenvfs_timeline_plan(fresh, &latest, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(p->state_seq, want->state_seq);
  ck_assert_int_eq(rows_at(p), 60);
  g_clear_pointer(&p, sqlenvfs_restore_plan_free);

  /* The same when the copies cannot be listed again (the snapshots'
   * directory is a file for a moment): the bases may differ from the
   * windows built before. */
  {
    const char *snaps = sqlenvfs_store_dir(root, SQLENVFS_KIND_SNAPSHOT);
    g_autofree char *aside = g_strconcat(snaps, ".aside", NULL);
    ck_assert_int_eq(rename(snaps, aside), 0);
    ck_assert(g_file_set_contents(snaps, "", 0, NULL));
    ck_assert(!sqlenvfs_timeline_refresh(tl, &error));
    g_clear_error(&error);
    ck_assert_int_eq(unlink(snaps), 0);
    ck_assert_int_eq(rename(aside, snaps), 0);
    p = sqlenvfs_timeline_plan(tl, &latest, &error);
    ck_assert_ptr_null(p);
    ck_assert_ptr_nonnull(error);
    g_clear_error(&error);
    ck_assert(sqlenvfs_timeline_refresh(tl, &error));
    p = sqlenvfs_timeline_plan(tl, &latest, &error);
    ck_assert_no_error(error);
    ck_assert_uint_eq(p->state_seq, want->state_seq);
  }
}
END_TEST

/* ------------------------------------------------------------------ */
/* An archive written by version 1, continued by version 2              */

/* Rewrite the archive in @dir as the same records in version 1 segments
 * (as an older sqlenvfs wrote them): every record keeps its sequence
 * number, times and WAL position; the pages are stored uncompressed. */
static void
rewrite_as_v1(const char *dir)
{
  g_autofree char *old = g_build_filename(tmp, "archive-as-written", NULL);
  testutil_rewrite_archive(dir, old, 1, NULL, NULL);
}

/* Commit rows @from..@to of text, one per transaction. */
static void
commit_text_rows(sqlite3 *db, int from, int to)
{
  GError *error = NULL;
  for (int k = from; k <= to; k++) {
    g_autofree char *sql = g_strdup_printf(
      "INSERT INTO t VALUES (%d, 'order %d shipped to the customer on time; invoice paid "
      "late, vessel %d arrived at port with cargo and crew')", k, k * 7, k % 13);
    ck_assert(sqlenvfs_db_exec(db, sql, db_path, &error));
  }
}

/* The bytes of the state of @plan, as the restore writes them to a file. */
static GBytes *
restored_bytes(SqlenvfsRestorePlan *plan)
{
  g_autofree char *out = g_build_filename(tmp, "restored.db", NULL);
  GError *error = NULL;
  char *data = NULL;
  gsize len = 0;
  unlink(out);
  ck_assert(sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error));
  ck_assert_no_error(error);
  ck_assert(g_file_get_contents(out, &data, &len, NULL));
  unlink(out);
  return g_bytes_new_take(data, len);
}

/* Counts the messages that say a page map did not match its records. */
static void
count_mismatch(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user)
{
  if (strstr(message, "does not match its records") != NULL)
    (*(guint *)user)++;
}

/* Make every summary of the archive lie, its checksums made right: the
 * last version of each page names the image beside the right one. Returns
 * how many summaries were changed. */
static guint
forge_summaries(const char *dir)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  guint n = 0;
  ck_assert(d != NULL);
  while ((name = g_dir_read_name(d)) != NULL) {
    g_autofree char *path = NULL;
    g_autofree guint8 *buf = NULL;
    gsize len;
    ArchiveSummary sm;
    const char *why = NULL;
    if (!g_str_has_suffix(name, ".sum"))
      continue;
    path = g_build_filename(dir, name, NULL);
    ck_assert(g_file_get_contents(path, (char **)&buf, &len, NULL));
    ck_assert_msg(archive_summary_parse(buf, len, &sm, &why), "%s: %s", path, why);
    for (guint32 i = 0; i < sm.n_pages; i++) {
      guint32 end = i + 1 < sm.n_pages ? get32(buf + sm.pages_off + (gsize)(i + 1) * 8 + 4)
                                       : sm.n_versions;
      buf[sm.last_off + (gsize)i * 24 + 16] ^= 1;
      buf[sm.versions_off + (gsize)(end - 1) * 24 + 16] ^= 1;
    }
    ck_assert(archive_summary_seal(buf, len));
    ck_assert(archive_summary_parse(buf, len, &sm, &why));
    ck_assert(g_file_set_contents(path, (const char *)buf, (gssize)len, NULL));
    n++;
  }
  return n;
}

/* A restore writes its output while it checks each page version it takes
 * from a page map (read from its record then): the output is byte for
 * byte the image composed with every check made first (as the mount
 * does); and when summaries name versions their records do not hold,
 * the mismatch is found during the write, the output written so far is
 * dropped (no temporary left) and the restore composes again from those
 * segments' records: the same bytes again. */
START_TEST(test_restore_checks_while_writing)
{
  g_autofree char *dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), "app", NULL);
  g_autoptr(SqlenvfsRestorePlan) plan = NULL, early = NULL;
  SqlenvfsTime t = { .is_latest = TRUE };
  GError *error = NULL;
  guint mismatches = 0, handler;

  plan = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  t.is_latest = FALSE;
  t.us = t_mid;
  early = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  /* Just before the last of rows 1..30: from s0, over 29 commits. */
  t.us = early->state_us - 1;
  g_clear_pointer(&early, sqlenvfs_restore_plan_free);
  early = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(early->base_name, s0->name);
  for (guint k = 0; k < 2; k++) {
    SqlenvfsRestorePlan *p = k == 0 ? plan : early;
    g_autoptr(GBytes) written = restored_bytes(p);
    g_autoptr(SqlenvfsImage) img = sqlenvfs_restore_image(root, p, NULL, NULL, &error);
    g_autofree guint8 *want = NULL;
    gsize len = g_bytes_get_size(written);
    ck_assert_no_error(error);
    ck_assert_uint_eq(sqlenvfs_image_size(img), len);
    want = g_malloc(len);
    ck_assert_int_eq(sqlenvfs_image_read(img, want, len, 0, 0, &error), (gssize)len);
    ck_assert(memcmp(want, g_bytes_get_data(written, NULL), len) == 0);
  }
  {
    g_autoptr(GBytes) good = restored_bytes(plan);
    g_autoptr(GBytes) good_early = restored_bytes(early);
    g_autoptr(GBytes) again = NULL, again_early = NULL;
    g_autoptr(GDir) d = NULL;
    const char *name;

    ck_assert_uint_ge(forge_summaries(dir), 2);
    handler = g_log_set_handler("sqlenvfs", G_LOG_LEVEL_MESSAGE, count_mismatch, &mismatches);
    again = restored_bytes(plan);
    ck_assert_uint_ge(mismatches, 1);
    again_early = restored_bytes(early);
    ck_assert_uint_ge(mismatches, 2);
    g_log_remove_handler("sqlenvfs", handler);
    ck_assert(g_bytes_equal(good, again));
    ck_assert(g_bytes_equal(good_early, again_early));
    ck_assert_int_eq(rows_at(plan), 60);
    d = g_dir_open(tmp, 0, NULL);
    while ((name = g_dir_read_name(d)) != NULL)
      ck_assert_msg(!g_str_has_prefix(name, ".tmp-"), "left behind: %s", name);
  }
}
END_TEST

/* Counts the messages that say a segment file does not match its summary. */
static void
count_seg_mismatch(const gchar *domain, GLogLevelFlags level, const gchar *message,
                   gpointer user)
{
  if (strstr(message, "does not match its summary") != NULL)
    (*(guint *)user)++;
}

/* Make the seal checksum every summary of the archive after segment
 * @after gives wrong (those not in @saved yet), its checksums made right
 * (the summaries no longer match their segments' files); the original
 * bytes kept in @saved (path -> GBytes). */
static guint
forge_seals(const char *dir, guint64 after, GHashTable *saved)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  guint n = 0;
  ck_assert(d != NULL);
  while ((name = g_dir_read_name(d)) != NULL) {
    g_autofree char *path = NULL;
    guint8 *buf = NULL;
    gsize len;
    if (!g_str_has_suffix(name, ".sum") || g_ascii_strtoull(name, NULL, 10) <= after)
      continue;
    path = g_build_filename(dir, name, NULL);
    if (g_hash_table_contains(saved, path))
      continue; /* forged already */
    ck_assert(g_file_get_contents(path, (char **)&buf, &len, NULL));
    g_hash_table_insert(saved, g_strdup(path), g_bytes_new(buf, len));
    put32(buf + 32, get32(buf + 32) ^ 0x10);
    ck_assert(archive_summary_seal(buf, len));
    ck_assert(g_file_set_contents(path, (const char *)buf, (gssize)len, NULL));
    g_free(buf);
    n++;
  }
  return n;
}

static void
assert_no_temporaries(void)
{
  g_autoptr(GDir) d = g_dir_open(tmp, 0, NULL);
  const char *name;
  while ((name = g_dir_read_name(d)) != NULL)
    ck_assert_msg(!g_str_has_prefix(name, ".tmp-"), "left behind: %s", name);
}

static const char *
seg_base_name(const SqlenvfsArchiveSegment *seg)
{
  return strrchr(seg->path, '/') + 1;
}

/* A plan does not open the sealed segments its summaries describe: each
 * segment file is checked against its summary where the restore first
 * reads it. Summaries that no longer match their files (their seal
 * checksums, sound to their own checksums: the record check's memo of the
 * segment files says nothing of them): the restore finds it while it
 * writes, drops what it wrote and composes again with those segments read
 * from their records: the same bytes. An image composed with every check
 * first (as the mount serves a state) refuses with INTEGRITY naming the
 * file. A segment file changed since it was checked (its header) is read
 * again by the plan's record check, which refuses a range across it. */
START_TEST(test_restore_lazy_segment_check)
{
  g_autofree char *dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), "app", NULL);
  g_autoptr(GHashTable) saved =
    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_bytes_unref);
  g_autoptr(SqlenvfsRestorePlan) plan = NULL;
  g_autoptr(GBytes) good = NULL, again = NULL;
  g_autoptr(SqlenvfsImage) img = NULL;
  g_autofree char *seg_in = NULL; /* a sealed segment after the base */
  g_autofree char *out = g_build_filename(tmp, "restored.db", NULL);
  SqlenvfsTime t = { .is_latest = TRUE };
  GError *error = NULL;
  guint mismatches = 0, handler;
  GHashTableIter it;
  gpointer key, value;

  {
    /* Rows 61..160 (4 MB): segments sealed after the last base. */
    g_autoptr(sqlite3) db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_CREATE, &error);
    ck_assert_no_error(error);
    archive_commits(db, commit_rows, 61, 160);
  }
  plan = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  good = restored_bytes(plan);
  {
    /* Those after the segment holding the base's state (whose record the
     * restore reads to check the base): found while composing. */
    g_autoptr(SqlenvfsArchive) a = sqlenvfs_archive_open(dir, &error);
    SqlenvfsArchiveEntry e;
    ck_assert(sqlenvfs_archive_get(a, plan->base_seq, &e));
    ck_assert_uint_ge(forge_seals(dir, sqlenvfs_archive_segment(a, e.segment)->number, saved), 1);
    seg_in = g_build_filename(dir, seg_base_name(sqlenvfs_archive_segment(a, e.segment + 1)), NULL);
  }
  g_clear_pointer(&plan, sqlenvfs_restore_plan_free);

  handler = g_log_set_handler("sqlenvfs", G_LOG_LEVEL_MESSAGE, count_seg_mismatch, &mismatches);
  plan = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(mismatches, 0); /* planned from the summaries alone */
  again = restored_bytes(plan);
  ck_assert_uint_ge(mismatches, 1);
  ck_assert(g_bytes_equal(good, again));
  assert_no_temporaries();

  /* The process remembers the mismatch: a later image (as the mount
   * composes one per state) reads that segment from its records, the
   * same bytes, without finding the mismatch again. */
  {
    guint before = mismatches;
    gsize len = g_bytes_get_size(good);
    g_autofree guint8 *buf = g_malloc(len);
    img = sqlenvfs_restore_image(root, plan, NULL, NULL, &error);
    ck_assert_no_error(error);
    ck_assert_int_eq(sqlenvfs_image_read(img, buf, len, 0, 0, &error), (gssize)len);
    ck_assert_no_error(error);
    ck_assert(memcmp(buf, g_bytes_get_data(good, NULL), len) == 0);
    ck_assert_uint_eq(mismatches, before);
    g_clear_pointer(&img, sqlenvfs_image_free);
  }

  /* The summary of the segment holding the base's state too: the restore
   * reads that record to check the base, and a mismatch there says
   * nothing of the base (not taken as bad): the same bytes, from the same
   * base, now and once the summaries are right again. */
  {
    g_autofree char *base_name = g_strdup(plan->base_name);
    g_autoptr(SqlenvfsArchive) a = sqlenvfs_archive_open(dir, &error);
    g_autoptr(GBytes) third = NULL;
    SqlenvfsArchiveEntry e;
    guint before = mismatches;
    ck_assert(sqlenvfs_archive_get(a, plan->base_seq, &e));
    ck_assert_uint_ge(forge_seals(dir, sqlenvfs_archive_segment(a, e.segment)->number - 1, saved),
                      1);
    g_clear_pointer(&plan, sqlenvfs_restore_plan_free);
    plan = sqlenvfs_restore_plan(root, "app", &t, &error);
    ck_assert_no_error(error);
    {
      /* Checking the base against that record says nothing of the base:
       * GAP (the archive cannot be read there), not INTEGRITY (a bad
       * base, which a restore would pass over). As in a new process: the
       * plan above found the mismatch, and this one would read the
       * segment from its records. */
      g_autoptr(SqlenvfsArchive) fresh = NULL;
      sqlenvfs_archive_forget_checks();
      fresh = sqlenvfs_archive_open(dir, &error);
      int fd = open(plan->base_path, O_RDONLY);
      SqlenvfsArchiveEntry c;
      guint64 seq = plan->base_seq;
      /* A COMMIT of that segment (the base's own state may be a GAP's,
       * which holds no pages to check). */
      do
        ck_assert(sqlenvfs_archive_get(fresh, ++seq, &c));
      while (c.type != SQLENVFS_ARCHIVE_COMMIT);
      ck_assert_uint_eq(c.segment, e.segment);
      ck_assert_int_ge(fd, 0);
      ck_assert(!sqlenvfs_restore_base_holds_state(fresh, seq, fd, plan->base_path, &error));
      close(fd);
      ck_assert_int_eq(error->code, SQLENVFS_ERROR_GAP);
      ck_assert_msg(strstr(error->message, "does not match its summary") != NULL, "%s",
                    error->message);
      g_clear_error(&error);
    }
    third = restored_bytes(plan);
    ck_assert_uint_gt(mismatches, before);
    ck_assert(g_bytes_equal(good, third));
    ck_assert_str_eq(plan->base_name, base_name);
    assert_no_temporaries();
    g_hash_table_iter_init(&it, saved);
    while (g_hash_table_iter_next(&it, &key, &value))
      ck_assert(g_file_set_contents(key, g_bytes_get_data(value, NULL),
                                    (gssize)g_bytes_get_size(value), NULL));
    g_clear_pointer(&plan, sqlenvfs_restore_plan_free);
    plan = sqlenvfs_restore_plan(root, "app", &t, &error);
    ck_assert_no_error(error);
    ck_assert_str_eq(plan->base_name, base_name);
  }
  g_log_remove_handler("sqlenvfs", handler);
  g_clear_pointer(&plan, sqlenvfs_restore_plan_free);

  /* The summaries right again; the header of a segment after the base
   * changed (its checksum right). */
  g_hash_table_iter_init(&it, saved);
  while (g_hash_table_iter_next(&it, &key, &value))
    ck_assert(g_file_set_contents(key, g_bytes_get_data(value, NULL),
                                  (gssize)g_bytes_get_size(value), NULL));
  {
    guint8 h[SEG_HEADER_SIZE];
    SegHeader sh;
    const char *why = NULL;
    int fd = open(seg_in, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, h, sizeof h, 0), sizeof h);
    ck_assert(archive_decode_seg_header(h, &sh, &why));
    sh.first_seq++;
    archive_encode_seg_header(h, &sh);
    ck_assert_int_eq(pwrite(fd, h, sizeof h, 0), sizeof h);
    close(fd);
  }
  sqlenvfs_archive_forget_checks();
  plan = sqlenvfs_restore_plan(root, "app", &t, &error);
  if (plan != NULL) {
    unlink(out);
    ck_assert(!sqlenvfs_restore_to_file(root, plan, out, FALSE, NULL, NULL, &error));
    ck_assert(!g_file_test(out, G_FILE_TEST_EXISTS));
  }
  ck_assert_ptr_nonnull(error);
  ck_assert_msg(strstr(error->message, ".seg") != NULL, "%s", error->message);
  g_clear_error(&error);
  assert_no_temporaries();
}
END_TEST

static guint32
seg_version(const char *path)
{
  guint8 h[12];
  int fd = open(path, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pread(fd, h, sizeof h, 0), sizeof h);
  close(fd);
  return (guint32)h[8] | (guint32)h[9] << 8 | (guint32)h[10] << 16 | (guint32)h[11] << 24;
}

/* The commits from @first on of @times (their capture times, in order)
 * captured at or before @t: the rows of the state at @t. Two commits of
 * one batch may have the same time; the state at that time is after both. */
static gint64
commits_at(GArray *times, guint first, gint64 t)
{
  gint64 n = 0;
  for (guint k = first; k < times->len && g_array_index(times, gint64, k) <= t; k++)
    n++;
  return n;
}

START_TEST(test_v1_then_v2_chain)
{
  g_autofree char *dir = NULL;
  g_autoptr(sqlite3) db = NULL;
  g_autoptr(SqlenvfsArchive) ar = NULL;
  g_autoptr(GArray) times = g_array_new(FALSE, FALSE, sizeof(gint64));
  GError *error = NULL;
  guint n_v1 = 0, n_v2 = 0, n_batched = 0, first, n_exact = 0, n_before = 0, n_outage = 0;

  tmp = testutil_tmpdir();
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  dir = g_build_filename(tmp, "backups", "prod", "wal_archives", "app", NULL);
  db_path = sqlenvfs_root_prod_db(root, "app");
  db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_CREATE, &error);
  ck_assert(sqlenvfs_db_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(k INTEGER PRIMARY KEY, b)",
                             db_path, &error));

  /* Archived by version 1 (the archiver's records, rewritten as version 1
   * wrote them), then by version 2 after an upgrade. */
  archive_commits(db, commit_text_rows, 1, 12);
  rewrite_as_v1(dir);
  /* Commits made before the archiver starts again, which it finds in the
   * WAL and writes as batches whatever the machine's speed; then commits in
   * quick succession under it (captures that find several at a time write
   * them as batches too). */
  commit_text_rows(db, 13, 32);
  archive_commits(db, commit_text_rows, 33, 72);

  ar = sqlenvfs_archive_open(dir, &error);
  ck_assert_no_error(error);
  ck_assert_uint_ge(sqlenvfs_archive_n_segments(ar), 2);
  ck_assert_uint_eq(seg_version(sqlenvfs_archive_segment(ar, 0)->path), 1);
  ck_assert_uint_eq(seg_version(sqlenvfs_archive_segment(ar, sqlenvfs_archive_n_segments(ar) - 1)->path), 2);
  for (guint i = 0; i < sqlenvfs_archive_n_entries(ar); i++) {
    const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(ar, i);
    guint32 v = seg_version(sqlenvfs_archive_segment(ar, e->segment)->path);
    ck_assert_uint_ne(e->seq, 0); /* no gap: one chain across the upgrade */
    ck_assert_int_ne(e->type == SQLENVFS_ARCHIVE_GAP && i > 0, TRUE);
    if (e->type != SQLENVFS_ARCHIVE_COMMIT)
      continue;
    ck_assert_int_eq(!!(e->flags & (SQLENVFS_ARCHIVE_COMPRESSED | SQLENVFS_ARCHIVE_BATCHED)),
                     v == 2);
    if (v == 1)
      n_v1++;
    else
      n_v2++;
    if (e->flags & SQLENVFS_ARCHIVE_BATCHED)
      n_batched++;
    g_array_append_val(times, e->time);
  }
  /* The table's creation was still in the WAL when archiving started: it
   * may be the first record. */
  ck_assert(n_v1 == 12 || n_v1 == 13);
  ck_assert_uint_eq(n_v2, 60);
  ck_assert_uint_ge(n_batched, 1);
  first = n_v1 - 12;

  /* Exact at every commit on both sides of the boundary, and just before
   * each one (for a commit of a batch: between two commits of the batch). */
  for (guint i = first; i < times->len; i++) {
    gint64 at[2] = { g_array_index(times, gint64, i), g_array_index(times, gint64, i) - 1 };
    for (guint j = 0; j < 2; j++) {
      SqlenvfsTime t = { .us = at[j] };
      g_autoptr(SqlenvfsRestorePlan) plan = NULL;
      if (j == 1 && (i == first || at[j] <= g_array_index(times, gint64, i - 1)))
        continue;
      plan = sqlenvfs_restore_plan(root, "app", &t, &error);
      if (plan == NULL && j == 1 && error->code == SQLENVFS_ERROR_GAP) {
        g_clear_error(&error); /* inside the outage between the two archivers */
        n_outage++;
        continue;
      }
      ck_assert_no_error(error);
      ck_assert_int_eq(rows_at(plan), commits_at(times, first, at[j]));
      if (j == 0)
        n_exact++;
      else
        n_before++;
    }
  }
  /* Every commit checked at its time; the times just before them where
   * they differ from the previous commit's (how many do depends on how
   * the captures fell), all but the one in the outage between the two
   * archivers. */
  ck_assert_uint_eq(n_exact, 72);
  ck_assert_uint_ge(n_before, 1);
  ck_assert_uint_le(n_outage, 1);
}
END_TEST

static Suite *
restore_suite(void)
{
  Suite *s = suite_create("restore");
  TCase *tc = tcase_create("restore");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_windows_and_plans);
  tcase_add_test(tc, test_retention);
  tcase_add_test(tc, test_retention_unreadable_manifest);
  tcase_add_test(tc, test_bad_base_falls_back);
  tcase_add_test(tc, test_latest_refused_past_last_window);
  tcase_add_test(tc, test_damaged_base_one_pass);
  tcase_add_loop_test(tc, test_base_verdicts_shared, 0, 2);
  tcase_add_test(tc, test_misplaced_base_refused);
  tcase_add_test(tc, test_empty_wal_base_clock_stepped_back);
  tcase_add_test(tc, test_drill_clock_stepped_back);
  tcase_add_test(tc, test_timeline_refresh);
  tcase_add_test(tc, test_timeline_refresh_unreadable);
  tcase_add_test(tc, test_restore_checks_while_writing);
  tcase_add_test(tc, test_restore_lazy_segment_check);
  suite_add_tcase(s, tc);
  tc = tcase_create("versions");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_v1_then_v2_chain);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(restore_suite());
}
