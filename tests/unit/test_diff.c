/* Unit tests for diff: the script and summary computed from the changed
 * pages equal those of a comparison of everything, and the script turns
 * the older state into the newer one, for changes of every kind (rows on
 * changed leaves, a row whose overflow pages alone changed, a WITHOUT ROWID
 * table with keys and values on overflow pages (keys told apart only on
 * their third overflow page), values SQL's = calls equal (1 and 1.0, case
 * in a NOCASE column or key, 0.0 and -0.0), an added column, tables and
 * indexes created and dropped, under triggers that write other tables,
 * with views and triggers changed, created and dropped, unique values
 * swapped, rotated and chained between updated rows); that a changed leaf is placed by its key,
 * reading only the pages on its path, and that every tree is walked
 * instead when that cannot be done (a leaf no key leads to, many tables
 * changed at once). States are files written by SQLite; the changed pages
 * are those whose bytes differ. */
#include "testutil.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/diff.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/image.h"

static char *tmp;

static void setup(void) { tmp = testutil_tmpdir(); }
static void teardown(void) { testutil_tmpdir_cleanup(tmp); tmp = NULL; }

static void
exec(const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  char *msg = NULL;
  int rc;

  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
  sqlite3_close(db);
}

static SqlenvfsImage *
image_of(const char *path)
{
  GError *error = NULL;
  SqlenvfsFileSource *src = sqlenvfs_file_source_open(path, &error);
  struct stat st;

  ck_assert_no_error(error);
  ck_assert_int_eq(stat(path, &st), 0);
  return sqlenvfs_image_new(1024, (guint32) (st.st_size / 1024), sqlenvfs_file_source_read, src,
                            sqlenvfs_file_source_close);
}

static void
append(gpointer user, const char *text, gsize len)
{
  g_string_append_len(user, text, (gssize) len);
}

/* Every table's rows (with rowids where there are) and the schema. */
static char *
dump(const char *path)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL, *q = NULL;
  GString *s = g_string_new(NULL);

  ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT type, name, sql FROM sqlite_schema"
                                          " ORDER BY type, name", -1, &st, NULL), SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *type = (const char *) sqlite3_column_text(st, 0);
    const char *name = (const char *) sqlite3_column_text(st, 1);
    g_autofree char *sql = NULL;
    g_string_append_printf(s, "%s %s %s\n", type, name, sqlite3_column_text(st, 2));
    if (strcmp(type, "table") != 0)
      continue;
    sql = g_strdup_printf("SELECT quote(rowid), * FROM \"%s\" ORDER BY 1", name);
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
      g_free(sql);
      sql = g_strdup_printf("SELECT * FROM \"%s\" ORDER BY 1, 2", name);
      ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(q); i++) {
        const guint8 *b;
        g_string_append_printf(s, "%d:", sqlite3_column_type(q, i));
        if (sqlite3_column_type(q, i) == SQLITE_FLOAT) {
          /* Its bits: as text, -0.0 reads 0.0. */
          double x = sqlite3_column_double(q, i);
          guint64 bits;
          memcpy(&bits, &x, sizeof bits);
          g_string_append_printf(s, "%016" G_GINT64_MODIFIER "x|", bits);
          continue;
        }
        b = sqlite3_column_blob(q, i);
        for (int k = 0; k < sqlite3_column_bytes(q, i); k++)
          g_string_append_printf(s, "%02x", b[k]);
        g_string_append_c(s, '|');
      }
      g_string_append_c(s, '\n');
    }
    sqlite3_finalize(q);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return g_string_free(s, FALSE);
}

static const char *const base_sql =
  "PRAGMA page_size=1024; PRAGMA journal_mode=DELETE;"
  "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB);"
  "CREATE INDEX t_a ON t(a);"
  "CREATE TABLE p(x, y);"
  "CREATE TABLE kv(k TEXT, j INT, v, PRIMARY KEY(k, j)) WITHOUT ROWID;"
  "CREATE TABLE gone(z);"
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 400)"
  " INSERT INTO t SELECT i, 'row ' || i, i / 7.0,"
  "   CASE WHEN i % 25 = 0 THEN randomblob(3000) ELSE randomblob(30) END FROM n;"
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300)"
  " INSERT INTO p SELECT i % 13, 'p' || i FROM n;"
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200)"
  " INSERT INTO kv SELECT printf('%0600d', i % 40), i,"
  "   CASE WHEN i % 9 = 0 THEN randomblob(2000) ELSE i END FROM n;"
  "CREATE TABLE lk(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 12)"
  " INSERT INTO lk SELECT printf('%03000d', i), randomblob(200) FROM n;"
  "INSERT INTO gone VALUES (1), (2);"
  "CREATE TABLE cs(id INTEGER PRIMARY KEY, u, n TEXT COLLATE NOCASE, r TEXT COLLATE RTRIM);"
  "INSERT INTO cs VALUES (1, 1, 'abc', 'abc'), (2, 2, 'x', 'y');"
  "CREATE TABLE ck(k TEXT COLLATE NOCASE PRIMARY KEY, v) WITHOUT ROWID;"
  "INSERT INTO ck VALUES ('abc', 1), ('def', 2);"
  "CREATE TABLE cu(k PRIMARY KEY, v) WITHOUT ROWID; INSERT INTO cu VALUES (1, 'a'), (2, 'b');"
  "CREATE TABLE zr(id INTEGER PRIMARY KEY, x); INSERT INTO zr VALUES (1, 0.0), (2, -0.0);"
  "CREATE TABLE zk(k PRIMARY KEY, v) WITHOUT ROWID; INSERT INTO zk VALUES (0.0, 'z');"
  "CREATE TABLE u4(id INTEGER PRIMARY KEY, u UNIQUE); INSERT INTO u4 VALUES (5, 'a'), (6, 'b');";

/* Diff @a_path -> @b_path with the pages that differ, and in full; both
 * must agree; the script applied to a copy of @a_path gives @b_path. */
static void
check_pair(const char *a_path, const char *b_path, guint *n_changed_out)
{
  g_autoptr(SqlenvfsImage) ia = image_of(a_path), ib = image_of(b_path);
  g_autoptr(GHashTable) changed = g_hash_table_new(NULL, NULL);
  g_autofree guint8 *a = NULL, *b = NULL;
  g_autofree char *work = g_build_filename(tmp, "work.db", NULL);
  g_autofree char *got = NULL, *want = NULL;
  GString *keyed = g_string_new(NULL), *full = g_string_new(NULL);
  GString *keyed_sum = g_string_new(NULL), *full_sum = g_string_new(NULL);
  SqlenvfsDiffStats st = { 0 };
  GError *error = NULL;
  gsize na, nb;

  ck_assert(g_file_get_contents(a_path, (char **) &a, &na, NULL));
  ck_assert(g_file_get_contents(b_path, (char **) &b, &nb, NULL));
  for (gsize off = 0; off < MAX(na, nb); off += 1024)
    if (off >= na || off >= nb || memcmp(a + off, b + off, 1024) != 0)
      g_hash_table_add(changed, GUINT_TO_POINTER((guint) (off / 1024) + 1));
  *n_changed_out = g_hash_table_size(changed);

  ck_assert_msg(sqlenvfs_diff_images(ia, "a", ib, "b", changed, FALSE, append, NULL, keyed, &st,
                                     &error), "%s", error ? error->message : "");
  ck_assert_no_error(error);
  ck_assert_msg(sqlenvfs_diff_images(ia, "a", ib, "b", NULL, FALSE, append, NULL, full, NULL,
                                     &error), "%s", error ? error->message : "");
  ck_assert_msg(strcmp(keyed->str, full->str) == 0, "from the changed pages:\n%.300s\nin full:\n%.300s",
                keyed->str, full->str);
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", changed, TRUE, append, NULL, keyed_sum, NULL,
                                 &error));
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", NULL, TRUE, append, NULL, full_sum, NULL,
                                 &error));
  ck_assert_msg(strcmp(keyed_sum->str, full_sum->str) == 0, "from the changed pages:\n%s\nin full:\n%s",
                keyed_sum->str, full_sum->str);

  ck_assert(g_file_set_contents(work, (char *) a, (gssize) na, NULL));
  {
    /* In one transaction, as sqlenvfs_diff_run writes the script. */
    g_autofree char *tx = g_strconcat("BEGIN;\n", keyed->str, "COMMIT;\n", NULL);
    exec(work, tx);
  }
  got = dump(work);
  want = dump(b_path);
  ck_assert_msg(strcmp(got, want) == 0, "the script does not give the newer state: %.200s", keyed->str);
  g_string_free(keyed, TRUE);
  g_string_free(full, TRUE);
  g_string_free(keyed_sum, TRUE);
  g_string_free(full_sum, TRUE);
}

