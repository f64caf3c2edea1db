/*
 * store.h — backups and snapshots on disk (format: docs/STORE.md).
 *
 * One run of `backup` or `snapshot` is one directory named by its UTC time in
 * ISO 8601 basic form (timefmt.h) under backups/prod/daily/ or
 * backups/prod/snapshots/, holding <db>.db for each database copied and a
 * MANIFEST (GKeyFile) with, per database: size, crc32, page size and count,
 * journal mode, and the WAL position of the copied state (liveview.h), which
 * makes every copy a base for point-in-time recovery.
 *
 * Invariants:
 *   (1) A directory with a valid name and a MANIFEST is complete: it is built
 *       as ".tmp-<name>-<pid>" and renamed into place after every copy in it
 *       passed its integrity check and was fsync'd.
 *   (2) Names are unique and byte order is time order: every new name
 *       carries milliseconds (20261128T161400.000Z); a run whose millisecond
 *       is taken gets one later than every entry of the same second.
 *   (3) A copy is never more readable than its source.
 *   (4) A MANIFEST of format 2 carries a crc32 of every other key and value
 *       ("checksum"); one whose checksum does not match is unreadable, so a
 *       changed WAL position or size is never believed. Format 1 (no
 *       checksum) is still read, and reported by verify as unprotected.
 *   (5) No base is used before sqlenvfs_store_check_base() (or its two
 *       steps, _start and _crc) found the file to be exactly what its
 *       MANIFEST describes.
 */
#pragma once

#include <sys/stat.h>

#include <glib.h>

#include "sqlenvfs/image.h"
#include "sqlenvfs/json.h"
#include "sqlenvfs/liveview.h"
#include "sqlenvfs/root.h"

G_BEGIN_DECLS

typedef enum {
  SQLENVFS_KIND_BACKUP,   /* backups/prod/daily/     */
  SQLENVFS_KIND_SNAPSHOT, /* backups/prod/snapshots/ */
} SqlenvfsCopyKind;

typedef struct {
  char *db;       /* database name (no .db)    */
  char *path;     /* absolute path of the copy */
  guint64 size;
  guint32 crc32;
  char *journal_mode;
  SqlenvfsWalPos pos; /* pos.pinned_at: when the state was pinned */
  /* Pinned while the WAL held no frame (pos.frame 0): the number of the
   * next record of the database's archive, seen before the state was
   * pinned and after it (0: not known). Every COMMIT record below
   * archive_before is in the copy, none from archive_after on is. */
  guint64 archive_before, archive_after;
  /* With archive_before (MANIFESTs written since it was added): the header
   * checksum of record archive_before - 1, the last one archived before
   * the state was pinned (sqlenvfs_archive_entry_header_crc). A base is
   * placed in an archive only when that archive's record of that number
   * has it: else it was pinned in another history (a copy of the root
   * that went on by itself), whatever its time and numbers say. */
  gboolean has_archive_before_crc;
  guint32 archive_before_crc;
} SqlenvfsStoredDb;

typedef struct {
  SqlenvfsCopyKind kind;
  char *name;     /* e.g. 20261128T161400.000Z */
  char *dir;      /* absolute directory        */
  gint64 time;    /* the time in the name (us) */
  gint64 created_us; /* when it was made, by its MANIFEST (0: not said) */
  GPtrArray *dbs; /* SqlenvfsStoredDb *, sorted by name */
  gboolean is_protected; /* the MANIFEST carries its own checksum (format 2) */
  /* From sqlenvfs_store_create() of every database only (else NULL): the
   * databases left out because they cannot be a source (not in WAL mode,
   * unreadable), one GError * each, whose message names the file and what
   * to do. A caller must report them and fail, keeping the good copies. */
  GPtrArray *skipped;
} SqlenvfsStoredCopy;

void sqlenvfs_stored_copy_free(SqlenvfsStoredCopy *copy);

/* Why the name of @copy does not date it (newly allocated), or NULL: it is
 * more than a minute in the future of @now (taken while the clock was
 * ahead). Such a copy never counts as the newest: prune keeps it and says
 * why, doctor warns and takes the age of the newest correctly dated one.
 * (A directory renamed or copied by hand under another name does not load
 * at all: its MANIFEST names the entry it was written for.) */
char *sqlenvfs_stored_copy_misdated(const SqlenvfsStoredCopy *copy, gint64 now);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsStoredCopy, sqlenvfs_stored_copy_free)

