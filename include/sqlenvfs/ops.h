/*
 * ops.h — the operations a user can trigger (ctl/<op> in the mount, and the
 * command line), run one at a time, with the last result of each kept.
 *
 * One place turns "run operation X with argument Y" into core calls, so the
 * mount's ctl files and the CLI cannot drift apart. A run returns what it did
 * as a SqlenvfsOpOutcome; each front end renders it: the command line as its
 * report (`sqlenvfs backup`, `prune`, ...), ctl/<op> and the status file as
 * one line (sqlenvfs_op_outcome_summary, kept as the last result).
 *
 *   backup       store.h  sqlenvfs_store_create(BACKUP)
 *   snapshot     store.h  sqlenvfs_store_create(SNAPSHOT)
 *   refresh-dev  env.h    sqlenvfs_env_refresh_dev(), or, with a time,
 *                         restore.h sqlenvfs_restore_plan() and
 *                         sqlenvfs_restore_refresh_dev() (after the archiver
 *                         running in this process has archived up to now)
 *   verify       verifymemo.h  every backup and snapshot (store.h) and every
 *                         database's WAL archive chain (archive.h), skipping
 *                         what was verified before and has not changed;
 *                         with drill, drill.h sqlenvfs_drill_run() instead
 *   prune        store.h  retention, keeping the bases of the retained
 *                         point-in-time period; restore.h the archive
 *                         segments no retained window needs
 *   checkpoint   archiver.h through the archiver running in this process (it
 *                archives first); without one, a PASSIVE checkpoint through
 *                SQLite
 *
 * Argument text (what is written to ctl/<op>, one line):
 *   ""  or "1"          every database / now
 *   "<db>"              that database (its name may hold blanks: a line
 *                       that names an existing database is that database)
 *   "<time>"            refresh-dev only: production as of that time
 *                       (any form of timefmt.h; a text that parses as a time
 *                       is a time, so a database named like a time must be
 *                       given together with a time: "<db> <time>")
 *   "<db> <time>"       refresh-dev: that database as of that time
 *   "dry-run"           prune only: report what would go, remove nothing
 *   "full"              verify only: read everything, not only what is new
 *                       or changed since the last verify (verifymemo.h)
 *   "drill", "drill <db>"  verify only: the restore drill (drill.h) of every
 *                       database, or of that one
 *
 * Invariants:
 *   (1) sqlenvfs_ops_run() never runs two operations at once on one
 *       SqlenvfsOps: a second caller waits for the first to finish. (A mount
 *       has one; each command line process has its own.)
 *   (2) The last result of each operation is replaced only when a run
 *       finishes (success or failure), never half-way.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/image.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/timefmt.h"

G_BEGIN_DECLS

typedef enum {
  SQLENVFS_OP_BACKUP,
  SQLENVFS_OP_SNAPSHOT,
  SQLENVFS_OP_REFRESH_DEV,
  SQLENVFS_OP_VERIFY,
  SQLENVFS_OP_PRUNE,
  SQLENVFS_OP_CHECKPOINT,
} SqlenvfsOp;

#define SQLENVFS_N_OPS 6

/* "backup", "snapshot", "refresh-dev", "verify", "prune", "checkpoint". */
const char *sqlenvfs_op_name(SqlenvfsOp op);

/* The operation named @name; FALSE if there is none. */
gboolean sqlenvfs_op_from_name(const char *name, SqlenvfsOp *op);

typedef struct {
  char *db;          /* NULL: every database                        */
  gboolean has_time; /* refresh-dev: production as of @time         */
  SqlenvfsTime time;
  gboolean dry_run;  /* prune: list only                            */
  gboolean full;     /* verify: read everything, even what was
                        verified before and has not changed          */
  gboolean drill;    /* verify: the restore drill instead (drill.h)   */
  gboolean from_ctl; /* parsed from a ctl file's text: its messages say
                        how the command line does what ctl cannot    */
  /* Set by the command line only (never parsed from ctl text): */
  gboolean force;    /* refresh-dev: copy a source not marked production */
  SqlenvfsProgressFunc progress; /* bytes copied (backup, snapshot,
                                    refresh-dev); may be NULL            */
  gpointer progress_data;
} SqlenvfsOpArgs;

void sqlenvfs_op_args_clear(SqlenvfsOpArgs *args);

/* Parse the argument text of @op (see above; one trailing newline and
 * surrounding blanks are ignored). FALSE and INVALID naming the text and
 * what is accepted, or NOT_FOUND for a database that does not exist. */
gboolean sqlenvfs_op_args_parse(SqlenvfsRoot *root, SqlenvfsOp op, const char *text, gsize len,
                                SqlenvfsOpArgs *args, GError **error);

/* One database refresh-dev replaced; with a time, the state it copied. */
typedef struct {
  char *db;
  gboolean has_time;
  gint64 target_us;            /* the time asked for (latest: the end of the window) */
  gint64 state_us;             /* capture time of the state copied                   */
  SqlenvfsCopyKind base_kind;  /* the base it was rebuilt from ...                   */
  char *base_name;
  guint64 n_commits;           /* ... and the archived transactions applied          */
} SqlenvfsRefreshedDb;

/* One database a checkpoint without an archiver copied the WAL of. */
typedef struct {
  char *db;
  int n_wal_frames;    /* frames in the WAL                */
  int n_copied;        /* frames now in the database file  */
} SqlenvfsCheckpointedDb;

