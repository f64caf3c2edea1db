/*
 * diff.c — the SQL script (or summary) between two states of a database,
 * computed from the pages that changed (diff.h says how and what it prints).
 *
 * Invariants:
 *   (1) Every row that differs between the two states lies, in one state or
 *       the other, on a changed leaf page of its table's b-tree (for a
 *       WITHOUT ROWID table also on a changed interior page, whose cells are
 *       rows too) or has a changed overflow page in its chain. So comparing
 *       the rows found there (the keys) is comparing every row that can
 *       differ; a table for which that cannot be said (rebuilt, new, gone,
 *       another schema) is compared in full. The changed pages are those
 *       the commits between the states wrote and those past the end of the
 *       smaller state, which exist in one state only: a commit that shrinks
 *       the database does not write the pages it cuts off, and the rows on
 *       them go with them (sqlenvfs_diff_run).
 *   (2) A page that did not change is the same page in both states: below
 *       an unchanged interior page the older state's tree has the same
 *       children as the newer one's, so the older tree is read only below
 *       changed interior pages, and a page read for one state serves the
 *       other when it did not change.
 *   (3) All leaves of a b-tree are at one depth: once one child of an
 *       interior page is a leaf, its siblings are leaves and are read only
 *       when they changed.
 *   (4) An overflow page changes owner only when the cells of both owners
 *       change (SQLite rewrites a row's overflow pages in place only when
 *       its size stays the same, keeping the same pages), so a changed
 *       overflow page in the chain of a row already collected needs no
 *       search; only the others are looked for.
 *   (5) A changed page is placed without walking whole trees: in a state
 *       where it is not page 1, a pointer-map page or on the free list, it
 *       is a b-tree page exactly when its first byte is a b-tree page type
 *       (an overflow page begins with the next page's number, whose first
 *       byte is 0 or 1 below 2^25 pages). A table leaf belongs to the rowid
 *       tree that leads the key of its first cell to it (only a root is an
 *       empty leaf); its rows are collected. Only the pages on those paths
 *       are read. When a leaf is found that no tree leads to, or trying
 *       the trees in turn costs more than walking them (many tables
 *       changed), every tree is walked whole instead (invariants 2, 3).
 *   (6) Rows lie on the interior pages of a WITHOUT ROWID table too, which
 *       no key leads to by itself: those trees are walked whole (2, 3).
 */
#include "sqlenvfs/diff.h"

#include <math.h>
#include <string.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/btree.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/imagevfs.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/sqltext.h"
#include "sqlenvfs/util.h"

#define MAX_DEPTH 40
/* SQLite's page cache per state, KiB (sqlenvfs_diff_images). */
#define DIFF_CACHE_KIB 32768

/* One table as one state sees it. */
typedef struct {
  gboolean exists;
  char *sql;
  guint32 root;
  gboolean without_rowid;
  GPtrArray *cols; /* quoted names, primary key first (NULL: rowid not reachable) */
  guint n_pk;
  gboolean is_virtual; /* CREATE VIRTUAL TABLE (the script only: the
                        * summary leaves virtual tables out, as sqldiff) */
  gboolean shadow;     /* a shadow table of a virtual table (the script only) */
} TableSide;

typedef struct {
  char *name;
  TableSide side[2];    /* 0: from (main), 1: to (aux)                   */
  gboolean is_full;     /* compared in full                              */
  char *why_full;
  char *keys;           /* temp table holding the changed keys, or NULL  */
  sqlite3_stmt *add;    /* the INSERT of a key into it                   */
  gboolean shadow_new;  /* a shadow table that the CREATE VIRTUAL TABLE of
                         * the script makes: emptied and written whole    */
  gboolean done;        /* its part of the script written already         */
} Table;

typedef struct {
  sqlite3 *db;
  SqlenvfsImage *img[2];
  const char *label[2];
  guint32 page_size[2], usable[2], n_pages[2];
  int enc[2];               /* text encoding: SQLITE_UTF8, _UTF16LE, _UTF16BE */
  GHashTable *changed;
  GHashTable *owner[2];     /* b-tree pages -> Table * (NULL: not a table's rows) */
  GHashTable *children;     /* to-state interior pgno -> GArray of guint32 */
  GHashTable *is_leaf;      /* to-state leaf pages                         */
  GHashTable *covered;      /* overflow pages of the rows already collected */
  GHashTable *cache[2];     /* pgno -> the page's bytes (slot 1: also the
                             * unchanged pages of state 0, the same bytes) */
  GHashTable *free_pages[2]; /* free-list pages (trunks and leaves)         */
  GArray *trees[2];         /* the rowid-table b-trees: TreeRoot, the ones
                             * that held a changed leaf last first          */
  GPtrArray *tables;
  GHashTable *by_name;      /* table name -> Table *                       */
  gboolean summary;
  SqlenvfsDiffOutFunc out;
  SqlenvfsDiffNoteFunc note;
  gpointer user;
  SqlenvfsDiffStats *stats;
  guint n_keys_tables;
  guint64 n_misses;         /* trees that did not lead a key to its leaf   */
  guint64 n_emitted;        /* bytes of script given to out so far         */
  GPtrArray *objs[2];       /* views and triggers of each state: SchemaObj */
} Diff;

/* A view or trigger of one state, as sqlite_schema holds it. */
typedef struct {
  gboolean is_trigger;
  char *name;
  char *tbl; /* the table (or view) a trigger is on */
  char *sql;
} SchemaObj;

/* A rowid table's b-tree in one state: its root and its table (NULL: not
 * one compared, e.g. sqlite_schema). */
typedef struct {
  guint32 root;
  Table *t;
} TreeRoot;

static const char *const schema_of[2] = { "main", "aux" };

static void
table_free(gpointer p)
{
  Table *t = p;

  for (int s = 0; s < 2; s++) {
    g_free(t->side[s].sql);
    g_clear_pointer(&t->side[s].cols, g_ptr_array_unref);
  }
  sqlite3_finalize(t->add);
  g_free(t->name);
  g_free(t->why_full);
  g_free(t->keys);
  g_free(t);
}

static void
note(Diff *d, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
note(Diff *d, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start(ap, fmt);
  msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  if (d->note != NULL)
    d->note(d->user, msg);
}

static void
emit(Diff *d, GString *s)
{
  if (s->len > 0)
    d->out(d->user, s->str, s->len);
  d->n_emitted += s->len;
  g_string_truncate(s, 0);
}

static gboolean
sql_fail(Diff *d, int rc, const char *what, GError **error)
{
  return sqlenvfs_error_sqlite(error, d->db, rc, what, d->label[1]);
}

/* An identifier as sqldiff writes it: bare when it is a plain name that is
 * not a keyword (or has a digit after its first character), else quoted. */
static char *
safe_id(const char *id)
{
  gboolean has_digit = FALSE;
  char *q, *r;

  if (id[0] == '\0')
    return g_strdup("\"\"");
  for (gsize i = 0; id[i] != '\0'; i++) {
    char c = id[i];
    if (g_ascii_isalpha(c) || c == '_')
      continue;
    if (i > 0 && g_ascii_isdigit(c)) {
      has_digit = TRUE;
      continue;
    }
    goto quote;
  }
  if (has_digit || !sqlite3_keyword_check(id, (int) strlen(id)))
    return g_strdup(id);
quote:
  q = sqlite3_mprintf("\"%w\"", id);
  r = g_strdup(q);
  sqlite3_free(q);
  return r;
}

/* Runs of control characters a text literal is written with at most (see
 * append_value). */
#define MAX_CONTROL_RUNS 200

/* Whether the UTF-16 text @w (@wn bytes, @enc's byte order) is what the
 * UTF-8 text @u (@un bytes) converts back to, as SQLite converts it: it
 * also turns U+FFFE and U+FFFF into U+FFFD. */
static gboolean
utf16_round_trips(const guint8 *w, gsize wn, int enc, const char *u, gsize un)
{
  glong n = 0;
  g_autofree gunichar2 *back = g_utf8_to_utf16(u, (glong) un, NULL, &n, NULL);
  if (back == NULL || (gsize) n * 2 != wn)
    return FALSE;
  for (glong i = 0; i < n; i++) {
    guint16 unit = enc == SQLITE_UTF16LE ? (guint16) (w[2 * i] | (w[2 * i + 1] << 8))
                                         : (guint16) ((w[2 * i] << 8) | w[2 * i + 1]);
    if (unit != back[i] || unit >= 0xFFFE)
      return FALSE;
  }
  return TRUE;
}

/* A value as an SQL literal, the way sqldiff prints it, for a database of
 * text encoding @enc (SQLITE_UTF8, SQLITE_UTF16LE or SQLITE_UTF16BE). */
static void
append_value(GString *s, sqlite3_value *v, int enc)
{
  switch (sqlite3_value_type(v)) {
  case SQLITE_INTEGER:
    g_string_append_printf(s, "%" G_GINT64_FORMAT, (gint64) sqlite3_value_int64(v));
    break;
  case SQLITE_FLOAT: {
    /* 15 digits as sqldiff prints, 17 when 15 do not give the same value
     * back, so that the script restores every value exactly. */
    char buf[64];
    double x = sqlite3_value_double(v);
    if (x == 0.0 && signbit(x)) {
      /* SQLite prints it as 0.0, which reads back as 0.0. */
      g_string_append(s, "-0.0");
      break;
    }
    if (isinf(x)) {
      /* Printed as Inf, which reads as a column name: a number too large
       * for a double reads back as infinity (SQLite's quote() writes it
       * so). */
      g_string_append(s, x > 0 ? "9.0e+999" : "-9.0e+999");
      break;
    }
    sqlite3_snprintf(sizeof buf, buf, "%!.15g", x);
    if (g_ascii_strtod(buf, NULL) != x)
      sqlite3_snprintf(sizeof buf, buf, "%!.17g", x);
    g_string_append(s, buf);
    break;
  }
  case SQLITE_BLOB: {
    const guint8 *b = sqlite3_value_blob(v);
    int n = sqlite3_value_bytes(v);
    if (b == NULL || n == 0) {
      g_string_append(s, "X''");
      break;
    }
    g_string_append(s, "x'");
    for (int i = 0; i < n; i++)
      g_string_append_printf(s, "%02x", b[i]);
    g_string_append_c(s, '\'');
    break;
  }
  case SQLITE_TEXT: {
    /* Quotes doubled; a run of control characters is spliced in as a
     * blob: 'ab'||X'0a0d'\n||'cd'. Text holding a NUL, which a literal
     * cannot, is written as CAST(x'..' AS TEXT) (sqldiff cuts it short),
     * and so is text with more than MAX_CONTROL_RUNS runs: each adds two
     * concatenations, and an expression deeper than SQLite's limit (1000)
     * does not parse, so that the script would not apply (as sqldiff's).
     * CAST takes the blob's bytes as text of the database's encoding: they
     * are the UTF-16 ones in a UTF-16 database. */
    /* In a UTF-16 database, its bytes as stored first (a conversion to
     * UTF-8 may replace what is not valid UTF-16, a lone surrogate say):
     * text that does not come back from UTF-8 the same is written as its
     * UTF-16 bytes too. */
    g_autofree guint8 *wide = NULL;
    gsize wide_n = 0;
    if (enc == SQLITE_UTF16LE || enc == SQLITE_UTF16BE) {
      const void *w = enc == SQLITE_UTF16LE ? sqlite3_value_text16le(v)
                                            : sqlite3_value_text16be(v);
      wide_n = (gsize) MAX(sqlite3_value_bytes16(v), 0);
      wide = g_memdup2(w, wide_n);
    }
    const guint8 *t = sqlite3_value_text(v);
    gsize n = (gsize) MAX(sqlite3_value_bytes(v), 0);
    gboolean in_ctl = FALSE;
    guint runs = 0;
    for (gsize i = 0; i < n && runs <= MAX_CONTROL_RUNS; i++)
      runs += g_ascii_iscntrl(t[i]) && (i == 0 || !g_ascii_iscntrl(t[i - 1])) ? 1 : 0;
    if (runs > MAX_CONTROL_RUNS || memchr(t, 0, n) != NULL ||
        (wide != NULL && !utf16_round_trips(wide, wide_n, enc, (const char *) t, n))) {
      if (wide != NULL) {
        t = wide;
        n = wide_n;
      }
      g_string_append(s, "CAST(x'");
      for (gsize i = 0; i < n; i++)
        g_string_append_printf(s, "%02x", t[i]);
      g_string_append(s, "' AS TEXT)");
      break;
    }
    /* In a UTF-16 database a blob joined to text is read as UTF-16 bytes:
     * its control characters are spliced in as char(...) there. */
    gboolean wide_db = enc == SQLITE_UTF16LE || enc == SQLITE_UTF16BE;
    g_string_append_c(s, '\'');
    for (gsize i = 0; t[i] != '\0'; i++) {
      guint8 c = t[i];
      if (g_ascii_iscntrl(c)) {
        if (wide_db)
          g_string_append_printf(s, in_ctl ? ",%u" : "'||char(%u", c);
        else
          g_string_append_printf(s, in_ctl ? "%02x" : "'||X'%02x", c);
        in_ctl = TRUE;
        continue;
      }
      if (in_ctl) {
        g_string_append(s, wide_db ? ")\n||'" : "'\n||'");
        in_ctl = FALSE;
      }
      if (c == '\'')
        g_string_append_c(s, '\'');
      g_string_append_c(s, (char) c);
    }
    g_string_append_c(s, in_ctl && wide_db ? ')' : '\'');
    break;
  }
  default:
    g_string_append(s, "NULL");
  }
}

/* The columns of @t in @schema as sqldiff orders them: the true primary key
 * first (rowid or INTEGER PRIMARY KEY; a WITHOUT ROWID table's PRIMARY
 * KEY), then the other columns in table order. NULL in *out when the rowid
 * is not reachable by any name. */
static gboolean
load_columns(Diff *d, const char *schema, const char *table, GPtrArray **out, guint *n_pk,
             GError **error)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  g_autofree char *pk_index = NULL;
  gboolean true_pk = TRUE;
  guint npk = 1;
  g_autoptr(GPtrArray) pk = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) rest = g_ptr_array_new_with_free_func(g_free);
  char *sql;
  int rc;

  sql = sqlite3_mprintf("PRAGMA \"%w\".index_list(%Q)", schema, table);
  rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK)
    return sql_fail(d, rc, "reading the indexes of a table of", error);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (g_ascii_strcasecmp((const char *) sqlite3_column_text(st, 3), "pk") == 0) {
      pk_index = g_strdup((const char *) sqlite3_column_text(st, 1));
      break;
    }
  }
  g_clear_pointer(&st, sqlite3_finalize);
  if (pk_index != NULL) {
    guint n_col = 0, n_key = 0;
    true_pk = FALSE;
    sql = sqlite3_mprintf("PRAGMA \"%w\".index_xinfo(%Q)", schema, pk_index);
    rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
      return sql_fail(d, rc, "reading the primary key of a table of", error);
    while (sqlite3_step(st) == SQLITE_ROW) {
      n_col++;
      if (sqlite3_column_int(st, 5)) {
        n_key++;
        continue;
      }
      if (sqlite3_column_int(st, 1) >= 0)
        true_pk = TRUE;
    }
    g_clear_pointer(&st, sqlite3_finalize);
    if (n_col == n_key)
      true_pk = TRUE;
    npk = true_pk ? n_key : 1;
  }
  sql = sqlite3_mprintf("PRAGMA \"%w\".table_info(%Q)", schema, table);
  rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK)
    return sql_fail(d, rc, "reading the columns of a table of", error);
  g_ptr_array_set_size(pk, (guint) npk);
  while (sqlite3_step(st) == SQLITE_ROW) {
    char *id = safe_id((const char *) sqlite3_column_text(st, 1));
    int k = sqlite3_column_int(st, 5);
    if (true_pk && k > 0 && (guint) k <= npk)
      pk->pdata[k - 1] = id;
    else
      g_ptr_array_add(rest, id);
  }
  if (pk->pdata[0] == NULL) {
    static const char *const rowid_names[] = { "rowid", "_rowid_", "oid" };
    for (guint i = 0; i < G_N_ELEMENTS(rowid_names) && pk->pdata[0] == NULL; i++) {
      gboolean taken = FALSE;
      for (guint j = 0; j < rest->len; j++)
        taken |= g_ascii_strcasecmp(rest->pdata[j], rowid_names[i]) == 0;
      if (!taken)
        pk->pdata[0] = g_strdup(rowid_names[i]);
    }
    if (pk->pdata[0] == NULL) {
      *out = NULL;
      *n_pk = npk;
      return TRUE;
    }
  }
  for (guint i = 0; i < rest->len; i++)
    g_ptr_array_add(pk, g_steal_pointer(&rest->pdata[i]));
  *out = g_steal_pointer(&pk);
  *n_pk = npk;
  return TRUE;
}

