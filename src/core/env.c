/*
 * env.c — environments: the marker, init, info, refresh-dev.
 *
 * The marker table (one row, ever):
 *
 *   CREATE TABLE _environment (
 *     id        INTEGER PRIMARY KEY CHECK (id = 1),
 *     name      TEXT NOT NULL,
 *     marked_at TEXT NOT NULL)            -- UTC ISO 8601, e.g. 2026-11-28T16:14:00Z
 *
 * Invariants:
 *   (1) A database marked by this module holds exactly one marker row: the
 *       primary key is pinned to 1, and re-marking drops and recreates the
 *       table inside one write transaction (which also replaces a marker
 *       table of another shape, such as one keyed by name).
 *   (2) Reading never guesses: more than one row is reported as an error.
 *   (3) init builds each new file under a ".tmp-init-" name next to its
 *       final place and renames it in only when complete, schema loaded,
 *       marked and switched to WAL; existing files are moved aside only
 *       after both new files are ready, and only with force.
 *   (4) Development is copied from production before production is
 *       marked, so no development file ever carries the production marker.
 *   (5) Production is opened read-only here (except by init, on its own new
 *       file), with checkpoint-on-close disabled.
 *   (6) refresh-dev writes the new state to ".tmp-refresh-<db>-<pid>" in
 *       data/dev, marks it development and checks it there, and only then
 *       copies it into the live development database with the backup API,
 *       in one write transaction: a reader of development sees the old
 *       database or the new one, never a mix and never the production
 *       marker.
 *   (7) Everything refresh-dev writes is no more readable than production:
 *       the temporary gets production's mode, and development's files are
 *       narrowed to it before the copy goes in. It never writes through a
 *       symlink (development's files must be real files), and removes the
 *       temporaries of runs that died (their pid no longer runs) first.
 */
#include "sqlenvfs/env.h"
#include "sqlenvfs/copy.h"
#include "sqlenvfs/demo.h"
#include "sqlenvfs/doctor.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/liveview.h"
#include "sqlenvfs/testhooks.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER_DDL                                                                             \
  "CREATE TABLE _environment (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, "    \
  "marked_at TEXT NOT NULL)"

/* ------------------------------------------------------------------ marker */

gboolean
sqlenvfs_env_read_marker(sqlite3 *db, char **env, char **marked_at, const char *path,
                         GError **error)
{
  gint64 has_table = 0, n_rows = 0;
  g_autoptr(sqlite3_stmt) st = NULL;
  int rc;

  *env = NULL;
  if (marked_at)
    *marked_at = NULL;
  if (!sqlenvfs_db_query_int(db,
                             "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                             "name = '_environment'",
                             &has_table, path, error))
    return FALSE;
  if (!has_table)
    return TRUE;
  if (!sqlenvfs_db_query_int(db, "SELECT count(*) FROM _environment", &n_rows, path, error))
    return FALSE;
  if (n_rows == 0)
    return TRUE;
  if (n_rows > 1) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read environment marker of %s: the _environment table holds %" G_GINT64_FORMAT
                " rows, so the environment is ambiguous (keep the right one, e.g. sqlite3 %s "
                "\"DELETE FROM _environment WHERE name <> 'production'\")",
                path, n_rows, path);
    return FALSE;
  }
  rc = sqlite3_prepare_v2(db, "SELECT name, marked_at FROM _environment", -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc != SQLITE_ROW)
    return sqlenvfs_error_sqlite(error, db, rc, "read environment marker of", path);
  if (sqlite3_column_type(st, 0) != SQLITE_NULL)
    *env = g_strdup((const char *)sqlite3_column_text(st, 0));
  if (marked_at && sqlite3_column_type(st, 1) != SQLITE_NULL)
    *marked_at = g_strdup((const char *)sqlite3_column_text(st, 1));
  return TRUE;
}

gboolean
sqlenvfs_env_read(sqlite3 *db, char **env, const char *path, GError **error)
{
  return sqlenvfs_env_read_marker(db, env, NULL, path, error);
}

gboolean
sqlenvfs_env_mark(sqlite3 *db, const char *env, const char *path, GError **error)
{
  gint64 now_us = sqlenvfs_clock_now();
  g_autofree char *now = sqlenvfs_time_format_iso(now_us - now_us % G_USEC_PER_SEC);
  g_autoptr(sqlite3_stmt) st = NULL;
  g_autofree char *kind = NULL;
  int rc;

  g_return_val_if_fail(env != NULL && *env != '\0', FALSE);
  if (!sqlenvfs_db_exec(db, "BEGIN IMMEDIATE", path, error))
    return FALSE;
  /* A view of that name (a copy of a source that is not a marked
   * production, taken with --force) goes as a table would. */
  if (!sqlenvfs_db_query_text(db, "SELECT type FROM sqlite_schema WHERE name = '_environment' "
                                  "COLLATE NOCASE", &kind, path, error) ||
      (g_strcmp0(kind, "view") == 0 &&
       !sqlenvfs_db_exec(db, "DROP VIEW _environment", path, error)) ||
      !sqlenvfs_db_exec(db, "DROP TABLE IF EXISTS _environment; " MARKER_DDL, path, error))
    goto fail;
  rc = sqlite3_prepare_v2(db, "INSERT INTO _environment (id, name, marked_at) VALUES (1, ?, ?)",
                          -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, env, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  if (rc != SQLITE_DONE) {
    sqlenvfs_error_sqlite(error, db, rc, "mark environment of", path);
    goto fail;
  }
  if (!sqlenvfs_db_exec(db, "COMMIT", path, error))
    goto fail;
  g_debug("marked %s as %s", path, env);
  return TRUE;

fail:
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

/* -------------------------------------------------------------------- init */

static char *
side_path(const char *path, const char *suffix)
{
  return g_strconcat(path, suffix, NULL);
}

static void
unlink_db_files(const char *path)
{
  for (gsize i = 0; i < SQLENVFS_N_DB_FILES; i++) {
    g_autofree char *p = side_path(path, sqlenvfs_db_files[i]);
    struct stat st;
    /* On a read-only filesystem unlink fails even where nothing is. */
    if (unlink(p) != 0 && errno != ENOENT) {
      int errsv = errno;
      if (lstat(p, &st) == 0 || errno != ENOENT)
        g_warning("remove %s: %s", p, g_strerror(errsv));
    }
  }
}

/* The first of @path, its -wal and its -journal that exists (a new
 * database put at @path would take over a -wal, or have a hot -journal
 * played back into it), newly allocated; NULL when none does. */
static char *
db_file_existing(const char *path)
{
  static const char *const kept[] = { "", "-wal", "-journal" };
  for (gsize i = 0; i < G_N_ELEMENTS(kept); i++) {
    char *file = side_path(path, kept[i]);
    if (g_file_test(file, G_FILE_TEST_EXISTS))
      return file;
    g_free(file);
  }
  return NULL;
}

/* Close @db, reporting a failure (a close that fails leaves files behind). */
static gboolean
close_db(sqlite3 *db, const char *path, GError **error)
{
  int rc = sqlite3_close(db);
  if (rc != SQLITE_OK) {
    sqlenvfs_error_sqlite(error, NULL, rc, "close", path);
    sqlite3_close_v2(db);
    return FALSE;
  }
  return TRUE;
}

/* Switch @db to WAL mode and check that it took. */
static gboolean
set_wal(sqlite3 *db, const char *path, GError **error)
{
  g_autofree char *mode = NULL;
  if (!sqlenvfs_db_query_text(db, "PRAGMA journal_mode=WAL", &mode, path, error))
    return FALSE;
  if (g_strcmp0(mode, "wal") != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "switch %s to WAL mode: SQLite kept journal mode '%s'", path,
                mode ? mode : "?");
    return FALSE;
  }
  return TRUE;
}

/* Copy the whole of @src (an open connection) into a new file @dst with the
 * backup API. */
static gboolean
backup_into_new(sqlite3 *src, const char *src_path, const char *dst_path, GError **error)
{
  g_autoptr(sqlite3) dst = sqlenvfs_db_open(dst_path, SQLENVFS_OPEN_CREATE, error);
  sqlite3_backup *b;
  int rc;

  if (dst == NULL)
    return FALSE;
  b = sqlite3_backup_init(dst, "main", src, "main");
  if (b == NULL)
    return sqlenvfs_error_sqlite(error, dst, sqlite3_errcode(dst), "copy into", dst_path);
  rc = sqlite3_backup_step(b, -1);
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE)
    return sqlenvfs_error_sqlite(error, dst, rc, "copy into", dst_path);
  (void)src_path;
  return close_db(g_steal_pointer(&dst), dst_path, error);
}

