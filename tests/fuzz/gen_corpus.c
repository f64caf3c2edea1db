/*
 * gen_corpus.c — writes the seed corpus of the fuzz targets with the
 * product's own writers: WAL files and b-tree pages written by SQLite, an
 * archive written by the archive writer, MANIFESTs written by real backups
 * and snapshots, and each time form from the formatters; plus typical
 * settings files and a few edge cases derived from them (cut short, torn,
 * restarted; a MANIFEST of format 1, one changed after its seal, one
 * changed and sealed again).
 *
 *   fuzz_gen_corpus OUTDIR     (OUTDIR/<target>/ must exist)
 *
 * Everything is built in a private temporary directory, removed at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/core/archive_int.h"
#include "sqlenvfs/archive.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

#define T0 G_GINT64_CONSTANT(1764346440000000) /* 2025-11-28T16:14:00Z */

static const char *out_dir;

static void
die(const char *what, GError *error)
{
  fprintf(stderr, "fuzz_gen_corpus: %s: %s\n", what, error ? error->message : "failed");
  exit(1);
}

static void
emit(const char *target, const char *name, const void *data, gsize len)
{
  g_autofree char *path = g_build_filename(out_dir, target, name, NULL);
  GError *error = NULL;
  if (!g_file_set_contents(path, data, (gssize)len, &error))
    die(path, error);
}

static GBytes *
slurp(const char *path)
{
  char *data = NULL;
  gsize len = 0;
  GError *error = NULL;
  if (!g_file_get_contents(path, &data, &len, &error))
    die(path, error);
  return g_bytes_new_take(data, len);
}

static void
exec_sql(sqlite3 *db, const char *sql)
{
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "fuzz_gen_corpus: %s: %s\n", sql, msg);
    exit(1);
  }
}

static sqlite3 *
open_wal_db(const char *path)
{
  sqlite3 *db = NULL;
  if (sqlite3_open(path, &db) != SQLITE_OK)
    die(path, NULL);
  exec_sql(db, "PRAGMA page_size=512; PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;");
  return db;
}

/* ---------------------------------------------------------------- WAL */

static void
gen_wal(const char *tmp)
{
  g_autofree char *path = g_build_filename(tmp, "wal.db", NULL);
  g_autofree char *wal = g_strconcat(path, "-wal", NULL);
  sqlite3 *db = open_wal_db(path);
  g_autoptr(GBytes) three = NULL, restarted = NULL;
  gsize len;
  const guint8 *p;

  exec_sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);");
  exec_sql(db, "INSERT INTO t(v) VALUES ('one');");
  exec_sql(db, "BEGIN; INSERT INTO t(v) VALUES (hex(randomblob(300))); "
               "INSERT INTO t(v) VALUES (hex(randomblob(300))); COMMIT;");
  three = slurp(wal);
  p = g_bytes_get_data(three, &len);
  emit("walfile", "wal-commits", p, len);
  /* Cut inside the last frame: its transaction is not committed. */
  emit("walfile", "wal-torn-tail", p, len - 100);
  /* Only the header; and shorter than a header. */
  emit("walfile", "wal-header-only", p, 32);
  emit("walfile", "wal-short-header", p, 20);

  /* A restarted WAL: new salts, frame 1 overwritten, older frames after. */
  exec_sql(db, "PRAGMA wal_checkpoint(RESTART);");
  exec_sql(db, "UPDATE t SET v = 'two' WHERE id = 1;");
  restarted = slurp(wal);
  p = g_bytes_get_data(restarted, &len);
  emit("walfile", "wal-restarted", p, len);
  sqlite3_close(db);
}

/* ------------------------------------------------------------ archive */

/* Page @i of commit @k (@len bytes): its first @n_random bytes
 * pseudo-random, the rest one byte repeated. */
static void
seed_page(guint8 *page, gsize len, guint k, guint i, gsize n_random)
{
  guint32 x = k * 64 + i + 1;
  memset(page, (int)(k + i), len);
  for (gsize b = 0; b < n_random; b++) {
    x ^= x << 13; /* xorshift32 */
    x ^= x >> 17;
    x ^= x << 5;
    page[b] = (guint8)x;
  }
}

