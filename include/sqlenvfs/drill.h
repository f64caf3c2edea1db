/*
 * drill.h — the restore drill: proof, on the real data, that production can
 * be rebuilt from its backups and WAL archive.
 *
 * For one production database the drill
 *   1. pins production's current committed state (liveview.h) and its WAL
 *      position P;
 *   2. waits until the WAL archive holds the COMMIT record of P (salts,
 *      commit frame and cumulative checksum equal), asking the archiver
 *      running in this process to sync first when there is one; the pinned
 *      view keeps P's frames in the live WAL meanwhile (P with an empty WAL
 *      is placed by its pin time; a pin before the archiver captured the
 *      file, or between two chains, as after an init --force, is taken
 *      again);
 *   3. rebuilds exactly that record's state from its base and the archive
 *      (restore.h: a plan whose state is that record, then
 *      sqlenvfs_restore_image, which checks the base and every record it
 *      uses);
 *   4. compares the two images page by page (sqlenvfs_drill_compare).
 *
 * Passed: every page equal. Failed: the rebuild was refused (a bad base or a
 * damaged record, named by the refusal), the planned base was refused and
 * another used (the bad one is named: a restore would have been served by
 * an older base, but the newest is broken; likewise when that base was
 * already known bad, so that the plan left it out: the timeline says so,
 * sqlenvfs_timeline_bad_base_over), the archive did not reach P in
 * time (no archiver running), or a page differs: the first one is named
 * with what holds it in the rebuilt image (the base file, or the archive
 * segment and record sequence number; sqlenvfs_drill_page_origin).
 *
 * Production is only read: the pinned view's connections never checkpoint
 * on close and only roll back (liveview.h); nothing is written to data/prod.
 *
 * The outcome of the last drill of each database is kept in the root's state
 * directory, .sqlenvfs/drilled (0600, written atomically, checksummed: a
 * damaged file reads as "never drilled"), for status, doctor and list.
 *
 *   drilled format, one line each, '\n'-terminated:
 *     sqlenvfs-drilled 1
 *     db <name, URI-escaped> at=<us since epoch> result=passed|failed[ why=<URI-escaped>]
 *     ...
 *     crc32 0x<8 hex digits>      crc32 of every byte before this line
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/image.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/root.h"

G_BEGIN_DECLS

/* The outcome of one drill of one database. */
typedef struct {
  char *db;
  gboolean ok;
  gint64 at_us;           /* when it finished                                      */
  char *why;              /* failed: one line saying what failed and what to do     */
  /* The state drilled (set once it was resolved): */
  guint64 state_seq;      /* archive sequence number of the COMMIT record          */
  gint64 state_us;        /* its capture time                                      */
  guint32 wal_frame;      /* its commit frame in the live WAL                       */
  SqlenvfsCopyKind base_kind;
  char *base_name;        /* the base the rebuild used                              */
  guint64 n_commits;      /* archived transactions applied on it                    */
  /* The comparison: */
  guint32 n_pages;        /* pages compared                                         */
  guint32 page_size;
  guint64 bytes_read;     /* bytes read from both images                            */
  gint64 elapsed_us;      /* the whole drill                                        */
  guint32 diff_pgno;      /* first differing page (0: none)                         */
  char *diff_origin;      /* what holds it in the rebuilt image                     */
} SqlenvfsDrillResult;

void sqlenvfs_drill_result_free(SqlenvfsDrillResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsDrillResult, sqlenvfs_drill_result_free)

/* One line: "app: equal, 385 pages (3.0 MiB read) in 0.12 s, state of
 * record 215 (2026-...Z) from snapshot 20261128T174122.490Z + 12 commits" or
 * "app: FAILED: <why>". Newly allocated. */
char *sqlenvfs_drill_result_summary(const SqlenvfsDrillResult *r);

/* Compare @a and @b page by page (pages of @page_size bytes; a page one
 * image has and the other does not differs). Sets *@first_diff to the
 * first differing page number, 0 when every page is equal, and adds the
 * bytes read to *@bytes_read (may be NULL). FALSE and *error when an image
 * cannot be read (a damaged record read through it, an I/O error); the
 * error is the image's, which names the file. */
gboolean sqlenvfs_drill_compare(SqlenvfsImage *a, SqlenvfsImage *b, guint32 page_size,
                                guint32 *first_diff, guint64 *bytes_read, GError **error);

/* What holds page @pgno of the image restore_image built for @plan (after
 * restore_image: its base fields name the base used), @rebuilt: "the base
 * <path>" when the image reads it from its base, else the archived COMMIT
 * record between the base and the state that last wrote it: "record <seq>
 * of archive segment <path>", or "zeros (the database was <n> pages after
 * record <seq>)" for a page a shrink cut off. Newly allocated; NULL and
 * *error when the archive cannot be read. */
char *sqlenvfs_drill_page_origin(SqlenvfsRoot *root, const SqlenvfsRestorePlan *plan,
                                 SqlenvfsImage *rebuilt, guint32 pgno, GError **error);

struct _SqlenvfsArchiver;

/* Drill database @db (it must exist). @archiver: the archiver running in
 * this process, asked to sync first (may be NULL: then the archive is
 * polled for the pinned commit, which a separate archiver process writes);
 * @timeout_us (0: 30 s) bounds that wait. Never NULL: a failure of any step
 * is a result with ok FALSE and why set. */
SqlenvfsDrillResult *sqlenvfs_drill_db(SqlenvfsRoot *root, const char *db,
                                       struct _SqlenvfsArchiver *archiver, gint64 timeout_us);

/* Drill @db (NULL: every production database, in name order) as
 * sqlenvfs_drill_db does, and record each outcome in the root's memo (a
 * memo that cannot be written is a warning in the log: the results are
 * returned all the same). Returns the results (SqlenvfsDrillResult *), or
 * NULL and *error when @db is unknown or there is no production database. */
GPtrArray *sqlenvfs_drill_run(SqlenvfsRoot *root, const char *db,
                              struct _SqlenvfsArchiver *archiver, gint64 timeout_us,
                              GError **error);

/* The last drill of one database, as remembered. */
typedef struct {
  gint64 at_us;
  gboolean ok;
  char *why;  /* failed: why; NULL when ok */
} SqlenvfsDrillLast;

/* The last drill of @db from the memo: TRUE and *last (clear it with
 * sqlenvfs_drill_last_clear), FALSE when it was never drilled (or the memo
 * is missing, unreadable or damaged). */
gboolean sqlenvfs_drill_last(SqlenvfsRoot *root, const char *db, SqlenvfsDrillLast *last);
void sqlenvfs_drill_last_clear(SqlenvfsDrillLast *last);

/* "last drill passed at 2026-11-28T17:41:25Z", "last drill FAILED at ...: why",
 * or "never drilled". Newly allocated. */
char *sqlenvfs_drill_last_describe(const SqlenvfsDrillLast *last, gboolean has_run);

G_END_DECLS
