/*
 * root.h — the project directory ("root"): where it is, what it
 * holds, its settings, and the per-root locks.
 *
 *   root/
 *     sqlenvfs.conf              optional GKeyFile settings (see below)
 *     schema.sql                 schema used by `init`
 *     data/prod/<db>.db          production databases (WAL mode)
 *     data/dev/<db>.db           development databases
 *     backups/prod/daily/<ts>/   full backups, one directory per run
 *     backups/prod/snapshots/<ts>/  snapshots, one directory per run
 *     backups/prod/wal_archives/<db>/  continuous WAL archive (docs/ARCHIVE.md)
 *     .cache/                    rebuilt point-in-time databases (disposable)
 *     .sqlenvfs/                 locks and daemon state
 *
 * Settings (sqlenvfs.conf, every key optional):
 *   [sqlenvfs]  default-db=app
 *   [retention] daily-keep-days=7 daily-keep-count=0
 *               snapshot-keep-days=7 snapshot-keep-count=0  (0: no count limit)
 *               pitr-keep-days=7
 *   [archive]   segment-max-bytes=67108864 checkpoint-pages=1000
 *               max-wal-bytes=0   (0: production's WAL is held whatever its size
 *                                  while the archive cannot be written, or a
 *                                  file of the mount's prod/ is open)
 *   [cache]     max-bytes=4294967296 min-free-bytes=1073741824
 *   [mount]     log-max-bytes=10485760
 *   [doctor]    size-warn-bytes=10000000000 backup-max-age-hours=26
 *               archive-lag-warn-seconds=60
 *               acknowledged-bugs=   (known SQLite bugs whose risk is accepted, e.g.
 *                                     wal-reset; see doctor.h)
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char *default_db;
  int daily_keep_days;
  int daily_keep_count;
  int snapshot_keep_days;
  int snapshot_keep_count;
  int pitr_keep_days;
  gint64 segment_max_bytes;
  gint64 segment_max_records;
  gint64 checkpoint_pages;
  gint64 max_wal_bytes;        /* while the archive cannot be written, or a file
                                * of the mount's prod/ is open, the WAL is held
                                * only up to this size (0: no limit)            */
  gint64 cache_max_bytes;
  gint64 cache_min_free_bytes; /* a pitr rebuild, and a backup, snapshot,
                                * refresh-dev, recover, restore or the WAL
                                * archive on production's filesystem, leave
                                * this free (sqlenvfs_root_check_room); a WAL
                                * held from being reset is let go before it
                                * grows into it                              */
  gint64 log_max_bytes;        /* mount.log is rotated to mount.log.1 past this */
  gint64 size_warn_bytes;
  int backup_max_age_hours;
  int archive_lag_warn_seconds;
  char **doctor_acknowledged_bugs; /* NULL-terminated, never NULL */
  char *replica_url;           /* [replica] url as read with the rest (NULL: none),
                                * so that a prune decides by one reading of the file */
} SqlenvfsSettings;

typedef struct _SqlenvfsRoot SqlenvfsRoot;

typedef enum {
  SQLENVFS_ROOT_MUST_EXIST = 0, /* a root that has data/prod               */
  SQLENVFS_ROOT_MAY_CREATE = 1  /* for init: the directory may be new       */
} SqlenvfsRootMode;

/* Find the root: @dir if non-NULL, else $SQLENVFS_ROOT, else the current
 * directory; make it absolute and read sqlenvfs.conf. With MUST_EXIST the
 * directory must hold data/prod. NULL and *error (NOT_FOUND or INVALID,
 * naming the path and what to do) on failure. */
SqlenvfsRoot *sqlenvfs_root_open(const char *dir, SqlenvfsRootMode mode, GError **error);

/* Check the text @text (@len bytes, as sqlenvfs_settings_read read it
 * from the settings file @file) as a root's open does, and FALSE with the
 * error that stops what needs its section @group: one of the whole file (a
 * line that is no setting, an unknown section, text that is not UTF-8),
 * else one of that section (an unknown or misspelt setting, a value that is
 * not valid, one set twice); @group NULL: any. */
