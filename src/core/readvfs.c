/*
 * readvfs.c — an SQLite VFS that reads a finished database file in large
 * blocks (readvfs.h).
 *
 * A shim over the default VFS: its files are the default VFS's files with
 * a window in front of the main database's reads. Everything but xOpen,
 * xRead, xWrite, xTruncate and xClose goes to the default VFS's file as it
 * is.
 */
#include "sqlenvfs/readvfs.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <string.h>

#include "sqlenvfs/error.h"

#define MIN_BLOCK (16 * 1024)
#define MAX_BLOCK (1024 * 1024)
#define N_BLOCKS 4

/* An aligned block of the file, read in one call. */
typedef struct {
  guint8 *buf;          /* MAX_BLOCK bytes, allocated at first use     */
  sqlite3_int64 off;
  sqlite3_int64 len;    /* 0: empty                                    */
  sqlite3_int64 used;   /* bytes served from it                        */
  guint64 stamp;        /* last use, for eviction                      */
} Block;

typedef struct {
  sqlite3_file base;    /* pMethods: &methods                          */
  sqlite3_file *real;   /* the default VFS's file, right after this     */
  sqlite3_int64 size;   /* at open (invariant 2: it does not change)    */
  sqlite3_int64 block_len; /* the length of the next block read         */
  guint64 clock;
  Block blocks[N_BLOCKS];
} RaFile;

G_STATIC_ASSERT(sizeof(RaFile) % 8 == 0);

static atomic_uint_fast64_t n_asked, n_file;

static sqlite3_vfs *
root_vfs(sqlite3_vfs *vfs)
{
  return vfs->pAppData;
}

/* ---------------------------------------------------------------- files */

static void
drop_blocks(RaFile *f)
{
  for (int i = 0; i < N_BLOCKS; i++)
    f->blocks[i].len = 0;
}

static int
ra_close(sqlite3_file *file)
{
  RaFile *f = (RaFile *) file;
  int rc = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
  for (int i = 0; i < N_BLOCKS; i++)
    g_clear_pointer(&f->blocks[i].buf, g_free);
  return rc;
}

static int
pass_read(RaFile *f, void *out, int amt, sqlite3_int64 off)
{
  atomic_fetch_add(&n_file, 1);
  return f->real->pMethods->xRead(f->real, out, amt, off);
}

/* A block leaving: the next ones are longer when it was mostly read (a
 * reader going through the file, either way), shorter when little of it
 * was (a reader jumping about). */
static void
learn_from(RaFile *f, const Block *b)
{
  if (b->len == 0)
    return;
  if (b->used * 2 >= b->len)
    f->block_len = MIN(f->block_len * 2, MAX_BLOCK);
  else if (b->used * 4 < b->len)
    f->block_len = MAX(f->block_len / 2, MIN_BLOCK);
}

static int
ra_read(sqlite3_file *file, void *out, int amt, sqlite3_int64 off)
{
  RaFile *f = (RaFile *) file;
  sqlite3_int64 end = off + amt, start, len;
  Block *victim = NULL;

  atomic_fetch_add(&n_asked, 1);
  f->clock++;
  for (int i = 0; i < N_BLOCKS; i++) {
    Block *b = &f->blocks[i];
    if (b->len > 0 && off >= b->off && end <= b->off + b->len) {
      memcpy(out, b->buf + (off - b->off), (size_t) amt);
      b->used += amt;
      b->stamp = f->clock;
      return SQLITE_OK;
    }
    if (victim == NULL || b->len == 0 || (victim->len > 0 && b->stamp < victim->stamp))
      victim = b;
  }
  learn_from(f, victim);
  start = off - off % f->block_len;
  len = MIN(f->block_len, f->size - start);
  victim->len = 0;
  if (amt >= f->block_len || end > start + len) /* large, across blocks, or past the end */
    return pass_read(f, out, amt, off);
  if (victim->buf == NULL)
    victim->buf = g_malloc(MAX_BLOCK);
  if (pass_read(f, victim->buf, (int) len, start) != SQLITE_OK)
    /* The file's own answer to what was asked: its error, or the bytes
     * when only another part of the block failed. */
    return pass_read(f, out, amt, off);
  victim->off = start;
  victim->len = len;
  victim->used = amt;
  victim->stamp = f->clock;
  memcpy(out, victim->buf + (off - start), (size_t) amt);
  return SQLITE_OK;
}

