/*
 * doctor.h — a check-up of a root (`sqlenvfs doctor`): every question an operator
 * asks when something is wrong, answered with a finding that says what was
 * found and what to do.
 *
 * What is checked, per production and development database:
 *   integrity     PRAGMA quick_check (integrity_check with SQLENVFS_DOCTOR_FULL)
 *   journal       the persistent journal mode (WAL is required for production:
 *                 archiving reads the WAL), and the synchronous advice
 *   settings      the settings stored in the file: page size, auto_vacuum,
 *                 free pages
 *   wal           the -wal file's size against [archive] checkpoint-pages
 *   size          the database's size against [doctor] size-warn-bytes
 *   environment   the _environment marker says the environment the file is in
 *   processes     which processes hold the database, -wal or -shm open, and
 *                 which hold SQLite's locks on them (/proc/<pid>/fd and
 *                 /proc/locks); a write lock held across two samples is a
 *                 long write transaction that makes other writers fail
 * per production database:
 *   archive       how far the WAL archive reaches (its alive time) and, while
 *                 the archiver runs, how far behind it is
 *   backup        the newest backup that passes verification (crc32 and
 *                 integrity_check) against [doctor] backup-max-age-hours
 * and for the root:
 *   archiver      whether a process holds the root's "archiver" lock, found
 *                 in /proc/locks without ever taking the lock
 *   space         free space where the databases and the backups live; the
 *                 next backup needs about the sum of the production sizes
 *   sqlite        the linked SQLite against known corruption bugs
 *
 * The doctor only reads: databases are opened read-only, with checkpoint on
 * close disabled, and no lock is ever taken on the root. It never opens and
 * closes a descriptor of a live database file of its own (only SQLite does),
 * so it is safe to run inside a process that holds SQLite connections and
 * the archiver lock (a mount).
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/json.h"
#include "sqlenvfs/root.h"

G_BEGIN_DECLS

typedef enum {
  SQLENVFS_SEVERITY_OK = 0,
  SQLENVFS_SEVERITY_WARNING = 1,
  SQLENVFS_SEVERITY_FAILURE = 2,
} SqlenvfsSeverity;

/* "ok", "warning", "failure". */
const char *sqlenvfs_severity_name(SqlenvfsSeverity severity);

typedef struct {
  SqlenvfsSeverity severity;
  char *check;   /* which check: "integrity", "journal", "wal", ... (static names above) */
  char *subject; /* what it concerns: "prod/app", "dev/app", "backups", "root", "sqlite" */
  char *path;    /* the file or directory it concerns, or NULL */
  char *found;   /* what was found, one or more sentences */
  char *action;  /* what to do about it (for ok findings: what keeps it ok) */
} SqlenvfsFinding;

typedef enum {
  SQLENVFS_DOCTOR_QUICK = 0,        /* quick_check; the default of `doctor`            */
  SQLENVFS_DOCTOR_FULL = 1 << 0,    /* full integrity_check                            */
  SQLENVFS_DOCTOR_NO_INTEGRITY = 1 << 1, /* skip reading every page: no quick_check,
                                            backups not verified (a cheap check-up) */
  SQLENVFS_DOCTOR_NO_LOCK_WAIT = 1 << 2, /* one sample of the locks, no 0.5 s recheck */
} SqlenvfsDoctorFlags;

typedef struct {
  gint64 checked_at;     /* wall time (us, UTC) of the check-up */
  GPtrArray *findings;   /* SqlenvfsFinding *, in check order   */
  SqlenvfsSeverity worst;
  guint n_ok, n_warnings, n_failures;
} SqlenvfsDoctorReport;

void sqlenvfs_doctor_report_free(SqlenvfsDoctorReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsDoctorReport, sqlenvfs_doctor_report_free)

/* Run every check on @root. Problems found are findings, not errors: this
 * returns NULL with *error only when the root itself cannot be read. */
SqlenvfsDoctorReport *sqlenvfs_doctor_run(SqlenvfsRoot *root, SqlenvfsDoctorFlags flags,
                                          GError **error);

/* The exit status for a report: 0 ok, 1 warnings, 2 failures. */
int sqlenvfs_doctor_exit_status(const SqlenvfsDoctorReport *report);

/* Write @report as one JSON object:
 *   {"status": "ok"|"warning"|"failure", "exit_status": 0|1|2,
 *    "checked_at": ISO 8601 UTC, "sqlite_version": "3.40.1",
 *    "counts": {"ok": n, "warning": n, "failure": n},
 *    "findings": [{"severity", "check", "subject", "path", "found", "action"}, ...]}
 * With @problems_only, findings lists only warnings and failures. */
void sqlenvfs_doctor_report_to_json(const SqlenvfsDoctorReport *report, gboolean problems_only,
                                    SqlenvfsJson *j);

/* Append a finding (used by the checks; exposed for tests). */
void sqlenvfs_doctor_report_add(SqlenvfsDoctorReport *report, SqlenvfsSeverity severity,
                                const char *check, const char *subject, const char *path,
                                const char *action, const char *found_fmt, ...)
  G_GNUC_PRINTF(7, 8);

/* ---- Pieces the checks are made of, exposed for tests and other modules ---- */

/* A lock seen in /proc/locks. */
typedef struct {
  gboolean is_posix;   /* POSIX (fcntl) or OFD lock; FALSE: flock   */
  gboolean is_write;   /* WRITE (exclusive) or READ (shared)        */
  gboolean is_waiting; /* a blocked request ("->" lines)            */
  int pid;             /* owner; -1 for OFD locks                   */
  guint64 dev_major, dev_minor, ino;
  guint64 start, end;  /* byte range; end G_MAXUINT64 for EOF       */
} SqlenvfsProcLock;

/* Parse the text of /proc/locks into SqlenvfsProcLock (a GArray). Lines it
 * does not understand are skipped. */
GArray *sqlenvfs_doctor_parse_locks(const char *text);

/* The process holding the flock on @lock_path, found in /proc/locks (the
 * lock is never taken). Returns the pid, 0 when nobody holds it (or the
 * file does not exist), -1 with *error when it cannot be told: /proc/locks
 * cannot be read, or the lock file cannot be looked at (PERMISSION when this
 * user may not search its directory). */
int sqlenvfs_doctor_lock_holder(const char *lock_path, GError **error);

/* A process other than this one that has the file @path open (found in
 * /proc/<pid>/fd), or 0 when none is seen (or @path does not exist). */
int sqlenvfs_doctor_file_opener(const char *path);
/* The same, not naming the process @except (0: any). */
int sqlenvfs_doctor_file_opener_except(const char *path, int except);
/* The same for each of the @n_paths files @paths at once, in one walk of
 * /proc: @pids[i] is the first process seen to have @paths[i] open, or 0. */
void sqlenvfs_doctor_file_openers(const char *const *paths, guint n_paths, int except,
                                  int *pids);

/* "pid 1234 (python3)" from /proc/<pid>/comm; newly allocated. */
char *sqlenvfs_doctor_describe_pid(int pid);

/* Known corruption bugs of SQLite version @version_number (as
 * sqlite3_libversion_number()): a NULL-terminated array of bug ids ("wal-reset")
 * that this version has; free with g_strfreev. */
char **sqlenvfs_doctor_sqlite_bugs(int version_number);

/* @id is a bug sqlenvfs_doctor_sqlite_bugs() may name ([doctor]
 * acknowledged-bugs may name only those). */
gboolean sqlenvfs_doctor_bug_is_known(const char *id);

/* Every such id, ", "-separated (newly allocated). */
char *sqlenvfs_doctor_bug_ids(void);

G_END_DECLS
