/* Unit tests for store: entries and their MANIFEST, unique names, modes,
 * verification, retention with the keep hook, the list report. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/env.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/liveview.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/testhooks.h"
#include "sqlenvfs/util.h"

#define T0 G_GINT64_CONSTANT(1764346440000000) /* 2025-11-28T16:14:00Z */
#define DAY (G_GINT64_CONSTANT(86400) * G_USEC_PER_SEC)

static char *tmp;
static SqlenvfsRoot *root;
static char *prod;

static void
write_conf(const char *text)
{
  g_autofree char *conf = g_build_filename(tmp, "sqlenvfs.conf", NULL);
  GError *error = NULL;
  ck_assert(g_file_set_contents(conf, text, -1, NULL));
  g_clear_pointer(&root, sqlenvfs_root_free);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
}

static void
setup(void)
{
  g_autofree char *schema = NULL;
  SqlenvfsInitOptions opts = { 0 };
  GError *error = NULL;
  g_autoptr(sqlite3) db = NULL;

  tmp = testutil_tmpdir();
  g_unsetenv("SQLENVFS_ROOT");
  g_unsetenv(SQLENVFS_TEST_STORE_DELAY_ENV);
  testutil_clock_set(T0);
  schema = g_build_filename(tmp, "schema.sql", NULL);
  ck_assert(g_file_set_contents(schema, "CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT);", -1, NULL));
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  ck_assert(sqlenvfs_env_init(root, &opts, NULL, NULL, &error));
  ck_assert_no_error(error);
  prod = sqlenvfs_root_prod_db(root, "app");
  db = sqlenvfs_db_open(prod, 0, &error);
  ck_assert(sqlenvfs_db_exec(db,
                             "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300)"
                             " INSERT INTO t SELECT i, printf('%0300d', i) FROM c;",
                             prod, &error));
}

static void
teardown(void)
{
  testutil_clock_reset();
  g_clear_pointer(&root, sqlenvfs_root_free);
  g_free(prod);
  testutil_tmpdir_cleanup(tmp);
}

static SqlenvfsStoredCopy *
take(SqlenvfsCopyKind kind)
{
  GError *error = NULL;
  SqlenvfsStoredCopy *copy = sqlenvfs_store_create(root, kind, NULL, NULL, NULL, &error);
  ck_assert_no_error(error);
  ck_assert_ptr_nonnull(copy);
  return copy;
}

/* The MANIFEST holds exactly the WAL position of the copied state. */
START_TEST(test_manifest_round_trip)
{
  g_autoptr(sqlite3) w = NULL;
  g_autoptr(SqlenvfsStoredCopy) copy = NULL, loaded = NULL;
  g_autoptr(SqlenvfsLiveView) view = NULL;
  const SqlenvfsStoredDb *sdb;
  const SqlenvfsWalPos *pos;
  GError *error = NULL;
  guint32 crc = 0;
  goffset size = 0;

  /* Committed frames stay in the WAL while this connection holds it open. */
  w = sqlenvfs_db_open(prod, 0, &error);
  ck_assert(sqlenvfs_db_exec(w, "PRAGMA wal_autocheckpoint=0; INSERT INTO t VALUES (1000, 'x');"
                                "INSERT INTO t VALUES (1001, 'y')",
                             prod, &error));
  copy = take(SQLENVFS_KIND_BACKUP);
  view = sqlenvfs_live_view_open(prod, &error);
  ck_assert_no_error(error);
  pos = sqlenvfs_live_view_pos(view);
  ck_assert_uint_gt(pos->frame, 0);

  ck_assert_str_eq(copy->name, "20251128T161400.000Z");
  ck_assert_int_eq(copy->time, T0);
  ck_assert_uint_eq(copy->dbs->len, 1);
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, copy->name, &error);
  ck_assert_no_error(error);
  sdb = sqlenvfs_stored_copy_find(loaded, "app");
  ck_assert_ptr_nonnull(sdb);
  ck_assert_ptr_null(sqlenvfs_stored_copy_find(loaded, "other"));
  ck_assert_uint_eq(sdb->pos.salt1, pos->salt1);
  ck_assert_uint_eq(sdb->pos.salt2, pos->salt2);
  ck_assert_uint_eq(sdb->pos.frame, pos->frame);
  ck_assert_uint_eq(sdb->pos.cksum1, pos->cksum1);
  ck_assert_uint_eq(sdb->pos.cksum2, pos->cksum2);
  ck_assert_uint_eq(sdb->pos.ckpt_seq, pos->ckpt_seq);
  ck_assert_uint_eq(sdb->pos.page_size, pos->page_size);
  ck_assert_uint_eq(sdb->pos.n_pages, pos->n_pages);
  ck_assert_int_eq(sdb->pos.pinned_at, T0);
  ck_assert_str_eq(sdb->journal_mode, "wal");
  ck_assert(sqlenvfs_file_crc32(sdb->path, &crc, &size, &error));
  ck_assert_uint_eq(crc, sdb->crc32);
  ck_assert_uint_eq((guint64)size, sdb->size);
  ck_assert_uint_eq(sdb->size, (guint64)pos->page_size * pos->n_pages);
  ck_assert(sqlenvfs_store_verify_db(sdb, &error));
  {
    g_autofree char *uri = g_strdup_printf("file:%s?immutable=1", sdb->path);
    g_autoptr(sqlite3) c = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, &error);
    gint64 n = 0;
    ck_assert(sqlenvfs_db_query_int(c, "SELECT count(*) FROM t", &n, uri, &error));
    ck_assert_int_eq(n, 302);
  }
}
END_TEST