/* Mark the new file at @path as @env, switch it to WAL, check it (when
 * @check), close it (which checkpoints and removes its -wal), fsync it. */
static gboolean
finish_new_db(sqlite3 *db, const char *path, const char *env, gboolean check, GError **error)
{
  g_autofree char *wal = side_path(path, "-wal");
  if (!sqlenvfs_env_mark(db, env, path, error) || !set_wal(db, path, error) ||
      (check && !sqlenvfs_db_check(db, TRUE, path, error))) {
    sqlite3_close_v2(db);
    return FALSE;
  }
  if (!close_db(db, path, error))
    return FALSE;
  if (g_file_test(wal, G_FILE_TEST_EXISTS)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "finish new database %s: its WAL was not checkpointed on close", path);
    return FALSE;
  }
  return sqlenvfs_fsync_path(path, error);
}

typedef struct {
  SqlenvfsProgressFunc progress;
  gpointer user;
} Progress;

/* A schema is SQL text; more than this is not one (/dev/zero, a database
 * given by mistake), and is refused rather than read without end. */
#define SCHEMA_MAX_BYTES (64u << 20)

/* Read the schema at @path (a file, or a pipe such as <(...)) into *@out,
 * at most SCHEMA_MAX_BYTES; text with a NUL byte is not SQL text. Errors
 * are GFileError ones, or SQLENVFS_ERROR_INVALID with the whole message. */
static gboolean
read_schema(const char *path, char **out, GError **error)
{
  g_autoptr(GString) text = g_string_new(NULL);
  char buf[65536];
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0) {
    int e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "%s", g_strerror(e));
    return FALSE;
  }
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "%s", g_strerror(e));
      return FALSE;
    }
    if (n == 0)
      break;
    if (memchr(buf, '\0', (size_t)n) != NULL || text->len + (gsize)n > SCHEMA_MAX_BYTES) {
      close(fd);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "read schema %s: %s: it is not a schema of SQL statements (name the "
                  "schema file with --schema FILE)", path,
                  text->len + (gsize)n > SCHEMA_MAX_BYTES ? "it is larger than 64 MiB"
                                                          : "it holds a NUL byte");
      return FALSE;
    }
    g_string_append_len(text, buf, n);
  }
  close(fd);
  *out = g_string_free(g_steal_pointer(&text), FALSE);
  return TRUE;
}

/* Make the file @p, when it is a regular one, no more readable than
 * @mode (never widened). Never through a symlink. */
static gboolean
narrow_file(const char *p, int mode, GError **error)
{
  struct stat st;
  gboolean ok;
  int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return TRUE; /* gone, or a symlink: nothing of ours to narrow */
  ok = fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || sqlenvfs_narrow_fd(fd, mode, p, error);
  close(fd);
  return ok;
}

/* The new file @path, about to replace @old (with --force), no more
 * readable than @old: an operator who narrowed the database it replaces
 * meant its successor too. Nothing to do when @old is not a file. */
static gboolean
narrow_like(const char *old, const char *path, GError **error)
{
  struct stat ost;
  if (lstat(old, &ost) != 0 || !S_ISREG(ost.st_mode))
    return TRUE;
  return narrow_file(path, (int)(ost.st_mode & 0777), error);
}

/* Build the new production file @tmp_prod from @schema (and the demo data),
 * and the development file @tmp_dev as a copy of it taken before production
 * is marked. */
static gboolean
build_pair(const SqlenvfsInitOptions *opts, const char *schema_path, const char *schema,
           const char *tmp_prod, const char *tmp_dev, const Progress *prog, GError **error)
{
  sqlite3 *prod = sqlenvfs_db_open(tmp_prod, SQLENVFS_OPEN_CREATE, error);
  sqlite3 *dev;
  int rc;

  if (prod == NULL)
    return FALSE;
  /* A private new file: no journal needed while loading it. */
  if (!sqlenvfs_db_exec(prod,
                        "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF; "
                        "PRAGMA cache_size=-131072",
                        tmp_prod, error))
    goto fail;
  rc = sqlite3_exec(prod, schema, NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "load schema %s: %s (fix the schema; nothing was created)", schema_path,
                sqlite3_errmsg(prod));
    goto fail;
  }
  if (!sqlite3_get_autocommit(prod)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "load schema %s: it leaves a transaction open (add the missing COMMIT; "
                "nothing was created)",
                schema_path);
    goto fail;
  }
  {
    gint64 taken = 0;
    if (!sqlenvfs_db_query_int(prod,
                               "SELECT count(*) FROM sqlite_schema WHERE "
                               "name = '_environment' COLLATE NOCASE",
                               &taken, tmp_prod, error))
      goto fail;
    if (taken > 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "load schema %s: it defines _environment, the name of the table that marks "
                  "a database as production or development, which sqlenvfs keeps for itself "
                  "(rename it in the schema; nothing was created)",
                  schema_path);
      goto fail;
    }
  }
  if (opts->demo) {
    guint64 n = opts->demo_events ? opts->demo_events : SQLENVFS_DEMO_DEFAULT_EVENTS;
    if (!sqlenvfs_demo_load(prod, n, prog->progress, prog->user, tmp_prod, error))
      goto fail;
  }
  if (!backup_into_new(prod, tmp_prod, tmp_dev, error))
    goto fail;
  if (!sqlenvfs_db_exec(prod, "PRAGMA synchronous=FULL", tmp_prod, error) ||
      !finish_new_db(prod, tmp_prod, SQLENVFS_ENV_PRODUCTION, TRUE, error))
    return FALSE;

  dev = sqlenvfs_db_open(tmp_dev, 0, error);
  if (dev == NULL)
    return FALSE;
  /* A page-for-page copy of production, which was checked above: checking
   * it again would add half again to the time init takes, for nothing. */
  return finish_new_db(dev, tmp_dev, SQLENVFS_ENV_DEVELOPMENT, FALSE, error);

fail:
  sqlite3_close_v2(prod);
  return FALSE;
}

/* Refuse to move @prod and @dev aside while another process has one of them
 * (or its -wal, -shm or -journal) open: a connection keeps writing into the
 * old file, and opens the -wal by name, so its next commit would land in
 * the WAL of the new file. The root's own archiver (@archiver, its pid; 0:
 * none runs) is no such process: it commits nothing, sees the file replaced
 * and records a gap with a fresh snapshot of the new one (docs/ARCHIVE.md).
 * One walk of /proc for all eight files; the first of them (production's
 * before development's) that is open is named. */
