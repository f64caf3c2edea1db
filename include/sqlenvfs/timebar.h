/*
 * timebar.h — each database's history drawn as a bar of text: its bases
 * (backups, snapshots), recoverable windows, gaps and outages, on one time
 * axis scaled to a given width, with the times at its ends and a legend.
 * `sqlenvfs list` shows it on a terminal.
 *
 * A pure function of its input: no clock, no terminal, no files (times are
 * formatted in local time, as timefmt.h does). Layout, for a width W:
 *
 *   history, one column = <duration>
 *   <pad>  <bases row: B, S or * at the column of each base; none without>
 *   <name> <bar: one character per column>
 *          <start time>                         <end time>
 *   ... (two rows per database) ...
 *   <legend, wrapped to W>
 *
 * The bar of every database spans the same time: from the earliest window
 * start or base to the latest of @now_us, the window ends and the bases.
 * Column c covers [t0 + c*span/n, t0 + (c+1)*span/n). A column shows what
 * ranks highest in it: x a gap (transactions may have been lost, or records
 * are damaged) > ~ an outage (nothing lost, but the times inside cannot be
 * told apart) > = recoverable > . not recoverable, so that a gap or an
 * outage shorter than a column is never hidden by scaling. What separates
 * two windows is drawn from the end of one to the start of the next.
 *
 * Invariants:
 *   (1) No row is wider than W columns (counted in characters) when W is at
 *       least SQLENVFS_TIMEBAR_MIN_WIDTH; below it, rows are laid out for
 *       that width.
 *   (2) Rows carry no trailing blanks and no newline.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/store.h"

G_BEGIN_DECLS

#define SQLENVFS_TIMEBAR_MIN_WIDTH 40

typedef struct {
  gint64 from_us, to_us;
  SqlenvfsWindowBefore before; /* what separates it from the window before */
} SqlenvfsTimebarWindow;

typedef struct {
  gint64 time_us;
  SqlenvfsCopyKind kind;
} SqlenvfsTimebarBase;

typedef struct {
  const char *db;
  const SqlenvfsTimebarWindow *windows; /* oldest first */
  guint n_windows;
  const SqlenvfsTimebarBase *bases;     /* any order   */
  guint n_bases;
} SqlenvfsTimebarDb;

/* The rows described above for @n_dbs databases (NULL-terminated, newly
 * allocated; free with g_strfreev). With nothing to draw (no window and no
 * base anywhere), one row saying so. */
char **sqlenvfs_timebar_render(const SqlenvfsTimebarDb *dbs, guint n_dbs, gint64 now_us,
                               guint width);

/* The databases of @report with their windows and bases, in name order, as
 * input for sqlenvfs_timebar_render (GArray of SqlenvfsTimebarDb whose
 * pointers borrow from @report and from the returned array's own storage;
 * free with sqlenvfs_timebar_dbs_free, before @report). */
GArray *sqlenvfs_timebar_dbs_from_report(const SqlenvfsListReport *report);
void sqlenvfs_timebar_dbs_free(GArray *dbs);

G_END_DECLS
