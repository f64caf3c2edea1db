/*
 * migrate.c — migrate-pg: plan against PostgreSQL's catalog and the SQLite
 * schema, snapshot, then stream every table into production in one write
 * transaction (contract and invariants in migrate.h).
 *
 *   sqlenvfs_migrate_pg
 *     |-- sqlenvfs_pg_source_open        connect, fix session, begin snapshot
 *     |-- sqlenvfs_pg_source_tables      catalog: tables, columns, types
 *     |-- plan_table (each)              SQLite side: exists? columns? rows?
 *     |                                  -- every check done, nothing written --
 *     |-- sqlenvfs_store_create          snapshot of the database
 *     |-- BEGIN IMMEDIATE
 *     |-- fk_watch_start                 foreign key violations before
 *     |-- load_table (each)              CREATE / DELETE, FETCH -> INSERT,
 *     |                                  each FETCH after keep_room
 *     |-- fk_watch_check                 no more violations than before
 *     '-- COMMIT                         (ROLLBACK on any failure)
 *
 * Why one transaction rather than a commit per batch: a commit per batch
 * would make a half-loaded table visible to applications and leave it
 * behind after a failure; loading into a staging table and swapping would
 * need a second full copy inside a transaction anyway, and leave staging
 * tables in production after a crash. SQLite keeps a large write
 * transaction in bounded memory by spilling its page cache into the WAL, and
 * those frames count for nothing until the commit frame is written, so one
 * transaction costs WAL space (about the size of the data loaded), not
 * memory, and makes the whole migration atomic for every reader.
 */
#include "config.h"

#include "sqlenvfs/migrate.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/pgsource.h"
#include "sqlenvfs/pgtype.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/util.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

/* Page cache of the loading connection; what spills beyond goes to the WAL. */
#define MIGRATE_CACHE_KIB 16384

/* The load grows production's WAL by about the data it loads, on
 * production's filesystem: before each batch of rows it must leave [cache]
 * min-free-bytes free there (invariant 6, migrate.h), or the disk fills and
 * the applications' own commits fail. The next batch is taken to grow the
 * WAL as much as the last one did, and at least this much. */
#define ROOM_MIN_NEED ((guint64)MIGRATE_CACHE_KIB * 1024)

typedef struct {
  const SqlenvfsRoot *root;
  char *dir;        /* production's directory                  */
  char *wal;        /* its -wal                                */
  guint64 wal_size; /* the -wal's largest size seen so far     */
} Room;

/* Whether the next batch (as large in the WAL as the last) leaves the room
 * production keeps; NOSPACE naming the table and row otherwise. */
static gboolean
keep_room(Room *room, const char *table, guint64 n_rows, GError **error)
{
  struct stat st;
  guint64 size = stat(room->wal, &st) == 0 ? (guint64)st.st_size : 0;
  guint64 grew = size > room->wal_size ? size - room->wal_size : 0;

  room->wal_size = MAX(room->wal_size, size);
  if (sqlenvfs_root_check_room_then(room->root, room->dir, MAX(grew, ROOM_MIN_NEED),
                                    "the next rows in production's WAL", "the load stops "
                                    "(free space there, or lower [cache] min-free-bytes)",
                                    error))
    return TRUE;
  g_prefix_error(error, "load table %s after %" G_GUINT64_FORMAT " rows: ", table, n_rows);
  return FALSE;
}

typedef struct {
  const SqlenvfsPgTable *pg; /* borrowed from the source's table list */
  char *target;              /* SQLite table name as stored (or to create) */
  char *quoted;              /* "target" for SQL                          */
  gboolean create;           /* create it in the load transaction         */
  char *create_sql;
  char *insert_sql;
  guint64 total;             /* rows expected, when progress is wanted    */
  /* Columns whose SQLite affinity may convert the value bound (invariant 5):
   * PostgreSQL column indexes, in the order of the RETURNING clause. */
  GArray *checked;           /* of guint; NULL when none                  */
  GPtrArray *decls;          /* declared SQLite type of each PG column    */
  /* The PostgreSQL column loaded into the target's INTEGER PRIMARY KEY, or
   * -1: SQLite makes up a key for a NULL bound there instead of storing it. */
  int rowid_col;
} Plan;

static void
plan_free(gpointer p)
{
  Plan *plan = p;
  g_free(plan->target);
  g_free(plan->quoted);
  g_free(plan->create_sql);
  g_free(plan->insert_sql);
  if (plan->checked)
    g_array_unref(plan->checked);
  if (plan->decls)
    g_ptr_array_unref(plan->decls);
  g_free(plan);
}

static void
migrated_table_free(gpointer p)
{
  SqlenvfsMigratedTable *t = p;
  g_free(t->source);
  g_free(t->target);
  g_free(t);
}

void
sqlenvfs_migrate_report_free(SqlenvfsMigrateReport *report)
{
  if (report == NULL)
    return;
  g_free(report->db_path);
  g_free(report->snapshot);
  g_free(report->snapshot_path);
  g_free(report->source);
  if (report->tables)
    g_ptr_array_unref(report->tables);
  g_free(report);
}

/* "name" with embedded quotes doubled: a SQLite identifier. */
static void
append_ident(GString *out, const char *name)
{
  g_string_append_c(out, '"');
  for (const char *p = name; *p; p++) {
    if (*p == '"')
      g_string_append_c(out, '"');
    g_string_append_c(out, *p);
  }
  g_string_append_c(out, '"');
}

static char *
quote_ident(const char *name)
{
  GString *s = g_string_new(NULL);
  append_ident(s, name);
  return g_string_free(s, FALSE);
}

/* --- plan ---------------------------------------------------------------- */

typedef struct {
  char *name;
  char *type;
  gboolean not_null;
  gboolean has_default;
  int pk;
  int hidden; /* 0 normal, 1 hidden (virtual table), 2/3 generated */
  gboolean matched;
} SqliteColumn;

static void
sqlite_column_free(gpointer p)
{
  SqliteColumn *c = p;
  g_free(c->name);
  g_free(c->type);
  g_free(c);
}

/* The object named @name in @db, ASCII case-insensitively: its stored name
 * and type ("table", "view", ...), or *name_out NULL when there is none. */
static gboolean
sqlite_lookup(sqlite3 *db, const char *path, const char *name, char **name_out,
              char **type_out, char **sql_out, GError **error)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT name, type, sql FROM sqlite_schema WHERE name = ?1 "
                              "COLLATE NOCASE AND type IN ('table', 'view', 'index') ORDER BY type",
                              -1, &st, NULL);
  *name_out = *type_out = *sql_out = NULL;
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *name_out = g_strdup((const char *)sqlite3_column_text(st, 0));
    *type_out = g_strdup((const char *)sqlite3_column_text(st, 1));
    *sql_out = g_strdup((const char *)sqlite3_column_text(st, 2));
    return TRUE;
  }
  if (rc == SQLITE_DONE)
    return TRUE;
  return sqlenvfs_error_sqlite(error, db, rc, "read schema of", path);
}