static char *
make_pair_from(const char *base, const char *change, char **b_out)
{
  char *a = g_build_filename(tmp, "a.db", NULL);
  char *b = g_build_filename(tmp, "b.db", NULL);
  g_autofree char *bytes = NULL;
  gsize n;

  unlink(a);
  exec(a, base);
  ck_assert(g_file_get_contents(a, &bytes, &n, NULL));
  ck_assert(g_file_set_contents(b, bytes, (gssize) n, NULL));
  exec(b, change);
  *b_out = b;
  return a;
}

static char *
make_pair(const char *change, char **b_out)
{
  return make_pair_from(base_sql, change, b_out);
}

static const char *const changes[] = {
  /* rows on leaves: updates, deletes, inserts, an overflow row replaced */
  "UPDATE t SET a = 'changed', b = NULL WHERE id % 17 = 0;"
  "DELETE FROM t WHERE id BETWEEN 100 AND 130;"
  "INSERT INTO t(id, a, c) VALUES (1000, 'it''s new', randomblob(5000));"
  "UPDATE t SET c = randomblob(4000) WHERE id = 50;"
  "DELETE FROM p WHERE rowid % 10 = 0; INSERT INTO p VALUES (char(10), x'00ff');"
  "INSERT INTO p VALUES (CAST(x'610062' AS TEXT), 1);", /* text with a NUL in it */
  /* only a row's overflow pages: same size, last byte changed (to a value
   * the random blob cannot already hold there) */
  "UPDATE t SET c = CAST(substr(c, 1, 2999) ||"
  "  CASE WHEN substr(c, 3000) = x'ab' THEN x'ac' ELSE x'ab' END AS BLOB) WHERE id = 75;",
  /* WITHOUT ROWID: keys and values on overflow pages */
  "DELETE FROM kv WHERE j % 7 = 0;"
  "UPDATE kv SET v = randomblob(2500) WHERE j % 11 = 0;"
  "INSERT INTO kv VALUES (printf('%0700d', 5), -1, 'new');",
  /* schema: a column added, a table created and one dropped, indexes */
  "ALTER TABLE t ADD COLUMN note TEXT DEFAULT 'n/a';"
  "UPDATE t SET note = 'x' WHERE id < 5;"
  "CREATE TABLE later(q INTEGER PRIMARY KEY, r); INSERT INTO later(r) VALUES ('a'), ('b');"
  "DROP TABLE gone; DROP INDEX t_a; CREATE INDEX p_y ON p(y);",
  /* columns added with defaults: the older rows read the default once the
   * column is added, so a row set back to NULL there is an update */
  "ALTER TABLE t ADD COLUMN d DEFAULT -7.5; ALTER TABLE t ADD COLUMN e BLOB DEFAULT x'0a0b';"
  "UPDATE t SET d = NULL WHERE id % 3 = 0; UPDATE t SET e = NULL WHERE id = 4;"
  "UPDATE t SET d = 8, e = 'ab' WHERE id = 5;",
  /* AUTOINCREMENT: sqlite_sequence made by the new table, rows after it */
  "CREATE TABLE orders(id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);"
  "INSERT INTO orders(what) VALUES ('a'), ('b'), ('c'); DELETE FROM orders WHERE id = 3;",
  /* WITHOUT ROWID keys told apart only on their third overflow page, a
   * value behind them changed in place (only its overflow page is written):
   * the key is read from the whole chain */
  "UPDATE lk SET v = randomblob(200) WHERE k = printf('%03000d', 7);",
  /* values SQL calls equal that are not the same: an integer become a
   * real, case in a NOCASE column, trailing spaces in an RTRIM one, a
   * NOCASE key whose case changed, an untyped key become a real */
  "UPDATE cs SET u = 1.0, n = 'ABC', r = 'abc  ' WHERE id = 1;"
  "DELETE FROM ck WHERE k = 'abc'; INSERT INTO ck VALUES ('ABC', 1);"
  "UPDATE ck SET k = 'DEF' WHERE k = 'def';"
  "DELETE FROM cu WHERE k = 2; INSERT INTO cu VALUES (2.0, 'b');",
  /* reals SQL calls equal whose bytes differ: 0.0 and -0.0, in a value
   * and in a key */
  "UPDATE zr SET x = -0.0 WHERE id = 1; UPDATE zr SET x = 0.0 WHERE id = 2;"
  "DELETE FROM zk; INSERT INTO zk VALUES (-0.0, 'z');",
  /* infinities, in a value, a new table and a key */
  "UPDATE zr SET x = 9e999 WHERE id = 1; UPDATE zr SET x = -9e999 WHERE id = 2;"
  "CREATE TABLE f(id INTEGER PRIMARY KEY, x REAL); INSERT INTO f VALUES (1, 9e999), (2, -9e999);"
  "INSERT INTO zk VALUES (-9e999, 'i');",
  /* ANALYZE, where there was no sqlite_stat1: made by ANALYZE sqlite_schema
   * (a CREATE of it is refused), then its rows */
  "ANALYZE;",
  /* a unique value moved to a row of a lower key, deleted or updated
   * away first: the deletes, then the updates, then the inserts */
  "DELETE FROM u4 WHERE id = 5; INSERT INTO u4 VALUES (3, 'a');"
  "UPDATE u4 SET u = 'c' WHERE id = 6; INSERT INTO u4 VALUES (1, 'b');",
  /* a table renamed by case only (made again as Gone): its DROP before
   * the CREATE, though "Gone" sorts first */
  "CREATE TABLE keep_g AS SELECT * FROM gone; DROP TABLE gone; CREATE TABLE Gone(z);"
  "INSERT INTO Gone SELECT * FROM keep_g; DROP TABLE keep_g;",
  /* an index dropped from one table and made with its name on another that
   * sorts first */
  "DROP INDEX t_a; CREATE INDEX t_a ON p(x);",
  /* a rebuild */
  "DELETE FROM t WHERE id % 2 = 0; VACUUM;",
  /* text with thousands of line breaks: one concatenation per break would
   * pass SQLite's expression depth (1000), and the script would not apply */
  "INSERT INTO p VALUES ((WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
  "  WHERE i < 3000) SELECT group_concat('line ' || i, char(10)) FROM n), 2);"
  "UPDATE t SET a = 'few' || char(10) || 'breaks' WHERE id = 3;",
};

START_TEST(test_changes)
{
  g_autofree char *b = NULL;
  g_autofree char *a = make_pair(changes[_i], &b);
  guint n_changed = 0;

  check_pair(a, b, &n_changed);
  ck_assert_uint_gt(n_changed, 0);
}
END_TEST