static gint
cmp_bytes(gconstpointer a, gconstpointer b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Two runs in the same second get distinct names whose byte order (plain
 * `ls`) is their time order, fractions included. */
START_TEST(test_unique_names)
{
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_SNAPSHOT);
  g_autoptr(SqlenvfsStoredCopy) b = take(SQLENVFS_KIND_SNAPSHOT);
  g_autoptr(SqlenvfsStoredCopy) c = NULL;
  g_autoptr(SqlenvfsStoredCopy) other_kind = take(SQLENVFS_KIND_BACKUP);
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GPtrArray) by_bytes = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GDir) d = NULL;
  const char *ent;
  GError *error = NULL;

  testutil_clock_set(T0 + 400 * 1000 + 7); /* .400007 in the same second */
  c = take(SQLENVFS_KIND_SNAPSHOT);
  ck_assert_str_eq(a->name, "20251128T161400.000Z");
  ck_assert_str_eq(b->name, "20251128T161400.001Z");
  ck_assert_str_eq(c->name, "20251128T161400.400Z");
  ck_assert_str_eq(other_kind->name, "20251128T161400.000Z");

  /* Clock not moving: still unique, after the latest of that second. */
  testutil_clock_set(T0);
  {
    g_autoptr(SqlenvfsStoredCopy) e = take(SQLENVFS_KIND_SNAPSHOT);
    ck_assert_str_eq(e->name, "20251128T161400.401Z");
  }
  /* The next second, and one whose run ends on .999. */
  testutil_clock_set(T0 + G_USEC_PER_SEC - 1);
  {
    g_autoptr(SqlenvfsStoredCopy) e = take(SQLENVFS_KIND_SNAPSHOT);
    ck_assert_str_eq(e->name, "20251128T161400.999Z");
  }
  testutil_clock_set(T0 + G_USEC_PER_SEC);
  {
    g_autoptr(SqlenvfsStoredCopy) e = take(SQLENVFS_KIND_SNAPSHOT);
    ck_assert_str_eq(e->name, "20251128T161401.000Z");
  }
  list = sqlenvfs_store_list(root, SQLENVFS_KIND_SNAPSHOT, &error);
  ck_assert_uint_eq(list->len, 6);
  ck_assert_str_eq(((SqlenvfsStoredCopy *)list->pdata[0])->name, "20251128T161400.000Z");
  ck_assert_str_eq(((SqlenvfsStoredCopy *)list->pdata[1])->name, "20251128T161400.001Z");
  ck_assert_str_eq(((SqlenvfsStoredCopy *)list->pdata[3])->name, "20251128T161400.401Z");
  ck_assert_str_eq(((SqlenvfsStoredCopy *)list->pdata[5])->name, "20251128T161401.000Z");

  /* What `ls | tail -1` does: sort the directory by bytes. The order is the
   * time order, and the last is the newest. */
  d = g_dir_open(sqlenvfs_store_dir(root, SQLENVFS_KIND_SNAPSHOT), 0, NULL);
  while ((ent = g_dir_read_name(d)) != NULL)
    g_ptr_array_add(by_bytes, g_strdup(ent));
  g_ptr_array_sort(by_bytes, cmp_bytes);
  ck_assert_uint_eq(by_bytes->len, list->len);
  for (guint i = 0; i < list->len; i++)
    ck_assert_str_eq(by_bytes->pdata[i], ((SqlenvfsStoredCopy *)list->pdata[i])->name);
}
END_TEST

/* Rewrite the [sqlenvfs-copy] @key of @copy's MANIFEST to @value (NULL:
 * remove it), sealed again, as a version that wrote it so would have. */
static void
rewrite_manifest(const SqlenvfsStoredCopy *copy, const char *key, const char *value)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autofree char *manifest = g_build_filename(copy->dir, "MANIFEST", NULL);
  g_autofree char *data = NULL;

  ck_assert(g_key_file_load_from_file(kf, manifest, G_KEY_FILE_NONE, NULL));
  if (value != NULL)
    g_key_file_set_value(kf, "sqlenvfs-copy", key, value);
  else
    ck_assert(g_key_file_remove_key(kf, "sqlenvfs-copy", key, NULL));
  sqlenvfs_store_manifest_seal(kf);
  data = g_key_file_to_data(kf, NULL, NULL);
  ck_assert(g_file_set_contents(manifest, data, -1, NULL));
}

/* An entry named by an earlier version (no fraction) still loads, and a run
 * in the same second is named after it in time. */