static GPtrArray *
sqlite_columns(sqlite3 *db, const char *path, const char *table, GError **error)
{
  g_autoptr(GPtrArray) cols = g_ptr_array_new_with_free_func(sqlite_column_free);
  g_autoptr(sqlite3_stmt) st = NULL;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk, hidden "
                              "FROM pragma_table_xinfo(?1)",
                              -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    SqliteColumn *c = g_new0(SqliteColumn, 1);
    c->name = g_strdup((const char *)sqlite3_column_text(st, 0));
    c->type = g_strdup((const char *)sqlite3_column_text(st, 1));
    c->not_null = sqlite3_column_int(st, 2);
    c->has_default = sqlite3_column_int(st, 3);
    c->pk = sqlite3_column_int(st, 4);
    c->hidden = sqlite3_column_int(st, 5);
    g_ptr_array_add(cols, c);
    rc = SQLITE_OK;
  }
  if (rc != SQLITE_DONE) {
    sqlenvfs_error_sqlite(error, db, rc, "read columns of", path);
    return NULL;
  }
  return g_steal_pointer(&cols);
}

static gboolean
sqlite_has_rows(sqlite3 *db, const char *path, const char *quoted, gboolean *has_rows,
                GError **error)
{
  g_autofree char *sql = g_strdup_printf("SELECT EXISTS (SELECT 1 FROM %s)", quoted);
  gint64 v = 0;
  if (!sqlenvfs_db_query_int(db, sql, &v, path, error))
    return FALSE;
  *has_rows = v != 0;
  return TRUE;
}

static char *
build_create_sql(const SqlenvfsPgTable *t, const char *quoted)
{
  GString *sql = g_string_new("CREATE TABLE ");
  guint n_pk = 0;
  const SqlenvfsPgColumn *pk1 = NULL;

  for (guint i = 0; i < t->columns->len; i++) {
    const SqlenvfsPgColumn *c = t->columns->pdata[i];
    if (c->pk_position > 0) {
      n_pk++;
      pk1 = c;
    }
  }
  /* One integer key column becomes INTEGER PRIMARY KEY (the rowid). */
  gboolean inline_pk = n_pk == 1 && strcmp(sqlenvfs_pg_type_decl(&pk1->type), "INTEGER") == 0;

  g_string_append_printf(sql, "%s (", quoted);
  for (guint i = 0; i < t->columns->len; i++) {
    const SqlenvfsPgColumn *c = t->columns->pdata[i];
    if (i)
      g_string_append(sql, ", ");
    append_ident(sql, c->name);
    g_string_append_printf(sql, " %s", sqlenvfs_pg_type_decl(&c->type));
    if (inline_pk && c == pk1)
      g_string_append(sql, " PRIMARY KEY");
    if (c->not_null)
      g_string_append(sql, " NOT NULL");
  }
  if (n_pk > 0 && !inline_pk) {
    g_string_append(sql, ", PRIMARY KEY (");
    for (guint pos = 1; pos <= n_pk; pos++)
      for (guint i = 0; i < t->columns->len; i++) {
        const SqlenvfsPgColumn *c = t->columns->pdata[i];
        if (c->pk_position == (int)pos) {
          if (pos > 1)
            g_string_append(sql, ", ");
          append_ident(sql, c->name);
        }
      }
    g_string_append_c(sql, ')');
  }
  g_string_append_c(sql, ')');
  return g_string_free(sql, FALSE);
}

/* Whether the CREATE TABLE statement @sql declares a conflict clause ON
 * CONFLICT REPLACE (on its primary key, a UNIQUE, NOT NULL or CHECK
 * constraint): its words, outside string literals, quoted names and
 * comments. */
static gboolean
declares_replace(const char *sql)
{
  g_autoptr(GPtrArray) words = g_ptr_array_new_with_free_func(g_free);
  const char *p = sql ? sql : "";

  while (*p) {
    if (*p == '\'' || *p == '"' || *p == '`' || *p == '[') {
      char end = *p == '[' ? ']' : *p;
      for (p++; *p && !(*p == end && p[1] != end); p++)
        if (*p == end)
          p++; /* a doubled quote stands for itself */
      if (*p)
        p++;
      g_ptr_array_add(words, g_strdup("")); /* a word of its own, never ON or CONFLICT */
    } else if (p[0] == '-' && p[1] == '-') {
      while (*p && *p != '\n')
        p++;
    } else if (p[0] == '/' && p[1] == '*') {
      const char *e = strstr(p + 2, "*/");
      p = e ? e + 2 : p + strlen(p);
    } else if (g_ascii_isalnum(*p) || *p == '_') {
      const char *b = p;
      while (g_ascii_isalnum(*p) || *p == '_' || *p == '$')
        p++;
      g_ptr_array_add(words, g_ascii_strdown(b, p - b));
    } else {
      if (!g_ascii_isspace(*p))
        g_ptr_array_add(words, g_strdup(""));
      p++;
    }
  }
  for (guint i = 0; i + 2 < words->len; i++)
    if (strcmp(words->pdata[i], "on") == 0 && strcmp(words->pdata[i + 1], "conflict") == 0 &&
        strcmp(words->pdata[i + 2], "replace") == 0)
      return TRUE;
  return FALSE;
}

static char *
build_insert_sql(const SqlenvfsPgTable *t, const char *quoted, GPtrArray *target_names,
                 GArray *checked)
{
  /* A plain INSERT: OR ABORT would also override the conflict clauses of
   * the INSERTs its triggers make (INSERT OR IGNORE into a tag table, say),
   * failing loads that are right. The target's own ON CONFLICT REPLACE is
   * refused while planning; its ON CONFLICT IGNORE, like a trigger's
   * RAISE(IGNORE), stores no row, which load_table sees. */
  GString *sql = g_string_new("INSERT INTO ");
  g_string_append(sql, quoted);
  if (t->columns->len == 0) {
    g_string_append(sql, " DEFAULT VALUES");
    return g_string_free(sql, FALSE);
  }
  g_string_append(sql, " (");
  for (guint i = 0; i < target_names->len; i++) {
    if (i)
      g_string_append(sql, ", ");
    append_ident(sql, target_names->pdata[i]);
  }
  g_string_append(sql, ") VALUES (");
  for (guint i = 0; i < target_names->len; i++)
    g_string_append(sql, i ? ", ?" : "?");
  g_string_append_c(sql, ')');
  for (guint i = 0; checked && i < checked->len; i++) {
    g_string_append(sql, i ? ", " : " RETURNING ");
    append_ident(sql, target_names->pdata[g_array_index(checked, guint, i)]);
  }
  return g_string_free(sql, FALSE);
}

/* SQLite's affinity of a declared column type (the rules of "Determination
 * of Column Affinity" in SQLite's datatype3 page, in their order). */
typedef enum { AFF_BLOB, AFF_TEXT, AFF_NUMERIC, AFF_INTEGER, AFF_REAL } Affinity;

