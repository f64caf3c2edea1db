/*
 * imagevfs.c — an SQLite VFS whose main database files are SqlenvfsImages
 * (imagevfs.h).
 *
 * How a connection finds its image: sqlenvfs_imagevfs_open/attach put the
 * image in a registry under a fresh name "/sqlenvfs-image/<n>", open that
 * name with vfs=sqlenvfs-image, and take it out of the registry again once
 * SQLite has opened the file (xOpen copies the image pointer into the file).
 * So the registry only ever holds images being opened right now.
 *
 * Files other than a main database:
 *   - temporary files SQLite makes for itself (sorting, temporary tables,
 *     statement journals: TEMP_DB, TEMP_JOURNAL, SUBJOURNAL, TRANSIENT_DB)
 *     are handed to the default VFS, as they would be for any database;
 *   - journals, WALs and super-journals are refused (SQLITE_CANTOPEN): the
 *     image is immutable, SQLite never needs them.
 */
#include "sqlenvfs/imagevfs.h"

#include <string.h>

#include "sqlenvfs/error.h"

#define NAME_PREFIX "/sqlenvfs-image/"

typedef struct {
  SqlenvfsImage *img;
  char *label;
} Pending;

typedef struct {
  sqlite3_file base;
  SqlenvfsImage *img;
  char *label;
  SqlenvfsImagevfsStats stats;
} ImageFile;

static GMutex registry_lock;
static GHashTable *registry; /* name -> Pending *, under registry_lock */
static guint64 next_id;
static sqlite3_vfs *default_vfs;

static int
file_close(sqlite3_file *f)
{
  ImageFile *p = (ImageFile *) f;

  g_clear_pointer(&p->label, g_free);
  return SQLITE_OK;
}

static int
file_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
  ImageFile *p = (ImageFile *) f;
  g_autoptr(GError) error = NULL;
  gsize done = 0;

  p->stats.n_reads++;
  p->stats.n_bytes += (guint64) amt;
  while (done < (gsize) amt) {
    gssize n = sqlenvfs_image_read(p->img, (guint8 *) buf + done, (gsize) amt - done,
                                   (goffset) off + (goffset) done, SQLENVFS_IMAGE_ROLLBACK_HEADER,
                                   &error);
    if (n < 0) {
      g_warning("reading %s at byte %" G_GINT64_FORMAT ": %s", p->label, (gint64) off,
                error->message);
      return SQLITE_IOERR_READ;
    }
    if (n == 0)
      break;
    done += (gsize) n;
  }
  if (done < (gsize) amt) {
    memset((guint8 *) buf + done, 0, (gsize) amt - done); /* SQLite requires it */
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

static int
file_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
  (void) f, (void) buf, (void) amt, (void) off;
  return SQLITE_READONLY;
}

static int
file_truncate(sqlite3_file *f, sqlite3_int64 size)
{
  (void) f, (void) size;
  return SQLITE_READONLY;
}

static int
file_sync(sqlite3_file *f, int flags)
{
  (void) f, (void) flags;
  return SQLITE_OK;
}

static int
file_size(sqlite3_file *f, sqlite3_int64 *size)
{
  *size = (sqlite3_int64) sqlenvfs_image_size(((ImageFile *) f)->img);
  return SQLITE_OK;
}

static int
file_lock(sqlite3_file *f, int level)
{
  (void) f, (void) level;
  return SQLITE_OK;
}

static int
file_check_reserved(sqlite3_file *f, int *out)
{
  (void) f;
  *out = 0;
  return SQLITE_OK;
}

static int
file_control(sqlite3_file *f, int op, void *arg)
{
  (void) f, (void) op, (void) arg;
  return SQLITE_NOTFOUND;
}

static int
file_sector_size(sqlite3_file *f)
{
  (void) f;
  return 4096;
}

static int
file_device(sqlite3_file *f)
{
  (void) f;
  return SQLITE_IOCAP_IMMUTABLE;
}

static const sqlite3_io_methods image_methods = {
  .iVersion = 1,
  .xClose = file_close,
  .xRead = file_read,
  .xWrite = file_write,
  .xTruncate = file_truncate,
  .xSync = file_sync,
  .xFileSize = file_size,
  .xLock = file_lock,
  .xUnlock = file_lock,
  .xCheckReservedLock = file_check_reserved,
  .xFileControl = file_control,
  .xSectorSize = file_sector_size,
  .xDeviceCharacteristics = file_device,
};