static gboolean
is_virtual_sql(const char *sql)
{
  return sql != NULL && g_ascii_strncasecmp(sql, "CREATE VIRTUAL", 14) == 0;
}

/* The virtual table of state @s whose shadow table @t is (its name is the
 * shadow table's up to the last '_', as SQLite names them), or NULL. */
static Table *
shadow_owner(Diff *d, int s, const Table *t)
{
  const char *tail = strrchr(t->name, '_');

  if (tail == NULL)
    return NULL;
  for (guint i = 0; i < d->tables->len; i++) {
    Table *v = d->tables->pdata[i];
    if (v->side[s].exists && v->side[s].is_virtual &&
        strlen(v->name) == (gsize) (tail - t->name) &&
        g_ascii_strncasecmp(v->name, t->name, (gsize) (tail - t->name)) == 0)
      return v;
  }
  return NULL;
}

/* Whether virtual table @v is in both states with one CREATE statement. */
static gboolean
virtual_kept(const Table *v)
{
  return v->side[0].exists && v->side[0].is_virtual && v->side[1].exists &&
         v->side[1].is_virtual && strcmp(v->side[0].sql, v->side[1].sql) == 0;
}

/* The shadow tables of the virtual tables (fts5's ft_content ...), which
 * the script does not create or drop itself: the DROP TABLE of a virtual
 * table drops them, and its CREATE VIRTUAL TABLE makes them, with rows of
 * its own. A shadow table of a virtual table the script drops is taken as
 * absent from the older state; one of a virtual table the script creates
 * is emptied and written whole (shadow_new). SQLite says which tables are
 * shadow tables (PRAGMA table_list, with the module loaded). */
static void
mark_shadow_tables(Diff *d)
{
  for (int s = 0; s < 2; s++) {
    g_autoptr(sqlite3_stmt) st = NULL;
    char *sql = sqlite3_mprintf("PRAGMA \"%w\".table_list", schema_of[s]);
    int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);

    sqlite3_free(sql);
    if (rc != SQLITE_OK)
      continue; /* left as plain tables */
    while (sqlite3_step(st) == SQLITE_ROW) {
      Table *t;
      if (g_strcmp0((const char *) sqlite3_column_text(st, 2), "shadow") != 0)
        continue;
      t = g_hash_table_lookup(d->by_name, sqlite3_column_text(st, 1));
      if (t != NULL && t->side[s].exists && !t->side[s].is_virtual)
        t->side[s].shadow = TRUE;
    }
  }
  for (guint i = 0; i < d->tables->len; i++) {
    Table *t = d->tables->pdata[i], *v;
    if (t->side[0].shadow && (v = shadow_owner(d, 0, t)) != NULL && !virtual_kept(v))
      t->side[0].exists = FALSE;
    if (t->side[1].shadow && (v = shadow_owner(d, 1, t)) != NULL && !virtual_kept(v))
      t->shadow_new = TRUE;
  }
}

/* The tables of both states, in name order (sqldiff's order; a virtual
 * table comes before its shadow tables, whose names begin with its own). */
static gboolean
load_tables(Diff *d, GError **error)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  int rc;

  rc = sqlite3_prepare_v2(d->db,
                          d->summary ? "SELECT name FROM main.sqlite_schema WHERE type='table'"
                                       " AND sql NOT LIKE 'CREATE VIRTUAL%'"
                                       " UNION SELECT name FROM aux.sqlite_schema"
                                       " WHERE type='table' AND sql NOT LIKE 'CREATE VIRTUAL%'"
                                       " ORDER BY name"
                                     : "SELECT name FROM main.sqlite_schema WHERE type='table'"
                                       " UNION SELECT name FROM aux.sqlite_schema"
                                       " WHERE type='table' ORDER BY name",
                          -1, &st, NULL);
  if (rc != SQLITE_OK)
    return sql_fail(d, rc, "listing the tables of", error);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    Table *t = g_new0(Table, 1);
    t->name = g_strdup((const char *) sqlite3_column_text(st, 0));
    g_ptr_array_add(d->tables, t);
    g_hash_table_insert(d->by_name, t->name, t);
  }
  if (rc != SQLITE_DONE)
    return sql_fail(d, rc, "listing the tables of", error);
  for (guint i = 0; i < d->tables->len; i++) {
    Table *t = d->tables->pdata[i];
    for (int s = 0; s < 2; s++) {
      g_autoptr(sqlite3_stmt) q = NULL;
      char *sql = sqlite3_mprintf("SELECT sql, rootpage FROM %s.sqlite_schema"
                                  " WHERE type='table' AND name=%Q",
                                  schema_of[s], t->name);
      rc = sqlite3_prepare_v2(d->db, sql, -1, &q, NULL);
      sqlite3_free(sql);
      if (rc != SQLITE_OK)
        return sql_fail(d, rc, "reading the schema of", error);
      if (sqlite3_step(q) != SQLITE_ROW)
        continue;
      t->side[s].exists = TRUE;
      t->side[s].sql = g_strdup((const char *) sqlite3_column_text(q, 0));
      t->side[s].root = (guint32) sqlite3_column_int64(q, 1);
      t->side[s].is_virtual = is_virtual_sql(t->side[s].sql);
      if (t->side[s].is_virtual)
        continue; /* created or dropped whole, its rows in its shadow tables */
      if (!load_columns(d, schema_of[s], t->name, &t->side[s].cols, &t->side[s].n_pk, error))
        return FALSE;
    }
  }
  if (!d->summary)
    mark_shadow_tables(d);
  return TRUE;
}

/* ---- the b-tree walk ---------------------------------------------------- */

static gboolean
is_changed(Diff *d, guint32 pgno)
{
  return g_hash_table_contains(d->changed, GUINT_TO_POINTER(pgno));
}

static gboolean
page_in_range(Diff *d, int s, guint32 pgno, GError **error)
{
  if (pgno >= 1 && pgno <= d->n_pages[s])
    return TRUE;
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "%s refers to page %u, past its end (%u pages); check it with `sqlenvfs verify`",
              d->label[s], pgno, d->n_pages[s]);
  return FALSE;
}

static gboolean
read_page(Diff *d, int s, guint32 pgno, guint8 *buf, GError **error)
{
  gssize n;

  if (!page_in_range(d, s, pgno, error))
    return FALSE;
  d->stats->n_page_reads++;
  n = sqlenvfs_image_read(d->img[s], buf, d->page_size[s],
                          (goffset) (pgno - 1) * d->page_size[s], 0, error);
  if (n < 0)
    return FALSE;
  if ((guint32) n != d->page_size[s]) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s: page %u is short; check it with `sqlenvfs verify`", d->label[s], pgno);
    return FALSE;
  }
  return TRUE;
}

/* The cache slot of page @pgno of state @s: a page that did not change
 * has the same bytes in both states (invariant 2), so state 0 finds it in
 * state 1's slot. */
static int
cache_slot(Diff *d, int s, guint32 pgno)
{
  if (s == 0 && !is_changed(d, pgno) && d->page_size[0] == d->page_size[1] &&
      pgno <= d->n_pages[1])
    return 1;
  return s;
}

/* Page @pgno of state @s, read once and kept until the diff ends (NULL and
 * *error as read_page). */
static const guint8 *
get_page(Diff *d, int s, guint32 pgno, GError **error)
{
  GHashTable *cache;
  guint8 *buf;

  if (!page_in_range(d, s, pgno, error))
    return NULL;
  cache = d->cache[cache_slot(d, s, pgno)];
  buf = g_hash_table_lookup(cache, GUINT_TO_POINTER(pgno));
  if (buf != NULL)
    return buf;
  buf = g_malloc(d->page_size[s]);
  if (!read_page(d, s, pgno, buf, error)) {
    g_free(buf);
    return NULL;
  }
  g_hash_table_insert(cache, GUINT_TO_POINTER(pgno), buf);
  return buf;
}

/* The whole payload of @cell (local part and overflow chain) of state @s. */
static guint8 *
read_payload(Diff *d, int s, const SqlenvfsBtreeCell *cell, GError **error)
{
  g_autofree guint8 *buf = NULL;
  g_autofree guint8 *page = g_malloc(d->page_size[s]);
  guint64 done = cell->n_local;
  guint32 next = cell->overflow;
  guint n = 0;

  if (cell->payload_size > (guint64) d->n_pages[s] * d->page_size[s]) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s: a cell's payload is larger than the database; check it with `sqlenvfs verify`",
                d->label[s]);
    return NULL;
  }
  buf = g_malloc(cell->payload_size + 1);
  memcpy(buf, cell->local, cell->n_local);
  while (done < cell->payload_size) {
    guint32 take = MIN(d->usable[s] - 4, (guint32) MIN(cell->payload_size - done, G_MAXUINT32));
    if (next == 0 || ++n > d->n_pages[s]) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s: an overflow chain ends early or loops; check it with `sqlenvfs verify`",
                  d->label[s]);
      return NULL;
    }
    if (!read_page(d, s, next, page, error))
      return NULL;
    memcpy(buf + done, page + 4, take);
    done += take;
    next = ((guint32) page[0] << 24) | ((guint32) page[1] << 16) | ((guint32) page[2] << 8) |
           page[3];
  }
  return g_steal_pointer(&buf);
}

static gboolean
add_key(Diff *d, int s, Table *t, const SqlenvfsBtreeCell *cell, GError **error)
{
  g_autofree guint8 *payload = NULL;
  sqlite3_stmt *st;
  int rc;

  if (t->keys == NULL || t->is_full)
    return TRUE;
  if (t->add == NULL) {
    GString *q = g_string_new(NULL);
    g_string_append_printf(q, "INSERT OR IGNORE INTO temp.\"%s\" VALUES(?", t->keys);
    for (guint i = 1; i < t->side[1].n_pk; i++)
      g_string_append(q, ",?");
    g_string_append(q, ")");
    rc = sqlite3_prepare_v2(d->db, q->str, -1, &t->add, NULL);
    g_string_free(q, TRUE);
    if (rc != SQLITE_OK)
      return sql_fail(d, rc, "collecting the changed rows of", error);
  }
  st = t->add;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (t->side[1].without_rowid) {
    payload = read_payload(d, s, cell, error);
    if (payload == NULL)
      return FALSE;
    if (!sqlenvfs_btree_record_bind_enc(payload, cell->payload_size, t->side[1].n_pk,
                                        d->enc[s], st, 1, d->label[s], error))
      return FALSE;
  } else {
    sqlite3_bind_int64(st, 1, cell->rowid);
  }
  rc = sqlite3_step(st);
  if (rc != SQLITE_DONE)
    return sql_fail(d, rc, "collecting the changed rows of", error);
  sqlite3_reset(st);
  d->stats->n_keys++;
  return TRUE;
}

/* Follow the overflow chain of state @s one page on: *@next becomes the
 * page number held in the first 4 bytes of page *@next (0 at the chain's
 * end). */
static gboolean
next_overflow(Diff *d, int s, guint32 *next, GError **error)
{
  guint8 b[4];
  d->stats->n_page_reads++;
  if (sqlenvfs_image_read(d->img[s], b, 4, (goffset)(*next - 1) * d->page_size[s], 0, error) !=
      4) {
    if (error != NULL && *error == NULL)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s: overflow page %u is short; check it with `sqlenvfs verify`", d->label[s],
                  *next);
    return FALSE;
  }
  *next = ((guint32)b[0] << 24) | ((guint32)b[1] << 16) | ((guint32)b[2] << 8) | b[3];
  return TRUE;
}

/* Remember the overflow pages of @cell (state @s) as covered: its row is
 * collected already, so a change of them needs no search. Reads the first
 * 4 bytes of each. */