static Affinity
declared_affinity(const char *decl)
{
  g_autofree char *up = g_ascii_strup(decl ? decl : "", -1);
  if (strstr(up, "INT"))
    return AFF_INTEGER;
  if (strstr(up, "CHAR") || strstr(up, "CLOB") || strstr(up, "TEXT"))
    return AFF_TEXT;
  if (strstr(up, "BLOB") || *up == '\0')
    return AFF_BLOB;
  if (strstr(up, "REAL") || strstr(up, "FLOA") || strstr(up, "DOUB"))
    return AFF_REAL;
  return AFF_NUMERIC;
}

static const char *
affinity_name(Affinity a)
{
  static const char *const names[] = { "BLOB", "TEXT", "NUMERIC", "INTEGER", "REAL" };
  return names[a];
}

/* The storage class the mapping gives values of @t. */
static SqlenvfsPgValueType
mapped_class(const SqlenvfsPgType *t)
{
  switch (t->kind) {
  case SQLENVFS_PG_BOOL:
  case SQLENVFS_PG_INT:
    return SQLENVFS_PG_VALUE_INTEGER;
  case SQLENVFS_PG_FLOAT:
    return SQLENVFS_PG_VALUE_REAL;
  case SQLENVFS_PG_NUMERIC:
    return t->numeric_as_real ? SQLENVFS_PG_VALUE_REAL : SQLENVFS_PG_VALUE_TEXT;
  case SQLENVFS_PG_BYTEA:
    return SQLENVFS_PG_VALUE_BLOB;
  default:
    return SQLENVFS_PG_VALUE_TEXT;
  }
}

/* Whether a column declared @decl may convert values of @t on insert: text
 * that looks like a number into INTEGER, REAL or NUMERIC affinity, an integer
 * into REAL affinity, a real into TEXT affinity (SQLite keeps 15 digits). */
static gboolean
affinity_may_convert(const SqlenvfsPgType *t, const char *decl)
{
  Affinity a = declared_affinity(decl);
  switch (mapped_class(t)) {
  case SQLENVFS_PG_VALUE_TEXT:
    return a == AFF_INTEGER || a == AFF_REAL || a == AFF_NUMERIC;
  case SQLENVFS_PG_VALUE_INTEGER:
    return a == AFF_REAL;
  case SQLENVFS_PG_VALUE_REAL:
    return a == AFF_TEXT;
  default:
    return FALSE;
  }
}

/* The type of the value RETURNING gave for column @col as SQLite stores
 * and reads it back: in a column of REAL affinity an integral value is
 * returned as an INTEGER, but stored (and read) as a REAL. */
static int
stored_type(sqlite3_stmt *st, int col, Affinity aff)
{
  int got = sqlite3_column_type(st, col);
  return got == SQLITE_INTEGER && aff == AFF_REAL ? SQLITE_FLOAT : got;
}

/* Whether what SQLite stored (@got, a RETURNING column) keeps the value bound
 * (@text as PostgreSQL printed it, @v converted unless verbatim) exactly:
 * text read back as the same text, an integer as the same integer, a real as
 * the same double. An integer stored as the text of its digits, and text
 * stored as the integer it spells exactly, are kept too. */
static gboolean
stored_exactly(sqlite3_stmt *st, int col, const SqlenvfsPgType *t, const char *text,
               const SqlenvfsPgValue *v, Affinity aff)
{
  int got = stored_type(st, col, aff);
  SqlenvfsPgValueType want = sqlenvfs_pg_type_is_verbatim(t) ? SQLENVFS_PG_VALUE_TEXT : v->type;
  switch (want) {
  case SQLENVFS_PG_VALUE_NULL:
    return got == SQLITE_NULL;
  case SQLENVFS_PG_VALUE_TEXT: {
    const char *s = (const char *)sqlite3_column_text(st, col);
    const char *bound = sqlenvfs_pg_type_is_verbatim(t) ? text : v->buf->str;
    /* An INTEGER is kept when its digits are the text ('42', not '042');
     * a REAL never is (12.0 reads back as '12.0'). */
    return (got == SQLITE_TEXT || got == SQLITE_INTEGER) && s && strcmp(s, bound) == 0;
  }
  case SQLENVFS_PG_VALUE_INTEGER:
    if (got == SQLITE_INTEGER)
      return sqlite3_column_int64(st, col) == v->i;
    if (got == SQLITE_FLOAT) {
      double r = sqlite3_column_double(st, col);
      return r >= -9223372036854775808.0 && r < 9223372036854775808.0 && (gint64)r == v->i;
    }
    return FALSE;
  case SQLENVFS_PG_VALUE_REAL:
    if (got == SQLITE_FLOAT)
      return sqlite3_column_double(st, col) == v->r;
    if (got == SQLITE_INTEGER)
      return (double)sqlite3_column_int64(st, col) == v->r;
    if (got == SQLITE_TEXT) {
      const char *s = (const char *)sqlite3_column_text(st, col);
      char *end = NULL;
      double r = g_ascii_strtod(s, &end);
      /* SQLite writes an infinite REAL as 'Inf', which it does not read
       * back as a number (nor does anything else take it for Infinity). */
      return end && *end == '\0' && end != s && isfinite(r) && r == v->r;
    }
    return FALSE;
  case SQLENVFS_PG_VALUE_BLOB:
    return got == SQLITE_BLOB;
  }
  return FALSE;
}

/* Whether @plan's CREATE TABLE works, tried on an empty database in
 * memory: two columns whose names differ only in case, a table with no
 * column, a name SQLite reserves are found now, before the snapshot. */
static gboolean
create_is_valid(const Plan *plan, const SqlenvfsPgTable *t, const char *path, GError **error)
{
  sqlite3 *mem = NULL;
  char *msg = NULL;
  int rc = sqlite3_open_v2(":memory:", &mem, SQLITE_OPEN_READWRITE, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(mem, plan->create_sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK)
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "--create-tables cannot create table %s in %s from %s: %s (%s)", plan->target,
                path, t->display, msg ? msg : sqlite3_errstr(rc),
                t->columns->len == 0 ? "a SQLite table needs at least one column; migrate a "
                                       "view that adds one"
                                     : "create the table in the schema yourself, or migrate a "
                                       "view that renames its columns");
  sqlite3_free(msg);
  sqlite3_close(mem);
  return rc == SQLITE_OK;
}

/* Whether @sc, of a table with @n_pk key columns, is the rowid under another
 * name (INTEGER PRIMARY KEY). In a WITHOUT ROWID table it is not, but its
 * key refuses NULL anyway, so taking it for one refuses nothing more. */
static gboolean
is_rowid_alias(const SqliteColumn *sc, guint n_pk)
{
  return n_pk == 1 && sc->pk == 1 && sc->type && g_ascii_strcasecmp(sc->type, "INTEGER") == 0;
}

/* Every check for one table; nothing is written. */
/* Replace mode empties @table with DELETE, which runs its DELETE triggers:
 * one may delete or change rows of tables the migration does not name (a
 * cascade by hand), with nothing to tell. Such a table is refused while
 * planning. SQLite compiles a DELETE that has triggers to run into a
 * program with a subprogram for them (OP_Program); the statement is only
 * prepared and explained, never run. */