static gboolean
check_not_in_use(const char *prod, const char *dev, int archiver, GError **error)
{
  enum { N = 2 * SQLENVFS_N_DB_FILES };
  char *paths[N];
  int pids[N];
  gboolean ok = TRUE;

  for (gsize i = 0; i < N; i++)
    paths[i] = side_path(i < N / 2 ? prod : dev, sqlenvfs_db_files[i % (N / 2)]);
  sqlenvfs_doctor_file_openers((const char *const *)paths, N, archiver, pids);
  for (gsize i = 0; ok && i < N; i++) {
    if (pids[i] > 0) {
      g_autofree char *who = sqlenvfs_doctor_describe_pid(pids[i]);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "init --force: %s has %s open, and would go on writing into it, its next "
                  "commit into the new database's WAL (nothing was changed; stop it, then "
                  "retry)", who, paths[i]);
      ok = FALSE;
    }
  }
  for (gsize i = 0; i < N; i++)
    g_free(paths[i]);
  return ok;
}

/* The moves of an init are written down, durably, before the first: the
 * database and the files beside it move one rename at a time, and a power
 * cut between two renames would leave a -wal (commits) or a -journal (what
 * makes the file whole) at the old name, apart from the database it belongs
 * to. After the moves aside the list names the two renames that put the
 * new databases in place (".tmp-init-<db>-<pid>" to "<db>.db"): a cut
 * between those would leave the new production without development, or
 * no production at all. The next init finishes the moves named there
 * before anything else, then forgets them; the file goes once the new
 * databases are in place. */
#define MOVES_FILE "init-moves"

char *
sqlenvfs_env_init_moves_path(const SqlenvfsRoot *root)
{
  return g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), MOVES_FILE, NULL);
}

/* Plan the move of @path and every file SQLite keeps beside it to
 * <path>.replaced-<stamp>[-wal|-shm|-journal], the database first, as
 * from/to pairs appended to @plan. The -journal goes with it: a hot journal
 * (a transaction cut short in rollback mode) is what makes the old file
 * whole again when it is opened under its new name, and left behind,
 * SQLite would play it back into the new database at @path. FALSE and
 * *error when a new name is taken. */
static gboolean
plan_moves(const char *path, const char *stamp, GPtrArray *plan, GError **error)
{
  g_autofree char *base = g_strdup_printf("%s.replaced-%s", path, stamp);
  for (gsize i = 0; i < SQLENVFS_N_DB_FILES; i++) {
    g_autofree char *from = side_path(path, sqlenvfs_db_files[i]);
    g_autofree char *to = side_path(base, sqlenvfs_db_files[i]);
    if (!g_file_test(from, G_FILE_TEST_EXISTS))
      continue;
    if (g_file_test(to, G_FILE_TEST_EXISTS)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS,
                  "move %s aside: %s already exists (move it away and retry)", from, to);
      return FALSE;
    }
    g_ptr_array_add(plan, g_steal_pointer(&from));
    g_ptr_array_add(plan, g_steal_pointer(&to));
  }
  return TRUE;
}

/* Make the moves of @plan not yet made (a source still there, its new
 * name free), in order, each made durable (its directory synced) before
 * the next: no filesystem may keep a later one and lose an earlier one.
 * Each new name is added to @moved. A move whose new name is taken was
 * made: its old name may hold a new database by now. */
static gboolean
run_moves(GPtrArray *plan, GPtrArray *moved, GError **error)
{
  guint delay_ms = sqlenvfs_testhook_init_delay_ms();
  for (guint i = 0; i + 1 < plan->len; i += 2) {
    const char *from = plan->pdata[i], *to = plan->pdata[i + 1];
    g_autofree char *dir = g_path_get_dirname(to);
    if (!g_file_test(from, G_FILE_TEST_EXISTS) || g_file_test(to, G_FILE_TEST_EXISTS))
      continue;
    if (rename(from, to) != 0)
      return sqlenvfs_error_errno(error, errno, "move aside", from);
    g_ptr_array_add(moved, g_strdup(to));
    if (!sqlenvfs_fsync_dir(dir, error))
      return FALSE;
    if (delay_ms > 0)
      g_usleep((gulong)delay_ms * 1000);
  }
  return TRUE;
}

/* Write @plan, then @installs, to @file (MOVES_FILE), durably. */
static gboolean
write_moves(const char *file, GPtrArray *plan, GPtrArray *installs, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autofree char *data = NULL;
  gsize len = 0;
  for (guint i = 0; i + 1 < plan->len + installs->len; i += 2) {
    GPtrArray *a = i < plan->len ? plan : installs;
    guint k = i < plan->len ? i : i - plan->len;
    g_autofree char *group = g_strdup_printf("move %u", i / 2);
    g_key_file_set_string(kf, group, "from", a->pdata[k]);
    g_key_file_set_string(kf, group, "to", a->pdata[k + 1]);
  }
  data = g_key_file_to_data(kf, &len, NULL);
  return sqlenvfs_write_file_atomic(file, data, len, 0600, error);
}

/* Forget the moves of @file once the renames are durable (their
 * directories synced by the caller). */
static gboolean
forget_moves(const char *file, GError **error)
{
  g_autofree char *dir = g_path_get_dirname(file);
  if (unlink(file) != 0 && errno != ENOENT)
    return sqlenvfs_error_errno(error, errno, "remove", file);
  return sqlenvfs_fsync_dir(dir, error);
}

/* Whether @from -> @to is a move plan_moves() makes in @root:
 * <dir>/<db>.db<sfx> -> <dir>/<db>.db.replaced-<stamp><sfx>, in data/prod or
 * data/dev, <sfx> one of SQLite's (nothing else is renamed on the word of
 * that file). */
static gboolean
is_planned_move(SqlenvfsRoot *root, const char *from, const char *to)
{
  g_autofree char *dir = g_path_get_dirname(from);
  if (g_strcmp0(dir, sqlenvfs_root_path(root, SQLENVFS_DIR_PROD)) != 0 &&
      g_strcmp0(dir, sqlenvfs_root_path(root, SQLENVFS_DIR_DEV)) != 0)
    return FALSE;
  for (gsize i = SQLENVFS_N_DB_FILES; i-- > 0;) {
    const char *sfx = sqlenvfs_db_files[i];
    gsize n = strlen(from), k = strlen(sfx);
    g_autofree char *db = NULL, *prefix = NULL;
    if (n <= k || !g_str_has_suffix(from, sfx))
      continue;
    db = g_strndup(from, n - k);
    prefix = g_strconcat(db, ".replaced-", NULL);
    return g_str_has_suffix(db, ".db") && g_str_has_prefix(to, prefix) &&
           g_str_has_suffix(to, sfx) && strlen(to) > strlen(prefix) + k &&
           strchr(to + strlen(prefix), '/') == NULL;
  }
  return FALSE;
}

/* Whether @from -> @to is the rename that puts a new database in place:
 * <dir>/.tmp-init-<db>-<pid> -> <dir>/<db>.db, in data/prod or data/dev. */
static gboolean
is_planned_install(SqlenvfsRoot *root, const char *from, const char *to)
{
  g_autofree char *dir = g_path_get_dirname(from), *to_dir = g_path_get_dirname(to);
  g_autofree char *base = g_path_get_basename(from), *to_base = g_path_get_basename(to);
  g_autofree char *prefix = NULL;
  const char *pid;
  if (g_strcmp0(dir, to_dir) != 0 ||
      (g_strcmp0(dir, sqlenvfs_root_path(root, SQLENVFS_DIR_PROD)) != 0 &&
       g_strcmp0(dir, sqlenvfs_root_path(root, SQLENVFS_DIR_DEV)) != 0) ||
      !g_str_has_suffix(to_base, ".db") || strlen(to_base) <= 3)
    return FALSE;
  prefix = g_strdup_printf(".tmp-init-%.*s-", (int)(strlen(to_base) - 3), to_base);
  if (!g_str_has_prefix(base, prefix))
    return FALSE;
  pid = base + strlen(prefix);
  return *pid != '\0' && strspn(pid, "0123456789") == strlen(pid);
}