static void
add_commit(SqlenvfsArchiveWriter *w, guint k, guint n)
{
  SqlenvfsArchiveEntry e = { 0 };
  g_autofree guint32 *pgnos = g_new(guint32, n);
  guint8 page[512];
  GError *error = NULL;

  e.time = T0 + (gint64)k * G_USEC_PER_SEC;
  e.aux_time = e.time - 1000;
  e.page_size = sizeof page;
  e.db_pages = k + n + 2;
  e.n_pages = n;
  e.salt1 = 0x1000;
  e.salt2 = 0xabcdef;
  e.first_frame = 1 + k * 4;
  e.commit_frame = e.first_frame + n - 1;
  e.cksum1 = k * 3;
  e.cksum2 = k * 5;
  for (guint i = 0; i < n; i++)
    pgnos[i] = k + i + 1;
  if (!sqlenvfs_archive_writer_begin_commit(w, &e, pgnos, &error))
    die("begin commit", error);
  for (guint i = 0; i < n; i++) {
    /* Half pseudo-random bytes, half one byte: compressed, but not to
     * nothing. */
    seed_page(page, sizeof page, k, i, sizeof page / 2);
    if (!sqlenvfs_archive_writer_add_pages(w, page, sizeof page, &error))
      die("add pages", error);
  }
  if (!sqlenvfs_archive_writer_end_commit(w, &error))
    die("end commit", error);
}

/* The .last file of a sealed segment whose pages have many versions
 * (fuzz_last): 40 pages (8 with @raw) of 512 bytes rewritten by commits
 * of 4, their images half random (compressed blocks) or all random (@raw:
 * blocks stored as they are). */
static void
gen_last_one(const char *tmp, const char *name, gboolean raw)
{
  g_autofree char *dir = g_build_filename(tmp, name, NULL);
  g_autofree char *lpath = g_build_filename(dir, "0000000000000001.last", NULL);
  g_autoptr(GBytes) last = NULL;
  GError *error = NULL;
  g_autoptr(SqlenvfsArchiveWriter) w = sqlenvfs_archive_writer_open(dir, 64 * 1024, 0600, &error);

  if (w == NULL)
    die("open archive writer", error);
  for (guint k = 1; k <= 400 && !g_file_test(lpath, G_FILE_TEST_EXISTS); k++) {
    SqlenvfsArchiveEntry e = { 0 };
    guint32 pgnos[4];
    guint8 page[512];
    e.time = T0 + (gint64)k * G_USEC_PER_SEC;
    e.aux_time = e.time - 1000;
    e.page_size = sizeof page;
    e.db_pages = 40;
    e.n_pages = 4;
    e.salt1 = 0x1000;
    e.salt2 = 0xabcdef;
    e.first_frame = 1 + k * 4;
    e.commit_frame = e.first_frame + 3;
    e.cksum1 = k * 3;
    e.cksum2 = k * 5;
    for (guint i = 0; i < 4; i++)
      pgnos[i] = 1 + (k * 4 + i) % (raw ? 8 : 40);
    if (!sqlenvfs_archive_writer_begin_commit(w, &e, pgnos, &error))
      die("begin commit", error);
    for (guint i = 0; i < 4; i++) {
      seed_page(page, sizeof page, k, i, raw ? sizeof page : sizeof page / 2);
      if (!sqlenvfs_archive_writer_add_pages(w, page, sizeof page, &error))
        die("add pages", error);
    }
    if (!sqlenvfs_archive_writer_end_commit(w, &error))
      die("end commit", error);
  }
  if (!g_file_test(lpath, G_FILE_TEST_EXISTS)) {
    fprintf(stderr, "fuzz_gen_corpus: no %s was written\n", lpath);
    exit(1);
  }
  last = slurp(lpath);
  emit("last", name, g_bytes_get_data(last, NULL), g_bytes_get_size(last));
}