gboolean sqlenvfs_settings_text_check(const char *file, const char *text, gsize len,
                                      const char *group, GError **error);

/* The text of the settings file @file into *@text (*@len bytes): a regular
 * file of at most 1 MiB, read without blocking on a FIFO. FALSE and
 * *error: NOT_FOUND when there is no such file (a link to no file is
 * INVALID, as is any other failure, naming what to do). */
gboolean sqlenvfs_settings_read(const char *file, char **text, gsize *len, GError **error);
/* The settings file @file as a GKeyFile, read as above and without the
 * byte order mark; NULL and *error (NOT_FOUND: no such file). Whether its
 * values are valid is sqlenvfs_settings_text_check's. */
GKeyFile *sqlenvfs_settings_keyfile(const char *file, GError **error);
/* The settings file's text @text of *@len bytes without the byte order
 * mark some editors write first (*@len then 3 less). */
const char *sqlenvfs_settings_text(const char *text, gsize *len);

/* The line (from 1) of the settings text @text that sets @key in [@group],
 * or 0. */
guint sqlenvfs_settings_line(const char *text, const char *group, const char *key);
/* The same, @dir given as @given_as (an error says "from @given_as"). */
SqlenvfsRoot *sqlenvfs_root_open_from(const char *dir, const char *given_as,
                                      SqlenvfsRootMode mode, GError **error);
void sqlenvfs_root_free(SqlenvfsRoot *root);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsRoot, sqlenvfs_root_free)

const char *sqlenvfs_root_dir(const SqlenvfsRoot *root);
const SqlenvfsSettings *sqlenvfs_root_settings(const SqlenvfsRoot *root);

/* A settings file with an error does not stop a root's open: a section
 * with an error is read as if it were absent (its defaults), and what
 * needs it asks first. TRUE when section @group ("retention", ...; NULL:
 * every section) has no error, nor has the file as a whole; else FALSE and
 * a copy of the error, which names the file, the line and what to do. */
gboolean sqlenvfs_root_settings_need(const SqlenvfsRoot *root, const char *group,
                                     GError **error);
/* The first error of the root's settings file (NULL: none), which what
 * goes on without the section shows as a warning. */
const GError *sqlenvfs_root_settings_problem(const SqlenvfsRoot *root);
/* Every error of the root's settings file, each with what it stops, one
 * a string (newly allocated; empty: none): the whole file's alone when it
 * has one, else the first of each section with an error. */
GPtrArray *sqlenvfs_root_settings_problems(const SqlenvfsRoot *root);
/* The same, each logged as a warning. */
void sqlenvfs_root_warn_settings(const SqlenvfsRoot *root);

typedef enum {
  SQLENVFS_DIR_PROD,
  SQLENVFS_DIR_DEV,
  SQLENVFS_DIR_DAILY,
  SQLENVFS_DIR_SNAPSHOTS,
  SQLENVFS_DIR_WAL,
  SQLENVFS_DIR_CACHE,
  SQLENVFS_DIR_STATE,
} SqlenvfsDir;

/* Absolute path of one of the root's directories (owned by the root). */
const char *sqlenvfs_root_path(const SqlenvfsRoot *root, SqlenvfsDir which);

/* The first of the root's directories from the root down to @which (itself
 * included) that is a symbolic link or is there but is not a directory
 * (newly allocated; *@is_link, when non-NULL, says which), or NULL when
 * there is none (those missing are not looked past). */
char *sqlenvfs_root_path_blocker(const SqlenvfsRoot *root, SqlenvfsDir which,
                                 gboolean *is_link);

/* The symbolic link that opening the database @path in the directory
 * @which would go through: for DEV a directory from the root down to it,
 * or the file, its -wal, -shm or -journal (newly allocated); for PROD none
 * (production is read through links as the application reads it);
 * NULL when there is none. SQLite follows it and makes its -wal and -shm
 * beside the link's target, outside the root: a command that only reads
 * names the link instead of opening the database. */
char *sqlenvfs_root_db_link(const SqlenvfsRoot *root, SqlenvfsDir which, const char *path);