/* What one run did. Only the members of its operation are set:
 *   backup, snapshot  copy
 *   refresh-dev       refreshed (SqlenvfsRefreshedDb *, in order), has_time, time
 *   verify            report (every check; the run fails when one is bad), or
 *                     with drill, drills (SqlenvfsDrillResult *; the run fails
 *                     when one failed)
 *   prune             dry_run, pruned (SqlenvfsPruneItem *: every copy, kept
 *                     or removed), segments (char *: archive segments removed,
 *                     or that would be in a dry run)
 *   checkpoint        via_archiver, db (NULL: every database), and without an
 *                     archiver checkpointed (SqlenvfsCheckpointedDb *) */
typedef struct {
  SqlenvfsOp op;
  char *db;
  SqlenvfsStoredCopy *copy;
  GPtrArray *refreshed;
  gboolean has_time;
  SqlenvfsTime time;
  SqlenvfsVerifyReport *report;
  GPtrArray *drills;
  gboolean dry_run;
  GPtrArray *pruned;
  GPtrArray *segments;
  gboolean via_archiver;
  GPtrArray *checkpointed;
} SqlenvfsOpOutcome;

void sqlenvfs_op_outcome_clear(SqlenvfsOpOutcome *out);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(SqlenvfsOpOutcome, sqlenvfs_op_outcome_clear)

/* The one-line rendering of @out kept as the last result and shown by
 * ctl/<op>: "20261128T161400Z app (12.0 MiB)", "all 12 good", "removed:
 * nothing; 0 WAL archive segments; kept 3", ... Newly allocated. */
char *sqlenvfs_op_outcome_summary(const SqlenvfsOpOutcome *out);

/* The outcome of the last run of one operation. */
typedef struct {
  gboolean has_run;
  gboolean ok;
  gint64 started_us, finished_us;
  char *summary;   /* one line: what was done, or the error message */
  int error_code;  /* SqlenvfsErrorCode when !ok                    */
  int error_errno; /* the errno that fits the error (error.h)       */
  /* The last write refused before it ran (text that names nothing, ...)
   * after the run above, if any: shown together with it. */
  gboolean has_refusal;
  gint64 refused_us;
  char *refusal;     /* why, one line (the error message)             */
  int refusal_errno; /* EINVAL, ENOENT, ...                          */
} SqlenvfsOpResult;

void sqlenvfs_op_result_clear(SqlenvfsOpResult *res);

/* "ok 2026-11-28T16:14:00Z backup: 20261128T161400Z app (12.0 MiB)" or
 * "failed 2026-11-28T16:14:00Z refresh-dev: <message>" or
 * "never run since the mount started"; followed, when a write was refused
 * after that, by "; last write refused 2026-11-28T16:15:00Z (EINVAL): <why>".
 * No newline. Newly allocated. */
char *sqlenvfs_op_result_line(SqlenvfsOp op, const SqlenvfsOpResult *res);

typedef struct _SqlenvfsOps SqlenvfsOps;

/* A runner over @root (borrowed; must outlive the runner). */
SqlenvfsOps *sqlenvfs_ops_new(SqlenvfsRoot *root);
void sqlenvfs_ops_free(SqlenvfsOps *ops);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsOps, sqlenvfs_ops_free)

struct _SqlenvfsArchiver;

/* The archiver running in this process (borrowed; NULL: none), through which
 * checkpoints go and up to which refresh-dev waits before reading the
 * archive. Set before the first run, or with no run in progress. */
void sqlenvfs_ops_set_archiver(SqlenvfsOps *ops, struct _SqlenvfsArchiver *archiver);

/* What this process itself holds open of production's database @db (NULL:
 * of every one) that keeps a checkpoint from copying the WAL: a sentence,
 * or NULL for nothing. */
typedef char *(*SqlenvfsOpsBusyHint)(gpointer user, const char *db);

/* Set @hint (NULL: none), asked when a checkpoint fails because a reader
 * or the write lock was in the way (SQLENVFS_ERROR_BUSY): its sentence is
 * added to the error, and to the result of the run. Set before the first
 * run. */
void sqlenvfs_ops_set_busy_hint(SqlenvfsOps *ops, SqlenvfsOpsBusyHint hint, gpointer user);

/* Run @op, waiting for any running operation first (invariant 1). TRUE and
 * what was done in *out (when not NULL; clear it with
 * sqlenvfs_op_outcome_clear either way) on success; FALSE and *error
 * otherwise, with what was done before the failure in *out (verify: the
 * report of every check when some are bad, SQLENVFS_ERROR_INTEGRITY; prune:
 * the copies, when the archive step failed; refresh-dev: the databases
 * refreshed before the one that failed). Either way the outcome becomes the
 * last result of @op (sqlenvfs_op_outcome_summary, or the error's message).
 * The run logs nothing but its start (g_info): each front end says how it
 * ended. */
gboolean sqlenvfs_ops_run(SqlenvfsOps *ops, SqlenvfsOp op, const SqlenvfsOpArgs *args,
                          SqlenvfsOpOutcome *out, GError **error);

/* Record that a write to @op was refused before it could run (@error says
 * why: its text named nothing, ...). It shows with the last result until the
 * next run of @op finishes; it is not a run (invariant 2 holds). */
void sqlenvfs_ops_record_refusal(SqlenvfsOps *ops, SqlenvfsOp op, const GError *error);

/* A copy of the last result of @op (clear it with sqlenvfs_op_result_clear). */
void sqlenvfs_ops_last(SqlenvfsOps *ops, SqlenvfsOp op, SqlenvfsOpResult *out);

/* The operation running now, if any: TRUE and *op, *since_us. */
gboolean sqlenvfs_ops_running(SqlenvfsOps *ops, SqlenvfsOp *op, gint64 *since_us);

G_END_DECLS