static void
gen_last(const char *tmp)
{
  gen_last_one(tmp, "last-compressed", FALSE);
  gen_last_one(tmp, "last-stored", TRUE);
}

/* The files of archive @dir concatenated, as fuzz_archive reads them. */
static GByteArray *
pack_archive(const char *dir, gboolean with_index, gboolean with_alive, gboolean with_sum)
{
  GByteArray *out = g_byte_array_new();
  for (guint k = 1;; k++) {
    g_autofree char *sname = g_strdup_printf("%016u.seg", k);
    g_autofree char *iname = g_strdup_printf("%016u.idx", k);
    g_autofree char *spath = g_build_filename(dir, sname, NULL);
    g_autofree char *ipath = g_build_filename(dir, iname, NULL);
    g_autoptr(GBytes) seg = NULL;
    if (!g_file_test(spath, G_FILE_TEST_EXISTS))
      break;
    seg = slurp(spath);
    g_byte_array_append(out, g_bytes_get_data(seg, NULL), (guint)g_bytes_get_size(seg));
    if (with_index && g_file_test(ipath, G_FILE_TEST_EXISTS)) {
      g_autoptr(GBytes) idx = slurp(ipath);
      g_byte_array_append(out, g_bytes_get_data(idx, NULL), (guint)g_bytes_get_size(idx));
    }
    if (with_sum) {
      g_autofree char *uname = g_strdup_printf("%016u.sum", k);
      g_autofree char *upath = g_build_filename(dir, uname, NULL);
      if (g_file_test(upath, G_FILE_TEST_EXISTS)) {
        g_autoptr(GBytes) sum = slurp(upath);
        g_byte_array_append(out, g_bytes_get_data(sum, NULL), (guint)g_bytes_get_size(sum));
      }
    }
  }
  if (with_alive) {
    g_autofree char *apath = g_build_filename(dir, "alive", NULL);
    g_autoptr(GBytes) alive = slurp(apath);
    g_byte_array_append(out, g_bytes_get_data(alive, NULL), (guint)g_bytes_get_size(alive));
  }
  return out;
}

/* The writer writes version 2 segments (archive-v2-*). The archive-* seeds
 * without v2 in their names were written by the version 1 writer and are
 * kept, as version 1 segments stay readable. */