/* Put in place the new databases of @installs (from/to pairs) whose file is
 * there and whose place is free (no database, -wal or -journal: a new file
 * must not meet an old one's), each made durable before the next; each
 * new name is added to @installed. */
static gboolean
run_installs(GPtrArray *installs, GPtrArray *installed, GError **error)
{
  for (guint i = 0; i + 1 < installs->len; i += 2) {
    const char *from = installs->pdata[i], *to = installs->pdata[i + 1];
    g_autofree char *dir = g_path_get_dirname(to);
    g_autofree char *taken = db_file_existing(to);
    if (!g_file_test(from, G_FILE_TEST_EXISTS))
      continue;
    if (taken) {
      g_message("init: left %s aside: %s is in its place", from, taken);
      continue;
    }
    if (rename(from, to) != 0)
      return sqlenvfs_error_errno(error, errno, "install new database", to);
    g_ptr_array_add(installed, g_strdup(to));
    if (!sqlenvfs_fsync_dir(dir, error))
      return FALSE;
  }
  return TRUE;
}

/* The moves of @plan as they must be made now, newly allocated: after each
 * database's own move, the moves of the files SQLite keeps beside it that
 * are there now and that @plan does not name (a -wal or -shm that an
 * application or a reader made after the cut, while the old database was
 * still in place, would stay apart from it), unless that database's move
 * was made and a new database was put in its place (what is beside it now
 * is the new one's). */
static GPtrArray *
complete_moves(GPtrArray *plan)
{
  GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i + 1 < plan->len; i += 2) {
    const char *from = plan->pdata[i], *to = plan->pdata[i + 1];
    g_ptr_array_add(out, g_strdup(from));
    g_ptr_array_add(out, g_strdup(to));
    if (!g_str_has_suffix(from, ".db") ||
        (g_file_test(from, G_FILE_TEST_EXISTS) && g_file_test(to, G_FILE_TEST_EXISTS)))
      continue;
    for (gsize k = 1; k < SQLENVFS_N_DB_FILES; k++) {
      g_autofree char *f = side_path(from, sqlenvfs_db_files[k]);
      gboolean named = FALSE;
      for (guint j = 0; j + 1 < plan->len && !named; j += 2)
        named = strcmp(plan->pdata[j], f) == 0;
      if (!named && g_file_test(f, G_FILE_TEST_EXISTS)) {
        g_ptr_array_add(out, g_steal_pointer(&f));
        g_ptr_array_add(out, side_path(to, sqlenvfs_db_files[k]));
      }
    }
  }
  return out;
}

/* Refuse to make the moves of @plan not yet made while a process other
 * than the root's archiver has one of their files open (see
 * check_not_in_use()). */
static gboolean
check_moves_not_in_use(SqlenvfsRoot *root, GPtrArray *plan, GError **error)
{
  g_autofree char *alock = sqlenvfs_root_lock_path(root, "archiver");
  g_autoptr(GPtrArray) paths = g_ptr_array_new();
  g_autofree int *pids = NULL;
  for (guint i = 0; i + 1 < plan->len; i += 2)
    if (g_file_test(plan->pdata[i], G_FILE_TEST_EXISTS) &&
        !g_file_test(plan->pdata[i + 1], G_FILE_TEST_EXISTS))
      g_ptr_array_add(paths, plan->pdata[i]);
  if (paths->len == 0)
    return TRUE;
  pids = g_new0(int, paths->len);
  sqlenvfs_doctor_file_openers((const char *const *)paths->pdata, paths->len,
                               MAX(sqlenvfs_doctor_lock_holder(alock, NULL), 0), pids);
  for (guint i = 0; i < paths->len; i++) {
    if (pids[i] > 0) {
      g_autofree char *who = sqlenvfs_doctor_describe_pid(pids[i]);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "init: an init --force cut short must move %s aside, and %s has it open "
                  "(nothing was moved; stop it, then retry)",
                  (const char *)paths->pdata[i], who);
      return FALSE;
    }
  }
  return TRUE;
}

/* Finish the moves of an init that was cut short, if @file names any,
 * under the init lock: the moves aside, then the new databases put in
 * place. What it moves aside is added to @moved, what it puts in place to
 * @installed, and the places of the new databases it names to @named. */
static gboolean
finish_moves(SqlenvfsRoot *root, const char *file, GPtrArray *moved, GPtrArray *installed,
             GPtrArray *named, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GPtrArray) plan = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) installs = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) full = NULL;
  g_autoptr(GError) local = NULL;
  g_auto(GStrv) groups = NULL;
  int lock;
  gboolean ok;

  if (!g_file_test(file, G_FILE_TEST_EXISTS))
    return TRUE;
  lock = sqlenvfs_root_lock(root, "init", FALSE, error);
  if (lock < 0)
    return FALSE;
  if (!g_key_file_load_from_file(kf, file, G_KEY_FILE_NONE, &local)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read %s, the moves of an init --force that was cut short: %s (move the files "
                "it names yourself, then remove it)", file, local->message);
    sqlenvfs_root_unlock(lock);
    return FALSE;
  }
  groups = g_key_file_get_groups(kf, NULL);
  for (gsize i = 0; groups[i] != NULL; i++) {
    char *from = g_key_file_get_string(kf, groups[i], "from", NULL);
    char *to = g_key_file_get_string(kf, groups[i], "to", NULL);
    gboolean install = from != NULL && to != NULL && is_planned_install(root, from, to);
    if (from == NULL || to == NULL || (!install && !is_planned_move(root, from, to))) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s, the moves of an init --force that was cut short, holds [%s], which is "
                  "not one (nothing was moved; move the files it names yourself, then remove "
                  "it)", file, groups[i]);
      g_free(from);
      g_free(to);
      sqlenvfs_root_unlock(lock);
      return FALSE;
    }
    if (install)
      g_ptr_array_add(named, g_strdup(to));
    g_ptr_array_add(install ? installs : plan, from);
    g_ptr_array_add(install ? installs : plan, to);
  }
  full = complete_moves(plan);
  ok = check_moves_not_in_use(root, full, error) && run_moves(full, moved, error) &&
       run_installs(installs, installed, error) && forget_moves(file, error);
  for (guint i = 0; ok && i < moved->len; i++)
    g_message("init: moved aside %s, which an init --force cut short had left behind",
              (const char *)moved->pdata[i]);
  for (guint i = 0; ok && i < installed->len; i++)
    g_message("init: put in place %s, which an init cut short had made",
              (const char *)installed->pdata[i]);
  sqlenvfs_root_unlock(lock);
  return ok;
}

/* Remove the temporaries of init runs of @name that died (their process is
 * gone) from data/prod and data/dev; the caller holds the init lock. */
static gboolean
remove_leftovers(SqlenvfsRoot *root, const char *name, GError **error)
{
  g_autofree char *prefix = g_strdup_printf(".tmp-init-%s-", name);
  return sqlenvfs_tmp_leftovers(sqlenvfs_root_path(root, SQLENVFS_DIR_PROD), prefix, FALSE, TRUE,
                                NULL, error) >= 0 &&
         sqlenvfs_tmp_leftovers(sqlenvfs_root_path(root, SQLENVFS_DIR_DEV), prefix, FALSE, TRUE,
                                NULL, error) >= 0;
}