static gboolean
cover_chain(Diff *d, int s, const SqlenvfsBtreeCell *cell, GError **error)
{
  guint32 next = cell->overflow;
  guint64 n = 0, n_max = (cell->payload_size - cell->n_local) / (d->usable[s] - 4) + 1;

  while (next != 0 && n++ < n_max) {
    if (next > d->n_pages[s] || g_hash_table_contains(d->covered, GUINT_TO_POINTER(next)))
      break; /* past the end: the row's own read reports it */
    g_hash_table_add(d->covered, GUINT_TO_POINTER(next));
    if (!next_overflow(d, s, &next, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
collect_rows(Diff *d, int s, Table *t, const SqlenvfsBtreePage *page, GError **error)
{
  for (guint i = 0; i < page->n_cells; i++) {
    SqlenvfsBtreeCell cell;
    if (!sqlenvfs_btree_cell(page, i, &cell, error))
      return FALSE;
    if (!add_key(d, s, t, &cell, error))
      return FALSE;
    if (cell.overflow != 0 && !cover_chain(d, s, &cell, error))
      return FALSE;
  }
  return TRUE;
}

static void
own(Diff *d, int s, guint32 pgno, Table *t, gboolean leaf)
{
  g_hash_table_insert(d->owner[s], GUINT_TO_POINTER(pgno), t);
  if (leaf && s == 1)
    g_hash_table_add(d->is_leaf, GUINT_TO_POINTER(pgno));
}

/* Walk the tree below @pgno in state @s (invariants 2 and 3). @t is the
 * table the tree holds (NULL for an index). *@leaf: whether @pgno is a
 * leaf. */
static gboolean
walk(Diff *d, int s, guint32 pgno, Table *t, guint depth, gboolean known_leaf, gboolean *leaf,
     GError **error)
{
  g_autofree guint8 *buf = NULL;
  SqlenvfsBtreePage page;
  g_autoptr(GArray) kids = NULL;
  gboolean changed = is_changed(d, pgno), first_leaf = FALSE;

  if (depth > MAX_DEPTH) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s: a b-tree is deeper than %d pages (a loop?); check it with `sqlenvfs verify`",
                d->label[s], MAX_DEPTH);
    return FALSE;
  }
  if (s == 0 && !changed) {
    GArray *same = g_hash_table_lookup(d->children, GUINT_TO_POINTER(pgno));
    if (same != NULL) {
      own(d, s, pgno, t, FALSE);
      *leaf = FALSE;
      for (guint i = 0; i < same->len; i++) {
        gboolean l;
        if (!walk(d, s, g_array_index(same, guint32, i), t, depth + 1, FALSE, &l, error))
          return FALSE;
      }
      return TRUE;
    }
    if (g_hash_table_contains(d->is_leaf, GUINT_TO_POINTER(pgno)))
      known_leaf = TRUE;
  }
  if (known_leaf && !changed) {
    own(d, s, pgno, t, TRUE);
    *leaf = TRUE;
    return TRUE;
  }
  buf = g_malloc(d->page_size[s]);
  if (!read_page(d, s, pgno, buf, error) ||
      !sqlenvfs_btree_page_parse(buf, d->page_size[s], d->usable[s], pgno, &page, error))
    return FALSE;
  *leaf = page.type == SQLENVFS_BTREE_TABLE_LEAF || page.type == SQLENVFS_BTREE_INDEX_LEAF;
  own(d, s, pgno, t, *leaf);
  /* Cells that are rows: table leaves; every page of a WITHOUT ROWID table. */
  if (changed && t != NULL &&
      (page.type == SQLENVFS_BTREE_TABLE_LEAF ||
       (t->side[1].without_rowid && page.type != SQLENVFS_BTREE_TABLE_INTERIOR)) &&
      !collect_rows(d, s, t, &page, error))
    return FALSE;
  if (*leaf)
    return TRUE;
  kids = g_array_sized_new(FALSE, FALSE, sizeof(guint32), page.n_cells + 1);
  for (guint i = 0; i < page.n_cells; i++) {
    SqlenvfsBtreeCell cell;
    if (!sqlenvfs_btree_cell(&page, i, &cell, error))
      return FALSE;
    g_array_append_val(kids, cell.child);
  }
  g_array_append_val(kids, page.right_child);
  g_clear_pointer(&buf, g_free);
  for (guint i = 0; i < kids->len; i++) {
    gboolean l;
    if (!walk(d, s, g_array_index(kids, guint32, i), t, depth + 1, i > 0 && first_leaf, &l,
              error))
      return FALSE;
    if (i == 0)
      first_leaf = l;
  }
  if (s == 1)
    g_hash_table_insert(d->children, GUINT_TO_POINTER(pgno), g_steal_pointer(&kids));
  return TRUE;
}

/* Free-list pages of state @s (trunks and leaves) into @set. */
static gboolean
add_freelist(Diff *d, int s, const guint8 *page1, GHashTable *set, GError **error)
{
  g_autofree guint8 *buf = g_malloc(d->page_size[s]);
  guint32 trunk = ((guint32) page1[32] << 24) | ((guint32) page1[33] << 16) |
                  ((guint32) page1[34] << 8) | page1[35];
  guint n = 0;

  while (trunk != 0) {
    guint32 count;
    if (++n > d->n_pages[s]) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s: its free list loops; check it with `sqlenvfs verify`", d->label[s]);
      return FALSE;
    }
    if (!read_page(d, s, trunk, buf, error))
      return FALSE;
    g_hash_table_add(set, GUINT_TO_POINTER(trunk));
    count = ((guint32) buf[4] << 24) | ((guint32) buf[5] << 16) | ((guint32) buf[6] << 8) | buf[7];
    if (count > d->usable[s] / 4 - 2) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s: free-list trunk page %u is damaged; check it with `sqlenvfs verify`",
                  d->label[s], trunk);
      return FALSE;
    }
    for (guint32 i = 0; i < count; i++) {
      const guint8 *p = buf + 8 + 4 * i;
      g_hash_table_add(set, GUINT_TO_POINTER(((guint32) p[0] << 24) | ((guint32) p[1] << 16) |
                                             ((guint32) p[2] << 8) | p[3]));
    }
    trunk = ((guint32) buf[0] << 24) | ((guint32) buf[1] << 16) | ((guint32) buf[2] << 8) | buf[3];
  }
  return TRUE;
}

/* Whether page @pgno is a pointer-map page of state @s (an auto-vacuum
 * database's, @page1 its first page). */
static gboolean
is_ptrmap(Diff *d, int s, const guint8 *page1, guint32 pgno)
{
  guint32 j = d->usable[s] / 5 + 1;

  return (page1[52] | page1[53] | page1[54] | page1[55]) != 0 && pgno >= 2 &&
         (pgno - 2) % j == 0;
}

/* Whether the overflow chain of @cell (state @s) holds a page of @lost:
 * reads the first 4 bytes (the next page number) of each of its pages. */
static gboolean
chain_hits(Diff *d, int s, const SqlenvfsBtreeCell *cell, GHashTable *lost, gboolean *hit,
           GError **error)
{
  guint32 next = cell->overflow;
  guint64 n = 0, n_max = (cell->payload_size - cell->n_local) / (d->usable[s] - 4) + 1;

  *hit = FALSE;
  while (next != 0 && n++ < n_max) {
    if (g_hash_table_contains(lost, GUINT_TO_POINTER(next))) {
      *hit = TRUE;
      return TRUE;
    }
    if (next > d->n_pages[s]) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s refers to page %u, past its end (%u pages); check it with `sqlenvfs verify`",
                  d->label[s], next, d->n_pages[s]);
      return FALSE;
    }
    if (!next_overflow(d, s, &next, error))
      return FALSE;
  }
  return TRUE;
}

/* Collect the rows of table @t (state @s) whose overflow chains hold a page
 * of @lost: every cell with a payload of the tree below @pgno, its interior
 * pages kept (read once for both states), its leaves not. */
static gboolean
scan_chains(Diff *d, int s, Table *t, guint32 pgno, GHashTable *lost, guint depth,
            GError **error)
{
  int slot = cache_slot(d, s, pgno);
  guint8 *buf = g_hash_table_lookup(d->cache[slot], GUINT_TO_POINTER(pgno));
  g_autofree guint8 *own_buf = NULL;
  SqlenvfsBtreePage page;
  gboolean interior;

  if (depth > MAX_DEPTH) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s: a b-tree is deeper than %d pages (a loop?); check it with `sqlenvfs verify`",
                d->label[s], MAX_DEPTH);
    return FALSE;
  }
  if (buf == NULL) {
    buf = own_buf = g_malloc(d->page_size[s]);
    if (!read_page(d, s, pgno, buf, error))
      return FALSE;
  }
  if (!sqlenvfs_btree_page_parse(buf, d->page_size[s], d->usable[s], pgno, &page, error))
    return FALSE;
  interior = page.type == SQLENVFS_BTREE_TABLE_INTERIOR ||
             page.type == SQLENVFS_BTREE_INDEX_INTERIOR;
  if (interior && own_buf != NULL)
    g_hash_table_insert(d->cache[slot], GUINT_TO_POINTER(pgno), g_steal_pointer(&own_buf));
  for (guint c = 0; c < page.n_cells; c++) {
    SqlenvfsBtreeCell cell;
    gboolean hit = FALSE;
    if (!sqlenvfs_btree_cell(&page, c, &cell, error))
      return FALSE;
    if (page.type != SQLENVFS_BTREE_TABLE_INTERIOR && cell.overflow != 0) {
      if (!chain_hits(d, s, &cell, lost, &hit, error))
        return FALSE;
      if (hit && !add_key(d, s, t, &cell, error))
        return FALSE;
    }
    if (interior && !scan_chains(d, s, t, cell.child, lost, depth + 1, error))
      return FALSE;
  }
  return !interior || scan_chains(d, s, t, page.right_child, lost, depth + 1, error);
}

/* Changed pages that are in no b-tree, on no free list and not page 1 or a
 * pointer-map page are overflow pages: find the rows whose chains hold
 * them, in either state. */
static gboolean
find_overflow_rows(Diff *d, const guint8 *const page1[2], GError **error)
{
  g_autoptr(GHashTable) lost = g_hash_table_new(NULL, NULL);
  GHashTableIter it;
  gpointer key;

  g_hash_table_iter_init(&it, d->changed);
  while (g_hash_table_iter_next(&it, &key, NULL)) {
    guint32 pgno = GPOINTER_TO_UINT(key);
    if (pgno == 1 || g_hash_table_contains(d->free_pages[0], key) ||
        g_hash_table_contains(d->free_pages[1], key) || g_hash_table_contains(d->covered, key) ||
        g_hash_table_contains(d->owner[0], key) || g_hash_table_contains(d->owner[1], key) ||
        is_ptrmap(d, 0, page1[0], pgno) || is_ptrmap(d, 1, page1[1], pgno))
      continue;
    g_hash_table_add(lost, key);
  }
  if (g_hash_table_size(lost) == 0)
    return TRUE;
  note(d, "%u changed pages are overflow pages: following the overflow chains of the changed"
          " tables to find their rows",
       g_hash_table_size(lost));
  for (guint i = 0; i < d->tables->len; i++) {
    Table *t = d->tables->pdata[i];
    if (t->keys == NULL || t->is_full)
      continue;
    for (int s = 0; s < 2; s++)
      if (!scan_chains(d, s, t, t->side[s].root, lost, 0, error))
        return FALSE;
  }
  return TRUE;
}

/* Walk the b-trees of the newer state, then the older one (invariant 2):
 * every one, or with @without_rowid_only those of the WITHOUT ROWID tables
 * compared by key (their interior pages hold rows too). */
static gboolean
walk_trees(Diff *d, gboolean without_rowid_only, GError **error)
{
  for (int s = 1; s >= 0; s--) {
    g_autoptr(sqlite3_stmt) st = NULL;
    char *sql = sqlite3_mprintf("SELECT type, tbl_name, rootpage FROM %s.sqlite_schema"
                                " WHERE rootpage > 0 ORDER BY rootpage",
                                schema_of[s]);
    int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);

    sqlite3_free(sql);
    if (rc != SQLITE_OK)
      return sql_fail(d, rc, "reading the schema of", error);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      Table *t = NULL;
      gboolean leaf;
      guint32 root = (guint32) sqlite3_column_int64(st, 2);
      if (g_strcmp0((const char *) sqlite3_column_text(st, 0), "table") == 0)
        t = g_hash_table_lookup(d->by_name, sqlite3_column_text(st, 1));
      if (t != NULL && (t->side[s].root != root))
        t = NULL;
      if (without_rowid_only &&
          (t == NULL || t->keys == NULL || t->is_full || !t->side[s].without_rowid))
        continue;
      if (g_hash_table_contains(d->owner[s], GUINT_TO_POINTER(root)))
        continue;
      if (!walk(d, s, root, t, 0, FALSE, &leaf, error))
        return FALSE;
    }
    if (rc != SQLITE_DONE)
      return sql_fail(d, rc, "reading the schema of", error);
  }
  return TRUE;
}

/* The rowid tables' b-trees of state @s into d->trees[s]: sqlite_schema's
 * (root page 1) and every table's whose root page is a table page. */
static gboolean
load_trees(Diff *d, int s, GError **error)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  TreeRoot schema_tree = { 1, NULL };
  char *sql = sqlite3_mprintf("SELECT tbl_name, rootpage FROM %s.sqlite_schema"
                              " WHERE type='table' AND rootpage > 1 ORDER BY rootpage",
                              schema_of[s]);
  int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);

  sqlite3_free(sql);
  if (rc != SQLITE_OK)
    return sql_fail(d, rc, "reading the schema of", error);
  g_array_append_val(d->trees[s], schema_tree);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    TreeRoot tr = { (guint32) sqlite3_column_int64(st, 1), NULL };
    const guint8 *buf = get_page(d, s, tr.root, error);
    if (buf == NULL)
      return FALSE;
    if (buf[0] != SQLENVFS_BTREE_TABLE_LEAF && buf[0] != SQLENVFS_BTREE_TABLE_INTERIOR)
      continue; /* WITHOUT ROWID */
    tr.t = g_hash_table_lookup(d->by_name, sqlite3_column_text(st, 0));
    if (tr.t != NULL && tr.t->side[s].root != tr.root)
      tr.t = NULL;
    g_array_append_val(d->trees[s], tr);
  }
  if (rc != SQLITE_DONE)
    return sql_fail(d, rc, "reading the schema of", error);
  return TRUE;
}

/* The leaf of the table b-tree below @root (state @s) where rowid @key
 * belongs, into *@leaf: from each interior page, the child of its first
 * cell whose key is >= @key, else its right-most child. 0 when a page on
 * the way is not a table page. */
static gboolean
find_leaf(Diff *d, int s, guint32 root, gint64 key, guint32 *leaf, GError **error)
{
  guint32 pgno = root;

  for (guint depth = 0; depth <= MAX_DEPTH; depth++) {
    const guint8 *buf = get_page(d, s, pgno, error);
    SqlenvfsBtreePage page;
    SqlenvfsBtreeCell cell;
    guint lo = 0, hi;

    if (buf == NULL ||
        !sqlenvfs_btree_page_parse(buf, d->page_size[s], d->usable[s], pgno, &page, error))
      return FALSE;
    if (page.type == SQLENVFS_BTREE_TABLE_LEAF) {
      *leaf = pgno;
      return TRUE;
    }
    if (page.type != SQLENVFS_BTREE_TABLE_INTERIOR) {
      *leaf = 0;
      return TRUE;
    }
    hi = page.n_cells;
    while (lo < hi) {
      guint mid = lo + (hi - lo) / 2;
      if (!sqlenvfs_btree_cell(&page, mid, &cell, error))
        return FALSE;
      if (cell.rowid < key)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo == page.n_cells) {
      pgno = page.right_child;
    } else {
      if (!sqlenvfs_btree_cell(&page, lo, &cell, error))
        return FALSE;
      pgno = cell.child;
    }
  }
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "%s: a b-tree is deeper than %d pages (a loop?); check it with `sqlenvfs verify`",
              d->label[s], MAX_DEPTH);
  return FALSE;
}

/* Place changed page @pgno in state @s (invariant 5): a b-tree page is
 * owned, a table leaf by the table whose tree leads its first key to it,
 * and its rows are collected. *@why says why not when that cannot be done
 * (a table leaf no tree leads to, too many trees tried). */
static gboolean
place_page(Diff *d, int s, const guint8 *page1, guint32 pgno, const char **why, GError **error)
{
  gpointer key = GUINT_TO_POINTER(pgno);
  GArray *trees = d->trees[s];
  const guint8 *buf;
  SqlenvfsBtreePage page;
  SqlenvfsBtreeCell cell;

  if (pgno == 1 || pgno > d->n_pages[s] || is_ptrmap(d, s, page1, pgno) ||
      g_hash_table_contains(d->free_pages[s], key) || g_hash_table_contains(d->owner[s], key))
    return TRUE;
  buf = get_page(d, s, pgno, error);
  if (buf == NULL)
    return FALSE;
  switch (buf[0]) {
  case SQLENVFS_BTREE_INDEX_INTERIOR:
  case SQLENVFS_BTREE_INDEX_LEAF:
  case SQLENVFS_BTREE_TABLE_INTERIOR:
    own(d, s, pgno, NULL, FALSE); /* no rows on it (WITHOUT ROWID: walked) */
    return TRUE;
  case SQLENVFS_BTREE_TABLE_LEAF:
    break;
  default:
    return TRUE; /* an overflow page */
  }
  if (!sqlenvfs_btree_page_parse(buf, d->page_size[s], d->usable[s], pgno, &page, error))
    return FALSE;
  if (page.n_cells == 0) {
    /* Only a root is an empty leaf: an empty table. */
    for (guint i = 0; i < trees->len; i++)
      if (g_array_index(trees, TreeRoot, i).root == pgno) {
        own(d, s, pgno, g_array_index(trees, TreeRoot, i).t, TRUE);
        return TRUE;
      }
    *why = "an empty leaf that is no root";
    return TRUE;
  }
  if (!sqlenvfs_btree_cell(&page, 0, &cell, error))
    return FALSE;
  for (guint i = 0; i < trees->len; i++) {
    TreeRoot tr = g_array_index(trees, TreeRoot, i);
    guint32 leaf;
    if (!find_leaf(d, s, tr.root, cell.rowid, &leaf, error))
      return FALSE;
    if (leaf != pgno) {
      /* Many tables changed at once: trying each costs more than the
       * walk of every tree, done instead. */
      if (++d->n_misses > 64 + 8 * (guint64) g_hash_table_size(d->changed)) {
        *why = "too many tables to try";
        return TRUE;
      }
      continue;
    }
    if (i > 0) { /* the trees most recently found first */
      g_array_remove_index(trees, i);
      g_array_prepend_val(trees, tr);
    }
    own(d, s, pgno, tr.t, TRUE);
    return tr.t == NULL || collect_rows(d, s, tr.t, &page, error);
  }
  *why = "a leaf that no key leads to";
  return TRUE;
}