/* Triggers that write other tables when rows change, views, and an
 * INSTEAD OF trigger on a view: the script must give the newer state when
 * applied with them in place (a trigger must not fire on its statements). */
static const char *const trig_sql =
  "PRAGMA page_size=1024; PRAGMA journal_mode=DELETE;"
  "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, n INT);"
  "CREATE TABLE p(x, y);"
  "CREATE TABLE gone(z);"
  "CREATE TABLE lg(id INTEGER PRIMARY KEY, what TEXT);"
  "CREATE TABLE uniq(k PRIMARY KEY, v) WITHOUT ROWID;"
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300)"
  " INSERT INTO t SELECT i, 'row ' || i, i % 7 FROM n;"
  "INSERT INTO p VALUES (1, 'a'), (2, 'b'); INSERT INTO gone VALUES (1);"
  "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN"
  "  INSERT INTO lg(what) VALUES ('ins ' || new.id); INSERT INTO uniq VALUES (new.id, 1); END;"
  "CREATE TRIGGER t_upd AFTER UPDATE OF a ON t BEGIN"
  "  INSERT INTO lg(what) VALUES ('upd ' || new.id); END;"
  "CREATE TRIGGER p_del AFTER DELETE ON p BEGIN INSERT INTO lg(what) VALUES ('del p'); END;"
  "CREATE TRIGGER gone_ins AFTER INSERT ON gone BEGIN INSERT INTO lg(what) VALUES ('g'); END;"
  "CREATE VIEW t_view AS SELECT id, a FROM t;"
  "CREATE TRIGGER tv_ins INSTEAD OF INSERT ON t_view BEGIN"
  "  INSERT INTO t(id, a, n) VALUES (new.id, new.a, -1); END;";

static const char *const trig_changes[] = {
  /* rows written under the triggers, which write rows of their own */
  "INSERT INTO t(id, a, n) VALUES (1000, 'new', 0); UPDATE t SET a = 'changed' WHERE id < 20;"
  "DELETE FROM t WHERE id > 290; DELETE FROM p WHERE x = 1; INSERT INTO t_view VALUES (1001, 'v');",
  /* views and triggers changed, created and dropped, with rows */
  "DROP TRIGGER p_del;"
  "CREATE TRIGGER p_del AFTER DELETE ON p BEGIN INSERT INTO lg(what) VALUES ('p ' || old.x); END;"
  "DROP VIEW t_view; CREATE VIEW t_view AS SELECT id, a, n FROM t;"
  "CREATE TRIGGER tv_ins INSTEAD OF INSERT ON t_view BEGIN"
  "  INSERT INTO t(id, a, n) VALUES (new.id, new.a, -1); END;"
  "CREATE VIEW lg_count AS SELECT count(*) FROM lg;"
  "CREATE TRIGGER p_ins AFTER INSERT ON p BEGIN INSERT INTO lg(what) VALUES ('p+'); END;"
  "DROP TABLE gone; DROP TRIGGER t_upd;"
  "INSERT INTO p VALUES (3, 'c'); DELETE FROM p WHERE x = 2; UPDATE t SET a = 'x' WHERE id = 5;",
  /* a table rebuilt under its triggers (another schema: dropped and written
   * whole), its triggers kept as they were */
  "DROP VIEW t_view; CREATE TABLE t2(id INTEGER PRIMARY KEY, a TEXT, n INT, extra);"
  "INSERT INTO t2 SELECT id, a, n, NULL FROM t; DROP TABLE t; ALTER TABLE t2 RENAME TO t;"
  "CREATE VIEW t_view AS SELECT id, a FROM t;"
  "CREATE TRIGGER tv_ins INSTEAD OF INSERT ON t_view BEGIN"
  "  INSERT INTO t(id, a, n) VALUES (new.id, new.a, -1); END;"
  "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN"
  "  INSERT INTO lg(what) VALUES ('ins ' || new.id); INSERT INTO uniq VALUES (new.id, 1); END;"
  "INSERT INTO t(id, a, n) VALUES (2000, 'after', 1);",
};

START_TEST(test_triggers_views)
{
  g_autofree char *b = NULL;
  g_autofree char *a = make_pair_from(trig_sql, trig_changes[_i], &b);
  guint n_changed = 0;

  check_pair(a, b, &n_changed);
  ck_assert_uint_gt(n_changed, 0);
}
END_TEST

/* A row whose overflow pages alone changed: no leaf page differs, and the
 * script still updates it. */
START_TEST(test_overflow_only)
{
  g_autofree char *b = NULL;
  g_autofree char *a = make_pair(changes[1], &b);
  g_autoptr(SqlenvfsImage) ia = image_of(a), ib = image_of(b);
  g_autoptr(GHashTable) changed = g_hash_table_new(NULL, NULL);
  g_autofree guint8 *x = NULL, *y = NULL;
  GString *out = g_string_new(NULL);
  GError *error = NULL;
  gsize nx, ny;

  ck_assert(g_file_get_contents(a, (char **) &x, &nx, NULL));
  ck_assert(g_file_get_contents(b, (char **) &y, &ny, NULL));
  for (gsize off = 1024; off < nx; off += 1024) /* page 1 aside: its counter */
    if (memcmp(x + off, y + off, 1024) != 0)
      g_hash_table_add(changed, GUINT_TO_POINTER((guint) (off / 1024) + 1));
  ck_assert_uint_eq(g_hash_table_size(changed), 1);
  SqlenvfsDiffStats stats = { 0 };
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", changed, FALSE, append, NULL, out, &stats,
                                 &error));
  ck_assert_msg(g_str_has_prefix(out->str, "UPDATE t SET c=x'") &&
                strstr(out->str, " WHERE id=75;\n") != NULL,
                "%s", out->str);
  /* Found by following the row's overflow chain to its last page, not by
   * comparing the table whole. */
  ck_assert_uint_eq(stats.n_tables_full, 0);
  ck_assert_uint_ge(stats.n_tables_keyed, 1);
  ck_assert_uint_le(stats.n_keys, 2); /* the row, in each state */
  g_string_free(out, TRUE);
}
END_TEST

/* A real 0.0 become -0.0 (and back), in a value and in a key: SQL's =
 * calls them equal and SQLite prints both as 0.0; the script writes -0.0,
 * which applied gives -0.0 (check_pair compares reals by their bits). */
START_TEST(test_negative_zero)
{
  g_autofree char *b = NULL;
  g_autofree char *a = make_pair("UPDATE zr SET x = -0.0 WHERE id = 1;"
                                 "UPDATE zr SET x = 0.0 WHERE id = 2;"
                                 "DELETE FROM zk; INSERT INTO zk VALUES (-0.0, 'z');", &b);
  g_autoptr(SqlenvfsImage) ia = image_of(a), ib = image_of(b);
  GString *out = g_string_new(NULL);
  GError *error = NULL;
  guint n_changed = 0;

  check_pair(a, b, &n_changed);
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", NULL, FALSE, append, NULL, out, NULL, &error));
  ck_assert_no_error(error);
  ck_assert_msg(strstr(out->str, "UPDATE zr SET x=-0.0 WHERE id=1;\n") != NULL, "%s", out->str);
  ck_assert_msg(strstr(out->str, "UPDATE zr SET x=0.0 WHERE id=2;\n") != NULL, "%s", out->str);
  ck_assert_msg(strstr(out->str, "DELETE FROM zk WHERE k=0.0;\n") != NULL, "%s", out->str);
  ck_assert_msg(strstr(out->str, "INSERT INTO zk(k,v) VALUES(-0.0,'z');\n") != NULL, "%s",
                out->str);
  g_string_free(out, TRUE);
}
END_TEST

/* The script and the notes of one diff, apart. */
typedef struct {
  GString *out, *notes;
} Sink;