/* TRUE when neither the directory @which nor any directory between the
 * root and it is a symbolic link (those missing are not looked past);
 * FALSE with an error naming the link, its target and @what was refused,
 * for a command about to write or delete there. */
gboolean sqlenvfs_root_refuse_links(const SqlenvfsRoot *root, SqlenvfsDir which,
                                    const char *what, GError **error);

/* The permission bits every file written from production data gets at
 * most: those of data/prod/<db>.db for @db, or (@db NULL, or no such
 * file) those every production database allows (the intersection); 0644
 * when there is none. Backups, snapshots, the archive, the cache,
 * temporaries, development copies and restores are never more readable
 * than their source; directories get sqlenvfs_mode_dir() of it. */
int sqlenvfs_root_data_mode(const SqlenvfsRoot *root, const char *db);

/* Before writing @need bytes into the directory @dir: when @dir is on the
 * filesystem of a production database, at least @need plus [cache]
 * min-free-bytes must be available there (the room production keeps for
 * its commits; a disk filled by a copy makes the application's commits
 * fail while it is written), else NOSPACE naming @what. TRUE when @dir is
 * on a filesystem of its own, or when its space cannot be told (the write
 * itself then says what fails). */
gboolean sqlenvfs_root_check_room(const SqlenvfsRoot *root, const char *dir, guint64 need,
                                  const char *what, GError **error);
/* The same, its message ending with @then (what happens now and what to
 * do) instead of "nothing was written (...)". */
gboolean sqlenvfs_root_check_room_then(const SqlenvfsRoot *root, const char *dir, guint64 need,
                                       const char *what, const char *then, GError **error);

/* A WAL that something keeps from being reset (the archiver's read
 * transaction while the archive cannot be written, a file open under the
 * mount) is let go once it has grown past @held_size (its size when the
 * hold began: growth within it takes no disk) and, with @check_max, past
 * [archive] max-wal-bytes, or, with @check_room, until less than [cache]
 * min-free-bytes is free on its filesystem (the room production keeps for
 * its commits). Returns the bound reached as a phrase for messages
 * ("past [archive] max-wal-bytes (4.0 MiB)"), with the WAL's size in
 * @size, or NULL while neither is reached (or the WAL cannot be stat'ed). */
char *sqlenvfs_root_wal_bound_reached(const SqlenvfsRoot *root, const char *wal,
                                      gint64 held_size, gboolean check_max,
                                      gboolean check_room, gint64 *size);

/* Create every directory of the layout that is missing: data/ with 0755,
 * backups/ with the directory mode of sqlenvfs_root_data_mode(), .cache and
 * .sqlenvfs with 0700. */
gboolean sqlenvfs_root_ensure_layout(SqlenvfsRoot *root, GError **error);

/* data/prod/<name>.db and data/dev/<name>.db (newly allocated). */
char *sqlenvfs_root_prod_db(const SqlenvfsRoot *root, const char *name);
char *sqlenvfs_root_dev_db(const SqlenvfsRoot *root, const char *name);

/* Whether @path is, or would be, a production or development database of
 * @root or one of the files SQLite keeps beside it (-wal, -shm, -journal):
 * the same file as one (through any link), or a "*.db", "*.db-wal",
 * "*.db-shm" or "*.db-journal" name in data/prod or data/dev (by its real
 * directory). TRUE and *which (that file's path, newly allocated) if so. */
gboolean sqlenvfs_root_is_db_file(const SqlenvfsRoot *root, const char *path, char **which);

/* The data/prod or data/dev directory of whichever root @path's directory
 * is (resolved), when @path names a database or a file SQLite keeps beside
 * one there (sqlenvfs_root_is_db_name); else NULL. Another root's
 * databases are refused as outputs as the given root's are. */
char *sqlenvfs_root_env_dir_of(const char *path);

/* The directory of a root that only sqlenvfs writes in (backups/, .cache or
 * .sqlenvfs beside a data/prod directory) holding @path, by the real path
 * of @path's directory, of any root (newly allocated); NULL if none does. */
char *sqlenvfs_root_store_area_of(const char *path);
/* The same for @root's own backups/, .cache and .sqlenvfs, told by device
 * and inode (a path into them through a bind mount, say): the one holding
 * @path (its path under @root, newly allocated), or NULL. */