const char *sqlenvfs_copy_kind_name(SqlenvfsCopyKind kind); /* "backup" / "snapshot" */

/* Take a backup or snapshot of database @db (NULL: every production db).
 * Returns the new entry, or NULL and *error (nothing that looks like a copy
 * is left behind). Leftover temporaries of interrupted runs are removed first.
 * With @db NULL, a database that cannot be a source (not in WAL mode, cannot
 * be opened) does not stop the others: they are copied and it is listed in
 * the entry's skipped; only when no database can be copied is it NULL and
 * *error (the first database's reason). */
SqlenvfsStoredCopy *sqlenvfs_store_create(SqlenvfsRoot *root, SqlenvfsCopyKind kind,
                                          const char *db, SqlenvfsProgressFunc progress,
                                          gpointer user, GError **error);

/* Every complete entry of @kind, oldest first. Entries that cannot be read
 * are skipped here (verify reports them; sqlenvfs_store_list_report lists
 * them as damaged): a MANIFEST that is missing, damaged, or written for
 * another entry (its name, kind or creation time not the directory's: a
 * directory renamed, swapped or copied by hand), an entry that is a
 * symbolic link, or a database file that is one. Never NULL on success. */
GPtrArray *sqlenvfs_store_list(SqlenvfsRoot *root, SqlenvfsCopyKind kind, GError **error);

/* Like sqlenvfs_store_list(), and each entry that cannot be read is added
 * to @unreadable (may be NULL) as one line naming its MANIFEST and why, and
 * its name to @unreadable_names (may be NULL; in the same order). */
GPtrArray *sqlenvfs_store_list_checked(SqlenvfsRoot *root, SqlenvfsCopyKind kind,
                                       GPtrArray *unreadable, GPtrArray *unreadable_names,
                                       GError **error);

/* One entry by name; NULL and NOT_FOUND if there is none, INTEGRITY if it
 * cannot be read (as sqlenvfs_store_list skips it). */
SqlenvfsStoredCopy *sqlenvfs_store_load(SqlenvfsRoot *root, SqlenvfsCopyKind kind,
                                        const char *name, GError **error);

/* Seal a MANIFEST: set [sqlenvfs-copy] checksum of @kf to the crc32 of
 * every other key and value, groups and keys in @kf's order, values as
 * stored (invariant 4; docs/STORE.md), and return that crc32. Backup and
 * snapshot call it last, after every other key is set; any later change to
 * @kf breaks the seal. @kf must be loaded (or built) the way the reader
 * loads a MANIFEST (G_KEY_FILE_NONE), so that the checksum covers what the
 * reader sees. g_key_file_to_data() of a sealed @kf reads back with a
 * matching checksum whenever that text reads back to the same keys and
 * values: every MANIFEST backup and snapshot write does, but a value that
 * ends in a carriage return does not (reading drops it, which is also why a
 * MANIFEST with CRLF line ends still matches). It checks nothing else: a
 * sealed MANIFEST can still be refused for its fields. For tools and tests
 * that write a MANIFEST on purpose. */
guint32 sqlenvfs_store_manifest_seal(GKeyFile *kf);

/* The stored database @db in @copy, or NULL. */
const SqlenvfsStoredDb *sqlenvfs_stored_copy_find(const SqlenvfsStoredCopy *copy, const char *db);

/* Check one stored database: every MANIFEST field against the file (see
 * sqlenvfs_store_check_base), then integrity_check. FALSE and INTEGRITY
 * naming the file and the reason. Nothing is remembered. */
gboolean sqlenvfs_store_verify_db(const SqlenvfsStoredDb *sdb, GError **error);

/* What tells one version of a file from another: when none of these
 * changed, neither did the file's bytes (short of tampering with clocks). */
typedef struct {
  guint64 dev, ino, size;
  gint64 mtime_ns, ctime_ns;
} SqlenvfsFileId;

/* The identity of the file that @st describes (from stat or fstat). */
void sqlenvfs_file_id_from_stat(const struct stat *st, SqlenvfsFileId *id);
/* The identity of the file open on @fd; FALSE and *error when fstat fails. */
gboolean sqlenvfs_file_id_get(int fd, const char *path, SqlenvfsFileId *id, GError **error);
gboolean sqlenvfs_file_id_equal(const SqlenvfsFileId *a, const SqlenvfsFileId *b);
/* Whether the file @id describes, now as @st shows it (from fstat of a
 * descriptor still open on it), was only removed since: no name left, the
 * same inode, size and mtime (an unlink changes its ctime, not its bytes:
 * a prune removing a base that is being read). */
