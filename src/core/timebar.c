/*
 * timebar.c — each database's history as a bar of text (timebar.h).
 */
#include "sqlenvfs/timebar.h"

#include <string.h>

#include "sqlenvfs/timefmt.h"

#define NAME_MAX_CHARS 16
#define MIN_BAR 10

/* Rank of what a column shows: the highest wins (timebar.h). */
enum { R_NONE, R_WINDOW, R_OUTAGE, R_GAP };
static const char rank_char[] = { '.', '=', '~', 'x' };

typedef struct {
  gint64 t0, span;
  guint n; /* columns */
} Axis;

static guint
col_of(const Axis *ax, gint64 t)
{
  double c;
  if (t <= ax->t0)
    return 0;
  c = (double)(t - ax->t0) * (double)ax->n / (double)ax->span;
  return c >= (double)(ax->n - 1) ? ax->n - 1 : (guint)c;
}

static void
mark(guint8 *ranks, const Axis *ax, gint64 from, gint64 to, guint8 rank)
{
  for (guint c = col_of(ax, from); c <= col_of(ax, to); c++)
    ranks[c] = MAX(ranks[c], rank);
}

/* @s without its trailing blanks (in place). */
static char *
chomp(char *s)
{
  return g_strchomp(s);
}

/* "about 12 s" for one column of @us microseconds. */
static char *
format_duration(double us)
{
  if (us < 1000.0)
    return g_strdup_printf("%.0f us", us);
  if (us < 1e6)
    return g_strdup_printf("%.0f ms", us / 1e3);
  if (us < 120e6)
    return g_strdup_printf("%.0f s", us / 1e6);
  if (us < 7200e6)
    return g_strdup_printf("%.0f min", us / 60e6);
  if (us < 172800e6)
    return g_strdup_printf("%.1f h", us / 3600e6);
  return g_strdup_printf("%.1f days", us / 86400e6);
}

/* @name cut to NAME_MAX_CHARS characters (the last one a '~' when cut). */
static char *
short_name(const char *name)
{
  glong n = g_utf8_strlen(name, -1);
  g_autofree char *head = NULL;
  if (n <= NAME_MAX_CHARS)
    return g_strdup(name);
  head = g_utf8_substring(name, 0, NAME_MAX_CHARS - 1);
  return g_strconcat(head, "~", NULL);
}

/* Append @s padded with blanks to @chars characters. */
static void
append_padded(GString *row, const char *s, glong chars)
{
  g_string_append(row, s);
  for (glong i = g_utf8_strlen(s, -1); i < chars; i++)
    g_string_append_c(row, ' ');
}

static void
add_row(GPtrArray *rows, GString *row)
{
  g_ptr_array_add(rows, chomp(g_string_free(row, FALSE)));
}

static void
add_legend(GPtrArray *rows, guint width)
{
  static const char *const items[] = {
    "= recoverable", "x gap: commits lost or damaged", "~ outage: nothing lost",
    ". not recoverable", "B backup", "S snapshot", "* both",
  };
  GString *row = g_string_new("legend:");
  for (gsize i = 0; i < G_N_ELEMENTS(items); i++) {
    gsize need = strlen(items[i]) + 2;
    if (row->len > 0 && row->len + need > width) {
      add_row(rows, row);
      row = g_string_new("         ");
      g_string_append(row, items[i]);
      continue;
    }
    g_string_append(row, "  ");
    g_string_append(row, items[i]);
  }
  add_row(rows, row);
}