START_TEST(test_old_names_readable)
{
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_BACKUP);
  g_autofree char *old = g_build_filename(sqlenvfs_store_dir(root, SQLENVFS_KIND_BACKUP),
                                          "20251128T161400Z", NULL);
  g_autoptr(SqlenvfsStoredCopy) loaded = NULL;
  g_autoptr(SqlenvfsStoredCopy) b = NULL;
  GError *error = NULL;

  rewrite_manifest(a, "name", "20251128T161400Z");
  ck_assert_int_eq(rename(a->dir, old), 0);
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, "20251128T161400Z", &error);
  ck_assert_no_error(error);
  ck_assert_int_eq(loaded->time, T0);
  b = take(SQLENVFS_KIND_BACKUP);
  ck_assert_str_eq(b->name, "20251128T161400.001Z");
}
END_TEST

/* A MANIFEST is its own entry's only: a directory renamed to another
 * time, or holding another kind's MANIFEST, does not load; one without a
 * name (none is written so) is placed by its creation time. */
START_TEST(test_misnamed_entry_unreadable)
{
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_BACKUP);
  const char *dir = sqlenvfs_store_dir(root, SQLENVFS_KIND_BACKUP);
  g_autofree char *early = g_build_filename(dir, "20251127T161400.000Z", NULL);
  g_autofree char *near = g_build_filename(dir, "20251128T161400.500Z", NULL);
  g_autoptr(SqlenvfsStoredCopy) loaded = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GPtrArray) bad = g_ptr_array_new_with_free_func(g_free);
  GError *error = NULL;

  ck_assert_str_eq(a->name, "20251128T161400.000Z");
  ck_assert_int_eq(rename(a->dir, early), 0);
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, "20251127T161400.000Z", &error);
  ck_assert_ptr_null(loaded);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert_msg(strstr(error->message, "written for the backup named 20251128T161400.000Z, not "
                                       "20251127T161400.000Z") != NULL,
                "%s", error->message);
  g_clear_error(&error);
  list = sqlenvfs_store_list_checked(root, SQLENVFS_KIND_BACKUP, bad, NULL, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(list->len, 0);
  ck_assert_uint_eq(bad->len, 1);

  /* Without a name, its creation time places it: a day off is refused,
   * half a second (a later millisecond of its second) is not. */
  ck_assert_int_eq(rename(early, a->dir), 0);
  rewrite_manifest(a, "name", NULL);
  ck_assert_int_eq(rename(a->dir, early), 0);
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, "20251127T161400.000Z", &error);
  ck_assert_ptr_null(loaded);
  ck_assert_msg(strstr(error->message, "it was made at 2025-11-28T16:14:00") != NULL, "%s",
                error->message);
  g_clear_error(&error);
  ck_assert_int_eq(rename(early, near), 0);
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, "20251128T161400.500Z", &error);
  ck_assert_no_error(error);
  g_clear_pointer(&loaded, sqlenvfs_stored_copy_free);
  ck_assert_int_eq(rename(near, a->dir), 0);

  /* A snapshot's MANIFEST among the backups. */
  rewrite_manifest(a, "kind", "snapshot");
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, a->name, &error);
  ck_assert_ptr_null(loaded);
  ck_assert_msg(strstr(error->message, "written for a snapshot, not a backup") != NULL, "%s",
                error->message);
  g_clear_error(&error);
}
END_TEST

static int
mode_of(const char *path)
{
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  return st.st_mode & 07777;
}

START_TEST(test_mode_never_wider_than_source)
{
  g_autoptr(SqlenvfsStoredCopy) copy = NULL;
  g_autofree char *manifest = NULL;
  ck_assert_int_eq(chmod(prod, 0600), 0);
  copy = take(SQLENVFS_KIND_BACKUP);
  manifest = g_build_filename(copy->dir, "MANIFEST", NULL);
  ck_assert_int_eq(mode_of(((SqlenvfsStoredDb *)copy->dbs->pdata[0])->path) & 0077, 0);
  ck_assert_int_eq(mode_of(manifest) & 0077, 0);
}
END_TEST