/* remove_leftovers() under the init lock, where an init ever ran (only an
 * init holding that lock makes temporaries). */
static gboolean
remove_leftovers_locked(SqlenvfsRoot *root, const char *name, GError **error)
{
  int lock;
  gboolean ok;
  if (!g_file_test(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), G_FILE_TEST_IS_DIR))
    return TRUE;
  lock = sqlenvfs_root_lock(root, "init", FALSE, error);
  if (lock < 0)
    return FALSE;
  ok = remove_leftovers(root, name, error);
  sqlenvfs_root_unlock(lock);
  return ok;
}

gboolean
sqlenvfs_env_init(SqlenvfsRoot *root, const SqlenvfsInitOptions *opts,
                  SqlenvfsProgressFunc progress, gpointer user, GError **error)
{
  g_autofree char *name = NULL, *schema_default = NULL, *schema = NULL;
  g_autofree char *prod = NULL, *dev = NULL, *tmp_prod = NULL, *tmp_dev = NULL;
  g_autofree char *stamp = NULL, *moves = NULL;
  g_autoptr(GPtrArray) moved = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) plan = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) installs = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) installed = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) named = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GError) local = NULL;
  const char *schema_path;
  const char *prod_dir, *dev_dir;
  Progress prog = { progress, user };
  gboolean ok = FALSE;
  int lock = -1, archiver = 0;

  g_return_val_if_fail(opts != NULL, FALSE);

  moves = sqlenvfs_env_init_moves_path(root);
  if (!finish_moves(root, moves, moved, installed, named, error))
    return FALSE;
  name = sqlenvfs_root_resolve_new_db(root, opts->db, error);
  if (name == NULL)
    return FALSE;
  prod = sqlenvfs_root_prod_db(root, name);
  dev = sqlenvfs_root_dev_db(root, name);
  if (!opts->force && g_ptr_array_find_with_equal_func(named, prod, g_str_equal, NULL) &&
      g_file_test(prod, G_FILE_TEST_EXISTS) && g_file_test(dev, G_FILE_TEST_EXISTS)) {
    /* The init that was cut short is done now: that is what was asked for
     * (doctor sends the user here), not a new one. */
    for (guint i = 0; opts->moved_aside && i < moved->len; i++)
      g_ptr_array_add(opts->moved_aside, g_strdup(moved->pdata[i]));
    return remove_leftovers_locked(root, name, error);
  }
  schema_default = g_build_filename(sqlenvfs_root_dir(root), "schema.sql", NULL);
  schema_path = opts->schema_path ? opts->schema_path : schema_default;
  if (opts->demo && opts->schema_path == NULL &&
      !g_file_test(schema_default, G_FILE_TEST_EXISTS)) {
    /* The demo data fits the built-in vessel schema; leave a copy in the
     * root so that the root describes itself. */
    if (!sqlenvfs_mkdir_p(sqlenvfs_root_dir(root), 0755, error) ||
        /* A dangling link is not replaced without a word. */
        !sqlenvfs_refuse_symlink(schema_default, "write the demo schema", error) ||
        !sqlenvfs_write_file_atomic(schema_default, sqlenvfs_demo_schema_sql,
                                    strlen(sqlenvfs_demo_schema_sql), 0644, error))
      return FALSE;
    g_info("wrote the demo schema to %s", schema_default);
  }
  if (!read_schema(schema_path, &schema, &local)) {
    if (local->domain == SQLENVFS_ERROR) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    g_set_error(error, SQLENVFS_ERROR,
                g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                  ? SQLENVFS_ERROR_NOT_FOUND
                  : SQLENVFS_ERROR_IO,
                "read schema %s: %s (put the schema there, or pass --schema FILE)",
                schema_path,
                g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? "no such file"
                                                                         : local->message);
    return FALSE;
  }

  if (!opts->force) {
    g_autofree char *existing = db_file_existing(prod);
    if (existing == NULL)
      existing = db_file_existing(dev);
    if (existing) {
      /* Refused; but the temporaries of a run that died (an init --force
       * cut short while it built the new pair) go all the same: they may
       * hold a full copy of production, and doctor sends the user here. */
      g_autofree char *prod_side = NULL;
      if (!remove_leftovers_locked(root, name, error))
        return FALSE;
      if (!g_file_test(prod, G_FILE_TEST_EXISTS) &&
          (prod_side = db_file_existing(prod)) != NULL) {
        /* Production's -wal or -journal without its database: its last
         * commits may be nowhere else, and --force would start over empty. */
        g_autofree char *name_word = sqlenvfs_shell_word(name);
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS,
                    "init %s: %s is there but %s is not: production's last changes may be in "
                    "it (nothing was changed; if the database was moved, put it back beside "
                    "it; else restore it, `sqlenvfs restore --db %s --time latest --output "
                    "FILE`, and put FILE in place as docs/OPERATIONS.md says; --force would "
                    "move it aside and create a new, empty production)",
                    name, prod_side, prod, name_word);
        return FALSE;
      }
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS,
                  "init %s: %s already exists (nothing was changed; pass --force to move the "
                  "old files aside and create new ones)",
                  name, existing);
      return FALSE;
    }
  }

  if (opts->force) {
    g_autofree char *alock = sqlenvfs_root_lock_path(root, "archiver");
    archiver = MAX(sqlenvfs_doctor_lock_holder(alock, NULL), 0);
    if (!check_not_in_use(prod, dev, archiver, error))
      return FALSE;
  }
  if (!sqlenvfs_root_ensure_layout(root, error))
    return FALSE;
  lock = sqlenvfs_root_lock(root, "init", FALSE, error);
  if (lock < 0)
    return FALSE;

  prod_dir = sqlenvfs_root_path(root, SQLENVFS_DIR_PROD);
  dev_dir = sqlenvfs_root_path(root, SQLENVFS_DIR_DEV);
  if (!remove_leftovers(root, name, error)) {
    sqlenvfs_root_unlock(lock);
    return FALSE;
  }
  {
    g_autofree char *file = g_strdup_printf(".tmp-init-%s-%d", name, (int)getpid());
    tmp_prod = g_build_filename(prod_dir, file, NULL);
    tmp_dev = g_build_filename(dev_dir, file, NULL);
    /* Whatever holds these names (a previous process with this pid, a
     * link) goes before SQLite creates them. */
    unlink_db_files(tmp_prod);
    unlink_db_files(tmp_dev);
  }

  if (!build_pair(opts, schema_path, schema, tmp_prod, tmp_dev, &prog, error) ||
      !narrow_like(prod, tmp_prod, error) || !narrow_like(prod, tmp_dev, error) ||
      !narrow_like(dev, tmp_dev, error))
    goto out;

  /* Both new files are complete (and their names durable, before a list
   * names them): now, and only now, make room for them. */
  stamp = sqlenvfs_time_format_name(sqlenvfs_clock_now(), TRUE);
  g_ptr_array_add(installs, g_strdup(tmp_prod));
  g_ptr_array_add(installs, g_strdup(prod));
  g_ptr_array_add(installs, g_strdup(tmp_dev));
  g_ptr_array_add(installs, g_strdup(dev));
  if (!sqlenvfs_fsync_dir(prod_dir, error) || !sqlenvfs_fsync_dir(dev_dir, error) ||
      (opts->force &&
       (!check_not_in_use(prod, dev, archiver, error) || !plan_moves(prod, stamp, plan, error) ||
        !plan_moves(dev, stamp, plan, error))) ||
      !write_moves(moves, plan, installs, error) || !run_moves(plan, moved, error))
    goto out;
  for (guint i = 0; i < moved->len; i++) {
    g_info("moved aside: %s", (const char *)moved->pdata[i]);
    if (opts->moved_aside)
      g_ptr_array_add(opts->moved_aside, g_strdup(moved->pdata[i]));
  }
  if (rename(tmp_prod, prod) != 0) {
    sqlenvfs_error_errno(error, errno, "install new production database", prod);
    goto out;
  }
  if (rename(tmp_dev, dev) != 0) {
    sqlenvfs_error_errno(error, errno, "install new development database", dev);
    goto out;
  }
  ok = sqlenvfs_fsync_dir(prod_dir, error) && sqlenvfs_fsync_dir(dev_dir, error) &&
       forget_moves(moves, error);