static gboolean
refuse_delete_triggers(sqlite3 *db, const char *path, const char *table, GError **error)
{
  g_autofree char *quoted = quote_ident(table);
  g_autofree char *sql = g_strdup_printf("EXPLAIN DELETE FROM %s", quoted);
  g_autoptr(GString) names = g_string_new(NULL);
  sqlite3_stmt *st = NULL;
  gboolean fires = FALSE;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

  if (rc != SQLITE_OK)
    return sqlenvfs_error_sqlite(error, db, rc, "plan emptying a table of", path);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    if (g_strcmp0((const char *)sqlite3_column_text(st, 1), "Program") == 0)
      fires = TRUE;
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return sqlenvfs_error_sqlite(error, db, rc, "plan emptying a table of", path);
  if (!fires)
    return TRUE;
  rc = sqlite3_prepare_v2(db,
                          "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND "
                          "tbl_name = ?1 COLLATE NOCASE ORDER BY name",
                          -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW)
      g_string_append_printf(names, "%s%s", names->len ? ", " : "",
                             (const char *)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
              "table %s in %s has triggers that run on DELETE (its triggers: %s): --mode "
              "replace empties it with DELETE, and they could change or delete rows of "
              "other tables; drop them for the migration and create them again after it, "
              "or empty the table yourself and use --mode append",
              table, path, names->len ? names->str : "?");
  return FALSE;
}

static Plan *
plan_table(sqlite3 *db, const char *path, const SqlenvfsPgTable *t,
           const SqlenvfsMigrateOptions *opts, GError **error)
{
  g_autoptr(GPtrArray) cols = NULL;
  g_autoptr(GPtrArray) names = g_ptr_array_new();
  g_autofree char *found = NULL, *kind = NULL, *create = NULL;
  guint n_pk = 0;
  Plan *plan;

  /* Every column must have a mapping (checked first: the most basic). */
  for (guint i = 0; i < t->columns->len; i++) {
    const SqlenvfsPgColumn *c = t->columns->pdata[i];
    if (c->type.kind == SQLENVFS_PG_UNSUPPORTED) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "column %s.%s has PostgreSQL type %s, which migrate-pg cannot map to "
                  "SQLite (cast it in a view and migrate the view; see docs/MIGRATE.md)",
                  t->display, c->name, c->type_name);
      return NULL;
    }
  }
  if (g_ascii_strcasecmp(t->name, "_environment") == 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "refusing to migrate %s: _environment is sqlenvfs's environment marker "
                "table in %s (leave it out of --tables)",
                t->display, path);
    return NULL;
  }
  if (g_ascii_strncasecmp(t->name, "sqlite_", 7) == 0) {
    /* sqlite_sequence, sqlite_stat1, ...: SQLite's own tables, which an
     * existing one would be loaded into (and --create-tables cannot make). */
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "refusing to migrate %s: a table whose name begins with sqlite_ is one of "
                "SQLite's own in %s (migrate a view of another name, or leave it out of "
                "--tables)",
                t->display, path);
    return NULL;
  }
  if (!sqlite_lookup(db, path, t->name, &found, &kind, &create, error))
    return NULL;
  if (found && strcmp(kind, "table") == 0 && declares_replace(create)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "table %s in %s declares ON CONFLICT REPLACE: a row of %s that conflicts "
                "would replace a row of production, or take a default for its NULL, with no "
                "error; migrate-pg does not load into it (load into a table without the "
                "clause, then copy the rows with SQL you choose)",
                found, path, t->display);
    return NULL;
  }
  if (found && strcmp(kind, "table") != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "%s in %s is %s %s, not a table: migrate-pg loads tables only (name another "
                "table, or migrate a view of another name)", found, path,
                strcmp(kind, "index") == 0 ? "an" : "a", kind);
    return NULL;
  }
  if (found && opts->mode == SQLENVFS_MIGRATE_REPLACE &&
      !refuse_delete_triggers(db, path, found, error))
    return NULL;

  plan = g_new0(Plan, 1);
  plan->pg = t;
  plan->rowid_col = -1;
  plan->target = g_strdup(found ? found : t->name);
  plan->quoted = quote_ident(plan->target);

  if (found == NULL) {
    if (!opts->create_tables) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "table %s does not exist in %s (create it in the schema, or pass "
                  "--create-tables to create it from PostgreSQL's definition)",
                  t->name, path);
      plan_free(plan);
      return NULL;
    }
    plan->create = TRUE;
    plan->create_sql = build_create_sql(t, plan->quoted);
    if (!create_is_valid(plan, t, path, error)) {
      plan_free(plan);
      return NULL;
    }
    /* rowid_col stays -1: the INTEGER PRIMARY KEY created is PostgreSQL's
     * key of an integer type, which holds no NULL. */
    for (guint i = 0; i < t->columns->len; i++)
      g_ptr_array_add(names, ((SqlenvfsPgColumn *)t->columns->pdata[i])->name);
    plan->insert_sql = build_insert_sql(t, plan->quoted, names, NULL);
    return plan;
  }

  plan->decls = g_ptr_array_new_with_free_func(g_free);
  cols = sqlite_columns(db, path, plan->target, error);
  if (cols == NULL) {
    plan_free(plan);
    return NULL;
  }
  n_pk = 0;
  for (guint j = 0; j < cols->len; j++)
    n_pk += ((SqliteColumn *)cols->pdata[j])->pk > 0;
  /* Match by name (invariant 3). */
  for (guint i = 0; i < t->columns->len; i++) {
    const SqlenvfsPgColumn *c = t->columns->pdata[i];
    SqliteColumn *match = NULL;
    for (guint j = 0; j < cols->len && !match; j++) {
      SqliteColumn *sc = cols->pdata[j];
      if (sc->hidden != 1 && g_ascii_strcasecmp(sc->name, c->name) == 0)
        match = sc;
    }
    if (match == NULL || match->matched || match->hidden >= 2) {
      const char *why = match == NULL ? "has no such column"
                        : match->matched
                          ? "has one column for two PostgreSQL columns that differ only in case"
                          : "computes it (a generated column)";
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "column %s.%s cannot be loaded: table %s in %s %s (add the column to the "
                  "SQLite table, or migrate a view that leaves it out)",
                  t->display, c->name, plan->target, path, why);
      plan_free(plan);
      return NULL;
    }
    match->matched = TRUE;
    if (is_rowid_alias(match, n_pk))
      plan->rowid_col = (int)i;
    g_ptr_array_add(names, match->name);
    g_ptr_array_add(plan->decls, g_strdup(match->type ? match->type : ""));
    if (affinity_may_convert(&c->type, match->type)) {
      if (plan->checked == NULL)
        plan->checked = g_array_new(FALSE, FALSE, sizeof(guint));
      g_array_append_val(plan->checked, i);
    }
  }
  /* SQLite columns with nothing to fill them need a default. */
  {
    for (guint j = 0; j < cols->len; j++) {
      SqliteColumn *sc = cols->pdata[j];
      if (!sc->matched && sc->hidden == 0 && sc->not_null && !sc->has_default &&
          !is_rowid_alias(sc, n_pk)) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                    "column %s of table %s in %s is NOT NULL without a default, and %s has "
                    "no column of that name to fill it (give it a default or add the column "
                    "in PostgreSQL)",
                    sc->name, plan->target, path, t->display);
        plan_free(plan);
        return NULL;
      }
    }
  }
  if (opts->mode == SQLENVFS_MIGRATE_NEW) {
    gboolean has_rows = FALSE;
    if (!sqlite_has_rows(db, path, plan->quoted, &has_rows, error)) {
      plan_free(plan);
      return NULL;
    }
    if (has_rows) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "table %s in %s already has rows; refusing to add to them (pass --mode "
                  "append to add, or --mode replace to replace them)",
                  plan->target, path);
      plan_free(plan);
      return NULL;
    }
  }
  plan->insert_sql = build_insert_sql(t, plan->quoted, names, plan->checked);
  {
    /* Prepare once now: SQLite's own objections come before any write. */
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, plan->insert_sql, -1, &st, NULL);
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
      g_autofree char *what = g_strdup_printf("prepare insert into %s of", plan->target);
      sqlenvfs_error_sqlite(error, db, rc, what, path);
      plan_free(plan);
      return NULL;
    }
  }
  return plan;
}

