/*
 * env.h — environments (SPEC §3): the marker, init, refresh-dev, info.
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

/* Mark @db as @env (one row, replacing any marker) in its own transaction. */
gboolean sqlenvfs_env_mark(sqlite3 *db, const char *env, const char *path, GError **error);

typedef struct {
  const char *db;          /* NULL: the default database           */
  const char *schema_path; /* NULL: <root>/schema.sql              */
  gboolean demo;           /* load the demo data set               */
  gboolean force;          /* move existing files aside first      */
} SqlenvfsInitOptions;

/* Create production (WAL, marked production) and development (marked
 * development) for one database. Refuses (EXISTS) when either exists unless
 * force, and then moves db, -wal and -shm aside to <name>.db.replaced-<ts>. */
gboolean sqlenvfs_env_init(SqlenvfsRoot *root, const SqlenvfsInitOptions *opts,
                           SqlenvfsProgressFunc progress, gpointer user, GError **error);

/* Replace development database @db with the state in @img (a pinned view of
 * production, or a point-in-time image). The image is written aside, checked
 * and marked development, then installed into the live dev database with the
 * SQLite backup API so that an open reader never sees a half-written file or
 * a production marker. @source_desc names the source in messages. */
gboolean sqlenvfs_env_refresh_dev_from_image(SqlenvfsRoot *root, const char *db,
                                             SqlenvfsImage *img, const char *source_desc,
                                             SqlenvfsProgressFunc progress, gpointer user,
                                             GError **error);

/* refresh-dev from live production: refuses (REFUSED) a source not marked
 * production unless @force; verifies afterwards that production is unchanged. */
gboolean sqlenvfs_env_refresh_dev(SqlenvfsRoot *root, const char *db, gboolean force,
                                  SqlenvfsProgressFunc progress, gpointer user, GError **error);

G_END_DECLS