static void
sink_out(gpointer user, const char *text, gsize len)
{
  g_string_append_len(((Sink *) user)->out, text, (gssize) len);
}

static void
sink_note(gpointer user, const char *message)
{
  g_string_append_printf(((Sink *) user)->notes, "%s\n", message);
}

/* The pages of @a_path and @b_path (1024 bytes each) that differ, the
 * pages past the shorter one's end included. */
static GHashTable *
pages_differing(const char *a_path, const char *b_path)
{
  GHashTable *changed = g_hash_table_new(NULL, NULL);
  g_autofree guint8 *a = NULL, *b = NULL;
  gsize na, nb;

  ck_assert(g_file_get_contents(a_path, (char **) &a, &na, NULL));
  ck_assert(g_file_get_contents(b_path, (char **) &b, &nb, NULL));
  for (gsize off = 0; off < MAX(na, nb); off += 1024)
    if (off >= na || off >= nb || memcmp(a + off, b + off, 1024) != 0)
      g_hash_table_add(changed, GUINT_TO_POINTER((guint) (off / 1024) + 1));
  return changed;
}

/* The diff of @ia -> @ib from the pages in @changed, into @out (notes in
 * @notes, statistics in *@st when not NULL): it must be the one a
 * comparison in full prints. */
static void
diff_placed(SqlenvfsImage *ia, SqlenvfsImage *ib, GHashTable *changed, GString *out,
            GString *notes, SqlenvfsDiffStats *st)
{
  GString *full = g_string_new(NULL);
  GError *error = NULL;
  Sink sink = { out, notes };
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", changed, FALSE, sink_out, sink_note, &sink,
                                 st, &error));
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", NULL, FALSE, append, NULL, full, NULL, &error));
  ck_assert_str_eq(out->str, full->str);
  g_string_free(full, TRUE);
}

/* Virtual tables: the script creates and drops them (CREATE VIRTUAL TABLE,
 * DROP TABLE), not their shadow tables, which SQLite makes and drops with
 * them; the rows of the shadow tables of a new one are written over those
 * its CREATE made. */
static const char *const vtab_sql =
  "PRAGMA page_size=1024; PRAGMA journal_mode=DELETE;"
  "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');"
  "CREATE VIRTUAL TABLE kept USING fts5(body);"
  "INSERT INTO kept VALUES ('one two'), ('three');"
  "CREATE VIRTUAL TABLE old USING fts5(a, b); INSERT INTO old VALUES ('x', 'y');"
  "CREATE VIRTUAL TABLE box USING rtree(id, x0, x1); INSERT INTO box VALUES (1, 0, 5);"
  "CREATE VIRTUAL TABLE moved USING fts5(a); INSERT INTO moved VALUES ('m');";

static const char *const vtab_changes[] = {
  /* created, dropped, recreated with other columns, rows in a kept one */
  "CREATE VIRTUAL TABLE ft USING fts5(title, body);"
  "INSERT INTO ft VALUES ('hello', 'world'), ('second', 'row');"
  "DROP TABLE old; DROP TABLE moved; CREATE VIRTUAL TABLE moved USING fts5(a, b);"
  "INSERT INTO moved VALUES ('p', 'q');"
  "INSERT INTO kept VALUES ('four'); UPDATE t SET v = 'b';",
  /* an r-tree created and one dropped, a plain table named like a shadow one */
  "DROP TABLE box; CREATE VIRTUAL TABLE geo USING rtree(id, x0, x1, y0, y1);"
  "INSERT INTO geo VALUES (7, 1, 2, 3, 4); CREATE TABLE old_notes(z); INSERT INTO old_notes"
  " VALUES (1);",
};

START_TEST(test_virtual_tables)
{
  g_autofree char *b = NULL;
  g_autofree char *a = make_pair_from(vtab_sql, vtab_changes[_i], &b);
  g_autoptr(SqlenvfsImage) ia = image_of(a), ib = image_of(b);
  GString *out = g_string_new(NULL);
  GError *error = NULL;
  guint n_changed = 0;

  check_pair(a, b, &n_changed);
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", NULL, FALSE, append, NULL, out, NULL, &error));
  ck_assert_no_error(error);
  if (_i == 0) {
    ck_assert_msg(strstr(out->str, "CREATE VIRTUAL TABLE ft USING fts5(title, body);\n"
                                   "DELETE FROM ft_config;\n") != NULL, "%s", out->str);
    ck_assert_msg(strstr(out->str, "DROP TABLE old;\n") != NULL, "%s", out->str);
    ck_assert_msg(strstr(out->str, "DROP TABLE moved;\n"
                                   "CREATE VIRTUAL TABLE moved USING fts5(a, b);\n") != NULL,
                  "%s", out->str);
  } else {
    ck_assert_msg(strstr(out->str, "DROP TABLE box;\n") != NULL, "%s", out->str);
    ck_assert_msg(strstr(out->str, "CREATE TABLE old_notes(z);\n") != NULL, "%s", out->str);
  }
  ck_assert_msg(strstr(out->str, "CREATE TABLE ft_") == NULL &&
                strstr(out->str, "DROP TABLE old_") == NULL &&
                strstr(out->str, "DROP TABLE box_") == NULL &&
                strstr(out->str, "CREATE TABLE geo_") == NULL, "%s", out->str);
  g_string_free(out, TRUE);
}
END_TEST

/* A UTF-16 database: the keys of a WITHOUT ROWID table read from its
 * records are UTF-16 text (the changed rows are found by them), and text
 * holding a NUL is written as a blob of its UTF-16 bytes, which CAST reads
 * as text of the database's encoding. */
static const char *const utf16_enc[] = { "UTF-16le", "UTF-16be" };

START_TEST(test_utf16)
{
  g_autofree char *base = g_strdup_printf(
    "PRAGMA page_size=1024; PRAGMA journal_mode=DELETE; PRAGMA encoding='%s';"
    "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
    "INSERT INTO w VALUES ('\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87', 'v'), ('b', 'c');"
    "CREATE TABLE n(id INTEGER PRIMARY KEY, t TEXT); INSERT INTO n VALUES (1, 'x');",
    utf16_enc[_i]);
  g_autofree char *b = NULL;
  g_autofree char *a = make_pair_from(base,
    "UPDATE w SET v = '\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87" "2'"
    "  WHERE k = '\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87';"
    "INSERT INTO w VALUES ('\xf0\x9d\x84\x9e', 'q');"
    "INSERT INTO n VALUES (2, 'a' || char(0) || 'b');", &b);
  g_autoptr(SqlenvfsImage) ia = image_of(a), ib = image_of(b);
  g_autoptr(GHashTable) changed = pages_differing(a, b);
  GString *out = g_string_new(NULL), *sum = g_string_new(NULL);
  GError *error = NULL;
  const char *nul = _i == 0 ? "CAST(x'610000006200' AS TEXT)" : "CAST(x'006100000062' AS TEXT)";
  guint n_changed = 0;

  check_pair(a, b, &n_changed);
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", changed, FALSE, append, NULL, out, NULL,
                                 &error));
  ck_assert_no_error(error);
  ck_assert_msg(strstr(out->str, "INSERT INTO w(k,v) VALUES('\xf0\x9d\x84\x9e','q');\n") !=
                NULL, "%s", out->str);
  ck_assert_msg(strstr(out->str, nul) != NULL, "%s", out->str);
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", changed, TRUE, append, NULL, sum, NULL,
                                 &error));
  ck_assert_msg(strstr(sum->str, "w: 1 changes, 1 inserts, 0 deletes, 1 unchanged\n") != NULL,
                "%s", sum->str);
  g_string_free(out, TRUE);
  g_string_free(sum, TRUE);
}
END_TEST

