/*
 * env.h — environments: the marker, init, refresh-dev, info.
 *
 * The marker is the table
 *     _environment(id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL,
 *                  marked_at TEXT NOT NULL)
 * holding exactly one row; re-marking replaces that row, so a database can
 * never report two environments.
 */
#pragma once

#include <glib.h>
#include <sqlite3.h>

#include "sqlenvfs/image.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/timefmt.h"

G_BEGIN_DECLS

#define SQLENVFS_ENV_PRODUCTION "production"
#define SQLENVFS_ENV_DEVELOPMENT "development"

/* The environment marked in @db: "production", "development", other text, or
 * NULL when the database has no marker. FALSE and *error on a query error. */
gboolean sqlenvfs_env_read(sqlite3 *db, char **env, const char *path, GError **error);

/* Like sqlenvfs_env_read(), also returning when it was marked (UTC ISO
 * text as stored; NULL when unmarked). A marker table holding more than one
 * row (as an older tool could leave) is an INTEGRITY error that says how to
 * fix it, never a guess. */
gboolean sqlenvfs_env_read_marker(sqlite3 *db, char **env, char **marked_at, const char *path,
                                  GError **error);

/* Mark @db as @env (one row, replacing any marker) in its own transaction.
 * The marker table is dropped and recreated in that transaction, so a table
 * of another shape (e.g. one keyed by name) is replaced too: afterwards it
 * holds exactly one row. Readers see the old marker or the new one. */
gboolean sqlenvfs_env_mark(sqlite3 *db, const char *env, const char *path, GError **error);

typedef struct {
  const char *db;          /* NULL: the default database           */
  const char *schema_path; /* NULL: <root>/schema.sql              */
  gboolean demo;           /* load the demo data set               */
  gboolean force;          /* move existing files aside first      */
  guint64 demo_events;     /* demo size; 0: SQLENVFS_DEMO_DEFAULT_EVENTS */
  GPtrArray *moved_aside;  /* out, may be NULL: paths the old files went to */
} SqlenvfsInitOptions;

/* Create production (WAL, marked production) and development (WAL, marked
 * development, a copy of production before it was marked) for one
 * database. Refuses (EXISTS) when either exists unless force, and then moves
 * db, -wal, -shm and -journal aside to <name>.db.replaced-<ts>[-wal|...]
 * (so the old database still opens with its WAL), each move, and the two
 * renames that put the new files in place, written down first in
 * sqlenvfs_env_init_moves_path(); moves that an earlier run left
 * unfinished are finished first, and when that run is then done (both
 * databases in place) an init without force stops there. Both files are built as
 * ".tmp-init-<name>-<pid>.db" next to their final place and renamed in only
 * when complete: on failure nothing existing has been touched, and the
 * temporaries are removed. A missing schema file is NOT_FOUND. */
gboolean sqlenvfs_env_init(SqlenvfsRoot *root, const SqlenvfsInitOptions *opts,
                           SqlenvfsProgressFunc progress, gpointer user, GError **error);

/* The file naming the moves of an init --force until they are all made and
 * durable (newly allocated): while it is there and no init runs, a run was
 * cut short and the next init finishes them. */
char *sqlenvfs_env_init_moves_path(const SqlenvfsRoot *root);

/* Replace development database @db with the state in @img (a pinned view of
 * production, or a point-in-time image). The image is written aside, checked
 * and marked development, then installed into the live dev database with the
 * SQLite backup API so that an open reader never sees a half-written file or
 * a production marker. @source_desc names the source in messages.
 * @read_done (may be NULL) is called with @read_done_data once @img has
 * been read whole, before anything waits on development's locks: a pinned
 * view of production is let go there, so that a developer's transaction
 * never keeps production's WAL from being checkpointed. */
gboolean sqlenvfs_env_refresh_dev_from_image(SqlenvfsRoot *root, const char *db,
                                             SqlenvfsImage *img, const char *source_desc,
                                             GDestroyNotify read_done, gpointer read_done_data,
                                             SqlenvfsProgressFunc progress, gpointer user,
                                             GError **error);

/* What the refusal of a source not marked production says to do, the last
 * words of its message (env.c, restore.c); ctl/refresh-dev, which has no
 * --force, says instead how the command line does it (ops.c). */
#define SQLENVFS_FORCE_ADVICE "pass --force to copy it anyway"

/* refresh-dev from live production: refuses (REFUSED) a source not marked
 * production unless @force; verifies afterwards that production is unchanged. */
gboolean sqlenvfs_env_refresh_dev(SqlenvfsRoot *root, const char *db, gboolean force,
                                  SqlenvfsProgressFunc progress, gpointer user, GError **error);

/* What `info` reports about one database file. */
typedef struct {
  char *db;            /* database name (no .db)                               */
  const char *place;   /* "prod" or "dev" (static)                             */
  char *path;
  gboolean exists;
  guint64 size;        /* bytes of the database file                           */
  guint64 wal_size;    /* bytes of its -wal file (0 when there is none)        */
  gint64 page_size;
  gint64 page_count;   /* pages in the current committed state (WAL included) */
  GPtrArray *tables;   /* char *, sorted: tables except sqlite_* and the marker */
  char *environment;   /* marker, or NULL when unmarked                         */
  char *marked_at;     /* UTC ISO text, or NULL                                 */
  char *journal_mode;
  gint64 mtime_us;     /* latest modification of the db or its -wal (UTC us)   */
  char *error;         /* set when the file exists but could not be read        */
} SqlenvfsDbInfo;

void sqlenvfs_db_info_free(SqlenvfsDbInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsDbInfo, sqlenvfs_db_info_free)

/* Describe the database file at @path (named @db, in @place). Never NULL:
 * a missing file has exists FALSE; a file that cannot be read as a database
 * has ->error set (one line naming the file and the problem). Opens the file
 * read-only, reads everything in one read transaction, never checkpoints. */
SqlenvfsDbInfo *sqlenvfs_env_db_info(const char *db, const char *place, const char *path);

/* Info for every database of the root: for each name found in data/prod or
 * data/dev (sorted), production then development. Never NULL. */
GPtrArray *sqlenvfs_env_info(SqlenvfsRoot *root);

G_END_DECLS