static gint
cmp_pgno(gconstpointer a, gconstpointer b)
{
  guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;
  return x < y ? -1 : x > y;
}

/* Place every changed page in both states (invariants 5 and 6), the trees
 * of the WITHOUT ROWID tables compared by key walked whole. *@why says why
 * not when that could not be done for all (every tree must be walked
 * then); it stays NULL when it was. */
static gboolean
place_changed_pages(Diff *d, guint8 *const p1[2], const char **why, GError **error)
{
  g_autoptr(GArray) pages = g_array_sized_new(FALSE, FALSE, sizeof(guint32),
                                              g_hash_table_size(d->changed));
  GHashTableIter it;
  gpointer key;

  *why = NULL;
  if (!walk_trees(d, TRUE, error))
    return FALSE;
  g_hash_table_iter_init(&it, d->changed);
  while (g_hash_table_iter_next(&it, &key, NULL)) {
    guint32 pgno = GPOINTER_TO_UINT(key);
    g_array_append_val(pages, pgno);
  }
  g_array_sort(pages, cmp_pgno);
  for (int s = 1; s >= 0; s--) {
    /* An overflow page begins with the number of the next one: its first
     * byte is no b-tree page type while page numbers stay below 2^25. */
    if (d->n_pages[s] >= 0x02000000u) {
      *why = "2^25 pages or more";
      return TRUE;
    }
    if (!load_trees(d, s, error))
      return FALSE;
    for (guint i = 0; i < pages->len && *why == NULL; i++)
      if (!place_page(d, s, p1[s], g_array_index(pages, guint32, i), why, error))
        return FALSE;
    if (*why != NULL)
      return TRUE;
  }
  return TRUE;
}

static gboolean
map_changed_pages_with(Diff *d, guint8 *const p1[2], GError **error);

/* Map the changed pages to rows (both states' page 1 read first). */
static gboolean
map_changed_pages(Diff *d, GError **error)
{
  guint8 *p1[2] = { g_malloc(d->page_size[0]), g_malloc(d->page_size[1]) };
  gboolean ok = read_page(d, 0, 1, p1[0], error) && read_page(d, 1, 1, p1[1], error) &&
                map_changed_pages_with(d, p1, error);

  g_free(p1[0]);
  g_free(p1[1]);
  return ok;
}

static gboolean
map_changed_pages_with(Diff *d, guint8 *const p1[2], GError **error)
{
  const char *why;
  int rc;

  /* Decide, per table, whether its changed rows can be found. */
  for (guint i = 0; i < d->tables->len; i++) {
    Table *t = d->tables->pdata[i];
    char *sql;
    if (!t->side[0].exists || !t->side[1].exists || t->side[0].is_virtual ||
        t->side[1].is_virtual)
      continue; /* dumped or dropped whole, as sqldiff does */
    if (g_strcmp0(t->side[0].sql, t->side[1].sql) != 0) {
      t->is_full = TRUE;
      t->why_full = g_strdup("its CREATE statement changed");
    } else if (t->side[0].root != t->side[1].root) {
      t->is_full = TRUE;
      t->why_full = g_strdup("it was rebuilt (its root page moved, e.g. by VACUUM)");
    } else if (t->side[1].cols == NULL) {
      t->is_full = TRUE;
    }
    if (t->is_full)
      continue;
    t->keys = g_strdup_printf("sqlenvfs_keys_%u", ++d->n_keys_tables);
    {
      GString *q = g_string_new(NULL);
      g_string_append_printf(q, "CREATE TEMP TABLE \"%s\"(", t->keys);
      for (guint k = 0; k < t->side[1].n_pk; k++)
        g_string_append_printf(q, "%sk%u", k ? ", " : "", k);
      g_string_append(q, ", PRIMARY KEY(");
      for (guint k = 0; k < t->side[1].n_pk; k++)
        g_string_append_printf(q, "%sk%u", k ? ", " : "", k);
      g_string_append(q, ")) WITHOUT ROWID");
      sql = g_string_free(q, FALSE);
    }
    rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);
    g_free(sql);
    if (rc != SQLITE_OK)
      return sql_fail(d, rc, "collecting the changed rows of", error);
  }
  for (int s = 0; s < 2; s++)
    if (!add_freelist(d, s, p1[s], d->free_pages[s], error))
      return FALSE;
  if (!place_changed_pages(d, p1, &why, error))
    return FALSE;
  if (why != NULL) {
    note(d, "walking every b-tree to place the changed pages (%s)", why);
    g_hash_table_remove_all(d->owner[0]);
    g_hash_table_remove_all(d->owner[1]);
    g_hash_table_remove_all(d->children);
    g_hash_table_remove_all(d->is_leaf);
    if (!walk_trees(d, FALSE, error))
      return FALSE;
  }
  return find_overflow_rows(d, (const guint8 *const *) p1, error);
}

/* ---- the comparison ----------------------------------------------------- */

/* sqlenvfs_negzero(x): 1 when x is the real -0.0, else 0. The only two
 * reals that SQL's = calls equal but whose bytes differ are 0.0 and -0.0,
 * and no built-in function tells them apart (quote() and printf() print
 * both as 0.0). */
static void
negzero_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
  double x;
  if (sqlite3_value_type(argv[0]) != SQLITE_FLOAT) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  x = sqlite3_value_double(argv[0]);
  sqlite3_result_int(ctx, x == 0.0 && signbit(x));
}

/* The join of the two states' rows by primary key: the key's own
 * comparison (so that its index is used), and the same value exactly: of
 * the same type and the same bytes. A key a NOCASE or RTRIM collation, or
 * numeric equality (1 and 1.0, 0.0 and -0.0), calls equal to the old one is
 * another key: the row is deleted and inserted, and the script writes the
 * new key. */
static void
append_join_as(GString *q, GPtrArray *cols, guint n_pk, const char *a, const char *b)
{
  for (guint i = 0; i < n_pk; i++) {
    const char *c = cols->pdata[i];
    g_string_append_printf(q, "%s %s.%s=%s.%s AND %s.%s=%s.%s COLLATE BINARY AND"
                           " typeof(%s.%s)=typeof(%s.%s) AND"
                           " sqlenvfs_negzero(%s.%s)=sqlenvfs_negzero(%s.%s)",
                           i ? " AND" : "", a, c, b, c, a, c, b, c, a, c, b, c, a, c, b, c);
  }
}

/* append_join with the older state's row as A and the newer one's as B. */
static void
append_join(GString *q, GPtrArray *cols, guint n_pk)
{
  append_join_as(q, cols, n_pk, "A", "B");
}

/* Whether column @a of the older state and @b of the newer hold another
 * value: SQL's IS NOT calls 1 and 1.0, 0.0 and -0.0, or 'a' and 'A' in a
 * NOCASE column, the same; the script must write the newer value all the
 * same. */
static void
append_differs(GString *q, const char *a, const char *b)
{
  g_string_append_printf(q, "(A.%s IS NOT B.%s COLLATE BINARY OR typeof(A.%s)<>typeof(B.%s)"
                         " OR sqlenvfs_negzero(A.%s)<>sqlenvfs_negzero(B.%s))",
                         a, b, a, b, a, b);
}

static void
append_restrict(GString *q, const Table *t, const char *alias)
{
  GPtrArray *cols = t->side[0].cols;
  guint n_pk = t->side[0].n_pk;

  if (t->keys == NULL || t->is_full)
    return;
  if (n_pk == 1) {
    g_string_append_printf(q, " AND %s.%s IN temp.\"%s\"", alias, (char *) cols->pdata[0],
                           t->keys);
    return;
  }
  g_string_append(q, " AND (");
  for (guint i = 0; i < n_pk; i++)
    g_string_append_printf(q, "%s%s.%s", i ? "," : "", alias, (char *) cols->pdata[i]);
  g_string_append_printf(q, ") IN (SELECT * FROM temp.\"%s\")", t->keys);
}

/* SQLite's own tables: sqlite_sequence, sqlite_stat1 ... */
static gboolean
is_internal(const char *name)
{
  return g_ascii_strncasecmp(name, "sqlite_", 7) == 0;
}

/* Print the CREATE statement, rows and indexes of table @t of the newer
 * state (a new table, or one whose schema is incompatible). sqlite_sequence
 * is not created but emptied: SQLite makes it with the first AUTOINCREMENT
 * table (and refuses a CREATE of it), and the INSERTs before have written
 * rows of their own into it. SQLite refuses a CREATE of its statistics
 * tables too: ANALYZE sqlite_schema makes them (sqlite_stat1, and
 * sqlite_stat4 when SQLite is built with it), empty, as the sqlite3
 * shell's .dump does. */
static gboolean
dump_table(Diff *d, Table *t, GString *o, GError **error)
{
  g_autofree char *id = safe_id(t->name);
  g_autoptr(sqlite3_stmt) st = NULL;
  GString *q = g_string_new(NULL), *ins = g_string_new(NULL);
  GPtrArray *cols = t->side[1].cols;
  int rc, n;
  char *sql;

  if (g_ascii_strcasecmp(t->name, "sqlite_sequence") == 0 || t->shadow_new)
    g_string_append_printf(o, "DELETE FROM %s;\n", id);
  else if (g_ascii_strncasecmp(t->name, "sqlite_stat", 11) == 0)
    g_string_append(o, "ANALYZE sqlite_schema;\n");
  else
    g_string_append_printf(o, "%s;\n", t->side[1].sql);
  if (cols == NULL) {
    g_string_append_printf(q, "SELECT * FROM aux.%s", id);
    g_string_append_printf(ins, "INSERT INTO %s VALUES", id);
  } else {
    for (guint i = 0; i < cols->len; i++)
      g_string_append_printf(q, "%s %s", i ? "," : "SELECT", (char *) cols->pdata[i]);
    g_string_append_printf(q, " FROM aux.%s ORDER BY", id);
    for (guint i = 1; i <= t->side[1].n_pk; i++)
      g_string_append_printf(q, "%s %u", i > 1 ? "," : "", i);
    g_string_append_printf(ins, "INSERT INTO %s", id);
    for (guint i = 0; i < cols->len; i++)
      g_string_append_printf(ins, "%s%s", i ? "," : "(", (char *) cols->pdata[i]);
    g_string_append(ins, ") VALUES");
  }
  rc = sqlite3_prepare_v2(d->db, q->str, -1, &st, NULL);
  g_string_free(q, TRUE);
  if (rc != SQLITE_OK) {
    g_string_free(ins, TRUE);
    return sql_fail(d, rc, "reading a table of", error);
  }
  n = sqlite3_column_count(st);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    g_string_append(o, ins->str);
    for (int i = 0; i < n; i++) {
      g_string_append_c(o, i ? ',' : '(');
      append_value(o, sqlite3_column_value(st, i), d->enc[0]);
    }
    g_string_append(o, ");\n");
    if (o->len > 65536)
      emit(d, o);
  }
  g_string_free(ins, TRUE);
  g_clear_pointer(&st, sqlite3_finalize);
  if (rc != SQLITE_DONE)
    return sql_fail(d, rc, "reading a table of", error);
  if (t->shadow_new)
    return TRUE; /* its indexes made with it */
  sql = sqlite3_mprintf("SELECT sql FROM aux.sqlite_schema WHERE type='index' AND tbl_name=%Q"
                        " AND sql IS NOT NULL",
                        t->name);
  rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK)
    return sql_fail(d, rc, "reading the indexes of", error);
  while (sqlite3_step(st) == SQLITE_ROW)
    g_string_append_printf(o, "%s;\n", sqlite3_column_text(st, 0));
  return TRUE;
}

/* The definitions of the columns ALTER TABLE ADD COLUMN appended to the
 * older CREATE statement to make the newer one (SQLite inserts ", <def>"
 * before the closing parenthesis), or NULL when it is not that. */
static GPtrArray *
added_defs(const char *old_sql, const char *new_sql, guint n_added)
{
  const char *close = strrchr(old_sql, ')');
  gsize k, tail, n_new = strlen(new_sql);
  g_autofree char *mid = NULL;
  GPtrArray *defs;

  if (close == NULL)
    return NULL;
  k = (gsize) (close - old_sql);
  tail = strlen(close);
  if (n_new < k + tail + 2 || strncmp(old_sql, new_sql, k) != 0 ||
      strcmp(new_sql + n_new - tail, close) != 0 || strncmp(new_sql + k, ", ", 2) != 0)
    return NULL;
  mid = g_strndup(new_sql + k + 2, n_new - tail - k - 2);
  defs = g_ptr_array_new_with_free_func(g_free);
  if (!sqlenvfs_sql_split_list(mid, defs) || defs->len != n_added) {
    g_ptr_array_unref(defs);
    return NULL;
  }
  return defs;
}

/* What the rows of the older state read in each column ALTER TABLE ADD
 * COLUMN appended (@cols[@from..]: quoted names, in the newer state): the
 * text of its DEFAULT (a constant expression, as ADD COLUMN requires), or
 * "NULL". */
static GPtrArray *
added_defaults(Diff *d, const Table *t, const GPtrArray *cols, guint from, GError **error)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  g_autoptr(GHashTable) dflt = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  char *sql = sqlite3_mprintf("SELECT name, dflt_value FROM pragma_table_info(%Q, 'aux')",
                              t->name);
  GPtrArray *out;
  int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);

  sqlite3_free(sql);
  if (rc != SQLITE_OK) {
    sql_fail(d, rc, "reading the column defaults of a table of", error);
    return NULL;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *v = (const char *) sqlite3_column_text(st, 1);
    g_hash_table_replace(dflt, safe_id((const char *) sqlite3_column_text(st, 0)),
                         g_strdup(v != NULL ? v : "NULL"));
  }
  out = g_ptr_array_new_with_free_func(g_free);
  for (guint i = from; i < cols->len; i++) {
    const char *v = g_hash_table_lookup(dflt, cols->pdata[i]);
    g_ptr_array_add(out, g_strdup(v != NULL ? v : "NULL"));
  }
  return out;
}

static gboolean
index_changes(Diff *d, Table *t, gboolean drop, GString *o, GError **error)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  const char *a = drop ? "main" : "aux", *b = drop ? "aux" : "main";
  char *sql = sqlite3_mprintf("SELECT name, sql FROM %s.sqlite_schema WHERE type='index'"
                              " AND tbl_name=%Q AND sql IS NOT NULL AND sql NOT IN"
                              " (SELECT sql FROM %s.sqlite_schema WHERE type='index'"
                              " AND tbl_name=%Q AND sql IS NOT NULL)",
                              a, t->name, b, t->name);
  int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);

  sqlite3_free(sql);
  if (rc != SQLITE_OK)
    return sql_fail(d, rc, "comparing the indexes of", error);
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (drop) {
      g_autofree char *id = safe_id((const char *) sqlite3_column_text(st, 0));
      g_string_append_printf(o, "DROP INDEX %s;\n", id);
    } else {
      g_string_append_printf(o, "%s;\n", sqlite3_column_text(st, 1));
    }
  }
  return TRUE;
}

static gint64
count_rows(Diff *d, const char *id, GError **error)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  char *sql = sqlite3_mprintf("SELECT count(*) FROM main.%s", id);
  int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);

  sqlite3_free(sql);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
    return sqlite3_column_int64(st, 0);
  sql_fail(d, rc, "counting the rows of a table of", error);
  return -1;
}