static void
gen_archive(const char *tmp)
{
  g_autofree char *small = g_build_filename(tmp, "small", NULL);
  g_autofree char *rolled = g_build_filename(tmp, "rolled", NULL);
  g_autofree char *batched = g_build_filename(tmp, "batched", NULL);
  g_autofree char *summed = g_build_filename(tmp, "summed", NULL);
  SqlenvfsArchiveEntry wal = { 0 };
  GError *error = NULL;
  GByteArray *b;

  {
    g_autoptr(SqlenvfsArchiveWriter) w = sqlenvfs_archive_writer_open(small, 64 * 1024, 0600, &error);
    if (w == NULL)
      die("open archive writer", error);
    wal.page_size = 512;
    if (!sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, "archiving started",
                                         &wal, &error))
      die("add gap", error);
    add_commit(w, 1, 1);
    add_commit(w, 2, 3);
    if (!sqlenvfs_archive_writer_add_outage(w, T0 + 3 * G_USEC_PER_SEC, T0 + 9 * G_USEC_PER_SEC,
                                            &error))
      die("add outage", error);
    wal.salt1 = 0x1001;
    wal.salt2 = 0x77;
    wal.commit_frame = 4;
    if (!sqlenvfs_archive_writer_add_gap(w, T0 + 10 * G_USEC_PER_SEC, T0 + 9 * G_USEC_PER_SEC,
                                         SQLENVFS_GAP_WAL_RESTARTED,
                                         "the WAL was restarted while the archiver was not running",
                                         &wal, &error))
      die("add gap", error);
    add_commit(w, 11, 2);
    if (!sqlenvfs_archive_writer_sync(w, &error) ||
        !sqlenvfs_archive_writer_set_alive(w, T0 + 12 * G_USEC_PER_SEC, 0, &error))
      die("sync archive", error);
  }
  b = pack_archive(small, TRUE, TRUE, FALSE);
  emit("archive", "archive-v2-small", b->data, b->len);
  /* A torn last record (an interrupted write) and no index or alive file. */
  g_byte_array_free(b, TRUE);
  b = pack_archive(small, FALSE, FALSE, FALSE);
  emit("archive", "archive-v2-torn-noindex", b->data, b->len - 300);
  g_byte_array_free(b, TRUE);

  /* Two segments: the first full and sealed. */
  {
    g_autoptr(SqlenvfsArchiveWriter) w = sqlenvfs_archive_writer_open(rolled, 64 * 1024, 0600, &error);
    if (w == NULL)
      die("open archive writer", error);
    wal.page_size = 512;
    wal.commit_frame = 0;
    if (!sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, "", &wal, &error))
      die("add gap", error);
    for (guint k = 1; k <= 50; k++)
      add_commit(w, k, 5);
    if (!sqlenvfs_archive_writer_sync(w, &error))
      die("sync archive", error);
  }
  b = pack_archive(rolled, TRUE, FALSE, FALSE);
  emit("archive", "archive-v2-two-segments", b->data, b->len);
  g_byte_array_free(b, TRUE);
  /* The same with the first segment's summary after its index, in
   * version 1 (as summaries were written before version 2, and are still
   * read). */
  {
    g_autofree char *upath = g_build_filename(rolled, "0000000000000001.sum", NULL);
    g_autoptr(GByteArray) v1 = archive_summary_build_version(rolled, 1, 1, &error);
    if (v1 == NULL || !g_file_set_contents(upath, (const char *)v1->data, v1->len, &error))
      die("write a version 1 summary", error);
  }
  b = pack_archive(rolled, TRUE, FALSE, TRUE);
  emit("archive", "archive-v2-summary", b->data, b->len);
  g_byte_array_free(b, TRUE);

  /* A batch of three commits (the first record holds all their pages),
   * then a commit alone. */
  {
    g_autoptr(SqlenvfsArchiveWriter) w = sqlenvfs_archive_writer_open(batched, 64 * 1024, 0600,
                                                                      &error);
    if (w == NULL)
      die("open archive writer", error);
    wal.page_size = 512;
    wal.commit_frame = 0;
    if (!sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, "", &wal, &error))
      die("add gap", error);
    sqlenvfs_archive_writer_begin_batch(w);
    add_commit(w, 1, 2);
    add_commit(w, 2, 3);
    add_commit(w, 3, 1);
    if (!sqlenvfs_archive_writer_end_batch(w, &error))
      die("end batch", error);
    add_commit(w, 4, 2);
    if (!sqlenvfs_archive_writer_sync(w, &error) ||
        !sqlenvfs_archive_writer_set_alive(w, T0 + 5 * G_USEC_PER_SEC, 0, &error))
      die("sync archive", error);
  }
  b = pack_archive(batched, TRUE, TRUE, FALSE);
  emit("archive", "archive-v2-batch", b->data, b->len);
  g_byte_array_free(b, TRUE);

  /* A short sealed segment with its version 2 summary (every part small:
   * size changes, page table, last versions, versions): a batch and a
   * commit alone, sealed by the switch to version 1 segments. */
  {
    g_autoptr(SqlenvfsArchiveWriter) w = sqlenvfs_archive_writer_open(summed, 64 * 1024, 0600,
                                                                      &error);
    if (w == NULL)
      die("open archive writer", error);
    wal.page_size = 512;
    wal.commit_frame = 0;
    if (!sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, "", &wal, &error))
      die("add gap", error);
    sqlenvfs_archive_writer_begin_batch(w);
    add_commit(w, 1, 3);
    add_commit(w, 2, 2);
    if (!sqlenvfs_archive_writer_end_batch(w, &error))
      die("end batch", error);
    add_commit(w, 3, 1);
    sqlenvfs_archive_writer_set_version(w, 1);
    add_commit(w, 4, 1);
    if (!sqlenvfs_archive_writer_sync(w, &error))
      die("sync archive", error);
  }
  b = pack_archive(summed, TRUE, FALSE, TRUE);
  emit("archive", "archive-v2-summary-v2", b->data, b->len);
  g_byte_array_free(b, TRUE);
}