/* --- load ---------------------------------------------------------------- */

static gboolean
bind_value(sqlite3_stmt *st, int idx, const SqlenvfsPgValue *v)
{
  switch (v->type) {
  case SQLENVFS_PG_VALUE_NULL:
    return sqlite3_bind_null(st, idx) == SQLITE_OK;
  case SQLENVFS_PG_VALUE_INTEGER:
    return sqlite3_bind_int64(st, idx, v->i) == SQLITE_OK;
  case SQLENVFS_PG_VALUE_REAL:
    return sqlite3_bind_double(st, idx, v->r) == SQLITE_OK;
  case SQLENVFS_PG_VALUE_TEXT:
    return sqlite3_bind_text64(st, idx, v->buf->str, v->buf->len, SQLITE_STATIC,
                               SQLITE_UTF8) == SQLITE_OK;
  case SQLENVFS_PG_VALUE_BLOB:
    return sqlite3_bind_blob64(st, idx, v->buf->str, v->buf->len, SQLITE_STATIC) == SQLITE_OK;
  }
  return FALSE;
}

/* Invariant 5: the values of the checked columns of the row just inserted
 * (RETURNING) against what was bound. */
static gboolean
check_stored(sqlite3_stmt *st, const char *path, const Plan *plan, guint r,
             const SqlenvfsPgCursor *cur, const SqlenvfsPgValue *vals, guint64 row_no,
             GError **error)
{
  const SqlenvfsPgTable *t = plan->pg;
  for (guint k = 0; k < plan->checked->len; k++) {
    guint c = g_array_index(plan->checked, guint, k);
    const SqlenvfsPgColumn *col = t->columns->pdata[c];
    const char *decl = plan->decls->pdata[c];
    gsize len = 0;
    const char *text = sqlenvfs_pg_cursor_value(cur, r, c, &len);
    const char *stored;
    char *real_text = NULL;
    if (text == NULL || (!sqlenvfs_pg_type_is_verbatim(&col->type) &&
                         vals[c].type == SQLENVFS_PG_VALUE_NULL))
      continue;
    Affinity aff = declared_affinity(decl);
    int type;
    if (stored_exactly(st, (int)k, &col->type, text, &vals[c], aff))
      continue;
    type = stored_type(st, (int)k, aff);
    if (type == SQLITE_FLOAT)
      stored = real_text = sqlite3_mprintf("%!.15g", sqlite3_column_double(st, (int)k));
    else
      stored = (const char *)sqlite3_column_text(st, (int)k);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "column %s.%s, row %" G_GUINT64_FORMAT ": SQLite would store '%.80s' as %s "
                "%.80s: column %s of table %s in %s is declared '%s', and its %s affinity "
                "converts the value (declare the column %s%s, or migrate a view that casts "
                "it)",
                t->display, col->name, row_no, text,
                type == SQLITE_TEXT ? "TEXT" : type == SQLITE_INTEGER ? "INTEGER" : "REAL",
                stored ? stored : "?", col->name, plan->target, path, decl,
                affinity_name(declared_affinity(decl)), sqlenvfs_pg_type_decl(&col->type),
                col->type.kind == SQLENVFS_PG_NUMERIC && !col->type.numeric_as_real
                  ? " to keep the exact decimal, or pass --numeric-as-real to store REAL"
                  : "");
    sqlite3_free(real_text);
    return FALSE;
  }
  return TRUE;
}

/* Whether column @c of row @r was converted (not NULL in PostgreSQL, not
 * bound verbatim), so that its value in the row's vals[] is this row's. */
static gboolean
text_is_bound(const SqlenvfsPgCursor *cur, guint r, guint c, const SqlenvfsPgTable *t)
{
  gsize len = 0;
  const SqlenvfsPgColumn *col = t->columns->pdata[c];
  return sqlenvfs_pg_cursor_value(cur, r, c, &len) != NULL &&
         !sqlenvfs_pg_type_is_verbatim(&col->type);
}

/* A NULL (or a NaN, stored as NULL) for the target's INTEGER PRIMARY KEY:
 * SQLite would store a key of its own choosing, a row PostgreSQL never had. */
static void
null_key_error(GError **error, const char *path, const Plan *plan, const SqlenvfsPgColumn *col,
               guint64 row_no, gboolean nan)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
              "column %s.%s, row %" G_GUINT64_FORMAT " is %s, and column %s of table %s in %s "
              "is its INTEGER PRIMARY KEY (the rowid), where SQLite would store a new key "
              "instead (give the row a key in PostgreSQL, or load the column into one that "
              "is not the INTEGER PRIMARY KEY)",
              plan->pg->display, col->name, row_no, nan ? "NaN, stored as NULL" : "NULL",
              col->name, plan->target, path);
}