/* ---- unique values moved between updated rows ---------------------------
 *
 * SQLite checks a UNIQUE constraint (a UNIQUE column or index, a composite
 * unique key, the PRIMARY KEY of a rowid table that is not its INTEGER
 * PRIMARY KEY) on each row as a statement writes it, not when the
 * statement or the transaction ends. The deletes come before the updates
 * and the updates before the inserts, so a value a deleted row held is
 * free for an update and one an updated row held is free for an insert;
 * but an update that takes the value of another updated row fails while
 * that row still holds it: two rows that swap values, a rotation, a chain
 * (a takes b's value, b a new one) written in key order.
 *
 * Row r takes from row s when both are updated and r's newer key in a
 * unique index is s's older one, compared as the index compares (its
 * collation; NULL equals nothing, so a key holding one takes from no row).
 * Only updated rows can: a row the two states hold alike has its key in
 * both, and in neither state does another row have it. The rows that take
 * or are taken from are written after the table's other updates, each
 * once every row it takes from has given its older values up (written or
 * parked), those free to go in key order: a chain needs nothing more. When
 * every row left takes from one that still holds its value (a cycle: a
 * swap, a rotation), the first of them in key order is parked: an UPDATE
 * sets the unique-constrained columns it changes to values no row holds or
 * will hold, the others follow, and its own UPDATE, which writes those
 * columns back too, comes once the row it takes from has moved. A row is
 * parked only for a cycle, and a park breaks every cycle through its row:
 * at most one park per cycle (cycles that share rows may need fewer than
 * the first-in-key-order choice takes).
 *
 * A parked value cannot collide: a column that may hold NULL is parked on
 * NULL (NULLs are distinct in a unique index); any other (NOT NULL, or a
 * PRIMARY KEY, which a STRICT table makes NOT NULL) on a value that neither
 * state holds in the column (equal under BINARY, NOCASE and RTRIM alike),
 * that no other parked row is given, and that the column stores as it is:
 * in a table that is not STRICT a blob, which every affinity keeps a blob;
 * in a STRICT table one of the column's type (an integer, a real, text; a
 * blob for BLOB and ANY). A CHECK constraint may refuse every value but the
 * final ones (CHECK (v IN ('x', 'y')) for two rows that swap them): a park
 * in a table whose CREATE statement has a CHECK is written between PRAGMA
 * ignore_check_constraints=ON and =OFF (the default), the row's final
 * UPDATE after it, checked. NOT NULL and STRICT types stay checked and are
 * kept.
 *
 * A park is an UPDATE, as the row's own: never a DELETE and an INSERT, so
 * no ON DELETE action (CASCADE, SET NULL) and no REPLACE can act on it. As
 * for every UPDATE of the script, the table's triggers are dropped around
 * it, and foreign keys are off when the script is applied (an ON UPDATE
 * action would carry the parked value to the child rows, whose own
 * statements write their newer values after).
 *
 * The unique indexes are those the table has in both states with one
 * definition (the others are dropped before its statements or made after
 * them), but not the primary key of a WITHOUT ROWID table, which is the
 * diff's key and no UPDATE changes (a row whose key changed is deleted and
 * inserted). A partial index, whose WHERE clause is not read, is taken to
 * hold every row: rows may be found to take from others that need not
 * (which orders them, and may park one that need not be), never fewer; a
 * change of any column may bring a row into it, so a row parked for it has
 * its first key column parked even when its keys do not change.
 *
 * An index with an expression or a generated column among its keys is
 * compared on those keys as SQLite computes them: each expression read
 * from the index's CREATE statement (sqltext.h) and evaluated on the rows
 * of both states. No value written to a column is known to make an
 * expression free, so in a table with such an index a park is a DELETE of
 * the row, and its final statement the INSERT of its newer values, under
 * its own key. Its child rows are kept only because foreign keys are off
 * when the script is applied; its triggers are dropped around it as
 * around every statement of the table. When an expression cannot be read
 * or evaluated (a function this program does not have), the index is left
 * out and stderr says so: the script may then fail on it where two of its
 * keys move between rows, as sqldiff's does.
 */

/* A unique index of a table, as the comparison uses it. */
typedef struct {
  GPtrArray *names;  /* its key columns, quoted                          */
  GPtrArray *colls;  /* their collations, quoted                         */
  GArray *park;      /* the key columns the script can write, as indexes
                      * into the newer state's columns (guint)           */
  GPtrArray *exprs;  /* with an expression or a generated column among
                      * its keys: each key as an expression of the
                      * table's columns; else NULL                       */
  char *name;        /* the index's name, quoted                         */
  gboolean partial;
} UniqueIdx;

/* An updated row that takes from another or is taken from. */
typedef struct {
  char *key;        /* its primary key as the script writes it: "1", "'a',2" */
  char *where;      /* " WHERE id=1"                                         */
  char *set;        /* " SET v='x',w=2": the columns that changed            */
  GPtrArray *vals;  /* the newer value of each column past the key, written  */
  guint8 *changed;  /* whether each column past the key changed              */
  guint n_wait;     /* rows it takes from that still hold their values       */
  GArray *waiters;  /* rows that take from it (indexes into Moves.rows)      */
  gboolean moved;   /* its older values given up: written or parked          */
  gboolean deleted; /* parked by a DELETE: its final statement an INSERT     */
  gboolean done;    /* its final statement written                           */
} MoveRow;

typedef struct {
  GPtrArray *uniq;     /* UniqueIdx                                           */
  GHashTable *takes;   /* key -> GPtrArray of the keys of the rows it takes from */
  GHashTable *in_pair; /* keys of the rows that take or are taken from        */
  GPtrArray *rows;     /* MoveRow, in key order                               */
  GHashTable *by_key;  /* key -> index into rows, plus 1                      */
  GHashTable *cols;    /* quoted column -> "N" (may hold NULL) or its STRICT
                        * type ("INTEGER", "REAL", "TEXT", "BLOB"), loaded at
                        * the first park                                     */
  guint n_tries;       /* park values tried so far: each one another          */
  gboolean by_delete;  /* a park is a DELETE (an index on an expression)     */
} Moves;

static void
unique_idx_free(gpointer p)
{
  UniqueIdx *u = p;
  g_ptr_array_unref(u->names);
  g_ptr_array_unref(u->colls);
  g_array_unref(u->park);
  g_clear_pointer(&u->exprs, g_ptr_array_unref);
  g_free(u->name);
  g_free(u);
}

static void
move_row_free(gpointer p)
{
  MoveRow *r = p;
  g_free(r->key);
  g_free(r->where);
  g_free(r->set);
  g_ptr_array_unref(r->vals);
  g_free(r->changed);
  g_array_unref(r->waiters);
  g_free(r);
}

static void
moves_free(Moves *m)
{
  if (m == NULL)
    return;
  g_ptr_array_unref(m->uniq);
  g_hash_table_unref(m->takes);
  g_hash_table_unref(m->in_pair);
  g_ptr_array_unref(m->rows);
  g_hash_table_unref(m->by_key);
  g_clear_pointer(&m->cols, g_hash_table_unref);
  g_free(m);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Moves, moves_free)

/* The key of the row in columns @first.. of @st (@n_pk of them), as the
 * script writes it: two keys are one row exactly when these are equal. */
static char *
row_key(Diff *d, sqlite3_stmt *st, int first, guint n_pk)
{
  GString *k = g_string_new(NULL);

  for (guint i = 0; i < n_pk; i++) {
    if (i > 0)
      g_string_append_c(k, ',');
    append_value(k, sqlite3_column_value(st, first + (int) i), d->enc[0]);
  }
  return g_string_free(k, FALSE);
}

/* The unique indexes of table @t that constrain its updates (see above)
 * into @m->uniq. */
static gboolean
load_unique(Diff *d, Table *t, Moves *m, GError **error)
{
  GPtrArray *az2 = t->side[1].cols;
  guint n_pk = t->side[1].n_pk;
  g_autoptr(sqlite3_stmt) st = NULL;
  char *sql = sqlite3_mprintf(
    "SELECT I.name, I.partial, (SELECT M.sql FROM main.sqlite_schema M"
    "  WHERE M.type = 'index' AND M.name = I.name) FROM pragma_index_list(%Q, 'main') I"
    " WHERE I.\"unique\" AND NOT (I.origin = 'pk' AND %d)"
    " AND EXISTS(SELECT 1 FROM main.sqlite_schema M, aux.sqlite_schema X"
    "  WHERE M.type = 'index' AND M.name = I.name AND X.type = 'index' AND X.name = I.name"
    "  AND M.tbl_name = X.tbl_name AND M.sql IS X.sql)",
    t->name, t->side[1].without_rowid ? 1 : 0);
  int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);

  sqlite3_free(sql);
  if (rc != SQLITE_OK)
    return sql_fail(d, rc, "reading the unique indexes of", error);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    g_autoptr(sqlite3_stmt) x = NULL;
    g_autoptr(GPtrArray) terms = g_ptr_array_new_with_free_func(g_free);
    const char *index_sql = (const char *) sqlite3_column_text(st, 2);
    UniqueIdx *u = g_new0(UniqueIdx, 1);
    gboolean usable = TRUE, opaque = FALSE, read = FALSE;
    guint k = 0;

    u->names = g_ptr_array_new_with_free_func(g_free);
    u->colls = g_ptr_array_new_with_free_func(g_free);
    u->park = g_array_new(FALSE, FALSE, sizeof(guint));
    u->exprs = g_ptr_array_new_with_free_func(g_free);
    u->name = safe_id((const char *) sqlite3_column_text(st, 0));
    u->partial = sqlite3_column_int(st, 1) != 0;
    if (index_sql == NULL || !sqlenvfs_sql_index_terms(index_sql, terms))
      g_ptr_array_set_size(terms, 0); /* a constraint's index: columns only */
    sql = sqlite3_mprintf("SELECT cid, name, coll FROM pragma_index_xinfo(%Q, 'main')"
                          " WHERE key ORDER BY seqno",
                          sqlite3_column_text(st, 0));
    rc = sqlite3_prepare_v2(d->db, sql, -1, &x, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
      unique_idx_free(u);
      return sql_fail(d, rc, "reading the unique indexes of", error);
    }
    for (; usable && sqlite3_step(x) == SQLITE_ROW; k++) {
      char *name;
      guint j;
      if (sqlite3_column_int(x, 0) == -2 && k < terms->len) {
        /* An expression, as the CREATE statement writes it. */
        g_ptr_array_add(u->exprs, g_strdup_printf("(%s\n)", (char *) terms->pdata[k]));
        g_ptr_array_add(u->names, NULL);
        g_ptr_array_add(u->colls, safe_id((const char *) sqlite3_column_text(x, 2)));
        opaque = read = TRUE;
        continue;
      }
      if (sqlite3_column_int(x, 0) < 0) {
        usable = FALSE; /* the rowid, or an expression not read */
        break;
      }
      name = safe_id((const char *) sqlite3_column_text(x, 1));
      for (j = 0; j < az2->len && strcmp(az2->pdata[j], name) != 0; j++)
        ;
      if (j == az2->len)
        opaque = TRUE; /* a generated column */
      else if (j >= n_pk)
        g_array_append_val(u->park, j);
      g_ptr_array_add(u->exprs, g_strdup(name));
      g_ptr_array_add(u->names, name);
      g_ptr_array_add(u->colls, safe_id((const char *) sqlite3_column_text(x, 2)));
    }
    if (read && terms->len != k)
      usable = FALSE; /* the text read is not the index SQLite reads */
    if (!usable)
      note(d, "table %s: unique index %s: a key of it could not be read, so the script does not "
              "order the updates that move its values between rows", t->name, u->name);
    if (!opaque)
      g_clear_pointer(&u->exprs, g_ptr_array_unref);
    if (usable && (opaque || u->park->len > 0)) {
      m->by_delete |= opaque;
      g_ptr_array_add(m->uniq, u);
    } else {
      unique_idx_free(u); /* or only the diff's key, which no UPDATE changes */
    }
  }
  if (rc != SQLITE_DONE)
    return sql_fail(d, rc, "reading the unique indexes of", error);
  return TRUE;
}

/* The rows of table @t (quoted @id) that take from others, into *@out, or
 * NULL there when there are none (see above). */
static gboolean
find_moves(Diff *d, Table *t, const char *id, Moves **out, GError **error)
{
  GPtrArray *az = t->side[0].cols;
  guint n_pk = t->side[0].n_pk;
  g_autoptr(Moves) m = g_new0(Moves, 1);

  *out = NULL;
  m->uniq = g_ptr_array_new_with_free_func(unique_idx_free);
  m->takes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                   (GDestroyNotify) g_ptr_array_unref);
  m->in_pair = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  m->rows = g_ptr_array_new_with_free_func(move_row_free);
  m->by_key = g_hash_table_new(g_str_hash, g_str_equal);
  if (!load_unique(d, t, m, error))
    return FALSE;
  for (guint u = 0; u < m->uniq->len; u++) {
    UniqueIdx *x = m->uniq->pdata[u];
    g_autoptr(sqlite3_stmt) st = NULL;
    GString *q = g_string_new("SELECT ");
    int rc;

    for (guint i = 0; i < n_pk; i++)
      g_string_append_printf(q, "B.%s, ", (char *) az->pdata[i]);
    for (guint i = 0; i < n_pk; i++)
      g_string_append_printf(q, "%sA.%s", i ? ", " : "", (char *) az->pdata[i]);
    if (x->exprs == NULL) {
      g_string_append_printf(q, " FROM aux.%s B, main.%s A WHERE", id, id);
      for (guint i = 0; i < x->names->len; i++)
        g_string_append_printf(q, " B.%s=A.%s COLLATE %s AND", (char *) x->names->pdata[i],
                               (char *) x->names->pdata[i], (char *) x->colls->pdata[i]);
    } else {
      /* Its keys computed on the rows of each state, where the expressions
       * name the table's columns; materialized, so that the join looks the
       * keys up in an index SQLite makes rather than computing them again
       * for every pair of rows. */
      GString *with = g_string_new("WITH");
      for (guint side = 0; side < 2; side++) {
        g_string_append_printf(with, "%s %s AS MATERIALIZED (SELECT ", side ? "," : "",
                               side == 0 ? "B" : "A");
        for (guint i = 0; i < n_pk; i++)
          g_string_append_printf(with, "%s.%s AS %s, ", id, (char *) az->pdata[i],
                                 (char *) az->pdata[i]);
        for (guint i = 0; i < x->exprs->len; i++)
          g_string_append_printf(with, "%s%s AS k%u", i ? ", " : "",
                                 (char *) x->exprs->pdata[i], i);
        g_string_append_printf(with, " FROM %s.%s WHERE 1", side == 0 ? "aux" : "main", id);
        append_restrict(with, t, id);
        g_string_append(with, ") ");
      }
      g_string_prepend(q, with->str);
      g_string_free(with, TRUE);
      g_string_append(q, " FROM B, A WHERE");
      for (guint i = 0; i < x->exprs->len; i++)
        g_string_append_printf(q, " B.k%u=A.k%u COLLATE %s AND", i, i,
                               (char *) x->colls->pdata[i]);
    }
    g_string_append(q, " NOT (");
    append_join(q, az, n_pk);
    g_string_append_printf(q, ") AND EXISTS(SELECT 1 FROM main.%s A2 WHERE", id);
    append_join_as(q, az, n_pk, "A2", "B");
    g_string_append_printf(q, ") AND EXISTS(SELECT 1 FROM aux.%s B2 WHERE", id);
    append_join_as(q, az, n_pk, "A", "B2");
    g_string_append(q, ")");
    if (x->exprs == NULL) {
      /* The rows of B on changed pages drive the join, and those of A are
       * only filtered (the unary "+"): as a constraint on A's unique index,
       * the IN list would be walked for each row of B whose key A holds
       * (every row, where a NOCASE key changes only its case), which took
       * minutes for 100,000 updated rows. The CTEs above are restricted
       * already. */
      append_restrict(q, t, "B");
      append_restrict(q, t, "+A");
    }
    rc = sqlite3_prepare_v2(d->db, q->str, -1, &st, NULL);
    g_string_free(q, TRUE);
    if (rc != SQLITE_OK && x->exprs != NULL) {
      note(d, "table %s: unique index %s: its keys cannot be computed here (%s), so the script "
              "does not order the updates that move its values between rows", t->name, x->name,
           sqlite3_errmsg(d->db));
      continue;
    }
    if (rc != SQLITE_OK)
      return sql_fail(d, rc, "comparing the unique keys of a table of", error);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      char *r = row_key(d, st, 0, n_pk), *s = row_key(d, st, (int) n_pk, n_pk);
      GPtrArray *from = g_hash_table_lookup(m->takes, r);
      if (from == NULL) {
        from = g_ptr_array_new_with_free_func(g_free);
        g_hash_table_insert(m->takes, g_strdup(r), from);
      }
      g_ptr_array_add(from, g_strdup(s));
      g_hash_table_add(m->in_pair, r);
      g_hash_table_add(m->in_pair, s);
    }
    if (rc != SQLITE_DONE)
      return sql_fail(d, rc, "comparing the unique keys of a table of", error);
  }
  if (g_hash_table_size(m->takes) > 0)
    *out = g_steal_pointer(&m);
  return TRUE;
}