/* ----------------------------------------------------------- MANIFEST */

/* @m with @key of @group set to @value (removed when NULL); sealed again
 * when @seal. */
static void
emit_manifest_edit(const char *name, GBytes *m, const char *group, const char *key,
                   const char *value, gboolean seal)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autofree char *data = NULL;
  gsize len = 0;
  GError *error = NULL;

  if (!g_key_file_load_from_data(kf, g_bytes_get_data(m, NULL), g_bytes_get_size(m),
                                 G_KEY_FILE_NONE, &error))
    die(name, error);
  if (value != NULL)
    g_key_file_set_value(kf, group, key, value);
  else
    g_key_file_remove_key(kf, group, key, NULL);
  if (seal)
    sqlenvfs_store_manifest_seal(kf);
  data = g_key_file_to_data(kf, &len, NULL);
  emit("manifest", name, data, len);
}

static void
gen_manifest(const char *tmp)
{
  g_autofree char *dir = g_build_filename(tmp, "root", NULL);
  g_autoptr(SqlenvfsRoot) root = NULL;
  GError *error = NULL;
  const char *dbs[] = { "app", "logs-2026.v1", "sales 2026" };

  root = sqlenvfs_root_open(dir, SQLENVFS_ROOT_MAY_CREATE, &error);
  if (root == NULL || !sqlenvfs_root_ensure_layout(root, &error))
    die("create root", error);
  for (gsize i = 0; i < G_N_ELEMENTS(dbs); i++) {
    g_autofree char *path = sqlenvfs_root_prod_db(root, dbs[i]);
    sqlite3 *db = open_wal_db(path);
    exec_sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); "
                 "INSERT INTO t(v) VALUES ('a'), ('b');");
    sqlite3_close(db);
  }
  for (int kind = SQLENVFS_KIND_BACKUP; kind <= SQLENVFS_KIND_SNAPSHOT; kind++) {
    g_autoptr(SqlenvfsStoredCopy) copy =
      sqlenvfs_store_create(root, kind, kind == SQLENVFS_KIND_BACKUP ? NULL : "app", NULL, NULL,
                            &error);
    g_autofree char *mpath = NULL;
    g_autoptr(GBytes) m = NULL;
    if (copy == NULL)
      die("create copy", error);
    mpath = g_build_filename(copy->dir, "MANIFEST", NULL);
    m = slurp(mpath);
    emit("manifest", kind == SQLENVFS_KIND_BACKUP ? "manifest-backup" : "manifest-snapshot",
         g_bytes_get_data(m, NULL), g_bytes_get_size(m));
    if (kind != SQLENVFS_KIND_BACKUP)
      continue;
    /* Format 1 (no checksum), as sqlenvfs 0.1 wrote it; a WAL position
     * changed after the seal; and one changed and sealed again, which only
     * the field checks can judge. */
    {
      g_autoptr(GKeyFile) kf = g_key_file_new();
      g_autofree char *data = NULL;
      gsize len = 0;
      if (!g_key_file_load_from_data(kf, g_bytes_get_data(m, NULL), g_bytes_get_size(m),
                                     G_KEY_FILE_KEEP_COMMENTS, &error))
        die("manifest-format1", error);
      g_key_file_remove_key(kf, "sqlenvfs-copy", "checksum", NULL);
      g_key_file_set_value(kf, "sqlenvfs-copy", "format", "1");
      data = g_key_file_to_data(kf, &len, NULL);
      emit("manifest", "manifest-format1", data, len);
    }
    emit_manifest_edit("manifest-changed-after-seal", m, "db app", "wal-frame", "7", FALSE);
    emit_manifest_edit("manifest-resealed-bad-frame", m, "db app", "wal-frame", "-1", TRUE);
  }
}