static int
ra_write(sqlite3_file *file, const void *in, int amt, sqlite3_int64 off)
{
  RaFile *f = (RaFile *) file;
  drop_blocks(f);
  return f->real->pMethods->xWrite(f->real, in, amt, off);
}

static int
ra_truncate(sqlite3_file *file, sqlite3_int64 size)
{
  RaFile *f = (RaFile *) file;
  drop_blocks(f);
  return f->real->pMethods->xTruncate(f->real, size);
}

#define REAL(file) (((RaFile *) (file))->real)

static int
ra_sync(sqlite3_file *file, int flags)
{
  return REAL(file)->pMethods->xSync(REAL(file), flags);
}

static int
ra_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
  return REAL(file)->pMethods->xFileSize(REAL(file), size);
}

static int
ra_lock(sqlite3_file *file, int level)
{
  return REAL(file)->pMethods->xLock(REAL(file), level);
}

static int
ra_unlock(sqlite3_file *file, int level)
{
  return REAL(file)->pMethods->xUnlock(REAL(file), level);
}

static int
ra_check_reserved(sqlite3_file *file, int *out)
{
  return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}

static int
ra_file_control(sqlite3_file *file, int op, void *arg)
{
  return REAL(file)->pMethods->xFileControl(REAL(file), op, arg);
}

static int
ra_sector_size(sqlite3_file *file)
{
  return REAL(file)->pMethods->xSectorSize(REAL(file));
}

static int
ra_device_characteristics(sqlite3_file *file)
{
  return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}

static int
ra_shm_map(sqlite3_file *file, int region, int size, int extend, void volatile **out)
{
  const sqlite3_io_methods *m = REAL(file)->pMethods;
  return m->iVersion >= 2 ? m->xShmMap(REAL(file), region, size, extend, out) : SQLITE_IOERR;
}

static int
ra_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
  const sqlite3_io_methods *m = REAL(file)->pMethods;
  return m->iVersion >= 2 ? m->xShmLock(REAL(file), offset, n, flags) : SQLITE_IOERR;
}

static void
ra_shm_barrier(sqlite3_file *file)
{
  const sqlite3_io_methods *m = REAL(file)->pMethods;
  if (m->iVersion >= 2)
    m->xShmBarrier(REAL(file));
}

static int
ra_shm_unmap(sqlite3_file *file, int delete_flag)
{
  const sqlite3_io_methods *m = REAL(file)->pMethods;
  return m->iVersion >= 2 ? m->xShmUnmap(REAL(file), delete_flag) : SQLITE_OK;
}

/* No memory maps: every read goes through ra_read (mmap_size is 0 for
 * these connections anyway). */
static int
ra_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out)
{
  (void) file, (void) off, (void) amt;
  *out = NULL;
  return SQLITE_OK;
}

static int
ra_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
  (void) file, (void) off, (void) p;
  return SQLITE_OK;
}

static const sqlite3_io_methods methods = {
  .iVersion = 3,
  .xClose = ra_close,
  .xRead = ra_read,
  .xWrite = ra_write,
  .xTruncate = ra_truncate,
  .xSync = ra_sync,
  .xFileSize = ra_file_size,
  .xLock = ra_lock,
  .xUnlock = ra_unlock,
  .xCheckReservedLock = ra_check_reserved,
  .xFileControl = ra_file_control,
  .xSectorSize = ra_sector_size,
  .xDeviceCharacteristics = ra_device_characteristics,
  .xShmMap = ra_shm_map,
  .xShmLock = ra_shm_lock,
  .xShmBarrier = ra_shm_barrier,
  .xShmUnmap = ra_shm_unmap,
  .xFetch = ra_fetch,
  .xUnfetch = ra_unfetch,
};

/* ------------------------------------------------------------------ vfs */

static int
ra_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags, int *out_flags)
{
  sqlite3_vfs *root = root_vfs(vfs);
  RaFile *f = (RaFile *) file;
  int rc;

  if (!(flags & SQLITE_OPEN_MAIN_DB)) /* the default VFS's file, as it is */
    return root->xOpen(root, name, file, flags, out_flags);
  memset(f, 0, sizeof *f);
  f->real = (sqlite3_file *) (f + 1);
  rc = root->xOpen(root, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (f->real->pMethods != NULL)
      f->real->pMethods->xClose(f->real);
    f->base.pMethods = NULL;
    return rc;
  }
  if (f->real->pMethods->xFileSize(f->real, &f->size) != SQLITE_OK)
    f->size = 0; /* every read passes through */
  f->block_len = 4 * MIN_BLOCK;
  f->base.pMethods = &methods;
  return SQLITE_OK;
}