static gboolean
load_table(SqlenvfsPgSource *src, sqlite3 *db, const char *path, const Plan *plan,
           const SqlenvfsMigrateOptions *opts, const SqlenvfsMigrateProgress *progress,
           Room *room, SqlenvfsMigratedTable *out, GError **error)
{
  const SqlenvfsPgTable *t = plan->pg;
  guint n_cols = t->columns->len;
  guint batch = opts->batch_rows ? opts->batch_rows : SQLENVFS_MIGRATE_DEFAULT_BATCH_ROWS;
  g_autoptr(sqlite3_stmt) st = NULL;
  g_autoptr(SqlenvfsPgCursor) cur = NULL;
  g_autofree SqlenvfsPgValue *vals = g_new0(SqlenvfsPgValue, MAX(n_cols, 1));
  gboolean ok = FALSE;
  int rc;

  if (plan->create && !sqlenvfs_db_exec(db, plan->create_sql, path, error)) {
    g_prefix_error(error, "create table %s: ", plan->target);
    return FALSE;
  }
  if (!plan->create && opts->mode != SQLENVFS_MIGRATE_APPEND) {
    gboolean has_rows = FALSE;
    if (!sqlite_has_rows(db, path, plan->quoted, &has_rows, error))
      return FALSE;
    if (has_rows && opts->mode == SQLENVFS_MIGRATE_NEW) {
      /* Rows arrived between the plan and the write lock. */
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "table %s in %s has had rows added since the migration started; "
                  "refusing to add to them (pass --mode append or --mode replace)",
                  plan->target, path);
      return FALSE;
    }
    if (has_rows) {
      g_autofree char *sql = g_strdup_printf("DELETE FROM %s", plan->quoted);
      if (!sqlenvfs_db_exec(db, sql, path, error)) {
        g_prefix_error(error, "empty table %s: ", plan->target);
        return FALSE;
      }
      out->n_deleted = (guint64)sqlite3_changes64(db);
    }
  }
  rc = sqlite3_prepare_v2(db, plan->insert_sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    g_autofree char *what = g_strdup_printf("prepare insert into %s of", plan->target);
    return sqlenvfs_error_sqlite(error, db, rc, what, path);
  }
  cur = sqlenvfs_pg_cursor_open(src, t, batch, error);
  if (cur == NULL)
    return FALSE;
  for (guint c = 0; c < n_cols; c++)
    sqlenvfs_pg_value_init(&vals[c]);

  for (;;) {
    guint n = 0;
    if (!keep_room(room, plan->target, out->n_rows, error))
      goto out;
    if (!sqlenvfs_pg_cursor_fetch(cur, &n, error)) {
      g_prefix_error(error, "read table %s after %" G_GUINT64_FORMAT " rows: ", t->display,
                     out->n_rows);
      goto out;
    }
    if (n == 0)
      break;
    for (guint r = 0; r < n; r++) {
      guint64 row_no = out->n_rows + 1;
      for (guint c = 0; c < n_cols; c++) {
        const SqlenvfsPgColumn *col = t->columns->pdata[c];
        gsize len = 0;
        const char *text = sqlenvfs_pg_cursor_value(cur, r, c, &len);
        gboolean bound;
        if (text == NULL && (int)c == plan->rowid_col) {
          null_key_error(error, path, plan, col, row_no, FALSE);
          goto out;
        }
        if (text == NULL) {
          bound = sqlite3_bind_null(st, (int)c + 1) == SQLITE_OK;
        } else if (sqlenvfs_pg_type_is_verbatim(&col->type)) {
          bound = sqlite3_bind_text64(st, (int)c + 1, text, len, SQLITE_STATIC, SQLITE_UTF8) ==
                  SQLITE_OK;
        } else {
          if (!sqlenvfs_pg_value_convert(&col->type, text, len, &vals[c], error)) {
            g_prefix_error(error, "column %s.%s, row %" G_GUINT64_FORMAT ": ", t->display,
                           col->name, row_no);
            goto out;
          }
          if (vals[c].type == SQLENVFS_PG_VALUE_NULL && (int)c == plan->rowid_col) {
            null_key_error(error, path, plan, col, row_no, TRUE);
            goto out;
          }
          out->n_nan += vals[c].was_nan;
          bound = bind_value(st, (int)c + 1, &vals[c]);
        }
        if (!bound) {
          sqlenvfs_error_sqlite(error, db, sqlite3_errcode(db), "bind value for", path);
          goto out;
        }
      }
      rc = sqlite3_step(st);
      if (rc == SQLITE_ROW && plan->checked) {
        if (!check_stored(st, path, plan, r, cur, vals, row_no, error))
          goto out;
        rc = sqlite3_step(st);
      }
      if (rc != SQLITE_DONE) {
        g_autofree char *what = g_strdup_printf(
          "insert row %" G_GUINT64_FORMAT " of %s into table %s of", row_no, t->display,
          plan->target);
        sqlenvfs_error_sqlite(error, db, rc, what, path);
        if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_NOTNULL)
          for (guint c = 0; c < n_cols; c++)
            if (vals[c].was_nan && text_is_bound(cur, r, c, t)) {
              g_prefix_error(error, "column %s.%s, row %" G_GUINT64_FORMAT " is NaN, which "
                             "is stored as NULL (SQLite has no NaN), and the column is NOT "
                             "NULL (cast it in a view, or declare the column without NOT "
                             "NULL): ", t->display,
                             ((const SqlenvfsPgColumn *)t->columns->pdata[c])->name, row_no);
              break;
            }
        goto out;
      }
      if (sqlite3_changes64(db) != 1) {
        /* An INSERT that ends without an error and without a row: the
         * row would be counted, not stored. */
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                    "insert row %" G_GUINT64_FORMAT " of %s into table %s of %s: SQLite "
                    "stored no row (the table's ON CONFLICT IGNORE dropped it as a duplicate, "
                    "or a BEFORE INSERT trigger skipped it with RAISE(IGNORE)); remove the "
                    "duplicate or the clause, or drop the trigger for the migration",
                    row_no, t->display, plan->target, path);
        goto out;
      }
      sqlite3_reset(st);
      out->n_rows++;
    }
    if (progress && progress->rows)
      progress->rows(progress->user, plan->target, out->n_rows, MAX(plan->total, out->n_rows));
  }
  ok = TRUE;
out:
  for (guint c = 0; c < n_cols; c++)
    sqlenvfs_pg_value_clear(&vals[c]);
  return ok;
}

/* --- foreign keys ------------------------------------------------------- */

/* Foreign keys are not enforced while loading (a table is loaded before or
 * without the table it refers to, and the connection's default leaves them
 * off), so the load checks what it did before its COMMIT: rows it added
 * whose parent is missing, and in replace mode rows of production whose
 * parent it deleted. Only new violations count: those production already
 * had are listed first, in the same transaction, by row and foreign key,
 * and do not block it (none, for a table the load empties first). A
 * violation is new when its row and foreign key were not listed, so that
 * one that goes away cannot make room for one that comes. Rows of a
 * WITHOUT ROWID table have no rowid to name them: those are counted per
 * foreign key. */
typedef struct {
  char *table;          /* SQLite table whose foreign keys the load may break */
  GHashTable *before;   /* "rowid fkid" (or "- fkid", counted) -> count       */
} FkWatch;

static void
fk_watch_free(gpointer p)
{
  FkWatch *w = p;
  g_free(w->table);
  if (w->before)
    g_hash_table_unref(w->before);
  g_free(w);
}

static gboolean
is_target(GPtrArray *plans, const char *name, gboolean replaced_only,
          const SqlenvfsMigrateOptions *opts)
{
  for (guint i = 0; i < plans->len; i++) {
    const Plan *plan = plans->pdata[i];
    if (g_ascii_strcasecmp(plan->target, name) != 0)
      continue;
    /* Rows only added to a parent break no child: only replace deletes. */
    if (!replaced_only || (opts->mode == SQLENVFS_MIGRATE_REPLACE && !plan->create))
      return TRUE;
  }
  return FALSE;
}