out:
  if (!ok) {
    unlink_db_files(tmp_prod);
    unlink_db_files(tmp_dev);
  }
  sqlenvfs_root_unlock(lock);
  return ok;
}

/* -------------------------------------------------------------------- info */

void
sqlenvfs_db_info_free(SqlenvfsDbInfo *info)
{
  if (info == NULL)
    return;
  g_free(info->db);
  g_free(info->path);
  if (info->tables)
    g_ptr_array_unref(info->tables);
  g_free(info->environment);
  g_free(info->marked_at);
  g_free(info->journal_mode);
  g_free(info->error);
  g_free(info);
}

/* Open a database read-only the way production must be opened: no
 * checkpoint on close, so closing never touches the WAL. */
static sqlite3 *
open_readonly(const char *path, GError **error)
{
  return sqlenvfs_db_open(path, SQLENVFS_OPEN_READONLY | SQLENVFS_OPEN_MUST_EXIST, error);
}

static gboolean
read_info(sqlite3 *db, SqlenvfsDbInfo *info, GError **error)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  int rc;

  if (!sqlenvfs_db_exec(db, "BEGIN", info->path, error))
    return FALSE;
  /* The first read starts the read transaction: everything below sees one state. */
  if (!sqlenvfs_db_query_int(db, "PRAGMA page_count", &info->page_count, info->path, error) ||
      !sqlenvfs_db_query_int(db, "PRAGMA page_size", &info->page_size, info->path, error) ||
      !sqlenvfs_db_query_text(db, "PRAGMA journal_mode", &info->journal_mode, info->path, error) ||
      !sqlenvfs_env_read_marker(db, &info->environment, &info->marked_at, info->path, error))
    goto fail;
  rc = sqlite3_prepare_v2(db,
                          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                          "'sqlite\\_%' ESCAPE '\\' AND name <> '_environment' ORDER BY name",
                          -1, &st, NULL);
  if (rc == SQLITE_OK)
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      g_ptr_array_add(info->tables, g_strdup((const char *)sqlite3_column_text(st, 0)));
  if (rc != SQLITE_DONE) {
    sqlenvfs_error_sqlite(error, db, rc, "list tables of", info->path);
    goto fail;
  }
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  return TRUE;

fail:
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

SqlenvfsDbInfo *
sqlenvfs_env_db_info(const char *db, const char *place, const char *path)
{
  SqlenvfsDbInfo *info = g_new0(SqlenvfsDbInfo, 1);
  g_autofree char *wal = side_path(path, "-wal");
  g_autoptr(GError) error = NULL;
  g_autoptr(sqlite3) conn = NULL;
  struct stat sb;

  info->db = g_strdup(db);
  info->place = g_strcmp0(place, "dev") == 0 ? "dev" : "prod";
  info->path = g_strdup(path);
  info->tables = g_ptr_array_new_with_free_func(g_free);
  if (stat(path, &sb) != 0) {
    if (errno != ENOENT) {
      sqlenvfs_error_errno(&error, errno, "stat", path);
      info->exists = TRUE;
      info->error = g_strdup(error->message);
    }
    return info;
  }
  info->exists = TRUE;
  info->size = (guint64)sb.st_size;
  info->mtime_us = (gint64)sb.st_mtim.tv_sec * G_USEC_PER_SEC + sb.st_mtim.tv_nsec / 1000;
  if (stat(wal, &sb) == 0) {
    gint64 wal_mtime = (gint64)sb.st_mtim.tv_sec * G_USEC_PER_SEC + sb.st_mtim.tv_nsec / 1000;
    info->wal_size = (guint64)sb.st_size;
    info->mtime_us = MAX(info->mtime_us, wal_mtime);
  }
  conn = open_readonly(path, &error);
  if (conn != NULL && read_info(conn, info, &error))
    return info;
  g_clear_pointer(&conn, sqlite3_close_v2);
  {
    /* A read-only connection creates the -shm a WAL database needs, which
     * a read-only root does not allow: then the file alone is read,
     * immutable, exact while its -wal holds nothing. */
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *uri = NULL;
    if (error->code != SQLENVFS_ERROR_BUSY && error->code != SQLENVFS_ERROR_INTEGRITY &&
        access(dir, W_OK) != 0 && g_strcmp0(sqlenvfs_db_file_journal(path), "wal") == 0) {
      if (info->wal_size > 0) {
        g_clear_error(&error);
        g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                    "%s cannot be read: its directory is not writable (a read-only root?), so "
                    "SQLite cannot set up the shared memory its WAL (%" G_GUINT64_FORMAT
                    " bytes) needs; run info where the root is writable",
                    path, info->wal_size);
      } else {
        g_autoptr(GError) local = NULL;
        uri = sqlenvfs_db_uri_immutable(path);
        g_ptr_array_set_size(info->tables, 0);
        conn = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, &local);
        if (conn != NULL && read_info(conn, info, &local)) {
          g_free(info->journal_mode);
          info->journal_mode = g_strdup("wal"); /* immutable says "delete": the file's */
          return info;
        }
      }
    }
  }
  info->error = g_strdup(error->message);
  return info;
}

static void
add_names(GPtrArray *names, const char *dir)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *ent;
  if (d == NULL)
    return;
  while ((ent = g_dir_read_name(d)) != NULL) {
    g_autofree char *stem = NULL;
    if (!g_str_has_suffix(ent, ".db"))
      continue;
    stem = g_strndup(ent, strlen(ent) - 3);
    if (sqlenvfs_db_name_is_valid(stem) &&
        !g_ptr_array_find_with_equal_func(names, stem, g_str_equal, NULL))
      g_ptr_array_add(names, g_steal_pointer(&stem));
  }
}

static gint
cmp_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* sqlenvfs_env_db_info, unless a symbolic link stands on the way to the
 * database (sqlenvfs_root_db_link): SQLite would follow it and create the
 * -wal and -shm of a WAL database beside its target, outside the root. */
static SqlenvfsDbInfo *
db_info_unless_linked(SqlenvfsRoot *root, const char *name, SqlenvfsDir which, const char *path)
{
  g_autofree char *link = sqlenvfs_root_db_link(root, which, path);
  g_autofree char *target = NULL;
  SqlenvfsDbInfo *info;

  if (link == NULL)
    return sqlenvfs_env_db_info(name, which == SQLENVFS_DIR_DEV ? "dev" : "prod", path);
  target = g_file_read_link(link, NULL);
  info = g_new0(SqlenvfsDbInfo, 1);
  info->db = g_strdup(name);
  info->place = which == SQLENVFS_DIR_DEV ? "dev" : "prod";
  info->path = g_strdup(path);
  info->tables = g_ptr_array_new_with_free_func(g_free);
  info->exists = TRUE;
  info->error = g_strdup_printf(
    "%s not read: %s is a symbolic link (to %s), and SQLite would create the -wal and -shm "
    "where it points, outside the root (replace the link by the real file or directory%s)",
    path, link, target ? target : "?",
    which == SQLENVFS_DIR_DEV ? "; `sqlenvfs refresh-dev` refuses it too" : "");
  return info;
}