static int
vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
  ImageFile *p = (ImageFile *) f;
  Pending *pending;

  (void) vfs;
  if (flags & (SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_SUBJOURNAL |
               SQLITE_OPEN_TRANSIENT_DB))
    return default_vfs->xOpen(default_vfs, name, f, flags, out_flags);
  f->pMethods = NULL;
  if (!(flags & SQLITE_OPEN_MAIN_DB) || name == NULL)
    return SQLITE_CANTOPEN;
  /* Asked read-write (so that the connection may hold temporary tables),
   * the file still opens read-only: *out_flags tells SQLite so, and it
   * refuses every write to it. */
  g_mutex_lock(&registry_lock);
  pending = registry != NULL ? g_hash_table_lookup(registry, name) : NULL;
  if (pending != NULL) {
    memset(p, 0, sizeof *p);
    p->img = pending->img;
    p->label = g_strdup(pending->label);
  }
  g_mutex_unlock(&registry_lock);
  if (pending == NULL)
    return SQLITE_CANTOPEN;
  f->pMethods = &image_methods;
  if (out_flags != NULL)
    *out_flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_DB;
  return SQLITE_OK;
}

static int
vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
  (void) vfs, (void) name, (void) sync_dir;
  return SQLITE_READONLY;
}

static int
vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
  (void) vfs, (void) flags;
  /* Only the images exist: no journal, no WAL. */
  *out = 0;
  if (g_str_has_prefix(name, NAME_PREFIX)) {
    g_mutex_lock(&registry_lock);
    *out = registry != NULL && g_hash_table_contains(registry, name);
    g_mutex_unlock(&registry_lock);
  }
  return SQLITE_OK;
}

static int
vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n_out, char *out)
{
  (void) vfs;
  if ((int) strlen(name) >= n_out)
    return SQLITE_CANTOPEN;
  g_strlcpy(out, name, (gsize) n_out);
  return SQLITE_OK;
}

static int
vfs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
  (void) vfs;
  return default_vfs->xRandomness(default_vfs, n, out);
}

static int
vfs_sleep(sqlite3_vfs *vfs, int us)
{
  (void) vfs;
  return default_vfs->xSleep(default_vfs, us);
}

static int
vfs_current_time(sqlite3_vfs *vfs, double *out)
{
  (void) vfs;
  return default_vfs->xCurrentTime(default_vfs, out);
}

static int
vfs_last_error(sqlite3_vfs *vfs, int n, char *out)
{
  (void) vfs;
  if (n > 0)
    out[0] = '\0';
  return 0;
}

static int
vfs_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
  (void) vfs;
  if (default_vfs->iVersion >= 2 && default_vfs->xCurrentTimeInt64 != NULL)
    return default_vfs->xCurrentTimeInt64(default_vfs, out);
  double d = 0;
  int rc = default_vfs->xCurrentTime(default_vfs, &d);
  *out = (sqlite3_int64) (d * 86400000.0);
  return rc;
}

/* The clock of connections opened with sqlenvfs_imagevfs_open_clock, as
 * SQLite counts it (milliseconds since the Julian epoch): set by each such
 * open on its thread, which is the thread that then runs its statements
 * (imagevfs.h, invariant 3). */
static _Thread_local sqlite3_int64 fixed_now;

static int
fixed_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
  if (fixed_now == 0)
    return vfs_current_time_int64(vfs, out);
  *out = fixed_now;
  return SQLITE_OK;
}

static int
fixed_current_time(sqlite3_vfs *vfs, double *out)
{
  sqlite3_int64 ms = 0;
  int rc = fixed_current_time_int64(vfs, &ms);
  *out = (double)ms / 86400000.0;
  return rc;
}

static sqlite3_vfs image_vfs = {
  .iVersion = 2,
  .mxPathname = 256,
  .zName = SQLENVFS_IMAGEVFS_NAME,
  .xOpen = vfs_open,
  .xDelete = vfs_delete,
  .xAccess = vfs_access,
  .xFullPathname = vfs_full_pathname,
  .xRandomness = vfs_randomness,
  .xSleep = vfs_sleep,
  .xCurrentTime = vfs_current_time,
  .xGetLastError = vfs_last_error,
  .xCurrentTimeInt64 = vfs_current_time_int64,
};

#define FIXED_VFS_NAME SQLENVFS_IMAGEVFS_NAME "-fixed-clock"

/* image_vfs with the clock of sqlenvfs_imagevfs_open_clock (ensure_registered). */
static sqlite3_vfs fixed_vfs;