/* One violation of pragma_foreign_key_check (columns rowid, parent, fkid),
 * as FkWatch keys it (a WITHOUT ROWID table's, which names no row, by its
 * foreign key: any is new, since the table had none, fk_watch_start). */
static char *
fk_key(sqlite3_stmt *st)
{
  if (sqlite3_column_type(st, 0) == SQLITE_NULL)
    return g_strdup_printf("- %lld", (long long)sqlite3_column_int64(st, 2));
  return g_strdup_printf("%lld %lld", (long long)sqlite3_column_int64(st, 0),
                         (long long)sqlite3_column_int64(st, 2));
}

static gboolean
fk_check_fail(sqlite3 *db, const char *path, const char *table, GError **error)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
              "check the foreign keys of table %s in %s: %s (each foreign key must refer to "
              "the PRIMARY KEY or a UNIQUE column of an existing table; fix the schema)",
              table, path, sqlite3_errmsg(db));
  return FALSE;
}

#define FK_CHECK_SQL                                                                      \
  "SELECT c.rowid, c.parent, c.fkid, (SELECT group_concat(f.\"from\", ', ') "             \
  "FROM pragma_foreign_key_list(?1) f WHERE f.id = c.fkid) "                              \
  "FROM pragma_foreign_key_check(?1) c"

/* The tables to watch, with their violations now: every loaded table with a
 * foreign key, and every table with one referring to a table emptied first
 * (replace mode). NULL and *error if a check fails. */
static GPtrArray *
fk_watch_start(sqlite3 *db, const char *path, GPtrArray *plans,
               const SqlenvfsMigrateOptions *opts, GError **error)
{
  g_autoptr(GPtrArray) watch = g_ptr_array_new_with_free_func(fk_watch_free);
  g_autoptr(sqlite3_stmt) st = NULL;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT DISTINCT m.name, f.\"table\" FROM sqlite_schema m, "
                              "pragma_foreign_key_list(m.name) f WHERE m.type = 'table'",
                              -1, &st, NULL);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *child = (const char *)sqlite3_column_text(st, 0);
    const char *parent = (const char *)sqlite3_column_text(st, 1);
    gboolean seen = FALSE;
    rc = SQLITE_OK;
    if (!is_target(plans, child, FALSE, opts) && !is_target(plans, parent, TRUE, opts))
      continue;
    for (guint i = 0; i < watch->len && !seen; i++)
      seen = strcmp(((FkWatch *)watch->pdata[i])->table, child) == 0;
    if (!seen) {
      FkWatch *w = g_new0(FkWatch, 1);
      w->table = g_strdup(child);
      w->before = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
      g_ptr_array_add(watch, w);
    }
  }
  if (rc != SQLITE_DONE) {
    sqlenvfs_error_sqlite(error, db, rc, "list foreign keys in", path);
    return NULL;
  }
  for (guint i = 0; i < watch->len; i++) {
    FkWatch *w = watch->pdata[i];
    g_autoptr(sqlite3_stmt) c = NULL;
    /* A table emptied first keeps none of its rows: every violation it
     * has after the load is new. */
    if (is_target(plans, w->table, TRUE, opts)) {
      if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_foreign_key_check(?1)", -1, &c,
                             NULL) != SQLITE_OK ||
          sqlite3_bind_text(c, 1, w->table, -1, SQLITE_STATIC) != SQLITE_OK ||
          ((rc = sqlite3_step(c)) != SQLITE_ROW && rc != SQLITE_DONE)) {
        fk_check_fail(db, path, w->table, error);
        return NULL;
      }
      continue;
    }
    rc = sqlite3_prepare_v2(db, FK_CHECK_SQL, -1, &c, NULL);
    if (rc == SQLITE_OK)
      rc = sqlite3_bind_text(c, 1, w->table, -1, SQLITE_STATIC);
    while (rc == SQLITE_OK && (rc = sqlite3_step(c)) == SQLITE_ROW) {
      char *key;
      gpointer n;
      if (sqlite3_column_type(c, 0) == SQLITE_NULL) {
        /* A WITHOUT ROWID table's violations name no row: one the load
         * would make could not be told from one that was there. */
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                    "foreign keys: table %s in %s (WITHOUT ROWID) already has rows that "
                    "refer to rows that do not exist (column %s referring to table %s), and "
                    "the load could add others that could not be told from them; find them "
                    "with `PRAGMA foreign_key_check(%s)` and mend or delete them first",
                    w->table, path, (const char *)sqlite3_column_text(c, 3),
                    (const char *)sqlite3_column_text(c, 1), w->table);
        return NULL;
      }
      key = fk_key(c);
      n = g_hash_table_lookup(w->before, key);
      g_hash_table_insert(w->before, key, GUINT_TO_POINTER(GPOINTER_TO_UINT(n) + 1));
      rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
      fk_check_fail(db, path, w->table, error);
      return NULL;
    }
  }
  return g_steal_pointer(&watch);
}

/* Whether the load left no violation in a watched table that it did not
 * have; otherwise *error naming the table, the first new violation's row,
 * its columns and the table they refer to. */
static gboolean
fk_watch_check(sqlite3 *db, const char *path, GPtrArray *watch, GError **error)
{
  for (guint i = 0; i < watch->len; i++) {
    const FkWatch *w = watch->pdata[i];
    g_autoptr(sqlite3_stmt) st = NULL;
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autofree char *row = NULL, *cols = NULL, *parent = NULL;
    guint64 n_new = 0;
    int rc = sqlite3_prepare_v2(db, FK_CHECK_SQL, -1, &st, NULL);

    if (rc == SQLITE_OK)
      rc = sqlite3_bind_text(st, 1, w->table, -1, SQLITE_STATIC);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
      char *key = fk_key(st);
      guint had = GPOINTER_TO_UINT(g_hash_table_lookup(w->before, key));
      guint now = GPOINTER_TO_UINT(g_hash_table_lookup(seen, key)) + 1;
      g_hash_table_insert(seen, key, GUINT_TO_POINTER(now));
      rc = SQLITE_OK;
      if (now <= had)
        continue;
      if (n_new++ == 0) {
        if (sqlite3_column_type(st, 0) != SQLITE_NULL)
          row = g_strdup_printf("rowid %lld", (long long)sqlite3_column_int64(st, 0));
        parent = g_strdup((const char *)sqlite3_column_text(st, 1));
        cols = g_strdup((const char *)sqlite3_column_text(st, 3));
      }
    }
    if (rc != SQLITE_DONE)
      return fk_check_fail(db, path, w->table, error);
    if (n_new == 0)
      continue;
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "foreign keys: after the load, %" G_GUINT64_FORMAT " row%s of table %s in %s "
                "refer%s to rows that do not exist, which did not before it (the first: %s, "
                "column %s referring to table %s); migrate the rows they refer to in the "
                "same run (name every table in --tables), or leave out the rows that refer to "
                "nothing",
                n_new, n_new == 1 ? "" : "s", w->table, path, n_new == 1 ? "s" : "",
                row ? row : "a row", cols ? cols : "?", parent ? parent : "?");
    return FALSE;
  }
  return TRUE;
}