/* Tables created, dropped and rebuilt with other columns between the two
 * states: each is said in a note, and those written whole are counted as
 * compared in full. */
START_TEST(test_schema_notes)
{
  g_autofree char *a = g_build_filename(tmp, "sa.db", NULL);
  g_autofree char *b = g_build_filename(tmp, "sb.db", NULL);
  g_autofree char *bytes = NULL;
  g_autoptr(SqlenvfsImage) ia = NULL, ib = NULL;
  g_autoptr(GHashTable) changed = NULL;
  GString *out = g_string_new(NULL), *notes = g_string_new(NULL);
  SqlenvfsDiffStats st = { 0 };
  gsize n;

  exec(a, "PRAGMA page_size=1024; PRAGMA journal_mode=DELETE;"
          "CREATE TABLE kept(id INTEGER PRIMARY KEY, v); INSERT INTO kept VALUES (1, 'a');"
          "CREATE TABLE gone(x); INSERT INTO gone VALUES (1);"
          "CREATE TABLE reshaped(id INTEGER PRIMARY KEY, event_type TEXT);"
          "INSERT INTO reshaped VALUES (1, 'in');");
  ck_assert(g_file_get_contents(a, &bytes, &n, NULL));
  ck_assert(g_file_set_contents(b, bytes, (gssize) n, NULL));
  exec(b, "DROP TABLE gone; CREATE TABLE fresh(y); INSERT INTO fresh VALUES (2);"
          "ALTER TABLE reshaped RENAME COLUMN event_type TO etype;");
  changed = pages_differing(a, b);
  ia = image_of(a);
  ib = image_of(b);
  diff_placed(ia, ib, changed, out, notes, &st);
  ck_assert_msg(strstr(notes->str, "table gone: dropped between the two states\n") != NULL, "%s",
                notes->str);
  ck_assert_msg(strstr(notes->str, "table fresh: compared in full: created between the two "
                                   "states\n") != NULL, "%s", notes->str);
  ck_assert_msg(strstr(notes->str, "table reshaped: compared in full: its columns or primary "
                                   "key changed\n") != NULL, "%s", notes->str);
  ck_assert_msg(strstr(notes->str, "table kept") == NULL, "%s", notes->str);
  ck_assert_uint_eq(st.n_tables_full, 2);
  g_string_free(out, TRUE);
  g_string_free(notes, TRUE);
}
END_TEST

/* A table of three levels (a root, 60-odd interior pages, 7,000 leaves) with
 * three rows changed far apart: the changed leaves are placed by their keys,
 * reading the root and the interior pages above them, not every interior
 * page; the script is the one a comparison in full prints. */
START_TEST(test_deep_tree)
{
  g_autofree char *a = g_build_filename(tmp, "da.db", NULL);
  g_autofree char *b = g_build_filename(tmp, "db.db", NULL);
  g_autofree char *bytes = NULL;
  g_autoptr(SqlenvfsImage) ia = NULL, ib = NULL;
  g_autoptr(GHashTable) changed = NULL;
  GString *out = g_string_new(NULL), *notes = g_string_new(NULL);
  SqlenvfsDiffStats st = { 0 };
  guint n_changed;
  gsize n;

  exec(a, "PRAGMA page_size=1024; PRAGMA journal_mode=DELETE;"
          "CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT);"
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 21000)"
          " INSERT INTO big SELECT i, printf('%0300d', i) FROM n;");
  ck_assert(g_file_get_contents(a, &bytes, &n, NULL));
  ck_assert(g_file_set_contents(b, bytes, (gssize) n, NULL));
  exec(b, "UPDATE big SET v = 'x' WHERE id IN (5, 10500, 20990);"
          "DELETE FROM big WHERE id = 7777;");
  changed = pages_differing(a, b);
  n_changed = g_hash_table_size(changed);
  ia = image_of(a);
  ib = image_of(b);
  diff_placed(ia, ib, changed, out, notes, &st);
  ck_assert_str_eq(out->str, "DELETE FROM big WHERE id=7777;\n"
                             "UPDATE big SET v='x' WHERE id=5;\n"
                             "UPDATE big SET v='x' WHERE id=10500;\n"
                             "UPDATE big SET v='x' WHERE id=20990;\n");
  ck_assert_msg(notes->len == 0, "%s", notes->str);
  /* Pages 1, the changed ones in both states, the root and at most one
   * interior page per changed leaf; walking every tree reads all 60-odd
   * interior pages and a leaf below each. */
  ck_assert_msg(st.n_page_reads <= 2 + 2 * n_changed + 1 + n_changed, "%" G_GUINT64_FORMAT
                " pages read for %u changed", st.n_page_reads, n_changed);
  g_string_free(out, TRUE);
  g_string_free(notes, TRUE);
}
END_TEST

/* A page past the end of the older state that looks like a leaf of a table
 * but is in no tree (SQLite leaves it out: the header's page count is
 * smaller): no key leads to it, so every tree is walked instead, and the
 * diff is the one a comparison in full prints. */
START_TEST(test_unplaced_leaf)
{
  g_autofree char *b = NULL;
  g_autofree char *a = make_pair("UPDATE t SET a = 'moved' WHERE id = 3;", &b);
  g_autofree guint8 *bytes = NULL;
  g_autoptr(SqlenvfsImage) ia = NULL, ib = NULL;
  g_autoptr(GHashTable) changed = NULL;
  GString *out = g_string_new(NULL), *notes = g_string_new(NULL);
  guint32 leaf = 0;
  gsize n;

  ck_assert(g_file_get_contents(b, (char **) &bytes, &n, NULL));
  /* a copy of the first table leaf of t (rows of t: id 1 on it) */
  for (gsize off = 1024; off < n && leaf == 0; off += 1024)
    if (bytes[off] == 0x0d && (bytes[off + 3] | bytes[off + 4]) != 0 &&
        memmem(bytes + off, 1024, "row 1", 5) != NULL)
      leaf = (guint32) (off / 1024) + 1;
  ck_assert_uint_gt(leaf, 0);
  {
    g_autofree guint8 *grown = g_malloc(n + 1024);
    memcpy(grown, bytes, n);
    memcpy(grown + n, bytes + (gsize) (leaf - 1) * 1024, 1024);
    ck_assert(g_file_set_contents(b, (char *) grown, (gssize) (n + 1024), NULL));
  }
  changed = pages_differing(a, b);
  ck_assert(g_hash_table_contains(changed, GUINT_TO_POINTER((guint) (n / 1024) + 1)));
  ia = image_of(a);
  ib = image_of(b);
  diff_placed(ia, ib, changed, out, notes, NULL);
  ck_assert_str_eq(out->str, "UPDATE t SET a='moved' WHERE id=3;\n");
  ck_assert_msg(strstr(notes->str, "walking every b-tree") != NULL, "%s", notes->str);
  g_string_free(out, TRUE);
  g_string_free(notes, TRUE);
}
END_TEST

/* One row changed in each of 60 tables: trying the tables in turn for each
 * changed leaf would cost more than walking every tree, which is done
 * instead; the diff is the one a comparison in full prints. */