/* Column @col of table @t: "N" when it may hold NULL, else the type a
 * parked value of it takes ("INTEGER", "REAL", "TEXT" or "BLOB"). */
static const char *
park_kind(Diff *d, Table *t, Moves *m, const char *col, GError **error)
{
  if (m->cols == NULL) {
    g_autoptr(sqlite3_stmt) st = NULL;
    gboolean strict = FALSE;
    char *sql = sqlite3_mprintf("SELECT strict FROM pragma_table_list(%Q)"
                                " WHERE schema = 'aux'", t->name);
    int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);

    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
      sql_fail(d, rc, "reading the columns of a table of", error);
      return NULL;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
      strict = sqlite3_column_int(st, 0) != 0;
    g_clear_pointer(&st, sqlite3_finalize);
    sql = sqlite3_mprintf("SELECT name, upper(type), \"notnull\" OR pk > 0"
                          " FROM pragma_table_xinfo(%Q, 'aux')",
                          t->name);
    rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
      sql_fail(d, rc, "reading the columns of a table of", error);
      return NULL;
    }
    m->cols = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *type = (const char *) sqlite3_column_text(st, 1);
      const char *kind = "BLOB";
      if (!sqlite3_column_int(st, 2))
        kind = "N";
      else if (strict && (g_strcmp0(type, "INT") == 0 || g_strcmp0(type, "INTEGER") == 0))
        kind = "INTEGER";
      else if (strict && g_strcmp0(type, "REAL") == 0)
        kind = "REAL";
      else if (strict && g_strcmp0(type, "TEXT") == 0)
        kind = "TEXT";
      g_hash_table_insert(m->cols, safe_id((const char *) sqlite3_column_text(st, 0)),
                          (gpointer) kind);
    }
  }
  return g_hash_table_lookup(m->cols, col);
}

/* Append a value to park column @col of table @t (quoted @id) on (see
 * above): NULL, or one of its kind that neither state holds in it, nor
 * any other park. */
static gboolean
append_park(Diff *d, Table *t, Moves *m, const char *id, const char *col, GString *o,
            GError **error)
{
  const char *kind = park_kind(d, t, m, col, error);
  g_autoptr(sqlite3_stmt) st = NULL;
  char *sql;
  int rc;

  if (kind == NULL) {
    if (error != NULL && *error != NULL)
      return FALSE;
    kind = "BLOB";
  }
  if (strcmp(kind, "N") == 0) {
    g_string_append(o, "NULL");
    return TRUE;
  }
  sql = sqlite3_mprintf("SELECT EXISTS(SELECT 1 FROM main.%s WHERE %s=?1 OR %s=?1 COLLATE NOCASE"
                        " OR %s=?1 COLLATE RTRIM) OR EXISTS(SELECT 1 FROM aux.%s WHERE %s=?1"
                        " OR %s=?1 COLLATE NOCASE OR %s=?1 COLLATE RTRIM)",
                        id, col, col, col, id, col, col, col);
  rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK)
    return sql_fail(d, rc, "choosing a value to park a row of", error);
  for (guint tries = 0; tries < 1000; tries++) {
    guint k = ++m->n_tries;
    g_autofree char *lit = NULL;
    sqlite3_reset(st);
    if (strcmp(kind, "INTEGER") == 0) {
      gint64 v = -(G_GINT64_CONSTANT(1) << 62) - (gint64) k;
      lit = g_strdup_printf("%" G_GINT64_FORMAT, v);
      sqlite3_bind_int64(st, 1, v);
    } else if (strcmp(kind, "REAL") == 0) {
      lit = g_strdup_printf("-%u.5e300", k);
      sqlite3_bind_double(st, 1, g_ascii_strtod(lit + 1, NULL) * -1.0);
    } else if (strcmp(kind, "TEXT") == 0) {
      g_autofree char *text = g_strdup_printf("sqlenvfs parked %u", k);
      lit = g_strdup_printf("'%s'", text);
      sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    } else {
      guint8 b[12] = { 's', 'q', 'l', 'e', 'n', 'v', 'f', 's',
                       (guint8) (k >> 24), (guint8) (k >> 16), (guint8) (k >> 8), (guint8) k };
      lit = g_strdup_printf("x'73716c656e766673%08x'", k);
      sqlite3_bind_blob(st, 1, b, sizeof b, SQLITE_TRANSIENT);
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
      return sql_fail(d, rc, "choosing a value to park a row of", error);
    if (sqlite3_column_int(st, 0) == 0) {
      g_string_append(o, lit);
      return TRUE;
    }
  }
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "%s: no free value to park a row of %s on in column %s", d->label[1], t->name,
              col);
  return FALSE;
}

/* Park row @r of table @t (quoted @id, newer columns @az2): its unique
 * keys set to values no row holds; *@parked gets which columns. */
static gboolean
write_park(Diff *d, Table *t, Moves *m, const char *id, GPtrArray *az2, guint n_pk,
           MoveRow *r, guint8 *parked, GString *o, GError **error)
{
  const char *sep = " SET";
  g_autofree char *upper = g_ascii_strup(t->side[1].sql, -1);
  gboolean check = strstr(upper, "CHECK") != NULL, any = FALSE;

  if (m->by_delete) {
    g_string_append_printf(o, "DELETE FROM %s%s; -- parked: its unique value is taken first\n",
                           id, r->where);
    r->deleted = TRUE;
    return TRUE;
  }

  /* In each unique index: the key columns it changes (one that does not
   * change keeps its value, and one parked value makes the whole key free);
   * in a partial index, where it may enter with keys it keeps, its first
   * key column if none. */
  for (guint u = 0; u < m->uniq->len; u++) {
    UniqueIdx *x = m->uniq->pdata[u];
    gboolean here = FALSE;
    for (guint i = 0; i < x->park->len; i++) {
      guint j = g_array_index(x->park, guint, i) - n_pk;
      if (r->changed[j])
        parked[j] = here = TRUE;
    }
    if (!here && x->partial)
      parked[g_array_index(x->park, guint, 0) - n_pk] = here = TRUE;
    any |= here;
  }
  for (guint u = 0; !any && u < m->uniq->len; u++) {
    /* None (a row is taken from only when a key of it changes): the first
     * key column of each index, so that the UPDATE is one. */
    UniqueIdx *x = m->uniq->pdata[u];
    parked[g_array_index(x->park, guint, 0) - n_pk] = TRUE;
  }
  if (check)
    g_string_append(o, "PRAGMA ignore_check_constraints=ON;\n");
  g_string_append_printf(o, "UPDATE %s", id);
  for (guint j = n_pk; j < az2->len; j++) {
    if (!parked[j - n_pk])
      continue;
    g_string_append_printf(o, "%s %s=", sep, (char *) az2->pdata[j]);
    sep = ",";
    if (!append_park(d, t, m, id, az2->pdata[j], o, error))
      return FALSE;
  }
  g_string_append_printf(o, "%s; -- parked: its unique value is taken first\n", r->where);
  if (check)
    g_string_append(o, "PRAGMA ignore_check_constraints=OFF;\n");
  return TRUE;
}

/* Row @i has given its older values up: the rows that take from it wait
 * for one row fewer; those that wait for none are ready. */
static void
row_moved(Moves *m, guint i, GQueue *ready)
{
  MoveRow *r = m->rows->pdata[i];

  if (r->moved)
    return;
  r->moved = TRUE;
  for (guint k = 0; k < r->waiters->len; k++) {
    guint w = g_array_index(r->waiters, guint, k);
    MoveRow *x = m->rows->pdata[w];
    if (--x->n_wait == 0)
      g_queue_push_tail(ready, GUINT_TO_POINTER(w));
  }
}

/* Write the UPDATEs of the rows in @m (see above). */
static gboolean
write_moves(Diff *d, Table *t, Moves *m, const char *id, GString *o, GError **error)
{
  GPtrArray *az2 = t->side[1].cols;
  guint n_pk = t->side[1].n_pk, n_done = 0, next = 0, n = m->rows->len;
  g_autofree guint8 *parked = g_malloc0((gsize) n * MAX(az2->len - n_pk, 1));
  GQueue ready = G_QUEUE_INIT;

  for (guint i = 0; i < n; i++) {
    MoveRow *r = m->rows->pdata[i];
    GPtrArray *from = g_hash_table_lookup(m->takes, r->key);
    for (guint k = 0; from != NULL && k < from->len; k++) {
      guint j = GPOINTER_TO_UINT(g_hash_table_lookup(m->by_key, from->pdata[k]));
      if (j == 0 || j - 1 == i)
        continue; /* not updated: a pair a partial index need not have */
      r->n_wait++;
      g_array_append_val(((MoveRow *) m->rows->pdata[j - 1])->waiters, i);
    }
  }
  for (guint i = 0; i < n; i++)
    if (((MoveRow *) m->rows->pdata[i])->n_wait == 0)
      g_queue_push_tail(&ready, GUINT_TO_POINTER(i));
  while (n_done < n) {
    while (!g_queue_is_empty(&ready)) {
      guint i = GPOINTER_TO_UINT(g_queue_pop_head(&ready));
      MoveRow *r = m->rows->pdata[i];
      guint8 *p = parked + (gsize) i * MAX(az2->len - n_pk, 1);
      const char *sep = " SET";
      if (r->deleted) { /* parked by a DELETE: inserted again, under its key */
        g_string_append_printf(o, "INSERT INTO %s(", id);
        for (guint j = 0; j < az2->len; j++)
          g_string_append_printf(o, "%s%s", j ? "," : "", (char *) az2->pdata[j]);
        g_string_append_printf(o, ") VALUES(%s", r->key);
        for (guint j = n_pk; j < az2->len; j++)
          g_string_append_printf(o, ",%s", (char *) r->vals->pdata[j - n_pk]);
        g_string_append(o, ");\n");
      } else {
        g_string_append_printf(o, "UPDATE %s", id);
        if (!r->moved) {
          g_string_append(o, r->set);
        } else { /* parked: its parked columns written back too */
          for (guint j = n_pk; j < az2->len; j++) {
            if (!r->changed[j - n_pk] && !p[j - n_pk])
              continue;
            g_string_append_printf(o, "%s %s=%s", sep, (char *) az2->pdata[j],
                                   (char *) r->vals->pdata[j - n_pk]);
            sep = ",";
          }
        }
        g_string_append_printf(o, "%s;\n", r->where);
      }
      r->done = TRUE;
      n_done++;
      row_moved(m, i, &ready);
      if (o->len > 65536)
        emit(d, o);
    }
    if (n_done == n)
      break;
    /* A cycle: every row left waits for one that holds its value. */
    while (((MoveRow *) m->rows->pdata[next])->moved)
      next++;
    if (!write_park(d, t, m, id, az2, n_pk, m->rows->pdata[next],
                    parked + (gsize) next * MAX(az2->len - n_pk, 1), o, error)) {
      g_queue_clear(&ready);
      return FALSE;
    }
    row_moved(m, next, &ready);
  }
  return TRUE;
}

/* The kinds of rows the comparison gives, in the order the script writes
 * them (then by primary key): a unique value that moves from a deleted
 * row to an updated or inserted one, or from an updated row to an inserted
 * one, is free by the time it is written; one that moves between updated
 * rows is ordered by write_moves. */
enum { ROW_DELETE = 1, ROW_UPDATE = 2, ROW_INSERT = 3 };