START_TEST(test_refuses_non_wal_and_leaves_nothing)
{
  GError *error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  {
    g_autoptr(sqlite3) db = sqlenvfs_db_open(prod, 0, &error);
    ck_assert(sqlenvfs_db_exec(db, "PRAGMA journal_mode=DELETE", prod, &error));
  }
  ck_assert_ptr_null(sqlenvfs_store_create(root, SQLENVFS_KIND_BACKUP, NULL, NULL, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert(strstr(error->message, "PRAGMA journal_mode=WAL") != NULL);
  ck_assert(strstr(error->message, prod) != NULL);
  g_clear_error(&error);
  list = sqlenvfs_store_list(root, SQLENVFS_KIND_BACKUP, &error);
  ck_assert_uint_eq(list->len, 0);

  ck_assert_ptr_null(sqlenvfs_store_create(root, SQLENVFS_KIND_BACKUP, "nope", NULL, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_NOT_FOUND);
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
  c ^= 0xff;
  ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
  close(fd);
}

START_TEST(test_verify_all)
{
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_BACKUP);
  g_autoptr(SqlenvfsStoredCopy) b = NULL, c = NULL;
  g_autoptr(SqlenvfsVerifyReport) report = sqlenvfs_verify_report_new();
  g_autofree char *manifest = NULL;
  const SqlenvfsCheck *chk;
  GError *error = NULL;

  testutil_clock_set(T0 + G_USEC_PER_SEC);
  b = take(SQLENVFS_KIND_BACKUP);
  testutil_clock_set(T0 + 2 * G_USEC_PER_SEC);
  c = take(SQLENVFS_KIND_SNAPSHOT);
  flip_byte(((SqlenvfsStoredDb *)b->dbs->pdata[0])->path, 5000);
  manifest = g_build_filename(c->dir, "MANIFEST", NULL);
  ck_assert(g_file_set_contents(manifest, "[sqlenvfs-copy]\nformat=1\n", -1, NULL));

  ck_assert(sqlenvfs_store_verify_all(root, report, &error));
  ck_assert_uint_eq(report->checks->len, 3);
  ck_assert_uint_eq(sqlenvfs_verify_report_n_bad(report), 2);
  chk = report->checks->pdata[0];
  ck_assert(chk->ok);
  ck_assert_str_eq(chk->kind, "backup");
  ck_assert_str_eq(chk->name, a->name);
  ck_assert_str_eq(chk->db, "app");
  chk = report->checks->pdata[1];
  ck_assert(!chk->ok);
  ck_assert_str_eq(chk->name, b->name);
  ck_assert(strstr(chk->reason, "crc32") != NULL);
  ck_assert(strstr(chk->reason, chk->path) != NULL);
  chk = report->checks->pdata[2];
  ck_assert(!chk->ok);
  ck_assert_str_eq(chk->kind, "snapshot");
  ck_assert_ptr_null(chk->db);
  ck_assert(strstr(chk->reason, "MANIFEST") != NULL);

  /* Others append their own lines to the same report. */
  sqlenvfs_verify_report_add(report, "wal-archive", NULL, "app", "/x", FALSE, "gap");
  ck_assert_uint_eq(sqlenvfs_verify_report_n_bad(report), 3);
}
END_TEST

/* A MANIFEST that lists a database twice is damaged (it used to load, with
 * the database twice in the entry). */
START_TEST(test_manifest_lists_db_twice)
{
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_BACKUP);
  g_autoptr(SqlenvfsStoredCopy) loaded = NULL;
  g_autofree char *manifest = g_build_filename(a->dir, "MANIFEST", NULL);
  g_autofree char *text = NULL;
  g_autoptr(GString) twice = NULL;
  GError *error = NULL;

  ck_assert(g_file_get_contents(manifest, &text, NULL, NULL));
  twice = g_string_new(text);
  ck_assert_uint_eq(g_string_replace(twice, "databases=app;", "databases=app;app;", 1), 1);
  ck_assert(g_file_set_contents(manifest, twice->str, -1, NULL));
  /* Its own checksum catches the change first: seal it again with the sum
   * the error names, as a writer with that bug would have written it. */
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, a->name, &error);
  ck_assert_ptr_null(loaded);
  {
    const char *give = strstr(error->message, "its contents give 0x");
    char *line;
    ck_assert_msg(give != NULL, "%s", error->message);
    line = strstr(twice->str, "\nchecksum=0x");
    ck_assert(line != NULL);
    memcpy(line + strlen("\nchecksum="), give + strlen("its contents give "), 10);
    g_clear_error(&error);
  }
  ck_assert(g_file_set_contents(manifest, twice->str, -1, NULL));
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, a->name, &error);
  ck_assert_ptr_null(loaded);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert_msg(strstr(error->message, "listed twice") != NULL, "%s", error->message);
  ck_assert(strstr(error->message, manifest) != NULL);
  g_clear_error(&error);
}
END_TEST

/* A byte flipped inside a page that the crc32 would catch is also caught
 * by the integrity check when the MANIFEST is rewritten to match. */
START_TEST(test_verify_db_integrity_after_crc)
{
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_BACKUP);
  SqlenvfsStoredDb *sdb = a->dbs->pdata[0];
  GError *error = NULL;
  goffset size;
  /* Damage the b-tree page header of the last page. */
  flip_byte(sdb->path, (goffset)sdb->size - sdb->pos.page_size + 0);
  ck_assert(sqlenvfs_file_crc32(sdb->path, &sdb->crc32, &size, &error));
  ck_assert(!sqlenvfs_store_verify_db(sdb, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, sdb->path) != NULL);
  g_clear_error(&error);
}
END_TEST

/* A base is checked against its MANIFEST before use, the verdict is
 * remembered while the file is unchanged, and a change is seen. */