START_TEST(test_many_tables)
{
  g_autofree char *a = g_build_filename(tmp, "ma.db", NULL);
  g_autofree char *b = g_build_filename(tmp, "mb.db", NULL);
  g_autofree char *bytes = NULL;
  g_autoptr(SqlenvfsImage) ia = NULL, ib = NULL;
  g_autoptr(GHashTable) changed = NULL;
  GString *out = g_string_new(NULL), *notes = g_string_new(NULL);
  GString *make = g_string_new("PRAGMA page_size=1024; PRAGMA journal_mode=DELETE;");
  GString *change = g_string_new(NULL);
  gsize n;

  for (int i = 0; i < 60; i++) {
    g_string_append_printf(make, "CREATE TABLE m%d(id INTEGER PRIMARY KEY, v);"
                                 "INSERT INTO m%d VALUES (1, 'a'), (2, 'b'), (3, 'c');", i, i);
    g_string_append_printf(change, "UPDATE m%d SET v = 'changed' WHERE id = 2;", i);
  }
  exec(a, make->str);
  ck_assert(g_file_get_contents(a, &bytes, &n, NULL));
  ck_assert(g_file_set_contents(b, bytes, (gssize) n, NULL));
  exec(b, change->str);
  changed = pages_differing(a, b);
  ia = image_of(a);
  ib = image_of(b);
  diff_placed(ia, ib, changed, out, notes, NULL);
  ck_assert(strstr(out->str, "UPDATE m59 SET v='changed' WHERE id=2;\n") != NULL);
  ck_assert_msg(strstr(notes->str, "too many tables") != NULL, "%s", notes->str);
  g_string_free(out, TRUE);
  g_string_free(notes, TRUE);
  g_string_free(make, TRUE);
  g_string_free(change, TRUE);
}
END_TEST

/* sqldiff's quoting: identifiers that need it, text with quotes and
 * control characters, blobs, reals (infinities as SQLite's quote() writes
 * them: a number too large for a double). */
START_TEST(test_quoting)
{
  g_autofree char *a = g_build_filename(tmp, "qa.db", NULL);
  g_autofree char *b = g_build_filename(tmp, "qb.db", NULL);
  g_autoptr(SqlenvfsImage) ia = NULL, ib = NULL;
  GString *out = g_string_new(NULL);
  GError *error = NULL;

  exec(a, "PRAGMA page_size=1024; CREATE TABLE \"odd name\"(\"select\" INTEGER PRIMARY KEY, v2, w);");
  exec(b, "PRAGMA page_size=1024; CREATE TABLE \"odd name\"(\"select\" INTEGER PRIMARY KEY, v2, w);"
          "INSERT INTO \"odd name\" VALUES (1, 'a''b' || char(10) || 'c', x'00ff'),"
          " (2, 0.1, 1e300), (3, 9e999, -9e999);");
  ia = image_of(a);
  ib = image_of(b);
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", NULL, FALSE, append, NULL, out, NULL, &error));
  ck_assert_str_eq(out->str,
                   "INSERT INTO \"odd name\"(\"select\",v2,w) VALUES(1,'a''b'||X'0a'\n||'c',x'00ff');\n"
                   "INSERT INTO \"odd name\"(\"select\",v2,w) VALUES(2,0.1,1.0e+300);\n"
                   "INSERT INTO \"odd name\"(\"select\",v2,w) VALUES(3,9.0e+999,-9.0e+999);\n");
  g_string_free(out, TRUE);
}
END_TEST


/* Unique values moved between rows by updates: SQLite checks a UNIQUE
 * constraint (an index, a composite key, a rowid table's PRIMARY KEY) on
 * each row as it is written, so an UPDATE that takes a value another row
 * gives up only later fails. The script orders such updates after the
 * rows whose values they take, and breaks a cycle by first parking one row
 * on a value nothing holds. */
typedef struct {
  const char *base, *change;
} UniqueCase;

#define UQ_HEAD "PRAGMA page_size=1024; PRAGMA journal_mode=DELETE;"