static int
ra_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
  return root_vfs(vfs)->xDelete(root_vfs(vfs), name, sync_dir);
}

static int
ra_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
  return root_vfs(vfs)->xAccess(root_vfs(vfs), name, flags, out);
}

static int
ra_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
  return root_vfs(vfs)->xFullPathname(root_vfs(vfs), name, n, out);
}

static void *
ra_dl_open(sqlite3_vfs *vfs, const char *name)
{
  return root_vfs(vfs)->xDlOpen(root_vfs(vfs), name);
}

static void
ra_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
  root_vfs(vfs)->xDlError(root_vfs(vfs), n, out);
}

static void (*ra_dl_sym(sqlite3_vfs *vfs, void *handle, const char *sym))(void)
{
  return root_vfs(vfs)->xDlSym(root_vfs(vfs), handle, sym);
}

static void
ra_dl_close(sqlite3_vfs *vfs, void *handle)
{
  root_vfs(vfs)->xDlClose(root_vfs(vfs), handle);
}

static int
ra_randomness(sqlite3_vfs *vfs, int n, char *out)
{
  return root_vfs(vfs)->xRandomness(root_vfs(vfs), n, out);
}

static int
ra_sleep(sqlite3_vfs *vfs, int us)
{
  return root_vfs(vfs)->xSleep(root_vfs(vfs), us);
}

static int
ra_current_time(sqlite3_vfs *vfs, double *out)
{
  return root_vfs(vfs)->xCurrentTime(root_vfs(vfs), out);
}

static int
ra_last_error(sqlite3_vfs *vfs, int n, char *out)
{
  return root_vfs(vfs)->xGetLastError(root_vfs(vfs), n, out);
}

static int
ra_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
  sqlite3_vfs *root = root_vfs(vfs);
  if (root->iVersion >= 2 && root->xCurrentTimeInt64 != NULL)
    return root->xCurrentTimeInt64(root, out);
  double now;
  int rc = root->xCurrentTime(root, &now);
  *out = (sqlite3_int64) (now * 86400000.0);
  return rc;
}

static sqlite3_vfs ra_vfs;

static gpointer
register_once(gpointer data)
{
  (void) data;
  sqlite3_vfs *root = sqlite3_vfs_find(NULL);
  if (root == NULL)
    return GINT_TO_POINTER(SQLITE_ERROR);
  ra_vfs = (sqlite3_vfs){
    .iVersion = 2,
    .szOsFile = (int) sizeof(RaFile) + root->szOsFile,
    .mxPathname = root->mxPathname,
    .zName = SQLENVFS_READVFS_NAME,
    .pAppData = root,
    .xOpen = ra_open,
    .xDelete = ra_delete,
    .xAccess = ra_access,
    .xFullPathname = ra_full_pathname,
    .xDlOpen = ra_dl_open,
    .xDlError = ra_dl_error,
    .xDlSym = ra_dl_sym,
    .xDlClose = ra_dl_close,
    .xRandomness = ra_randomness,
    .xSleep = ra_sleep,
    .xCurrentTime = ra_current_time,
    .xGetLastError = ra_last_error,
    .xCurrentTimeInt64 = ra_current_time_int64,
  };
  return GINT_TO_POINTER(sqlite3_vfs_register(&ra_vfs, 0));
}

gboolean
sqlenvfs_readvfs_register(GError **error)
{
  static GOnce once = G_ONCE_INIT;
  int rc = GPOINTER_TO_INT(g_once(&once, register_once, NULL));
  if (rc != SQLITE_OK) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "register the SQLite VFS %s: %s (SQLite has no default VFS to read files with)",
                SQLENVFS_READVFS_NAME, sqlite3_errstr(rc));
    return FALSE;
  }
  return TRUE;
}

void
sqlenvfs_readvfs_stats(SqlenvfsReadvfsStats *out)
{
  out->n_asked = atomic_load(&n_asked);
  out->n_file = atomic_load(&n_file);
}