START_TEST(test_check_base)
{
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_BACKUP);
  SqlenvfsStoredDb *sdb = a->dbs->pdata[0];
  SqlenvfsFileId id1, id2;
  GError *error = NULL;
  guint64 before;
  int fd = open(sdb->path, O_RDONLY);

  ck_assert_int_ge(fd, 0);
  ck_assert(sdb->size > 64 * 1024);
  ck_assert(sqlenvfs_store_check_base(sdb, fd, &id1, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(id1.size, sdb->size);
  /* Unchanged: remembered, not read again. */
  before = testutil_bytes_read();
  ck_assert(sqlenvfs_store_check_base(sdb, fd, &id2, &error));
  ck_assert(sqlenvfs_file_id_equal(&id1, &id2));
  ck_assert_uint_lt(testutil_bytes_read() - before, 4096);

  /* One byte of a row's payload: the crc32 catches it, naming the file. */
  flip_byte(sdb->path, (goffset)sdb->size - 100);
  ck_assert(!sqlenvfs_store_check_base(sdb, fd, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, sdb->path) != NULL);
  ck_assert(strstr(error->message, "crc32") != NULL);
  g_clear_error(&error);
  /* Put back: the file changed again, so it is read again, and is good. */
  flip_byte(sdb->path, (goffset)sdb->size - 100);
  ck_assert(sqlenvfs_store_check_base(sdb, fd, NULL, &error));
  ck_assert_no_error(error);

  /* A MANIFEST whose fields disagree with each other or with the file. */
  {
    SqlenvfsStoredDb lie = *sdb;
    lie.pos.n_pages = sdb->pos.n_pages + 1;
    ck_assert(!sqlenvfs_store_check_base(&lie, fd, NULL, &error));
    ck_assert(strstr(error->message, "page-count") != NULL);
    g_clear_error(&error);
    lie.size = (guint64)lie.pos.page_size * lie.pos.n_pages;
    ck_assert(!sqlenvfs_store_check_base(&lie, fd, NULL, &error));
    ck_assert(strstr(error->message, "bytes, the MANIFEST says") != NULL);
    g_clear_error(&error);
    lie = *sdb;
    lie.pos.page_size = sdb->pos.page_size * 2;
    lie.pos.n_pages = sdb->pos.n_pages / 2;
    lie.size = (guint64)lie.pos.page_size * lie.pos.n_pages;
    if (lie.size == sdb->size) {
      ck_assert(!sqlenvfs_store_check_base(&lie, fd, NULL, &error));
      ck_assert(strstr(error->message, "in its SQLite header") != NULL);
      g_clear_error(&error);
    }
  }
  close(fd);
}
END_TEST

/* Rewrite @file with @key set to @value in @group (the checksum untouched). */
static void
manifest_set(const char *file, const char *group, const char *key, const char *value)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autofree char *data = NULL;
  ck_assert(g_key_file_load_from_file(kf, file, G_KEY_FILE_KEEP_COMMENTS, NULL));
  if (value)
    g_key_file_set_value(kf, group, key, value);
  else
    g_key_file_remove_key(kf, group, key, NULL);
  data = g_key_file_to_data(kf, NULL, NULL);
  ck_assert(g_file_set_contents(file, data, -1, NULL));
}

/* The MANIFEST carries its own checksum: a changed WAL position makes the
 * entry unreadable (named, never believed); a format-1 MANIFEST (no
 * checksum) is still read, its fields are still checked against the copy,
 * and verify reports it as unprotected. */
START_TEST(test_manifest_checksum)
{
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_BACKUP);
  g_autoptr(SqlenvfsStoredCopy) b = NULL, loaded = NULL;
  g_autoptr(GPtrArray) unreadable = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(SqlenvfsVerifyReport) report = sqlenvfs_verify_report_new();
  g_autofree char *ma = g_build_filename(a->dir, "MANIFEST", NULL);
  g_autofree char *mb = NULL;
  g_autofree char *text = NULL;
  GError *error = NULL;
  guint n_unprotected = 0, n_bad_db = 0;

  ck_assert(a->is_protected);
  ck_assert(g_file_get_contents(ma, &text, NULL, NULL));
  ck_assert(strstr(text, "format=2\n") != NULL);
  ck_assert(strstr(text, "checksum=0x") != NULL);
  testutil_clock_set(T0 + G_USEC_PER_SEC);
  b = take(SQLENVFS_KIND_BACKUP);
  mb = g_build_filename(b->dir, "MANIFEST", NULL);

  /* A changed WAL position (this copy was pinned with an empty WAL). */
  ck_assert_uint_eq(((SqlenvfsStoredDb *)a->dbs->pdata[0])->pos.frame, 0);
  manifest_set(ma, "db app", "wal-frame", "7");
  ck_assert(sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, a->name, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, ma) != NULL);
  ck_assert(strstr(error->message, "checksum") != NULL);
  g_clear_error(&error);
  list = sqlenvfs_store_list_checked(root, SQLENVFS_KIND_BACKUP, unreadable, NULL, &error);
  ck_assert_uint_eq(list->len, 1);
  ck_assert_str_eq(((SqlenvfsStoredCopy *)list->pdata[0])->name, b->name);
  ck_assert_uint_eq(unreadable->len, 1);
  ck_assert(strstr(unreadable->pdata[0], a->name) != NULL);
  ck_assert(strstr(unreadable->pdata[0], "checksum") != NULL);

  /* Format 1 with the checksum kept (a format 2 MANIFEST edited to say 1):
   * the checksum is still checked, so the edit is damage, not a way to
   * drop the protection. */
  manifest_set(mb, "sqlenvfs-copy", "format", "1");
  ck_assert(sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, b->name, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, "checksum") != NULL);
  g_clear_error(&error);

  /* Format 1, no checksum, a page count that disagrees with the size. */
  manifest_set(mb, "sqlenvfs-copy", "checksum", NULL);
  manifest_set(mb, "sqlenvfs-copy", "format", "1");
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, b->name, &error);
  ck_assert_no_error(error);
  ck_assert(!loaded->is_protected);
  manifest_set(mb, "db app", "page-count", "1");

  ck_assert(sqlenvfs_store_verify_all(root, report, &error));
  for (guint i = 0; i < report->checks->len; i++) {
    const SqlenvfsCheck *c = report->checks->pdata[i];
    if (g_strcmp0(c->name, b->name) != 0)
      continue;
    ck_assert(!c->ok);
    if (c->db == NULL && strstr(c->reason, "unprotected") != NULL) {
      ck_assert_str_eq(c->path, mb);
      n_unprotected++;
    } else if (c->db != NULL && strstr(c->reason, "page-count") != NULL) {
      n_bad_db++;
    }
  }
  ck_assert_uint_eq(n_unprotected, 1);
  ck_assert_uint_eq(n_bad_db, 1);
}
END_TEST