gboolean sqlenvfs_file_id_removed_only(const SqlenvfsFileId *id, const struct stat *st);

/* Check, before anything is built from it, that the file open on @fd is the
 * copy @sdb's MANIFEST describes:
 *   (1) the MANIFEST agrees with itself: a page size that SQLite can have,
 *       at least one page, size = page-size x page-count;
 *   (2) the file has that size;
 *   (3) its SQLite header says that page size, and that page count when the
 *       header's count is valid;
 *   (4) its crc32 is the MANIFEST's.
 * The verdict is remembered, per process, for the file's identity
 * (SqlenvfsFileId) and the MANIFEST values it was checked against, so an
 * unchanged file is read once, however often it is used; a file that
 * changed (even back to good bytes) is read again. Restores also record
 * the verdict in the root's memo (verifymemo.h), for other processes and
 * `list`. *id (may be NULL)
 * receives the identity checked. Thread-safe. FALSE and INTEGRITY naming
 * the file (@sdb->path, the entry's <db>.db) and what disagrees. */
gboolean sqlenvfs_store_check_base(const SqlenvfsStoredDb *sdb, int fd, SqlenvfsFileId *id,
                                   GError **error);

/* The same check in two steps, for a caller that reads the whole base
 * anyway and computes its crc32 on the way (a restore writing its output):
 * _start runs checks 1-3 (or recalls a remembered verdict) and sets
 * *@is_crc_due when check 4 is still to be made; the caller then hands the
 * crc32 of the file's bytes, read in order from @fd, to _crc, and uses
 * nothing built from them unless it returned TRUE. _crc fails, too, when
 * the file is no longer *@id (it changed while it was read). The verdict
 * is remembered as sqlenvfs_store_check_base remembers it: by _start when
 * checks 1-3 fail, by _crc otherwise. FALSE and INTEGRITY as
 * sqlenvfs_store_check_base. */
gboolean sqlenvfs_store_check_base_start(const SqlenvfsStoredDb *sdb, int fd, SqlenvfsFileId *id,
                                         gboolean *is_crc_due, GError **error);
gboolean sqlenvfs_store_check_base_crc(const SqlenvfsStoredDb *sdb, int fd,
                                       const SqlenvfsFileId *id, guint32 crc, GError **error);

/* Whether sqlenvfs_store_check_base() already found @sdb's file, as it is
 * now, bad in this process (a stat, nothing read). Sets *reason (newly
 * allocated) when it did. */
gboolean sqlenvfs_store_base_known_bad(const SqlenvfsStoredDb *sdb, char **reason);

/* The directory of @kind (backups/prod/daily or backups/prod/snapshots). */
const char *sqlenvfs_store_dir(SqlenvfsRoot *root, SqlenvfsCopyKind kind);

/* ------------------------------------------------------------- verify */

/* One line of a verification report. Other modules add their own lines
 * (the WAL archive chain: kind "wal-archive") with sqlenvfs_verify_report_add. */
typedef struct {
  char *kind;   /* "backup", "snapshot", "wal-archive", ...           */
  char *name;   /* entry checked, e.g. 20261128T161400Z; may be NULL  */
  char *db;     /* database, or NULL when the line is about the entry */
  char *path;   /* file or directory checked                          */
  gboolean ok;
  char *reason; /* why it is bad (one line); NULL when ok              */
  gint64 verified_us; /* not 0: not read this time, found good then and
                         unchanged since (verifymemo.h)                   */
} SqlenvfsCheck;

typedef struct {
  GPtrArray *checks; /* SqlenvfsCheck *, in the order they were added */
  /* What was read this time, and what was not: verified before and
   * unchanged since (verifymemo.h). */
  guint n_copies_checked, n_copies_skipped;
  guint n_segments_checked, n_segments_skipped;
  gboolean full;     /* everything was read, whatever was known      */
  char *memo_note;   /* why what was known could not be used, or NULL */
} SqlenvfsVerifyReport;

SqlenvfsVerifyReport *sqlenvfs_verify_report_new(void);
void sqlenvfs_verify_report_free(SqlenvfsVerifyReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsVerifyReport, sqlenvfs_verify_report_free)

void sqlenvfs_verify_report_add(SqlenvfsVerifyReport *report, const char *kind, const char *name,
                                const char *db, const char *path, gboolean ok, const char *reason);
