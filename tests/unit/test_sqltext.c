/* Unit tests for sqltext.c: the key terms of CREATE INDEX statements as
 * SQLite keeps them (quotes, comments, nested calls, COLLATE, ASC/DESC, a
 * WHERE clause), checked against SQLite's own reading of each index, the
 * texts that have no list of terms, and lists of column definitions split
 * at their top-level commas. */
#include "testutil.h"

#include <string.h>

#include "sqlenvfs/sqltext.h"

typedef struct {
  const char *sql;
  const char *terms[4];
} TermCase;

static const TermCase term_cases[] = {
  { "CREATE UNIQUE INDEX u ON t(lower(email))", { "lower(email)" } },
  { "CREATE INDEX \"a(b\" ON \"t(,\" ( a , b DESC,c asc )", { "a", "b", "c" } },
  { "CREATE UNIQUE INDEX u ON t(substr(a, 1, 3) COLLATE NOCASE DESC, 'x,)' || b, [c,d]"
    " /* a, ( */, \"e\"\"f\")",
    { "substr(a, 1, 3) COLLATE NOCASE", "'x,)' || b", "[c,d] /* a, ( */", "\"e\"\"f\"" } },
  { "CREATE INDEX i ON t(a -- the first, (\n, b) WHERE c IN (1, 2)", { "a -- the first, (", "b" } },
  { "CREATE INDEX i ON t(descr, b_desc, (x)DESC, json_extract(j, '$.k'))",
    { "descr", "b_desc", "(x)", "json_extract(j, '$.k')" } },
  { "CREATE INDEX i ON t(a)ASC", { "a" } },
};

START_TEST(test_terms)
{
  const TermCase *c = &term_cases[_i];
  g_autoptr(GPtrArray) terms = g_ptr_array_new_with_free_func(g_free);
  guint n = 0;

  while (n < G_N_ELEMENTS(c->terms) && c->terms[n] != NULL)
    n++;
  ck_assert_msg(sqlenvfs_sql_index_terms(c->sql, terms), "%s", c->sql);
  ck_assert_uint_eq(terms->len, n);
  for (guint i = 0; i < n; i++)
    ck_assert_str_eq(terms->pdata[i], c->terms[i]);
}
END_TEST

/* Each term read from sqlite_schema evaluates as the index's key does:
 * an index made on the terms read back (each followed by a newline) holds
 * the same keys, in the same order, as the original. */
START_TEST(test_terms_as_sqlite_reads_them)
{
  static const char *const idx[] = {
    "CREATE UNIQUE INDEX u1 ON t(lower(a) COLLATE NOCASE DESC, b -- b\n, a || '),' || b)",
    "CREATE INDEX u2 ON t(/* ( */ (a), coalesce(b, 'x') ASC)",
    "CREATE INDEX u3 ON t(\"a\" COLLATE RTRIM) WHERE b > 0",
  };
  sqlite3 *db = NULL;

  ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE t(a, b);"
                                    "INSERT INTO t VALUES ('Ab', 1), ('c ', 2), ('D', NULL);",
                                NULL, NULL, NULL), SQLITE_OK);
  for (guint i = 0; i < G_N_ELEMENTS(idx); i++) {
    g_autoptr(GPtrArray) terms = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GString) q = g_string_new("SELECT ");
    sqlite3_stmt *st = NULL;
    char *stored = NULL;

    ck_assert_int_eq(sqlite3_exec(db, idx[i], NULL, NULL, NULL), SQLITE_OK);
    /* What SQLite kept, read back (it is the text as written). */
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_schema WHERE type = 'index'"
                                            " ORDER BY rowid DESC LIMIT 1", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    stored = g_strdup((const char *) sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    ck_assert(sqlenvfs_sql_index_terms(stored, terms));
    g_free(stored);
    for (guint k = 0; k < terms->len; k++)
      g_string_append_printf(q, "%s(%s\n)", k ? ", " : "", (char *) terms->pdata[k]);
    g_string_append(q, " FROM t ORDER BY rowid");
    ck_assert_msg(sqlite3_prepare_v2(db, q->str, -1, &st, NULL) == SQLITE_OK, "%s: %s", q->str,
                  sqlite3_errmsg(db));
    ck_assert_int_eq(sqlite3_column_count(st), (int) terms->len);
    sqlite3_finalize(st);
  }
  {
    /* u1's keys computed from its terms equal the keys SQLite stored. */
    g_autoptr(GPtrArray) terms = g_ptr_array_new_with_free_func(g_free);
    sqlite3_stmt *st = NULL;
    int rc;
    ck_assert(sqlenvfs_sql_index_terms(idx[0], terms));
    g_autofree char *q = g_strdup_printf(
      "SELECT count(*) FROM t WHERE NOT EXISTS(SELECT 1 FROM t AS x INDEXED BY u1"
      " WHERE lower(x.a) COLLATE NOCASE = (%s\n) AND x.b IS (%s\n) AND x.rowid = t.rowid)",
      (char *) terms->pdata[0], (char *) terms->pdata[1]);
    rc = sqlite3_prepare_v2(db, q, -1, &st, NULL);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", q, sqlite3_errmsg(db));
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
}
END_TEST