/* Sealing a MANIFEST gives it the checksum the writer would: a changed
 * value, sealed again, loads and is believed; a key file without the
 * [sqlenvfs-copy] group gets one, and the sum covers its header line. */
START_TEST(test_manifest_seal)
{
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_BACKUP);
  g_autoptr(SqlenvfsStoredCopy) loaded = NULL;
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GKeyFile) bare = g_key_file_new();
  g_autoptr(GKeyFile) again = g_key_file_new();
  g_autofree char *manifest = g_build_filename(a->dir, "MANIFEST", NULL);
  g_autofree char *before = NULL, *data = NULL, *value = NULL, *bare_data = NULL;
  guint32 sum;
  GError *error = NULL;

  /* Sealing what the writer sealed changes nothing. */
  ck_assert(g_file_get_contents(manifest, &before, NULL, NULL));
  ck_assert(g_key_file_load_from_data(kf, before, -1, G_KEY_FILE_NONE, NULL));
  value = g_key_file_get_value(kf, "sqlenvfs-copy", "checksum", NULL);
  sum = sqlenvfs_store_manifest_seal(kf);
  {
    g_autofree char *text = g_strdup_printf("0x%08x", sum);
    ck_assert_str_eq(value, text);
  }

  /* A changed WAL position, sealed again, is what the MANIFEST says. */
  g_key_file_set_value(kf, "db app", "wal-frame", "7");
  ck_assert_uint_ne(sqlenvfs_store_manifest_seal(kf), sum);
  data = g_key_file_to_data(kf, NULL, NULL);
  ck_assert(g_file_set_contents(manifest, data, -1, NULL));
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, a->name, &error);
  ck_assert_no_error(error);
  ck_assert(loaded->is_protected);
  ck_assert_uint_eq(((SqlenvfsStoredDb *)loaded->dbs->pdata[0])->pos.frame, 7);

  /* No [sqlenvfs-copy] group yet: the seal adds it and covers it, so the
   * key file read back seals to the same sum. */
  g_key_file_set_value(bare, "db app", "size", "1024");
  sum = sqlenvfs_store_manifest_seal(bare);
  bare_data = g_key_file_to_data(bare, NULL, NULL);
  ck_assert(g_key_file_load_from_data(again, bare_data, -1, G_KEY_FILE_NONE, NULL));
  ck_assert_uint_eq(sqlenvfs_store_manifest_seal(again), sum);
}
END_TEST

/* The checksum covers the values as read: a MANIFEST whose lines end in
 * CRLF (copied through a tool that converts line ends) still matches, and
 * a carriage return that ends a value is not part of it, so a value sealed
 * with one does not match once written and read back. */
START_TEST(test_manifest_checksum_line_ends)
{
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_BACKUP);
  g_autoptr(SqlenvfsStoredCopy) loaded = NULL;
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autofree char *manifest = g_build_filename(a->dir, "MANIFEST", NULL);
  g_autofree char *text = NULL, *data = NULL;
  g_autoptr(GString) crlf = NULL;
  GError *error = NULL;

  ck_assert(g_file_get_contents(manifest, &text, NULL, NULL));
  crlf = g_string_new(text);
  ck_assert_uint_gt(g_string_replace(crlf, "\n", "\r\n", 0), 10);
  ck_assert(g_file_set_contents(manifest, crlf->str, -1, NULL));
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, a->name, &error);
  ck_assert_no_error(error);
  ck_assert(loaded->is_protected);
  g_clear_pointer(&loaded, sqlenvfs_stored_copy_free);

  ck_assert(g_key_file_load_from_data(kf, text, -1, G_KEY_FILE_NONE, NULL));
  g_key_file_set_value(kf, "db app", "journal-mode", "wal\r");
  sqlenvfs_store_manifest_seal(kf);
  data = g_key_file_to_data(kf, NULL, NULL);
  ck_assert(g_file_set_contents(manifest, data, -1, NULL));
  loaded = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, a->name, &error);
  ck_assert_ptr_null(loaded);
  ck_assert_msg(strstr(error->message, "its checksum is") != NULL, "%s", error->message);
  g_clear_error(&error);
}
END_TEST