guint sqlenvfs_verify_report_n_bad(const SqlenvfsVerifyReport *report);

/* Check every backup and snapshot, oldest first, and append one line per
 * stored database to @report (and one per entry whose MANIFEST cannot be
 * read, or that lists no database, and a bad one per entry whose MANIFEST
 * is of format 1 and so carries no checksum: "unprotected"). A bad copy is a bad line, not an error:
 * FALSE and *error only when a store directory cannot be read at all.
 * Entries removed while this runs (a concurrent prune) are skipped. */
gboolean sqlenvfs_store_verify_all(SqlenvfsRoot *root, SqlenvfsVerifyReport *report,
                                   GError **error);

/* A memory of earlier verifications of stored databases (verifymemo.h):
 *   known  TRUE and *verified_us when @sdb's file was found good then and
 *          has not changed since (it is not read again; its line says so);
 *   done   told of each stored database read now and found good;
 *   base_bad  told of each stored database whose file, as @id, is not what
 *          its MANIFEST says (the base check failed; may be NULL). */
typedef struct {
  gboolean (*known)(gpointer user, const SqlenvfsStoredDb *sdb, gint64 *verified_us);
  void (*done)(gpointer user, const SqlenvfsStoredDb *sdb);
  void (*base_bad)(gpointer user, const SqlenvfsStoredDb *sdb, const SqlenvfsFileId *id,
                   const char *reason);
  gpointer user;
} SqlenvfsStoreVerifyMemo;

/* sqlenvfs_store_verify_all, skipping what @memo (may be NULL) knows; the
 * counts in @report say how many were read and how many skipped. */
gboolean sqlenvfs_store_verify_all_with(SqlenvfsRoot *root, const SqlenvfsStoreVerifyMemo *memo,
                                        SqlenvfsVerifyReport *report, GError **error);

/* -------------------------------------------------------------- prune */

/* The keep hook: return TRUE to keep @copy although retention would remove
 * it, and set *why (newly allocated, one line) to say why. The archive
 * module passes one that keeps every copy that is the base of a still
 * retained point-in-time window. Called only for copies about to go. */
typedef gboolean (*SqlenvfsPruneKeepFunc)(const SqlenvfsStoredCopy *copy, gpointer user,
                                          char **why);

typedef struct {
  SqlenvfsCopyKind kind;
  char *name;
  char *dir;
  gboolean remove; /* removed (or, in a dry run, would be)    */
  char *reason;    /* why it goes, or why it stays (one line) */
} SqlenvfsPruneItem;

void sqlenvfs_prune_item_free(SqlenvfsPruneItem *item);

/* Apply retention to backups (daily-keep-days, daily-keep-count) and
 * snapshots (snapshot-keep-days, snapshot-keep-count); a limit of 0 is no
 * limit. A copy goes when it is older than keep-days or not among the
 * newest keep-count, unless:
 *   (1) it is, for some database, the newest copy of its kind that passes
 *       verification (crc32 and integrity check): that is never removed;
 *   (2) @keep (may be NULL) says to keep it.
 * Entries whose MANIFEST cannot be read are never removed (verify reports
 * them). Unless @dry_run, each removed entry is first renamed to a
 * ".tmp-" name (so it never looks like a backup again) and then deleted,
 * and leftovers of interrupted runs are removed. With @dry_run nothing is
 * touched. Returns one item per entry (SqlenvfsPruneItem *, backups then
 * snapshots, oldest first), or NULL and *error; entries removed before a
 * failure stay removed. */
GPtrArray *sqlenvfs_store_prune(SqlenvfsRoot *root, gboolean dry_run, SqlenvfsPruneKeepFunc keep,
                                gpointer user, GError **error);

/* --------------------------------------------------------------- list */

/* What lies before a recoverable window (between it and the window before
 * it, if any). */
typedef enum {
  SQLENVFS_BEFORE_START = 0, /* nothing recoverable: archiving started, older
                                segments were pruned, or no base before it   */
  SQLENVFS_BEFORE_GAP,       /* a gap: transactions may have been lost       */
  SQLENVFS_BEFORE_DAMAGE,    /* damaged or missing archive records           */
  SQLENVFS_BEFORE_OUTAGE,    /* an outage: nothing lost, but the times in
                                between cannot be told apart                 */
} SqlenvfsWindowBefore;

