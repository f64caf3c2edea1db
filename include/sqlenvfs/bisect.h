/*
 * bisect.h — find the first archived commit after which a query's result
 * changed: a binary search over the states the archive holds, each state
 * opened read-only through imagevfs.h (no file written).
 *
 * The states searched are those after each COMMIT record between the state
 * at T1 and the state at T2 (both as restore.h resolves them), in sequence
 * order, each one by its sequence number: of commits captured in the same
 * microsecond (which a restore by time cannot tell apart) each is searched,
 * and the one named is exact. Results are compared whole: every row, every
 * column, in the order the query returns them (values by type and bytes).
 * A query that fails on a state (a table or column not there: SQLite's
 * SQLITE_ERROR, TOOBIG, MISMATCH or RANGE) has its error message as its
 * result, unlike any rows, so that the commit after which it starts or
 * stops failing can be found; other failures (an unreadable state) end the
 * search. At T1 the query must prepare (it is checked there first).
 *
 * The timeline (timeline.h) is opened once; the state at T1 is built from
 * its base, every later state on the image of an earlier one examined, so
 * that a probe reads only the archive of the range still searched.
 *
 * The search assumes the result changes once in the range (it returns a
 * commit after which the result differs from the result at T1 while the
 * result before it does not; with several changes, one of them). It
 * examines at most ceil(log2(n)) + 2 states for n commits.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/root.h"
#include "sqlenvfs/timefmt.h"

G_BEGIN_DECLS

typedef struct {
  char *db;
  guint64 from_seq, to_seq;   /* the states at T1 and T2                     */
  gint64 from_us, to_us;      /* their capture times                         */
  guint n_commits;            /* states searched (commits after T1 to T2)    */
  guint n_probes;             /* states examined (the one at T1 included)    */
  gboolean is_found;          /* the result at T2 differs from that at T1    */
  guint64 seq;                /* a commit after which it differs, not before */
  gint64 time_us;             /* its capture time                            */
  gint64 late_from_us;        /* archived late, after an outage: committed    */
                              /* after this time, and before time_us (0: not) */
  char *before, *after;       /* the results before and after it, as text    */
                              /* ("(the query fails: <message>)" for one that */
                              /* failed on that state)                        */
  guint64 n_before, n_after;  /* their row counts                            */
} SqlenvfsBisectResult;

void sqlenvfs_bisect_result_free(SqlenvfsBisectResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsBisectResult, sqlenvfs_bisect_result_free)

/* Progress: states examined so far of at most @total. */
typedef void (*SqlenvfsBisectProgressFunc)(gpointer user, guint done, guint total);

/* Search database @db (NULL: the default) of @root between @from (NULL:
 * the start of the recoverable window that holds @to) and @to for a
 * commit after which @sql (one read-only statement) returns another result
 * than at @from and before which it returns @from's (by bisection: one of
 * the changes when there are several). NULL and *error: INVALID for a statement that is not one
 * read-only query (naming SQLite's complaint) or for T1 after T2 or times
 * in different windows; GAP for a time outside the recoverable window;
 * errors of a restore or of the query on a state (naming the state). */
SqlenvfsBisectResult *sqlenvfs_bisect_run(SqlenvfsRoot *root, const char *db, const char *sql,
                                          const SqlenvfsTime *from, const SqlenvfsTime *to,
                                          SqlenvfsBisectProgressFunc progress, gpointer user,
                                          GError **error);

G_END_DECLS