GPtrArray *
sqlenvfs_env_info(SqlenvfsRoot *root)
{
  GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_db_info_free);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);

  {
    /* Production through the root, which says which files it skips. */
    g_autoptr(GPtrArray) prod = sqlenvfs_root_list_dbs(root);
    for (guint i = 0; i < prod->len; i++)
      g_ptr_array_add(names, g_strdup(prod->pdata[i]));
  }
  add_names(names, sqlenvfs_root_path(root, SQLENVFS_DIR_DEV));
  g_ptr_array_sort(names, cmp_names);
  for (guint i = 0; i < names->len; i++) {
    const char *name = names->pdata[i];
    g_autofree char *prod = sqlenvfs_root_prod_db(root, name);
    g_autofree char *dev = sqlenvfs_root_dev_db(root, name);
    g_ptr_array_add(out, db_info_unless_linked(root, name, SQLENVFS_DIR_PROD, prod));
    g_ptr_array_add(out, db_info_unless_linked(root, name, SQLENVFS_DIR_DEV, dev));
  }
  return out;
}

/* ------------------------------------------------------------- refresh-dev */

/* Copy the whole of the database at @src_path into the live database @dst
 * (open, development) with the backup API: one write transaction on @dst,
 * waiting for its other writers. */
static gboolean
install_into(sqlite3 *dst, const char *dst_path, const char *src_path, GError **error)
{
  g_autoptr(sqlite3) src = sqlenvfs_db_open(src_path, SQLENVFS_OPEN_READONLY, error);
  sqlite3_backup *b;
  int rc;

  if (src == NULL)
    return FALSE;
  /* SQLite cannot change the page size of a database in WAL mode, and the
   * copy below would fail with "attempt to write a readonly database". */
  {
    g_autofree char *mode = NULL;
    gint64 dst_size, src_size;
    if (!sqlenvfs_db_query_int(dst, "PRAGMA page_size", &dst_size, dst_path, error) ||
        !sqlenvfs_db_query_int(src, "PRAGMA page_size", &src_size, src_path, error) ||
        !sqlenvfs_db_query_text(dst, "PRAGMA journal_mode", &mode, dst_path, error))
      return FALSE;
    if (dst_size != src_size && g_strcmp0(mode, "wal") == 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "install new development database into %s: it is in WAL mode with pages of "
                  "%" G_GINT64_FORMAT " bytes, production's are %" G_GINT64_FORMAT " (SQLite "
                  "cannot change the page size of a WAL database; nothing was changed: stop what "
                  "uses development, remove %s and its -wal and -shm, and run refresh-dev again)",
                  dst_path, dst_size, src_size, dst_path);
      return FALSE;
    }
  }
  b = sqlite3_backup_init(dst, "main", src, "main");
  if (b == NULL)
    return sqlenvfs_error_sqlite(error, dst, sqlite3_errcode(dst), "install new development database into",
                                 dst_path);
  /* Busy: another connection writes development; the busy timeout of @dst
   * already waited, so try a few more times before giving up. */
  for (int attempt = 0; attempt < 10; attempt++) {
    rc = sqlite3_backup_step(b, -1);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
      break;
    g_usleep(100 * 1000);
  }
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE)
    return sqlenvfs_error_sqlite(error, dst, rc, "install new development database into", dst_path);
  return TRUE;
}

/* The development database and its -wal, -shm and -journal must be files
 * of their own (or absent): SQLite would write through a symbolic link, and
 * into a file with another name (a hard link), which may be production's
 * or a backup's. @prod names production, to say so when it is that. */
static gboolean
refuse_dev_links(const char *dev, const char *prod, GError **error)
{
  for (gsize i = 0; i < SQLENVFS_N_DB_FILES; i++) {
    g_autofree char *p = side_path(dev, sqlenvfs_db_files[i]);
    g_autofree char *pp = side_path(prod, sqlenvfs_db_files[i]);
    g_autofree char *what = NULL;
    struct stat st, pst;
    gboolean is_prod;
    if (!sqlenvfs_refuse_symlink(p, "write development", error))
      return FALSE;
    if (lstat(p, &st) != 0)
      continue;
    /* A FIFO or a device there would block or take SQLite's writes. */
    if (!S_ISREG(st.st_mode)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "%s is not a regular file: refreshing development would open it (nothing "
                  "was changed; remove it, `rm %s`, and run refresh-dev again)",
                  p, p);
      return FALSE;
    }
    /* Production's file by another name, or through a bind mount. */
    is_prod = lstat(pp, &pst) == 0 && pst.st_ino == st.st_ino && pst.st_dev == st.st_dev;
    if (!is_prod && st.st_nlink <= 1)
      continue;
    what = is_prod ? g_strdup_printf("the same file as production's %s", pp)
                   : g_strdup_printf("a hard link, one of %lu names of a file that may be "
                                     "production's or a backup's",
                                     (unsigned long)st.st_nlink);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "%s is %s: refreshing development would write into it (nothing "
                "was changed; remove this name, `rm %s`, and run refresh-dev again)",
                p, what, p);
    return FALSE;
  }
  return TRUE;
}

/* Make development's files (db, -wal, -shm, -journal) no more readable
 * than @mode: it now holds production's data, and a journal left by a
 * connection in PERSIST or TRUNCATE mode is written again with its pages.
 * Never through a symlink. */
static gboolean
tighten_dev_mode(const char *dev, int mode, GError **error)
{
  for (gsize i = 0; i < SQLENVFS_N_DB_FILES; i++) {
    g_autofree char *p = side_path(dev, sqlenvfs_db_files[i]);
    if (!narrow_file(p, mode, error))
      return FALSE;
  }
  return TRUE;
}

/* Made by root, the file or directory @path (new: made here) gets
 * production's (@prod) owner and group: the application that uses
 * production uses development too, and what root owns with production's
 * mode would shut it out. */
static gboolean
give_production_owner(const char *path, const char *prod, GError **error)
{
  struct stat pst;
  int fd;
  gboolean ok;
  if (geteuid() != 0 || stat(prod, &pst) != 0)
    return TRUE;
  fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open", path);
  ok = fchown(fd, pst.st_uid, pst.st_gid) == 0;
  if (!ok)
    sqlenvfs_error_errno(error, errno, "give production's owner to", path);
  close(fd);
  return ok;
}

/* Create the new, empty development database file @dev with @mode (so that
 * SQLite, which would create it with 0644 less the umask, finds it), with
 * production's (@prod) owner when made by root (an existing development
 * database keeps its own). */