/* A recoverable point-in-time window of one database, [from, to]. A
 * database may have several (a capture gap splits its window). */
typedef struct {
  char *db;
  gint64 from_us, to_us;
  char *note; /* e.g. what caused the gap before it; may be NULL */
  SqlenvfsWindowBefore before;
  gboolean base_unchecked; /* its base changed since it was last checked */
} SqlenvfsListWindow;

/* A backup or snapshot whose MANIFEST cannot be read: missing, not a
 * readable key file, a checksum that does not match, a field missing or
 * invalid, written for another entry (a directory renamed or swapped by
 * hand); or an entry that is a symbolic link, or whose database file is.
 * It is never a base (restores leave it out) and prune never removes it;
 * `list` shows it so that it is not taken for absent. Also
 * one whose MANIFEST reads but whose database file verify or a restore
 * found bad (remembered in the memo of base verdicts, verifymemo.h): never
 * a base either, and prune removes it as any copy past retention. */
typedef struct {
  SqlenvfsCopyKind kind;
  char *name;     /* the entry's directory name, a time */
  gint64 time;    /* the time in the name (us) */
  char *dir;      /* absolute directory */
  char *manifest; /* absolute path of its MANIFEST */
  char *file;     /* the file found bad: the MANIFEST, a database file, or
                     the entry itself (a symbolic link) */
  gboolean unreadable; /* only not readable by this user (its owner's)    */
  gboolean foreign;    /* pinned in another history (a copy of the root)  */
  char *reason;   /* why it cannot be read, not repeating the path */
} SqlenvfsDamagedCopy;

/* What `list` shows. The archive module appends each database's windows
 * with sqlenvfs_list_report_add_window(). */
typedef struct {
  GPtrArray *backups;   /* SqlenvfsStoredCopy *, oldest first */
  GPtrArray *snapshots; /* SqlenvfsStoredCopy *, oldest first */
  GPtrArray *damaged;   /* SqlenvfsDamagedCopy *: the backups then the
                           snapshots that cannot be read, oldest first */
  GPtrArray *windows;   /* SqlenvfsListWindow *, in the order added */
  GPtrArray *tails;     /* SqlenvfsListWindow *: for each database whose archive
                           goes on past its last window, from the break to
                           the newest archived time, and why no base reaches
                           it (sqlenvfs_timeline_unrecoverable_tail) */
} SqlenvfsListReport;

/* Backups and snapshots of @root, and those whose MANIFEST cannot be read
 * (damaged; windows empty). NULL and *error when a store directory cannot
 * be read. */
SqlenvfsListReport *sqlenvfs_store_list_report(SqlenvfsRoot *root, GError **error);
void sqlenvfs_list_report_free(SqlenvfsListReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsListReport, sqlenvfs_list_report_free)

/* Move the copies of @report a database of which @root's memo of base
 * verdicts knows bad (verify, or a restore, found its file not what its
 * MANIFEST says) from its backups and snapshots to its damaged ones, as
 * `list` and the mount's status show them. */
void sqlenvfs_list_report_mark_known_bad(SqlenvfsListReport *report, SqlenvfsRoot *root);

/* Move the copy @kind/@name of @report from its backups or snapshots to
 * its damaged ones, with @reason (what the timeline found: it was pinned
 * in another history of a database, and its MANIFEST places it in this
 * root's archive by numbers that are another archive's). Nothing when it
 * is not listed among the good ones. */
void sqlenvfs_list_report_mark_foreign(SqlenvfsListReport *report, SqlenvfsCopyKind kind,
                                       const char *name, const char *reason);

/* Write @damaged (SqlenvfsDamagedCopy *) to @j as an array of objects:
 * "kind", "name", "time", "dir", "manifest", "file" (the one found bad),
 * "unreadable" (only by this user), "reason" and "action" (what
 * to do; @remote_url, the replica they were listed from, or NULL for a
 * root's own): as `list --json` shows them under "damaged", and the
 * mount's status under "damaged_copies". */
void sqlenvfs_damaged_copies_json(SqlenvfsJson *j, const GPtrArray *damaged,
                                  const char *remote_url);

/* Append a window (before: START); returns it (owned by @report), for the
 * caller to set what lies before it. */
SqlenvfsListWindow *sqlenvfs_list_report_add_window(SqlenvfsListReport *report, const char *db,
                                                    gint64 from_us, gint64 to_us,
                                                    const char *note);

G_END_DECLS