static gboolean
ensure_registered(GError **error)
{
  static gsize once;
  static int rc;

  if (g_once_init_enter(&once)) {
    default_vfs = sqlite3_vfs_find(NULL);
    if (default_vfs == NULL) {
      rc = SQLITE_ERROR;
    } else {
      image_vfs.szOsFile = MAX((int) sizeof(ImageFile), default_vfs->szOsFile);
      fixed_vfs = image_vfs;
      fixed_vfs.zName = FIXED_VFS_NAME;
      fixed_vfs.xCurrentTime = fixed_current_time;
      fixed_vfs.xCurrentTimeInt64 = fixed_current_time_int64;
      rc = sqlite3_vfs_register(&image_vfs, 0);
      if (rc == SQLITE_OK)
        rc = sqlite3_vfs_register(&fixed_vfs, 0);
    }
    g_once_init_leave(&once, 1);
  }
  if (rc != SQLITE_OK)
    return sqlenvfs_error_sqlite(error, NULL, rc, "registering the SQLite VFS",
                                 SQLENVFS_IMAGEVFS_NAME);
  return TRUE;
}

/* Put @img in the registry; returns its name (free with forget()). */
static char *
remember(SqlenvfsImage *img, const char *label)
{
  Pending *p = g_new0(Pending, 1);
  char *name;

  p->img = img;
  p->label = g_strdup(label);
  g_mutex_lock(&registry_lock);
  if (registry == NULL)
    registry = g_hash_table_new(g_str_hash, g_str_equal);
  name = g_strdup_printf(NAME_PREFIX "%" G_GUINT64_FORMAT, ++next_id);
  g_hash_table_insert(registry, name, p);
  g_mutex_unlock(&registry_lock);
  return name;
}

static void
forget(char *name)
{
  Pending *p;

  g_mutex_lock(&registry_lock);
  p = g_hash_table_lookup(registry, name);
  g_hash_table_remove(registry, name);
  g_mutex_unlock(&registry_lock);
  g_free(p->label);
  g_free(p);
  g_free(name);
}

static gboolean
open_with(SqlenvfsImage *img, const char *label, const char *vfs, sqlite3 **db, GError **error)
{
  sqlite3 *conn = NULL;
  char *name;
  int rc;

  g_return_val_if_fail(img != NULL && db != NULL, FALSE);
  if (!ensure_registered(error))
    return FALSE;
  name = remember(img, label);
  rc = sqlite3_open_v2(name, &conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, vfs);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(conn, "PRAGMA temp_store=MEMORY; SELECT count(*) FROM sqlite_schema", NULL,
                      NULL, NULL);
  forget(name);
  if (rc != SQLITE_OK) {
    sqlenvfs_error_sqlite(error, conn, rc, "opening the database state", label);
    sqlite3_close_v2(conn);
    return FALSE;
  }
  *db = conn;
  return TRUE;
}

gboolean
sqlenvfs_imagevfs_open(SqlenvfsImage *img, const char *label, sqlite3 **db, GError **error)
{
  return open_with(img, label, SQLENVFS_IMAGEVFS_NAME, db, error);
}

gboolean
sqlenvfs_imagevfs_open_clock(SqlenvfsImage *img, const char *label, gint64 now_us, sqlite3 **db,
                             GError **error)
{
  /* SQLite's clock: the Julian day number of the Unix epoch, in ms. */
  fixed_now = (sqlite3_int64)(now_us / 1000) + (sqlite3_int64)210866760000000LL;
  return open_with(img, label, FIXED_VFS_NAME, db, error);
}

gboolean
sqlenvfs_imagevfs_attach(sqlite3 *db, SqlenvfsImage *img, const char *label, const char *schema,
                         GError **error)
{
  char *sql, *name;
  int rc;

  g_return_val_if_fail(db != NULL && img != NULL && schema != NULL, FALSE);
  if (!ensure_registered(error))
    return FALSE;
  name = remember(img, label);
  sql = sqlite3_mprintf("ATTACH 'file:%q?mode=ro&vfs=" SQLENVFS_IMAGEVFS_NAME "' AS \"%w\";"
                        " SELECT count(*) FROM \"%w\".sqlite_schema",
                        name, schema, schema);
  rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  sqlite3_free(sql);
  forget(name);
  if (rc != SQLITE_OK)
    return sqlenvfs_error_sqlite(error, db, rc, "attaching the database state", label);
  return TRUE;
}

gboolean
sqlenvfs_imagevfs_stats(sqlite3 *db, const char *schema, SqlenvfsImagevfsStats *out)
{
  sqlite3_file *f = NULL;

  if (sqlite3_file_control(db, schema, SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || f == NULL ||
      f->pMethods != &image_methods)
    return FALSE;
  *out = ((ImageFile *) f)->stats;
  return TRUE;
}