char **
sqlenvfs_timebar_render(const SqlenvfsTimebarDb *dbs, guint n_dbs, gint64 now_us, guint width)
{
  GPtrArray *rows = g_ptr_array_new();
  gboolean any = FALSE;
  gint64 t0 = G_MAXINT64, t1 = now_us;
  glong name_chars = 0;
  guint label;
  Axis ax;
  g_autofree char *from = NULL, *to = NULL, *per_col = NULL;

  width = MAX(width, SQLENVFS_TIMEBAR_MIN_WIDTH);
  for (guint d = 0; d < n_dbs; d++) {
    g_autofree char *name = short_name(dbs[d].db);
    name_chars = MAX(name_chars, g_utf8_strlen(name, -1));
    for (guint i = 0; i < dbs[d].n_windows; i++) {
      t0 = MIN(t0, dbs[d].windows[i].from_us);
      t1 = MAX(t1, dbs[d].windows[i].to_us);
      any = TRUE;
    }
    for (guint i = 0; i < dbs[d].n_bases; i++) {
      t0 = MIN(t0, dbs[d].bases[i].time_us);
      t1 = MAX(t1, dbs[d].bases[i].time_us);
      any = TRUE;
    }
  }
  if (!any) {
    g_ptr_array_add(rows, g_strdup("history: no backup, snapshot or recoverable window yet"));
    g_ptr_array_add(rows, NULL);
    return (char **)g_ptr_array_free(rows, FALSE);
  }
  label = 2 + (guint)name_chars + 2;
  ax.t0 = t0;
  ax.span = MAX(t1 - t0, (gint64)1);
  ax.n = width - label >= MIN_BAR ? width - label : MIN_BAR;
  per_col = format_duration((double)ax.span / ax.n);
  g_ptr_array_add(rows, g_strdup_printf("history, one column = %s", per_col));

  for (guint d = 0; d < n_dbs; d++) {
    const SqlenvfsTimebarDb *db = &dbs[d];
    g_autofree guint8 *ranks = g_new0(guint8, ax.n);
    g_autofree char *marks = g_malloc(ax.n + 1);
    g_autofree char *name = short_name(db->db);
    GString *row;

    memset(marks, ' ', ax.n);
    marks[ax.n] = '\0';
    for (guint i = 0; i < db->n_bases; i++) {
      guint c = col_of(&ax, db->bases[i].time_us);
      char m = db->bases[i].kind == SQLENVFS_KIND_BACKUP ? 'B' : 'S';
      marks[c] = marks[c] == ' ' || marks[c] == m ? m : '*';
    }
    for (guint i = 0; i < db->n_windows; i++) {
      const SqlenvfsTimebarWindow *w = &db->windows[i];
      mark(ranks, &ax, w->from_us, w->to_us, R_WINDOW);
    }
    /* What separates two windows, over both of them (never hidden). */
    for (guint i = 1; i < db->n_windows; i++) {
      const SqlenvfsTimebarWindow *w = &db->windows[i];
      gint64 a = db->windows[i - 1].to_us;
      if (w->before == SQLENVFS_BEFORE_GAP || w->before == SQLENVFS_BEFORE_DAMAGE)
        mark(ranks, &ax, a, w->from_us, R_GAP);
      else if (w->before == SQLENVFS_BEFORE_OUTAGE)
        mark(ranks, &ax, a, w->from_us, R_OUTAGE);
    }

    if (db->n_bases > 0) {
      row = g_string_new(NULL);
      for (guint i = 0; i < label; i++)
        g_string_append_c(row, ' ');
      g_string_append(row, marks);
      add_row(rows, row);
    }

    row = g_string_new("  ");
    append_padded(row, name, name_chars + 2);
    for (guint c = 0; c < ax.n; c++)
      g_string_append_c(row, rank_char[ranks[c]]);
    add_row(rows, row);
  }

  /* The times at the ends of the bars. */
  from = sqlenvfs_time_format_local(t0);
  to = sqlenvfs_time_format_local(ax.t0 + ax.span);
  {
    GString *row = g_string_new(NULL);
    gsize lf = strlen(from), lt = strlen(to);
    /* At the start of the bar, or as far left as keeps it within @width. */
    for (guint i = 0; i < label && i + lf < label + ax.n; i++)
      g_string_append_c(row, ' ');
    g_string_append(row, from);
    if (lf + 1 + lt > ax.n) {
      add_row(rows, row);
      row = g_string_new(NULL);
      lf = 0;
      for (guint i = 0; i + lt < label + ax.n; i++)
        g_string_append_c(row, ' ');
    } else {
      for (gsize i = lf; i + lt < ax.n; i++)
        g_string_append_c(row, ' ');
    }
    g_string_append(row, to);
    add_row(rows, row);
  }
  add_legend(rows, width);
  g_ptr_array_add(rows, NULL);
  return (char **)g_ptr_array_free(rows, FALSE);
}

/* ------------------------------------------------------------------ */

static void
db_clear(gpointer p)
{
  SqlenvfsTimebarDb *d = p;
  g_free((gpointer)d->windows);
  g_free((gpointer)d->bases);
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
add_bases(GArray *bases, GPtrArray *copies, const char *db)
{
  for (guint i = 0; copies != NULL && i < copies->len; i++) {
    const SqlenvfsStoredCopy *copy = copies->pdata[i];
    if (sqlenvfs_stored_copy_find(copy, db) != NULL) {
      SqlenvfsTimebarBase b = { copy->time, copy->kind };
      g_array_append_val(bases, b);
    }
  }
}

GArray *
sqlenvfs_timebar_dbs_from_report(const SqlenvfsListReport *report)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new();
  g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
  GPtrArray *lists[] = { report->backups, report->snapshots };
  GArray *out = g_array_new(FALSE, TRUE, sizeof(SqlenvfsTimebarDb));

  g_array_set_clear_func(out, db_clear);
  for (guint i = 0; i < report->windows->len; i++) {
    const SqlenvfsListWindow *w = report->windows->pdata[i];
    if (g_hash_table_add(seen, w->db))
      g_ptr_array_add(names, w->db);
  }
  for (gsize k = 0; k < G_N_ELEMENTS(lists); k++)
    for (guint i = 0; lists[k] != NULL && i < lists[k]->len; i++) {
      const SqlenvfsStoredCopy *copy = lists[k]->pdata[i];
      for (guint d = 0; d < copy->dbs->len; d++) {
        const SqlenvfsStoredDb *sdb = copy->dbs->pdata[d];
        if (g_hash_table_add(seen, sdb->db))
          g_ptr_array_add(names, sdb->db);
      }
    }
  g_ptr_array_sort(names, cmp_str);

  for (guint n = 0; n < names->len; n++) {
    const char *db = names->pdata[n];
    GArray *wins = g_array_new(FALSE, FALSE, sizeof(SqlenvfsTimebarWindow));
    GArray *bases = g_array_new(FALSE, FALSE, sizeof(SqlenvfsTimebarBase));
    SqlenvfsTimebarDb tdb = { db, NULL, 0, NULL, 0 };
    for (guint i = 0; i < report->windows->len; i++) {
      const SqlenvfsListWindow *w = report->windows->pdata[i];
      SqlenvfsTimebarWindow tw = { w->from_us, w->to_us, w->before };
      if (strcmp(w->db, db) == 0)
        g_array_append_val(wins, tw);
    }
    add_bases(bases, report->backups, db);
    add_bases(bases, report->snapshots, db);
    tdb.n_windows = wins->len;
    tdb.windows = (SqlenvfsTimebarWindow *)(gpointer)g_array_free(wins, FALSE);
    tdb.n_bases = bases->len;
    tdb.bases = (SqlenvfsTimebarBase *)(gpointer)g_array_free(bases, FALSE);
    g_array_append_val(out, tdb);
  }
  return out;
}

void
sqlenvfs_timebar_dbs_free(GArray *dbs)
{
  if (dbs != NULL)
    g_array_unref(dbs);
}
