/*
 * recover.h — salvage what can be read from a damaged database into a new
 * file, and say what was lost (`sqlenvfs recover`).
 *
 * The source is never touched: it is copied (with its -wal and -journal, so
 * that committed transactions still in the WAL are not lost) into a private
 * work directory next to the output, and everything reads the copy.
 *
 * Two methods, tried in this order by SQLENVFS_RECOVER_AUTO:
 *
 *   shell    the sqlite3 shell's `.recover`, run as a child process on the
 *            copy; the SQL it prints is executed into the new database. It
 *            reads every page (sqlite_dbpage), so rows on pages that no
 *            longer hang from their table's b-tree still come back, into
 *            lost_and_found. It needs a SQLite built with the sqlite_dbpage
 *            table: Debian 12's is not, so its shell's `.recover` fails at
 *            once and the next method is used.
 *   salvage  table by table through SQL: every row that reads is copied;
 *            when a rowid table's b-tree fails at some point, the rowid
 *            ranges that fail are skipped (seeking past them) and reading
 *            goes on after them. Rows below a damaged interior page cannot be
 *            reached this way; the intact table leaves below it, which no
 *            b-tree nor the freelist reaches, are then read by hand and
 *            their rows inserted (recover.c, "rows on pages no table
 *            reaches"); what is not on such a leaf is lost.
 *
 * Either way the new database is checked (integrity_check), gets a mode no
 * more permissive than the source's, is fsync'd and renamed into place; on
 * failure nothing is left at the output path, and the work directory is
 * removed.
 *
 * Per table the report gives the rows recovered and, where they can be known,
 * the rows expected: counted from the table itself when its b-tree reads to
 * the end, else from the largest full index on it that reads (an index holds
 * one entry per row), together with the rowids that are missing.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/image.h" /* SqlenvfsProgressFunc */
#include "sqlenvfs/root.h"

G_BEGIN_DECLS

typedef enum {
  SQLENVFS_RECOVER_AUTO = 0, /* shell if it works, else salvage */
  SQLENVFS_RECOVER_SHELL,    /* only the sqlite3 shell's .recover */
  SQLENVFS_RECOVER_SALVAGE,  /* only the table-by-table salvage   */
} SqlenvfsRecoverMethod;

/* "auto", "shell", "salvage"; parse returns FALSE for anything else. */
const char *sqlenvfs_recover_method_name(SqlenvfsRecoverMethod method);
gboolean sqlenvfs_recover_method_parse(const char *text, SqlenvfsRecoverMethod *out);

typedef struct {
  SqlenvfsRecoverMethod method;
  const char *shell; /* the sqlite3 shell to run; NULL: "sqlite3" from $PATH */
  gboolean force;    /* replace an existing output nobody uses (none with a -wal/-shm/-journal) */
  const SqlenvfsRoot *root; /* whose databases are never written, even with force; may be NULL */
  SqlenvfsProgressFunc progress; /* bytes of the private copy made; may be NULL */
  gpointer progress_user;
} SqlenvfsRecoverOptions;

typedef struct {
  char *name;
  gint64 n_recovered;    /* rows in the new database                          */
  gint64 n_expected;     /* rows the source held, -1 when it cannot be known  */
  char *expected_from;   /* how n_expected was known: "table", "index NAME"   */
  char *missing_rowids;  /* ranges of rowids known to be missing, e.g.
                            "1-134, 400" (at most 20 ranges, then "..."), or NULL */
  char *note;            /* what went wrong while reading it, or NULL         */
  char *suspect_rowids;  /* ranges of the rowids recovered from under pages the
                            source's integrity_check named (their values may be
                            damaged; at most 20 ranges), or NULL               */
  char *orphan_rowids;   /* ranges of the rowids recovered (salvage) from table
                            leaf pages no b-tree reaches, found below a damaged
                            page (stale content is possible; at most 20
                            ranges), or NULL                                   */
} SqlenvfsRecoveredTable;

typedef struct {
  char *source;
  char *output;
  SqlenvfsRecoverMethod method; /* the method that produced the output */
  char *method_note;            /* why that method (e.g. why the shell was not used) */
  GPtrArray *damage;            /* char *: what the source's integrity_check said (first 20) */
  char *wal_damage;             /* what of the source's -wal SQLite cannot read, or NULL */
  GPtrArray *tables;            /* SqlenvfsRecoveredTable *, by name */
  gint64 n_lost_and_found;      /* rows put in lost_and_found (shell method), 0 if none */
  GPtrArray *problems;          /* char *: schema entries not recreated, rows rejected, ... */
  gint64 n_rows_recovered, n_rows_expected_lost; /* totals; lost: over tables with known counts */
} SqlenvfsRecoverReport;

void sqlenvfs_recover_report_free(SqlenvfsRecoverReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsRecoverReport, sqlenvfs_recover_report_free)

/* Recover @source into a new database at @output. Returns the report, or
 * NULL and *error: NOT_FOUND (no source), EXISTS (output exists and not
 * force), INVALID (output is the source), REFUSED (an output that even force
 * never replaces: copy.h, sqlenvfs_copy_check_output), INTEGRITY (nothing
 * could be read, or the new database failed its check), IO/NOSPACE. The
 * source is only read. */
SqlenvfsRecoverReport *sqlenvfs_recover_run(const char *source, const char *output,
                                            const SqlenvfsRecoverOptions *opts, GError **error);

/* "1-5, 9, 12-40" from sorted, distinct rowids ("-9..-4" when negative); at
 * most @max_ranges ranges, then ", ..." (exposed for tests). NULL for none. */
char *sqlenvfs_recover_format_ranges(const gint64 *rowids, gsize n, guint max_ranges);

G_END_DECLS