static const UniqueCase unique_cases[] = {
  /* 0: two values swapped in a UNIQUE column */
  { UQ_HEAD "CREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT UNIQUE, w);"
            "INSERT INTO u VALUES (1, 'x', 1), (2, 'y', 2), (3, 'z', 3);",
    "UPDATE u SET v = 'tmp', w = 11 WHERE id = 1; UPDATE u SET v = 'x', w = 12 WHERE id = 2;"
    "UPDATE u SET v = 'y' WHERE id = 1;" },
  /* 1: a cycle of four (each row takes the next one's value) */
  { UQ_HEAD "CREATE TABLE u(id INTEGER PRIMARY KEY, v INT UNIQUE);"
            "INSERT INTO u VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, 50);",
    "UPDATE u SET v = -v; UPDATE u SET v = CASE v WHEN -40 THEN 10 ELSE -v + 10 END"
    " WHERE id <= 4; UPDATE u SET v = 50 WHERE id = 5;" },
  /* 2: chains: a row takes the value of a row of a higher key, which takes
   * a new one (and a chain through three rows) */
  { UQ_HEAD "CREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE);"
            "INSERT INTO u VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e');",
    "UPDATE u SET v = 'new' WHERE id = 2; UPDATE u SET v = 'b' WHERE id = 1;"
    "UPDATE u SET v = 'c2' WHERE id = 5; UPDATE u SET v = 'e' WHERE id = 4;"
    "UPDATE u SET v = 'd' WHERE id = 3;" },
  /* 3: several unique constraints on one table (a column, a UNIQUE index
   * with NOCASE, a composite key): a cycle through two of them */
  { UQ_HEAD "CREATE TABLE u(id INTEGER PRIMARY KEY, a INT UNIQUE, b TEXT, c, d,"
            " UNIQUE(c, d));"
            "CREATE UNIQUE INDEX u_b ON u(b COLLATE NOCASE);"
            "INSERT INTO u VALUES (1, 1, 'p', 'k', 1), (2, 2, 'q', 'k', 2),"
            " (3, 3, 'r', 'k', 3);",
    "UPDATE u SET a = 9, b = 'tmp' WHERE id = 2; UPDATE u SET a = 2, b = 'new' WHERE id = 1;"
    "UPDATE u SET b = 'P' WHERE id = 2;"
    "UPDATE u SET d = 0 WHERE id = 3; UPDATE u SET d = 3 WHERE id = 2;"
    "UPDATE u SET d = 2 WHERE id = 3;" },
  /* 4: NULLs in a unique column: a row takes the value of a row that
   * becomes NULL, and a swap parked on NULL among other NULLs */
  { UQ_HEAD "CREATE TABLE u(id INTEGER PRIMARY KEY, v UNIQUE);"
            "INSERT INTO u VALUES (1, NULL), (2, 'x'), (3, NULL), (4, 'm'), (5, 'n');",
    "UPDATE u SET v = NULL WHERE id = 2; UPDATE u SET v = 'x' WHERE id = 1;"
    "UPDATE u SET v = 'tmp' WHERE id = 4; UPDATE u SET v = 'm' WHERE id = 5;"
    "UPDATE u SET v = 'n' WHERE id = 4;" },
  /* 5: a WITHOUT ROWID table: a swap in a UNIQUE column beside its key,
   * and a rowid table's TEXT PRIMARY KEY (a unique index, not its key) */
  { UQ_HEAD "CREATE TABLE w(k TEXT, j INT, v TEXT NOT NULL UNIQUE, PRIMARY KEY(k, j))"
            " WITHOUT ROWID;"
            "INSERT INTO w VALUES ('a', 1, 'x'), ('a', 2, 'y'), ('b', 1, 'z');"
            "CREATE TABLE r(name TEXT PRIMARY KEY, n);"
            "INSERT INTO r VALUES ('p', 1), ('q', 2);",
    "UPDATE w SET v = 'tmp' WHERE j = 1 AND k = 'a'; UPDATE w SET v = 'x' WHERE k = 'b';"
    "UPDATE w SET v = 'z' WHERE k = 'a' AND j = 1;"
    "UPDATE r SET name = 'tmp' WHERE n = 1; UPDATE r SET name = 'p' WHERE n = 2;"
    "UPDATE r SET name = 'q' WHERE n = 1;" },
  /* 6: NOT NULL with a CHECK that no other value passes, and STRICT
   * columns of each type: parked on values of their type */
  { UQ_HEAD "CREATE TABLE c(id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE"
            " CHECK (v IN ('x', 'y')));"
            "INSERT INTO c VALUES (1, 'x'), (2, 'y');"
            "CREATE TABLE s(id INTEGER PRIMARY KEY, i INT NOT NULL UNIQUE, r REAL NOT NULL UNIQUE,"
            " t TEXT NOT NULL UNIQUE COLLATE NOCASE, b BLOB NOT NULL UNIQUE, a ANY NOT NULL"
            " UNIQUE) STRICT;"
            "INSERT INTO s VALUES (1, 1, 1.5, 'a', x'01', 'v'), (2, 2, 2.5, 'b', x'02', 7);",
    "PRAGMA ignore_check_constraints=ON; UPDATE c SET v = 'tmp' WHERE id = 1;"
    "UPDATE c SET v = 'x' WHERE id = 2; UPDATE c SET v = 'y' WHERE id = 1;"
    "PRAGMA ignore_check_constraints=OFF;"
    "DELETE FROM s; INSERT INTO s VALUES (1, 2, 2.5, 'B', x'02', 7), (2, 1, 1.5, 'a', x'01',"
    " 'v');" },
  /* 7: a partial unique index: a row enters it with the value of a row
   * that leaves it, and two rows swap in it */
  { UQ_HEAD "CREATE TABLE p(id INTEGER PRIMARY KEY, v, live INT);"
            "CREATE UNIQUE INDEX p_v ON p(v) WHERE live = 1;"
            "INSERT INTO p VALUES (1, 'x', 0), (2, 'x', 1), (3, 'm', 1), (4, 'n', 1);",
    "UPDATE p SET live = 0 WHERE id = 2; UPDATE p SET live = 1 WHERE id = 1;"
    "UPDATE p SET v = 'tmp' WHERE id = 3; UPDATE p SET v = 'm' WHERE id = 4;"
    "UPDATE p SET v = 'n' WHERE id = 3;" },
  /* 8: a UNIQUE parent key referenced with ON DELETE CASCADE and ON UPDATE
   * CASCADE: the swap is written as UPDATEs (no DELETE that would cascade)
   * and the children as they are in the newer state */
  { UQ_HEAD "CREATE TABLE par(id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);"
            "CREATE TABLE kid(id INTEGER PRIMARY KEY, code TEXT REFERENCES par(code)"
            " ON DELETE CASCADE ON UPDATE CASCADE);"
            "INSERT INTO par VALUES (1, 'A'), (2, 'B'); INSERT INTO kid VALUES (1, 'A'), (2, 'B');",
    "PRAGMA foreign_keys=ON; PRAGMA defer_foreign_keys=ON;"
    "UPDATE par SET code = 'tmp' WHERE id = 1; UPDATE par SET code = 'A' WHERE id = 2;"
    "UPDATE par SET code = 'B' WHERE id = 1;" },
  /* 9: a unique index on an expression: three rows rotate their keys (in
   * another case), a chain of two, a row whose other column alone changes;
   * the key read from a CREATE statement with a comment, DESC and COLLATE */
  { UQ_HEAD "CREATE TABLE e(id INTEGER PRIMARY KEY, v TEXT NOT NULL, w);"
            "CREATE UNIQUE INDEX e_v ON e(lower(substr(v, 1)) /* a, ( */ COLLATE BINARY DESC);"
            "INSERT INTO e VALUES (1, 'Ab', 1), (2, 'cd', 2), (3, 'Ef', 3), (4, 'gh', 4),"
            " (5, 'ij', 5), (6, 'kl', 6);",
    "UPDATE e SET v = 't' || id; UPDATE e SET v = 'CD', w = 11 WHERE id = 1;"
    "UPDATE e SET v = 'ef' WHERE id = 2; UPDATE e SET v = 'AB' WHERE id = 3;"
    "UPDATE e SET v = 'new' WHERE id = 5; UPDATE e SET v = 'IJ' WHERE id = 4;"
    "UPDATE e SET v = 'kl', w = 66 WHERE id = 6;" },
  /* 10: unique generated columns (stored, and virtual beside an
   * expression of a partial index) in a WITHOUT ROWID table: two rows
   * swap the columns they are computed from */
  { UQ_HEAD "CREATE TABLE g(k TEXT PRIMARY KEY, a INT NOT NULL, b INT NOT NULL,"
            " s INT GENERATED ALWAYS AS (a + b) STORED UNIQUE,"
            " v INT GENERATED ALWAYS AS (b * 2) VIRTUAL) WITHOUT ROWID;"
            "CREATE UNIQUE INDEX g_v ON g(v, abs(a) % 100) WHERE b > 0;"
            "INSERT INTO g(k, a, b) VALUES ('p', 1, 10), ('q', 2, 20), ('r', 3, 30);",
    "UPDATE g SET a = -a, b = -b; UPDATE g SET a = 2, b = 20 WHERE k = 'p';"
    "UPDATE g SET a = 1, b = 10 WHERE k = 'q'; UPDATE g SET a = 3, b = 30 WHERE k = 'r';" },
};

START_TEST(test_unique_moves)
{
  g_autofree char *b = NULL;
  g_autofree char *a = make_pair_from(unique_cases[_i].base, unique_cases[_i].change, &b);
  g_autoptr(SqlenvfsImage) ia = image_of(a), ib = image_of(b);
  GString *out = g_string_new(NULL);
  GError *error = NULL;
  guint n_changed = 0;

  check_pair(a, b, &n_changed);
  ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", NULL, FALSE, append, NULL, out, NULL, &error));
  ck_assert_no_error(error);
  ck_assert_msg(strstr(out->str, "DELETE") == NULL || _i == 6 || _i >= 9, "%s", out->str);
  if (_i == 0) /* one row parked for a swap, on NULL (the column allows it) */
    ck_assert_str_eq(out->str, "UPDATE u SET v=NULL WHERE id=1; -- parked: its unique value"
                               " is taken first\n"
                               "UPDATE u SET v='x', w=12 WHERE id=2;\n"
                               "UPDATE u SET v='y', w=11 WHERE id=1;\n");
  if (_i == 2) /* chains need no parking: each row after the one it takes from */
    ck_assert_msg(strstr(out->str, "parked") == NULL, "%s", out->str);
  if (_i >= 9) /* a cycle through an expression: one row parked by a DELETE */
    ck_assert_msg(strstr(out->str, "; -- parked: its unique value is taken first\n") != NULL &&
                  strstr(out->str, "DELETE FROM") != NULL &&
                  strstr(out->str, "INSERT INTO") != NULL, "%s", out->str);
  if (_i == 9) /* the chain needs no park: id 4 after id 5 */
    ck_assert_msg(strstr(out->str, "UPDATE e SET v='new' WHERE id=5;\nUPDATE e SET v='IJ'") != NULL,
                  "%s", out->str);
  if (_i == 6) /* the CHECK is off while a row is parked, and on again */
    ck_assert_msg(strstr(out->str, "PRAGMA ignore_check_constraints=ON;\nUPDATE c SET") != NULL &&
                  strstr(out->str, "PRAGMA ignore_check_constraints=OFF;\n") != NULL,
                  "%s", out->str);
  g_string_free(out, TRUE);
}
END_TEST


/* Every row of a large table changes only the case of its NOCASE unique
 * key: each row's newer key is its own older one, and no row takes from
 * another. The join that looks for such rows must not walk the list of
 * changed rows for each of them: when it did (the list used as a
 * constraint on the older state's unique index), these 40,000 rows took
 * longer than the test's 120 s; now a fraction of a second. */