typedef struct {
  const char *keep_name;
  int n_calls;
} KeepCtx;

static gboolean
keep_one(const SqlenvfsStoredCopy *copy, gpointer user, char **why)
{
  KeepCtx *ctx = user;
  ctx->n_calls++;
  if (g_strcmp0(copy->name, ctx->keep_name) == 0) {
    *why = g_strdup("base of a retained window");
    return TRUE;
  }
  return FALSE;
}

static const SqlenvfsPruneItem *
item_named(GPtrArray *items, SqlenvfsCopyKind kind, const char *name)
{
  for (guint i = 0; i < items->len; i++) {
    const SqlenvfsPruneItem *it = items->pdata[i];
    if (it->kind == kind && g_str_equal(it->name, name))
      return it;
  }
  ck_abort_msg("no prune item %s", name);
  return NULL;
}

START_TEST(test_prune_days_hook_and_newest_valid)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) items = NULL, dry = NULL, left = NULL;
  KeepCtx ctx = { NULL, 0 };
  GError *error = NULL;

  /* Backups on days 0..4; snapshots on day 0 only. */
  for (int d = 0; d < 5; d++) {
    g_autoptr(SqlenvfsStoredCopy) c = NULL;
    testutil_clock_set(T0 + d * DAY);
    c = take(SQLENVFS_KIND_BACKUP);
    g_ptr_array_add(names, g_strdup(c->name));
  }
  testutil_clock_set(T0);
  {
    g_autoptr(SqlenvfsStoredCopy) s = take(SQLENVFS_KIND_SNAPSHOT);
  }
  /* The newest backup is damaged: the newest valid one is day 3's. */
  {
    g_autoptr(SqlenvfsStoredCopy) newest =
      sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, names->pdata[4], &error);
    flip_byte(((SqlenvfsStoredDb *)newest->dbs->pdata[0])->path, 100);
  }
  write_conf("[retention]\ndaily-keep-days=2\nsnapshot-keep-days=2\n");
  /* Day 20: everything is older than 2 days. */
  testutil_clock_set(T0 + 20 * DAY);
  ctx.keep_name = names->pdata[1];

  dry = sqlenvfs_store_prune(root, TRUE, keep_one, &ctx, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(dry->len, 6);
  left = sqlenvfs_store_list(root, SQLENVFS_KIND_BACKUP, &error);
  ck_assert_uint_eq(left->len, 5); /* dry run removed nothing */
  g_clear_pointer(&left, g_ptr_array_unref);

  items = sqlenvfs_store_prune(root, FALSE, keep_one, &ctx, &error);
  ck_assert_no_error(error);
  ck_assert(item_named(items, SQLENVFS_KIND_BACKUP, names->pdata[0])->remove);
  ck_assert(!item_named(items, SQLENVFS_KIND_BACKUP, names->pdata[1])->remove);
  ck_assert(strstr(item_named(items, SQLENVFS_KIND_BACKUP, names->pdata[1])->reason,
                   "retained window") != NULL);
  ck_assert(item_named(items, SQLENVFS_KIND_BACKUP, names->pdata[2])->remove);
  ck_assert(!item_named(items, SQLENVFS_KIND_BACKUP, names->pdata[3])->remove);
  ck_assert(strstr(item_named(items, SQLENVFS_KIND_BACKUP, names->pdata[3])->reason,
                   "newest valid") != NULL);
  ck_assert(item_named(items, SQLENVFS_KIND_BACKUP, names->pdata[4])->remove);
  /* The only snapshot is the newest valid one of its kind. */
  ck_assert(!item_named(items, SQLENVFS_KIND_SNAPSHOT, "20251128T161400.000Z")->remove);

  left = sqlenvfs_store_list(root, SQLENVFS_KIND_BACKUP, &error);
  ck_assert_uint_eq(left->len, 2);
  ck_assert_str_eq(((SqlenvfsStoredCopy *)left->pdata[0])->name, names->pdata[1]);
  ck_assert_str_eq(((SqlenvfsStoredCopy *)left->pdata[1])->name, names->pdata[3]);
  {
    /* Nothing of the removed entries is left, not even a temporary. */
    g_autoptr(GDir) d = g_dir_open(sqlenvfs_store_dir(root, SQLENVFS_KIND_BACKUP), 0, NULL);
    int n = 0;
    while (g_dir_read_name(d))
      n++;
    ck_assert_int_eq(n, 2);
  }
}
END_TEST

