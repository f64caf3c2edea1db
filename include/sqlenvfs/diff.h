/*
 * diff.h — what changed in a production database between two times: the
 * SQL script that turns the state at T1 into the state at T2, in the
 * dialect of SQLite's `sqldiff`, or its per-table summary.
 *
 * How it avoids reading both databases whole: the archive knows every page
 * each commit between the two states wrote; those pages, and the pages
 * past the end of the smaller state (a commit that shrinks the database
 * does not write the pages it cuts off), are the changed pages. They are
 * placed in their b-trees: a changed table leaf by following the rowid of
 * its first cell down from the tables' root pages, so that only the interior pages
 * on the paths to changed leaves are read (once for both states when they
 * did not change), and a WITHOUT ROWID table's tree, whose interior pages
 * hold rows too, by walking it whole. The rows on changed pages of each
 * table (in either state) are collected (rowids, or for a WITHOUT ROWID
 * table its primary key from the record) and only those rows are
 * compared, with SQL, through two read-only connections over the images
 * (imagevfs.h). A changed page that is in no b-tree and on no free list is
 * an overflow page: the rows whose overflow chains hold it are found by
 * following the chains of the tables' cells that have one.
 *
 * A table is compared in full (and a note says so) when it was created,
 * dropped or rebuilt in between (its root page or its CREATE statement
 * differs), and the whole database when the archive cannot say what
 * changed (the two states are not in one chain of the archive, or the
 * records between them are gone).
 *
 * Output, as `sqldiff` prints it: tables in name order; per table the
 * ALTER TABLE ... ADD COLUMN for added columns, UPDATE / DELETE / INSERT,
 * CREATE INDEX for new indexes; a dropped table as DROP TABLE, a new or
 * incompatible one as DROP TABLE (incompatible only), its CREATE
 * statement, INSERTs and indexes. Differences: the DROP INDEX of every
 * index gone and the DROP TABLE of every table dropped come first, before
 * any table's statements, so that a name they free (case-insensitively:
 * a table renamed foo -> Foo, an index moved to another table) is free
 * when it is created again; a table's DELETEs come first, then its
 * UPDATEs, then its INSERTs (sqldiff: all by primary key), so that a
 * unique value moved to another row is free when written; an UPDATE that
 * takes a unique value (UNIQUE column or index, composite key, a rowid
 * table's PRIMARY KEY) another updated row gives up comes after that
 * row's, and where rows swap or rotate values one row of each cycle is
 * first parked ("-- parked: ...", an UPDATE to NULL or to a value neither
 * state holds, CHECK constraints off for that statement) and written last
 * (in a table with a unique index on an expression or a generated column,
 * whose keys are compared as SQLite computes them, the parked row is
 * deleted and inserted again last, under its own key);
 * an added column is written with its
 * definition as the newer CREATE statement has it ("ADD COLUMN c TEXT
 * DEFAULT 'x'"), not its bare name, so that the script gives the same
 * schema; a real number that 15 digits do not give back exactly is
 * written with 17, an infinity as 9.0e+999 or -9.0e+999 (as SQLite's
 * quote() writes it; printed as Inf it would not parse); text holding a NUL byte is written as
 * CAST(x'..' AS TEXT), the blob its bytes in the database's encoding
 * (UTF-16 in a UTF-16 database, as CAST reads it); SQLite's own tables (sqlite_sequence) come last,
 * and sqlite_sequence, when it differs, is emptied and written whole
 * (the script's INSERTs into AUTOINCREMENT tables have moved it already);
 * a new sqlite_stat1 (or sqlite_stat4), whose CREATE SQLite refuses, is
 * made by ANALYZE sqlite_schema, as the sqlite3 shell's .dump does.
 * Beyond sqldiff, so that the script gives the newer state exactly: a
 * table whose CREATE statement changed other than by added columns is
 * dropped and written whole ("-- its CREATE statement changed"); views
 * and triggers that differ are dropped first and created last; the
 * triggers of a table the script writes are dropped before its statements
 * and created again after them, so that they do not fire on them; a
 * virtual table created or dropped is written as its CREATE VIRTUAL TABLE
 * or DROP TABLE (which make and drop its shadow tables), the shadow tables
 * of a new one emptied and written whole after it, those of a dropped one
 * left out (the summary leaves virtual tables out, as sqldiff).
 * Summary lines: "t: N changes, N inserts, N deletes, N unchanged",
 * "t: missing from first database", "t: missing from second database",
 * "t: incompatible schema".
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/image.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/timefmt.h"

G_BEGIN_DECLS

/* Receives the script or the summary, piece by piece. */
typedef void (*SqlenvfsDiffOutFunc)(gpointer user, const char *text, gsize len);
/* Receives notes for people (a table compared in full, and why). */
typedef void (*SqlenvfsDiffNoteFunc)(gpointer user, const char *message);

typedef struct {
  guint64 from_seq, to_seq;   /* archive sequence numbers of the two states   */
  gint64 from_us, to_us;      /* their capture times                          */
  guint64 n_commits;          /* commits between them                         */
  guint n_changed_pages;      /* distinct pages those commits wrote           */
  gboolean is_full;           /* the whole database was compared in full      */
  guint n_tables_full;        /* tables compared in full                      */
  guint n_tables_keyed;       /* tables compared on the changed rows only     */
  guint64 n_keys;             /* rows compared that way                       */
  guint64 n_page_reads;       /* pages read to place the changed pages        */
  guint64 n_sql_reads;        /* reads SQLite made through the images         */
} SqlenvfsDiffStats;

/* Diff two images (@from, @to) of one database. @changed: the page numbers
 * (GUINT_TO_POINTER) that may differ between them, or NULL to compare
 * everything in full. @summary: the summary instead of the script. @out
 * gets the text, @note (may be NULL) the notes; @stats (may be NULL) is
 * filled. FALSE and *error (what was already passed to @out is partial). */
gboolean sqlenvfs_diff_images(SqlenvfsImage *from, const char *from_label, SqlenvfsImage *to,
                              const char *to_label, GHashTable *changed, gboolean summary,
                              SqlenvfsDiffOutFunc out, SqlenvfsDiffNoteFunc note, gpointer user,
                              SqlenvfsDiffStats *stats, GError **error);

/* Diff database @db (NULL: the default) of @root between the states at
 * @from and @to (restore.h: each resolves to the state after the last
 * transaction archived at or before it). The script (not the summary)
 * is written as SQLite's .dump writes one: "PRAGMA foreign_keys=OFF;" and
 * "BEGIN TRANSACTION;" before its first statement, "COMMIT;" after its
 * last, and nothing at all for two states alike; the COMMIT only once
 * everything is written and both bases are found unchanged, so that a
 * script cut short by an error commits nothing. INVALID when @from's
 * state is after @to's; GAP when a time is outside the recoverable
 * window; other errors as sqlenvfs_restore_image. */
gboolean sqlenvfs_diff_run(SqlenvfsRoot *root, const char *db, const SqlenvfsTime *from,
                           const SqlenvfsTime *to, gboolean summary, SqlenvfsDiffOutFunc out,
                           SqlenvfsDiffNoteFunc note, gpointer user, SqlenvfsDiffStats *stats,
                           GError **error);

G_END_DECLS