START_TEST(test_unique_case_only_many)
{
  g_autofree char *b = NULL;
  g_autofree char *a = make_pair_from(UQ_HEAD "CREATE TABLE u(id INTEGER PRIMARY KEY,"
                                      " name TEXT NOT NULL UNIQUE COLLATE NOCASE, v);"
                                      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT"
                                      " x + 1 FROM c WHERE x < 40000)"
                                      " INSERT INTO u SELECT x, 'name' || x, x FROM c;",
                                      "UPDATE u SET name = upper(name);", &b);
  guint n_changed = 0;

  check_pair(a, b, &n_changed);
  ck_assert_uint_gt(n_changed, 100);
}
END_TEST

static void
twice(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
  (void) argc;
  sqlite3_result_int64(ctx, 2 * sqlite3_value_int64(argv[0]));
}

static void
note_into(gpointer user, const char *message)
{
  g_string_append_printf(user, "note: %s\n", message);
}

/* A unique index on a function the diff does not have (one the application
 * defines): its keys cannot be computed, which stderr says; the script is
 * written all the same, its updates in key order. */
START_TEST(test_unique_unknown_function)
{
  g_autofree char *a = g_build_filename(tmp, "a.db", NULL);
  g_autofree char *b = g_build_filename(tmp, "b.db", NULL);
  const char *paths[2] = { a, b };
  const char *sql[2] = { UQ_HEAD "CREATE TABLE f(id INTEGER PRIMARY KEY, v INT);"
                                 "CREATE UNIQUE INDEX f_t ON f(twice(v));"
                                 "INSERT INTO f VALUES (1, 1), (2, 2);",
                         "UPDATE f SET v = 3 WHERE id = 2;" };
  GString *out = g_string_new(NULL);
  GError *error = NULL;

  for (guint i = 0; i < 2; i++) {
    sqlite3 *db = NULL;
    g_autofree char *bytes = NULL;
    gsize n;
    if (i == 1) {
      ck_assert(g_file_get_contents(a, &bytes, &n, NULL));
      ck_assert(g_file_set_contents(b, bytes, (gssize) n, NULL));
    }
    ck_assert_int_eq(sqlite3_open(paths[i], &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_create_function(db, "twice", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                             NULL, twice, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, sql[i], NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
  }
  {
    g_autoptr(SqlenvfsImage) ia = image_of(a), ib = image_of(b);
    ck_assert(sqlenvfs_diff_images(ia, "a", ib, "b", NULL, FALSE, append, note_into, out, NULL,
                                   &error));
  }
  ck_assert_no_error(error);
  ck_assert_str_eq(out->str, "note: table f: unique index f_t: its keys cannot be computed here"
                             " (no such function: twice), so the script does not order the"
                             " updates that move its values between rows\n"
                             "UPDATE f SET v=3 WHERE id=2;\n");
  g_string_free(out, TRUE);
}
END_TEST

/* Random moves of unique values among 40 rows (seeded by the loop index):
 * values permuted among some rows, some rows given new values or NULL,
 * in a nullable column, a NOT NULL NOCASE one, a composite key and a
 * partial index at once, with rows deleted and inserted besides; and the
 * same moves in a copy of the table with a unique index on an expression
 * besides (its parks are DELETEs). */
START_TEST(test_unique_random)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed(1000 + (guint32) _i);
  GString *base = g_string_new(UQ_HEAD "CREATE TABLE m(id INTEGER PRIMARY KEY, a INT UNIQUE,"
                                        " b TEXT NOT NULL UNIQUE COLLATE NOCASE, c, d INT,"
                                        " e, UNIQUE(c, d));"
                                        "CREATE UNIQUE INDEX m_e ON m(e) WHERE d % 2 = 0;");
  GString *change = g_string_new("UPDATE m SET a = a + 1000, b = 'tmp' || id, d = d + 1000,"
                                 " e = 'tmp' || id;");
  g_autofree char *b = NULL, *a = NULL;
  int perm[4][40];
  guint n_changed = 0;

  for (int i = 0; i < 40; i++) {
    g_autofree char *av = i % 7 == 0 ? g_strdup("NULL") : g_strdup_printf("%d", i);
    g_string_append_printf(base, "INSERT INTO m VALUES (%d, %s, '%c%d', 'k', %d, 'e%d');", i + 1,
                           av, i % 2 ? 'V' : 'v', i, i, i);
  }
  for (int k = 0; k < 4; k++) {
    for (int i = 0; i < 40; i++)
      perm[k][i] = i;
    /* Permute a random part of the rows. */
    for (int i = 39; i > 0; i--) {
      int j = g_rand_int_range(rand, 0, i + 1);
      if (g_rand_int_range(rand, 0, 3) == 0) {
        int x = perm[k][i];
        perm[k][i] = perm[k][j];
        perm[k][j] = x;
      }
    }
  }
  for (int i = 0; i < 40; i++) {
    int pa = perm[0][i], pb = perm[1][i], pd = perm[2][i], pe = perm[3][i];
    g_autofree char *av = NULL;
    if (g_rand_int_range(rand, 0, 10) == 0)
      av = g_strdup_printf("%d", 500 + i); /* a new value */
    else
      av = pa % 7 == 0 ? g_strdup("NULL") : g_strdup_printf("%d", pa);
    g_string_append_printf(change, "UPDATE m SET a = %s, b = '%c%d', d = %d, e = 'e%d'"
                                   " WHERE id = %d;",
                           av, (pb + i) % 3 ? 'V' : 'v', pb, pd, pe, i + 1);
  }
  g_string_append(change, "CREATE TEMP TABLE keep AS SELECT * FROM m WHERE id = 40;"
                          "DELETE FROM m WHERE id = 40;"
                          "INSERT INTO m SELECT 41, a, b, c, d, e FROM keep;");
  g_string_append(base, "CREATE TABLE n2(id INTEGER PRIMARY KEY, a INT UNIQUE,"
                        " b TEXT NOT NULL UNIQUE COLLATE NOCASE, c, d INT, e, UNIQUE(c, d));"
                        "CREATE UNIQUE INDEX n2_e ON n2(upper(e), c);"
                        "INSERT INTO n2 SELECT * FROM m;");
  {
    /* The same statements on n2 (its own temporary table). */
    g_auto(GStrv) parts = g_strsplit(change->str, " m ", -1);
    g_autofree char *on_n2 = g_strjoinv(" n2 ", parts);
    g_auto(GStrv) keep = g_strsplit(on_n2, "keep", -1);
    g_autofree char *joined = g_strjoinv("keep2", keep);
    g_string_append(change, joined);
  }
  a = make_pair_from(base->str, change->str, &b);
  check_pair(a, b, &n_changed);
  g_string_free(base, TRUE);
  g_string_free(change, TRUE);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("diff");
  TCase *tc = tcase_create("diff");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_changes, 0, G_N_ELEMENTS(changes));
  tcase_add_loop_test(tc, test_triggers_views, 0, G_N_ELEMENTS(trig_changes));
  tcase_add_test(tc, test_negative_zero);
  tcase_add_loop_test(tc, test_utf16, 0, G_N_ELEMENTS(utf16_enc));
  tcase_add_loop_test(tc, test_virtual_tables, 0, G_N_ELEMENTS(vtab_changes));
  tcase_add_test(tc, test_overflow_only);
  tcase_add_test(tc, test_quoting);
  tcase_add_test(tc, test_deep_tree);
  tcase_add_test(tc, test_schema_notes);
  tcase_add_test(tc, test_unplaced_leaf);
  tcase_add_test(tc, test_many_tables);
  tcase_add_loop_test(tc, test_unique_moves, 0, G_N_ELEMENTS(unique_cases));
  tcase_add_loop_test(tc, test_unique_random, 0, 20);
  tcase_add_test(tc, test_unique_unknown_function);
  tcase_add_test(tc, test_unique_case_only_many);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