static gboolean
create_dev_file(const char *dev, const char *prod, int mode, GError **error)
{
  int fd = open(dev, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return errno == EEXIST ? TRUE : sqlenvfs_error_errno(error, errno, "create", dev);
  if (!give_production_owner(dev, prod, error)) {
    close(fd);
    return FALSE;
  }
  if (fchmod(fd, (mode_t)sqlenvfs_group_mode(fd, mode & 0666)) != 0) {
    int errsv = errno;
    close(fd);
    return sqlenvfs_error_errno(error, errsv, "set the mode of", dev);
  }
  close(fd);
  return TRUE;
}

gboolean
sqlenvfs_env_refresh_dev_from_image(SqlenvfsRoot *root, const char *db, SqlenvfsImage *img,
                                    const char *source_desc, GDestroyNotify read_done,
                                    gpointer read_done_data, SqlenvfsProgressFunc progress,
                                    gpointer user, GError **error)
{
  const char *dev_dir = sqlenvfs_root_path(root, SQLENVFS_DIR_DEV);
  g_autofree char *dev = sqlenvfs_root_dev_db(root, db);
  g_autofree char *prod = sqlenvfs_root_prod_db(root, db);
  g_autofree char *tmp = NULL, *prefix = NULL, *env = NULL;
  g_autoptr(sqlite3) live = NULL;
  int data_mode = sqlenvfs_root_data_mode(root, db);
  gboolean ok = FALSE;
  int lock, tracked = -1;

  gboolean dir_is_new = !g_file_test(dev_dir, G_FILE_TEST_EXISTS);

  g_return_val_if_fail(sqlenvfs_db_name_is_valid(db), FALSE);
  if (!sqlenvfs_root_refuse_links(root, SQLENVFS_DIR_DEV, "write development", error) ||
      !sqlenvfs_mkdir_p(dev_dir, sqlenvfs_mode_dir(data_mode), error) ||
      (dir_is_new && !give_production_owner(dev_dir, prod, error)) ||
      !refuse_dev_links(dev, prod, error))
    return FALSE;
  lock = sqlenvfs_root_lock(root, "refresh-dev", TRUE, error);
  if (lock < 0)
    return FALSE;
  prefix = g_strdup_printf(".tmp-refresh-%s-", db);
  if (sqlenvfs_tmp_leftovers(dev_dir, prefix, FALSE, TRUE, NULL, error) < 0)
    goto out;
  /* The copy aside, then as much again into development as it is
   * installed (its WAL or its journal): never production's room (root.h). */
  if (!sqlenvfs_root_check_room(root, dev_dir, 2 * sqlenvfs_image_size(img),
                                "the new development database and its copy aside", error))
    goto out;
  tmp = g_strdup_printf("%s/.tmp-refresh-%s-%d", dev_dir, db, (int)getpid());
  /* This process's name, created (or a leftover of it replaced) just
   * below: an interrupted command line removes it (util.h). */
  tracked = sqlenvfs_tmp_track(tmp, FALSE);

  /* 1. The new state, written aside with production's mode and
   *    integrity-checked (copy.h); what it was read from is let go before
   *    anything waits on development (its locks). */
  if (!sqlenvfs_copy_image_aside(img, tmp, data_mode, progress, user, error))
    goto out;
  if (read_done != NULL)
    read_done(read_done_data);
  img = NULL; /* (it may be gone with what it read) */
  /* 2. Marked development, in its own file, and checked again. */
  {
    g_autoptr(sqlite3) t = sqlenvfs_db_open(tmp, 0, error);
    g_autofree char *mode = NULL;
    if (t == NULL ||
        !sqlenvfs_db_query_text(t, "PRAGMA journal_mode=DELETE", &mode, tmp, error) ||
        !sqlenvfs_env_mark(t, SQLENVFS_ENV_DEVELOPMENT, tmp, error) ||
        !sqlenvfs_db_check(t, TRUE, tmp, error) || !close_db(g_steal_pointer(&t), tmp, error))
      goto out;
  }
  /* 3. Installed into the live development database in one transaction,
   *    which is first made no more readable than production. */
  {
    gboolean is_new = !g_file_test(dev, G_FILE_TEST_EXISTS);
    /* Before SQLite opens it and makes its -wal and -shm, which a database
     * it cannot write would leave behind. */
    if (!is_new && access(dev, W_OK) != 0) {
      sqlenvfs_error_errno(error, errno, "install new development database into", dev);
      goto out;
    }
    if (!refuse_dev_links(dev, prod, error) ||
        (is_new && !create_dev_file(dev, prod, data_mode, error)) ||
        !tighten_dev_mode(dev, data_mode, error))
      goto out;
    live = sqlenvfs_db_open(dev, SQLENVFS_OPEN_CREATE, error);
    if (live == NULL)
      goto out;
    if (is_new && !set_wal(live, dev, error))
      goto out;
    if (!install_into(live, dev, tmp, error))
      goto out;
  }
  /* 4. What a reader now sees is development. */
  if (!sqlenvfs_env_read(live, &env, dev, error))
    goto out;
  if (g_strcmp0(env, SQLENVFS_ENV_DEVELOPMENT) != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s reads as '%s' after the refresh, not development", dev,
                env ? env : "unmarked");
    goto out;
  }
  g_info("refresh-dev: %s now holds %s", dev, source_desc ? source_desc : "the new state");
  ok = TRUE;

out:
  if (tmp != NULL) {
    unlink_db_files(tmp);
    /* Its removal durable too: a copy of production must not come back
     * after a power cut (best effort; the next run removes it anyway). */
    sqlenvfs_fsync_dir(dev_dir, NULL);
  }
  sqlenvfs_tmp_untrack(tracked);
  sqlenvfs_root_unlock(lock);
  return ok;
}

/* Let go of the pinned view *@p (read_done of refresh_dev_from_image). */
static void
release_view(gpointer p)
{
  g_clear_pointer((SqlenvfsLiveView **)p, sqlenvfs_live_view_free);
}

gboolean
sqlenvfs_env_refresh_dev(SqlenvfsRoot *root, const char *db, gboolean force,
                         SqlenvfsProgressFunc progress, gpointer user, GError **error)
{
  g_autofree char *name = sqlenvfs_root_resolve_db(root, db, TRUE, error);
  g_autofree char *prod = NULL, *env = NULL, *after = NULL;
  g_autoptr(SqlenvfsLiveView) view = NULL;
  g_autofree char *not_wal = NULL;
  struct stat before_st, after_st;

  if (name == NULL)
    return FALSE;
  prod = sqlenvfs_root_prod_db(root, name);
  if (stat(prod, &before_st) != 0)
    return sqlenvfs_error_errno(error, errno, "read", prod);
  view = sqlenvfs_live_view_open_wal(prod, &not_wal, error);
  /* In rollback-journal mode the pinned state is a shared lock on
   * production, under which the application cannot commit, held for the
   * whole copy: refused, as backup refuses it. */
  if (not_wal != NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "the source %s is in journal mode '%s', not WAL: copying it would hold a lock "
                "that keeps the application's commits out for the whole copy (nothing was "
                "changed; switch it with `PRAGMA journal_mode=WAL`)",
                prod, not_wal);
    return FALSE;
  }
  if (view == NULL)
    return FALSE;
  /* The marker as of the pinned state: the state that will be copied. */
  if (!sqlenvfs_env_read(sqlenvfs_live_view_db(view), &env, prod, error))
    return FALSE;
  if (g_strcmp0(env, SQLENVFS_ENV_PRODUCTION) != 0 && !force) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "the source %s is %s%s%s, not production (nothing was changed; "
                SQLENVFS_FORCE_ADVICE ")",
                prod, env ? "marked '" : "not marked", env ? env : "", env ? "'" : "");
    return FALSE;
  }
  /* Production is pinned only while the copy aside reads it. */
  if (!sqlenvfs_env_refresh_dev_from_image(root, name, sqlenvfs_live_view_image(view), prod,
                                           release_view, &view, progress, user, error))
    return FALSE;

  /* Production unchanged: the same file, with the same marker. */
  {
    g_autoptr(sqlite3) check = open_readonly(prod, error);
    if (check == NULL || !sqlenvfs_env_read(check, &after, prod, error))
      return FALSE;
  }
  if (stat(prod, &after_st) != 0 || after_st.st_ino != before_st.st_ino ||
      after_st.st_dev != before_st.st_dev || g_strcmp0(env, after) != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "production %s changed during the refresh (marker '%s' -> '%s' or "
                "file replaced); development was refreshed, check production with `sqlenvfs info`",
                prod, env ? env : "none", after ? after : "none");
    return FALSE;
  }
  return TRUE;
}