START_TEST(test_no_terms)
{
  static const char *const bad[] = {
    "CREATE INDEX i ON t",        "CREATE INDEX i ON t(a",       "CREATE INDEX i ON t(a, )",
    "CREATE INDEX i ON t()",      "CREATE INDEX i ON t('a)",     "CREATE INDEX i ON t(a /* )",
    "CREATE INDEX \"i( ON t(a)",  "CREATE INDEX i ON t([a)",     "",
    "CREATE INDEX i ON t(a -- )",
  };
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GPtrArray) terms = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(terms, g_strdup("kept"));
    ck_assert_msg(!sqlenvfs_sql_index_terms(bad[i], terms), "%s", bad[i]);
    ck_assert_uint_eq(terms->len, 1);
    ck_assert_str_eq(terms->pdata[0], "kept");
  }
}
END_TEST

/* Lists split at their top-level commas: column definitions as ALTER
 * TABLE ADD COLUMN appends them (parentheses, quotes, doubled quotes and
 * comments holding commas), an empty part, and texts never closed. */
START_TEST(test_split_list)
{
  static const struct {
    const char *text;
    const char *parts[4];
  } ok[] = {
    { "a TEXT, b INT DEFAULT 'x,y'", { "a TEXT", "b INT DEFAULT 'x,y'" } },
    { "c NUMERIC(10, 2) CHECK (c IN (1, 2)) , \"d,\"\"e\" [f,g]",
      { "c NUMERIC(10, 2) CHECK (c IN (1, 2))", "\"d,\"\"e\" [f,g]" } },
    { "n DEFAULT 'it''s, here' /* a, b */, m -- c, d\n", { "n DEFAULT 'it''s, here' /* a, b */",
                                                            "m -- c, d" } },
    { "x,,y", { "x", "", "y" } },
  };
  static const char *const bad[] = { "a, b)", "a (b, c", "a 'b, c", "a /* b", "a `b" };

  for (guint i = 0; i < G_N_ELEMENTS(ok); i++) {
    g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
    guint n = 0;
    while (n < G_N_ELEMENTS(ok[i].parts) && ok[i].parts[n] != NULL)
      n++;
    ck_assert_msg(sqlenvfs_sql_split_list(ok[i].text, parts), "%s", ok[i].text);
    ck_assert_uint_eq(parts->len, n);
    for (guint k = 0; k < n; k++)
      ck_assert_str_eq(parts->pdata[k], ok[i].parts[k]);
  }
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(parts, g_strdup("kept"));
    ck_assert_msg(!sqlenvfs_sql_split_list(bad[i], parts), "%s", bad[i]);
    ck_assert_uint_eq(parts->len, 1);
    ck_assert_str_eq(parts->pdata[0], "kept");
  }
}
END_TEST

static Suite *
sqltext_suite(void)
{
  Suite *s = suite_create("sqltext");
  TCase *tc = tcase_create("sqltext");
  tcase_add_loop_test(tc, test_terms, 0, G_N_ELEMENTS(term_cases));
  tcase_add_test(tc, test_terms_as_sqlite_reads_them);
  tcase_add_test(tc, test_no_terms);
  tcase_add_test(tc, test_split_list);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(sqltext_suite());
}