START_TEST(test_prune_count)
{
  g_autoptr(GPtrArray) items = NULL, left = NULL;
  GError *error = NULL;
  for (int i = 0; i < 4; i++) {
    g_autoptr(SqlenvfsStoredCopy) c = NULL;
    testutil_clock_set(T0 + i * G_USEC_PER_SEC);
    c = take(SQLENVFS_KIND_BACKUP);
  }
  write_conf("[retention]\ndaily-keep-days=0\ndaily-keep-count=2\n");
  items = sqlenvfs_store_prune(root, FALSE, NULL, NULL, &error);
  ck_assert_no_error(error);
  left = sqlenvfs_store_list(root, SQLENVFS_KIND_BACKUP, &error);
  ck_assert_uint_eq(left->len, 2);
  ck_assert_str_eq(((SqlenvfsStoredCopy *)left->pdata[0])->name, "20251128T161402.000Z");
  ck_assert_str_eq(((SqlenvfsStoredCopy *)left->pdata[1])->name, "20251128T161403.000Z");
}
END_TEST

START_TEST(test_list_report)
{
  g_autoptr(SqlenvfsListReport) report = NULL;
  g_autoptr(SqlenvfsStoredCopy) a = take(SQLENVFS_KIND_BACKUP);
  g_autoptr(SqlenvfsStoredCopy) b = take(SQLENVFS_KIND_SNAPSHOT);
  GError *error = NULL;

  report = sqlenvfs_store_list_report(root, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(report->backups->len, 1);
  ck_assert_uint_eq(report->snapshots->len, 1);
  ck_assert_uint_eq(report->windows->len, 0);
  sqlenvfs_list_report_add_window(report, "app", T0, T0 + 1, NULL);
  ck_assert_uint_eq(report->windows->len, 1);
  ck_assert_str_eq(((SqlenvfsListWindow *)report->windows->pdata[0])->db, "app");
}
END_TEST

/* A copy whose MANIFEST does not parse is left out of the backups and
 * listed as damaged: its MANIFEST, and why on one printable line that does
 * not repeat the path, nor the file's text. */
START_TEST(test_list_report_damaged)
{
  g_autoptr(SqlenvfsListReport) report = NULL;
  g_autoptr(SqlenvfsStoredCopy) a = NULL, b = NULL;
  g_autofree char *manifest = NULL;
  const SqlenvfsDamagedCopy *d;
  GError *error = NULL;
  static const char garbage[] = "[sqlenvfs-copy]\n\x01\x1b[31m\xff\xfe no key here\n";

  testutil_clock_set(T0);
  a = take(SQLENVFS_KIND_BACKUP);
  testutil_clock_set(T0 + G_USEC_PER_SEC);
  b = take(SQLENVFS_KIND_BACKUP);
  manifest = g_build_filename(b->dir, "MANIFEST", NULL);
  ck_assert(g_file_set_contents(manifest, garbage, sizeof garbage - 1, NULL));

  report = sqlenvfs_store_list_report(root, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(report->backups->len, 1);
  ck_assert_str_eq(((SqlenvfsStoredCopy *)report->backups->pdata[0])->name, a->name);
  ck_assert_uint_eq(report->damaged->len, 1);
  d = report->damaged->pdata[0];
  ck_assert_int_eq(d->kind, SQLENVFS_KIND_BACKUP);
  ck_assert_str_eq(d->name, b->name);
  ck_assert_int_eq(d->time, b->time);
  ck_assert_str_eq(d->dir, b->dir);
  ck_assert_str_eq(d->manifest, manifest);
  ck_assert_ptr_null(strstr(d->reason, manifest));
  ck_assert(g_utf8_validate(d->reason, -1, NULL));
  for (const char *p = d->reason; *p; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    ck_assert(c >= 0x20 && !(c >= 0x7f && c < 0xa0));
  }
  /* What the file holds is not repeated (it may be any file's). */
  ck_assert_ptr_null(strstr(d->reason, "no key here"));
  ck_assert_ptr_nonnull(strstr(d->reason, "does not parse as a MANIFEST"));
}
END_TEST

static Suite *
store_suite(void)
{
  Suite *s = suite_create("store");
  TCase *tc = tcase_create("store");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_manifest_round_trip);
  tcase_add_test(tc, test_unique_names);
  tcase_add_test(tc, test_old_names_readable);
  tcase_add_test(tc, test_mode_never_wider_than_source);
  tcase_add_test(tc, test_refuses_non_wal_and_leaves_nothing);
  tcase_add_test(tc, test_verify_all);
  tcase_add_test(tc, test_manifest_lists_db_twice);
  tcase_add_test(tc, test_verify_db_integrity_after_crc);
  tcase_add_test(tc, test_check_base);
  tcase_add_test(tc, test_manifest_checksum);
  tcase_add_test(tc, test_manifest_seal);
  tcase_add_test(tc, test_misnamed_entry_unreadable);
  tcase_add_test(tc, test_manifest_checksum_line_ends);
  tcase_add_test(tc, test_prune_days_hook_and_newest_valid);
  tcase_add_test(tc, test_prune_count);
  tcase_add_test(tc, test_list_report);
  tcase_add_test(tc, test_list_report_damaged);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(store_suite());
}