/* --- the whole run ------------------------------------------------------- */

/* "<what failed>; rolled back: <path> is unchanged". */
static void
say_rolled_back(GError **error, const char *path, const char *snapshot)
{
  if (error && *error) {
    char *old = (*error)->message;
    (*error)->message = g_strdup_printf("%s; rolled back, %s is unchanged (snapshot %s was "
                                        "taken before the attempt)",
                                        old, path, snapshot);
    g_free(old);
  }
}

static gboolean
check_targets_unique(GPtrArray *plans, GError **error)
{
  for (guint i = 0; i < plans->len; i++)
    for (guint j = i + 1; j < plans->len; j++) {
      const Plan *a = plans->pdata[i], *b = plans->pdata[j];
      if (g_ascii_strcasecmp(a->target, b->target) == 0) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                    "%s and %s would both load into SQLite table %s (name one of them in "
                    "--tables, not both)",
                    a->pg->display, b->pg->display, a->target);
        return FALSE;
      }
    }
  return TRUE;
}

SqlenvfsMigrateReport *
sqlenvfs_migrate_pg(SqlenvfsRoot *root, const SqlenvfsMigrateOptions *opts,
                    const SqlenvfsMigrateProgress *progress, GError **error)
{
  gint64 t0 = g_get_monotonic_time();
  g_autofree char *db_name = NULL, *path = NULL;
  g_autoptr(SqlenvfsPgSource) src = NULL;
  g_autoptr(GPtrArray) tables = NULL;
  g_autoptr(GPtrArray) plans = g_ptr_array_new_with_free_func(plan_free);
  g_autoptr(sqlite3) db = NULL;
  g_autoptr(SqlenvfsMigrateReport) report = NULL;
  g_autoptr(SqlenvfsStoredCopy) snap = NULL;
  g_autoptr(GPtrArray) fk_watch = NULL;
  Room room = { root, NULL, NULL, 0 };
  g_autofree char *room_dir = NULL, *room_wal = NULL;

  g_return_val_if_fail(root != NULL && opts != NULL && opts->dsn != NULL, NULL);

  db_name = sqlenvfs_root_resolve_db(root, opts->db, TRUE, error);
  if (db_name == NULL)
    return NULL;
  path = sqlenvfs_root_prod_db(root, db_name);
  room.dir = room_dir = g_path_get_dirname(path);
  room.wal = room_wal = g_strconcat(path, "-wal", NULL);

  /* Plan: nothing below writes until the snapshot. */
  src = sqlenvfs_pg_source_open(opts->dsn, error);
  if (src == NULL)
    return NULL;
  sqlenvfs_pg_source_set_stall(src, opts->stall_seconds < 0 ? SQLENVFS_MIGRATE_DEFAULT_STALL_S
                                                            : (guint)opts->stall_seconds);
  tables = sqlenvfs_pg_source_tables(src, opts->tables, opts->numeric_as_real, error);
  if (tables == NULL)
    return NULL;
  if (tables->len == 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "%s has no tables in its current schema (name them with --tables)",
                sqlenvfs_pg_source_describe(src));
    return NULL;
  }
  /* invariant 4 */
  db = sqlenvfs_db_open(path, SQLENVFS_OPEN_MUST_EXIST | SQLENVFS_OPEN_NO_CKPT_ON_CLOSE, error);
  /* Off whatever SQLite was built with: an ON DELETE action would change
   * rows of tables the run does not name; the foreign keys are checked
   * after the load instead (fk_watch_check). */
  if (db == NULL || !sqlenvfs_db_exec(db, "PRAGMA foreign_keys = OFF", path, error))
    return NULL;
  for (guint i = 0; i < tables->len; i++) {
    Plan *plan = plan_table(db, path, tables->pdata[i], opts, error);
    if (plan == NULL)
      return NULL;
    g_ptr_array_add(plans, plan);
  }
  if (!check_targets_unique(plans, error))
    return NULL;
  if (progress && progress->rows)
    for (guint i = 0; i < plans->len; i++) {
      Plan *plan = plans->pdata[i];
      if (!sqlenvfs_pg_source_count(src, plan->pg, &plan->total, error))
        return NULL;
    }

  report = g_new0(SqlenvfsMigrateReport, 1);
  report->db_path = g_strdup(path);
  report->source = g_strdup(sqlenvfs_pg_source_describe(src));
  report->tables = g_ptr_array_new_with_free_func(migrated_table_free);

  /* The undo point. */
  snap = sqlenvfs_store_create(root, SQLENVFS_KIND_SNAPSHOT, db_name,
                               progress ? progress->snapshot : NULL,
                               progress ? progress->user : NULL, error);
  if (snap == NULL) {
    g_prefix_error(error, "snapshot before migration (nothing was migrated): ");
    return NULL;
  }
  report->snapshot = g_strdup(snap->name);
  {
    const SqlenvfsStoredDb *sdb = sqlenvfs_stored_copy_find(snap, db_name);
    report->snapshot_path = g_strdup(sdb ? sdb->path : snap->dir);
  }

  /* Load: one write transaction (invariant 1). */
  if (!sqlenvfs_db_exec(db, "PRAGMA cache_size = -" G_STRINGIFY(MIGRATE_CACHE_KIB), path,
                        error) ||
      !sqlenvfs_db_exec(db, "BEGIN IMMEDIATE", path, error)) {
    g_prefix_error(error, "start migration (nothing was migrated): ");
    return NULL;
  }
  fk_watch = fk_watch_start(db, path, plans, opts, error);
  if (fk_watch == NULL) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    g_prefix_error(error, "start migration (nothing was migrated): ");
    return NULL;
  }
  for (guint i = 0; i < plans->len; i++) {
    const Plan *plan = plans->pdata[i];
    SqlenvfsMigratedTable *mt = g_new0(SqlenvfsMigratedTable, 1);
    gint64 ts = g_get_monotonic_time();
    mt->source = g_strdup(plan->pg->display);
    mt->target = g_strdup(plan->target);
    mt->created = plan->create;
    g_ptr_array_add(report->tables, mt);
    if (!load_table(src, db, path, plan, opts, progress, &room, mt, error)) {
      sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
      say_rolled_back(error, path, report->snapshot);
      return NULL;
    }
    mt->usec = g_get_monotonic_time() - ts;
    g_info("migrate-pg: %s -> %s: %" G_GUINT64_FORMAT " rows in %.3f s", mt->source,
           mt->target, mt->n_rows, mt->usec / 1e6);
  }
  if (!fk_watch_check(db, path, fk_watch, error) ||
      !sqlenvfs_db_exec(db, "COMMIT", path, error)) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    say_rolled_back(error, path, report->snapshot);
    return NULL;
  }
  report->usec = g_get_monotonic_time() - t0;
  return g_steal_pointer(&report);
}