/* --------------------------------------------------------------- conf */

static void
gen_conf(void)
{
  static const struct {
    const char *name, *text;
  } confs[] = {
    { "conf-all-keys",
      "# every setting, at its default\n"
      "[sqlenvfs]\ndefault-db=app\n\n"
      "[retention]\ndaily-keep-days=7\ndaily-keep-count=0\nsnapshot-keep-days=7\n"
      "snapshot-keep-count=0\npitr-keep-days=7\n\n"
      "[archive]\nsegment-max-bytes=67108864\ncheckpoint-pages=1000\n\n"
      "[cache]\nmax-bytes=4294967296\n\n"
      "[doctor]\nsize-warn-bytes=10000000000\nbackup-max-age-hours=26\n"
      "archive-lag-warn-seconds=60\nacknowledged-bugs=wal-reset\n" },
    { "conf-retention", "[retention]\ndaily-keep-days=30\ndaily-keep-count=14\n" },
    { "conf-default-db", "[sqlenvfs]\ndefault-db = vessels \n" },
    { "conf-bugs-list", "[doctor]\nacknowledged-bugs=wal-reset; other-bug , third,,\n" },
    { "conf-out-of-range", "[archive]\nsegment-max-bytes=1024\n" },
    { "conf-not-a-number", "[retention]\npitr-keep-days=seven\n" },
    { "conf-bad-name", "[sqlenvfs]\ndefault-db=../prod\n" },
    { "conf-empty", "" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(confs); i++)
    emit("conf", confs[i].name, confs[i].text, strlen(confs[i].text));
}

/* --------------------------------------------------------------- time */

static void
gen_time(void)
{
  gint64 t = T0 + 250000;
  g_autofree char *name = sqlenvfs_time_format_name(T0, FALSE);
  g_autofree char *name_ms = sqlenvfs_time_format_name(t, TRUE);
  g_autofree char *iso = sqlenvfs_time_format_iso(T0);
  g_autofree char *iso_frac = sqlenvfs_time_format_iso(t);
  static const struct {
    const char *name, *text;
  } fixed[] = {
    { "time-offset", "2026-11-28T16:14:00.25+01:00" },
    { "time-unix", "@1764346440" },
    { "time-unix-frac", "@1764346440.25" },
    { "time-latest", "latest" },
    { "time-leap-day", "20240229T000000Z" },
    { "time-not-leap-day", "20230229T000000Z" },
    { "time-last", "99991231T235959.999999Z" },
    { "time-epoch", "1970-01-01T00:00:00-00:00" },
    { "time-no-zone", "2026-11-28T16:14:00" },
  };

  emit("timefmt", "time-name", name, strlen(name));
  emit("timefmt", "time-name-ms", name_ms, strlen(name_ms));
  emit("timefmt", "time-iso", iso, strlen(iso));
  emit("timefmt", "time-iso-frac", iso_frac, strlen(iso_frac));
  for (gsize i = 0; i < G_N_ELEMENTS(fixed); i++)
    emit("timefmt", fixed[i].name, fixed[i].text, strlen(fixed[i].text));
}

/* ------------------------------------------------------------- sqltext */

/* CREATE INDEX statements as SQLite keeps them in sqlite_schema: keys on
 * columns and expressions, quoted names, comments, COLLATE, ASC/DESC and a
 * WHERE clause. */
static void
gen_sqltext(void)
{
  static const char *const idx[] = {
    "CREATE UNIQUE INDEX u ON t(lower(a))",
    "CREATE INDEX \"i(,\" ON \"t\" (a COLLATE NOCASE DESC, b ASC)",
    "CREATE UNIQUE INDEX u2 ON t(substr(a, 1, 3) /* a, ( */, 'x,)' || b, [c d], `e`)",
    "CREATE INDEX p ON t(a -- the first, (\n, json_extract(b, '$.k')) WHERE c IN (1, 2)",
  };
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int n = 0;

  if (sqlite3_open(":memory:", &db) != SQLITE_OK)
    die("sqlite3_open", NULL);
  exec_sql(db, "CREATE TABLE t(a, b, \"c d\", e, c);");
  for (gsize i = 0; i < G_N_ELEMENTS(idx); i++)
    exec_sql(db, idx[i]);
  if (sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_schema WHERE type = 'index' ORDER BY rowid",
                         -1, &st, NULL) != SQLITE_OK)
    die("reading sqlite_schema", NULL);
  while (sqlite3_step(st) == SQLITE_ROW) {
    g_autofree char *name = g_strdup_printf("index-%d", ++n);
    const char *sql = (const char *) sqlite3_column_text(st, 0);
    emit("sqltext", name, sql, strlen(sql));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
}

/* -------------------------------------------------------------- b-tree */

/* Pages of a database SQLite wrote (512-byte pages): page 1 with the
 * schema, and the first page of each b-tree page type, and a table leaf
 * holding a cell with an overflow page. */
static void
gen_btree(const char *tmp)
{
  g_autofree char *path = g_build_filename(tmp, "btree.db", NULL);
  g_autoptr(GBytes) file = NULL;
  const guint8 *p;
  gsize len;
  sqlite3 *db = NULL;
  gboolean seen[256] = { FALSE }, seen_overflow = FALSE;
  static const char *const names[256] = { [0x02] = "index-interior", [0x05] = "table-interior",
                                          [0x0a] = "index-leaf", [0x0d] = "table-leaf" };

  if (sqlite3_open(path, &db) != SQLITE_OK)
    die(path, NULL);
  exec_sql(db, "PRAGMA page_size=512;"
               "CREATE TABLE t(id INTEGER PRIMARY KEY, v);"
               "CREATE INDEX t_v ON t(v);"
               "CREATE TABLE kv(k TEXT, j INT, v, PRIMARY KEY(k, j)) WITHOUT ROWID;"
               "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 119)"
               " INSERT INTO t SELECT i, CASE WHEN i % 30 = 0 THEN zeroblob(900)"
               "   ELSE printf('value %d ', i) END FROM n;"
               "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 119)"
               " INSERT INTO kv SELECT printf('key%03d', i), i, i * 1.5 FROM n;");
  sqlite3_close(db);
  file = slurp(path);
  p = g_bytes_get_data(file, &len);
  emit("btree", "page1-schema", p, 512);
  for (gsize off = 512; off + 512 <= len; off += 512) {
    guint8 type = p[off];
    if (names[type] != NULL && !seen[type]) {
      emit("btree", names[type], p + off, 512);
      seen[type] = TRUE;
    }
    if (type == 0x0d && !seen_overflow) {
      /* a leaf with a cell whose payload (a 2-byte varint) passes 512-35 */
      guint n = ((guint) p[off + 3] << 8) | p[off + 4];
      for (guint c = 0; c < n && !seen_overflow; c++) {
        guint at = ((guint) p[off + 8 + 2 * c] << 8) | p[off + 9 + 2 * c];
        if (at + 1 < 512 && (p[off + at] & 0x80) &&
            ((((guint) p[off + at] & 0x7f) << 7) | (p[off + at + 1] & 0x7f)) > 512 - 35) {
          emit("btree", "table-leaf-overflow", p + off, 512);
          seen_overflow = TRUE;
        }
      }
    }
  }
}

int
main(int argc, char **argv)
{
  GError *error = NULL;
  g_autofree char *tmp = NULL;

  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_gen_corpus OUTDIR\n");
    return 2;
  }
  out_dir = argv[1];
  tmp = g_dir_make_tmp("sqlenvfs-gen-corpus-XXXXXX", &error);
  if (tmp == NULL)
    die("temporary directory", error);
  gen_wal(tmp);
  gen_btree(tmp);
  gen_archive(tmp);
  gen_last(tmp);
  gen_manifest(tmp);
  gen_conf();
  gen_time();
  gen_sqltext();
  if (!sqlenvfs_rm_rf(tmp, &error))
    die(tmp, error);
  return 0;
}