static gboolean
diff_table(Diff *d, Table *t, GString *o, GError **error)
{
  g_autofree char *id = safe_id(t->name);
  g_autoptr(sqlite3_stmt) st = NULL;
  g_autoptr(GPtrArray) defs = NULL;
  g_autoptr(GPtrArray) dflts = NULL; /* the added columns' defaults */
  g_autoptr(Moves) moves = NULL;
  GPtrArray *az, *az2;
  guint n_pk, n_pk2, n = 0, n2, n_cmp, n_q;
  gint64 n_update = 0, n_insert = 0, n_delete = 0;
  GString *q;
  int rc;

  if (t->side[0].is_virtual || t->side[1].is_virtual) {
    /* A virtual table: its rows are in its shadow tables. */
    if (t->side[0].exists && t->side[1].exists && t->side[0].is_virtual &&
        t->side[1].is_virtual && strcmp(t->side[0].sql, t->side[1].sql) == 0)
      return TRUE;
    if (t->side[0].exists) {
      note(d, "table %s: dropped between the two states%s", t->name,
           t->side[1].exists ? " (and created again)" : "");
      g_string_append_printf(o, "DROP TABLE %s;\n", id);
    }
    if (t->side[1].exists && t->side[1].is_virtual)
      g_string_append_printf(o, "%s;\n", t->side[1].sql);
    else if (t->side[1].exists)
      return dump_table(d, t, o, error);
    return TRUE;
  }
  if (!t->side[0].exists && !t->side[1].exists)
    return TRUE; /* a shadow table dropped with its virtual table */
  if (!t->side[1].exists) {
    note(d, "table %s: dropped between the two states", t->name);
    if (d->summary)
      g_string_append_printf(o, "%s: missing from second database\n", t->name);
    else if (g_ascii_strcasecmp(t->name, "sqlite_sequence") == 0)
      g_string_append(o, "DELETE FROM sqlite_sequence;\n"); /* it cannot be dropped */
    else
      g_string_append_printf(o, "DROP TABLE %s;\n", id);
    return TRUE;
  }
  if (!d->summary && g_ascii_strcasecmp(t->name, "sqlite_sequence") == 0) {
    /* Written whole when it differs: the INSERTs of the script have already
     * moved it, by rowids of their own. */
    gint64 n_diff = 1;
    if (t->side[0].exists) {
      g_autoptr(sqlite3_stmt) cmp = NULL;
      int rc1 = sqlite3_prepare_v2(d->db,
                                  "SELECT (SELECT count(*) FROM (SELECT rowid, * FROM"
                                  " main.sqlite_sequence EXCEPT SELECT rowid, * FROM"
                                  " aux.sqlite_sequence)) + (SELECT count(*) FROM (SELECT"
                                  " rowid, * FROM aux.sqlite_sequence EXCEPT SELECT rowid, *"
                                  " FROM main.sqlite_sequence))",
                                  -1, &cmp, NULL);
      if (rc1 != SQLITE_OK || (rc1 = sqlite3_step(cmp)) != SQLITE_ROW)
        return sql_fail(d, rc1, "comparing sqlite_sequence of", error);
      n_diff = sqlite3_column_int64(cmp, 0);
    }
    return n_diff == 0 || dump_table(d, t, o, error);
  }
  if (!t->side[0].exists) {
    note(d, "table %s: compared in full: created between the two states", t->name);
    d->stats->n_tables_full++;
    if (d->summary) {
      g_string_append_printf(o, "%s: missing from first database\n", t->name);
      return TRUE;
    }
    return dump_table(d, t, o, error);
  }
  az = t->side[0].cols;
  az2 = t->side[1].cols;
  n_pk = t->side[0].n_pk;
  n_pk2 = t->side[1].n_pk;
  if (az != NULL && az2 != NULL)
    for (n = 0; n < az->len && n < az2->len; n++)
      if (g_ascii_strcasecmp(az->pdata[n], az2->pdata[n]) != 0)
        break;
  if (az == NULL || az2 == NULL || n_pk != n_pk2 || n < az->len) {
    if (az == NULL && az2 == NULL)
      note(d, "table %s: compared in full: it has no key to match rows by (columns named "
              "rowid, oid and _rowid_ hide its rowid)", t->name);
    else
      note(d, "table %s: compared in full: its columns or primary key changed", t->name);
    d->stats->n_tables_full++;
    if (d->summary) {
      g_string_append_printf(o, "%s: incompatible schema\n", t->name);
      return TRUE;
    }
    g_string_append_printf(o, "DROP TABLE %s; -- due to schema mismatch\n", id);
    return dump_table(d, t, o, error);
  }
  if (t->is_full && t->why_full != NULL)
    note(d, "table %s: compared in full: %s", t->name, t->why_full);
  if (t->is_full || t->keys == NULL)
    d->stats->n_tables_full++;
  else
    d->stats->n_tables_keyed++;
  n2 = az2->len;
  if (!d->summary && g_strcmp0(t->side[0].sql, t->side[1].sql) != 0) {
    /* Columns added by ALTER TABLE are added the same way; any other change
     * of the CREATE statement (a table rebuilt with other types or
     * constraints, a rename that requoted it) only a new table gives. */
    if (n2 > n)
      defs = added_defs(t->side[0].sql, t->side[1].sql, n2 - n);
    if (defs == NULL) {
      g_string_append_printf(o, "DROP TABLE %s; -- its CREATE statement changed\n", id);
      return dump_table(d, t, o, error);
    }
  }
  for (guint i = n; defs != NULL && i < n2; i++)
    g_string_append_printf(o, "ALTER TABLE %s ADD COLUMN %s;\n", id, (char *) defs->pdata[i - n]);
  /* Once added, such a column reads its default in the older rows: a row
   * of the newer state that holds another value there is an update. */
  if (!d->summary && n2 > az->len && (dflts = added_defaults(d, t, az2, az->len, error)) == NULL)
    return FALSE;
  /* The summary compares the older state's columns only, as sqldiff does. */
  n_cmp = d->summary ? az->len : n2;
  n_q = n_pk + 1 + 2 * (n_cmp - n_pk);
  q = g_string_new(NULL);
  if (n_cmp > n_pk) {
    g_string_append(q, "SELECT ");
    for (guint i = 0; i < n_pk; i++)
      g_string_append_printf(q, "B.%s, ", (char *) az->pdata[i]);
    g_string_append_printf(q, "%d", ROW_UPDATE);
    for (guint i = n_pk; i < n_cmp; i++) {
      if (i < az->len) {
        g_string_append(q, ", ");
        append_differs(q, az->pdata[i], az2->pdata[i]);
        g_string_append_printf(q, ", B.%s", (char *) az2->pdata[i]);
      } else
        g_string_append_printf(q, ", B.%s IS NOT (%s), B.%s", (char *) az2->pdata[i],
                               (char *) dflts->pdata[i - az->len], (char *) az2->pdata[i]);
    }
    g_string_append_printf(q, " FROM main.%s A, aux.%s B WHERE", id, id);
    append_join(q, az, n_pk);
    g_string_append(q, " AND (");
    for (guint i = n_pk; i < n_cmp; i++) {
      if (i > n_pk)
        g_string_append(q, " OR ");
      if (i < az->len)
        append_differs(q, az->pdata[i], az2->pdata[i]);
      else
        g_string_append_printf(q, "B.%s IS NOT (%s)", (char *) az2->pdata[i],
                               (char *) dflts->pdata[i - az->len]);
    }
    g_string_append(q, ")");
    append_restrict(q, t, "A");
    g_string_append(q, " UNION ALL ");
  }
  g_string_append(q, "SELECT ");
  for (guint i = 0; i < n_pk; i++)
    g_string_append_printf(q, "A.%s, ", (char *) az->pdata[i]);
  g_string_append_printf(q, "%d", ROW_DELETE);
  for (guint i = n_pk; i < n_cmp; i++)
    g_string_append(q, ", NULL, NULL");
  g_string_append_printf(q, " FROM main.%s A WHERE NOT EXISTS(SELECT 1 FROM aux.%s B WHERE", id,
                         id);
  append_join(q, az, n_pk);
  g_string_append(q, ")");
  append_restrict(q, t, "A");
  g_string_append(q, " UNION ALL SELECT ");
  for (guint i = 0; i < n_pk; i++)
    g_string_append_printf(q, "B.%s, ", (char *) az->pdata[i]);
  g_string_append_printf(q, "%d", ROW_INSERT);
  for (guint i = n_pk; i < n_cmp; i++)
    g_string_append_printf(q, ", 1, B.%s", (char *) az2->pdata[i]);
  g_string_append_printf(q, " FROM aux.%s B WHERE NOT EXISTS(SELECT 1 FROM main.%s A WHERE", id,
                         id);
  append_join(q, az, n_pk);
  g_string_append(q, ")");
  append_restrict(q, t, "B");
  /* The deletes first (a row deleted before one inserted under a key its
   * collation calls the same, 'a' and 'A' in a NOCASE key, and before a
   * unique value it held is written again), then the updates, then the
   * inserts, each by primary key. */
  g_string_append_printf(q, " ORDER BY %u", n_pk + 1);
  for (guint i = 1; i <= n_pk; i++)
    g_string_append_printf(q, ", %u", i);

  /* The updates that take a unique value from another row, found before
   * the rows are read, are written after the others (see find_moves). */
  if (!d->summary && n_cmp > n_pk && !find_moves(d, t, id, &moves, error)) {
    g_string_free(q, TRUE);
    return FALSE;
  }
  rc = sqlite3_prepare_v2(d->db, q->str, -1, &st, NULL);
  g_string_free(q, TRUE);
  if (rc != SQLITE_OK)
    return sql_fail(d, rc, "comparing a table of", error);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int type = sqlite3_column_int(st, (int) n_pk);
    if (type == ROW_UPDATE)
      n_update++;
    else if (type == ROW_DELETE)
      n_delete++;
    else
      n_insert++;
    if (d->summary)
      continue;
    if (type == ROW_INSERT && moves != NULL && !write_moves(d, t, moves, id, o, error))
      return FALSE;
    if (type == ROW_INSERT)
      g_clear_pointer(&moves, moves_free);
    if (type == ROW_UPDATE || type == ROW_DELETE) {
      const char *sep = " SET";
      g_autofree char *key = NULL;
      GString *w = o;
      gsize start = o->len;
      if (type == ROW_UPDATE && moves != NULL) {
        key = row_key(d, st, 0, n_pk);
        if (g_hash_table_contains(moves->in_pair, key))
          w = g_string_new(NULL); /* kept for write_moves */
      }
      if (type == ROW_UPDATE) {
        g_string_append_printf(w, "UPDATE %s", id);
        start = w->len;
        for (guint i = n_pk + 1; i < n_q; i += 2) {
          if (sqlite3_column_int(st, (int) i) == 0)
            continue;
          g_string_append_printf(w, "%s %s=", sep, (char *) az2->pdata[(i + n_pk - 1) / 2]);
          sep = ",";
          append_value(w, sqlite3_column_value(st, (int) i + 1), d->enc[0]);
        }
      } else {
        g_string_append_printf(w, "DELETE FROM %s", id);
      }
      if (w != o) {
        MoveRow *r = g_new0(MoveRow, 1);
        GString *wh = g_string_new(NULL);
        r->key = g_steal_pointer(&key);
        r->set = g_strdup(w->str + start);
        r->vals = g_ptr_array_new_with_free_func(g_free);
        r->changed = g_malloc0(n_cmp - n_pk);
        r->waiters = g_array_new(FALSE, FALSE, sizeof(guint));
        for (guint i = n_pk + 1; i < n_q; i += 2) {
          GString *v = g_string_new(NULL);
          append_value(v, sqlite3_column_value(st, (int) i + 1), d->enc[0]);
          g_ptr_array_add(r->vals, g_string_free(v, FALSE));
          r->changed[(i - n_pk - 1) / 2] = sqlite3_column_int(st, (int) i) != 0;
        }
        for (guint i = 0; i < n_pk; i++) {
          g_string_append_printf(wh, "%s %s=", i ? " AND" : " WHERE", (char *) az2->pdata[i]);
          append_value(wh, sqlite3_column_value(st, (int) i), d->enc[0]);
        }
        r->where = g_string_free(wh, FALSE);
        g_string_free(w, TRUE);
        g_ptr_array_add(moves->rows, r);
        g_hash_table_insert(moves->by_key, r->key, GUINT_TO_POINTER(moves->rows->len));
        continue;
      }
      for (guint i = 0; i < n_pk; i++) {
        g_string_append_printf(o, "%s %s=", i ? " AND" : " WHERE", (char *) az2->pdata[i]);
        append_value(o, sqlite3_column_value(st, (int) i), d->enc[0]);
      }
      g_string_append(o, ";\n");
    } else {
      g_string_append_printf(o, "INSERT INTO %s(", id);
      for (guint i = 0; i < az2->len; i++)
        g_string_append_printf(o, "%s%s", i ? "," : "", (char *) az2->pdata[i]);
      g_string_append(o, ") VALUES");
      for (guint i = 0; i < n_pk2; i++) {
        g_string_append_c(o, i ? ',' : '(');
        append_value(o, sqlite3_column_value(st, (int) i), d->enc[0]);
      }
      for (guint i = n_pk2 + 2; i < n_q; i += 2) {
        g_string_append_c(o, ',');
        append_value(o, sqlite3_column_value(st, (int) i), d->enc[0]);
      }
      g_string_append(o, ");\n");
    }
    if (o->len > 65536)
      emit(d, o);
  }
  if (rc != SQLITE_DONE)
    return sql_fail(d, rc, "comparing a table of", error);
  if (moves != NULL && !write_moves(d, t, moves, id, o, error))
    return FALSE;
  if (d->summary) {
    gint64 total = count_rows(d, id, error);
    if (total < 0)
      return FALSE;
    g_string_append_printf(o,
                           "%s: %" G_GINT64_FORMAT " changes, %" G_GINT64_FORMAT
                           " inserts, %" G_GINT64_FORMAT " deletes, %" G_GINT64_FORMAT
                           " unchanged\n",
                           t->name, n_update, n_insert, n_delete,
                           total - n_delete - n_update);
    return TRUE;
  }
  return index_changes(d, t, FALSE, o, error);
}

/* ---- views and triggers -------------------------------------------------
 *
 * The script must turn the older state into the newer one when applied
 * with triggers: a trigger fires on the script's own INSERT, UPDATE and
 * DELETE and would write rows the script writes too. So the triggers of
 * a table are dropped before its rows are written and created again after
 * them; the views and triggers that differ (gone, new, or another CREATE
 * statement, or on a view that differs: dropping a view drops them) are
 * dropped before the tables and created after them, views first. */

static void
schema_obj_free(gpointer p)
{
  SchemaObj *o = p;
  g_free(o->name);
  g_free(o->tbl);
  g_free(o->sql);
  g_free(o);
}

static gboolean
load_objects(Diff *d, int s, GError **error)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  char *sql = sqlite3_mprintf("SELECT type = 'trigger', name, tbl_name, sql FROM %s.sqlite_schema"
                              " WHERE type IN ('view', 'trigger') AND sql IS NOT NULL"
                              " ORDER BY rowid",
                              s == 0 ? "main" : "aux");
  int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);

  sqlite3_free(sql);
  d->objs[s] = g_ptr_array_new_with_free_func(schema_obj_free);
  if (rc != SQLITE_OK)
    return sql_fail(d, rc, "reading the views and triggers of", error);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    SchemaObj *o = g_new0(SchemaObj, 1);
    o->is_trigger = sqlite3_column_int(st, 0) != 0;
    o->name = g_strdup((const char *) sqlite3_column_text(st, 1));
    o->tbl = g_strdup((const char *) sqlite3_column_text(st, 2));
    o->sql = g_strdup((const char *) sqlite3_column_text(st, 3));
    g_ptr_array_add(d->objs[s], o);
  }
  if (rc != SQLITE_DONE)
    return sql_fail(d, rc, "reading the views and triggers of", error);
  return TRUE;
}

/* Whether @o of one state is in state @s as it is (kind, name, CREATE). */
static gboolean
obj_in(const Diff *d, int s, const SchemaObj *o)
{
  for (guint i = 0; i < d->objs[s]->len; i++) {
    const SchemaObj *x = d->objs[s]->pdata[i];
    if (x->is_trigger == o->is_trigger && strcmp(x->name, o->name) == 0 &&
        strcmp(x->sql, o->sql) == 0)
      return TRUE;
  }
  return FALSE;
}

/* Whether a view named @name is in the older state and not as it is in
 * the newer one (it is dropped, and its triggers with it). */
static gboolean
view_replaced(const Diff *d, const char *name)
{
  for (guint i = 0; i < d->objs[0]->len; i++) {
    const SchemaObj *x = d->objs[0]->pdata[i];
    if (!x->is_trigger && g_ascii_strcasecmp(x->name, name) == 0 && !obj_in(d, 1, x))
      return TRUE;
  }
  return FALSE;
}

/* A trigger of state @s that both states hold as it is, on a table: the
 * script drops and creates it around its table's rows only. */
static gboolean
trigger_kept(const Diff *d, int s, const SchemaObj *o)
{
  return o->is_trigger && obj_in(d, 1 - s, o) && !view_replaced(d, o->tbl);
}

/* Before the tables: DROP the triggers, then the views, that are not kept. */
static void
schema_before(Diff *d, GString *o)
{
  for (int pass = 0; pass < 2; pass++)
    for (guint i = 0; i < d->objs[0]->len; i++) {
      const SchemaObj *x = d->objs[0]->pdata[i];
      g_autofree char *id = NULL;
      if (x->is_trigger != (pass == 0) || trigger_kept(d, 0, x) ||
          (!x->is_trigger && obj_in(d, 1, x)))
        continue;
      id = safe_id(x->name);
      g_string_append_printf(o, "DROP %s %s;\n", x->is_trigger ? "TRIGGER" : "VIEW", id);
    }
}

/* The kept triggers on table @t: DROP (@drop) before its rows are written,
 * else CREATE after them. */
static void
schema_around(Diff *d, const Table *t, gboolean drop, GString *o)
{
  for (guint i = 0; i < d->objs[1]->len; i++) {
    const SchemaObj *x = d->objs[1]->pdata[i];
    g_autofree char *id = NULL;
    if (!trigger_kept(d, 1, x) || g_ascii_strcasecmp(x->tbl, t->name) != 0)
      continue;
    id = safe_id(x->name);
    if (drop)
      g_string_append_printf(o, "DROP TRIGGER %s; -- while the rows of %s are written\n", id,
                             t->name);
    else
      g_string_append_printf(o, "%s;\n", x->sql);
  }
}