char *sqlenvfs_root_store_dir_holding(const SqlenvfsRoot *root, const char *path);

/* Whether the file name @base is a database's ("*.db") or that of a file
 * SQLite keeps beside one ("*.db-wal", "*.db-shm", "*.db-journal"). */
gboolean sqlenvfs_root_is_db_name(const char *base);

/* Names (without .db) of the production databases, sorted. Never NULL.
 * A "<name>.db" whose name is not supported (sqlenvfs_db_name_problem) is
 * left out and logged as a warning, once per root object and file. */
GPtrArray *sqlenvfs_root_list_dbs(const SqlenvfsRoot *root);

/* The production databases, for a message: "app, shop and 'sales 2026'"
 * (each a shell word), or NULL when there is none; *@n (when not NULL)
 * how many. Newly allocated. */
char *sqlenvfs_root_describe_dbs(const SqlenvfsRoot *root, guint *n);

/* The "<name>.db" files of data/prod that are left out because their name
 * is not supported: "<path>: <why>" each (control characters escaped). */
GPtrArray *sqlenvfs_root_list_unsupported(const SqlenvfsRoot *root);

/* Forget which unsupported databases were logged, so that the next
 * sqlenvfs_root_list_dbs logs them again: for a process whose log moves
 * (the mount, once it logs to its file instead of the terminal). */
void sqlenvfs_root_forget_warnings(SqlenvfsRoot *root);

/* Resolve a user's database name: NULL means the default; a name must be
 * supported (below). A name is taken as list prints it: "y.db" is the
 * database y.db (file y.db.db) when it has a production file or an
 * archive; else, when "y" has one, one ".db" is taken as the file's and y
 * is meant (never more than one ".db"). With @must_exist the production
 * database must exist. Newly allocated. */
char *sqlenvfs_root_resolve_db(const SqlenvfsRoot *root, const char *name,
                               gboolean must_exist, GError **error);

/* The same for a database about to be created (init): the name is taken
 * exactly as written, so "y.db" is never y. */
char *sqlenvfs_root_resolve_new_db(const SqlenvfsRoot *root, const char *name, GError **error);

/* Why @name cannot be a database name, or NULL when it can. Supported: any
 * non-empty UTF-8 text up to 200 bytes, spaces and non-ASCII letters
 * included, not starting with '.' and without '/', control characters, or
 * '[' and ']' (a MANIFEST's group "[db <name>]" cannot hold them). The name
 * is used as is for <name>.db, the archive directory <name>/ and the
 * MANIFEST group. */
const char *sqlenvfs_db_name_problem(const char *name);

/* A database name is supported (sqlenvfs_db_name_problem() is NULL). */
gboolean sqlenvfs_db_name_is_valid(const char *name);

/* TRUE when @name, or @name without one ".db" it may end with, is a
 * supported database name; else FALSE and an INVALID error saying why. */
gboolean sqlenvfs_db_name_check(const char *name, GError **error);

/* Per-root exclusive lock on .sqlenvfs/<name>.lock (flock). Returns the fd
 * (>= 0) to keep while holding it; with @wait FALSE a held lock is refused
 * with SQLENVFS_ERROR_BUSY saying who holds it (pid written in the file). */
int sqlenvfs_root_lock(SqlenvfsRoot *root, const char *name, gboolean wait, GError **error);

/* The file of the lock @name (.sqlenvfs/<name>.lock: "archiver" is the one
 * the archiver, or a mount's, holds while it runs). Newly allocated. */
char *sqlenvfs_root_lock_path(const SqlenvfsRoot *root, const char *name);

/* Record the calling process as the holder of the lock held through @fd
 * (the pid in the file names it in the BUSY message). A process that
 * inherited the lock across fork() calls this, so that the file never names
 * a parent that has exited. FALSE when it could not be written (the lock is
 * still held; the pid is informational). */
gboolean sqlenvfs_root_lock_set_pid(int fd);
void sqlenvfs_root_unlock(int fd);

G_END_DECLS