/* After the tables: CREATE the views, then the triggers, not kept. */
static void
schema_after(Diff *d, GString *o)
{
  for (int pass = 0; pass < 2; pass++)
    for (guint i = 0; i < d->objs[1]->len; i++) {
      const SchemaObj *x = d->objs[1]->pdata[i];
      if (x->is_trigger != (pass == 1) || trigger_kept(d, 1, x) ||
          (!x->is_trigger && obj_in(d, 0, x)))
        continue;
      g_string_append_printf(o, "%s;\n", x->sql);
    }
}

/* One table's part of the script, between the DROP and the CREATE of its
 * kept triggers when it writes anything. */
static gboolean
diff_table_wrapped(Diff *d, Table *t, GString *o, GError **error)
{
  guint64 emitted = d->n_emitted;
  gsize start = o->len, mark;

  if (d->summary)
    return diff_table(d, t, o, error);
  schema_around(d, t, TRUE, o);
  mark = o->len;
  if (!diff_table(d, t, o, error))
    return FALSE;
  if (d->n_emitted == emitted && o->len == mark)
    g_string_truncate(o, start); /* nothing written: nothing to guard */
  else
    schema_around(d, t, FALSE, o);
  return TRUE;
}

/* Before the tables (the script only): the indexes gone from tables in
 * both states and the tables dropped, so that a name they free is free
 * for what the script creates (SQLite's names are case-insensitive: a
 * table renamed foo -> Foo, an index dropped from one table and made on
 * another), whatever the name order. SQLite's own tables keep their
 * place, last. */
static gboolean
drops_first(Diff *d, GString *o, GError **error)
{
  for (guint i = 0; i < d->tables->len; i++) {
    Table *t = d->tables->pdata[i];
    if (t->side[0].exists && t->side[1].exists && !t->side[0].is_virtual &&
        !t->side[1].is_virtual && !index_changes(d, t, TRUE, o, error))
      return FALSE;
  }
  for (guint i = 0; i < d->tables->len; i++) {
    Table *t = d->tables->pdata[i];
    if (!t->side[0].exists || t->side[1].exists || is_internal(t->name))
      continue;
    if (!diff_table_wrapped(d, t, o, error))
      return FALSE;
    t->done = TRUE;
  }
  return TRUE;
}

static gboolean
image_geometry(Diff *d, int s, GError **error)
{
  guint8 h[100];
  gssize n = sqlenvfs_image_read(d->img[s], h, sizeof h, 0, 0, error);
  guint32 ps;

  if (n < 0)
    return FALSE;
  if (n < (gssize) sizeof h || memcmp(h, "SQLite format 3", 16) != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s is not an SQLite database (its header is wrong); check it with"
                " `sqlenvfs verify`",
                d->label[s]);
    return FALSE;
  }
  ps = sqlenvfs_db_page_size(h);
  if (!sqlenvfs_page_size_ok(ps) || h[20] > ps - 480) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s has an impossible page size %u; check it with `sqlenvfs verify`",
                d->label[s], ps);
    return FALSE;
  }
  d->page_size[s] = ps;
  d->usable[s] = ps - h[20];
  /* 0 before the first table: SQLite takes UTF-8 then. */
  switch (((guint32) h[56] << 24) | ((guint32) h[57] << 16) | ((guint32) h[58] << 8) | h[59]) {
  case 2:
    d->enc[s] = SQLITE_UTF16LE;
    break;
  case 3:
    d->enc[s] = SQLITE_UTF16BE;
    break;
  default:
    d->enc[s] = SQLITE_UTF8;
  }
  d->n_pages[s] = (guint32) (sqlenvfs_image_size(d->img[s]) / ps);
  return TRUE;
}

gboolean
sqlenvfs_diff_images(SqlenvfsImage *from, const char *from_label, SqlenvfsImage *to,
                     const char *to_label, GHashTable *changed, gboolean summary,
                     SqlenvfsDiffOutFunc out, SqlenvfsDiffNoteFunc note_fn, gpointer user,
                     SqlenvfsDiffStats *stats, GError **error)
{
  SqlenvfsDiffStats local_stats = { 0 };
  Diff d = { 0 };
  gboolean ok = FALSE;
  GString *o = g_string_new(NULL);
  SqlenvfsImagevfsStats vs;

  g_return_val_if_fail(from != NULL && to != NULL && out != NULL, FALSE);
  d.img[0] = from;
  d.img[1] = to;
  d.label[0] = from_label;
  d.label[1] = to_label;
  d.changed = changed;
  d.summary = summary;
  d.out = out;
  d.note = note_fn;
  d.user = user;
  d.stats = stats != NULL ? stats : &local_stats;
  d.tables = g_ptr_array_new_with_free_func(table_free);
  d.by_name = g_hash_table_new(g_str_hash, g_str_equal);
  d.owner[0] = g_hash_table_new(NULL, NULL);
  d.owner[1] = g_hash_table_new(NULL, NULL);
  d.children = g_hash_table_new_full(NULL, NULL, NULL, (GDestroyNotify) g_array_unref);
  d.is_leaf = g_hash_table_new(NULL, NULL);
  d.covered = g_hash_table_new(NULL, NULL);
  for (int s = 0; s < 2; s++) {
    d.cache[s] = g_hash_table_new_full(NULL, NULL, NULL, g_free);
    d.free_pages[s] = g_hash_table_new(NULL, NULL);
    d.trees[s] = g_array_new(FALSE, FALSE, sizeof(TreeRoot));
  }
  d.stats->is_full = changed == NULL;

  if (!image_geometry(&d, 0, error) || !image_geometry(&d, 1, error) ||
      !sqlenvfs_imagevfs_open(from, from_label, &d.db, error) ||
      !sqlenvfs_imagevfs_attach(d.db, to, to_label, "aux", error) || !load_tables(&d, error))
    goto out;
  if (sqlite3_create_function(d.db, "sqlenvfs_negzero", 1,
                              SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                              negzero_fn, NULL, NULL) != SQLITE_OK) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "set up the comparison: %s",
                sqlite3_errmsg(d.db));
    goto out;
  }
  /* The comparison looks each changed row up several times in both
   * states: a page cache large enough for them reads (and decompresses
   * from the archive) each page once. Memory is taken only as pages are. */
  sqlite3_exec(d.db, "PRAGMA main.cache_size=-" G_STRINGIFY(DIFF_CACHE_KIB)
                     "; PRAGMA aux.cache_size=-" G_STRINGIFY(DIFF_CACHE_KIB),
               NULL, NULL, NULL);
  if (changed != NULL) {
    /* Which tables are WITHOUT ROWID: their root page is an index page. */
    for (guint i = 0; i < d.tables->len; i++) {
      Table *t = d.tables->pdata[i];
      for (int s = 0; s < 2; s++) {
        const guint8 *buf;
        guint hdr;
        if (!t->side[s].exists || t->side[s].root == 0)
          continue;
        buf = get_page(&d, s, t->side[s].root, error);
        if (buf == NULL)
          goto out;
        hdr = t->side[s].root == 1 ? 100 : 0;
        t->side[s].without_rowid = buf[hdr] == SQLENVFS_BTREE_INDEX_LEAF ||
                                   buf[hdr] == SQLENVFS_BTREE_INDEX_INTERIOR;
      }
    }
    if (!map_changed_pages(&d, error))
      goto out;
  }
  /* The script puts SQLite's own tables (sqlite_sequence, sqlite_stat1)
   * last: the CREATE TABLE of an AUTOINCREMENT table makes sqlite_sequence,
   * so its rows can only be written after that. The summary keeps
   * sqldiff's order. */
  if (!summary) {
    if (!load_objects(&d, 0, error) || !load_objects(&d, 1, error))
      goto out;
    schema_before(&d, o);
    if (!drops_first(&d, o, error))
      goto out;
  }
  for (int pass = 0; pass < (summary ? 1 : 2); pass++) {
    for (guint i = 0; i < d.tables->len; i++) {
      Table *t = d.tables->pdata[i];
      if (!summary && (is_internal(t->name) != (pass == 1) || t->done))
        continue;
      if (!diff_table_wrapped(&d, t, o, error))
        goto out;
      emit(&d, o);
    }
  }
  if (!summary)
    schema_after(&d, o);
  emit(&d, o);
  ok = TRUE;

out:
  if (d.db != NULL) {
    if (sqlenvfs_imagevfs_stats(d.db, "main", &vs))
      d.stats->n_sql_reads += vs.n_reads;
    if (sqlenvfs_imagevfs_stats(d.db, "aux", &vs))
      d.stats->n_sql_reads += vs.n_reads;
    for (guint i = 0; i < d.tables->len; i++)
      g_clear_pointer(&((Table *) d.tables->pdata[i])->add, sqlite3_finalize);
    sqlite3_close_v2(d.db);
  }
  g_string_free(o, TRUE);
  g_ptr_array_unref(d.tables);
  for (int s = 0; s < 2; s++)
    g_clear_pointer(&d.objs[s], g_ptr_array_unref);
  g_hash_table_unref(d.by_name);
  g_hash_table_unref(d.owner[0]);
  g_hash_table_unref(d.owner[1]);
  g_hash_table_unref(d.children);
  g_hash_table_unref(d.is_leaf);
  g_hash_table_unref(d.covered);
  for (int s = 0; s < 2; s++) {
    g_hash_table_unref(d.cache[s]);
    g_hash_table_unref(d.free_pages[s]);
    g_array_unref(d.trees[s]);
  }
  return ok;
}

/* The pages the COMMIT records after @from_seq up to @to_seq wrote, or NULL
 * (and *why) when the archive cannot say: a GAP between them, or records
 * missing. Summarized segments answer from their page maps. */
static GHashTable *
changed_pages(SqlenvfsRoot *root, const char *db, guint64 from_seq, guint64 to_seq,
              guint64 *n_commits, char **why, GError **error)
{
  g_autofree char *dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), db, NULL);
  g_autoptr(SqlenvfsArchive) a = sqlenvfs_archive_open(dir, error);
  g_autoptr(GHashTable) set = NULL;
  g_autoptr(GError) local = NULL;

  if (a == NULL)
    return NULL;
  set = g_hash_table_new(NULL, NULL);
  if (!sqlenvfs_archive_pages_written(a, from_seq, to_seq, set, n_commits, &local)) {
    if (g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP)) {
      *why = g_strdup(local->message);
      return NULL;
    }
    g_propagate_error(error, g_steal_pointer(&local));
    return NULL;
  }
  return g_steal_pointer(&set);
}

/* The script as SQLite's .dump writes one: foreign keys off (the tables
 * come in name order, and a parked row may be deleted and inserted again)
 * and one transaction, so that it applies whole, at the cost of one
 * commit rather than one a statement. Written before the first statement,
 * so that two states alike give an empty script. */
#define SCRIPT_HEAD "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n"
#define SCRIPT_TAIL "COMMIT;\n"

typedef struct {
  SqlenvfsDiffOutFunc out;
  SqlenvfsDiffNoteFunc note;
  gpointer user;
  gboolean begun;
} ScriptOut;

static void
script_out(gpointer p, const char *text, gsize len)
{
  ScriptOut *s = p;

  if (len == 0)
    return;
  if (!s->begun)
    s->out(s->user, SCRIPT_HEAD, strlen(SCRIPT_HEAD));
  s->begun = TRUE;
  s->out(s->user, text, len);
}

static void
script_note(gpointer p, const char *message)
{
  ScriptOut *s = p;

  if (s->note != NULL)
    s->note(s->user, message);
}

gboolean
sqlenvfs_diff_run(SqlenvfsRoot *root, const char *db, const SqlenvfsTime *from,
                  const SqlenvfsTime *to, gboolean summary, SqlenvfsDiffOutFunc out,
                  SqlenvfsDiffNoteFunc note_fn, gpointer user, SqlenvfsDiffStats *stats,
                  GError **error)
{
  SqlenvfsDiffStats local_stats = { 0 };
  ScriptOut script = { out, note_fn, user, FALSE };
  g_autoptr(SqlenvfsRestorePlan) p1 = NULL, p2 = NULL;
  g_autoptr(SqlenvfsImage) i1 = NULL, i2 = NULL;
  g_autoptr(GHashTable) set = NULL;
  g_autofree char *why = NULL, *t1 = NULL, *t2 = NULL, *l1 = NULL, *l2 = NULL;

  if (stats == NULL)
    stats = &local_stats;
  p1 = sqlenvfs_restore_plan(root, db, from, error);
  if (p1 == NULL)
    return FALSE;
  p2 = sqlenvfs_restore_plan(root, db, to, error);
  if (p2 == NULL)
    return FALSE;
  t1 = sqlenvfs_time_format_iso(p1->state_us);
  t2 = sqlenvfs_time_format_iso(p2->state_us);
  if (p1->state_us > p2->state_us) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "%s.db: the first time (state of %s) is after the second (state of %s);"
                " give the older time first",
                p1->db, t1, t2);
    return FALSE;
  }
  stats->from_seq = p1->state_seq;
  stats->to_seq = p2->state_seq;
  stats->from_us = p1->state_us;
  stats->to_us = p2->state_us;
  l1 = g_strdup_printf("%s.db at %s", p1->db, t1);
  l2 = g_strdup_printf("%s.db at %s", p2->db, t2);
  if (p1->state_seq < p2->state_seq) {
    set = changed_pages(root, p1->db, p1->state_seq, p2->state_seq, &stats->n_commits, &why,
                        error);
    if (set == NULL && why == NULL)
      return FALSE;
    if (set == NULL) {
      g_autofree char *msg = g_strdup_printf("comparing every table in full: %s", why);
      if (note_fn != NULL)
        note_fn(user, msg);
    }
  } else {
    set = g_hash_table_new(NULL, NULL); /* the same state */
  }
  if (set != NULL) {
    /* The pages past the end of the smaller state are in one state only:
     * they differ, though no commit need have written them (a commit that
     * shrinks the database, an incremental vacuum or any commit with
     * auto_vacuum=FULL, leaves its pages past the new end out of the
     * WAL, and the rows they held with them). */
    for (guint32 p = MIN(p1->n_pages, p2->n_pages) + 1; p <= MAX(p1->n_pages, p2->n_pages); p++)
      g_hash_table_add(set, GUINT_TO_POINTER(p));
    stats->n_changed_pages = g_hash_table_size(set);
  }
  p1->on_demand = p2->on_demand = TRUE; /* pages read as needed */
  i1 = sqlenvfs_restore_image(root, p1, NULL, NULL, error);
  if (i1 == NULL)
    return FALSE;
  i2 = sqlenvfs_restore_image(root, p2, NULL, NULL, error);
  if (i2 == NULL)
    return FALSE;
  if (summary)
    return sqlenvfs_diff_images(i1, l1, i2, l2, set, TRUE, out, note_fn, user, stats, error) &&
           sqlenvfs_restore_base_unchanged(p1, error) &&
           sqlenvfs_restore_base_unchanged(p2, error);
  /* The COMMIT only once everything is written and both bases are found
   * unchanged: a script cut short by an error commits nothing. */
  if (!sqlenvfs_diff_images(i1, l1, i2, l2, set, FALSE, script_out, script_note, &script,
                            stats, error) ||
      !sqlenvfs_restore_base_unchanged(p1, error) || !sqlenvfs_restore_base_unchanged(p2, error))
    return FALSE;
  if (script.begun)
    out(user, SCRIPT_TAIL, strlen(SCRIPT_TAIL));
  return TRUE;
}
